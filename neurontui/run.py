"""The run record: one measured run's figures, each computed once, read by every consumer.

The Store owns one RunRecord per workload run. Each window event is taken once (its
histogram decoded once, by the protocol) and folded into whole-run totals: completed,
errors, measured seconds, the merged latency histogram, per-core completions, and with
--copies or variable-length input the per-copy completions and latency sums, per-bucket
completions and merged histograms, and real and padded tokens. A rolling
recent view (the last RECENT_SECONDS) gives the live figures, and the stability verdict
follows perf_analyzer's rule (workloads/rules.py). The screen, `/metrics`, progress lines,
hints and export rows read `figures()`; nothing re-merges windows. The ring of windows is
kept only for plots and the per-window series of an export, so a run longer than the ring
still reports every window it measured.

Utilization statistics count only while the run is measuring (after warm-up, not paused),
whether the export comes from `--export` or the dashboard's `e`.
"""
from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from workloads.buckets import MAX_BUCKETS
from workloads.copies import MAX_COPIES
from workloads.protocol import PERCENTILES, LatencyHistogram, Window, percentile_key
from workloads.rules import STABLE_WINDOWS, stability

from .telemetry import Snapshot

WINDOW_POINTS = 3600  # workload windows (~0.5 s each) kept for plots and series: 30 min
RECENT_SECONDS = 5.0  # the live figures merge the windows of the last few seconds
LATENCY_KEYS = tuple(percentile_key(q) for q in PERCENTILES) + ("min", "max", "mean")
BUCKET_LATENCY_KEYS = ("p50", "p99")  # per bucket: the typical request and the tail


@dataclass(frozen=True)
class RunFigures:
    """Every figure of a run at one moment, in base units; None where not known yet."""

    windows: int  # every window measured, not only those still in the ring
    completed: int
    errors: int
    measured_seconds: float
    throughput: float | None  # completed / measured_seconds: the run's samples per second
    latency: dict[str, float | None]  # whole run: p50 ... p99.9, min, max, mean (seconds)
    latency_count: int
    recent_throughput: float | None  # over the last RECENT_SECONDS of windows
    recent_latency: dict[str, float | None]
    stability: str  # stable | unstable | too few windows, with the reason a run is marked
    first_start: float | None  # unix seconds of the first measured window's start
    last_end: float | None
    per_core_completed: tuple[int, ...]
    # --copies: per copy (index as loaded), samples completed and their mean latency (seconds)
    per_copy_completed: tuple[int, ...] = ()
    per_copy_mean_latency: tuple[float | None, ...] = ()
    # variable-length input, per bucket of ready.bucket_lengths: samples and {p50, p99} seconds
    bucket_completed: tuple[int, ...] = ()
    bucket_latency: tuple[dict[str, float | None], ...] = ()
    real_tokens: int = 0
    pad_tokens: int = 0
    padding_ratio: float | None = None  # pad tokens / real tokens over the whole run


class TelemetryStats:
    """Per-core utilization and memory over the snapshots it is given (not thread-safe: the
    Store calls it under its lock)."""

    def __init__(self) -> None:
        self.samples = 0
        self.source: str | None = None
        self.first_time: float | None = None
        self.last_time: float | None = None
        self._cores: dict[tuple[str, int], dict[str, float]] = {}
        self._memory: dict[str, dict[str, float]] = {}

    def add(self, snapshot: Snapshot) -> None:
        self.samples += 1
        self.source = snapshot.source
        self.first_time = snapshot.time if self.first_time is None else self.first_time
        self.last_time = snapshot.time
        for core in snapshot.cores:
            stats = self._cores.setdefault((core.kind, core.index), {})
            _add(stats, "utilization", core.utilization)
            _add(stats, "memory", core.memory_used_bytes)
        memory = snapshot.memory
        for name, value in (("device_used_bytes", memory.device_used_bytes),
                            ("host_used_bytes", memory.host_used_bytes)):
            _add(self._memory.setdefault(name, {}), "value", value)

    def cores(self) -> list[dict[str, Any]]:
        return [{"kind": kind, "index": index,
                 "utilization_mean": _mean(stats, "utilization"), "utilization_max": stats.get("utilization_max"),
                 "memory_used_mean_bytes": _mean(stats, "memory"), "memory_used_max_bytes": stats.get("memory_max"),
                 "samples": int(stats.get("utilization_n", 0))}
                for (kind, index), stats in sorted(self._cores.items())]

    def mean_utilization(self, kind: str) -> float | None:
        means = [c["utilization_mean"] for c in self.cores() if c["kind"] == kind and c["utilization_mean"] is not None]
        return sum(means) / len(means) if means else None

    def summary(self) -> dict[str, Any]:
        """The `telemetry` section of an export."""
        memory = {name: {"mean": _mean(stats, "value"), "max": stats.get("value_max")}
                  for name, stats in self._memory.items() if stats.get("value_n")}
        duration = (self.last_time - self.first_time) if self.first_time is not None else None
        return {"source": self.source, "samples": self.samples, "duration_seconds": duration,
                "cores": self.cores(), "memory": memory}

    def copy(self) -> TelemetryStats:
        return copy.deepcopy(self)


