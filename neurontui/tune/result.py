"""The tune result as one JSON-able document (docs/tune.md): every step measured, each point's
verdict, the frontier and the winner, with cost, energy and share of peak computed here once
per step, so every writer (JSON, Markdown, CSV, the TUI) reads the same figures.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .cost import Price, dollars_per_million
from .decide import NO_BUDGET, Point, PointResult, TuneResult
from .hints import device_label, tune_hints
from .peaks import Device, peak_flops, share_of_peak
from .search import Budget, StepResult, verdict

TUNE_KIND = "neurontui-tune"
TUNE_SCHEMA = 1  # bumped on incompatible changes, like the export's "schema"


@dataclass(frozen=True)
class TuneContext:
    """What the session knows besides the steps: the run's identity, price and FLOPs."""

    model: str
    backend: str  # the resolved backend: cpu | cuda | neuron
    precision: str
    device: Device | None = None  # for the peak; None when not known
    flops_per_sample: int | None = None  # ready.flops_per_sample
    price: Price | None = None
    price_reason: str = ""  # why price is None
    host: dict[str, Any] = field(default_factory=dict)  # host_info.describe_host()


def step_row(point: Point, step: StepResult, scenario: str, result: TuneResult, context: TuneContext) -> dict:
    """One measured step: its rate, figures, verdict, cost, energy and share of peak."""
    share, peak_label = (share_of_peak(context.flops_per_sample, step.throughput, context.device, context.precision)
                         if context.device else (None, "device not known"))
    joules_per_inference = step.joules / step.completed if step.joules is not None and step.completed > 0 else None
    served = scenario != "offline"  # server and confirm steps: offered a rate, judged against the bound
    return {
        "mode": point.mode, "batch": point.batch, "concurrency": point.concurrency, "scenario": scenario,
        "rate": step.rate,  # requests/s: offered (server) or completed (offline)
        "samples_rate": step.rate * point.batch,
        "throughput": step.throughput,  # samples/s completed
        "completed": step.completed,
        "latency_at_bound": step.latency if served else None,
        "percentiles": dict(step.percentiles),
        "utilization": step.utilization,
        "saturated": step.saturated if served else None,
        "verdict": verdict(step, result.slo) if served else "offline",
        "seconds": step.seconds,
        "dollars_per_million": dollars_per_million(context.price.per_hour if context.price else None,
                                                   step.throughput),
        "joules": step.joules,
        "joules_per_inference": joules_per_inference,
        "energy_reason": step.energy_reason if step.joules is None else "",
        "share_of_peak": share,
        "share_of_peak_reason": "" if share is not None else peak_label,
    }


def point_entry(entry: PointResult, result: TuneResult, context: TuneContext) -> dict:
    point, search = entry.point, entry.search
    rows = [step_row(point, entry.offline, "offline", result, context)] if entry.offline else []
    rows += [step_row(point, step, "server", result, context) for step in (search.steps if search else [])]
    rows += [step_row(point, step, "confirm", result, context) for step in entry.confirmations]
    best = entry.sustainable
    return {
        "mode": point.mode, "batch": point.batch, "concurrency": point.concurrency,
        "skipped": entry.skipped,
        "offline_throughput": entry.offline.throughput if entry.offline else None,
        "limit": search.limit if search else None,
        "converged": search.converged if search else False,
        "budget_short": search.budget_short if search else entry.skipped == NO_BUDGET,
        "sustainable_rate": best.rate if best else None,
        "sustainable_throughput": best.throughput if best else None,
        "ceiling_rate": search.ceiling_rate if search else None,
        "floor_latency": search.floor_latency if search else None,
        "steps": rows,
    }


def tune_document(result: TuneResult, context: TuneContext, budget: Budget) -> dict:
    """The whole result, its hints included (the winner's from its own row)."""
    peak, peak_reason = (peak_flops(context.device, context.precision) if context.device
                         else (None, "device not known"))
    winner = None
    if result.winner is not None:
        best = result.winner.sustainable
        scenario = "confirm" if result.winner.confirmed is not None else "server"
        winner = step_row(result.winner.point, best, scenario, result, context)
    hints = tune_hints(result, device_label(context.backend),
                       **{key: winner[key] if winner else None
                          for key in ("dollars_per_million", "joules_per_inference", "share_of_peak")})
    return {
        "schema": TUNE_SCHEMA, "kind": TUNE_KIND,
        "slo": result.slo.to_dict(),
        "model": context.model, "backend": context.backend, "precision": context.precision,
        "host": dict(context.host),
        "price": ({"per_hour": context.price.per_hour, "source": context.price.source,
                   "instance_type": context.price.instance_type} if context.price else None),
        "price_reason": context.price_reason if context.price is None else "",
        "flops_per_sample": context.flops_per_sample,
        "peak": ({"flops_per_second": peak.flops_per_second, "label": peak.label, "estimate": peak.estimate}
                 if peak else None),
        "peak_reason": peak_reason if peak is None else "",
        "budget": {"seconds": budget.seconds, "steps": budget.steps, "spent_seconds": result.spent_seconds,
                   "spent_steps": result.spent_steps, "short": result.budget_short},
        "points": [point_entry(entry, result, context) for entry in result.points],
        "frontier": [{"mode": p.mode, "batch": p.batch, "concurrency": p.concurrency, "rate": s.rate,
                      "throughput": s.throughput, "latency_at_bound": s.latency} for p, s in result.frontier],
        "winner": winner,
        # Whether a longer run at the winner's rate met the bound (the winner row is then that run)
        "confirmation": ({"confirmed": result.winner.confirmed is not None, "runs": len(result.winner.confirmations)}
                         if result.winner is not None else None),
        "hints": hints,
    }
