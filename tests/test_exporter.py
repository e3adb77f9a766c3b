"""The Prometheus exposition: AWS's series from real neuron-monitor reports, neurontui's own
series, and the endpoint itself (landing page, port in use, turned off)."""
from __future__ import annotations

import copy
import functools
import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from argparse import Namespace

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from neurontui.cli import parse as parse_cli
from neurontui.exporter import ExporterError, start_exporter
from neurontui.exporter_families import LATENCY_BUCKETS, StoreCollector
from neurontui.sources.neuron_report import parse_report
from neurontui.store import Store
from neurontui.telemetry import Core, Memory, Snapshot
from tests.conftest import FIXTURES
from workloads.protocol import Hello, LatencyHistogram, Window

TRN1N = FIXTURES / "v2_trn1n_32xlarge_2runtimes.json"
V1 = FIXTURES / "v1_from_docs.json"


def load(path) -> dict:
    return json.loads(path.read_text())


def publish(store: Store, report: dict, when: float | None = None) -> None:
    result = parse_report(report, time=time.time() if when is None else when)
    store.publish_snapshot(result.snapshot)


def exposition(store: Store, aws_labels: bool = False) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store, aws_labels=aws_labels))
    return generate_latest(registry).decode()


@functools.lru_cache(maxsize=4)  # tests look up hundreds of series in one exposition
def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples]


def series(text: str, name: str, **match: str) -> list[tuple[dict[str, str], float]]:
    return [(labels, value) for n, labels, value in samples(text)
            if n == name and all(labels.get(k) == v for k, v in match.items())]


def value(text: str, name: str, **match: str) -> float:
    found = series(text, name, **match)
    assert len(found) == 1, f"{name}{match}: expected one series, got {found}"
    return found[0][1]


def args(**overrides) -> Namespace:
    base = dict(prometheus_addr="127.0.0.1", prometheus_port=free_port(), tls_cert=None, tls_key=None,
                tls_client_ca=None, aws_labels=False)
    return Namespace(**(base | overrides))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- AWS's series from the trn1n report (2 runtimes, tags "367" and "123", 32 cores each) --

def test_trn1n_report_gives_aws_series_per_runtime_and_core():
    raw = load(TRN1N)
    store = Store()
    publish(store, raw)
    text = exposition(store)

    for entry in raw["neuron_runtime_data"]:
        tag, report = entry["neuron_runtime_tag"], entry["report"]
        in_use = report["neuroncore_counters"]["neuroncores_in_use"]
        got = {labels["neuroncore"]: v for labels, v in series(text, "neuroncore_utilization_ratio", runtime_tag=tag)}
        assert got == pytest.approx({core: c["neuroncore_utilization"] / 100 for core, c in in_use.items()})
        used = report["memory_used"]["neuron_runtime_used_bytes"]
        for location in ("host", "neuron_device"):
            assert value(text, "neuron_runtime_memory_used_bytes", runtime_tag=tag,
                         memory_location=location) == used[location]
        per_core = used["usage_breakdown"]["neuroncore_memory_usage"]
        for core, parts in per_core.items():
            for part, nbytes in parts.items():
                assert value(text, f"neuroncore_memory_usage_{part}", runtime_tag=tag, neuroncore=core,
                             memory_location="None") == nbytes
        summary = report["execution_stats"]["execution_summary"]
        for status, count in summary.items():
            assert value(text, "execution_status_total", runtime_tag=tag, status_type=status) == count
        for error, count in report["execution_stats"]["error_summary"].items():
            assert value(text, "execution_errors_total", runtime_tag=tag, error_type=error) == count

    assert len(series(text, "neuroncore_utilization_ratio")) == 64
    assert value(text, "neuroncore_utilization_ratio", runtime_tag="367", neuroncore="6") == pytest.approx(0.414)
    # latency_stats are null in this period: no stale percentile is invented
    assert series(text, "execution_latency_seconds") == []


