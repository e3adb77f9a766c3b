"""Contract tests of the Neuron backend against stand-ins for torch-neuron and torch-neuronx.

There is no Neuron hardware or SDK here. Each stand-in is built from the documented API
(reference/torch-neuron.md), records how it is called, and returns a real TorchScript module
(traced on CPU) so caching and running stay the real code path. /dev/neuron* is faked by
pointing the backend's device glob at a temporary directory.
"""
from __future__ import annotations

import sys
import types

import pytest
import torch

from workloads import backends
from workloads.backends import Context, neuron
from workloads.config import WorkloadConfig
from workloads.errors import WorkloadFailure
from workloads.models import get_model
from workloads.rules import pipeline_cores


class StandInNeuron:
    """Records trace() and DataParallel() calls the way torch.neuron / torch_neuronx accept them."""

    def __init__(self, package):
        self.package = package
        self.traces = []
        self.data_parallel = []

    def trace(self, model, example_inputs, compiler_args=None, **kwargs):
        self.traces.append({"model": model, "inputs": example_inputs, "compiler_args": compiler_args, **kwargs})
        return torch.jit.trace(model, example_inputs, check_trace=False)

    def DataParallel(self, model, device_ids=None, dim=0, **kwargs):  # noqa: N802 - the SDK's name
        calls = []
        self.data_parallel.append({"model": model, "device_ids": device_ids, "dim": dim, "calls": calls, **kwargs})

        def run(*inputs):
            calls.append(tuple(t.shape[0] for t in inputs))
            return model(*inputs)
        return run


@pytest.fixture
def fake_devices(tmp_path, monkeypatch):
    devices = tmp_path / "dev"
    devices.mkdir()
    for i in range(2):
        (devices / f"neuron{i}").touch()
    monkeypatch.setattr(neuron, "DEVICE_GLOB", str(devices / "neuron*"))
    monkeypatch.delenv("NEURON_RT_VISIBLE_CORES", raising=False)
    monkeypatch.delenv("NEURON_RT_NUM_CORES", raising=False)
    return devices


@pytest.fixture
def torch_neuron(monkeypatch, fake_devices):
    """Stand-in torch-neuron (inf1): `import torch_neuron` registers `torch.neuron`."""
    stand_in = StandInNeuron("torch_neuron")
    monkeypatch.setitem(sys.modules, "torch_neuron", types.ModuleType("torch_neuron"))
    monkeypatch.setitem(sys.modules, "torch_neuronx", None)  # None in sys.modules: ImportError
    monkeypatch.setattr(torch, "neuron", stand_in, raising=False)
    return stand_in


@pytest.fixture
def torch_neuronx(monkeypatch, fake_devices):
    """Stand-in torch-neuronx (inf2/trn): the module itself has trace and DataParallel."""
    stand_in = StandInNeuron("torch_neuronx")
    module = types.ModuleType("torch_neuronx")
    module.trace, module.DataParallel = stand_in.trace, stand_in.DataParallel
    monkeypatch.setitem(sys.modules, "torch_neuronx", module)
    return stand_in


def prepare(tmp_path, **settings):
    config = WorkloadConfig(model="cnn", backend="neuron", warmup=0, **settings)
    spec = get_model("cnn")
    events = []
    ctx = Context(config=config, spec=spec, emit=events.append, cache_dir=tmp_path)
    return neuron.prepare(spec.build(config), spec.example_inputs(config.batch, config), ctx), events


def test_contract_placeholder_package_from_pypi_is_not_taken_for_the_sdk(tmp_path, monkeypatch, fake_devices):
    """Stand-in for PyPI's torch-neuron 1.0, whose import raises ImportError("WRONG PACKAGE")."""
    placeholder = tmp_path / "site" / "torch_neuron"
    placeholder.mkdir(parents=True)
    (placeholder / "__init__.py").write_text('raise ImportError("WRONG PACKAGE: install from AWS\'s index")\n')
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setitem(sys.modules, "torch_neuronx", None)
    reason = neuron.unavailable()
    assert reason and "placeholder" in reason and "AWS's package index" in reason
    assert backends.resolve("auto") != "neuron"
    with pytest.raises(WorkloadFailure, match="backend neuron is not available") as caught:
        backends.resolve("neuron")
    assert caught.value.kind == "backend-unavailable"


def test_contract_no_devices_means_no_neuron_even_with_the_sdk(torch_neuron, fake_devices):
    """Stand-in SDK present, /dev/neuron* absent: traced models would return placeholder output."""
    for device in fake_devices.iterdir():
        device.unlink()
    assert "no Neuron devices" in neuron.unavailable()
    assert backends.resolve("auto") in ("cuda", "cpu")


