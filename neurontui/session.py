"""One measuring session: the Store, the telemetry source, the Prometheus exporter, the
workload child and its run record, and the periodic work (hints, phase log).

The dashboard (tui/app.py) and the headless drivers (headless.py) are thin layers over it:
they choose what to run and show or write what the session measured; the rules of a run and
of its export row live here and below, once.

Workload (re)starts block for seconds (stop, grace, spawn), so they run on one control
thread; a burst of switches starts only the last configuration asked for.
"""
from __future__ import annotations

import sys
import threading
import time
from argparse import Namespace
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from workloads.config import WorkloadConfig

from .export.rows import build_row, row_verdict
from .export.schema import new_document
from .export.writers import render, write_atomic
from .hints import compute_hints, update_hints
from .host_info import describe_host
from .host_load import HostLoadMeter, host_busy_reason
from .store import Store, WorkloadState
from .workload import WorkloadProcess

TICK_SECONDS = 0.25  # hints and the phase log follow the Store this often
# The host-load meter reads /proc for each of our processes and threads: a verdict summed over a
# run needs no more than a reading a second (four were a fifth of the parent's own CPU in a run).
HOST_LOAD_SECONDS = 1.0


class Session:
    def __init__(self, store: Store | None = None, config: WorkloadConfig | None = None,
                 child: WorkloadProcess | None = None, args: Namespace | None = None) -> None:
        """`config` is what the user asked for (None: watch the hardware only); `child` runs it
        (None: figures come from elsewhere, as in the screen tests); `args` names the telemetry
        source and the exporter (None: neither)."""
        self.store = store if store is not None else Store()
        self.config = config
        self.child = child
        self.args = args
        self.source: Any = None
        self.exporter: Any = None
        self.metrics_error = ""
        self._control = ThreadPoolExecutor(max_workers=1, thread_name_prefix="workload-control")
        self._generation = 0
        self._closed = threading.Event()
        self._close_lock = threading.Lock()
        self._tick_lock = threading.Lock()  # the ticker thread and a driver may tick at once
        self._ticker: threading.Thread | None = None
        self._phases_logged: tuple[int, set[str]] = (0, set())
        self._host_load: HostLoadMeter | None = None  # made on start: its first reading is the baseline
        self._host_load_run = 0  # the run the meter accumulates for
        self._host_busy_warned_run = 0  # a run's load can cross the limit again and again: one warning
        self._driver_ticks = False
        self.started = False

    @classmethod
    def from_args(cls, args: Namespace, config: WorkloadConfig | None) -> Session:
        store = Store()
        child = None if config is None else WorkloadProcess(store)
        return cls(store, config, child, args)

    @property
    def metrics_url(self) -> str:
        return self.exporter.url if self.exporter is not None else ""

    # -- lifetime -----------------------------------------------------------------------------
    def start(self, metrics: bool = True, metrics_required: bool = False, driver_ticks: bool = False) -> None:
        """Serve metrics (when asked and the port is not 0), start the source and the periodic work.

        An exporter that cannot serve raises ExporterError when `metrics_required`; otherwise the
        session runs without metrics and says why in the event log and `metrics_error`.
        `driver_ticks`: the driver calls tick() whenever the Store changed (the TUI, before each
        screen update), so the ticker thread only reads the host load, once a second.
        """
        self.started = True
        self._driver_ticks = driver_ticks
        self._host_load = HostLoadMeter()
        args = self.args
        if args is not None and metrics and getattr(args, "prometheus_port", 0):
            from .exporter import ExporterError, start_exporter

            try:
                self.exporter = start_exporter(self.store, args)
            except ExporterError as exc:
                if metrics_required:
                    raise
                self.metrics_error = str(exc)
                self.store.log("error", "exporter", f"{exc}; running without metrics")
        if args is not None:
            from .sources import open_source

            self.source = open_source(args, self.store)
            if self.source is not None:
                self.source.start()
        self._ticker = threading.Thread(target=self._tick, name="session-ticker", daemon=True)
        self._ticker.start()

    def close(self) -> None:
        """Stop the child (after any queued start), the source and the exporter; nothing outlives us."""
        with self._close_lock:
            if self._closed.is_set():
                return
            self._closed.set()
        self._generation += 1  # queued starts become no-ops
        self._control.shutdown(wait=True, cancel_futures=True)
        if self.child is not None:
            self.child.stop()
        if self.source is not None:
            self.source.stop()
        if self.exporter is not None:
            self.exporter.close()

    # -- the workload ---------------------------------------------------------------------------
    def switch(self, **changes: Any) -> tuple[list[str], Future | None]:
        """Apply new settings: the child restarts with them. Returns the problems that refused
        them (nothing restarts then) and the start's future."""
        if self.config is None:
            return ["no workload in this session (--no-workload)"], None
        wanted = replace(self.config, **changes)
        problems = wanted.validate()
        if problems:
            return problems, None
        self.config = wanted
        return [], self.restart()

    def restart(self) -> Future:
        """(Re)start the child with the current settings, on the control thread; the latest wins."""
        self._generation += 1
        return self._control.submit(self._start_if_latest, self._generation)

    def _start_if_latest(self, generation: int) -> None:
        if generation != self._generation or self.config is None or self.child is None:
            return
        try:
            self.child.start(self.config)
        except OSError as exc:
            self.store.log("error", "workload", f"cannot start the workload: {exc.strerror or exc}")

    def pause_or_resume(self) -> Future | None:
        child = self.child
        if child is None:
            return None
        resuming = child.paused
        self.store.log("info", "workload", "resuming the load" if resuming else
                       "pausing the load: the run's figures stay; measured time stops until it resumes")
        return self._control.submit(child.resume if resuming else child.pause)

    def wait(self, timeout: float) -> bool:
        """Wait for the current child to exit and its output to be read; True once it has."""
        return self.child.wait(timeout) if self.child is not None else True

    def stop_workload(self) -> None:
        if self.child is not None:
            self.child.stop()

    def workload(self) -> WorkloadState:
        """A copy of the current run's state that no thread writes to."""
        with self.store.lock():
            return self.store.workload.copy()

    # -- results ------------------------------------------------------------------------------------
    def row(self, workload: WorkloadState | None = None, interrupted_by: str | None = None,
            host: dict[str, Any] | None = None, verdict: tuple[str, str | None] | None = None) -> dict[str, Any]:
        """The export row of a run (the current one by default), verdict and hints included;
        `verdict` overrides the rule's for a run refused before it started."""
        workload = workload if workload is not None else self.workload()
        config = WorkloadConfig.from_dict(workload.config) if workload.config else self.config or WorkloadConfig()
        status, reason = verdict or row_verdict(workload, interrupted_by)
        figures = workload.run.figures()
        started = (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(figures.first_start))
                   if figures.first_start is not None else None)
        row = build_row(workload, config, host if host is not None else describe_host(self.store), status, reason,
                        started)
        with self.store.lock():
            row["hints"] = [hint.text for hint in compute_hints(workload, self.store.latest)]
        return row

    def export_current(self, directory: Path) -> Path:
        """`e`: the current run as a one-row export in `directory`; raises OSError when it cannot."""
        workload = self.workload()
        host = describe_host(self.store)
        document = new_document(host, ["neurontui", *sys.argv[1:]])
        document["rows"].append(self.row(workload, host=host))
        document["telemetry"] = workload.run.telemetry.summary()
        document["complete"] = True
        path = directory / export_name(workload, time.time())
        write_atomic(str(path), render(document, str(path)))
        return path

    # -- periodic work ------------------------------------------------------------------------------
    def _tick(self) -> None:
        host_load_due = 0.0
        while not self._closed.wait(HOST_LOAD_SECONDS if self._driver_ticks else TICK_SECONDS):
            if not self._driver_ticks:
                self.tick()
            if time.monotonic() >= host_load_due:
                host_load_due = time.monotonic() + HOST_LOAD_SECONDS
                self.watch_host_load()

    def tick(self) -> None:
        """Hints for what the Store shows now, and each phase of the run once in the event log."""
        with self._tick_lock:
            update_hints(self.store)
            with self.store.lock():
                wl = self.store.workload
                run_id, phase = wl.run_id, wl.phase
            logged_run, logged = self._phases_logged
            if run_id != logged_run:
                self._phases_logged = (run_id, logged := set())
            if phase is not None and phase.phase not in logged:
                logged.add(phase.phase)
                self.store.log("info", "workload", phase.phase + (f": {phase.detail}" if phase.detail else ""))

    def watch_host_load(self) -> None:
        """CPU that other processes and the hypervisor take while a run measures marks its verdict."""
        with self._tick_lock:
            self._watch_host_load()

    def _watch_host_load(self) -> None:
        meter = self._host_load
        if meter is None or self.child is None:  # only a run this session measures (not a replayed scene)
            return
        with self.store.lock():
            wl = self.store.workload
            run_id, measuring = wl.run_id, wl.run.window_count > 0 and wl.state == "running"
        if not measuring:
            return
        if run_id != self._host_load_run:  # the first window of a run: count from here
            self._host_load_run = run_id
            meter.sample()
            meter.reset()
            return
        load = meter.sample()
        reason = host_busy_reason(load)
        with self.store.lock():
            run = self.store.workload.run
            if self.store.workload.run_id != run_id:
                return
            newly_busy = reason is not None and self._host_busy_warned_run != run_id
            run.mark_host_load(load.others_share, load.steal_share, reason)
        if newly_busy:
            self._host_busy_warned_run = run_id
            self.store.log("warning", "host", f"{reason}: this run's figures are marked unstable")


def export_name(workload: WorkloadState, now: float) -> str:
    """neurontui-<model>-<backend>-<mode>-b<batch>-<time>.json, with the backend the run used."""
    config = workload.config
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return (f"neurontui-{config.get('model')}-{workload.backend}-{config.get('mode')}-b{config.get('batch')}"
            f"-{stamp}.json")
