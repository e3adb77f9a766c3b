"""FLOPs per sample, counted in the child with torch's FlopCounterMode, against a hand count of
the small CNN's layers, and carried by the `ready` event."""
from __future__ import annotations

import json

import pytest
import torch

from tests.test_workload_child import run_child
from workloads.config import WorkloadConfig
from workloads.flops import count_flops, flops_per_sample
from workloads.models import get_model
from workloads.protocol import Ready


def hand_count(model, inputs):
    """2 FLOPs per multiply-add of every convolution and linear layer, from the output shapes
    each layer produces on these inputs (bias adds, activations and pooling are not counted)."""
    total = []

    def conv(layer, _, output):
        kh, kw = layer.kernel_size
        total.append(2 * output.numel() * layer.in_channels // layer.groups * kh * kw)

    def linear(layer, _, output):
        total.append(2 * output.numel() * layer.in_features)

    hooks = [m.register_forward_hook(conv if isinstance(m, torch.nn.Conv2d) else linear)
             for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model(*inputs)
    for hook in hooks:
        hook.remove()
    assert len(total) == 4  # conv1, conv2, fc1, fc2
    return sum(total)


@pytest.fixture
def cnn():
    config = WorkloadConfig(model="cnn", backend="cpu")
    spec = get_model("cnn")
    return spec, config, spec.build(config)


def test_the_cnn_counted_flops_agree_with_a_hand_count_of_its_layers(cnn, tmp_path):
    spec, config, model = cnn
    one = spec.example_inputs(1, config)
    assert flops_per_sample(spec, config, tmp_path) == hand_count(model, one)


def test_flops_grow_with_the_batch_and_per_sample_is_the_batch_1_count(cnn):
    spec, config, model = cnn
    assert count_flops(model, spec.example_inputs(3, config)) == 3 * flops_per_sample(spec, config)


def test_the_count_is_kept_once_per_model_and_shape_and_a_spoiled_entry_is_recounted(cnn, tmp_path):
    spec, config, model = cnn
    counted = flops_per_sample(spec, config, tmp_path)
    (entry,) = tmp_path.glob("flops-cnn-*.json")
    entry.write_text(json.dumps({"flops_per_sample": counted + 1}))
    assert flops_per_sample(spec, config, tmp_path) == counted + 1  # read back, not recounted
    entry.write_text("{half a file")
    assert flops_per_sample(spec, config, tmp_path) == counted
    assert json.loads(entry.read_text()) == {"flops_per_sample": counted}


def test_a_model_that_cannot_be_counted_has_no_figure(capsys):
    class DataDependent(torch.nn.Module):
        def forward(self, x):
            return x * x.sum().item()  # needs a value: no meta tensor has one

    assert count_flops(DataDependent(), (torch.ones(2, device="meta"),)) is None
    assert "FLOPs not counted" in capsys.readouterr().err


@pytest.mark.slow
def test_the_ready_event_carries_the_flops_per_sample_and_the_cache_keeps_it(child_env, tmp_path, cnn):
    spec, config, model = cnn
    code, events, err = run_child(["--model", "cnn", "--backend", "cpu", "--batch", "2", "--duration", "0.5",
                                   "--warmup", "0.1"], child_env, tmp_path)
    assert code == 0, err
    (ready,) = [e for e in events if isinstance(e, Ready)]
    assert ready.flops_per_sample == hand_count(model, spec.example_inputs(1, config))
    (entry,) = tmp_path.glob("flops-cnn-*.json")  # the next child of this model and shape reads it
    assert json.loads(entry.read_text()) == {"flops_per_sample": ready.flops_per_sample}
