"""WorkloadProcess with real `python -m workloads --model cnn --backend cpu` children: crashes
(OOM kill, segfault, os._exit) and hangs become error events with the exit status and the last
stderr lines, a restart works, a child deaf to SIGTERM is killed after the grace period, and
pause/resume stop and restart the flow of windows."""
import os
import signal
import stat
import sys
import threading
import time

import psutil
import pytest

from neurontui.store import Store
from neurontui.workload import WorkloadProcess
from tests.conftest import wait_for
from workloads.config import WorkloadConfig

pytestmark = pytest.mark.slow
START_TIMEOUT = 120  # the first start traces the model on a busy 2-core machine

# Runs the real child in this process; on SIGUSR1 it writes a line on stderr (as a dying
# library would) and dies the way FAULT says. `kill` stands in for the kernel's OOM killer
# (it sends SIGKILL); `segv` is a real segmentation fault.
FAULTY_CHILD = """#!{python}
import ctypes, os, runpy, signal, sys

def fault(signum, frame):
    sys.stderr.write("libfake: cannot allocate 4096 MiB\\n")
    sys.stderr.flush()
    how = os.environ["FAULT"]
    if how == "exit":
        os._exit(7)
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    ctypes.string_at(0)

signal.signal(signal.SIGUSR1, fault)
sys.argv = ["workloads", *sys.argv[sys.argv.index("workloads") + 1:]]  # after the interpreter's flags
runpy.run_module("workloads", run_name="__main__", alter_sys=True)
"""

# A child that hears nothing: no stop command, no SIGTERM; it started a worker that is just as deaf.
DEAF_CHILD = """#!{python}
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
worker = subprocess.Popen([sys.executable, "-c",
                           "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
sys.stderr.write(f"deaf child: worker {{worker.pid}}\\n")
sys.stderr.flush()
print('{{"event":"hello","v":1,"pid":%d,"model":"cnn","backend":"cpu"}}' % os.getpid(), flush=True)
time.sleep(600)
"""


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")  # shared, so only the first start traces the model


def cpu_config(cache_dir, **overrides):
    return WorkloadConfig(model="cnn", backend="cpu", warmup=0.2, window=0.25, cache_dir=str(cache_dir), **overrides)