def test_trn1n_system_instance_and_hardware_series():
    raw = load(TRN1N)
    store = Store()
    publish(store, raw)
    text = exposition(store)
    system = raw["system_data"]
    assert value(text, "system_vcpu_count") == len(system["vcpu_usage"]["usage_data"]) == 128
    avg = system["vcpu_usage"]["average_usage"]
    assert value(text, "system_vcpu_usage_ratio", usage_type="user") == pytest.approx((avg["user"] + avg["nice"]) / 100)
    for key in ("memory_total_bytes", "memory_used_bytes", "swap_total_bytes", "swap_used_bytes"):
        assert value(text, f"system_{key}") == system["memory_info"][key]
    for device in system["neuron_hw_counters"]["neuron_devices"]:
        for event in ("mem_ecc_corrected", "mem_ecc_uncorrected", "sram_ecc_corrected", "sram_ecc_uncorrected"):
            assert value(text, "hardware_ecc_events_total", event_type=event,
                         neuron_device_index=str(device["neuron_device_index"])) == device[event]
    info = series(text, "instance_info")
    assert info == [({"instance_name": "DummyNodeName", "instance_id": "i-09db9b55e0095612f",
                      "instance_type": "trn1n.32xlarge", "availability_zone": "us-east-1c",
                      "region": "us-east-1", "subnet_id": "subnet-06a7754948e8a000f"}, 1.0)]
    assert series(text, "neuron_hardware_info") == [
        ({"neuron_device_count": "16", "neuroncore_per_device_count": "2"}, 1.0)]
    # instance labels stay on instance_info unless --aws-labels
    assert all("instance_id" not in labels for name, labels, _ in samples(text) if name != "instance_info")


def test_aws_labels_put_instance_labels_on_every_series():
    store = Store()
    publish(store, load(TRN1N))
    text = exposition(store, aws_labels=True)
    every = samples(text)
    assert every and all(labels.get("instance_id") == "i-09db9b55e0095612f" and labels.get("region") == "us-east-1"
                         for _, labels, _ in every)


def test_runtimes_sharing_a_tag_both_appear():
    raw = load(TRN1N)
    second = raw["neuron_runtime_data"][1]
    second["neuron_runtime_tag"] = "367"
    second["report"]["neuroncore_counters"]["neuroncores_in_use"]["7"]["neuroncore_utilization"] = 55.0
    second["report"]["memory_used"]["neuron_runtime_used_bytes"]["neuron_device"] = 1234
    store = Store()
    publish(store, raw)
    text = exposition(store)

    runtimes = {labels["runtime"] for labels, _ in series(text, "neuron_runtime_memory_used_bytes", runtime_tag="367")}
    assert len(runtimes) == 2
    device = sorted(v for _, v in series(text, "neuron_runtime_memory_used_bytes", runtime_tag="367",
                                         memory_location="neuron_device"))
    assert device == [1234, 3541303936]
    core7 = sorted(v for _, v in series(text, "neuroncore_utilization_ratio", runtime_tag="367", neuroncore="7"))
    assert core7 == pytest.approx([0.0, 0.55])
    assert len(series(text, "neuroncore_utilization_ratio", runtime_tag="367")) == 64
    assert len(series(text, "execution_status_total", runtime_tag="367", status_type="completed")) == 2


def test_counters_add_up_reports_and_vanished_runtimes_disappear():
    raw = load(TRN1N)
    store = Store()
    publish(store, raw, when=1.0)
    publish(store, raw, when=6.0)
    text = exposition(store)
    assert value(text, "execution_status_total", runtime_tag="123", status_type="completed") == 4
    assert value(text, "execution_errors_total", runtime_tag="367", error_type="generic") == 4
    assert value(text, "hardware_ecc_events_total", event_type="mem_ecc_corrected", neuron_device_index="3") == 4

    only_123 = copy.deepcopy(raw)
    only_123["neuron_runtime_data"] = [r for r in raw["neuron_runtime_data"] if r["neuron_runtime_tag"] == "123"]
    publish(store, only_123, when=11.0)
    text = exposition(store)
    assert all(labels.get("runtime_tag") != "367" for _, labels, _ in samples(text))
    assert value(text, "execution_status_total", runtime_tag="123", status_type="completed") == 6


