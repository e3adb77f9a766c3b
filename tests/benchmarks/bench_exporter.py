"""Exporter cost at 64 NeuronCores x 4 runtimes, against AWS's approach in the same run.

    python3 tests/benchmarks/bench_exporter.py [--scrapes 1000] [--reports 200]

neurontui: each report is parsed and published to the Store; a scrape builds every family
from the Store (StoreCollector). AWS's approach (re-implemented here from the series table
in the reference notes): each report is parsed and mutates long-lived prometheus_client
Gauges/Counters, instance labels on every series; a scrape serializes those. Timings on a
shared machine are noisy, so the figures that matter are the ratios.
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from prometheus_client import CollectorRegistry, Counter, Gauge, Info, generate_latest  # noqa: E402

from neurontui.exporter_families import StoreCollector  # noqa: E402
from neurontui.sources.neuron_report import parse_report  # noqa: E402
from neurontui.store import Store  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "v2_trn1n_32xlarge_2runtimes.json"
CORES, RUNTIMES, DEVICES = 64, 4, 32


def big_report() -> str:
    """The trn1n report widened to 4 runtimes, each listing 64 NeuronCores, and 32 devices."""
    report = json.loads(FIXTURE.read_text())
    template = report["neuron_runtime_data"][0]
    runtimes = []
    for n in range(RUNTIMES):
        runtime = copy.deepcopy(template)
        runtime["neuron_runtime_tag"] = str(100 + n)
        body = runtime["report"]
        core0 = body["neuroncore_counters"]["neuroncores_in_use"]["0"]
        body["neuroncore_counters"]["neuroncores_in_use"] = {
            str(c): dict(core0, neuroncore_utilization=(c * 7 + n) % 100) for c in range(CORES)}
        usage = body["memory_used"]["neuron_runtime_used_bytes"]["usage_breakdown"]
        usage["neuroncore_memory_usage"] = {str(c): dict(usage["neuroncore_memory_usage"]["0"]) for c in range(CORES)}
        body["execution_stats"]["latency_stats"]["total_latency"] = {
            p: 0.001 * (i + 1) for i, p in enumerate(("p0", "p1", "p25", "p50", "p75", "p99", "p100"))}
        runtimes.append(runtime)
    report["neuron_runtime_data"] = runtimes
    device0 = report["system_data"]["neuron_hw_counters"]["neuron_devices"][0]
    report["system_data"]["neuron_hw_counters"]["neuron_devices"] = [
        dict(device0, neuron_device_index=d) for d in range(DEVICES)]
    return json.dumps(report)


class AwsStyleBridge:
    """AWS's approach: global metrics, mutated per report, instance labels on every series."""

    INSTANCE = (("instance_name", "instance_name"), ("instance_id", "instance_id"), ("instance_type", "instance_type"),
                ("availability_zone", "instance_availability_zone"), ("region", "instance_region"),
                ("subnet_id", "subnet_id"))

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.metrics: dict[str, object] = {}

    def _metric(self, kind, name: str, labels: list[str]):
        if name not in self.metrics:
            self.metrics[name] = kind(name, name.replace("_", " "), labels, registry=self.registry)
        return self.metrics[name]

    def ingest(self, line: str) -> None:
        report = json.loads(line)
        info = report.get("instance_info") or {}
        base = {label: str(info.get(key, "")) for label, key in self.INSTANCE}
        for runtime in report.get("neuron_runtime_data") or []:
            labels = dict(base, runtime_tag=runtime["neuron_runtime_tag"])  # same tag: later one overwrites
            body = runtime["report"]
            group = body.get("neuroncore_counters", {})
            if not group.get("error"):
                gauge = self._metric(Gauge, "neuroncore_utilization_ratio", [*labels, "neuroncore"])
                for core, counters in group["neuroncores_in_use"].items():
                    gauge.labels(**labels, neuroncore=core).set(counters["neuroncore_utilization"] / 100)
            group = body.get("memory_used", {})
            if not group.get("error"):
                used = group["neuron_runtime_used_bytes"]
                gauge = self._metric(Gauge, "neuron_runtime_memory_used_bytes", [*labels, "memory_location"])
                for location in ("host", "neuron_device"):
                    gauge.labels(**labels, memory_location=location).set(used[location])
                for core, parts in used["usage_breakdown"]["neuroncore_memory_usage"].items():
                    for part, nbytes in parts.items():
                        gauge = self._metric(Gauge, f"neuroncore_memory_usage_{part}",
                                             [*labels, "memory_location", "neuroncore"])
                        gauge.labels(**labels, memory_location="None", neuroncore=core).set(nbytes)
            group = body.get("execution_stats", {})
            if not group.get("error"):
                counter = self._metric(Counter, "execution_errors_total", [*labels, "error_type"])
                for error_type, count in group["error_summary"].items():
                    counter.labels(**labels, error_type=error_type).inc(count)
                counter = self._metric(Counter, "execution_status_total", [*labels, "status_type"])
                for status_type, count in group["execution_summary"].items():
                    counter.labels(**labels, status_type=status_type).inc(count)
                latency = group["latency_stats"]["total_latency"]
                if latency is not None:
                    gauge = self._metric(Gauge, "execution_latency_seconds", [*labels, "percentile"])
                    for percentile, seconds in latency.items():
                        gauge.labels(**labels, percentile=percentile).set(seconds)
            group = body.get("neuron_runtime_vcpu_usage", {})
            if not group.get("error"):
                gauge = self._metric(Gauge, "neuron_runtime_vcpu_usage_ratio", [*labels, "usage_type"])
                for usage_type, percent in group["vcpu_usage"].items():
                    gauge.labels(**labels, usage_type=usage_type).set(percent / 100)
        system = report.get("system_data") or {}
        group = system.get("vcpu_usage", {})
        if not group.get("error"):
            self._metric(Gauge, "system_vcpu_count", list(base)).labels(**base).set(len(group["usage_data"]))
            avg = group["average_usage"]
            gauge = self._metric(Gauge, "system_vcpu_usage_ratio", [*base, "usage_type"])
            gauge.labels(**base, usage_type="user").set((avg["user"] + avg["nice"]) / 100)
            gauge.labels(**base, usage_type="system").set(
                (avg["system"] + avg["io_wait"] + avg["irq"] + avg["soft_irq"]) / 100)
        group = system.get("memory_info", {})
        if not group.get("error"):
            for key in ("memory_total_bytes", "memory_used_bytes", "swap_total_bytes", "swap_used_bytes"):
                self._metric(Gauge, f"system_{key}", list(base)).labels(**base).set(group[key])
        group = system.get("neuron_hw_counters", {})
        if not group.get("error"):
            counter = self._metric(Counter, "hardware_ecc_events_total", [*base, "event_type", "neuron_device_index"])
            for device in group.get("neuron_devices") or []:
                for event_type in ("mem_ecc_corrected", "mem_ecc_uncorrected", "sram_ecc_corrected",
                                   "sram_ecc_uncorrected"):
                    counter.labels(**base, event_type=event_type,
                                   neuron_device_index=str(device["neuron_device_index"])).inc(device[event_type])
        if "instance" not in self.metrics:
            self.metrics["instance"] = Info("instance", "EC2 instance information", registry=self.registry)
        self.metrics["instance"].info(base)


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=1000)
    parser.add_argument("--reports", type=int, default=200)
    opts = parser.parse_args()
    line = big_report()

    store = Store()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store))
    labelled = CollectorRegistry(auto_describe=False)  # --aws-labels: instance labels on every series, like AWS
    labelled.register(StoreCollector(store, aws_labels=True))
    bridge = AwsStyleBridge()

    def ingest_ours() -> None:
        store.publish_snapshot(parse_report(line).snapshot)

    # interleave the two so that machine noise hits both alike
    ingest = {"neurontui": [], "aws-style": []}
    scrape = {"neurontui": [], "aws-style": [], "neurontui --aws-labels": []}
    for _ in range(opts.reports):
        ingest["neurontui"] += timed(ingest_ours, 1)
        ingest["aws-style"] += timed(lambda: bridge.ingest(line), 1)
    for _ in range(opts.scrapes):
        scrape["neurontui"] += timed(lambda: generate_latest(registry), 1)
        scrape["aws-style"] += timed(lambda: generate_latest(bridge.registry), 1)
        scrape["neurontui --aws-labels"] += timed(lambda: generate_latest(labelled), 1)

    series = {name: generate_latest(reg).decode().count("\n") for name, reg in
              (("neurontui", registry), ("aws-style", bridge.registry))}
    print(f"report: {CORES} NeuronCores x {RUNTIMES} runtimes, {DEVICES} devices, {len(line) / 1024:.0f} KiB JSON")
    print(f"exposition lines: neurontui {series['neurontui']}, aws-style {series['aws-style']}")
    print(f"{'':24}{'neurontui':>12}{'aws-style':>12}{'ratio':>8}")
    for title, data in (("ingest one report p50", ingest), ("scrape p50", scrape)):
        ours, theirs = statistics.median(data["neurontui"]), statistics.median(data["aws-style"])
        print(f"{title:24}{ours * 1e3:>10.2f}ms{theirs * 1e3:>10.2f}ms{ours / theirs:>8.2f}")
    for title, data in (("ingest one report p99", ingest), ("scrape p99", scrape)):
        ours, theirs = pct(data["neurontui"], 99), pct(data["aws-style"], 99)
        print(f"{title:24}{ours * 1e3:>10.2f}ms{theirs * 1e3:>10.2f}ms{ours / theirs:>8.2f}")
    for title, q in (("scrape --aws-labels p50", 50), ("scrape --aws-labels p99", 99)):
        ours, theirs = pct(scrape["neurontui --aws-labels"], q), pct(scrape["aws-style"], q)
        print(f"{title:24}{ours * 1e3:>10.2f}ms{theirs * 1e3:>10.2f}ms{ours / theirs:>8.2f}")
    ours = statistics.median(ingest["neurontui"]) + statistics.median(scrape["neurontui"])
    theirs = statistics.median(ingest["aws-style"]) + statistics.median(scrape["aws-style"])
    print(f"{'ingest + scrape p50':24}{ours * 1e3:>10.2f}ms{theirs * 1e3:>10.2f}ms{ours / theirs:>8.2f}")
    print("ratio = neurontui / aws-style (below 1: neurontui is cheaper)")


if __name__ == "__main__":
    main()
