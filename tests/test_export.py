"""Export files: rows measured honestly, and JSON/CSV/Markdown that open in the tools users use."""
import csv
import io
import json
import os

import jsonschema
import pytest

from neurontui.export.rows import build_row
from neurontui.export.schema import COLUMNS, new_document
from neurontui.export.writers import check_writable, render, write_atomic
from neurontui.store import Store
from neurontui.telemetry import Core, Memory, Snapshot
from tests.conftest import ROOT
from workloads.config import WorkloadConfig
from workloads.protocol import Hello, LatencyHistogram, Phase, Ready, Window

SCHEMA = json.loads((ROOT / "docs" / "export-schema.json").read_text())
HOST = {"hostname": "box", "instance_type": "inf1.xlarge", "cpu_model": "AMD EPYC", "cpu_count": 4,
        "gpu_name": None, "gpu_count": 0, "neuron_device_count": 1, "neuroncore_count": 4}


def measured_store(window_rates, latency=0.002, window_seconds=0.5, batch=1):
    """A Store that received a real child's event sequence: hello, ready, then windows."""
    store = Store()
    store.workload_starting({"model": "cnn"}, pid=1)
    store.workload_event(Hello(pid=1, model="cnn", backend="cpu", mode="single", batch=batch, precision="fp32"))
    store.workload_event(Ready(params=3165826, cores_used=1, compile_seconds=0.4, load_seconds=0.1,
                               device_name="AMD EPYC"))
    start = 1000.0
    for rate in window_rates:
        hist = LatencyHistogram()
        for _ in range(int(rate * window_seconds / batch)):
            hist.record(latency, batch)
        store.workload_event(Window.from_histogram(start, start + window_seconds, hist, 0, [hist.count]))
        start += window_seconds
    return store


def row_of(store, **config):
    cfg = WorkloadConfig(model="cnn", backend="cpu", **config)
    return build_row(store.workload, cfg, HOST, "ok", None, "2026-11-28T00:00:00Z")


def test_row_throughput_is_completed_over_measured_time():
    row = row_of(measured_store([400, 420, 410, 405]))
    assert row["completed"] == 200 + 210 + 205 + 202
    assert row["duration_seconds"] == pytest.approx(2.0)
    assert row["throughput_per_second"] == pytest.approx(row["completed"] / row["duration_seconds"])
    assert row["latency_p50_seconds"] == pytest.approx(0.002, rel=0.005)
    assert row["latency_count"] == row["completed"]
    assert row["params"] == 3165826 and row["host_label"] == "inf1.xlarge"
    assert len(row["windows"]) == 4 and row["windows"][0]["percentiles"]["p99"] == pytest.approx(0.002, rel=0.005)


def test_batch_counts_samples():
    row = row_of(measured_store([800, 800, 800], batch=8), batch=8)
    assert row["completed"] == 3 * 400  # samples, not requests
    assert row["throughput_per_second"] == pytest.approx(800)


@pytest.mark.parametrize("rates,verdict", [([100, 500, 100, 105, 98], "stable"), ([100, 100, 130], "unstable")])
def test_a_rows_stability_is_the_run_records_verdict(rates, verdict):
    """The rule itself is tested in test_rules.py; the row reads the run record's verdict."""
    store = measured_store(rates)
    assert row_of(store)["stability"] == verdict == store.workload.run.figures().stability


def test_utilization_counts_only_while_the_run_measures():
    """Warm-up and the time after the run do not count, whichever way the row is exported."""
    store = Store()
    store.workload_starting({"model": "cnn"}, pid=1)
    busy = Snapshot(time=1.0, source="host", cores=[Core("vcpu", 0, 1.0), Core("vcpu", 1, 0.5)],
                    memory=Memory(host_used_bytes=2_000))
    store.workload_event(Phase(phase="warmup", progress=0.0))
    store.publish_snapshot(busy)  # warm-up: ignored
    hist = LatencyHistogram()
    hist.record(0.002)
    store.workload_event(Window.from_histogram(1.0, 1.5, hist, 0, [1]))
    for t, (a, b) in enumerate([(0.2, 0.4), (0.4, 0.8)]):
        store.publish_snapshot(Snapshot(time=2.0 + t, source="host", cores=[Core("vcpu", 0, a), Core("vcpu", 1, b)],
                                        memory=Memory(host_used_bytes=1_000 * (t + 1))))
    store.workload_state("exited", 0)
    store.publish_snapshot(busy)  # after: ignored
    stats = store.workload.run.telemetry
    cores = stats.cores()
    assert [(c["index"], c["utilization_mean"], c["utilization_max"]) for c in cores] == [
        (0, pytest.approx(0.3), 0.4), (1, pytest.approx(0.6), 0.8)]
    assert stats.mean_utilization("vcpu") == pytest.approx(0.45)
    assert stats.summary()["memory"]["host_used_bytes"] == {"mean": 1500, "max": 2000}
    row = build_row(store.workload, WorkloadConfig(model="cnn", backend="cpu"), HOST, "ok", None, "")
    assert row["core_kind"] == "vcpu" and row["core_utilization_mean"] == pytest.approx(0.45)


