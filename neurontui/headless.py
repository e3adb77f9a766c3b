"""Runs without a screen: `--headless` (serve metrics), `--export PATH`, `--sweep SPEC`.

A thin driver over a Session (session.py); never imports Textual. Each configuration is a
fresh workload child; its run record becomes one row and the export is rewritten atomically
after every row, so an interrupted sweep (Ctrl-C, SIGTERM, SIGHUP) keeps every finished row.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from dataclasses import replace
from typing import Any

from workloads.config import WorkloadConfig

from .export.schema import new_document
from .export.writers import check_writable, render, render_json, write_atomic
from .format import format_bytes, format_ratio, format_rate, format_seconds
from .host_info import describe_host
from .progress import Progress, describe
from .run import TelemetryStats
from .session import Session
from .store import LogEvent, WorkloadState
from .sweep import SweepError, expand, parse_sweep
from .sweep import check as check_sweep

DEFAULT_EXPORT_SECONDS = 10.0
TICK_SECONDS = 0.25
STDERR_LINES_SHOWN = 5  # of a failed child, under its row's summary
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run_headless(args: argparse.Namespace, config: WorkloadConfig) -> int:
    return HeadlessRun(args, config).run()


class HeadlessRun:
    def __init__(self, args: argparse.Namespace, config: WorkloadConfig) -> None:
        self.args = args
        self.config = config
        self.session = Session.from_args(args, None if args.no_workload else config)
        self.store = self.session.store
        self.progress = Progress()
        self.stop = threading.Event()
        self.stopped_by: str | None = None
        self.document: dict[str, Any] = new_document({}, ["neurontui", *sys.argv[1:]])
        self.export_failed = False
        self.watched = TelemetryStats()  # --no-workload: the telemetry of the whole watch

    # -- entry --------------------------------------------------------------------------
    def run(self) -> int:
        args = self.args
        if args.export and (problem := check_writable(args.export)):
            print(f"neurontui: {problem}", file=sys.stderr)
            return 2
        try:
            configs = self._configs()
        except SweepError as exc:
            print(f"neurontui: {exc}", file=sys.stderr)
            return 2
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        self.store.subscribe(self._on_store)
        if args.no_workload:
            self.store.subscribe(self._take_snapshot)
        try:
            from .exporter import ExporterError

            try:
                self.session.start(metrics=bool(args.headless), metrics_required=True)
            except ExporterError as exc:
                print(f"neurontui: {exc}", file=sys.stderr)
                return 1
            if self.session.exporter is not None:
                self.progress.message(f"serving metrics on {self.session.metrics_url}")
            if args.no_workload:
                self._watch_telemetry()
            else:
                for number, config in enumerate(configs, 1):
                    if self.stop.is_set():
                        break
                    self._measure(config, f"[{number}/{len(configs)}] " if len(configs) > 1 else "")
        finally:
            self.session.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self._finish()

    def _configs(self) -> list[WorkloadConfig]:
        axes = parse_sweep(self.args.sweep) if self.args.sweep else {}
        if axes:
            check_sweep(self.config, axes)  # before anything is printed or measured
        config = self.config
        if (self.args.export or self.args.sweep) and config.duration is None and not self.args.no_workload:
            # An export needs an end; say which one was chosen.
            config = replace(config, duration=DEFAULT_EXPORT_SECONDS)
            self.progress.message(f"no --duration given: measuring {DEFAULT_EXPORT_SECONDS:g} s per configuration")
        return expand(config, axes) if axes else [config]

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.stopped_by is None:
            self.stopped_by = signal.Signals(signum).name
        self.stop.set()

    def _on_store(self, what: str) -> None:
        """Errors, warnings and hints reach stderr as they happen (the TUI shows them in its log)."""
        if what == "event" and self.store.events:
            event: LogEvent = self.store.events[-1]
            # the workload's own failures end up in its row's summary line; a replay says when it ends
            if (event.level in ("error", "warning", "hint") and event.source != "workload"
                    or event.source == "replay"):
                where = "" if event.source == event.level else f"{event.source}: "
                self.progress.message(f"{event.level}: {where}{event.text}")

    # -- one configuration ----------------------------------------------------------------
    def _measure(self, config: WorkloadConfig, prefix: str) -> None:
        label = (f"{prefix}{config.model} {config.backend} {config.mode} batch {config.batch} "
                 f"concurrency {config.concurrency}")
        session = self.session
        problems = config.validate()
        if problems:  # refused before starting a child: nothing of the previous run may leak in
            self._add_row(label, WorkloadState(config=config.as_dict()), verdict=("skipped", "; ".join(problems)))
            return
        session.config = config
        session.restart().result()
        while not session.wait(TICK_SECONDS):
            if self.stop.is_set():
                break
            text, fraction = describe(self.store.workload, config.duration)
            workload = self.store.workload
            self.progress.update(f"{label}: {text}", fraction, stage=f"{workload.state}:{bool(workload.run.window_count)}")
        session.stop_workload()
        # without --duration a run lasts until a signal: then the signal is its normal end
        interrupted_by = self.stopped_by if self.stop.is_set() and config.duration is not None else None
        workload = session.workload()
        if interrupted_by and not workload.run.completed:
            return  # nothing was measured: no row
        self._add_row(label, workload, interrupted_by=interrupted_by)

    def _add_row(self, label: str, workload: WorkloadState, interrupted_by: str | None = None,
                 verdict: tuple[str, str | None] | None = None) -> None:
        host = describe_host(self.store)
        row = self.session.row(workload, interrupted_by, host=host, verdict=verdict)
        self.document["host"] = host
        self.document["rows"].append(row)
        self.progress.message(f"{label}: {summarize(row)}")
        if row["status"] == "failed":
            for line in list(workload.stderr_tail)[-STDERR_LINES_SHOWN:]:
                self.progress.message(f"    {line}")
        self._save()

    # -- telemetry only -------------------------------------------------------------------
    def _take_snapshot(self, what: str) -> None:
        """--no-workload: every snapshot counts (subscribed before the source starts: a replay's
        first report comes at once)."""
        if what == "snapshot" and self.store.latest is not None:
            self.watched.add(self.store.latest)

    def _watch_telemetry(self) -> None:
        duration, source, stats = self.config.duration, self.session.source, self.watched
        started = time.monotonic()
        try:
            while not self.stop.wait(TICK_SECONDS):
                elapsed = time.monotonic() - started
                if duration is not None and elapsed >= duration:
                    break
                if source is not None and source.finished.is_set():
                    break
                left = f", {duration - elapsed:.1f} s left" if duration else " (Ctrl-C ends)"
                self.progress.update(f"watching telemetry: {stats.samples} samples, {elapsed:.1f} s{left}",
                                     elapsed / duration if duration else None, stage="watching")
        finally:
            self.store.unsubscribe(self._take_snapshot)
        self.document["host"] = describe_host(self.store)
        self.document["telemetry"] = stats.summary()
        if not stats.samples:
            self.progress.message("no telemetry arrived during the run")

    # -- results --------------------------------------------------------------------------
    def _save(self) -> bool:
        if not self.args.export:
            return True
        try:
            write_atomic(self.args.export, render(self.document, self.args.export))
        except OSError as exc:
            if not self.export_failed:
                self.progress.message(f"neurontui: could not write {self.args.export}: {exc.strerror or exc}; "
                                      "results stay in memory and the write is retried after each row")
            self.export_failed = True
            return False
        self.export_failed = False
        return True

    def _finish(self) -> int:
        # Cut short = a signal came before the planned end; a run without one ends by a signal.
        planned_end = self.config.duration is not None or not self.args.no_workload
        cut_short = self.stop.is_set() and planned_end
        self.document["complete"] = not cut_short
        self.document["interrupted_by"] = self.stopped_by if cut_short else None
        if self.args.export and not self._save():
            time.sleep(1.0)  # one more try: space may have been freed
            if not self._save():
                self.progress.message("neurontui: the export could not be written; here it is as JSON:")
                sys.stderr.write(render_json(self.document))
                return 1
        self.progress.close()
        if self.args.export:
            telemetry = self.document["telemetry"]
            what = (f"telemetry of {telemetry['samples']} samples" if telemetry is not None
                    else f"{len(self.document['rows'])} row(s)")
            self.progress.message(f"wrote {what} to {self.args.export}")
        if cut_short and (self.args.export or self.args.sweep):  # the results on disk are incomplete
            return 128 + signal.Signals[self.stopped_by or "SIGINT"].value
        rows = self.document["rows"]
        if rows and not any(row["status"] in ("ok", "skipped") for row in rows):
            return 1
        return 0


def summarize(row: dict[str, Any]) -> str:
    if row["status"] != "ok":
        return f"{row['status']}: {row['reason']}"
    p50, p99 = row.get("latency_p50_seconds"), row.get("latency_p99_seconds")
    if p50 is None or p99 is None:
        return f"{row['completed']} completed"
    errors = f", {row['errors']} errors" if row.get("errors") else ""
    capacity = ""
    if (row.get("copies") or 1) > 1:
        capacity += f", {row['copies']} copies x {format_bytes(row.get('bytes_per_copy'))}"
    if row.get("padding_ratio") is not None:
        capacity += f", padding {format_ratio(row['padding_ratio'])} (buckets {row.get('buckets')})"
    return (f"{format_rate(row['throughput_per_second'])} over {row['duration_seconds']:.1f} s, "
            f"p50 {format_seconds(p50)}, p99 {format_seconds(p99)}{errors}{capacity}, {row['stability']}")