def test_contract_auto_prefers_neuron_when_sdk_and_devices_exist(torch_neuron):
    """Stand-in torch-neuron and fake devices: auto picks neuron before cuda and cpu."""
    assert neuron.unavailable() is None and backends.resolve("auto") == "neuron"


def test_contract_single_traces_once_on_one_core_then_hits_the_cache(tmp_path, torch_neuron):
    """Stand-in torch.neuron.trace receives the model, the example inputs and no compiler args."""
    prepared, events = prepare(tmp_path, batch=2)
    (call,) = torch_neuron.traces
    assert call["compiler_args"] == [] and call["inputs"][0].shape == (2, 1, 28, 28)
    assert prepared.ready.cores_used == 1 and not prepared.ready.cached
    assert prepared.load.max_merge == 1  # compiled shapes are static: requests are never merged
    with torch.no_grad():
        assert prepared.load.replicas[0](1).shape == (2, 10)
    again, _ = prepare(tmp_path, batch=2)
    assert again.ready.cached and len(torch_neuron.traces) == 1


@pytest.mark.parametrize("requested, visible, expected", [(None, "0-3", "1"), (8, "0-3", "4"), (3, "0-15", "3")])
def test_contract_pipeline_passes_neuroncore_pipeline_cores(tmp_path, torch_neuron, monkeypatch,
                                                          requested, visible, expected):
    """Stand-in torch.neuron.trace gets --neuroncore-pipeline-cores N, N from the rule clamped to the cores."""
    monkeypatch.setenv("NEURON_RT_VISIBLE_CORES", visible)
    prepared, _ = prepare(tmp_path, mode="pipeline", pipeline_cores=requested)
    assert torch_neuron.traces[-1]["compiler_args"] == ["--neuroncore-pipeline-cores", expected]
    assert prepared.ready.cores_used == int(expected)


def test_pipeline_rule_of_thumb_for_the_four_models():
    visible = 16
    assert [pipeline_cores(get_model(m).params, visible) for m in ("cnn", "resnet50", "bert", "craft")] \
        == [1, 4, 16, 4]  # 0 -> 1; BERT's 20 clamped to the 16 visible cores
    assert pipeline_cores(108_311_810, 64) == 20


def test_visible_cores_from_the_runtime_environment():
    assert neuron.visible_cores("torch_neuron", {"NEURON_RT_VISIBLE_CORES": "0-3,6"}) == 5
    assert neuron.visible_cores("torch_neuron", {"NEURON_RT_NUM_CORES": "2"}) == 2


def test_contract_dp_wraps_dataparallel_over_visible_cores(tmp_path, torch_neuron, monkeypatch):
    """Stand-in torch.neuron.DataParallel: device ids 0..N-1 of NEURON_RT_VISIBLE_CORES, dim 0 (dynamic batching)."""
    monkeypatch.setenv("NEURON_RT_VISIBLE_CORES", "4-7")
    prepared, _ = prepare(tmp_path, mode="dp", concurrency=4)
    (dp,) = torch_neuron.data_parallel
    assert dp["device_ids"] == [0, 1, 2, 3] and dp["dim"] == 0
    assert torch_neuron.traces[-1]["compiler_args"] == []
    # Enough concurrent callers to fill every core at batch 1, and merged requests reach DataParallel whole.
    assert len(prepared.load.replicas) >= 4 and prepared.ready.cores_used == 4
    with torch.no_grad():
        prepared.load.replicas[0](3)
    assert dp["calls"] == [(3,)]


def test_contract_neuronx_dp_turns_on_dynamic_batching(tmp_path, torch_neuronx):
    """Stand-in torch_neuronx.DataParallel gets set_dynamic_batching=True; 2 cores per device."""
    prepared, _ = prepare(tmp_path, mode="dp")
    (dp,) = torch_neuronx.data_parallel
    assert dp["set_dynamic_batching"] is True and dp["device_ids"] == [0, 1, 2, 3]  # 2 fake devices x 2 cores
    assert prepared.ready.device_name == "NeuronCore (torch_neuronx)"


def test_contract_neuronx_has_no_pipeline_mode(tmp_path, torch_neuronx):
    """Stand-in torch-neuronx: pipeline mode is refused with a reason, before any compile."""
    with pytest.raises(WorkloadFailure, match="torch-neuronx has no pipeline mode") as caught:
        prepare(tmp_path, mode="pipeline")
    assert caught.value.kind == "unsupported" and not torch_neuronx.traces