def test_group_with_error_is_flagged_not_left_stale():
    raw = load(V1)
    store = Store()
    publish(store, raw)
    assert value(exposition(store), "neuron_runtime_vcpu_usage_ratio", runtime_tag="0", usage_type="user") \
        == pytest.approx(0.4201)

    raw["neuron_runtime_data"][0]["report"]["neuron_runtime_vcpu_usage"]["error"] = "open /proc/1/stat: no such file"
    publish(store, raw)
    text = exposition(store)
    assert series(text, "neuron_runtime_vcpu_usage_ratio") == []
    groups = [labels["group"] for labels, v in series(text, "neurontui_report_group_error") if v == 1]
    assert any("neuron_runtime_vcpu_usage" in group for group in groups)


def test_v1_report_latency_percentiles_and_cores():
    raw = load(V1)
    store = Store()
    publish(store, raw)
    text = exposition(store)
    latency = raw["neuron_runtime_data"][0]["report"]["inference_stats"]["latency_stats"]["total_latency"]
    got = {labels["percentile"]: v for labels, v in series(text, "execution_latency_seconds")}
    assert got == pytest.approx(latency)
    cores = {labels["core"]: v for labels, v in series(text, "neurontui_core_utilization_ratio", kind="neuroncore")}
    assert cores == pytest.approx({"0": 0.4201, "1": 0.4202, "2": 0.4203, "3": 0.4204})
    assert value(text, "execution_status_total", status_type="completed") == 123


# -- neurontui's own series ---------------------------------------------------------------

def test_source_down_drops_stale_values_and_reports_health():
    store = Store()
    publish(store, load(V1))
    text = exposition(store)
    assert value(text, "neurontui_up") == 1
    assert value(text, "neurontui_source_up", source="neuron-monitor") == 1

    store.source_down("neuron-monitor", "neuron-monitor exited with status 1")
    text = exposition(store)
    assert value(text, "neurontui_up") == 0
    assert value(text, "neurontui_source_up", source="neuron-monitor") == 0
    assert value(text, "neurontui_source_restarts_total", source="neuron-monitor") == 1
    assert series(text, "neuroncore_utilization_ratio") == []
    assert value(text, "neurontui_source_last_sample_age_seconds", source="neuron-monitor") >= 0


def test_gpu_host_snapshot_has_core_and_device_memory_series_but_no_neuron_ones():
    store = Store()
    store.publish_snapshot(Snapshot(
        time=time.time(), source="host",
        cores=[Core("vcpu", 0, 0.25), Core("gpu", 0, 0.9, memory_used_bytes=3 << 30, memory_total_bytes=16 << 30)],
        memory=Memory(host_used_bytes=1 << 30, host_total_bytes=8 << 30), vcpu_count=1))
    text = exposition(store)
    assert value(text, "neurontui_core_utilization_ratio", kind="gpu", core="0") == 0.9
    assert value(text, "neurontui_core_utilization_ratio", kind="vcpu", core="0") == 0.25
    assert value(text, "neurontui_device_memory_used_bytes", kind="gpu", core="0") == 3 << 30
    assert value(text, "neurontui_device_memory_total_bytes", kind="gpu", core="0") == 16 << 30
    assert value(text, "system_memory_total_bytes") == 8 << 30
    names = {name for name, _, _ in samples(text)}
    assert not names & {"neuroncore_utilization_ratio", "instance_info", "neuron_hardware_info"}


