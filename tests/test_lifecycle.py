"""No orphans: however the real `python -m neurontui` ends (Ctrl-C, SIGTERM, SSH hang-up, SIGKILL),
its workload child, that child's worker processes and the neuron-monitor child end with it.

An orphaned workload would keep its NeuronCores (processes never share them) and block the
next run. After SIGKILL, which no process can handle, the children end by themselves: the
kernel's parent-death signal, and EOF on the stdin pipe neurontui held.
(The TUI's own endings are covered in a real terminal by test_tui_tmux.py.)
"""
import json
import os
import shlex
import signal
import subprocess
import time

import jsonschema
import psutil
import pytest

from tests.conftest import ROOT, wait_for

pytestmark = pytest.mark.slow
FAKE_MONITOR = ROOT / "tests" / "fake_neuron_monitor.py"
GONE_WITHIN_SECONDS = 10.0  # "a few seconds", with room for a loaded 2-core CI machine


def alive(processes):
    left = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                left.append(process)
        except psutil.NoSuchProcess:
            pass
    return left


def describe(processes):
    out = []
    for process in processes:
        try:
            out.append(f"{process.pid}: {' '.join(process.cmdline())[:120]}")
        except psutil.Error:
            out.append(f"{process.pid}: (gone)")
    return out


def cmdline_has(process, word):
    try:
        return any(word in part for part in process.cmdline())
    except psutil.Error:
        return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL],
                         ids=["SIGINT", "SIGTERM", "SIGHUP", "SIGKILL"])
def test_every_descendant_ends_with_neurontui(python, child_env, tmp_path, sig):
    # --hang: after one report the monitor goes silent and never writes again, so no broken
    # pipe can end it; only neurontui (or, after SIGKILL, the parent-death signal) can.
    monitor = shlex.join([python, str(FAKE_MONITOR), "--count", "1", "--hang"])
    # dp on 2 cores: the workload child runs 2 worker processes, grandchildren of neurontui
    argv = [python, "-m", "neurontui", "--headless", "--model", "cnn", "--backend", "cpu", "--mode", "dp",
            "--cores", "2", "--warmup", "0.2", "--window", "0.25", "--cache-dir", str(tmp_path / "cache"),
            "--monitor-cmd", monitor, "--prometheus-port", "0"]
    stderr_path = tmp_path / "stderr.txt"
    with open(stderr_path, "wb") as stderr:
        # its own session, so the finally below can end the whole group if the test fails
        neurontui = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                                     env=child_env, cwd=tmp_path, start_new_session=True)
    seen = []
    try:
        root = psutil.Process(neurontui.pid)

        def everything_runs():
            seen[:] = root.children(recursive=True)
            monitor_up = any(cmdline_has(p, "fake_neuron_monitor.py") for p in seen)
            workers = [p for p in seen if cmdline_has(p, "spawn_main")]
            return monitor_up and len(workers) >= 2 and "running:" in stderr_path.read_text()

        wait_for(everything_runs, 180, "the workload's windows, its 2 workers and the monitor")
        descendants = root.children(recursive=True)
        seen[:] = descendants
        assert any(cmdline_has(p, "workloads") for p in descendants), describe(descendants)

        neurontui.send_signal(sig)
        code = neurontui.wait(timeout=30)
        ended = time.monotonic()
        wait_for(lambda: not alive(descendants), GONE_WITHIN_SECONDS,
                 f"every descendant to end; left: {describe(alive(descendants))}")
        took = time.monotonic() - ended
        text = stderr_path.read_text()
        if sig == signal.SIGKILL:
            assert code == -signal.SIGKILL
        else:
            assert code == 0, text
            assert "Traceback" not in text, text
        print(f"{signal.Signals(sig).name}: {len(descendants)} descendants gone {took:.1f} s after neurontui")
    finally:
        if neurontui.poll() is None:
            os.killpg(neurontui.pid, signal.SIGKILL)
            neurontui.wait()
        for process in alive(seen):  # children run in sessions of their own: not in neurontui's group
            process.kill()


