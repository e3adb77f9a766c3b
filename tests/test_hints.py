"""Hints a user sees in the events panel: computed from telemetry and `ready`, logged once."""
import pytest

from neurontui.hints import compute_hints, update_hints
from neurontui.sources.neuron_report import parse_report
from neurontui.store import Store
from neurontui.telemetry import Core, Snapshot
from tests.conftest import FIXTURES
from workloads.config import WorkloadConfig
from workloads.protocol import Hello, LatencyHistogram, Ready, Window


def fixture_snapshot(name):
    return parse_report((FIXTURES / name).read_text(), time=1000.0).snapshot


def window(latency=0.004, n=50, start=0.0):
    hist = LatencyHistogram()
    for _ in range(n):
        hist.record(latency)
    return Window.from_histogram(start, start + 0.5, hist, 0, [n])


def running_store(snapshot=None, windows=1, pid=4242, **config):
    store = Store()
    if snapshot is not None:
        store.publish_snapshot(snapshot)
    cfg = WorkloadConfig(**config)
    store.workload_starting(cfg.as_dict(), pid)
    store.workload_event(Hello(pid=pid, model=cfg.model, backend=cfg.backend, mode=cfg.mode, batch=cfg.batch))
    return store


def hint_texts(store):
    return [e.text for e in store.events if e.level == "hint"]


def test_dp_at_batch1_names_the_idle_cores_once():
    store = running_store(backend="cpu", mode="dp", batch=1, concurrency=1)
    store.workload_event(Ready(params=25_557_032, cores_used=4))
    assert update_hints(store) == []  # nothing measured yet: no claim about idle cores
    store.workload_event(window())
    logged = update_hints(store)
    assert len(logged) == 1
    assert "keeps 1 of 4 cores busy and 3 idle" in logged[0].text
    assert update_hints(store) == []
    assert len(hint_texts(store)) == 1


@pytest.mark.parametrize("changes", [{"batch": 4}, {"concurrency": 4}, {"mode": "single"}])
def test_no_idle_core_hint_when_the_load_can_fill_the_cores(changes):
    store = running_store(**({"backend": "cpu", "mode": "dp", "batch": 1, "concurrency": 1} | changes))
    store.workload_event(Ready(params=25_557_032, cores_used=4))
    store.workload_event(window())
    assert not any("idle" in h.text for h in compute_hints(store.workload, store.latest))


def test_pipeline_hint_on_inf1_uses_the_cores_neuron_monitor_reports():
    store = running_store(fixture_snapshot("v1_from_docs.json"), backend="neuron")
    store.workload_event(Ready(params=25_557_032, cores_used=1))
    texts = [h.text for h in update_hints(store)]
    assert any("4 NeuronCores" in t and "clamped to 1..4" in t for t in texts)


def test_no_pipeline_hint_on_trn1_where_torch_neuronx_has_no_pipeline():
    store = running_store(fixture_snapshot("v2_trn1n_32xlarge_2runtimes.json"), backend="neuron")
    store.workload_event(Ready(params=25_557_032, cores_used=1))
    assert not any(h.key.startswith("pipeline") for h in compute_hints(store.workload, store.latest))


def test_gpu_latency_floor_after_a_few_windows_at_batch1():
    store = running_store(backend="cuda", batch=1)
    for i in range(3):
        store.workload_event(window(0.0031, start=i))
    assert not any(h.key.startswith("gpu-floor") for h in compute_hints(store.workload, None))
    store.workload_event(window(0.0031, start=3))
    floor = [h for h in update_hints(store) if h.key.startswith("gpu-floor")]
    assert len(floor) == 1 and "p50 3.10 ms" in floor[0].text


def test_memory_per_copy_prefers_neuron_monitor_figures_for_our_process():
    snapshot = fixture_snapshot("v2_trn1n_32xlarge_2runtimes.json")  # runtimes of pid 457402
    store = running_store(snapshot, backend="neuron", pid=457402)
    store.workload_event(Ready(params=25_557_032, cores_used=1, device_memory_bytes=999, artifact_bytes=44_354_765))
    memory = [h.text for h in update_hints(store) if "per loaded copy" in h.text]
    # 110665748 bytes on each core in the report; 512 GiB over 32 cores
    assert memory and "105.5 MiB of device memory per loaded copy (neuron-monitor, per core)" in memory[0]
    assert "compiled file is 42.3 MiB" in memory[0]
    assert f"fits about {549755813888 // 110665748} copies ({549755813888 // 32 // 110665748} per core)" in memory[0]


def test_memory_per_copy_on_a_gpu_from_the_ready_event():
    snapshot = Snapshot(time=1.0, source="host", cores=[
        Core(kind="gpu", index=0, utilization=0.5, memory_used_bytes=2 << 30, memory_total_bytes=16 << 30)])
    store = running_store(snapshot, backend="cuda", mode="dp")
    store.workload_event(Ready(params=25_557_032, cores_used=2, device_memory_bytes=2 * 100 << 20))
    memory = [h.text for h in update_hints(store) if "per loaded copy" in h.text]
    assert memory and "100.0 MiB" in memory[0] and "one GPU's 16.0 GiB fits about 163 copies" in memory[0]


def test_cpu_runs_get_no_device_memory_hint():
    store = running_store(backend="cpu")
    store.workload_event(Ready(params=25_557_032, cores_used=1, device_memory_bytes=100 << 20))
    assert not any("per loaded copy" in h.text for h in compute_hints(store.workload, None))
