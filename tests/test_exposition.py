"""The /metrics body built once per Store change: the same bytes as prometheus_client's
generate_latest over the same collector, in every format, after every kind of change."""
from __future__ import annotations

import copy
import gzip
import json
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from neurontui.exporter import start_exporter
from neurontui.exporter_families import StoreCollector
from neurontui.exposition import Exposition
from neurontui.sources.neuron_report import parse_report
from neurontui.store import Store
from tests.conftest import FIXTURES
from tests.test_exporter import args, value
from workloads.protocol import Hello, LatencyHistogram, Window

TRN1N = json.loads((FIXTURES / "v2_trn1n_32xlarge_2runtimes.json").read_text())
V1 = json.loads((FIXTURES / "v1_from_docs.json").read_text())
OPENMETRICS = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"


class Clock:
    now = 1_700_000_100.0

    def __call__(self) -> float:
        return self.now


def publish(store: Store, report: dict, when: float) -> None:
    store.publish_snapshot(parse_report(report, time=when).snapshot)


def window(completed: int) -> Window:
    hist = LatencyHistogram()
    hist.record(0.004, completed)
    return Window.from_histogram(0.0, 0.5, hist, errors=1, per_core_completed=[completed])


def busier(report: dict, idle: str = "0") -> dict:
    """Core 0 at 87.5%; the idle core 1 reported as `idle` ("-0.0" prints apart from 0.0)."""
    report = copy.deepcopy(report)
    in_use = report["neuron_runtime_data"][0]["report"]["neuroncore_counters"]["neuroncores_in_use"]
    in_use["0"]["neuroncore_utilization"] = 87.5
    in_use["1"]["neuroncore_utilization"] = float(idle)
    return report


# Each step changes the Store the way a run does; the cached body must follow every one.
STEPS = [
    ("nothing yet", lambda store: None),
    ("a trn1n report", lambda store: publish(store, TRN1N, 1_700_000_000.0)),
    ("a changed report", lambda store: publish(store, busier(TRN1N), 1_700_000_001.0)),
    ("a zero turned -0.0", lambda store: publish(store, busier(TRN1N, idle="-0.0"), 1_700_000_002.0)),
    ("a workload", lambda store: (store.workload_starting({"model": "cnn"}, 42),
                                  store.workload_event(Hello(pid=42, model="cnn", backend="cpu")),
                                  store.workload_event(window(40)))),
    ("a bad line", lambda store: store.bad_line("neuron-monitor", "{oops", "not JSON")),
    ("the source down", lambda store: store.source_down("neuron-monitor", "exited with status 1")),
    ("a v1 report", lambda store: publish(store, V1, 1_700_000_050.0)),
]


@pytest.mark.parametrize("aws_labels", [False, True])
def test_cached_body_is_generate_latest_after_every_change(aws_labels):
    store, clock = Store(), Clock()
    collector = StoreCollector(store, aws_labels=aws_labels, clock=clock)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    exposition = Exposition(store, collector)
    bodies = []
    for _name, step in STEPS:
        step(store)
        for _ in range(2):  # the second scrape is served from the cache, a second later
            clock.now += 1.0
            headers, text = exposition.response("text/plain", None)
            assert text == generate_latest(registry)
            assert dict(headers)["Content-Type"].startswith("text/plain; version=0.0.4")
            headers, zipped = exposition.response(OPENMETRICS, "gzip, deflate")
            assert dict(headers)["Content-Encoding"] == "gzip"
            assert gzip.decompress(zipped) == generate_openmetrics(registry)
            assert dict(headers)["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
        bodies.append(text)
    assert len(set(bodies)) == len(STEPS)  # every step showed in the body
    exposition.close()


def test_only_the_sample_age_moves_between_changes():
    store, clock = Store(), Clock()
    collector = StoreCollector(store, clock=clock)
    exposition = Exposition(store, collector)
    publish(store, TRN1N, clock.now - 2.0)
    first = exposition.response(None, None)[1].decode()
    clock.now += 30.0
    later = exposition.response(None, None)[1].decode()
    age = "neurontui_source_last_sample_age_seconds"
    assert value(first, age, source="neuron-monitor") == 2.0
    assert value(later, age, source="neuron-monitor") == 32.0
    assert [line for line in first.splitlines() if age not in line] == \
        [line for line in later.splitlines() if age not in line]


def test_endpoint_serves_gzip_and_follows_the_store():
    store = Store()
    publish(store, TRN1N, 1_700_000_000.0)
    exporter = start_exporter(store, args())
    try:
        def scrape() -> str:
            request = urllib.request.Request(exporter.url, headers={"Accept-Encoding": "gzip", "Accept": OPENMETRICS})
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.headers["Content-Encoding"] == "gzip"
                return gzip.decompress(response.read()).decode()

        assert value(scrape(), "neuroncore_utilization_ratio", runtime="367", neuroncore="0") == 0.0
        publish(store, busier(TRN1N), 1_700_000_001.0)
        text = scrape()
        assert value(text, "neuroncore_utilization_ratio", runtime="367", neuroncore="0") == 0.875
        assert text.endswith("# EOF\n")
    finally:
        exporter.close()
