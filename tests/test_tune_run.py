"""`neurontui tune`: refusals before anything runs (one line, exit 2), its views (Markdown, CSV,
`neurontui report`), the OpenMP wait policy of the CPU server child, and one real tune end to end."""
from __future__ import annotations

import csv
import io
import json
import os
import signal
import stat
import subprocess
import sys

import jsonschema
import pytest

from neurontui.cli import main as cli_main
from neurontui.export.compare import main as report_main
from neurontui.export.tune_views import render_tune, steps
from neurontui.store import Store
from neurontui.tune.decide import Point, run_tune
from neurontui.tune.result import TuneContext, tune_document
from neurontui.tune.search import Budget
from neurontui.tune.slo import parse_slo
from neurontui.workload import WorkloadProcess
from tests.conftest import ROOT
from tests.queue_sim import QueueService
from workloads.config import WorkloadConfig

SCHEMA = json.loads((ROOT / "docs" / "tune-schema.json").read_text())
CNN = ["tune", "--model", "cnn", "--backend", "cpu"]


def exit_status(argv: list[str]) -> int:
    """`neurontui ARGV`'s exit status, whether it returns it or argparse exits with it."""
    try:
        return cli_main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize("flags, says", [
    (["--slo", "p99=abc"], "'abc' is not a latency"),
    (["--slo", "p42=5ms"], "p42 is not a percentile we measure"),
    (["--slo", "p99=5ms", "--modes", "single,turbo"], "unknown mode 'turbo'"),
    (["--slo", "p99=5ms", "--batches", "1,0"], "--batches: 0 must be at least 1"),
    (["--slo", "p99=5ms", "--concurrency", "two"], "--concurrency: 'two' is not a whole number"),
    (["--slo", "p99=5ms", "--budget", "10"], "--budget: 10 s cannot search 4 point(s)"),
    (["--slo", "p99=5ms", "--budget", "0"], "--budget: must be a positive number"),
    (["--slo", "p99=5ms", "--export", "t.txt"], "unknown format .txt"),
    (["--slo", "p99=5ms", "--prices", "/nonexistent/prices.json"], "--prices /nonexistent/prices.json: cannot read"),
    (["--slo", "p99=5ms", "--price-per-hour", "-1"], "--price-per-hour: must be a positive number"),
])
def test_a_bad_value_is_one_line_and_exit_2_before_anything_runs(flags, says, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert exit_status(CNN + flags) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_model_the_registry_does_not_know_is_refused(capsys):
    assert exit_status(["tune", "--model", "gpt9", "--slo", "p99=5ms"]) == 2
    assert "unknown model 'gpt9'" in capsys.readouterr().err


def test_a_prices_file_with_a_negative_price_is_refused(tmp_path, capsys):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"prices_per_hour": {"c7i.large": -1}}))
    assert exit_status(CNN + ["--slo", "p99=5ms", "--instance-type", "c7i.large", "--prices", str(prices)]) == 2
    assert "is not a positive number" in capsys.readouterr().err


# -- the views of a tune document --------------------------------------------------------------

@pytest.fixture(scope="module")
def document():
    """A tune of two simulated queues whose knees are known (tests/queue_sim.py)."""
    services = {Point("single", 1): QueueService(0.001, 99.0, step_seconds=20.0),
                Point("dp", 4): QueueService(0.0015, 99.0, batch=4, step_seconds=20.0, seed=3)}
    slo = parse_slo("p99=15ms")
    result = run_tune(list(services), lambda p, left: services[p].offline_step(left),
                      lambda p, rate, left: services[p].server_step(rate, left), slo, Budget())
    return tune_document(result, TuneContext("cnn", "cpu", "fp32"), Budget())


def test_the_csv_has_one_row_per_measured_step_and_marks_the_winner(document):
    rows = list(csv.DictReader(io.StringIO(render_tune(document, "t.csv"))))
    assert len(rows) == len(steps(document)) > 2
    (winner,) = [r for r in rows if r["winner"] == "True"]
    assert (winner["mode"], winner["batch"], winner["verdict"]) == ("dp", "4", "within")
    assert float(winner["rate"]) == pytest.approx(document["winner"]["rate"])


def test_the_markdown_names_the_winner_and_shows_every_step_with_its_verdict(document):
    text = render_tune(document, "t.md")
    assert "Winner within p99 15 ms: **dp batch 4**" in text
    step_lines = [line for line in text.splitlines() if line.startswith("| single batch 1") or
                  line.startswith("| dp batch 4")]
    points, frontier = len(document["points"]), len(document["frontier"])
    assert len(step_lines) == len(steps(document)) + points + frontier
    assert sum("| over |" in line or "| saturated |" in line for line in step_lines) >= 2
    assert "## Frontier" in text


