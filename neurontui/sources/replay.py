"""`--monitor replay:PATH`: play recorded telemetry as if it were live.

PATH holds neuron-monitor reports (one JSON per line, or a single pretty-printed
report) or a neurontui recording (`--record`). Reports are paced by their own periods,
recordings by their timestamps, both divided by `--replay-speed`, against fixed deadlines
(a monotonic start plus the cumulative gaps), so the time spent parsing and publishing a
report does not add up into drift. Snapshots carry the time they are played at, so they
line up with everything else on the screen.
"""
from __future__ import annotations

import json
import os
import statistics
import time
from typing import Any, Iterator

from ..lines import REPORT_LINE_BYTES, TooLong, capped_lines
from ..store import Store
from ..telemetry import Snapshot
from .base import Source
from .neuron_parser import _loads
from .neuron_report import parse_report
from .recorder import Recorder, snapshot_from_json

SOURCE = "replay"
DEFAULT_PERIOD_SECONDS = 1.0
MAX_PRETTY_REPORT_BYTES = REPORT_LINE_BYTES  # one report, however pretty-printed, is far smaller
MAX_GAP_SECONDS = 60.0  # a recording paused for an hour replays without the hour
# Further behind the schedule than this (a machine too slow for the speed, a suspended process),
# the schedule starts again from now rather than playing the backlog in a burst.
MAX_LAG_SECONDS = 1.0


