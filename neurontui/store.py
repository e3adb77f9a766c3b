"""The Store: latest snapshot, bounded history, workload state, events and source health.

Every source writes here and every consumer (TUI, exporter, recorder, export) reads here;
no consumer talks to a source. Thread-safe. Memory is bounded: history, windows and the
event log are ring buffers, so a run of hours costs what a run of minutes does.
Published snapshots are never mutated afterwards, so readers may keep references.
"""
from __future__ import annotations

import copy
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from itertools import groupby
from operator import attrgetter
from typing import Any, Callable

from workloads.protocol import Error, Hello, Phase, Ready, Window
from workloads.rules import effective_backend
from workloads.text import clean_text

from .run import WINDOW_POINTS, RunRecord
from .telemetry import EccCounters, Snapshot

HISTORY_POINTS = 3600  # one hour at neuron-monitor's 1 s period; also the 15 min window at 4 Hz
EVENT_LINES = 500
MAX_NAMES_PER_RUNTIME = 64  # distinct status (or error) names summed per runtime; newer ones are dropped
ECC_EVENT_TYPES = ("mem_ecc_corrected", "mem_ecc_uncorrected", "sram_ecc_corrected", "sram_ecc_uncorrected")
_ECC_COUNTS = attrgetter(*ECC_EVENT_TYPES)


@dataclass(frozen=True)
class HistoryPoint:
    time: float
    utilization: dict[str, float]  # mean utilization per core kind present
    per_core: tuple[float | None, ...]  # utilization of each core of the snapshot, in its order


@dataclass(frozen=True)
class LogEvent:
    time: float
    level: str  # "info" | "warning" | "error" | "hint"
    source: str  # "workload", "neuron-monitor", "host", "hint", ...
    text: str


@dataclass
class SourceHealth:
    name: str
    up: bool = False
    last_sample_time: float | None = None
    samples: int = 0
    restarts: int = 0
    bad_lines: int = 0
    last_bad_line: str = ""
    last_error: str = ""
    down_since: float | None = None  # set while the source is out


@dataclass
class RuntimeTotals:
    """Counters that only move forward, summed from neuron-monitor's per-period figures."""

    status: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)


@dataclass
class WorkloadState:
    config: dict[str, Any] = field(default_factory=dict)  # the flags the child was started with
    state: str = "idle"  # idle | starting | <phase> | running | paused | exited | crashed
    pid: int | None = None
    hello: Hello | None = None
    phase: Phase | None = None
    ready: Ready | None = None
    last_error: Error | None = None
    exit_code: int | None = None
    run_id: int = 0  # increments on every (re)start; consumers dim figures of older runs
    run: RunRecord = field(default_factory=RunRecord)
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=50))

    @property
    def windows(self) -> deque[Window]:
        """The ring of the latest windows (plots, per-window series); totals are in `run`."""
        return self.run.windows

    @property
    def backend(self) -> str:
        """The backend the run uses: what the child reported, else what was asked for."""
        return effective_backend(self.config.get("backend", ""), self.hello.backend if self.hello else None)

    def copy(self) -> WorkloadState:
        """A copy a reader (the screen, an export) may keep while reader threads move on (take
        it under the Store's lock)."""
        view = copy.copy(self)
        view.run = self.run.copy()
        view.stderr_tail = deque(self.stderr_tail, maxlen=self.stderr_tail.maxlen)
        return view


Listener = Callable[[str], None]  # "snapshot", "workload" (an event of the child), "run" (started, state), "event", "health"


