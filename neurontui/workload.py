"""Start, stop and restart the workload child; read its events into the Store.

The child is `python -m workloads <flags>` in its own process group, started from an
argument list (never a shell) and isolated from the working directory (child_python.py). Its stdout carries protocol events, its stderr logs; our
end of its stdin is its lifeline (EOF = we are gone) and carries pause/resume/stop.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import IO

from workloads.config import WorkloadConfig
from workloads.protocol import Bye, Error, ProtocolError, decode
from workloads.text import clean_text

from . import child_python
from .lines import EVENT_LINE_BYTES, STDERR_LINE_BYTES, TooLong, capped_lines
from .store import Store

SOURCE = "workload"
STOP_GRACE_SECONDS = 5.0
STDERR_DRAIN_SECONDS = 1.0
# No event for this long means the child hangs. Compiling reports progress rarely, so the
# limit is generous while building and tight once windows flow.
HANG_SECONDS_RUNNING = 30.0
HANG_SECONDS_STARTING = 900.0
# The child's parent-death signal (workloads/lifeline.py) fires when the *thread* that started
# it ends, not the process. Children are started from this one long-lived thread, so a start()
# from a short-lived thread (a key handler, a worker) does not kill its child when it returns.
_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="workload-spawner")


class WorkloadProcess:
    def __init__(self, store: Store, python: str = sys.executable, env: dict[str, str] | None = None,
                 hang_seconds_running: float = HANG_SECONDS_RUNNING,
                 hang_seconds_starting: float = HANG_SECONDS_STARTING) -> None:
        self.store = store
        self.python = python
        self.env = env
        self.hang_seconds_running = hang_seconds_running
        self.hang_seconds_starting = hang_seconds_starting
        self.config: WorkloadConfig | None = None
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._last_event = 0.0
        self._bye: Bye | None = None
        self._stopping = False
        self._hung = False
        self._paused = False
        self._done = threading.Event()
        self._done.set()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def paused(self) -> bool:
        return self._paused

    def argv(self, config: WorkloadConfig) -> list[str]:
        return child_python.module_argv(self.python, "workloads", *config.to_argv())

    def start(self, config: WorkloadConfig) -> None:
        """(Re)start the child with `config`; a running child is stopped first."""
        self.stop()
        with self._lock:
            self.config = config
            self._bye = None
            self._stopping = False
            self._hung = False
            self._paused = False
            env = dict(os.environ if self.env is None else self.env)
            env["NEURONTUI_PARENT_PID"] = str(os.getpid())
            if config.backend in ("cpu", "auto"):
                # Idle OpenMP threads spin after each batch: they starve the arrival and dispatch
                # threads (server) and, on a busy host, the threads of the next batch (offline).
                # Read when torch starts its pool, so set here. A user's own setting wins.
                env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            env = child_python.child_env(env)
            self._proc = _SPAWNER.submit(
                subprocess.Popen, self.argv(config), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, env=env, start_new_session=True, close_fds=True,
            ).result()
            self._last_event = time.monotonic()
            self._done.clear()
            self.store.workload_starting(config.as_dict(), self._proc.pid)
            proc = self._proc
        stderr = threading.Thread(target=self._read_stderr, args=(proc.stderr,), name="workload-stderr", daemon=True)
        stderr.start()
        threading.Thread(target=self._read_stdout, args=(proc, stderr), name="workload-stdout", daemon=True).start()
        threading.Thread(target=self._watch, args=(proc,), name="workload-watchdog", daemon=True).start()

    def send(self, command: str) -> bool:
        proc = self._proc
        if proc is None or proc.poll() is not None or proc.stdin is None:
            return False
        try:
            proc.stdin.write(command.encode() + b"\n")
            proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            return False
        return True

    def pause(self) -> None:
        if self.send("pause"):
            self._paused = True
            self.store.workload_state("paused")

    def resume(self) -> None:
        if self.send("resume"):
            self._paused = False
            self._last_event = time.monotonic()
            self.store.workload_state("running")

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> int | None:
        """Stop the child and everything it started: stop command, SIGTERM, then SIGKILL."""
        proc = self._proc
        if proc is None:
            return None
        self._stopping = True
        if proc.poll() is None:
            self.send("stop")
            try:
                proc.wait(timeout=min(grace, 2.0))
            except subprocess.TimeoutExpired:
                self._signal_group(proc, signal.SIGTERM)
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    self._signal_group(proc, signal.SIGKILL)
                    proc.wait()
        # Workers the child left behind share its process group.
        self._signal_group(proc, signal.SIGKILL)
        self._done.wait(timeout=grace)
        if proc.stdin:
            try:
                proc.stdin.close()
            except OSError:
                pass
        return proc.returncode

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the child has exited and its output is read; True if it has."""
        return self._done.wait(timeout)

    @staticmethod
    def _signal_group(proc: subprocess.Popen, sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    # -- threads ------------------------------------------------------------------------
    def _read_stdout(self, proc: subprocess.Popen, stderr: threading.Thread) -> None:
        assert proc.stdout is not None
        try:
            for line in capped_lines(proc.stdout, EVENT_LINE_BYTES):
                if proc is not self._proc:
                    break
                self._last_event = time.monotonic()
                if isinstance(line, TooLong):
                    self.store.bad_line(SOURCE, line.head, line.reason("event"))
                elif line.strip():
                    self._take(line)
        finally:  # whatever happened above, the exit is reported and wait() returns
            code = proc.wait()
            stderr.join(STDERR_DRAIN_SECONDS)  # the last stderr lines explain a crash
            self._finished(proc, code)

    def _take(self, line: bytes) -> None:
        try:
            event = decode(line)
        except ProtocolError as exc:
            self.store.bad_line(SOURCE, line, str(exc))
            return
        if isinstance(event, Bye):
            self._bye = event
            return
        try:
            self.store.workload_event(event)
        except Exception as exc:  # noqa: BLE001 - a listener's bug must not stop the reading (the child would block)
            self.store.bad_line(SOURCE, line, f"a consumer failed on this event: {type(exc).__name__}: {exc}")

    def _read_stderr(self, stream: IO[bytes]) -> None:
        for raw in capped_lines(stream, STDERR_LINE_BYTES):
            if isinstance(raw, TooLong):
                self.store.workload_stderr(f"<a stderr line of {raw.length} bytes, skipped>")
                continue
            line = clean_text(raw.decode("utf-8", "replace").rstrip())
            if line:
                self.store.workload_stderr(line)

    def _watch(self, proc: subprocess.Popen) -> None:
        while proc.poll() is None and proc is self._proc:
            time.sleep(0.5)
            if self._paused or self._stopping:
                continue
            state = self.store.workload.state
            limit = self.hang_seconds_running if state == "running" else self.hang_seconds_starting
            silent = time.monotonic() - self._last_event
            if silent > limit:
                self._hung = True
                self.store.log("error", SOURCE, f"workload hung: no event for {silent:.0f} s; stopping it")
                # the run's own record of why it ended, so a row says "hung", not "killed by SIGTERM"
                self.store.workload_event(Error(kind="hung", message=f"no event for {silent:.0f} s; stopped",
                                                fatal=True))
                self._signal_group(proc, signal.SIGTERM)
                self._signal_group(proc, signal.SIGCONT)  # a stopped child handles SIGTERM only once continued
                try:
                    proc.wait(timeout=STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    self._signal_group(proc, signal.SIGKILL)
                return

    def _finished(self, proc: subprocess.Popen, code: int) -> None:
        if proc is not self._proc:
            return
        error = self.store.workload.last_error
        if code == 0 and self._bye is not None and not self._hung:
            self.store.workload_state("exited", code)
            self.store.log("info", SOURCE, f"workload finished ({self._bye.reason}): "
                                           f"{self._bye.completed} completed, {self._bye.errors} errors")
        elif self._stopping and not self._hung:
            self.store.workload_state("exited", code)
        else:
            self.store.workload_state("crashed", code)
            tail = " | ".join(list(self.store.workload.stderr_tail)[-3:])
            reason = " after hanging" if self._hung else f": {error.message}" if error else ""
            self.store.log("error", SOURCE, f"workload {describe_exit(code)}{reason}"
                                            + (f" -- last stderr: {tail}" if tail and not error else "")
                                            + " (press r to restart)")
        self._done.set()


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exited with status {code}"
