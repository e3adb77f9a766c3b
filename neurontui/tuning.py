"""A tune's steps measured over one Session, for both drivers: `neurontui tune` and the TUI's tune key.

Each step of the search (neurontui/tune/) is a fresh workload child: offline first, then the
server scenario at the rates the search asks for, then the winner's confirmation. A step runs
until its run record is stable and holds `samples_needed(slo)` samples, or until its share of
the budget is spent; the measurer stops the child itself. The drivers see progress, one line per
step and each step as it lands through callbacks, so the same measurement feeds stderr and a plot.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

from workloads.config import MODES, WorkloadConfig
from workloads.protocol import PERCENTILES, percentile_key
from workloads.rules import core_kind

from .export.rows import row_verdict
from .export.schema import new_document
from .format import format_rate, format_seconds
from .progress import describe
from .run import RunFigures
from .session import Session
from .tune.cost import Price, resolve_price
from .tune.decide import Point, TuneResult, run_tune
from .tune.energy import meter_for
from .tune.live import run_device
from .tune.result import TuneContext, tune_document
from .tune.search import (MIN_STEPS_PER_POINT, Budget, StepFailed, StepResult, is_saturated, samples_needed,
                          verdict)
from .tune.slo import Slo, TuneUsageError

STARTUP_GUESS_SECONDS = 4.0  # child start, model load and warm-up on a busy 2-vCPU box, until measured
MIN_MEASURED_SECONDS = 1.5  # three 0.5 s windows: the stability rule's least
MIN_STEP_SECONDS = STARTUP_GUESS_SECONDS + MIN_MEASURED_SECONDS + 0.5  # what check_budget counts per step
CONFIRM_MEASURED_SECONDS = 10.0  # the winner's confirmation measures at least this long
CONFIRM_STEP_SECONDS = STARTUP_GUESS_SECONDS + CONFIRM_MEASURED_SECONDS  # set aside from the budget for it
PLANNED_STEPS_PER_POINT = 5  # the offline step and four server steps share a point's budget
STOP_SLACK_SECONDS = 2.0  # a step whose child starts slower than guessed is stopped this far past its share
TICK_SECONDS = 0.25
DEFAULT_BUDGET_SECONDS = 300.0


def _int_list(flag: str, text: str) -> list[int]:
    values = []
    for part in text.split(","):
        try:
            value = int(part)
        except ValueError:
            raise TuneUsageError(f"{flag}: {part.strip()!r} is not a whole number") from None
        if value < 1:
            raise TuneUsageError(f"{flag}: {value} must be at least 1")
        if value not in values:
            values.append(value)
    return values


def parse_points(modes: str, batches: str, concurrency: str) -> list[Point]:
    """Every (mode, batch, concurrency) in the order given; TuneUsageError names the first bad value."""
    chosen = []
    for mode in (m.strip() for m in modes.split(",")):
        if mode not in MODES:
            raise TuneUsageError(f"--modes: unknown mode {mode!r}: choose from {', '.join(MODES)}")
        if mode not in chosen:
            chosen.append(mode)
    return [Point(m, b, c) for m in chosen for b in _int_list("--batches", batches)
            for c in _int_list("--concurrency", concurrency)]


@dataclass
class TunePlan:
    """What to search: the bound, the points and the budget, over the base workload settings."""

    base: WorkloadConfig
    slo: Slo
    points: list[Point]
    budget: Budget

    def config(self, point: Point, scenario: str, rate: float | None, duration: float) -> WorkloadConfig:
        return replace(self.base, mode=point.mode, batch=point.batch, concurrency=point.concurrency,
                       scenario=scenario, qps=rate if scenario == "server" else None, duration=duration)

    def problem(self) -> str | None:
        """The first point the workload would refuse, in one line."""
        for point in self.points:
            problems = self.config(point, "server", 1.0, 1.0).validate()
            if problems:
                return f"{point.label}: {problems[0]}"
        return None

    @property
    def confirm_seconds(self) -> float:
        """The winner's confirmation, when the budget holds it besides the least search."""
        seconds = self.budget.seconds
        least_search = len(self.points) * MIN_STEPS_PER_POINT * MIN_STEP_SECONDS
        return CONFIRM_STEP_SECONDS if seconds is None or seconds >= least_search + CONFIRM_STEP_SECONDS else 0.0


