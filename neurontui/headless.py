"""Runs without a screen: `--headless` (serve metrics), `--export PATH`, `--sweep SPEC`.

Never imports Textual. Each configuration is a fresh workload child; its windows become
one row (results.py) and the export is rewritten atomically after every row, so an
interrupted sweep (Ctrl-C, SIGTERM, SIGHUP) keeps every finished row on disk.
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

from .hints import compute_hints, update_hints
from .host_info import describe_host
from .progress import Progress, describe
from .report import check_writable, new_document, render, render_json, write_atomic
from .results import TelemetryStats, build_row
from .store import LogEvent, Store, WorkloadState
from .sweep import SweepError, expand, parse_sweep
from .sweep import check as check_sweep
from .workload import WorkloadProcess, describe_exit

DEFAULT_EXPORT_SECONDS = 10.0
TICK_SECONDS = 0.25
STDERR_LINES_SHOWN = 5  # of a failed child, under its row's summary
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# A child that says it cannot do a combination is skipped, not failed.
SKIP_ERROR_KINDS = ("unsupported", "backend-unavailable", "usage")


def run_headless(args: argparse.Namespace, config: WorkloadConfig) -> int:
    return HeadlessRun(args, config).run()


class HeadlessRun:
    def __init__(self, args: argparse.Namespace, config: WorkloadConfig) -> None:
        self.args = args
        self.config = config
        self.store = Store()
        self.progress = Progress()
        self.stop = threading.Event()
        self.stopped_by: str | None = None
        self.stats = TelemetryStats(self.store)
        self.document: dict[str, Any] = new_document({}, ["neurontui", *sys.argv[1:]])
        self.export_failed = False

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
        exporter = source = None
        try:
            if args.headless and args.prometheus_port:
                from .exporter import ExporterError, start_exporter

                try:
                    exporter = start_exporter(self.store, args)
                except ExporterError as exc:
                    print(f"neurontui: {exc}", file=sys.stderr)
                    return 1
                if exporter is not None:
                    self.progress.message(f"serving metrics on {exporter.url}")
            from .sources import open_source

            source = open_source(args, self.store)
            if source is not None:
                source.start()
            if args.no_workload:
                self._watch_telemetry(source)
            else:
                for number, config in enumerate(configs, 1):
                    if self.stop.is_set():
                        break
                    self._measure(config, f"[{number}/{len(configs)}] " if len(configs) > 1 else "")
        finally:
            if source is not None:
                source.stop()
            if exporter is not None:
                exporter.close()
            self.stats.close()
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
            # the workload's own failures end up in its row's summary line
            if event.level in ("error", "warning", "hint") and event.source != "workload":
                where = "" if event.source == event.level else f"{event.source}: "
                self.progress.message(f"{event.level}: {where}{event.text}")

    # -- one configuration ----------------------------------------------------------------
    def _measure(self, config: WorkloadConfig, prefix: str) -> None:
        label = (f"{prefix}{config.model} {config.backend} {config.mode} batch {config.batch} "
                 f"concurrency {config.concurrency}")
        started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.stats.active = False
        self.stats.reset()
        problems = config.validate()
        if problems:  # refused before starting a child: nothing of the previous run may leak in
            self._add_row(config, "skipped", "; ".join(problems), started_at, label, WorkloadState())
            return
        child = WorkloadProcess(self.store)
        child.start(config)
        while not child.wait(TICK_SECONDS):
            if self.stop.is_set():
                child.stop()
                break
            if self.store.workload.windows:
                self.stats.active = True  # utilization counts over the measured run only
            update_hints(self.store)  # printed once each by _on_store
            text, fraction = describe(self.store.workload, config.duration)
            self.progress.update(f"{label}: {text}", fraction)
        child.stop()
        self.stats.active = False
        status, reason = self._verdict(config)
        if status == "interrupted" and not self.store.workload.completed_total:
            return  # nothing was measured: no row
        self._add_row(config, status, reason, started_at, label, self.store.workload)

    def _verdict(self, config: WorkloadConfig) -> tuple[str, str | None]:
        workload = self.store.workload
        error = workload.last_error
        if error is not None and error.fatal and error.kind in SKIP_ERROR_KINDS and not workload.windows:
            return "skipped", f"{error.kind}: {error.message}"
        # without --duration a run lasts until a signal: then the signal is its normal end
        if self.stop.is_set() and config.duration is not None:
            return "interrupted", f"stopped by {self.stopped_by}"
        if workload.state == "crashed" or error is not None and error.fatal:
            detail = f"{error.kind}: {error.message}" if error else (list(workload.stderr_tail) or [""])[-1]
            return "failed", f"{describe_exit(workload.exit_code)}" + (f": {detail}" if detail else "")
        if not workload.completed_total:
            return "failed", "no samples completed"
        return "ok", None

    def _add_row(self, config: WorkloadConfig, status: str, reason: str | None, started_at: str,
                 label: str, workload: WorkloadState) -> None:
        host = describe_host(self.store)
        row = build_row(workload, config, host, self.stats, status, reason, started_at)
        with self.store.lock():
            row["hints"] = [hint.text for hint in compute_hints(workload, self.store.latest)]
        self.document["host"] = host
        self.document["rows"].append(row)
        self.progress.message(f"{label}: {summarize(row)}")
        if status == "failed":
            for line in list(self.store.workload.stderr_tail)[-STDERR_LINES_SHOWN:]:
                self.progress.message(f"    {line}")
        self._save()

    # -- telemetry only -------------------------------------------------------------------
    def _watch_telemetry(self, source: Any) -> None:
        duration = self.config.duration
        started = time.monotonic()
        self.stats.active = True
        while not self.stop.wait(TICK_SECONDS):
            elapsed = time.monotonic() - started
            if duration is not None and elapsed >= duration:
                break
            if source is not None and source.finished.is_set():
                break
            update_hints(self.store)
            left = f", {duration - elapsed:.1f} s left" if duration else " (Ctrl-C ends)"
            self.progress.update(f"watching telemetry: {self.stats.samples} samples, {elapsed:.1f} s{left}",
                                 elapsed / duration if duration else None)
        self.stats.active = False
        self.document["host"] = describe_host(self.store)
        self.document["telemetry"] = self.stats.summary()
        if not self.stats.samples:
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
    return (f"{row['throughput_per_second']:,.1f}/s over {row['duration_seconds']:.1f} s, "
            f"p50 {p50 * 1e3:.3g} ms, p99 {p99 * 1e3:.3g} ms, {row['stability']}"
            if p50 is not None and p99 is not None else f"{row['completed']} completed")
