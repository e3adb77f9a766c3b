"""Headless runs as a user makes them: the real CLI, a real workload child, real signals.

Every run goes through NO_TEXTUAL, which makes any import of Textual fail, so these
tests also prove the headless path never loads it.
"""
import csv
import io
import json
import os
import re
import resource
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import jsonschema
import psutil
import pytest

from neurontui.export.writers import render
from neurontui.sources.neuron_report import parse_report
from tests.conftest import FIXTURES, ROOT, wait_for

SCHEMA = json.loads((ROOT / "docs" / "export-schema.json").read_text())
REPLAY = f"replay:{FIXTURES / 'v2_trn1n_32xlarge_2runtimes.json'}"
NO_TEXTUAL = r"""
import sys
class NoTextual:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("textual", "textual_plotext"):
            raise ImportError(f"the headless path imported {name}")
sys.meta_path.insert(0, NoTextual())
from neurontui.cli import main
sys.exit(main(sys.argv[1:]))
"""


def cli(python, *argv):
    return [python, "-c", NO_TEXTUAL, *map(str, argv)]


def run(python, child_env, *argv, timeout=120, **kwargs):
    return subprocess.run(cli(python, *argv), capture_output=True, text=True, env=child_env, timeout=timeout,
                          **kwargs)


def row_fields(row):
    return {k: v for k, v in row.items() if k not in ("windows", "per_core_utilization", "latency_histogram")}


def test_blocker_really_blocks_textual(python, child_env):
    out = subprocess.run([python, "-c", NO_TEXTUAL.replace("from neurontui.cli import main", "import textual")],
                         capture_output=True, text=True, env=child_env, timeout=60)
    assert out.returncode != 0 and "the headless path imported textual" in out.stderr


@pytest.mark.slow
def test_export_of_a_short_cpu_run(python, child_env, tmp_path):
    target = tmp_path / "out.json"
    started = time.monotonic()
    out = run(python, child_env, "--export", target, "--model", "cnn", "--backend", "cpu", "--duration", 3,
              "--monitor", "host", "--interval", 0.5)
    wall = time.monotonic() - started
    assert out.returncode == 0, out.stderr
    document = json.loads(target.read_text())
    jsonschema.validate(document, SCHEMA)
    assert document["complete"] and len(document["rows"]) == 1
    row = document["rows"][0]
    assert row["status"] == "ok", row_fields(row)
    assert row["duration_seconds"] == pytest.approx(3.0, abs=0.3)
    assert row["completed"] / row["duration_seconds"] == pytest.approx(row["throughput_per_second"], rel=0.02)
    assert row["completed"] == sum(w["completed"] for w in row["windows"]) == row["latency_count"]
    assert row["params"] == 3_165_826 and row["backend"] == "cpu" and row["host_cpu_model"]
    assert 0 < row["latency_min_seconds"] <= row["latency_p50_seconds"] <= row["latency_p99_seconds"] \
        <= row["latency_max_seconds"]
    assert row["stability"].split(" (")[0] in ("stable", "unstable") and row["core_kind"] == "vcpu"  # busy host: a reason
    assert 0 < row["core_utilization_mean"] <= 1
    # progress: phases, then measured/left/throughput; plain lines at each new stage, else rarely
    lines = out.stderr.splitlines()
    assert any("warmup" in line for line in lines) and any("s left" in line and "/s" in line for line in lines)
    assert len(lines) <= wall + 4, lines
    assert "\r" not in out.stderr, "no bar when stderr is not a terminal"


@pytest.mark.slow
def test_sweep_of_eight_configurations(python, child_env, tmp_path):
    target = tmp_path / "sweep.json"
    out = run(python, child_env, "--sweep", "mode=single,dp batch=1,2 concurrency=1,2", "--model", "cnn",
              "--backend", "cpu", "--duration", 1, "--warmup", 0.3, "--export", target, "--monitor", "none",
              timeout=280)
    assert out.returncode == 0, out.stderr
    document = json.loads(target.read_text())
    jsonschema.validate(document, SCHEMA)
    rows = document["rows"]
    assert [(r["mode"], r["batch"], r["concurrency"]) for r in rows] == [
        (m, b, c) for m in ("single", "dp") for b in (1, 2) for c in (1, 2)]
    assert all(r["status"] == "ok" for r in rows), [row_fields(r) for r in rows if r["status"] != "ok"]
    assert all(r["completed"] > 0 and r["latency_p99_seconds"] for r in rows)
    assert out.stderr.count("[8/8]") >= 1
    # the same document as the CSV and Markdown writers put it
    assert len(list(csv.DictReader(io.StringIO(render(document, "s.csv"))))) == 8
    table = [line for line in render(document, "s.md").splitlines() if line.startswith("| cnn")]
    assert len(table) == 8