OnStep = Callable[[Point, str, StepResult], None]  # (point, 'offline' | 'server' | 'confirm', step)


class StepMeasurer:
    """Measures each step the search asks for on `session` (which must have a child)."""

    def __init__(self, session: Session, plan: TunePlan, *, on_progress: Callable[[str, float | None, str], None],
                 on_message: Callable[[str], None], on_step: OnStep | None = None) -> None:
        self.session, self.store, self.plan = session, session.store, plan
        self.on_progress, self.on_message, self.on_step = on_progress, on_message, on_step
        self.stop = threading.Event()
        self.stopped_by: str | None = None
        self.startup_seconds: dict[str, float] = {}  # per mode (dp starts workers), measured on each step
        self.point_share: float | None = None
        self.backend = plan.base.backend  # the one the children resolved
        self.ready: Any = None
        self._scenario = ""

    def interrupt(self, reason: str) -> None:
        """End the tune at the next tick (a signal, a key); what was measured is kept."""
        if self.stopped_by is None:
            self.stopped_by = reason
        self.stop.set()

    def run(self) -> TuneResult:
        plan = self.plan
        return run_tune(plan.points, self._offline, self._server, plan.slo, plan.budget, on_step=self._landed,
                        measure_confirm=self._confirm if plan.confirm_seconds else None,
                        confirm_seconds=plan.confirm_seconds)

    def document(self, result: TuneResult, host: dict[str, Any], argv: list[str], price: Price | None = None,
                 price_reason: str = "", prices_file: str | None = None) -> dict[str, Any]:
        """The tune document (tune/result.py) in the export's envelope (created, tool, command),
        the device and FLOPs from what the children reported. Without a price, the instance type
        neuron-monitor named once it ran is looked up (in `prices_file` over the shipped table)."""
        if price is None and host.get("instance_type"):
            price, price_reason = resolve_price(None, host["instance_type"], prices_file)
        base = self.plan.base
        context = TuneContext(base.model, self.backend, base.precision,
                              run_device(self.backend, self.ready, host.get("instance_type")),
                              self.ready.flops_per_sample if self.ready is not None else None, price, price_reason,
                              host)
        document = {**new_document(host, ["neurontui", *argv]), **tune_document(result, context, self.plan.budget)}
        document["complete"] = self.stopped_by is None
        document["interrupted_by"] = self.stopped_by
        return document

    # -- the three kinds of step ----------------------------------------------------------------
    def _offline(self, point: Point, seconds_left: float | None) -> StepResult:
        self.point_share = seconds_left
        return self._step(point, "offline", None, self._step_cap(seconds_left), seconds_left)

    def _server(self, point: Point, rate: float, seconds_left: float | None) -> StepResult:
        return self._step(point, "server", rate, self._step_cap(seconds_left), seconds_left)

    def _confirm(self, point: Point, rate: float, seconds_left: float | None) -> StepResult:
        """At least CONFIRM_MEASURED_SECONDS, and long enough for samples_needed when the budget allows."""
        startup = self.startup_seconds.get(point.mode, STARTUP_GUESS_SECONDS)
        measured = max(CONFIRM_MEASURED_SECONDS, samples_needed(self.plan.slo) / (rate * point.batch))
        cap = startup + measured
        if seconds_left is not None:
            cap = max(min(cap, seconds_left), startup + CONFIRM_MEASURED_SECONDS)
        return self._step(point, "confirm", rate, cap, None)

    def _step_cap(self, seconds_left: float | None) -> float:
        """Wall seconds a search step may take: its even share of the point's budget, within what is left."""
        share = self.point_share if self.point_share is not None else self.plan.budget.seconds or DEFAULT_BUDGET_SECONDS
        cap = max(MIN_STEP_SECONDS, share / PLANNED_STEPS_PER_POINT)
        return min(cap, seconds_left) if seconds_left is not None else cap

    def _step(self, point: Point, scenario: str, rate: float | None, cap: float,
              seconds_left: float | None) -> StepResult:
        if self.stop.is_set():
            raise StepFailed(f"interrupted by {self.stopped_by}")
        self._scenario = scenario
        startup = self.startup_seconds.get(point.mode, STARTUP_GUESS_SECONDS)
        confirming = scenario == "confirm"
        config = self.plan.config(point, "server" if confirming else scenario, rate,
                                  max(cap - startup, MIN_MEASURED_SECONDS))
        session = self.session
        what = f"{point.label} {scenario}" + (f" at {format_rate(rate, '')} req/s" if rate is not None else "")
        meter = None
        began, previous_run = time.monotonic(), self.store.workload.run_id
        session.config = config
        session.restart().result()
        while not session.wait(TICK_SECONDS):
            workload = self.store.workload
            if meter is None and workload.state == "running":
                self.startup_seconds[point.mode] = time.monotonic() - began
                meter = meter_for(workload.backend)
                meter.start()
            elif meter is not None:
                meter.sample()
            figures = workload.run.figures()
            # A confirmation runs its whole duration: ending it at the first stable moment would
            # make it another search step.
            if self.stop.is_set() or not confirming and self._enough(figures, time.monotonic() - began, cap,
                                                                      seconds_left):
                break
            text, fraction = describe(workload, config.duration)
            self.on_progress(f"{what}: {text}", fraction, f"{workload.state}:{bool(workload.run.window_count)}")
        reading = meter.stop() if meter is not None else None  # before the child's stop grace
        session.stop_workload()
        seconds = time.monotonic() - began
        if self.stop.is_set():  # a step cut short is no verdict
            raise StepFailed(f"interrupted by {self.stopped_by}", seconds)
        workload = session.workload()
        status, reason = row_verdict(workload)
        if workload.run_id == previous_run:  # the child never started: the figures are the last step's
            status, reason = "failed", next((e.text for e in reversed(self.store.events) if e.level == "error"),
                                            "the workload did not start")
        figures = workload.run.figures()
        if status in ("failed", "skipped") or not figures.completed or not figures.throughput:
            problem = f"{what}: {reason or 'nothing completed'}"
            self.on_message(f"{problem}; the point is skipped")
            raise StepFailed(problem, seconds)
        self.backend = workload.backend
        if workload.ready is not None:
            self.ready = workload.ready
        kind = core_kind(workload.backend)
        requests_per_second = figures.throughput / point.batch
        return StepResult(
            rate=rate if rate is not None else requests_per_second,
            throughput=figures.throughput,
            latency=figures.latency.get(self.plan.slo.key),
            saturated=rate is not None and is_saturated(rate, requests_per_second, figures.measured_seconds),
            seconds=seconds, completed=figures.completed,
            percentiles={key: figures.latency.get(key) for key in map(percentile_key, PERCENTILES)},
            utilization=workload.run.telemetry.mean_utilization(kind) if kind else None,
            joules=reading.joules if reading else None,
            energy_reason=(reading.reason if reading else "the step never reached its measured part"))

    def _enough(self, figures: RunFigures, elapsed: float, cap: float, seconds_left: float | None) -> bool:
        """Whether a step may end now: stable with samples_needed(slo) samples; or past its share
        once it has measured the stability rule's least; or past all its point has left."""
        if figures.stability == "stable" and figures.completed >= samples_needed(self.plan.slo):
            return True
        if seconds_left is not None and elapsed > seconds_left + STOP_SLACK_SECONDS:
            return True
        return figures.measured_seconds >= MIN_MEASURED_SECONDS and elapsed > cap + STOP_SLACK_SECONDS

    def _landed(self, point: Point, step: StepResult) -> None:
        """One line per step as it lands (run_tune calls this right after the step returns)."""
        scenario = self._scenario
        self.on_message(step_line(point, scenario, step, self.plan.slo))
        if self.on_step:
            self.on_step(point, scenario, step)


def step_line(point: Point, scenario: str, step: StepResult, slo: Slo) -> str:
    figures = (f"{format_rate(step.throughput)}, p50 {format_seconds(step.percentiles.get('p50'))}, "
               f"{slo.key} {format_seconds(step.latency)}, {step.completed} samples in {step.seconds:.1f} s")
    rate = f"{format_rate(step.rate, '')} req/s"
    if scenario == "offline":
        return f"{point.label}: offline maximum {rate}: {figures}"
    what = "confirming " if scenario == "confirm" else ""
    return f"{point.label}: {what}{rate}: {figures}: {verdict(step, slo)}"