class ReplaySource(Source):
    name = SOURCE

    def __init__(self, store: Store, path: str, speed: float = 1.0, loop: bool = False,
                 recorder: Recorder | None = None) -> None:
        super().__init__(store, recorder)
        self.path = path
        self.speed = speed
        self.loop = loop
        self.played = 0
        self._due: float | None = None  # monotonic deadline of the sample played last

    def run(self) -> None:
        try:
            first_pass = True
            while not self.stopping:
                played_before = self.played
                self.play_file(first_pass)
                first_pass = False
                if not self.loop or self.played == played_before:
                    break
        except OSError as exc:
            self.store.source_down(self.name, f"cannot replay {self.path}: {exc.strerror or exc}", restarting=False)
        finally:
            if not self.stopping:
                self.store.log("info", self.name, finished_message(self.path, self.played, self.loop))
            self.finished.set()

    def play_file(self, first_pass: bool) -> None:
        # Only the very first sample plays at once; a loop's restart waits like any other.
        first = first_pass
        previous: float | None = None
        report_sources: set[str] = set()
        for entry in self.entries():
            if self.stopping:
                return
            recorded, snapshot = self.snapshot_of(entry, report_sources)
            if snapshot is None:
                continue
            if first:
                gap = 0.0
            elif recorded is not None and previous is not None:  # gap between two recorded samples
                gap = min(max(recorded - previous, 0.0), MAX_GAP_SECONDS)
            else:
                gap = _report_period(entry)  # a bare report covers its own period
            first, previous = False, recorded
            if self._wait_until_due(gap / self.speed):
                return
            snapshot.time = time.time()
            snapshot.source = self.name
            self.publish(snapshot)
            self.played += 1

    def _wait_until_due(self, interval: float) -> bool:
        """Wait until `interval` after the previous sample's deadline (not after its publishing
        ended, so processing time is absorbed); True when stopped meanwhile."""
        now = time.monotonic()
        if self._due is None or now - (self._due + interval) > MAX_LAG_SECONDS:
            self._due = now
        else:
            self._due += interval
        remaining = self._due - now
        return remaining > 0 and self._stopping.wait(remaining)

    def snapshot_of(self, entry: dict, report_sources: set[str]) -> tuple[float | None, Snapshot | None]:
        """(recorded time or None, snapshot) for one entry; (None, None) to skip it."""
        recorded = entry.get("t") if ("report" in entry or "snapshot" in entry) else None
        recorded = float(recorded) if isinstance(recorded, (int, float)) and not isinstance(recorded, bool) else None
        if "report" in entry and recorded is not None:  # a recording of neuron-monitor: replay the raw report
            report_sources.add(str(entry.get("source")))
            return self.parse(entry["report"], recorded)
        if "snapshot" in entry and recorded is not None:
            if str(entry.get("source")) in report_sources:
                return None, None  # the snapshot parsed from the report just played
            try:
                return recorded, snapshot_from_json(entry["snapshot"])
            except (TypeError, ValueError, KeyError, AttributeError) as exc:
                self.store.bad_line(self.name, json.dumps(entry)[:200], f"unreadable snapshot ({exc})")
                return None, None
        return self.parse(entry, None)

    def parse(self, report: Any, recorded: float | None) -> tuple[float | None, Snapshot | None]:
        result = parse_report(report if isinstance(report, dict) else str(report))
        if result.snapshot is None:
            self.store.bad_line(self.name, str(report)[:200], result.problems[0])
            return None, None
        return recorded, result.snapshot

    def entries(self) -> Iterator[dict]:
        """The file's JSON objects: one per line, or the whole file as one pretty-printed report.

        A first line that is not JSON alone means a pretty-printed report, or a recording whose
        first line was cut by a crash: if the whole file is not one report, read it as lines.
        """
        with open(self.path, "rb") as file:
            first = file.readline(MAX_PRETTY_REPORT_BYTES + 1)
            while first and not first.strip():
                first = file.readline(MAX_PRETTY_REPORT_BYTES + 1)
            try:
                _loads(_text(first))
            except (ValueError, RecursionError):
                whole = self._whole_report(first, file)
                if whole is not None:
                    yield whole
                    return
            file.seek(0)
            yield from self._lines(file)

    def _whole_report(self, first: bytes, file: Any) -> dict | None:
        if os.fstat(file.fileno()).st_size > MAX_PRETTY_REPORT_BYTES:
            return None
        raw = first + file.read(MAX_PRETTY_REPORT_BYTES + 1 - len(first))  # a device (/dev/zero) has no size
        if len(raw) > MAX_PRETTY_REPORT_BYTES:
            return None
        try:
            whole = _loads(_text(raw))
        except (ValueError, RecursionError):
            return None
        return whole if isinstance(whole, dict) else None

    def _lines(self, file: Any) -> Iterator[dict]:
        for line in capped_lines(file, REPORT_LINE_BYTES):
            if isinstance(line, TooLong):
                self.store.bad_line(self.name, line.head, line.reason("report"))
                continue
            if not line.strip():
                continue
            try:
                entry = _loads(_text(line))  # an integer too large for Python drops that value, not the line
            except (ValueError, RecursionError) as exc:
                self.store.bad_line(self.name, line, f"not JSON ({exc})")  # e.g. a line cut by a crash
                continue
            if isinstance(entry, dict):
                yield entry
            else:
                self.store.bad_line(self.name, line, "not a JSON object")


def finished_message(path: str, played: int, loop: bool) -> str:
    """The line that says a replay reached its end (headless prints it: the run ends with it)."""
    noun = "report" if played == 1 else "reports"
    return f"replay of {path} finished after {played} {noun}" + ("" if loop else " (--loop plays it again)")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _report_period(report: dict) -> float:
    """How long a neuron-monitor report covers: the median of its groups' periods."""
    periods = []
    groups: list[Any] = []
    system = report.get("system_data")
    if isinstance(system, dict):
        groups.extend(system.values())
    runtimes = report.get("neuron_runtime_data")
    for runtime in runtimes if isinstance(runtimes, list) else ():
        body = runtime.get("report") if isinstance(runtime, dict) else None
        if isinstance(body, dict):
            groups.extend(body.values())
    for group in groups:
        period = group.get("period") if isinstance(group, dict) else None
        if isinstance(period, (int, float)) and not isinstance(period, bool) and 0 < period < MAX_GAP_SECONDS:
            periods.append(float(period))
    return statistics.median(periods) if periods else DEFAULT_PERIOD_SECONDS
