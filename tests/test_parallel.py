"""Pipeline stage cutting, core groups and the worker wire format (CPU dp / pipeline building blocks)."""
from __future__ import annotations

import torch
from torch import nn

from workloads.models import get_model
from workloads.config import WorkloadConfig
from workloads.backends.parallel import core_groups, from_wire, split_stages, to_wire


class Residual(nn.Module):
    """A skip connection: the cut between the two convs must carry two values."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 3, 3, padding=1)
        self.b = nn.Conv2d(3, 3, 3, padding=1)
        self.head = nn.Linear(3 * 8 * 8, 4)

    def forward(self, x):
        y = self.b(torch.relu(self.a(x))) + x
        return self.head(torch.flatten(y, 1))


def run_stages(stages, inputs):
    values = inputs
    for stage in stages:
        values = stage(*values)
        values = values if isinstance(values, tuple) else (values,)
    return values[0]  # the model's output, or its first element when it returns a tuple


def test_stages_compute_what_the_whole_model_computes():
    model = Residual().eval()
    x = torch.rand(2, 3, 8, 8)
    stages = split_stages(model, 3)
    assert len(stages) == 3
    with torch.no_grad():
        assert torch.allclose(run_stages(stages, (x,)), model(x))


def test_cnn_splits_by_parameter_count():
    spec = get_model("cnn")
    model = spec.build(WorkloadConfig(model="cnn"))
    x, = spec.example_inputs(2, WorkloadConfig(model="cnn"))
    stages = split_stages(model, 2)
    params = [sum(p.numel() for p in s.parameters()) for s in stages]
    # fc1 holds 3.1 M of 3.2 M parameters: the boundary nearest the half is just before it.
    assert params == [18_816, 3_147_010]
    with torch.no_grad():
        assert torch.allclose(run_stages(stages, (x,)), model(x))


def test_core_groups_are_disjoint_and_cover_the_cpus():
    assert core_groups([0, 1, 2, 3, 4], 2) == [[0, 1, 2], [3, 4]]
    assert core_groups([0, 1], 4) == [[0], [1]]
    assert core_groups([5], 1) == [[5]]


def test_wire_format_round_trips_bf16_and_ints():
    values = (torch.rand(2, 3).to(torch.bfloat16), torch.arange(4), 7)
    back = from_wire(to_wire(values))
    assert back[0].dtype == torch.bfloat16 and torch.equal(back[0], values[0])
    assert torch.equal(back[1], values[1]) and back[2] == 7
    pair = from_wire(to_wire((torch.rand(2, 2), torch.rand(2, 2))))  # a cut carrying two tensors (a skip)
    assert len(pair) == 2 and all(t.shape == (2, 2) for t in pair)


def test_bert_cuts_across_its_attention_mask_and_position_buffer():
    from workloads.models.bert import BertConfig, BertForSequenceClassification

    small = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                       intermediate_size=64)  # the real architecture, shrunk so the test stays fast
    model = BertForSequenceClassification(small).eval()
    inputs = get_model("bert").example_inputs(2, WorkloadConfig(model="bert", seq_len=16))
    inputs = (inputs[0] % 100, *inputs[1:])
    stages = split_stages(model, 4)
    assert len(stages) == 4
    with torch.no_grad():
        (logits,) = model(*inputs)
        assert torch.allclose(run_stages(stages, inputs), logits, atol=1e-5)