def descendants(pid):
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


class Started:
    """A neurontui process whose stderr is collected in the background."""

    def __init__(self, python, child_env, *argv):
        self.proc = subprocess.Popen(cli(python, *argv), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     text=True, env=child_env)
        self.lines = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stderr), daemon=True).start()

    def stop(self, sig, timeout=30):
        children = descendants(self.proc.pid)
        assert children, "the workload child was running"
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f"left behind: {alive}"
        return code


@pytest.mark.slow
@pytest.mark.parametrize("sig,suffix", [(signal.SIGINT, ".md"), (signal.SIGTERM, ".csv")])
def test_interrupted_sweep_keeps_finished_rows(python, child_env, tmp_path, sig, suffix):
    target = tmp_path / f"sweep{suffix}"
    # 3 s per configuration, so the signal surely lands while the second one runs
    run_ = Started(python, child_env, "--sweep", "batch=1,2,3,4", "--model", "cnn", "--backend", "cpu",
                   "--duration", 3, "--warmup", 0.3, "--export", target, "--monitor", "none")
    wait_for(lambda: target.exists(), 120, "the first row on disk")
    wait_for(lambda: any("[2/4]" in line and "running:" in line for line in run_.lines), 60, "the second run")
    code = run_.stop(sig)
    assert code == 128 + sig
    text = target.read_text()
    if suffix == ".md":
        rows = [line for line in text.splitlines() if line.startswith("| cnn")]
        assert rows and rows[0].startswith("| cnn | ") and "interrupted" not in rows[0]
        assert f"interrupted by {signal.Signals(sig).name}" in text
    else:
        rows = list(csv.DictReader(io.StringIO(text)))
        assert rows[0]["status"] == "ok" and rows[0]["batch"] == "1"
        # the run in progress is kept too, marked as such
        assert [r["status"] for r in rows[1:]] in ([], ["interrupted"])


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signals_end_a_headless_run_like_ctrl_c(python, child_env, sig):
    run_ = Started(python, child_env, "--headless", "--model", "cnn", "--backend", "cpu", "--monitor", "none",
                   "--prometheus-port", 0)
    wait_for(lambda: any("running:" in line for line in run_.lines), 120, "windows")
    assert run_.stop(sig) == 0
    assert not any("Traceback" in line for line in run_.lines), run_.lines


def test_unwritable_export_is_refused_before_the_run(python, child_env):
    out = run(python, child_env, "--export", "/proc/neurontui/out.json", "--model", "cnn", "--backend", "cpu")
    assert out.returncode == 2
    # the refusal and nothing else: no workload was started (it would print its phases)
    assert out.stderr.splitlines() == ["neurontui: cannot export to /proc/neurontui/out.json: directory "
                                       "/proc/neurontui does not exist"]
    assert out.stdout == ""


def test_telemetry_only_export_over_a_recording(python, child_env, tmp_path):
    target = tmp_path / "t.json"
    out = run(python, child_env, "--monitor", REPLAY, "--loop", "--replay-speed", 10, "--no-workload",
              "--duration", 2, "--export", target)
    assert out.returncode == 0, out.stderr
    document = json.loads(target.read_text())
    jsonschema.validate(document, SCHEMA)
    telemetry = document["telemetry"]
    assert document["rows"] == [] and telemetry["source"] == "replay" and telemetry["samples"] >= 2
    assert document["host"]["instance_type"] == "trn1n.32xlarge"
    # the recording repeats one report, so mean = max = that report's figure, per core
    expected = parse_report((FIXTURES / "v2_trn1n_32xlarge_2runtimes.json").read_text()).snapshot
    cores = {(c["kind"], c["index"]): c for c in telemetry["cores"]}
    for core in expected.cores_of("neuroncore"):
        stats = cores[("neuroncore", core.index)]
        assert stats["utilization_mean"] == pytest.approx(core.utilization)
        assert stats["utilization_max"] == pytest.approx(core.utilization)
        assert stats["memory_used_max_bytes"] == core.memory_used_bytes
    assert any(c["utilization_mean"] for c in telemetry["cores"] if c["kind"] == "neuroncore")
    assert telemetry["memory"]["device_used_bytes"]["max"] == expected.memory.device_used_bytes


