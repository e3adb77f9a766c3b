"""No orphans: however the real `python -m neurontui` ends (Ctrl-C, SIGTERM, SSH hang-up, SIGKILL),
its workload child, that child's worker processes and the neuron-monitor child end with it.

An orphaned workload would keep its NeuronCores (processes never share them) and block the
next run. After SIGKILL, which no process can handle, the children end by themselves: the
kernel's parent-death signal, and EOF on the stdin pipe neurontui held.
(The TUI's own endings are covered in a real terminal by test_tui_tmux.py.)
"""
import os
import shlex
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.conftest import ROOT

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


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


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
