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


def test_measured_copies_replace_the_one_copy_extrapolation_and_face_the_file_size_guess():
    store = running_store(backend="cuda", copies="4")
    store.workload_event(Ready(params=25_557_032, cores_used=1, device_memory_bytes=4 * 100 << 20,
                               artifact_bytes=98 << 20, copies=4, memory_before_copies=1 << 30,
                               memory_after_each_load=[(1 << 30) + (k * 100 << 20) for k in (1, 2, 3, 4)],
                               bytes_per_copy=100 << 20, copies_fit=(15 << 30) // (100 << 20),
                               memory_total_bytes=16 << 30, memory_source="cuda allocated"))
    texts = [h.text for h in update_hints(store)]
    assert not any("per loaded copy (" in t for t in texts)  # the extrapolation from one load is gone
    measured = [t for t in texts if "measured" in t]
    assert measured == ["resnet50: 100.0 MiB per loaded copy, measured (cuda allocated, slope over 4 loads): "
                        "153 copies fit in 16.0 GiB; the file-size guess (98.0 MiB per copy) says 156"]


def test_copies_max_says_why_it_stopped():
    store = running_store(backend="cpu", copies="max")
    store.workload_event(Ready(params=3_165_826, copies=7, memory_before_copies=100, memory_after_each_load=[200, 300],
                               bytes_per_copy=100, copies_fit=9, memory_total_bytes=1000,
                               memory_source="process resident",
                               copies_stopped="the next copy would leave less than 10% of memory free"))
    [hint] = [h.text for h in compute_hints(store.workload, None) if h.key.startswith("copies-fit")]
    assert hint.endswith("; 7 loaded: the next copy would leave less than 10% of memory free")


def test_a_bucket_set_is_suggested_from_the_length_mix_before_the_user_tries_it():
    from workloads.buckets import padding_ratio, parse_buckets, parse_seq_len_dist

    store = running_store(backend="cpu", model="bert", seq_len_dist="uniform:16-128")
    mix = parse_seq_len_dist("uniform:16-128")
    now, then = padding_ratio(mix, [128]), padding_ratio(mix, parse_buckets("32,64,128"))
    [hint] = [h.text for h in update_hints(store) if h.text.startswith("buckets")]
    assert hint.startswith(f"buckets 32,64,128 would cut padding from {now:.0%} to {then:.0%} on this length mix")
    assert (f"{now:.0%}", f"{then:.0%}") == ("78%", "33%")


@pytest.mark.parametrize("config", [
    {"seq_len_dist": "uniform:16-128", "buckets": "32,64,128"},  # buckets chosen already
    {"seq_len_dist": "uniform:16-128", "batch": 8},  # the longest of 8 rows is near 128: nothing to cut
    {"seq_len_dist": "uniform:120-128"},  # every length is near the top
    {},  # one fixed length
])
def test_no_bucket_suggestion_where_buckets_would_not_cut_padding(config):
    store = running_store(backend="cpu", model="bert", **config)
    assert not any(h.key.startswith("buckets") for h in compute_hints(store.workload, None))


@pytest.mark.parametrize("mix,longest,expected", [
    ("uniform:16-128", 128, [32, 64, 128]),
    ("uniform:5-16", 128, [8, 16]),  # the top is the longest length the mix draws, not 128
    ("normal:64,16", 128, [32, 64, 128]),  # a normal mix is clipped at the padded length
    ("uniform:1-512", 512, [64, 128, 256, 512]),  # a few buckets: each is a compile
])
def test_suggested_buckets_are_powers_of_two_over_the_mix(mix, longest, expected):
    from neurontui.hints import suggest_buckets
    from workloads.buckets import parse_seq_len_dist

    assert suggest_buckets(parse_seq_len_dist(mix), longest) == expected