def script(tmp_path, text):
    path = tmp_path / "child"
    path.write_text(text.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def windows(store):
    return len(store.workload.windows)


def wait_for_windows(store, n=2, timeout=START_TIMEOUT):
    start = windows(store)
    wait_for(lambda: windows(store) >= start + n, timeout, f"{n} windows (state {store.workload.state})")


def errors(store):
    return [e.text for e in store.events if e.level == "error" and e.source == "workload"]


def gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("fault,status", [
    ("kill", "killed by SIGKILL"), ("segv", "killed by SIGSEGV"), ("exit", "exited with status 7"),
])
def test_a_crash_is_an_event_with_status_and_stderr_and_a_restart_works(tmp_path, cache_dir, child_env,
                                                                         fault, status):
    store = Store()
    child = WorkloadProcess(store, python=script(tmp_path, FAULTY_CHILD), env=dict(child_env, FAULT=fault))
    config = cpu_config(cache_dir)
    child.start(config)
    try:
        wait_for_windows(store)
        completed_before = store.workload.run.completed
        os.kill(child.pid, signal.SIGUSR1)
        assert child.wait(15), "the crash was not noticed"
        assert store.workload.state == "crashed"
        assert completed_before > 0 and store.workload.run.completed >= completed_before  # figures are kept
        [message] = errors(store)
        assert status in message and "libfake: cannot allocate 4096 MiB" in message and "press r" in message

        first_run = store.workload.run_id
        child.start(config)  # what `r` does
        wait_for_windows(store)
        assert store.workload.run_id == first_run + 1 and store.workload.state == "running"
    finally:
        child.stop(grace=1.0)
    assert not child.running and store.workload.state == "exited"
    assert len(errors(store)) == 1  # a stop asked for is no crash


def test_a_real_child_killed_from_outside_is_a_crash(cache_dir, child_env):
    store = Store()
    child = WorkloadProcess(store, env=child_env)
    child.start(cpu_config(cache_dir))
    try:
        wait_for_windows(store)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(15)
        assert store.workload.state == "crashed" and store.workload.exit_code == -signal.SIGKILL
        assert any("killed by SIGKILL" in text for text in errors(store))
    finally:
        child.stop(grace=1.0)


def test_a_hang_is_detected_and_the_child_killed(cache_dir, child_env):
    store = Store()
    child = WorkloadProcess(store, env=child_env, hang_seconds_running=2.0)
    child.start(cpu_config(cache_dir))
    try:
        wait_for_windows(store)
        pid = child.pid
        os.kill(pid, signal.SIGSTOP)  # no event will come
        stopped_at = time.monotonic()
        wait_for(lambda: any("hung" in text for text in errors(store)), 10, "the hang to be noticed")
        noticed = time.monotonic() - stopped_at
        assert 2.0 <= noticed < 2.0 + 2.5, noticed  # the limit, plus the watchdog's 0.5 s tick and slack
        assert child.wait(10) and gone(pid)
        assert store.workload.state == "crashed"
        assert any("after hanging" in text for text in errors(store))
        hung = store.workload.last_error
        assert hung.kind == "hung" and hung.fatal and hung.message.startswith("no event for ")
    finally:
        child.stop(grace=1.0)


def test_a_child_deaf_to_sigterm_and_its_worker_are_killed_after_the_grace(tmp_path, child_env):
    store = Store()
    child = WorkloadProcess(store, python=script(tmp_path, DEAF_CHILD), env=child_env)
    child.start(cpu_config(tmp_path))
    wait_for(lambda: store.workload.hello is not None and store.workload.stderr_tail, 30, "the deaf child")
    pid = child.pid
    worker = int(store.workload.stderr_tail[-1].split()[-1])
    started = time.monotonic()
    code = child.stop(grace=1.0)
    took = time.monotonic() - started
    assert code == -signal.SIGKILL
    assert 2.0 <= took < 6.0, took  # stop command (1 s), SIGTERM (1 s), then SIGKILL
    assert gone(pid)
    wait_for(lambda: gone(worker), 5, "the worker in the child's process group")
    assert store.workload.state == "exited" and not errors(store)


def test_pause_stops_the_windows_and_resume_restarts_them(cache_dir, child_env):
    store = Store()
    # a short hang limit proves a paused child is not taken for a hung one
    child = WorkloadProcess(store, env=child_env, hang_seconds_running=1.0)
    child.start(cpu_config(cache_dir))
    try:
        wait_for_windows(store)
        child.pause()
        assert store.workload.state == "paused"
        time.sleep(0.6)  # a window in flight when the command came may still arrive
        during_pause = windows(store)
        time.sleep(2.0)
        assert windows(store) == during_pause and child.running
        assert store.workload.state == "paused" and not errors(store)
        child.resume()
        wait_for_windows(store, timeout=15)
        assert store.workload.state == "running"
    finally:
        child.stop(grace=1.0)
    assert not errors(store)


def test_a_child_started_from_a_short_lived_thread_outlives_that_thread(cache_dir, child_env):
    """The kernel's parent-death signal follows the thread that started a child: a key handler
    or worker thread that returns must not take the child with it."""
    store = Store()
    child = WorkloadProcess(store, env=child_env)
    # the starting thread ends only once the child runs, i.e. after it armed its parent-death signal
    starter = threading.Thread(target=lambda: (child.start(cpu_config(cache_dir)), wait_for_windows(store)))
    starter.start()
    starter.join(START_TIMEOUT + 10)
    try:
        assert not starter.is_alive()
        wait_for_windows(store, n=4, timeout=15)
        assert store.workload.state == "running" and child.running
    finally:
        child.stop(grace=1.0)
