"""Export documents (JSON/CSV/Markdown writers) and `neurontui report`, the comparison of exports.

An export is one JSON document (`docs/export-schema.json`): the host, the command, and one
row per measured configuration in base units (seconds, bytes, per-second rates). CSV and
Markdown are views of the same rows. `neurontui report A.json B.json` merges exports from
different hosts into per-model tables with speed-ups against a baseline, plus a terminal
chart; the seed's hand-timed numbers (`docs/seed-measurements.json`) are a valid input.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import tempfile
import time
from typing import Any

EXPORT_KIND = "neurontui-export"
EXPORT_SCHEMA = 1
FORMATS = (".json", ".csv", ".md")
SEED_NOTE = "mean of a loop incl. first call, no percentiles"
PERCENTILE_KEYS = ("p50", "p90", "p95", "p99", "p99.9", "min", "max", "mean")

# The CSV columns, in order: every scalar of a row. Nested series (windows, per-core) are JSON only.
COLUMNS = (
    "status", "reason", "origin", "method",
    "host_label", "host_instance_type", "host_cpu_model", "host_gpu_name", "hostname",
    "model", "params", "backend", "device_name", "device_count", "cores_used",
    "precision", "mode", "batch", "concurrency", "scenario", "qps",
    "compile_seconds", "load_seconds", "cached", "artifact_bytes", "device_memory_bytes",
    "completed", "errors", "duration_seconds", "throughput_per_second",
    *(f"latency_{k.replace('.', '_')}_seconds" for k in PERCENTILE_KEYS), "latency_count",
    "stability", "core_kind", "core_utilization_mean", "started_at",
)
TELEMETRY_COLUMNS = ("kind", "index", "utilization_mean", "utilization_max",
                     "memory_used_mean_bytes", "memory_used_max_bytes", "samples")


def latency_column(key: str) -> str:
    """'p99.9' -> 'latency_p99_9_seconds'."""
    return f"latency_{key.replace('.', '_')}_seconds"


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
              r.get("mode"), r.get("batch"), r.get("concurrency"), _latency_cell(r, "p50"), _latency_cell(r, "p99"),
              _rate(r.get("throughput_per_second")), r.get("stability"),
              _ratio(r.get("core_utilization_mean")), _note(r)] for r in document["rows"]])
    telemetry = document.get("telemetry")
    if telemetry:
        lines += ["", f"Telemetry from {telemetry.get('source')}: {telemetry.get('samples')} samples over "
                      f"{_num(telemetry.get('duration_seconds'))} s", ""]
        lines += markdown_table(
            ["core", "util mean", "util max", "memory mean", "memory max"],
            [[f"{c['kind']} {c['index']}", _ratio(c.get("utilization_mean")), _ratio(c.get("utilization_max")),
              _bytes(c.get("memory_used_mean_bytes")), _bytes(c.get("memory_used_max_bytes"))]
             for c in telemetry["cores"]])
        memory = telemetry.get("memory") or {}
        if memory:
            lines += [""] + markdown_table(
                ["memory", "mean", "max"],
                [[name, _bytes(stats.get("mean")), _bytes(stats.get("max"))] for name, stats in memory.items()])
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
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
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


# -- formatting at the edge -----------------------------------------------------------------

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


def _num(value: Any) -> str:
    return "-" if not isinstance(value, (int, float)) else f"{value:.3g}"


def _rate(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _ratio(value: Any) -> str:
    return "-" if not isinstance(value, (int, float)) else f"{value * 100:.0f}%"


def _bytes(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return "-"


def _seconds(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    if value < 1e-3:
        return f"{value * 1e6:.3g} us"
    return f"{value * 1e3:.3g} ms" if value < 1 else f"{value:.3g} s"


def _latency_cell(row: dict[str, Any], key: str) -> str:
    """A percentile; for seed rows (no percentiles) the mean, labelled as such, in the p50 column."""
    value = row.get(latency_column(key))
    if value is None and key == "p50" and row.get(latency_column("mean")) is not None:
        return _seconds(row[latency_column("mean")]) + " (mean)"
    return _seconds(value)


def _note(row: dict[str, Any]) -> str:
    if row.get("origin") == "seed":
        return "seed: " + SEED_NOTE
    if row.get("status") != "ok":
        return f"{row.get('status')}: {row.get('reason') or ''}".strip()
    return ""


# -- neurontui report: comparison of exports ---------------------------------------------------

def load_export(path: str) -> tuple[dict[str, Any] | None, str | None]:
    """(document, None) or (None, one-line reason)."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except OSError as exc:
        return None, f"{path}: {exc.strerror or exc}"
    except (ValueError, RecursionError) as exc:
        return None, f"{path}: not JSON ({exc})"
    if not isinstance(document, dict) or document.get("kind") != EXPORT_KIND:
        return None, f"{path}: not a neurontui export (no \"kind\": \"{EXPORT_KIND}\")"
    schema = document.get("schema")
    if not isinstance(schema, int) or schema > EXPORT_SCHEMA:
        return None, f"{path}: export schema {schema!r} is newer than this neurontui reads ({EXPORT_SCHEMA})"
    if not isinstance(document.get("rows"), list):
        return None, f"{path}: no rows"
    document["rows"] = [row for row in document["rows"] if isinstance(row, dict) and isinstance(row.get("model"), str)]
    return document, None


