"""What a tune result means, in sentences: pure functions of the result, numbers through format.py.

    dp batch 4 serves 2.1x single's rate within p99 15 ms
    the GPU never meets p99 2 ms at batch 1: its floor is 3.1 ms
"""
from __future__ import annotations

from ..format import format_bound, format_dollars, format_joules, format_multiple, format_rate, format_ratio
from .decide import NO_BUDGET, Point, PointResult, TuneResult
from .search import DEFAULT_TOLERANCE


DEVICE_LABELS = {"cuda": "the GPU", "cpu": "the CPU", "neuron": "the NeuronCores"}


def device_label(backend: str) -> str:
    return DEVICE_LABELS.get(backend, "the device")


def _bound(result: TuneResult) -> str:
    return f"{result.slo.key} {format_bound(result.slo.bound_seconds)}"


def _where(point: Point, several_modes: bool) -> str:
    """'batch 1' when the tune tried one mode, else 'dp batch 1' (plus requests in flight)."""
    return point.label if several_modes or point.concurrency != 1 else f"batch {point.batch}"


def baseline_of(result: TuneResult) -> PointResult | None:
    """What the winner is compared with: single mode at its smallest batch, one request in flight."""
    singles = [r for r in result.points if r.point.mode == "single" and r.point.concurrency == 1]
    return min(singles, key=lambda r: r.point.batch) if singles else None


def winner_against_baseline(result: TuneResult) -> str | None:
    """'dp batch 4 serves 2.1x single's rate within p99 15 ms'."""
    winner, baseline = result.winner, baseline_of(result)
    if winner is None or baseline is None or baseline is winner:
        return None
    name = "single's" if baseline.point.batch == 1 else f"{baseline.point.label}'s"
    if baseline.sustainable is None:
        return (f"{winner.point.label} serves {format_rate(winner.sustainable.throughput)} within {_bound(result)}; "
                f"{baseline.point.label} never does")
    ratio = winner.sustainable.throughput / baseline.sustainable.throughput
    return f"{winner.point.label} serves {format_multiple(ratio)} {name} rate within {_bound(result)}"


def never_meets(result: TuneResult, device_label: str) -> list[str]:
    """'the GPU never meets p99 2 ms at batch 1: its floor is 3.1 ms', for each such point."""
    several = len({r.point.mode for r in result.points}) > 1
    lines = []
    for entry in result.points:
        if entry.search and entry.search.limit == "floor" and entry.search.floor_latency is not None:
            lines.append(f"{device_label} never meets {_bound(result)} at {_where(entry.point, several)}: "
                         f"its floor is {format_bound(entry.search.floor_latency)}")
    return lines


def throughput_bound(result: TuneResult) -> list[str]:
    """Points the bound does not limit: they serve their offline maximum within it."""
    return [f"at {entry.point.label} {_bound(result)} holds up to the offline maximum "
            f"({format_rate(entry.sustainable.throughput)}): throughput, not latency, is the limit"
            for entry in result.points if entry.search and entry.search.limit == "throughput"]


def winner_summary(result: TuneResult, dollars_per_million: float | None = None,
                   joules_per_inference: float | None = None, share_of_peak: float | None = None) -> str:
    """The decision in one line, with the figures the result row has for the winner."""
    if result.winner is None:
        floors = [r.search.floor_latency for r in result.points if r.search and r.search.floor_latency is not None]
        lowest = f"; the lowest {result.slo.key} measured is {format_bound(min(floors))}" if floors else ""
        return f"no configuration meets {_bound(result)}{lowest}"
    best = result.winner.sustainable
    extras = [f"{format_dollars(dollars_per_million)} per million" if dollars_per_million is not None else "",
              f"{format_joules(joules_per_inference)} per inference" if joules_per_inference is not None else "",
              f"{format_ratio(share_of_peak)} of peak" if share_of_peak is not None else ""]
    tail = "".join(f", {text}" for text in extras if text)
    return (f"winner: {result.winner.point.label} at {format_rate(best.rate, ' req/s')} "
            f"({format_rate(best.throughput)}) within {_bound(result)} "
            f"({result.slo.key} {format_bound(best.latency)}){tail}{_confirmation(result.winner, result)}")


def _confirmation(winner: PointResult, result: TuneResult) -> str:
    """How far the winner's figures were confirmed by a longer run at its rate."""
    if winner.confirmed is not None:
        return f", confirmed over {winner.confirmed.seconds:.0f} s"
    if not winner.confirmations:
        return ""
    lowest = winner.confirmations[-1]
    return (f"; not confirmed: {len(winner.confirmations)} longer run(s) missed {_bound(result)}, "
            f"down to {format_rate(lowest.rate, ' req/s')} ({result.slo.key} {format_bound(lowest.latency)})")


def budget_note(result: TuneResult) -> str | None:
    unfinished = [r for r in result.points if r.skipped == NO_BUDGET or r.search and r.search.budget_short]
    if not result.budget_short or not unfinished:
        return None
    return (f"the budget ran out: {len(unfinished)} of {len(result.points)} points were not searched to "
            f"{format_ratio(DEFAULT_TOLERANCE)}; their rates are lower bounds (raise --budget)")


def tune_hints(result: TuneResult, device_label: str = "the device", dollars_per_million: float | None = None,
               joules_per_inference: float | None = None, share_of_peak: float | None = None) -> list[str]:
    """Every hint the result supports, the decision first. `device_label`: 'the GPU', 'the CPU',
    'the NeuronCores'; the winner's figures come from its result row (tune.result.step_row)."""
    lines = [winner_summary(result, dollars_per_million, joules_per_inference, share_of_peak),
             winner_against_baseline(result), *never_meets(result, device_label), *throughput_bound(result),
             budget_note(result)]
    return [line for line in lines if line]
