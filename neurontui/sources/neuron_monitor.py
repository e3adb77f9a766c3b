"""Spawn neuron-monitor, read one report per line, restart it with backoff when it dies.

The command is an argument list (from `--monitor-cmd` split by shlex, never a shell),
started through `parent_death_exec` in its own session, so it dies with us even if we
are SIGKILLed and `stop()` can end its whole process group. Lines are read as bytes
up to 64 MiB each (a trn1 report is tens of KB; a 64 KiB limit would break it); a longer
one is skipped without being held and counted as a bad line.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from typing import IO

from workloads.text import clean_text

from .. import child_python
from ..lines import REPORT_LINE_BYTES, STDERR_LINE_BYTES, TooLong, capped_lines
from ..store import Store
from .base import Source
from .neuron_report import SOURCE, parse_report
from .recorder import Recorder

BACKOFF_INITIAL_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 5.0
STOP_GRACE_SECONDS = 2.0


class NeuronMonitorSource(Source):
    name = SOURCE
    watch_stalls = True

    def __init__(self, store: Store, command: list[str], recorder: Recorder | None = None,
                 backoff_initial: float = BACKOFF_INITIAL_SECONDS, backoff_max: float = BACKOFF_MAX_SECONDS) -> None:
        if not command:
            raise ValueError("empty neuron-monitor command")
        super().__init__(store, recorder)
        self.command = list(command)
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._proc: subprocess.Popen | None = None
        self._proc_lock = threading.Lock()
        self._stderr_tail: deque[str] = deque(maxlen=5)  # of the running monitor

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc and proc.poll() is None else None

    def argv(self) -> list[str]:
        return child_python.module_argv(sys.executable, "neurontui.sources.parent_death_exec", *self.command)

    def run(self) -> None:
        backoff = self.backoff_initial
        while not self.stopping:
            reports, reason = self._run_once()
            if self.stopping:
                break
            self.store.source_down(self.name, f"{reason}; restarting in {backoff:.1f} s")
            if self._stopping.wait(backoff):
                break
            backoff = self.backoff_initial if reports else min(backoff * 2, self.backoff_max)

    def _run_once(self) -> tuple[int, str]:
        """Run the command until it exits; returns (reports read, why it ended)."""
        env = dict(os.environ)
        env["NEURONTUI_PARENT_PID"] = str(os.getpid())
        env = child_python.child_env(env)
        try:
            with self._proc_lock:
                if self.stopping:
                    return 0, "stopped"
                proc = self._proc = subprocess.Popen(
                    self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    env=env, start_new_session=True, close_fds=True)
        except OSError as exc:
            return 0, f"cannot start {self.command[0]}: {exc}"
        stderr_tail = self._stderr_tail = deque(maxlen=5)
        drain = threading.Thread(target=_drain, args=(proc.stderr, stderr_tail), daemon=True,
                                 name="neuron-monitor-stderr")
        drain.start()
        reports = self.read_stream(proc.stdout)
        code = proc.wait()
        drain.join(1.0)
        tail = " | ".join(stderr_tail)
        program = os.path.basename(self.command[0])
        return reports, f"{program} {_describe_exit(code)}" + (f": {tail}" if tail else "")

    def read_stream(self, stream: IO[bytes]) -> int:
        """Parse each line of `stream` into the Store; returns how many reports were read."""
        reports = 0
        for line in capped_lines(stream, REPORT_LINE_BYTES):
            if self.stopping:
                break
            if isinstance(line, TooLong):
                self.store.bad_line(self.name, line.head, line.reason("report"))
                continue
            if not line.strip():
                continue
            now = time.time()
            result = parse_report(line, time=now)
            if result.snapshot is None:
                self.store.bad_line(self.name, line, result.problems[0])
                continue
            if self.recorder:
                self.recorder.report(line, now, self.name)
            health = self.store.health.get(self.name)
            down_since = health.down_since if health else None
            self.publish(result.snapshot)
            if down_since is not None:
                self.store.log("info", self.name, f"{self.name} is back after {now - down_since:.1f} s out")
            reports += 1
        return reports

    def stall_reason(self, silent: float) -> str:
        tail = list(self._stderr_tail)
        return (f"{os.path.basename(self.command[0])} sent no report for {silent:.0f} s"
                + (f"; last stderr: {tail[-1]}" if tail else ""))

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        with self._proc_lock:
            proc = self._proc
        if proc is not None:
            _end_group(proc)
        super().stop(timeout)


def _end_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left of it after a grace period."""
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(proc, signal.SIGKILL)  # also helpers it started that ignored SIGTERM
    proc.wait()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _drain(stream: IO[bytes], tail: deque[str]) -> None:
    for raw in capped_lines(stream, STDERR_LINE_BYTES):
        if isinstance(raw, TooLong):
            continue  # a log line of megabytes says nothing a tail can show
        line = clean_text(raw.decode("utf-8", "replace").strip())
        if line:
            tail.append(line[:300])


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"