def test_report_shows_a_tune_file_s_winner_and_steps_instead_of_skipping_it(document, tmp_path, capsys):
    path = tmp_path / "t.json"
    path.write_text(render_tune(document, str(path)))
    assert report_main([str(path), "--no-chart"]) == 0
    out, err = capsys.readouterr()
    assert "skipping" not in err
    assert "Winner within p99 15 ms: **dp batch 4**" in out and "## Every step measured" in out


# -- the child's OpenMP wait policy -------------------------------------------------------------

ENV_CHILD = """#!{python}
import os
import signal
with open(os.environ["REPORT_TO"], "w") as out:
    out.write(os.environ.get("OMP_WAIT_POLICY", "unset"))
"""


@pytest.mark.parametrize("backend, scenario, given, expected", [
    ("cpu", "server", None, "PASSIVE"), ("auto", "offline", None, "PASSIVE"), ("cuda", "server", None, "unset"),
    ("cpu", "server", "ACTIVE", "ACTIVE")])
def test_a_cpu_child_gets_passive_openmp_threads_unless_the_user_chose(backend, scenario, given, expected, tmp_path):
    child = tmp_path / "child"
    child.write_text(ENV_CHILD.format(python=sys.executable))
    child.chmod(child.stat().st_mode | stat.S_IXUSR)
    report = tmp_path / "policy"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.update(REPORT_TO=str(report), **({"OMP_WAIT_POLICY": given} if given else {}))
    process = WorkloadProcess(Store(), python=str(child), env=env)
    process.start(WorkloadConfig(model="cnn", backend=backend, scenario=scenario, qps=10.0 if scenario == "server" else None))
    try:
        assert process.wait(30)
    finally:
        process.stop()
    assert report.read_text() == expected


# -- end to end ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_real_tune_writes_a_document_the_schema_and_report_accept(tmp_path, child_env):
    out = tmp_path / "t.json"
    argv = [sys.executable, "-m", "neurontui", "tune", "--model", "cnn", "--backend", "cpu", "--modes", "single",
            "--batches", "1", "--slo", "p99=1s", "--budget", "20", "--price-per-hour", "0.1",
            "--cache-dir", str(tmp_path / "cache"), "--monitor", "none", "--export", str(out)]
    done = subprocess.run(argv, env=child_env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    document = json.loads(out.read_text())
    jsonschema.validate(document, SCHEMA)
    assert done.returncode == (0 if document["winner"] else 1), done.stderr
    assert document["complete"] is True and document["command"][:2] == ["neurontui", "tune"]
    (point,) = document["points"]
    assert point["steps"][0]["scenario"] == "offline" and point["offline_throughput"] > 0
    assert all(s["dollars_per_million"] > 0 for s in point["steps"])  # --price-per-hour reaches every step
    assert "wrote the tune of 1 point(s)" in done.stderr
    report = subprocess.run([sys.executable, "-m", "neurontui", "report", str(out), "--no-chart"], env=child_env,
                            capture_output=True, text=True, timeout=60)
    assert report.returncode == 0 and "## Every step measured" in report.stdout


@pytest.mark.slow
def test_ctrl_c_keeps_what_the_tune_found_and_says_it_is_incomplete(tmp_path, child_env):
    out = tmp_path / "t.json"
    argv = [sys.executable, "-m", "neurontui", "tune", "--model", "cnn", "--backend", "cpu", "--modes", "single",
            "--batches", "1,4", "--slo", "p99=1s", "--budget", "40", "--cache-dir", str(tmp_path / "cache"),
            "--monitor", "none", "--export", str(out)]
    tune = subprocess.Popen(argv, env=child_env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        for line in tune.stderr:  # the first step has landed: interrupt the second
            if "offline maximum" in line:
                tune.send_signal(signal.SIGINT)
                break
        rest = tune.communicate(timeout=60)[1]
    finally:
        tune.kill()
    assert tune.returncode == 128 + signal.SIGINT, rest
    document = json.loads(out.read_text())
    jsonschema.validate(document, SCHEMA)
    assert document["complete"] is False and document["interrupted_by"] == "SIGINT"
    first, second = document["points"]
    assert first["offline_throughput"] > 0 and second["skipped"] == "interrupted by SIGINT"
