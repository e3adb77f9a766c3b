"""The export document (`docs/export-schema.json`): its kind, version, columns and shape.

An export is one JSON document: the host, the command, and one row per measured
configuration in base units (seconds, bytes, per-second rates). CSV and Markdown are
views of the same rows.
"""
from __future__ import annotations

import time
from typing import Any

EXPORT_KIND = "neurontui-export"
EXPORT_SCHEMA = 1
FORMATS = (".json", ".csv", ".md")
SEED_NOTE = "mean of a loop incl. first call, no percentiles"
PERCENTILE_KEYS = ("p50", "p90", "p95", "p99", "p99.9", "min", "max", "mean")


def latency_column(key: str) -> str:
    """'p99.9' -> 'latency_p99_9_seconds'."""
    return f"latency_{key.replace('.', '_')}_seconds"


# The CSV columns, in order: every scalar of a row. Nested series (windows, per-core) are JSON only.
COLUMNS = (
    "status", "reason", "origin", "method",
    "host_label", "host_instance_type", "host_cpu_model", "host_gpu_name", "hostname",
    "model", "params", "backend", "device_name", "device_count", "cores_used",
    "precision", "mode", "batch", "concurrency", "scenario", "qps",
    "compile_seconds", "load_seconds", "cached", "artifact_bytes", "device_memory_bytes",
    "copies", "bytes_per_copy", "copies_fit", "memory_source", "copies_stopped",
    "seq_len_dist", "buckets", "padding_ratio",
    "completed", "errors", "duration_seconds", "throughput_per_second",
    *(latency_column(k) for k in PERCENTILE_KEYS), "latency_count",
    "stability", "host_others_cpu_share", "host_steal_cpu_share", "core_kind", "core_utilization_mean", "started_at",
)
TELEMETRY_COLUMNS = ("kind", "index", "utilization_mean", "utilization_max",
                     "memory_used_mean_bytes", "memory_used_max_bytes", "samples")


def new_document(host: dict[str, Any], command: list[str]) -> dict[str, Any]:
    return {
        "schema": EXPORT_SCHEMA,
        "kind": EXPORT_KIND,
        "tool": "neurontui",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": list(command),
        "host": host,
        "complete": False,
        "interrupted_by": None,
        "rows": [],
        "telemetry": None,
    }