def _samples_per_second(row: dict[str, Any]) -> float | None:
    """Throughput counts samples (a batch of 8 completes 8), so rows of any batch compare."""
    value = row.get("throughput_per_second")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def _typical_latency(row: dict[str, Any]) -> float | None:
    """p50 when measured; the seed has only a mean."""
    for key in ("p50", "mean"):
        value = row.get(latency_column(key))
        if isinstance(value, (int, float)) and value > 0:
            return float(value)
    return None


def _matches(row: dict[str, Any], baseline: str) -> bool:
    wanted = baseline.lower()
    return any(str(row.get(k) or "").lower() == wanted
               for k in ("backend", "host_label", "host_instance_type", "hostname"))


def choose_baseline(rows: list[dict[str, Any]], row: dict[str, Any], baseline: str) -> dict[str, Any] | None:
    """The baseline row to compare `row` with: same model, matching `baseline`, closest configuration."""
    candidates = [r for r in rows if r["model"] == row["model"] and _matches(r, baseline)
                  and _samples_per_second(r) is not None]
    if not candidates:
        return None

    def distance(r: dict[str, Any]) -> tuple:
        return (r.get("batch") != row.get("batch"), r.get("concurrency") != row.get("concurrency"),
                r.get("origin") != row.get("origin"), r.get("mode") != "single", r.get("batch") != 1)

    return min(candidates, key=distance)


def comparison_tables(rows: list[dict[str, Any]], baseline: str) -> list[str]:
    """Markdown: per model, one row per host/backend/mode/batch with speed-ups against the baseline."""
    lines: list[str] = []
    ok = [r for r in rows if r.get("status", "ok") == "ok"]
    for model in sorted({r["model"] for r in ok}):
        mine = sorted((r for r in ok if r["model"] == model),
                      key=lambda r: (r.get("origin") != "seed", str(r.get("host_label")), str(r.get("backend")),
                                     str(r.get("mode")), r.get("batch") or 0, r.get("concurrency") or 0))
        table = []
        for r in mine:
            base = choose_baseline(ok, r, baseline)
            speedup = latency_gain = None
            if base is not None:
                speedup = _samples_per_second(r) / _samples_per_second(base)  # type: ignore[operator]
                if _typical_latency(r) and _typical_latency(base):
                    latency_gain = _typical_latency(base) / _typical_latency(r)  # type: ignore[operator]
            table.append([
                r.get("host_label"), r.get("backend"), r.get("device_name") or None, r.get("mode"), r.get("batch"),
                r.get("concurrency"), _rate(_samples_per_second(r)), _latency_cell(r, "p50"), _latency_cell(r, "p99"),
                _times(speedup), _times(latency_gain),
                None if base is None else f"{base.get('host_label')} {base.get('backend')} {base.get('mode')} b{base.get('batch')}",
                r.get("stability"), "seed*" if r.get("origin") == "seed" else "measured"])
        lines += [f"## {model}", ""]
        lines += markdown_table(["host", "backend", "device", "mode", "batch", "conc", "samples/s", "p50", "p99",
                                 "speed-up", "latency gain", "baseline", "stable", "source"], table)
        lines.append("")
    skipped = [r for r in rows if r.get("status", "ok") != "ok"]
    if skipped:
        lines += ["## Not measured", ""]
        lines += markdown_table(["model", "host", "backend", "mode", "batch", "conc", "status", "reason"],
                                [[r.get("model"), r.get("host_label"), r.get("backend"), r.get("mode"), r.get("batch"),
                                  r.get("concurrency"), r.get("status"), r.get("reason")] for r in skipped])
        lines.append("")
    lines.append(f"speed-up: samples/s divided by the baseline's ({baseline}, closest batch and concurrency); "
                 "latency gain: baseline p50 / p50.")
    if any(r.get("origin") == "seed" for r in ok):
        lines.append(f"seed*: the seed's hand-timed numbers, {SEED_NOTE}: its latency is that mean, "
                     "shown as p50 (mean); not comparable to measured percentiles.")
    return lines


