"""`neurontui report A.json B.json`: exports from several hosts side by side.

Rows merge into per-model tables with speed-ups against a baseline, plus a terminal chart;
the seed's hand-timed numbers (`docs/seed-measurements.json`) are a valid input.
"""
from __future__ import annotations

import csv
import json
import os
import sys
from typing import Any

from ..args import OneLineParser
from ..format import format_bytes, format_ratio, format_table_rate, format_times
from ..tune.result import TUNE_SCHEMA
from .schema import EXPORT_KIND, EXPORT_SCHEMA, SEED_NOTE, latency_column
from .tune_views import is_tune_document, tune_markdown
from .writers import latency_cell, check_writable, markdown_table, write_atomic


def load_export(path: str) -> tuple[dict[str, Any] | None, str | None]:
    """(document, None) or (None, one-line reason). A .csv export (rows only) reads too."""
    if path.lower().endswith(".csv"):
        return _load_csv_export(path)
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except OSError as exc:
        return None, f"{path}: {exc.strerror or exc}"
    except (ValueError, RecursionError) as exc:
        return None, f"{path}: not JSON ({exc})"
    if is_tune_document(document):  # `neurontui tune`: its winner and steps, no rows to compare
        schema = document.get("schema")
        if not isinstance(schema, int) or schema > TUNE_SCHEMA:
            return None, f"{path}: tune schema {schema!r} is newer than this neurontui reads ({TUNE_SCHEMA})"
        return {**document, "rows": []}, None
    if not isinstance(document, dict) or document.get("kind") != EXPORT_KIND:
        return None, f"{path}: not a neurontui export (no \"kind\": \"{EXPORT_KIND}\")"
    schema = document.get("schema")
    if not isinstance(schema, int) or schema > EXPORT_SCHEMA:
        return None, f"{path}: export schema {schema!r} is newer than this neurontui reads ({EXPORT_SCHEMA})"
    if not isinstance(document.get("rows"), list):
        return None, f"{path}: no rows"
    document["rows"] = [row for row in document["rows"] if isinstance(row, dict) and isinstance(row.get("model"), str)]
    return document, None


# CSV cells are text: these columns hold counts or numbers, `cached` a boolean, an empty cell None.
_TEXT_COLUMNS = {"status", "reason", "origin", "method", "host_label", "host_instance_type", "host_cpu_model",
                 "host_gpu_name", "hostname", "model", "backend", "device_name", "precision", "mode", "scenario",
                 "stability", "core_kind", "started_at", "memory_source", "copies_stopped", "seq_len_dist",
                 "buckets"}


def _load_csv_export(path: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        return None, f"{path}: {exc.strerror or exc}"
    except (UnicodeDecodeError, csv.Error) as exc:
        return None, f"{path}: not a CSV file ({exc})"
    if not rows or not {"model", "status", "throughput_per_second"} <= set(rows[0]):
        return None, f"{path}: not a neurontui CSV export (no model, status and throughput_per_second columns)"
    return {"kind": EXPORT_KIND, "schema": EXPORT_SCHEMA,
            "rows": [{key: _csv_value(key, value) for key, value in row.items() if key} for row in rows]}, None


def _csv_value(column: str, text: str | None) -> Any:
    if text is None or text == "":
        return None
    if column in _TEXT_COLUMNS:
        return text
    if column == "cached":
        return text == "True"
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


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
                r.get("concurrency"), format_table_rate(_samples_per_second(r)), latency_cell(r, "p50"), latency_cell(r, "p99"),
                _times(speedup), _times(latency_gain),
                None if base is None else f"{base.get('host_label')} {base.get('backend')} {base.get('mode')} b{base.get('batch')}",
                r.get("stability"), "seed*" if r.get("origin") == "seed" else "measured"])
        lines += [f"## {model}", ""]
        lines += markdown_table(["host", "backend", "device", "mode", "batch", "conc", "samples/s", "p50", "p99",
                                 "speed-up", "latency gain", "baseline", "stable", "source"], table)
        lines.append("")
        lines += capacity_table(model, mine)
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


def _has_capacity(row: dict[str, Any]) -> bool:
    copies = row.get("copies")
    return bool(isinstance(copies, int) and copies > 1 or row.get("bytes_per_copy") or row.get("buckets")
                or row.get("padding_ratio") is not None)


def capacity_table(model: str, rows: list[dict[str, Any]]) -> list[str]:
    """Copies and variable-length input, for the rows of `model` that used them (else nothing)."""
    mine = [r for r in rows if _has_capacity(r)]
    if not mine:
        return []
    table = [[r.get("host_label"), r.get("backend"), r.get("mode"), r.get("batch"), r.get("copies"),
              format_bytes(r.get("bytes_per_copy")), r.get("copies_fit"), format_bytes(r.get("artifact_bytes")),
              r.get("seq_len_dist"), r.get("buckets"), format_ratio(r.get("padding_ratio")),
              format_table_rate(_samples_per_second(r))] for r in mine]
    return [f"## {model}: copies and padding", ""] + markdown_table(
        ["host", "backend", "mode", "batch", "copies", "per copy", "fit", "file", "lengths", "buckets", "padding",
         "samples/s"], table) + [""]


def _times(value: float | None) -> str | None:
    return None if value is None else format_times(value)


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
    parser = OneLineParser(prog="neurontui report",
                           description="Compare neurontui exports (and the seed's measurements).")
    parser.add_argument("exports", nargs="+", metavar="EXPORT.json|.csv")
    parser.add_argument("-o", "--output", default=None, metavar="report.md",
                        help="write the tables here instead of to stdout (the chart still prints)")
    parser.add_argument("--baseline", default="cpu", help="backend or host to compare against (default: cpu)")
    parser.add_argument("--no-chart", action="store_true", help="tables only")
    args = parser.parse_args(argv)
    if args.output and (problem := check_writable(args.output)):
        print(f"neurontui report: {problem}", file=sys.stderr)
        return 2
    rows: list[dict[str, Any]] = []
    tunes: list[dict[str, Any]] = []
    for path in args.exports:
        document, problem = load_export(path)
        if problem:
            print(f"neurontui report: skipping {problem}", file=sys.stderr)
            continue
        rows += document["rows"]  # type: ignore[index]
        if is_tune_document(document):
            tunes.append(document)  # type: ignore[arg-type]
    if not rows and not tunes:
        print("neurontui report: no rows to compare", file=sys.stderr)
        return 1
    if rows and not any(_matches(r, args.baseline) for r in rows):
        print(f"neurontui report: no row matches baseline {args.baseline!r}; speed-ups are left out", file=sys.stderr)
    lines = ["# neurontui comparison", ""] + (comparison_tables(rows, args.baseline) if rows else [])
    for tune in tunes:
        lines += ["", *tune_markdown(tune, heading="##")]
    text = "\n".join(lines) + "\n"
    try:
        if not args.output:
            print(text)
        if rows and not args.no_chart:
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
        print(f"neurontui report: wrote the tables to {args.output}", file=sys.stderr)
    return 0