def test_contract_untraceable_model_fails_before_the_neuron_compiler_runs(torch_neuron):
    """Stand-in torch.neuron.trace: a branch on a tensor's value is reported, and no compile starts."""
    from workloads.cache import trace_module

    class BranchesOnValues(torch.nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x - 1

    with pytest.raises(WorkloadFailure, match="tensor-dependent control flow") as caught:
        trace_module(BranchesOnValues(), (torch.rand(2, 3),), tracer=torch.neuron.trace, compiler_args=[])
    assert caught.value.kind == "trace" and torch_neuron.traces == []


def small_bert():
    """BERT's architecture at 2 layers (full vocabulary, so the request pool's token ids fit)."""
    from workloads.models import bert

    config = bert.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    return bert.BertForSequenceClassification(config).eval()


def prepare_bert(tmp_path, **settings):
    config = WorkloadConfig(model="bert", backend="neuron", warmup=0, **settings)
    spec = get_model("bert")
    events = []
    ctx = Context(config=config, spec=spec, emit=events.append, cache_dir=tmp_path)
    return neuron.prepare(small_bert(), spec.example_inputs(config.batch, config), ctx), events


@pytest.mark.parametrize("package", ["torch_neuron", "torch_neuronx"])
def test_contract_buckets_trace_once_per_bucket_with_that_buckets_shape(tmp_path, request, package):
    """Stand-in torch.neuron.trace / torch_neuronx.trace: one trace per bucket, as AWS's bucketing app note."""
    stand_in = request.getfixturevalue(package)
    prepared, _ = prepare_bert(tmp_path, batch=2, seq_len_dist="uniform:2-16", buckets="4,8,16")
    shapes = [[tuple(t.shape) for t in call["inputs"]] for call in stand_in.traces]
    assert shapes == [[(2, 4)] * 3, [(2, 8)] * 3, [(2, 16)] * 3]
    ready = prepared.ready
    assert ready.bucket_lengths == [4, 8, 16] and len(ready.bucket_compile_seconds) == 3
    assert prepared.load.buckets == [4, 8, 16] and prepared.load.max_merge == 1
    with torch.no_grad():
        ran = [prepared.load.replicas[0](1) for _ in range(40)]
    assert {bucket for bucket, _, _ in ran} == {0, 1, 2}
    again, _ = prepare_bert(tmp_path, batch=2, seq_len_dist="uniform:2-16", buckets="4,8,16")
    assert again.ready.cached and len(stand_in.traces) == 3  # each bucket is cached like any other shape


def test_contract_copies_are_separate_loads_placed_one_per_core(tmp_path, torch_neuron, monkeypatch):
    """Stand-in torch.neuron.DataParallel: copy i loads on its own, on core i % visible (device_ids count from 0)."""
    monkeypatch.setenv("NEURON_RT_VISIBLE_CORES", "4-7")
    prepared, events = prepare(tmp_path, copies="6")
    placements = [dp["device_ids"] for dp in torch_neuron.data_parallel]
    assert placements == [[0], [1], [2], [3], [0], [1]]
    assert len({id(dp["model"]) for dp in torch_neuron.data_parallel}) == 6  # six loads, not one shared model
    assert len(torch_neuron.traces) == 1  # one compile, loaded six times
    ready = prepared.ready
    assert ready.copies == 6 and ready.cores_used == 4 and ready.memory_after_each_load == []
    assert prepared.load.copies == list(range(6)) and prepared.load.slots == [0, 1, 2, 3, 0, 1]
    with torch.no_grad():
        for replica in prepared.load.replicas:
            assert replica(1).shape == (1, 10)
    assert all(dp["calls"] == [(1,)] for dp in torch_neuron.data_parallel)
    assert [e.detail for e in events if e.detail.startswith("copy ")][-1] == "copy 6 of 6"


def test_contract_copies_max_loads_until_the_runtime_refuses(tmp_path, torch_neuronx, monkeypatch):
    """Stand-in torch_neuronx.DataParallel refusing the 4th load: max keeps the 3 that loaded."""
    accept = torch_neuronx.DataParallel

    def refuse_after_three(model, device_ids=None, dim=0, **kwargs):
        if len(torch_neuronx.data_parallel) == 3:
            raise RuntimeError("Failed to allocate device memory: out of memory")
        return accept(model, device_ids=device_ids, dim=dim, **kwargs)
    sys.modules["torch_neuronx"].DataParallel = refuse_after_three
    prepared, events = prepare(tmp_path, copies="max")
    assert prepared.ready.copies == 3 and "copy 4 did not load" in prepared.ready.copies_stopped
    assert [dp["device_ids"] for dp in torch_neuronx.data_parallel] == [[0], [1], [2]]
    assert not [e for e in events if type(e).__name__ == "Error"]  # max ending at a refusal is no error