def test_workload_counters_histogram_and_info():
    store = Store()
    store.workload_starting({"model": "cnn", "backend": "cpu", "mode": "dp", "batch": 4}, pid=42)
    store.workload_event(Hello(pid=42, model="cnn", backend="cpu", mode="dp", batch=4, concurrency=2,
                               scenario="offline", precision="fp32"))
    latencies = [0.00007, 0.0003, 0.0012, 0.0012, 0.004, 0.02, 0.3, 3.0, 12.0]
    for start, chunk in ((0.0, latencies[:4]), (0.5, latencies[4:])):
        hist = LatencyHistogram()
        for seconds in chunk:
            hist.record(seconds)
        store.workload_event(Window.from_histogram(start, start + 0.5, hist, errors=1, per_core_completed=[]))
    text = exposition(store)

    assert value(text, "neurontui_workload_requests_total") == len(latencies)
    assert value(text, "neurontui_workload_errors_total") == 2
    # the live rate merges the last few seconds of windows: both of these
    assert value(text, "neurontui_workload_throughput_requests_per_second") == pytest.approx(9 / 1.0)
    buckets = {labels["le"]: v for labels, v in series(text, "neurontui_workload_latency_seconds_bucket")}
    for le in LATENCY_BUCKETS:
        assert buckets[repr(le)] == sum(1 for s in latencies if s <= le), le
    assert buckets["+Inf"] == len(latencies)
    assert value(text, "neurontui_workload_latency_seconds_sum") == pytest.approx(sum(latencies))
    assert series(text, "neurontui_workload_info") == [({"model": "cnn", "backend": "cpu", "mode": "dp", "batch": "4",
                                                         "concurrency": "2", "scenario": "offline",
                                                         "precision": "fp32"}, 1.0)]
    assert value(text, "neurontui_workload_state", state="running") == 1
    assert value(text, "neurontui_workload_state", state="crashed") == 0

    store.workload_state("crashed", exit_code=-11)  # the child died: its figures stay, its state says so
    text = exposition(store)
    assert value(text, "neurontui_workload_state", state="crashed") == 1
    assert value(text, "neurontui_workload_state", state="running") == 0
    assert value(text, "neurontui_workload_requests_total") == len(latencies)
    store.workload_starting({"model": "cnn", "backend": "cpu"}, pid=43)  # restarted with `r`
    text = exposition(store)
    assert value(text, "neurontui_workload_starts_total") == 2
    assert value(text, "neurontui_workload_requests_total") == 0