def _times(value: float | None) -> str | None:
    return None if value is None else f"{value:.2f}x"


def chart(rows: list[dict[str, Any]], color: bool) -> str:
    """plotext bars of samples/s and p99 (seed: mean) per configuration, one pair per model."""
    import plotext as plt

    out = []
    ok = [r for r in rows if r.get("status", "ok") == "ok" and _samples_per_second(r) is not None]
    for model in sorted({r["model"] for r in ok}):
        mine = [r for r in ok if r["model"] == model]
        labels = [("seed " if r.get("origin") == "seed" else "") +
                  f"{r.get('host_label')} {r.get('backend')} {r.get('mode')} b{r.get('batch')} c{r.get('concurrency')}"
                  for r in mine]
        for title, values in (
            (f"{model}: samples per second", [_samples_per_second(r) for r in mine]),
            (f"{model}: p99 latency in ms (seed: mean)",
             [1e3 * (r.get(latency_column("p99")) or r.get(latency_column("mean")) or 0.0) for r in mine]),
        ):
            plt.clear_figure()
            plt.simple_bar(labels, values, width=100, title=title)
            text = plt.build()
            out.append(text if color else plt.uncolorize(text))
    return "\n".join(out)


def main(argv: list[str]) -> int:
    from .cli import OneLineParser  # bad arguments: one line and exit 2, like the main command line

    parser = OneLineParser(prog="neurontui report",
                           description="Compare neurontui exports (and the seed's measurements).")
    parser.add_argument("exports", nargs="+", metavar="EXPORT.json")
    parser.add_argument("-o", "--output", default=None, metavar="report.md", help="also write the tables here")
    parser.add_argument("--baseline", default="cpu", help="backend or host to compare against (default: cpu)")
    parser.add_argument("--no-chart", action="store_true", help="tables only")
    args = parser.parse_args(argv)
    if args.output and (problem := check_writable(args.output)):
        print(f"neurontui report: {problem}", file=sys.stderr)
        return 2
    rows: list[dict[str, Any]] = []
    for path in args.exports:
        document, problem = load_export(path)
        if problem:
            print(f"neurontui report: skipping {problem}", file=sys.stderr)
            continue
        rows += document["rows"]  # type: ignore[index]
    if not rows:
        print("neurontui report: no rows to compare", file=sys.stderr)
        return 1
    if not any(_matches(r, args.baseline) for r in rows):
        print(f"neurontui report: no row matches baseline {args.baseline!r}; speed-ups are left out", file=sys.stderr)
    text = "\n".join(["# neurontui comparison", ""] + comparison_tables(rows, args.baseline)) + "\n"
    try:
        print(text)
        if not args.no_chart:
            print(chart(rows, color=sys.stdout.isatty()))
        sys.stdout.flush()
    except BrokenPipeError:  # `neurontui report ... | head`: the reader has seen enough
        sys.stdout = open(os.devnull, "w")
    if args.output:
        try:
            write_atomic(args.output, text)
        except OSError as exc:
            print(f"neurontui report: could not write {args.output}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    return 0
