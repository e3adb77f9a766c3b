"""Views of a tune document (docs/tune-schema.json): JSON as is, Markdown for a person, CSV one
row per measured step. `neurontui report` shows a tune file's winner and steps with the same tables.

Every figure is the document's (tune/result.py computed it once); this module only lays it out.
"""
from __future__ import annotations

import csv
import io
import os
from typing import Any

from ..format import (format_bound, format_dollars, format_joules, format_ratio, format_seconds,
                      format_table_rate)
from ..tune.result import TUNE_KIND
from .schema import FORMATS
from .writers import markdown_table, render_json

# The CSV columns: each step's scalars, then whether it is the winner.
STEP_COLUMNS = ("mode", "batch", "concurrency", "scenario", "rate", "samples_rate", "throughput", "completed",
                "latency_at_bound", "p50", "p99", "utilization", "saturated", "verdict", "seconds",
                "dollars_per_million", "joules", "joules_per_inference", "energy_reason", "share_of_peak",
                "share_of_peak_reason", "winner")


def is_tune_document(document: Any) -> bool:
    return isinstance(document, dict) and document.get("kind") == TUNE_KIND


def render_tune(document: dict[str, Any], path: str) -> str:
    extension = os.path.splitext(path)[1].lower()
    if extension == ".json":
        return render_json(document)
    if extension == ".csv":
        return render_tune_csv(document)
    if extension == ".md":
        return "\n".join(tune_markdown(document, heading="#")) + "\n"
    raise ValueError(f"unknown export format {extension!r}: use {', '.join(FORMATS)}")


def steps(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every measured step, point by point, in the order run."""
    return [step for point in document.get("points") or [] if isinstance(point, dict)
            for step in point.get("steps") or [] if isinstance(step, dict)]


def _is_winner(step: dict[str, Any], winner: dict[str, Any] | None) -> bool:
    keys = ("mode", "batch", "concurrency", "scenario", "rate")
    return winner is not None and all(step.get(k) == winner.get(k) for k in keys)


def render_tune_csv(document: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, STEP_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    winner = document.get("winner")
    for step in steps(document):
        percentiles = step.get("percentiles") or {}
        cells = {**step, "p50": percentiles.get("p50"), "p99": percentiles.get("p99"),
                 "winner": _is_winner(step, winner)}
        writer.writerow({k: "" if cells.get(k) is None else cells.get(k) for k in STEP_COLUMNS})
    return out.getvalue()


def _label(entry: dict[str, Any]) -> str:
    text = f"{entry.get('mode')} batch {entry.get('batch')}"
    concurrency = entry.get("concurrency")
    return text if concurrency in (None, 1) else f"{text} x{concurrency} in flight"


def winner_line(document: dict[str, Any], emphasis: str = "**") -> str:
    """The winner in one sentence; `emphasis` marks its name (Markdown bold; none on a screen)."""
    slo = document.get("slo") or {}
    bound = f"{slo.get('percentile')} {format_bound(slo.get('bound_seconds'))}"
    winner = document.get("winner")
    if not winner:
        return f"No configuration met {bound}."
    percentiles = winner.get("percentiles") or {}
    extras = [f"{format_dollars(winner.get('dollars_per_million'))} per million"
              if winner.get("dollars_per_million") is not None else None,
              f"{format_joules(winner.get('joules_per_inference'))} per inference"
              if winner.get("joules_per_inference") is not None else None,
              f"{format_ratio(winner.get('share_of_peak'))} of peak" if winner.get("share_of_peak") is not None else None]
    return (f"Winner within {bound}: {emphasis}{_label(winner)}{emphasis} at {format_table_rate(winner.get('rate'))} requests/s "
            f"({format_table_rate(winner.get('throughput'))} samples/s), p50 {format_seconds(percentiles.get('p50'))}, "
            f"p99 {format_seconds(percentiles.get('p99'))}" + "".join(f", {e}" for e in extras if e) + ".")


def tune_markdown(document: dict[str, Any], heading: str = "#") -> list[str]:
    """The tune as a person reads it: the winner, every step, each point's verdict, the frontier."""
    slo = document.get("slo") or {}
    key = slo.get("percentile")
    winner = document.get("winner")
    lines = [f"{heading} neurontui tune: {document.get('model')} on {document.get('backend')} "
             f"({document.get('precision')}) within {key} {format_bound(slo.get('bound_seconds'))}", ""]
    host = document.get("host") or {}
    if host:
        lines += ["Host: " + ", ".join(f"{k} {v}" for k, v in host.items() if v not in (None, "", 0)), ""]
    lines += [winner_line(document), ""]
    lines += [f"- {hint}" for hint in document.get("hints") or []]
    extra_key = [] if key in ("p50", "p99") else [key]
    lines += ["", f"{heading}# Every step measured", ""]
    lines += markdown_table(
        ["point", "scenario", "requests/s", "samples/s", "p50", "p99", *extra_key, "utilization", "verdict",
         "$/million", "J/inference", "% of peak", "seconds"],
        [[_label(s) + (" (winner)" if _is_winner(s, winner) else ""), s.get("scenario"), format_table_rate(s.get("rate")),
          format_table_rate(s.get("throughput")), format_seconds((s.get("percentiles") or {}).get("p50")),
          format_seconds((s.get("percentiles") or {}).get("p99")),
          *[format_seconds(s.get("latency_at_bound")) for _ in extra_key], format_ratio(s.get("utilization")),
          s.get("verdict"), format_dollars(s.get("dollars_per_million")), format_joules(s.get("joules_per_inference")),
          format_ratio(s.get("share_of_peak")), f"{s.get('seconds') or 0:.1f}"] for s in steps(document)])
    lines += ["", f"{heading}# Each point", ""]
    lines += markdown_table(
        ["point", "offline samples/s", "sustainable requests/s", "sustainable samples/s", "limit", "note"],
        [[_label(p), format_table_rate(p.get("offline_throughput")), format_table_rate(p.get("sustainable_rate")),
          format_table_rate(p.get("sustainable_throughput")), p.get("limit"), _point_note(p)]
         for p in document.get("points") or [] if isinstance(p, dict)])
    frontier = document.get("frontier") or []
    if frontier:
        lines += ["", f"{heading}# Frontier (throughput against {key})", ""]
        lines += markdown_table(["point", "requests/s", "samples/s", key],
                                [[_label(f), format_table_rate(f.get("rate")), format_table_rate(f.get("throughput")),
                                  format_seconds(f.get("latency_at_bound"))] for f in frontier])
    budget = document.get("budget") or {}
    lines += ["", f"Budget: {budget.get('spent_seconds') or 0:.0f} s spent in {budget.get('spent_steps')} steps "
                  f"of {budget.get('seconds') or 0:g} s" + (" (ran short)" if budget.get("short") else "") + "."]
    if document.get("complete") is False:
        lines += ["", f"Incomplete tune (interrupted by {document.get('interrupted_by') or 'an error'})."]
    return lines


def _point_note(point: dict[str, Any]) -> str:
    if point.get("skipped"):
        return f"skipped: {point['skipped']}"
    if point.get("limit") == "floor":
        return f"never met: floor {format_seconds(point.get('floor_latency'))}"
    if point.get("budget_short"):
        return "budget ran short: rate is a lower bound"
    return "" if point.get("converged") else "not converged"