def test_full_disk_at_write_time_keeps_the_result(python, child_env, tmp_path):
    """A file-size limit makes the kernel refuse the write, as a full disk would (EFBIG instead of ENOSPC)."""
    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    target = tmp_path / "t.json"
    out = run(python, child_env, "--monitor", REPLAY, "--no-workload", "--duration", 1, "--export", target,
              preexec_fn=small_files)
    assert out.returncode == 1
    message, _, dumped = out.stderr.partition("here it is as JSON:\n")
    assert f"could not write {target}: File too large" in message
    assert json.loads(dumped)["telemetry"]["samples"] == 1
    assert os.listdir(tmp_path) == [], "neither a partial export nor a temp file is left"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_headless_serves_metrics_while_it_runs(python, child_env):
    port = free_port()
    run_ = Started(python, child_env, "--headless", "--no-workload", "--monitor", REPLAY, "--loop",
                   "--duration", 20, "--prometheus-port", port)
    try:
        wait_for(lambda: any("serving metrics" in line for line in run_.lines), 30, "the exporter")

        def scrape():
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()

        assert "neurontui_up" in scrape()
        # the exporter is up before the first replayed report arrives
        wait_for(lambda: "neuroncore_utilization_ratio" in scrape(), 15, "NeuronCore series")
        run_.proc.send_signal(signal.SIGINT)
        assert run_.proc.wait(timeout=20) == 0
    finally:
        run_.proc.kill()


def test_port_in_use_is_one_line_and_non_zero(python, child_env):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        out = run(python, child_env, "--headless", "--no-workload", "--monitor", "none",
                  "--prometheus-port", busy.getsockname()[1], timeout=30)
    assert out.returncode == 1
    assert len(out.stderr.strip().splitlines()) == 1 and "address already in use" in out.stderr


def test_progress_is_a_bar_on_a_terminal_and_rate_limited_lines_otherwise():
    from neurontui.progress import Progress

    terminal = io.StringIO()
    bar = Progress(terminal, tty=True)
    bar.update("running: 1.0 s measured", 0.5)
    bar.update("running: 1.5 s measured", 0.75)
    bar.message("[1/2] done")
    bar.close()
    assert terminal.getvalue().count("\r\x1b[K") == 3  # two redraws in place, one clear before the message
    assert "[###############.....] running: 1.5 s measured" in terminal.getvalue()
    assert terminal.getvalue().endswith("\r\x1b[K[1/2] done\n")

    log = io.StringIO()
    plain = Progress(log, tty=False)
    for n in range(50):
        plain.update(f"running: {n} windows")
    plain.message("[1/2] done")
    assert log.getvalue().splitlines() == ["running: 0 windows", "[1/2] done"]

    journal = io.StringIO()  # under systemd: a line per stage, not one a second
    staged = Progress(journal, tty=False)
    for n, stage in enumerate(("compiling", "compiling", "running:False", "running:True", "running:True")):
        staged.update(f"{stage} {n}", stage=stage)
    assert journal.getvalue().splitlines() == ["compiling 0", "running:False 2", "running:True 3"]


def test_host_description_without_metadata_service(monkeypatch, tmp_path):
    from neurontui.host_info import INSTANCE_TYPE_ENV, cpu_model, describe_host
    from neurontui.store import Store
    from neurontui.telemetry import Snapshot

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8259CL\n")
    assert cpu_model(str(cpuinfo)) == "Intel(R) Xeon(R) Platinum 8259CL"
    monkeypatch.delenv(INSTANCE_TYPE_ENV, raising=False)
    store = Store()
    assert describe_host(store)["instance_type"] is None
    monkeypatch.setenv(INSTANCE_TYPE_ENV, "g4dn.xlarge")
    assert describe_host(store)["instance_type"] == "g4dn.xlarge"
    # neuron-monitor's instance_info wins over the environment
    store.publish_snapshot(Snapshot(time=1.0, source="neuron-monitor", instance={"instance_type": "inf1.6xlarge"},
                                    hardware={"neuron_device_count": 4, "neuroncore_per_device_count": 4}))
    host = describe_host(store)
    assert host["instance_type"] == "inf1.6xlarge" and host["neuroncore_count"] == 16


@pytest.mark.slow
def test_sweep_skips_what_cannot_run_and_says_why(python, child_env, tmp_path):
    target = tmp_path / "skips.json"
    out = run(python, child_env, "--sweep", "cuda-graphs=false,true scenario=single-stream,server", "--model", "cnn",
              "--backend", "cpu", "--duration", 2, "--warmup", 0.3, "--export", target, "--monitor", "host",
              "--interval", 0.25)
    assert out.returncode == 0, out.stderr
    rows = json.loads(target.read_text())["rows"]
    assert [r["status"] for r in rows] == ["ok", "skipped", "skipped", "skipped"]
    assert rows[0]["core_utilization_mean"] is not None
    assert rows[1]["reason"] == "--scenario server needs --qps R with R > 0"  # refused before starting a child
    assert rows[2]["reason"] == "--cuda-graphs needs --backend cuda"  # refused before starting a child too
    # nothing of the measured row leaks into the skipped ones
    assert all(r["completed"] == 0 and r["throughput_per_second"] is None and r["windows"] == []
               and r["core_utilization_mean"] is None for r in rows[1:])