def sample_document():
    document = new_document(HOST, ["neurontui", "--export", "x.json"])
    document["rows"] = [row_of(measured_store([400, 410, 405])),
                        row_of(measured_store([90, 80, 85], latency=0.02, batch=4), batch=4, concurrency=2)]
    skipped = row_of(Store())
    skipped.update(status="skipped", reason="unsupported: pipeline needs torch-neuron", mode="pipeline")
    document["rows"].append(skipped)
    document["complete"] = True
    return document


def test_json_validates_against_the_documented_schema():
    document = json.loads(render(sample_document(), "out.json"))
    jsonschema.validate(document, SCHEMA)
    assert document["schema"] == 1 and len(document["rows"]) == 3


def test_json_schema_rejects_a_broken_export():
    document = json.loads(render(sample_document(), "out.json"))
    document["rows"][0]["batch"] = "one"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, SCHEMA)


def test_seed_measurements_are_a_valid_export():
    jsonschema.validate(json.loads((ROOT / "docs" / "seed-measurements.json").read_text()), SCHEMA)


def test_csv_has_one_row_per_configuration_and_loads_in_pandas():
    text = render(sample_document(), "out.csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["status"] for r in rows] == ["ok", "ok", "skipped"]
    assert list(rows[0]) == list(COLUMNS)
    assert float(rows[0]["throughput_per_second"]) == pytest.approx(
        int(rows[0]["completed"]) / float(rows[0]["duration_seconds"]))
    assert rows[2]["latency_p50_seconds"] == ""  # unknown is empty, never 0
    pandas = pytest.importorskip("pandas")
    frame = pandas.read_csv(io.StringIO(text))
    assert frame.shape == (3, len(COLUMNS))
    assert frame["batch"].tolist() == [1, 4, 1]


def test_markdown_is_a_well_formed_table():
    text = render(sample_document(), "out.md")
    table = [line for line in text.splitlines() if line.startswith("|")]
    widths = {line.count("|") - line.count("\\|") for line in table}
    assert len(widths) == 1, "every line of the table has the same number of cells"
    assert set(table[1].strip("|").split("|")) == {"---"}
    assert len(table) == 2 + 3
    assert "unsupported: pipeline needs torch-neuron" in table[-1]


def test_telemetry_only_csv_lists_cores():
    document = new_document(HOST, [])
    document["telemetry"] = {"source": "replay", "samples": 2, "duration_seconds": 1.0, "memory": {},
                             "cores": [{"kind": "neuroncore", "index": i, "utilization_mean": 0.5,
                                        "utilization_max": 0.7, "memory_used_mean_bytes": 10,
                                        "memory_used_max_bytes": 12, "samples": 2} for i in range(4)]}
    rows = list(csv.DictReader(io.StringIO(render(document, "t.csv"))))
    assert [r["index"] for r in rows] == ["0", "1", "2", "3"] and rows[0]["utilization_max"] == "0.7"
    jsonschema.validate(json.loads(render(document, "t.json")), SCHEMA)


def test_unwritable_targets_are_named(tmp_path):
    assert check_writable(str(tmp_path / "ok.json")) is None
    assert "unknown format .txt" in check_writable(str(tmp_path / "x.txt"))
    assert "does not exist" in check_writable(str(tmp_path / "missing" / "x.json"))
    (tmp_path / "d.json").mkdir()
    assert "is a directory" in check_writable(str(tmp_path / "d.json"))
    # a place no one may create files in, even root (chmod does not stop root)
    assert check_writable("/proc/neurontui-export.json") is not None
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".neurontui-probe")]


def test_atomic_write_leaves_old_content_when_the_write_fails(tmp_path):
    target = tmp_path / "out.json"
    write_atomic(str(target), "old")
    with pytest.raises(TypeError):
        write_atomic(str(target), None)  # fails half-way, after the temp file exists
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.json"], "no temp file is left behind"
