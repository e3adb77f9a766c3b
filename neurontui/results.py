"""Turn what the Store saw during one measured run into an export row.

Measured the way DESIGN.md's "Measuring honestly" asks: only the child's windows count
(warm-up excluded), latency comes from the merged histogram (never a mean of a loop),
throughput = completed / summed window time, so `completed / duration_seconds` is the
reported throughput by construction, and stability follows perf_analyzer (last 3 windows
within 10% on throughput).
"""
from __future__ import annotations

import threading
from typing import Any

from workloads.config import WorkloadConfig
from workloads.protocol import PERCENTILES, LatencyHistogram, percentile_key

from .host_info import host_label
from .report import PERCENTILE_KEYS, latency_column
from .store import Store, WorkloadState

STABLE_WINDOWS = 3
STABLE_TOLERANCE = 0.10
CORE_KIND_OF_BACKEND = {"cpu": "vcpu", "cuda": "gpu", "neuron": "neuroncore"}


class TelemetryStats:
    """Per-core utilization and memory statistics over the snapshots published while active."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self.active = False
        self._last_seen: object = None
        self.reset()
        store.subscribe(self._on_store)

    def reset(self) -> None:
        with self._lock:
            self.samples = 0
            self.source: str | None = None
            self.first_time: float | None = None
            self.last_time: float | None = None
            self._cores: dict[tuple[str, int], dict[str, float]] = {}
            self._memory: dict[str, dict[str, float]] = {}

    def close(self) -> None:
        self.store.unsubscribe(self._on_store)

    def _on_store(self, what: str) -> None:
        if what != "snapshot" or not self.active:
            return
        snapshot = self.store.latest
        if snapshot is None or snapshot is self._last_seen:
            return
        with self._lock:
            self._last_seen = snapshot
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
        with self._lock:
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
        with self._lock:
            memory = {name: {"mean": _mean(stats, "value"), "max": stats.get("value_max")}
                      for name, stats in self._memory.items() if stats.get("value_n")}
            duration = (self.last_time - self.first_time) if self.first_time is not None else None
            source, samples = self.source, self.samples
        return {"source": source, "samples": samples, "duration_seconds": duration,
                "cores": self.cores(), "memory": memory}


def _add(stats: dict[str, float], name: str, value: float | None) -> None:
    if value is None:
        return
    stats[name + "_sum"] = stats.get(name + "_sum", 0.0) + value
    stats[name + "_n"] = stats.get(name + "_n", 0) + 1
    stats[name + "_max"] = max(stats.get(name + "_max", value), value)


def _mean(stats: dict[str, float], name: str) -> float | None:
    n = stats.get(name + "_n")
    return stats[name + "_sum"] / n if n else None


def stability(throughputs: list[float]) -> str:
    """perf_analyzer's rule: the last 3 windows' throughputs each within 10% of their mean."""
    last = throughputs[-STABLE_WINDOWS:]
    if len(last) < STABLE_WINDOWS:
        return "too few windows"
    mean = sum(last) / len(last)
    if mean > 0 and all(abs(t - mean) <= STABLE_TOLERANCE * mean for t in last):
        return "stable"
    return "unstable"


def build_row(workload: WorkloadState, config: WorkloadConfig, host: dict[str, Any], stats: TelemetryStats,
              status: str, reason: str | None, started_at: str) -> dict[str, Any]:
    windows = list(workload.windows)
    hello, ready = workload.hello, workload.ready
    histogram = LatencyHistogram()
    for window in windows:
        histogram.merge(window.histogram())
    completed = sum(w.completed for w in windows)
    duration = sum(max(w.duration, 0.0) for w in windows)
    backend = hello.backend if hello and hello.backend else config.backend
    core_kind = CORE_KIND_OF_BACKEND.get(backend)
    device_count = {"cpu": 1, "cuda": host.get("gpu_count") or None,
                    "neuron": host.get("neuron_device_count")}.get(backend)
    summary = histogram.summary()
    row: dict[str, Any] = {
        "status": status, "reason": reason, "origin": "measured", "method": "windows-after-warmup",
        "host_label": host_label(host), "host_instance_type": host.get("instance_type"),
        "host_cpu_model": host.get("cpu_model"), "host_gpu_name": host.get("gpu_name"),
        "hostname": host.get("hostname"),
        "model": config.model, "params": ready.params if ready else None, "backend": backend,
        "device_name": (ready.device_name if ready and ready.device_name else None),
        "device_count": device_count, "cores_used": ready.cores_used if ready else None,
        "precision": hello.precision if hello else config.precision, "mode": config.mode, "batch": config.batch,
        "concurrency": config.concurrency, "scenario": config.scenario, "qps": config.qps,
        "compile_seconds": ready.compile_seconds if ready else None,
        "load_seconds": ready.load_seconds if ready else None, "cached": ready.cached if ready else None,
        "artifact_bytes": ready.artifact_bytes if ready else None,
        "device_memory_bytes": ready.device_memory_bytes if ready else None,
        "completed": completed, "errors": sum(w.errors for w in windows), "duration_seconds": duration,
        "throughput_per_second": completed / duration if duration > 0 else None,
        **{latency_column(key): summary.get(key) for key in PERCENTILE_KEYS},
        "latency_count": summary["count"],
        "stability": stability([w.throughput for w in windows]),
        "core_kind": core_kind,
        "core_utilization_mean": stats.mean_utilization(core_kind) if core_kind else None,
        "started_at": started_at,
        # JSON only: the series behind the summary
        "per_core_utilization": stats.cores(),
        "windows": [{"start": w.start, "end": w.end, "completed": w.completed, "errors": w.errors,
                     "throughput": w.throughput,
                     "percentiles": {percentile_key(q): w.percentiles.get(percentile_key(q)) for q in PERCENTILES}
                     | {k: w.percentiles.get(k) for k in ("min", "max", "mean")},
                     "per_core_completed": list(w.per_core_completed)} for w in windows],
        "latency_histogram": histogram.to_dict(),
    }
    return row