@pytest.mark.slow
def test_sigkill_mid_sweep_leaves_a_valid_export_and_no_orphan(python, child_env, tmp_path):
    target = tmp_path / "sweep.json"
    run_ = Started(python, child_env, "--sweep", "batch=1,2,3", "--model", "cnn", "--backend", "cpu",
                   "--duration", 3, "--warmup", 0.3, "--export", target, "--monitor", "none")
    wait_for(lambda: target.exists(), 120, "the first row on disk")
    wait_for(lambda: any("[2/3]" in line and "running:" in line for line in run_.lines), 60, "the second run")
    children = descendants(run_.proc.pid)
    assert children
    run_.proc.kill()
    run_.proc.wait(timeout=10)
    gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, f"orphans: {alive}"  # the child's parent-death signal took it down
    document = json.loads(target.read_text())  # the last atomic rewrite, whole
    jsonschema.validate(document, SCHEMA)
    assert [r["batch"] for r in document["rows"]] == [1] and not document["complete"]
    assert [p.name for p in tmp_path.iterdir()] == ["sweep.json"], "no temp file left behind"


@pytest.mark.slow
def test_a_crashed_child_is_a_failed_row_and_the_sweep_goes_on(python, child_env, tmp_path):
    target = tmp_path / "sweep.json"
    run_ = Started(python, child_env, "--sweep", "batch=1,2", "--model", "cnn", "--backend", "cpu",
                   "--duration", 3, "--warmup", 0.3, "--export", target, "--monitor", "none")
    wait_for(lambda: any("[1/2]" in line and "running:" in line for line in run_.lines), 120, "the first run")
    (child,) = [p for p in descendants(run_.proc.pid) if p.ppid() == run_.proc.pid]
    child.kill()  # as the OOM killer would
    assert run_.proc.wait(timeout=60) == 0, run_.lines
    rows = json.loads(target.read_text())["rows"]
    assert [(r["batch"], r["status"]) for r in rows] == [(1, "failed"), (2, "ok")]
    assert rows[0]["reason"].startswith("killed by SIGKILL")


def test_progress_bar_on_a_real_terminal(python, child_env, tmp_path):
    import pty

    main, terminal = pty.openpty()
    proc = subprocess.Popen(cli(python, "--monitor", REPLAY, "--loop", "--replay-speed", 10, "--no-workload",
                                "--duration", 2, "--export", tmp_path / "t.json"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=terminal, env=child_env)
    os.close(terminal)
    seen = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        seen += chunk
    os.close(main)
    assert proc.wait(timeout=30) == 0
    text = seen.decode()
    assert text.count("\r\x1b[K[") >= 3, text  # redrawn in place, not one line per update
    assert "watching telemetry" in text and "#" in text
    # the last state of the bar stays on screen; the closing message gets a line of its own
    assert re.search(r"s left\r?\nwrote telemetry of \d+ samples to \S+t\.json\r?\n$", text), text[-200:]


def test_ctrl_c_is_the_planned_end_of_an_open_ended_telemetry_export(python, child_env, tmp_path):
    target = tmp_path / "t.csv"
    run_ = Started(python, child_env, "--monitor", REPLAY, "--loop", "--replay-speed", 10, "--no-workload",
                   "--export", target)
    def samples_seen():  # progress lines are rate-limited, so any count from 3 up will do
        counts = [int(m.group(1)) for line in run_.lines if (m := re.search(r"(\d+) samples", line))]
        return max(counts, default=0) >= 3

    wait_for(samples_seen, 60, "a few samples")
    run_.proc.send_signal(signal.SIGINT)
    assert run_.proc.wait(timeout=20) == 0
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(rows) == 160 and {r["kind"] for r in rows} == {"neuroncore", "vcpu"}
    assert all(int(r["samples"]) >= 3 for r in rows if r["kind"] == "neuroncore")


def test_a_headless_replay_says_it_reached_the_end(python, child_env):
    out = run(python, child_env, "--headless", "--no-workload", "--monitor", REPLAY, "--replay-speed", 50,
              "--prometheus-port", 0, timeout=60)
    assert out.returncode == 0, out.stderr
    assert any("finished after 1 report" in line and "--loop" in line for line in out.stderr.splitlines()), out.stderr
