"""The highest arrival rate a configuration serves within a latency bound, and the best configuration.

For one point (mode, batch, concurrency) the offline maximum comes first: no arrival rate above
it can be served, so it is the ceiling. Then an exponential search (halving from half the ceiling
while the bound is missed, doubling while it holds) brackets the knee, and a binary search narrows
the bracket to `tolerance`, as MLPerf LoadGen's peak-performance mode and perf_analyzer's binary
search do. A step that saturates (completions fall behind arrivals, the queue grows) counts as
over the bound whatever its percentiles say: they only cover the requests that finished.

Rates are requests per second (the server scenario's --qps); throughput is samples per second.
The search never reads a clock: each step reports the seconds it took, and the budget is
counted in those (so a simulated service tests it exactly).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from .slo import Slo, TuneUsageError

SATURATION_TOLERANCE = 0.05  # completions this far below arrivals = the queue is growing
DEFAULT_TOLERANCE = 0.02  # the bracket [highest within, lowest over] is narrowed to 2%
MIN_RATE_FRACTION = 1 / 64  # below 1/64 of the ceiling the bound is given up as out of reach
MAX_DOUBLINGS = 20  # without an offline maximum, a service still within the bound at 2^20 x the start is left there
TIE_TOLERANCE = 0.02  # throughputs within 2% are a tie, broken by the lower tail latency
MIN_STEPS_PER_POINT = 3  # the offline maximum and two search steps: the least that brackets a knee
TAIL_SAMPLES = 20  # a percentile is trusted once this many samples lie beyond it


class StepFailed(Exception):
    """A step could not be measured (the child failed); the message is one line, `seconds` what
    the attempt took (counted against the budget like a measured step)."""

    def __init__(self, message: str, seconds: float = 0.0) -> None:
        super().__init__(message)
        self.seconds = seconds


@dataclass(frozen=True)
class StepResult:
    rate: float  # offered arrival rate, requests/s; for the offline step, the rate it completed
    throughput: float  # completed samples/s
    latency: float | None  # seconds at the bound's percentile, from the scheduled arrival
    saturated: bool  # the queue grew: completions fell behind arrivals
    seconds: float  # time the step took, counted against the budget
    completed: int = 0  # samples completed while measured
    percentiles: dict = field(default_factory=dict)  # 'p50', 'p99', ... seconds, as windows carry them
    utilization: float | None = None  # device utilization 0..1 while measured, when known
    joules: float | None = None  # energy over the step, when the hardware says it (tune.energy)
    energy_reason: str = ""  # why joules is None


def is_saturated(arrival_rate: float, completion_rate: float, seconds: float | None = None,
                 tolerance: float = SATURATION_TOLERANCE) -> bool:
    """The one saturation rule: requests completed per second below (1 - tolerance) x arrivals.

    `arrival_rate` is the nominal Poisson rate when the step does not count its arrivals: give the
    step's `seconds` then, and a shortfall within three standard deviations of the arrival count
    (sqrt of the expected count) is chance, not a queue (at 150 expected arrivals that is 24%)."""
    expected = arrival_rate * seconds if seconds else None
    margin = max(tolerance, 3 / math.sqrt(expected)) if expected else tolerance
    return completion_rate < (1.0 - margin) * arrival_rate


def samples_needed(slo: Slo) -> int:
    """The fewest samples a step must complete for its latency at slo's percentile to mean
    something: TAIL_SAMPLES beyond it (p99: 2,000; p99.9: 20,000)."""
    return math.ceil(round(TAIL_SAMPLES / (1 - slo.percentile / 100), 6))  # round: 1 - 0.999 is not exact


def verdict(step: StepResult, slo: Slo) -> str:
    """'saturated', 'over' (the bound is missed), 'within', or 'unknown' (no latency measured)."""
    if step.saturated:
        return "saturated"
    if step.latency is None:
        return "unknown"
    return "within" if slo.met_by(step.latency) else "over"


@dataclass(frozen=True)
class Budget:
    """What the whole tune may spend: seconds of measured steps, a number of steps, or both."""

    seconds: float | None = None
    steps: int | None = None

    def split(self, parts: int, spent_seconds: float = 0.0, spent_steps: int = 0) -> Budget:
        """An equal share of what is left for each of `parts` points still to run."""
        seconds = None if self.seconds is None else max(self.seconds - spent_seconds, 0.0) / parts
        steps = None if self.steps is None else max(self.steps - spent_steps, 0) // parts
        return Budget(seconds, steps)


def check_budget(budget: Budget, points: int, min_step_seconds: float) -> None:
    """Refuse (TuneUsageError, one line) a budget too small to bracket one knee per point."""
    need_steps = points * MIN_STEPS_PER_POINT
    if budget.steps is not None and budget.steps < need_steps:
        raise TuneUsageError(f"--budget: {budget.steps} steps cannot search {points} point(s); "
                             f"give at least {need_steps}")
    if budget.seconds is not None and budget.seconds < need_steps * min_step_seconds:
        raise TuneUsageError(f"--budget: {budget.seconds:g} s cannot search {points} point(s); "
                             f"give at least {math.ceil(need_steps * min_step_seconds)} s")


class Spending:
    """Counts what the steps of one point took against that point's share of the budget."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.seconds = 0.0
        self.steps = 0

    def record(self, step: StepResult) -> None:
        self.seconds += step.seconds
        self.steps += 1

    @property
    def seconds_left(self) -> float | None:
        return None if self.budget.seconds is None else self.budget.seconds - self.seconds

    def affords_another(self) -> bool:
        """Room for one more step as long as the average so far (any positive room before the first)."""
        if self.budget.steps is not None and self.steps >= self.budget.steps:
            return False
        left = self.seconds_left
        if left is None:
            return True
        typical = self.seconds / self.steps if self.steps else 0.0
        return left > 0 and left >= typical