# -- a kill at any moment loses at most the line in progress ----------------------------------------
EXPORT_SCHEMA = json.loads((ROOT / "docs" / "export-schema.json").read_text())
TRN1N = ROOT / "tests" / "fixtures" / "v2_trn1n_32xlarge_2runtimes.json"


def start(python, child_env, tmp_path, *argv):
    stderr = open(tmp_path / "stderr.txt", "wb")
    proc = subprocess.Popen([python, "-m", "neurontui", *map(str, argv)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=stderr, env=child_env, cwd=tmp_path,
                            start_new_session=True)
    stderr.close()
    return proc


def kill_group(proc):
    """SIGKILL neurontui; its children end by their parent-death watch (tested above)."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def test_an_export_sweep_killed_mid_run_keeps_its_finished_rows(python, child_env, tmp_path):
    target = tmp_path / "sweep.json"
    proc = start(python, child_env, tmp_path, "--sweep", "batch=1,2,3", "--model", "cnn", "--backend", "cpu",
                 "--duration", 1, "--warmup", 0.2, "--window", 0.25, "--export", target, "--monitor", "none",
                 "--cache-dir", tmp_path / "cache")
    try:
        wait_for(lambda: "[2/3]" in (tmp_path / "stderr.txt").read_text() and target.exists(), 180,
                 "the first row on disk and the second run")
        kill_group(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    document = json.loads(target.read_text())  # whole: written to a temp file, then renamed
    jsonschema.validate(document, EXPORT_SCHEMA)
    assert document["complete"] is False
    assert [(row["batch"], row["status"]) for row in document["rows"]] == [(1, "ok")]
    assert document["rows"][0]["completed"] > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("sweep")] == ["sweep.json"]


def recording_lines(path):
    """(whole lines, the cut last line or b"")."""
    data = path.read_bytes()
    *whole, last = data.split(b"\n")
    return whole, last


def record_until_killed(python, child_env, tmp_path, recording, after_bytes):
    proc = start(python, child_env, tmp_path, "--headless", "--no-workload", "--monitor", f"replay:{TRN1N}",
                 "--loop", "--replay-speed", 200, "--record", recording, "--prometheus-port", 0)
    try:
        wait_for(lambda: recording.exists() and recording.stat().st_size > after_bytes, 60, "the recording")
        kill_group(proc)  # the report lines are ~60 KB: the kill may well land inside one
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_a_recording_killed_mid_run_has_only_whole_lines_but_the_last(python, child_env, tmp_path):
    recording = tmp_path / "session.jsonl"
    record_until_killed(python, child_env, tmp_path, recording, after_bytes=2_000_000)
    whole, _ = recording_lines(recording)
    assert len(whole) > 10
    for line in whole:  # flushed line by line: only the line in progress (`last`) may be cut
        json.loads(line)
    # what was recorded replays
    out = subprocess.run([python, "-m", "neurontui", "--once", "--json", "--monitor", f"replay:{recording}"],
                         capture_output=True, text=True, env=child_env, cwd=tmp_path, timeout=60)
    assert out.returncode == 0 and len(json.loads(out.stdout)["cores"]) > 0, out.stderr


def test_recording_again_to_a_file_cut_by_a_kill_keeps_lines_whole(python, child_env, tmp_path):
    recording = tmp_path / "session.jsonl"
    cut = TRN1N.read_bytes().replace(b"\n", b"")[:5000]
    recording.write_bytes(cut)  # a line cut by an earlier kill
    record_until_killed(python, child_env, tmp_path, recording, after_bytes=1_000_000)
    whole, _ = recording_lines(recording)
    assert whole[0] == cut, whole[0][4990:5100]  # the cut line stays alone: the new run loses nothing
    for line in whole[1:]:
        json.loads(line)