def _add(stats: dict[str, float], name: str, value: float | None) -> None:
    if value is None:
        return
    stats[name + "_sum"] = stats.get(name + "_sum", 0.0) + value
    stats[name + "_n"] = stats.get(name + "_n", 0) + 1
    stats[name + "_max"] = max(stats.get(name + "_max", value), value)


def _mean(stats: dict[str, float], name: str) -> float | None:
    n = stats.get(name + "_n")
    return stats[name + "_sum"] / n if n else None


@dataclass
class RunRecord:
    """Whole-run totals of one workload run; mutated only under the Store's lock."""

    window_points: int = WINDOW_POINTS
    windows: deque[Window] = field(init=False)
    window_count: int = 0
    completed: int = 0
    errors: int = 0
    measured_seconds: float = 0.0
    histogram: LatencyHistogram = field(default_factory=LatencyHistogram)
    per_core_completed: list[int] = field(default_factory=list)
    # Bounded like the child's own lists: at most MAX_COPIES copies and MAX_BUCKETS buckets.
    per_copy_completed: list[int] = field(default_factory=list)
    per_copy_latency_seconds: list[float] = field(default_factory=list)
    bucket_completed: list[int] = field(default_factory=list)
    bucket_histograms: list[LatencyHistogram] = field(default_factory=list)
    real_tokens: int = 0
    pad_tokens: int = 0
    telemetry: TelemetryStats = field(default_factory=TelemetryStats)
    host_busy: str | None = None  # why the host's other load makes the figures suspect, if it does
    host_others_share: float | None = None  # of all vCPU time while measuring, other processes took this
    host_steal_share: float | None = None  # and the hypervisor this
    _first_start: float | None = None
    _throughputs: deque[float] = field(init=False)
    _figures: RunFigures | None = None

    def __post_init__(self) -> None:
        self.windows = deque(maxlen=self.window_points)
        self._throughputs = deque(maxlen=STABLE_WINDOWS)

    def add_window(self, window: Window) -> None:
        self.windows.append(window)
        self.window_count += 1
        self.completed += window.completed
        self.errors += window.errors
        self.measured_seconds += max(window.duration, 0.0)
        self.histogram.merge(window.histogram())
        for index, count in enumerate(window.per_core_completed):
            if index == len(self.per_core_completed):
                self.per_core_completed.append(0)
            self.per_core_completed[index] += count
        _add_each(self.per_copy_completed, window.per_copy_completed[:MAX_COPIES], 0)
        _add_each(self.per_copy_latency_seconds, window.per_copy_latency_seconds[:MAX_COPIES], 0.0)
        _add_each(self.bucket_completed, window.bucket_completed[:MAX_BUCKETS], 0)
        for index, hist in enumerate(window.bucket_latency[:MAX_BUCKETS]):
            if index == len(self.bucket_histograms):
                self.bucket_histograms.append(LatencyHistogram())
            self.bucket_histograms[index].merge(LatencyHistogram.from_dict(hist))  # checked by the protocol
        self.real_tokens += window.real_tokens
        self.pad_tokens += window.pad_tokens
        if self._first_start is None:
            self._first_start = window.start
        self._throughputs.append(window.throughput)
        self._figures = None

    def add_snapshot(self, snapshot: Snapshot) -> None:
        """Telemetry taken while this run measures."""
        self.telemetry.add(snapshot)

    def mark_host_load(self, others_share: float, steal_share: float, busy_reason: str | None) -> None:
        """The host's load outside neurontui over the measured run so far (neurontui/host_load.py)."""
        self.host_others_share, self.host_steal_share = others_share, steal_share
        if busy_reason != self.host_busy:
            self.host_busy = busy_reason
            self._figures = None

    @property
    def last_window(self) -> Window | None:
        return self.windows[-1] if self.windows else None

    def figures(self) -> RunFigures:
        """The run's figures, computed once per change."""
        if self._figures is None:
            self._figures = self._compute()
        return self._figures

    def _compute(self) -> RunFigures:
        recent = LatencyHistogram()
        recent_completed, recent_seconds = 0, 0.0
        last = self.last_window
        for window in reversed(self.windows):
            if last is None or window.end < last.end - RECENT_SECONDS:
                break
            recent.merge(window.histogram())
            recent_completed += window.completed
            recent_seconds += max(window.duration, 0.0)
        verdict = stability(self._throughputs)
        if self.host_busy:
            verdict = f"unstable ({self.host_busy})"
        return RunFigures(
            windows=self.window_count, completed=self.completed, errors=self.errors,
            measured_seconds=self.measured_seconds,
            throughput=self.completed / self.measured_seconds if self.measured_seconds > 0 else None,
            latency=_latency(self.histogram), latency_count=self.histogram.count,
            recent_throughput=recent_completed / recent_seconds if recent_seconds > 0 else None,
            recent_latency=_latency(recent), stability=verdict,
            first_start=self._first_start, last_end=last.end if last is not None else None,
            per_core_completed=tuple(self.per_core_completed),
            per_copy_completed=tuple(self.per_copy_completed),
            per_copy_mean_latency=tuple(total / n if n else None for n, total
                                        in zip(self.per_copy_completed, self.per_copy_latency_seconds)),
            bucket_completed=tuple(self.bucket_completed),
            bucket_latency=tuple({key: hist.percentile(q) for key, q in zip(BUCKET_LATENCY_KEYS, (50.0, 99.0))}
                                 for hist in self.bucket_histograms),
            real_tokens=self.real_tokens, pad_tokens=self.pad_tokens,
            padding_ratio=self.pad_tokens / self.real_tokens if self.real_tokens else None)

    def copy(self) -> RunRecord:
        """A copy a reader may keep while the Store's record moves on (take it under the lock)."""
        clone = copy.copy(self)
        clone.windows = deque(self.windows, maxlen=self.window_points)
        clone._throughputs = deque(self._throughputs, maxlen=STABLE_WINDOWS)
        clone.histogram = LatencyHistogram()
        clone.histogram.merge(self.histogram)
        clone.per_core_completed = list(self.per_core_completed)
        clone.per_copy_completed = list(self.per_copy_completed)
        clone.per_copy_latency_seconds = list(self.per_copy_latency_seconds)
        clone.bucket_completed = list(self.bucket_completed)
        clone.bucket_histograms = [LatencyHistogram() for _ in self.bucket_histograms]
        for mine, theirs in zip(clone.bucket_histograms, self.bucket_histograms):
            mine.merge(theirs)
        clone.telemetry = self.telemetry.copy()
        return clone


def _add_each(totals: list, values: list, zero: float) -> None:
    """totals[i] += values[i], growing `totals` as a longer list arrives."""
    for index, value in enumerate(values):
        if index == len(totals):
            totals.append(zero)
        totals[index] += value


def _latency(histogram: LatencyHistogram) -> dict[str, float | None]:
    summary = histogram.summary()
    return {key: summary.get(key) for key in LATENCY_KEYS}
