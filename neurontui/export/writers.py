"""Export writers: JSON, CSV and Markdown views of one export document, written atomically.

Markdown numbers go through neurontui/format.py like every human-readable figure.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from typing import Any

from ..format import format_bytes, format_number, format_ratio, format_seconds, format_table_rate
from .schema import COLUMNS, FORMATS, SEED_NOTE, TELEMETRY_COLUMNS, latency_column


# -- writers ------------------------------------------------------------------------------

def render(document: dict[str, Any], path: str) -> str:
    extension = os.path.splitext(path)[1].lower()
    if extension == ".json":
        return render_json(document)
    if extension == ".csv":
        return render_csv(document)
    if extension == ".md":
        return render_markdown(document)
    raise ValueError(f"unknown export format {extension!r}: use {', '.join(FORMATS)}")


def render_json(document: dict[str, Any]) -> str:
    # NaN/Infinity are not JSON: a value that is not finite is written as null (unknown).
    return json.dumps(_finite(document), indent=1, allow_nan=False) + "\n"


def render_csv(document: dict[str, Any]) -> str:
    """One row per configuration; a telemetry-only export gives one row per core instead."""
    out = io.StringIO()
    if document["rows"] or not document.get("telemetry"):
        writer = csv.DictWriter(out, COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in document["rows"]:
            writer.writerow({k: _csv_cell(row.get(k)) for k in COLUMNS})
    else:
        writer = csv.DictWriter(out, TELEMETRY_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for core in document["telemetry"]["cores"]:
            writer.writerow({k: _csv_cell(core.get(k)) for k in TELEMETRY_COLUMNS})
    return out.getvalue()


def render_markdown(document: dict[str, Any]) -> str:
    lines = [f"# neurontui export ({document.get('created', '')})", ""]
    host = document.get("host") or {}
    lines.append("Host: " + ", ".join(f"{k} {v}" for k, v in host.items() if v not in (None, "", 0)))
    lines.append("")
    if document["rows"]:
        lines += markdown_table(
            ["model", "host", "backend", "device", "precision", "mode", "batch", "conc", "p50", "p99", "samples/s",
             "stable", "core util", "note"],
            [[r.get("model"), r.get("host_label"), r.get("backend"), r.get("device_name"), r.get("precision"),
              r.get("mode"), r.get("batch"), r.get("concurrency"), latency_cell(r, "p50"), latency_cell(r, "p99"),
              format_table_rate(r.get("throughput_per_second")), r.get("stability"),
              format_ratio(r.get("core_utilization_mean")), _note(r)] for r in document["rows"]])
    telemetry = document.get("telemetry")
    if telemetry:
        lines += ["", f"Telemetry from {telemetry.get('source')}: {telemetry.get('samples')} samples over "
                      f"{format_number(telemetry.get('duration_seconds'))} s", ""]
        lines += markdown_table(
            ["core", "util mean", "util max", "memory mean", "memory max"],
            [[f"{c['kind']} {c['index']}", format_ratio(c.get("utilization_mean")), format_ratio(c.get("utilization_max")),
              format_bytes(c.get("memory_used_mean_bytes")), format_bytes(c.get("memory_used_max_bytes"))]
             for c in telemetry["cores"]])
        memory = telemetry.get("memory") or {}
        if memory:
            lines += [""] + markdown_table(
                ["memory", "mean", "max"],
                [[name, format_bytes(stats.get("mean")), format_bytes(stats.get("max"))] for name, stats in memory.items()])
    if not document.get("complete"):
        lines += ["", f"Incomplete run (interrupted by {document.get('interrupted_by') or 'an error'})."]
    return "\n".join(lines) + "\n"


def markdown_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(value: Any) -> str:
        return "-" if value is None else str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def check_writable(path: str) -> str | None:
    """Why `path` cannot take an export, in one line; None when it can. Run before measuring."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in FORMATS:
        return f"cannot export to {path}: unknown format {extension or '(none)'}; use {', '.join(FORMATS)}"
    if os.path.isdir(path):
        return f"cannot export to {path}: it is a directory"
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        return f"cannot export to {path}: directory {directory} does not exist"
    try:  # the only reliable test (root ignores modes, read-only mounts ignore them too)
        handle, probe = tempfile.mkstemp(dir=directory, prefix=".neurontui-probe-")
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        return f"cannot export to {path}: {exc.strerror or exc}"
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return f"cannot export to {path}: file is not writable"
    return None


def write_atomic(path: str, text: str) -> None:
    """Write via a temp file in the same directory and rename: readers see old or new, never half."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        # a lone surrogate (from a hostile report or a child's text) is written escaped, not fatal
        with os.fdopen(handle, "w", encoding="utf-8", errors="backslashreplace", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


# -- cells ------------------------------------------------------------------------------

def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _csv_cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return value


def latency_cell(row: dict[str, Any], key: str) -> str:
    """A percentile; for seed rows (no percentiles) the mean, labelled as such, in the p50 column."""
    value = row.get(latency_column(key))
    if value is None and key == "p50" and row.get(latency_column("mean")) is not None:
        return format_seconds(row[latency_column("mean")]) + " (mean)"
    return format_seconds(value)


def _note(row: dict[str, Any]) -> str:
    if row.get("origin") == "seed":
        return "seed: " + SEED_NOTE
    if row.get("status") != "ok":
        return f"{row.get('status')}: {row.get('reason') or ''}".strip()
    return ""