@dataclass
class SearchResult:
    steps: list[StepResult]  # the server steps, in the order run
    best: StepResult | None  # the highest-rate step within the bound
    ceiling_rate: float | None  # the lowest rate known to miss it (measured, or the offline maximum)
    limit: str  # 'latency' | 'throughput' (held up to the offline maximum) | 'floor' (never met) | 'unknown'
    converged: bool  # the bracket was narrowed to the tolerance (or the limit is throughput or floor)
    budget_short: bool  # the budget ran out before the search was done

    @property
    def floor_latency(self) -> float | None:
        """The lowest latency measured at the bound's percentile (the floor when the bound is never met)."""
        measured = [s.latency for s in self.steps if s.latency is not None]
        return min(measured) if measured else None


Measure = Callable[[float, "float | None"], StepResult]  # (rate, seconds left or None) -> StepResult


def search_peak(measure: Measure, slo: Slo, budget: Budget, *, ceiling_rate: float | None = None,
                start_rate: float | None = None, tolerance: float = DEFAULT_TOLERANCE) -> SearchResult:
    """The highest arrival rate whose latency at slo's percentile stays within its bound.

    `ceiling_rate` is the offline maximum in requests/s (the search starts at half of it);
    without one, `start_rate` is where the doubling starts.
    """
    if ceiling_rate is None and start_rate is None:
        raise ValueError("search_peak needs the offline maximum or a start rate")
    spending = Spending(budget)
    steps: list[StepResult] = []
    best: StepResult | None = None
    over: float | None = ceiling_rate  # lowest rate known to miss the bound
    over_measured = False  # False while `over` is the offline maximum, not yet tried as an arrival rate
    lowest_rate = (ceiling_rate or start_rate) * MIN_RATE_FRACTION

    def run(rate: float) -> StepResult | None:
        if not spending.affords_another():
            return None
        step = measure(rate, spending.seconds_left)
        spending.record(step)
        steps.append(step)
        return step

    def done(limit: str, converged: bool, short: bool = False) -> SearchResult:
        return SearchResult(steps, best, over, limit, converged, short)

    # Exponential phase: find one rate within the bound and one over it.
    rate = ceiling_rate / 2 if start_rate is None else start_rate
    if ceiling_rate is not None:
        rate = min(rate, ceiling_rate)
    previous_over: StepResult | None = None
    while best is None or over is None:
        step = run(rate)
        if step is None:
            return done("unknown", False, short=True)
        if verdict(step, slo) == "within":
            best = step
            rate *= 2
            if over is None and rate > start_rate * 2 ** MAX_DOUBLINGS:
                return done("unknown", False)
            continue
        over, over_measured = rate, True
        if best is not None:
            break
        floor = previous_over is not None and not step.saturated and _floor_above_bound(previous_over, step, slo)
        if floor or rate / 2 < lowest_rate:
            return done("floor", True)
        previous_over = step
        rate /= 2
    if not over_measured:
        # Within the bound and nothing measured over it: the offline maximum is the next try.
        if best.rate >= over:
            return done("throughput", True)
        step = run(over)
        if step is None:
            return done("latency", False, short=True)
        if verdict(step, slo) == "within":
            best = step
            return done("throughput", True)

    # Binary phase: narrow [best.rate, over] to the tolerance.
    while over / best.rate - 1 > tolerance:
        middle = (best.rate + over) / 2
        step = run(middle)
        if step is None:
            return done("latency", False, short=True)
        if verdict(step, slo) == "within":
            best = step
        else:
            over = middle
    return done("latency", True)


def _floor_above_bound(higher: StepResult, lower: StepResult, slo: Slo) -> bool:
    """Whether no lower rate can meet the bound. Latency grows convexly with the rate, so the
    line through the last two steps (rate r and 2r) reaches zero load below the true floor:
    2 L(r) - L(2r) <= L(0). When even that line stays over the bound, the bound is out of reach.
    A latency that rose as the rate fell is noise (a busy host), not a floor: the search goes on."""
    if higher.latency is None or lower.latency is None or lower.latency > higher.latency:
        return False
    return 2 * lower.latency - higher.latency > slo.bound_seconds
