"""--copies and variable-length input through the real CLI on this CPU box: the export row and
`neurontui report` carry copies, bytes per copy, copies that fit, the bucket set and the padding
ratio. Short runs (2 s); throughput is compared only in tests/benchmarks/bench_buckets.py."""
import json
import os
import subprocess
import sys

import jsonschema
import pytest

from neurontui.export.compare import load_export
from neurontui.export.writers import render
from tests.conftest import ROOT

SCHEMA = json.loads((ROOT / "docs" / "export-schema.json").read_text())
FLOAT32_BYTES = 4


def neurontui(tmp_path, *argv, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "neurontui", *argv], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=timeout)


@pytest.fixture(scope="module")
def copies_export(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("copies")
    out = neurontui(tmp, "--export", "x.json", "--model", "cnn", "--backend", "cpu", "--copies", "4",
                    "--duration", "2", "--cache-dir", str(tmp / "cache"))
    assert out.returncode == 0, out.stderr
    assert ", 4 copies x " in out.stderr.splitlines()[-2]  # the run's summary line on stderr
    return tmp / "x.json"


@pytest.fixture(scope="module")
def buckets_export(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("buckets")
    # small lengths: BERT on CPU is slow; bucket sets are listed with "/" in a sweep
    out = neurontui(tmp, "--export", "s.json", "--model", "bert", "--backend", "cpu", "--seq-len-dist",
                    "uniform:5-16", "--sweep", "buckets=32,8/16/32", "--duration", "2", "--batch", "1",
                    "--cache-dir", str(tmp / "cache"))
    assert out.returncode == 0, out.stderr
    assert "padding " in out.stderr and "(buckets 8,16,32)" in out.stderr
    return tmp / "s.json"


@pytest.mark.slow
def test_four_cnn_copies_measure_about_their_parameter_bytes_each(copies_export):
    document = json.loads(copies_export.read_text())
    jsonschema.validate(document, SCHEMA)
    [row] = document["rows"]
    assert row["status"] == "ok" and row["copies"] == 4 and row["params"] == 3_165_826
    parameter_bytes = row["params"] * FLOAT32_BYTES
    assert abs(row["bytes_per_copy"] - parameter_bytes) <= 0.3 * parameter_bytes, row["memory_after_each_load_bytes"]
    assert row["memory_source"] == "process resident" and len(row["memory_after_each_load_bytes"]) == 4
    assert row["copies_fit"] > 4 and row["artifact_bytes"] > 0
    # the load spreads requests over the copies; their completions are the row's total
    assert len(row["per_copy_completed"]) == 4 and all(n > 0 for n in row["per_copy_completed"])
    assert sum(row["per_copy_completed"]) == row["completed"]
    assert all(s > 0 for s in row["per_copy_latency_mean_seconds"])
    assert any("per loaded copy, measured (process resident, slope over 4 loads)" in h for h in row["hints"])


@pytest.mark.slow
def test_a_bucket_sweep_pads_less_with_more_buckets(buckets_export):
    document = json.loads(buckets_export.read_text())
    jsonschema.validate(document, SCHEMA)
    padded, bucketed = document["rows"]
    assert (padded["status"], bucketed["status"]) == ("ok", "ok")
    assert (padded["buckets"], bucketed["buckets"]) == ("32", "8,16,32")
    assert bucketed["padding_ratio"] < padded["padding_ratio"]
    for row in (padded, bucketed):
        assert row["padding_ratio"] == pytest.approx(row["pad_tokens"] / row["real_tokens"])
        assert sum(b["completed"] for b in row["per_bucket"]) == row["completed"]
        assert [b["length"] for b in row["per_bucket"]] == [int(n) for n in row["buckets"].split(",")]
    # lengths 5..16 never need bucket 32 once 8 and 16 exist
    assert bucketed["per_bucket"][2]["completed"] == 0 and bucketed["per_bucket"][2]["latency_p50_seconds"] is None
    assert all(b["compile_seconds"] is not None for b in bucketed["per_bucket"])
    # a CSV export reads back with the bucket set as text, not a number
    csv_path = buckets_export.with_suffix(".csv")
    csv_path.write_text(render(document, str(csv_path)))
    rows = load_export(str(csv_path))[0]["rows"]
    assert [r["buckets"] for r in rows] == ["32", "8,16,32"] and rows[1]["padding_ratio"] < rows[0]["padding_ratio"]


@pytest.mark.slow
def test_report_shows_copies_and_the_bucket_mix(copies_export, buckets_export, tmp_path):
    out = neurontui(tmp_path, "report", str(copies_export), str(buckets_export), "--no-chart", timeout=60)
    assert out.returncode == 0, out.stderr
    cnn = out.stdout.split("## cnn: copies and padding\n", 1)[1].split("\n## ", 1)[0]
    header, _, row = [line for line in cnn.splitlines() if line.startswith("|")]
    cells = dict(zip(header.strip("|").split("|"), row.strip("|").split("|")))
    cells = {k.strip(): v.strip() for k, v in cells.items()}
    assert cells["copies"] == "4" and cells["per copy"].endswith("MiB") and int(cells["fit"].replace(",", "")) > 4
    bert = out.stdout.split("## bert: copies and padding\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in bert.splitlines() if line.startswith("|")][2:]
    assert [line.split("|")[10].strip() for line in lines] == ["32", "8,16,32"]
    assert all(line.split("|")[11].strip().endswith("%") for line in lines)
    # one capacity section per model, after its main table
    assert "## bert\n" in out.stdout and out.stdout.count("copies and padding") == 2
