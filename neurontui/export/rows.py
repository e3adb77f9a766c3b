"""One export row per measured run, read from its run record (neurontui/run.py).

Measured the way DESIGN.md's "Measuring honestly" asks: only the child's windows count
(warm-up excluded), latency comes from the merged histogram (never a mean of a loop),
throughput = completed / measured window time, so `completed / duration_seconds` is the
reported throughput by construction. The run record holds every window's totals, so a run
longer than the ring of windows kept for plots still exports all it measured.
"""
from __future__ import annotations

from typing import Any

from workloads.config import WorkloadConfig
from workloads.protocol import PERCENTILES, Ready, percentile_key
from workloads.rules import core_kind

from ..host_info import host_label
from ..run import BUCKET_LATENCY_KEYS, RunFigures
from ..store import WorkloadState
from ..workload import describe_exit
from .schema import PERCENTILE_KEYS, latency_column

# A child that says it cannot do a combination is skipped, not failed.
SKIP_ERROR_KINDS = ("unsupported", "backend-unavailable", "usage")


def row_verdict(workload: WorkloadState, interrupted_by: str | None = None) -> tuple[str, str | None]:
    """A row's status (ok | skipped | interrupted | failed) and reason, in the export schema's terms.

    `interrupted_by` names the signal that cut a run short of its planned end.
    """
    error = workload.last_error
    measured = workload.run.window_count > 0
    if error is not None and error.fatal and error.kind in SKIP_ERROR_KINDS and not measured:
        return "skipped", f"{error.kind}: {error.message}"
    if interrupted_by is not None:
        return "interrupted", f"stopped by {interrupted_by}"
    if error is not None and error.kind == "hung":  # the watchdog stopped it: say so, not "killed by SIGTERM"
        return "failed", f"hung: {error.message}"
    if workload.state == "crashed" or error is not None and error.fatal:
        detail = f"{error.kind}: {error.message}" if error else (list(workload.stderr_tail) or [""])[-1]
        return "failed", describe_exit(workload.exit_code) + (f": {detail}" if detail else "")
    if not workload.run.completed:
        return "failed", "no samples completed"
    if workload.state not in ("exited", "idle"):
        return "ok", f"exported while {workload.state}: the figures so far"
    return "ok", None


def build_row(workload: WorkloadState, config: WorkloadConfig, host: dict[str, Any], status: str,
              reason: str | None, started_at: str | None) -> dict[str, Any]:
    """The row of `workload`'s run (a copy taken under the Store's lock, or one no thread writes)."""
    run = workload.run
    figures = run.figures()
    hello, ready = workload.hello, workload.ready
    backend = workload.backend or config.backend
    kind = core_kind(backend)
    device_count = {"cpu": 1, "cuda": host.get("gpu_count") or None,
                    "neuron": host.get("neuron_device_count")}.get(backend)
    windows = list(run.windows)
    return {
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
        **capacity_columns(ready, config, figures),
        "completed": figures.completed, "errors": figures.errors, "duration_seconds": figures.measured_seconds,
        "throughput_per_second": figures.throughput,
        **{latency_column(key): figures.latency.get(key) for key in PERCENTILE_KEYS},
        "latency_count": figures.latency_count,
        "stability": figures.stability,
        "host_others_cpu_share": run.host_others_share,
        "host_steal_cpu_share": run.host_steal_share,
        "core_kind": kind,
        "core_utilization_mean": run.telemetry.mean_utilization(kind) if kind else None,
        "started_at": started_at,
        # JSON only: the series behind the summary
        "window_count": figures.windows,
        "per_core_completed": list(figures.per_core_completed),
        "per_core_utilization": run.telemetry.cores(),
        "windows": [{"start": w.start, "end": w.end, "completed": w.completed, "errors": w.errors,
                     "throughput": w.throughput,
                     "percentiles": {percentile_key(q): w.percentiles.get(percentile_key(q)) for q in PERCENTILES}
                     | {k: w.percentiles.get(k) for k in ("min", "max", "mean")},
                     "per_core_completed": list(w.per_core_completed)} for w in windows],
        "latency_histogram": run.histogram.to_dict(),
        **capacity_series(ready, figures),
    }


def capacity_columns(ready: Ready | None, config: WorkloadConfig, figures: RunFigures) -> dict[str, Any]:
    """The scalar columns of --copies and variable-length input (None where the run had neither)."""
    copies = ready is not None and (ready.copies > 1 or ready.bytes_per_copy is not None)
    return {
        "copies": ready.copies if ready else None,
        "bytes_per_copy": ready.bytes_per_copy if ready else None,
        "copies_fit": ready.copies_fit if ready else None,
        "memory_source": (ready.memory_source or None) if copies else None,
        "copies_stopped": (ready.copies_stopped or None) if copies else None,
        "seq_len_dist": config.seq_len_dist,
        "buckets": ",".join(str(n) for n in ready.bucket_lengths) if ready and ready.bucket_lengths else None,
        "padding_ratio": figures.padding_ratio,
    }


def capacity_series(ready: Ready | None, figures: RunFigures) -> dict[str, Any]:
    """JSON only: memory after each load, per-copy completions and mean latency, per-bucket figures."""
    lengths = list(ready.bucket_lengths) if ready else []
    compile_seconds = list(ready.bucket_compile_seconds) if ready else []
    per_bucket = []
    for index, completed in enumerate(figures.bucket_completed):
        latency = figures.bucket_latency[index] if index < len(figures.bucket_latency) else {}
        per_bucket.append({
            "length": lengths[index] if index < len(lengths) else None, "completed": completed,
            **{latency_column(key): latency.get(key) for key in BUCKET_LATENCY_KEYS},
            "compile_seconds": compile_seconds[index] if index < len(compile_seconds) else None})
    return {
        "memory_before_copies_bytes": ready.memory_before_copies if ready else None,
        "memory_after_each_load_bytes": list(ready.memory_after_each_load) if ready else [],
        "memory_total_bytes": ready.memory_total_bytes if ready else None,
        "per_copy_completed": list(figures.per_copy_completed),
        "per_copy_latency_mean_seconds": list(figures.per_copy_mean_latency),
        "per_bucket": per_bucket,
        "real_tokens": figures.real_tokens, "pad_tokens": figures.pad_tokens,
    }