class Store:
    def __init__(self, history_points: int = HISTORY_POINTS, event_lines: int = EVENT_LINES,
                 window_points: int = WINDOW_POINTS) -> None:
        self._lock = threading.RLock()
        self.window_points = window_points
        self._listeners: list[Listener] = []
        self.started = time.time()
        self.latest: Snapshot | None = None
        self.history: deque[HistoryPoint] = deque(maxlen=history_points)
        self.workload = WorkloadState(run=RunRecord(window_points))
        self.events: deque[LogEvent] = deque(maxlen=event_lines)
        self.health: dict[str, SourceHealth] = {}
        self.runtime_totals: dict[str, RuntimeTotals] = {}
        # ECC events per (device index, event type), summed from each report's counts like
        # AWS's bridge does, so the exported counter only moves forward
        self.ecc_totals: dict[tuple[int, str], int] = {}
        self._ecc_keys: dict[int, tuple[tuple[int, str], ...]] = {}  # the devices ecc_totals counts, their keys
        self._ecc_quiet: list[EccCounters] | None = None  # the last report's devices, when none counted an event
        self._hints_shown: set[str] = set()
        self._names_dropped_logged = False

    # -- subscription -------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _notify(self, what: str) -> None:
        for listener in list(self._listeners):
            listener(what)

    def lock(self) -> threading.RLock:
        """Hold while reading several fields that must agree (e.g. a Prometheus scrape)."""
        return self._lock

    # -- telemetry ----------------------------------------------------------------------
    def publish_snapshot(self, snapshot: Snapshot) -> None:
        per_core = tuple([core.utilization for core in snapshot.cores])
        # cores of a kind come in runs (NeuronCores, then vCPUs): a slice per run, not a step per core
        per_kind: dict[str, list[float]] = {}
        start = 0
        for kind, run in groupby([core.kind for core in snapshot.cores]):
            end = start + len(list(run))
            per_kind.setdefault(kind, []).extend([value for value in per_core[start:end] if value is not None])
            start = end
        point = HistoryPoint(
            time=snapshot.time,
            utilization={kind: sum(values) / len(values) for kind, values in per_kind.items() if values},
            per_core=per_core,
        )
        with self._lock:
            self.latest = snapshot
            self.history.append(point)
            run = self.workload.run
            if run.window_count and self.workload.state == "running":  # measuring: not warm-up, not paused
                run.add_snapshot(snapshot)
            seen = set()
            names_dropped = 0
            for runtime in snapshot.runtimes:
                seen.add(runtime.key)
                totals = self.runtime_totals.setdefault(runtime.key, RuntimeTotals())
                names_dropped += _add_counts(totals.status, runtime.status)
                names_dropped += _add_counts(totals.errors, runtime.errors)
            for gone in set(self.runtime_totals) - seen:
                del self.runtime_totals[gone]
            if snapshot.ecc:  # a report without ECC data keeps every total
                self._add_ecc(snapshot.ecc)
            health = self._health(snapshot.source)
            health.up = True
            health.samples += 1
            health.last_sample_time = snapshot.time
            health.down_since = None
        if names_dropped and not self._names_dropped_logged:
            self._names_dropped_logged = True
            self.log("warning", snapshot.source, f"more than {MAX_NAMES_PER_RUNTIME} status or error names for "
                                                 "one runtime; further names are not counted")
        self._notify("snapshot")

    def _add_ecc(self, devices: list[EccCounters]) -> None:
        """Add each device's counts to its totals (under the lock); a device gone from the report leaves.
        A device's four keys are made once; a count of zero (most, most periods) adds nothing, and
        the same devices as last time, again without an event, are not walked at all."""
        if devices == self._ecc_quiet:
            return
        totals, keys_of = self.ecc_totals, self._ecc_keys
        quiet = True
        for device in devices:
            keys = keys_of.get(device.device_index)
            if keys is None:
                keys = keys_of[device.device_index] = tuple((device.device_index, kind) for kind in ECC_EVENT_TYPES)
                for key in keys:
                    totals.setdefault(key, 0)
            counts = _ECC_COUNTS(device)
            if any(counts):
                quiet = False
                for key, count in zip(keys, counts):
                    if count and count > 0:  # a counter never moves backwards, whatever a report says
                        totals[key] += count
        present = {device.device_index for device in devices}
        if len(keys_of) > len(present):  # every device present has its keys: some other device left
            for index in [index for index in keys_of if index not in present]:
                for key in keys_of.pop(index):
                    del totals[key]
        self._ecc_quiet = list(devices) if quiet else None

    # -- source health ------------------------------------------------------------------
    def _health(self, name: str) -> SourceHealth:
        if name not in self.health:
            self.health[name] = SourceHealth(name)
        return self.health[name]

    def source_up(self, name: str) -> None:
        with self._lock:
            health = self._health(name)
            health.up = True
            health.down_since = None
        self._notify("health")

    def source_down(self, name: str, reason: str, restarting: bool = True) -> None:
        with self._lock:
            health = self._health(name)
            was_up = health.up or health.down_since is None
            health.up = False
            health.last_error = reason
            if health.down_since is None:
                health.down_since = time.time()
            if restarting:
                health.restarts += 1
        if was_up:
            self.log("error", name, reason)
        self._notify("health")

    def bad_line(self, name: str, line: str | bytes, reason: str) -> None:
        """Count an unreadable line; keep the last one (shortened) for display."""
        if isinstance(line, bytes):
            line = line[:1000].decode("utf-8", "replace")  # a 10 MB line is shown by its start
        line = line.rstrip("\r\n")
        with self._lock:
            health = self._health(name)
            health.bad_lines += 1
            health.last_bad_line = clean_text(line[:200])  # shown on screen: outside text
            health.last_error = clean_text(reason)
            first = health.bad_lines == 1
        if first:
            self.log("warning", name, f"unreadable line skipped ({reason}); further ones are counted")
        self._notify("health")

    # -- workload -----------------------------------------------------------------------
    def workload_starting(self, config: dict[str, Any], pid: int | None) -> None:
        with self._lock:
            previous = self.workload
            self.workload = WorkloadState(config=dict(config), state="starting", pid=pid,
                                          run_id=previous.run_id + 1, run=RunRecord(self.window_points))
        self._notify("run")

    def workload_event(self, event: Hello | Phase | Ready | Window | Error) -> None:
        with self._lock:
            wl = self.workload
            if isinstance(event, Hello):
                wl.hello = event
            elif isinstance(event, Phase):
                wl.phase = event
                wl.state = event.phase
            elif isinstance(event, Ready):
                wl.ready = event
            elif isinstance(event, Window):
                wl.run.add_window(event)
                if wl.state not in ("paused",):
                    wl.state = "running"
            elif isinstance(event, Error):
                wl.last_error = event
        self._notify("workload")

    def workload_state(self, state: str, exit_code: int | None = None) -> None:
        with self._lock:
            self.workload.state = state
            if exit_code is not None:
                self.workload.exit_code = exit_code
        self._notify("run")

    def workload_stderr(self, line: str) -> None:
        with self._lock:
            self.workload.stderr_tail.append(line)

    # -- events -------------------------------------------------------------------------
    def log(self, level: str, source: str, text: str) -> None:
        with self._lock:
            self.events.append(LogEvent(time.time(), level, source, text))
        self._notify("event")

    def hint_once(self, key: str, text: str) -> bool:
        """Log a hint the first time its key is seen; returns whether it was new."""
        with self._lock:
            if key in self._hints_shown:
                return False
            self._hints_shown.add(key)
        self.log("hint", "hint", text)
        return True


def _add_counts(into: dict[str, int], period: dict[str, int]) -> int:
    """Add a period's counts; returns how many new names were refused (beyond MAX_NAMES_PER_RUNTIME)."""
    refused = 0
    for name, count in period.items():
        if name not in into and len(into) >= MAX_NAMES_PER_RUNTIME:
            refused += 1
            continue
        # a counter never moves backwards, whatever a report says
        into[name] = into.get(name, 0) + max(count, 0)
    return refused
