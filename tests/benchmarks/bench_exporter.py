"""Ingest and scrape cost against AWS's bridge, at trn1n (2 runtimes x 32 cores) and 64 cores x 4 runtimes.

    python3 tests/benchmarks/bench_exporter.py [--seconds 3] [--scrape-seconds 4] [--renders 30] [--concurrent 20]

Ingest (in process, CPU microseconds per report, best of interleaved rounds): neurontui takes
the raw line through parse_report (the typed fast path) and Source.publish into a Store that
an Exposition watches; AWS's approach (AwsStyleBridge, re-implemented from the series table
in the reference notes) json.loads the line and mutates long-lived prometheus_client
Gauges/Counters, instance labels on every series.
Scrape (real HTTP on loopback, as Prometheus asks: OpenMetrics, gzip): neurontui's Exporter
against prometheus_client's start_http_server over the bridge's registry, one new report a
second into both meanwhile (reports differ in every utilization figure, as periods do) (so neurontui re-renders after each), by 1 scraper and by
--concurrent scrapers at once from a separate process (it holds no lock of the servers');
both servers listen with the system's backlog, not socketserver's 5 (as the Exporter's server
will), so SYNs dropped under 20 scrapers (1 s retries) do not swamp the figures.
"Scrape after each report" is what a lone Prometheus pays when reports come more often than
it scrapes: the body is stale every time (rendered, in process, same encoder and gzip).
Timings on a shared machine are noisy, so the figures that matter are the ratios.
"""
from __future__ import annotations

import argparse
import copy
import gzip
import http.client
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_parse import per_call_us  # noqa: E402
from prometheus_client import CollectorRegistry, Counter, Gauge, Info, generate_latest, start_http_server  # noqa: E402
from prometheus_client.exposition import choose_encoder  # noqa: E402

from neurontui.exporter import Exporter  # noqa: E402
from neurontui.exporter_families import StoreCollector  # noqa: E402
from neurontui.exposition import Exposition  # noqa: E402
from neurontui.sources.base import Source  # noqa: E402
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


PROMETHEUS_HEADERS = {"Accept": "application/openmetrics-text;version=1.0.0;q=0.5,"
                                "text/plain;version=0.0.4;q=0.3,*/*;q=0.2", "Accept-Encoding": "gzip"}


