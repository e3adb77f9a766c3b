"""Every (mode, batch, concurrency) point searched within one budget, the winner and the frontier.

`run_tune` is what `neurontui tune` drives: the session supplies two callables that measure a
point (its offline maximum, and one server step at a rate), and this module decides what to run,
in which order and for how long. The budget is split evenly over the points still to run, so
what one point leaves unspent goes to the ones after it.

The winner is then confirmed, as MLPerf follows its peak search with a full performance run: a
search step is short (a share of the budget) and its tail percentile rests on few samples, so
the winner's rate is run again for a confirmation's length (set aside from the budget before
the points share it). If that run misses the bound, the rate steps down and is confirmed again
while the budget lasts; the winner's figures are the confirmed run's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .search import (TIE_TOLERANCE, Budget, SearchResult, Spending, StepFailed, StepResult, search_peak,
                     verdict)
from .slo import Slo


@dataclass(frozen=True)
class Point:
    mode: str
    batch: int
    concurrency: int = 1

    @property
    def label(self) -> str:
        """'dp batch 4' (and 'x2 in flight' when concurrency is above 1), as hints name a point."""
        text = f"{self.mode} batch {self.batch}"
        return text if self.concurrency == 1 else f"{text} x{self.concurrency} in flight"


@dataclass
class PointResult:
    point: Point
    offline: StepResult | None = None  # the offline maximum (its rate: requests/s completed)
    search: SearchResult | None = None
    skipped: str = ""  # why the point has no search (a failed step, no budget left), one line
    confirmations: list[StepResult] = field(default_factory=list)  # the winner's confirmation runs, in order
    confirmed: StepResult | None = None  # the confirmation run that met the bound

    @property
    def sustainable(self) -> StepResult | None:
        """The confirmed run when there is one, else the highest-rate server step within the bound."""
        if self.confirmed is not None:
            return self.confirmed
        return self.search.best if self.search else None


@dataclass
class TuneResult:
    slo: Slo
    points: list[PointResult]
    winner: PointResult | None
    frontier: list[tuple[Point, StepResult]]  # non-dominated (throughput up, tail latency down)
    budget_short: bool  # some point's search ran out of budget (or a point never ran)
    spent_seconds: float = 0.0
    spent_steps: int = 0


NO_BUDGET = "no budget left"  # PointResult.skipped when the points before it spent the budget
CONFIRM_STEP_DOWN = 0.85  # a confirmation that misses the bound is retried at this fraction of its rate
MAX_CONFIRMATIONS = 3

MeasureOffline = Callable[[Point, "float | None"], StepResult]  # (point, seconds left) -> offline step
MeasureServer = Callable[[Point, float, "float | None"], StepResult]  # (point, rate, seconds left) -> step


def run_tune(points: list[Point], measure_offline: MeasureOffline, measure_server: MeasureServer, slo: Slo,
             budget: Budget, *, tolerance: float | None = None,
             on_step: Callable[[Point, StepResult], None] | None = None,
             measure_confirm: MeasureServer | None = None, confirm_seconds: float = 0.0) -> TuneResult:
    """Search each point in turn, then confirm the winner with `measure_confirm` (when given) in
    the `confirm_seconds` set aside for it; `on_step` sees every step as it lands (progress, the
    TUI's plot)."""
    results: list[PointResult] = []
    spent_seconds, spent_steps, short = 0.0, 0, False
    extra = {} if tolerance is None else {"tolerance": tolerance}
    reserved = confirm_seconds if measure_confirm is not None and budget.seconds is not None else 0.0
    for index, point in enumerate(points):
        share = budget.split(len(points) - index, spent_seconds + reserved, spent_steps)
        spending = Spending(share)
        result = PointResult(point)
        results.append(result)
        if not spending.affords_another():
            result.skipped, short = NO_BUDGET, True
            continue
        server_steps: list[StepResult] = []  # kept by the wrapper: a step that fails mid-search loses none

        def measure(rate: float, seconds_left: float | None, point: Point = point,
                    server_steps: list[StepResult] = server_steps) -> StepResult:
            step = measure_server(point, rate, seconds_left)
            server_steps.append(step)
            if on_step:
                on_step(point, step)
            return step

        try:
            result.offline = measure_offline(point, spending.seconds_left)
            spending.record(result.offline)
            if on_step:
                on_step(point, result.offline)
            if not result.offline.rate > 0:
                result.skipped = "the offline run completed nothing"
            else:
                rest = Budget(spending.seconds_left, None if share.steps is None else share.steps - 1)
                result.search = search_peak(measure, slo, rest, ceiling_rate=result.offline.rate, **extra)
                short = short or result.search.budget_short
        except StepFailed as exc:
            result.skipped = str(exc)
            spent_seconds += exc.seconds
            if server_steps:
                result.search = _interrupted(server_steps, slo)
        measured = ([result.offline] if result.offline else []) + server_steps
        spent_seconds += sum(step.seconds for step in measured)
        spent_steps += len(measured)
    winner = choose_winner(results)
    if winner is not None and measure_confirm is not None:
        left = None if budget.seconds is None else budget.seconds - spent_seconds
        seconds = _confirm(winner, measure_confirm, slo, left, on_step)
        spent_seconds += seconds
        spent_steps += len(winner.confirmations)
    return TuneResult(slo, results, winner, pareto_frontier(results, slo), short, spent_seconds, spent_steps)


def _confirm(winner: PointResult, measure: MeasureServer, slo: Slo, seconds_left: float | None,
             on_step: Callable[[Point, StepResult], None] | None) -> float:
    """Run the winner's rate again, stepping down while it misses the bound and the budget lasts;
    the seconds it took."""
    rate = winner.sustainable.rate
    spent = 0.0
    while len(winner.confirmations) < MAX_CONFIRMATIONS:
        left = None if seconds_left is None else seconds_left - spent
        tried = winner.confirmations
        if left is not None and (left <= 0 or tried and left < spent / len(tried)):
            break
        try:
            step = measure(winner.point, rate, left)
        except StepFailed as exc:
            return spent + exc.seconds
        spent += step.seconds
        winner.confirmations.append(step)
        if on_step:
            on_step(winner.point, step)
        if verdict(step, slo) == "within":
            winner.confirmed = step
            break
        rate *= CONFIRM_STEP_DOWN
    return spent


def _interrupted(steps: list[StepResult], slo: Slo) -> SearchResult:
    """What a search that a failed step cut short had found: its best step within, if any."""
    within = [s for s in steps if verdict(s, slo) == "within"]
    over = [s.rate for s in steps if verdict(s, slo) != "within"]
    best = max(within, key=lambda s: s.rate) if within else None
    return SearchResult(list(steps), best, min(over) if over else None, "unknown", False, False)


def choose_winner(results: list[PointResult], tie_tolerance: float = TIE_TOLERANCE) -> PointResult | None:
    """The point that sustains the most samples/s within the bound. Throughputs within
    `tie_tolerance` of the best are a tie (closer than a run measures), broken by the lower tail
    latency, then the smaller batch, then fewer requests in flight."""
    candidates = [r for r in results if r.sustainable is not None]
    if not candidates:
        return None
    top = max(r.sustainable.throughput for r in candidates)
    tied = [r for r in candidates if r.sustainable.throughput >= (1 - tie_tolerance) * top]
    return min(tied, key=lambda r: (r.sustainable.latency, r.point.batch, r.point.concurrency))


def pareto_frontier(results: list[PointResult], slo: Slo) -> list[tuple[Point, StepResult]]:
    """The server steps no other step beats on both throughput and tail latency, by throughput.
    Saturated steps are left out: their percentiles miss the requests still queued."""
    steps = [(r.point, s) for r in results if r.search for s in r.search.steps
             if verdict(s, slo) in ("within", "over")]
    frontier = [(point, step) for point, step in steps
                if not any(_dominates(other, step) for _, other in steps)]
    return sorted(frontier, key=lambda entry: entry[1].throughput)


def _dominates(a: StepResult, b: StepResult) -> bool:
    return (a.throughput >= b.throughput and a.latency <= b.latency
            and (a.throughput > b.throughput or a.latency < b.latency))