def test_promtool_finds_nothing_but_aws_vcpu_count_name():
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: install the Debian package 'prometheus' (CI's .ci/run does)"
    store = Store()
    publish(store, load(TRN1N))
    store.workload_starting({"model": "cnn"}, pid=1)
    hist = LatencyHistogram()
    hist.record(0.01)
    store.workload_event(Window.from_histogram(0.0, 0.5, hist, errors=0, per_core_completed=[]))
    for aws_labels in (False, True):
        result = subprocess.run([promtool, "check", "metrics"], input=exposition(store, aws_labels),
                                capture_output=True, text=True, timeout=60)
        problems = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        # AWS's bridge named it system_vcpu_count; dashboards query that name, so it stays.
        assert all(p.startswith("system_vcpu_count ") for p in problems), problems


# -- the endpoint ----------------------------------------------------------------------

def test_endpoint_serves_metrics_and_landing_page():
    store = Store()
    publish(store, load(V1))
    exporter = start_exporter(store, args())
    try:
        assert exporter.url.startswith("http://127.0.0.1:") and exporter.url.endswith("/metrics")
        with urllib.request.urlopen(exporter.url, timeout=10) as response:
            text = response.read().decode()
        assert value(text, "neuroncore_utilization_ratio", neuroncore="2") == pytest.approx(0.4203)
        with urllib.request.urlopen(exporter.url.removesuffix("metrics"), timeout=10) as response:
            page = response.read().decode()
        assert 'href="/metrics"' in page
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(exporter.url.removesuffix("metrics") + "nothing", timeout=10)
        assert missing.value.code == 404
    finally:
        exporter.close()


def test_port_zero_turns_the_endpoint_off():
    assert start_exporter(Store(), args(prometheus_port=0)) is None


def test_port_in_use_raises_one_line_naming_the_address(busy_port):
    port = busy_port
    with pytest.raises(ExporterError) as error:
        start_exporter(Store(), args(prometheus_port=port))
    message = str(error.value)
    assert f"127.0.0.1:{port}" in message and "in use" in message and "\n" not in message


def test_close_frees_the_port():
    a = args()
    start_exporter(Store(), a).close()
    start_exporter(Store(), a).close()


# -- deploy/: the artifacts users copy must match what the exporter serves ---------------

DEPLOY = FIXTURES.parent.parent / "deploy"


def dashboard_queries() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def full_exposition() -> str:
    """Everything the exporter can serve at once: a Neuron report, a GPU core and a workload."""
    store = Store()
    snapshot = parse_report(load(TRN1N), time=time.time()).snapshot
    snapshot.cores.append(Core("gpu", 0, 0.5, memory_used_bytes=1, memory_total_bytes=2))
    snapshot.runtimes[0].latency_seconds = {"p50": 0.01, "p99": 0.02}  # null in this report
    store.publish_snapshot(snapshot)
    store.workload_starting({"model": "cnn"}, pid=1)
    hist = LatencyHistogram()
    hist.record(0.01)
    store.workload_event(Window.from_histogram(0.0, 0.5, hist, errors=0, per_core_completed=[]))
    return exposition(store)


def test_dashboard_queries_only_served_series_and_labels():
    text = full_exposition()
    labels_of: dict[str, set[str]] = {}
    for name, labels, _ in samples(text):
        labels_of.setdefault(name, set()).update(labels)
    queries = dashboard_queries()
    assert queries
    for query in queries:
        names = re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", query)
        assert names, query
        for name in names:
            assert name in labels_of, f"dashboard queries {name}, which the exporter does not serve"
        grouped = {label.strip() for group in re.findall(r"by \(([^)]*)\)", query) for label in group.split(",")}
        for label in grouped - {"le"}:
            assert any(label in labels_of[name] for name in names), f"{query}: no series has label {label!r}"


def test_prometheus_config_is_valid():
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: install the Debian package 'prometheus' (CI's .ci/run does)"
    result = subprocess.run([promtool, "check", "config", str(DEPLOY / "prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_example_is_consistent():
    docs = {doc["kind"]: doc for path in (DEPLOY / "kubernetes").glob("*.yaml")
            for doc in yaml.safe_load_all(path.read_text()) if doc}
    # the HPA's external metric comes from an adapter rule over series Prometheus scrapes from the DaemonSet
    pod = docs["DaemonSet"]["spec"]["template"]
    container = pod["spec"]["containers"][0]
    flags, _ = parse_cli(container["args"])
    assert flags.headless and flags.no_workload and flags.prometheus_addr == "0.0.0.0"
    assert container["ports"][0]["containerPort"] == flags.prometheus_port
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(flags.prometheus_port)

    config_maps = [doc["data"] for path in (DEPLOY / "kubernetes").glob("*.yaml")
                   for doc in yaml.safe_load_all(path.read_text()) if doc and doc["kind"] == "ConfigMap"]
    scrape_maps = [yaml.safe_load(data["prometheus.yml"]) for data in config_maps if "prometheus.yml" in data]
    adapter_maps = [yaml.safe_load(data["config.yaml"]) for data in config_maps if "config.yaml" in data]
    assert len(scrape_maps) == len(adapter_maps) == 1
    job = scrape_maps[0]["scrape_configs"][0]["job_name"]
    rules = {rule["name"]["as"]: rule for rule in adapter_maps[0]["externalRules"]}
    external = docs["HorizontalPodAutoscaler"]["spec"]["metrics"][0]["external"]
    rule = rules[external["metric"]["name"]]
    assert f'job="{job}"' in rule["seriesQuery"]
    served = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", rule["seriesQuery"]).group(1)
    text = full_exposition()
    for label in external["metric"]["selector"]["matchLabels"]:
        assert any(name == served and label in labels for name, labels, _ in samples(text)), label


def test_a_failing_scrape_answers_500_and_logs_once_instead_of_printing_a_traceback(capfd):
    store = Store()
    # a source bug: a value that is no number
    broken = Core("gpu", 0, 0.5, memory_used_bytes="lots")
    store.publish_snapshot(Snapshot(time=time.time(), source="host", cores=[broken]))
    exporter = start_exporter(store, args())
    try:
        for _ in range(2):
            with pytest.raises(urllib.error.HTTPError) as failed:
                urllib.request.urlopen(exporter.url, timeout=10)
            assert failed.value.code == 500
        assert [e.text for e in store.events if e.source == "exporter"] == [failed.value.read().decode().strip()]
        fixed = Core("gpu", 0, 0.5, memory_used_bytes=1)
        store.publish_snapshot(Snapshot(time=time.time(), source="host", cores=[fixed]))
        with urllib.request.urlopen(exporter.url, timeout=10) as response:
            assert value(response.read().decode(), "neurontui_device_memory_used_bytes", kind="gpu", core="0") == 1
    finally:
        exporter.close()
    assert "Traceback" not in capfd.readouterr().err


def test_copies_and_bucket_series_follow_the_run_record():
    from workloads.protocol import Ready

    store = Store()
    store.workload_starting({"model": "bert", "backend": "cpu", "copies": "2", "buckets": "32,64"}, pid=42)
    store.workload_event(Ready(params=1, copies=2, bytes_per_copy=400 << 20, copies_fit=30, bucket_lengths=[32, 64]))
    for start, per_copy, per_bucket in ((0.0, [2, 1], [1, 2]), (0.5, [1, 2], [3, 0])):
        hist, buckets = LatencyHistogram(), []
        for n in per_bucket:
            bucket = LatencyHistogram()
            if n:
                bucket.record(0.01, n)
            hist.merge(bucket)
            buckets.append(bucket.to_dict())
        window = Window.from_histogram(start, start + 0.5, hist, errors=0, per_core_completed=[])
        window.per_copy_completed, window.per_copy_latency_seconds = per_copy, [0.01 * n for n in per_copy]
        window.bucket_completed, window.bucket_latency = per_bucket, buckets
        window.real_tokens, window.pad_tokens = 100, 25
        store.workload_event(window)
    text = exposition(store)
    assert value(text, "neurontui_workload_copies") == 2
    assert value(text, "neurontui_workload_bytes_per_copy") == 400 << 20
    assert value(text, "neurontui_workload_copies_fit") == 30
    assert series(text, "neurontui_workload_copy_requests_total") == [({"copy": "0"}, 3.0), ({"copy": "1"}, 3.0)]
    assert series(text, "neurontui_workload_bucket_requests_total") == [({"bucket_length": "32"}, 4.0),
                                                                        ({"bucket_length": "64"}, 2.0)]
    assert value(text, "neurontui_workload_padding_ratio") == 0.25


def test_a_run_without_copies_or_buckets_has_no_such_series():
    store = Store()
    store.workload_starting({"model": "cnn", "backend": "cpu"}, pid=42)
    hist = LatencyHistogram()
    hist.record(0.01, 3)
    store.workload_event(Window.from_histogram(0.0, 0.5, hist, errors=0, per_core_completed=[]))
    names = {name for name, _, _ in samples(exposition(store))}
    assert not {n for n in names if "cop" in n or "bucket_requests" in n or "padding" in n}