def scraper(port: int, scrapers: int, seconds: float) -> None:
    """Runs in its own process: `scrapers` threads scraping back to back for `seconds`; prints the latencies."""
    latencies: list[float] = []
    start = threading.Barrier(scrapers)

    def scrape_loop() -> None:
        start.wait()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            connection.request("GET", "/metrics", headers=PROMETHEUS_HEADERS)
            response = connection.getresponse()
            body = response.read()
            connection.close()
            assert response.status == 200 and body, response.status
            latencies.append(time.perf_counter() - began)

    threads = [threading.Thread(target=scrape_loop) for _ in range(scrapers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps(latencies))


def scrapes(port: int, scrapers: int, seconds: float, feed) -> list[float]:
    """Latencies of scrapes from a separate process while `feed` ingests a report a second."""
    stop = threading.Event()

    def feeder() -> None:
        while not stop.wait(1.0):
            feed()

    thread = threading.Thread(target=feeder, daemon=True)
    thread.start()
    try:
        out = subprocess.run([sys.executable, __file__, "--scraper", str(port), str(scrapers), str(seconds)],
                             capture_output=True, text=True, check=True)
    finally:
        stop.set()
        thread.join()
    return json.loads(out.stdout)


def bridge_response(registry) -> bytes:
    """What prometheus_client's HTTP handler does for a Prometheus scrape: choose the encoder, gzip."""
    encoder, _ = choose_encoder(PROMETHEUS_HEADERS["Accept"])
    return gzip.compress(encoder(registry))


def trn1n_report() -> str:
    return json.dumps(json.loads(FIXTURE.read_text()))


def variants(line: str, count: int = 16) -> list[str]:
    """The report with other utilization figures (NeuronCores, vCPUs), as successive periods differ."""
    out = []
    for k in range(count):
        report = json.loads(line)
        for runtime in report["neuron_runtime_data"]:
            for n, core in enumerate(runtime["report"]["neuroncore_counters"]["neuroncores_in_use"].values()):
                core["neuroncore_utilization"] = round((n * 13 + k * 7) % 1000 / 10, 1)
        for n, vcpu in enumerate(report["system_data"]["vcpu_usage"]["usage_data"].values()):
            vcpu["user"] = round((n * 11 + k * 5) % 900 / 10, 2)
            vcpu["idle"] = round(100 - vcpu["user"] - vcpu["system"], 2)
        out.append(json.dumps(report))
    return out


def measure(name: str, line: str, opts) -> None:
    lines = variants(line)
    raws = [text.encode() for text in lines]
    turn = [0]
    store = Store()
    source = Source(store)
    ours = Exporter(store, "127.0.0.1", 0)  # subscribes its Exposition, so ingest pays for the notice
    bridge = AwsStyleBridge()
    bridge_server, _ = start_http_server(0, addr="127.0.0.1", registry=bridge.registry)
    for server in (ours._server, bridge_server):  # socketserver's backlog of 5 drops SYNs of 20 scrapers (1 s retries)
        server.socket.listen(socket.SOMAXCONN)
    try:
        def ingest_ours() -> None:
            turn[0] += 1
            source.publish(parse_report(raws[turn[0] % len(raws)]).snapshot)

        def ingest_bridge() -> None:
            turn[0] += 1
            bridge.ingest(lines[turn[0] % len(lines)])

        ingest_ours()
        ingest_bridge()
        ingest = per_call_us({"neurontui": ingest_ours, "aws-style": ingest_bridge}, opts.seconds, clock=time.thread_time)
        typed = all(parse_report(raw, 0.0).snapshot == parse_report(json.loads(raw), 0.0).snapshot for raw in raws)
        # a lone Prometheus scraping less often than reports arrive finds the body stale every time
        # (in process, the same encoder and gzip as over HTTP)
        after_change = {"neurontui": [], "aws-style": []}
        for _ in range(opts.renders):
            ingest_ours()
            after_change["neurontui"] += timed(lambda: ours.exposition.response(PROMETHEUS_HEADERS["Accept"], "gzip"), 1)
            ingest_bridge()
            after_change["aws-style"] += timed(lambda: bridge_response(bridge.registry), 1)
        results = {}
        for scrapers in (1, opts.concurrent):
            for who, port, feed in (("neurontui", ours.port, ingest_ours),
                                    ("aws-style", bridge_server.server_address[1], ingest_bridge)):
                results[who, scrapers] = scrapes(port, scrapers, opts.scrape_seconds, feed)
    finally:
        ours.close()
        bridge_server.shutdown()
        bridge_server.server_close()
    print(f"\n{name}: {len(raws[0]) / 1024:.0f} KiB report (typed path gives the tolerant Snapshot: {typed})")
    print(f"{'':34}{'neurontui':>12}{'aws-style':>12}{'aws/ours':>10}")
    us, them = ingest["neurontui"], ingest["aws-style"]
    print(f"{'ingest per report (decode incl.)':34}{us:>10.0f}us{them:>10.0f}us{them / us:>9.1f}x")
    us, them = statistics.median(after_change["neurontui"]), statistics.median(after_change["aws-style"])
    print(f"{'scrape after each report, p50':34}{us * 1e3:>10.2f}ms{them * 1e3:>10.2f}ms{them / us:>9.1f}x")
    for scrapers in (1, opts.concurrent):
        n = len(results["neurontui", scrapers]), len(results["aws-style", scrapers])
        print(f"  {scrapers} scraper{'s' if scrapers > 1 else ''} for {opts.scrape_seconds:g} s, a report a second: "
              f"{n[0]} and {n[1]} scrapes")
        for q in (50, 99):
            us, them = pct(results["neurontui", scrapers], q), pct(results["aws-style", scrapers], q)
            title = f"scrape p{q}, {scrapers} scraper{'s' if scrapers > 1 else ''}"
            print(f"{title:34}{us * 1e3:>10.2f}ms{them * 1e3:>10.2f}ms{them / us:>9.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time spent measuring ingest, per shape")
    parser.add_argument("--scrape-seconds", type=float, default=4.0, help="each scrape run, per server and shape")
    parser.add_argument("--renders", type=int, default=30, help="scrapes right after a new report, per shape")
    parser.add_argument("--concurrent", type=int, default=20)
    parser.add_argument("--scraper", nargs=3, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.scraper:
        port, scrapers, seconds = opts.scraper
        scraper(int(port), int(scrapers), float(seconds))
        return
    # a typed-path exposition equals prometheus_client's over the same collector: what is timed is what is served
    store = Store()
    store.publish_snapshot(parse_report(big_report()).snapshot)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector := StoreCollector(store, clock=lambda: 0.0))
    assert Exposition(store, collector).response(None, None)[1] == generate_latest(registry)
    measure("trn1n, 2 runtimes x 32 NeuronCores, 128 vCPUs", trn1n_report(), opts)
    measure(f"{CORES} NeuronCores x {RUNTIMES} runtimes, {DEVICES} devices", big_report(), opts)
    print("\naws/ours: how many times cheaper neurontui is (targets: ingest >= 10x at both shapes, "
          f"scrape p99 >= 10x at {CORES}x{RUNTIMES} with {opts.concurrent} scrapers)")


if __name__ == "__main__":
    main()
