"""`neurontui tune`: the best (mode, batch, concurrency) under a latency bound, measured.

A thin driver over a Session, like headless.py: each step of the search (neurontui/tune/) is a
fresh workload child, offline first, then the server scenario at the rates the search asks
for. A step runs until its run record is stable and holds `samples_needed(slo)` samples, or
until its share of the budget is spent; the driver stops the child itself. Progress goes to
stderr; the result is written as JSON, Markdown or CSV (export/tune_views.py). Never imports
Textual.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

from workloads.config import MODES, WorkloadConfig, positive_float
from workloads.protocol import PERCENTILES, percentile_key
from workloads.rules import core_kind

from .args import OneLineParser, monitor_spec
from .backend_presence import requested_backend_problem
from .export.rows import row_verdict
from .export.schema import new_document
from .export.tune_views import render_tune
from .export.writers import check_writable, write_atomic
from .format import format_bound, format_rate, format_seconds
from .host_info import describe_host
from .progress import Progress, describe
from .run import RunFigures
from .session import Session
from .store import Store
from .tune.cost import resolve_price
from .tune.decide import Point, TuneResult, run_tune
from .tune.energy import meter_for
from .tune.peaks import Device
from .tune.result import TuneContext, tune_document
from .tune.search import Budget, StepFailed, StepResult, check_budget, is_saturated, samples_needed, verdict
from .tune.slo import TuneUsageError, parse_slo
from .workload import WorkloadProcess

DEFAULT_BUDGET_SECONDS = 300.0
STARTUP_GUESS_SECONDS = 4.0  # child start, model load and warm-up on a busy 2-vCPU box, until measured
MIN_MEASURED_SECONDS = 1.5  # three 0.5 s windows: the stability rule's least
MIN_STEP_SECONDS = STARTUP_GUESS_SECONDS + MIN_MEASURED_SECONDS + 0.5  # what check_budget counts per step
PLANNED_STEPS_PER_POINT = 5  # the offline step and four server steps share a point's budget
STOP_SLACK_SECONDS = 2.0  # a step whose child starts slower than guessed is stopped this far past its share
TICK_SECONDS = 0.25
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
DEVICE_KIND = {"cpu": "cpu", "cuda": "gpu", "neuron": "neuron"}


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="neurontui tune",
                           description="Find the configuration that serves the most within a latency bound.")
    parser.add_argument("--model", required=True, help="a model of the registry (cnn, resnet50, bert, ...)")
    parser.add_argument("--backend", default="auto", help="auto, cpu, cuda or neuron")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--slo", required=True, metavar="pQ=BOUND", help="latency bound, e.g. p99=15ms")
    parser.add_argument("--modes", default="single,dp", metavar="LIST", help="e.g. single,dp,pipeline")
    parser.add_argument("--batches", default="1,4", metavar="LIST", help="e.g. 1,2,4,8")
    parser.add_argument("--concurrency", default="1", metavar="LIST", help="requests in flight, e.g. 1,2")
    parser.add_argument("--budget", type=positive_float, default=DEFAULT_BUDGET_SECONDS, metavar="SECONDS",
                        help=f"wall time of all steps together (default {DEFAULT_BUDGET_SECONDS:g})")
    parser.add_argument("--price-per-hour", type=positive_float, default=None, metavar="USD")
    parser.add_argument("--instance-type", default=None, metavar="T", help="looked up in the price table")
    parser.add_argument("--prices", default=None, metavar="FILE", help="prices that override the shipped table")
    parser.add_argument("--export", default=None, metavar="PATH", help=".json, .md or .csv (default: Markdown on stdout)")
    parser.add_argument("--monitor", type=monitor_spec, default="auto", metavar="auto|neuron|host|none",
                        help="telemetry source for utilization")
    parser.add_argument("--cache-dir", default=None, metavar="DIR")
    return parser


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


def parse_points(args: argparse.Namespace) -> list[Point]:
    """Every (mode, batch, concurrency) in the order given; TuneUsageError names the first bad value."""
    modes = []
    for mode in (m.strip() for m in args.modes.split(",")):
        if mode not in MODES:
            raise TuneUsageError(f"--modes: unknown mode {mode!r}: choose from {', '.join(MODES)}")
        if mode not in modes:
            modes.append(mode)
    batches = _int_list("--batches", args.batches)
    concurrencies = _int_list("--concurrency", args.concurrency)
    return [Point(m, b, c) for m in modes for b in batches for c in concurrencies]


class TuneRun:
    """Validates everything first (one line, exit 2), then drives run_tune over one Session."""

    def __init__(self, args: argparse.Namespace, argv: list[str]) -> None:
        self.args = args
        self.argv = argv
        self.progress = Progress()
        self.stop = threading.Event()
        self.stopped_by: str | None = None
        self.store = Store()
        self.session: Session | None = None
        self.startup_seconds: dict[str, float] = {}  # per mode (dp starts workers), measured on each step
        self.point_share: float | None = None
        self.backend = args.backend  # the one the children resolved
        self.ready: Any = None
        self.device_name = ""
        self.last_scenario = ""

    def prepare(self) -> str | None:
        """Why the tune cannot run as asked, in one line; None when it can."""
        args = self.args
        try:
            self.slo = parse_slo(args.slo)
            self.points = parse_points(args)
            self.base = WorkloadConfig(model=args.model, backend=args.backend, precision=args.precision,
                                       cache_dir=args.cache_dir)
            for point in self.points:
                problems = self._config(point, "server", 1.0, 1.0).validate()
                if problems:
                    raise TuneUsageError(f"{point.label}: {problems[0]}")
            self.budget = Budget(seconds=args.budget)
            check_budget(self.budget, len(self.points), MIN_STEP_SECONDS)
            instance_type = args.instance_type or describe_host()["instance_type"]
            self.price, self.price_reason = resolve_price(args.price_per_hour, instance_type, args.prices)
        except TuneUsageError as exc:
            return str(exc)
        if args.export and (problem := check_writable(args.export)):
            return problem
        return requested_backend_problem(args.backend)

    def _config(self, point: Point, scenario: str, rate: float | None, duration: float) -> WorkloadConfig:
        return replace(self.base, mode=point.mode, batch=point.batch, concurrency=point.concurrency,
                       scenario=scenario, qps=rate if scenario == "server" else None, duration=duration)

    # -- entry --------------------------------------------------------------------------
    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        self.session = Session(self.store, self.base, WorkloadProcess(self.store),
                               SimpleNamespace(monitor=self.args.monitor, prometheus_port=0))
        started = time.monotonic()
        try:
            self.session.start(metrics=False)
            self.progress.message(f"tune {self.args.model} {self.args.backend}: {len(self.points)} point(s) within "
                                  f"{self.slo.key} {format_bound(self.slo.bound_seconds)}, budget "
                                  f"{self.budget.seconds:g} s; steps need {samples_needed(self.slo)} samples "
                                  "or their share of the budget")
            result = run_tune(self.points, self._offline, self._server, self.slo, self.budget, on_step=self._on_step)
            host = describe_host(self.store)
        finally:
            self.session.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.progress.close()
        document = self.document(result, host)
        self.progress.message(f"tune took {time.monotonic() - started:.0f} s of a {self.budget.seconds:g} s budget")
        for hint in document["hints"]:
            self.progress.message(hint)
        if not self.write(document):
            return 1
        if self.stopped_by:
            return 128 + signal.Signals[self.stopped_by].value
        return 0 if result.winner is not None else 1

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.stopped_by is None:
            self.stopped_by = signal.Signals(signum).name
        self.stop.set()

    # -- steps --------------------------------------------------------------------------
    def _offline(self, point: Point, seconds_left: float | None) -> StepResult:
        self.point_share = seconds_left
        return self._step(point, "offline", None, seconds_left)

    def _server(self, point: Point, rate: float, seconds_left: float | None) -> StepResult:
        return self._step(point, "server", rate, seconds_left)

    def _step_cap(self, seconds_left: float | None) -> float:
        """Wall seconds this step may take: its even share of the point's budget, within what is left."""
        share = self.point_share if self.point_share is not None else self.budget.seconds or DEFAULT_BUDGET_SECONDS
        cap = max(MIN_STEP_SECONDS, share / PLANNED_STEPS_PER_POINT)
        return min(cap, seconds_left) if seconds_left is not None else cap

    def _step(self, point: Point, scenario: str, rate: float | None, seconds_left: float | None) -> StepResult:
        if self.stop.is_set():
            raise StepFailed(f"interrupted by {self.stopped_by}")
        self.last_scenario = scenario
        cap = self._step_cap(seconds_left)
        startup = self.startup_seconds.get(point.mode, STARTUP_GUESS_SECONDS)
        config = self._config(point, scenario, rate, max(cap - startup, MIN_MEASURED_SECONDS))
        session = self.session
        assert session is not None
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
            if self.stop.is_set() or self._enough(workload.run.figures(), time.monotonic() - began, cap, seconds_left):
                break
            text, fraction = describe(workload, config.duration)
            self.progress.update(f"{what}: {text}", fraction, stage=f"{workload.state}:{bool(workload.run.window_count)}")
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
            self.progress.message(f"{problem}; the point is skipped")
            raise StepFailed(problem, seconds)
        self.backend = workload.backend
        if workload.ready is not None:
            self.ready, self.device_name = workload.ready, workload.ready.device_name
        kind = core_kind(workload.backend)
        requests_per_second = figures.throughput / point.batch
        return StepResult(
            rate=rate if rate is not None else requests_per_second,
            throughput=figures.throughput,
            latency=figures.latency.get(self.slo.key),
            saturated=rate is not None and is_saturated(rate, requests_per_second, figures.measured_seconds),
            seconds=seconds, completed=figures.completed,
            percentiles={key: figures.latency.get(key) for key in map(percentile_key, PERCENTILES)},
            utilization=workload.run.telemetry.mean_utilization(kind) if kind else None,
            joules=reading.joules if reading else None,
            energy_reason=(reading.reason if reading else "the step never reached its measured part"))

    def _enough(self, figures: RunFigures, elapsed: float, cap: float, seconds_left: float | None) -> bool:
        """Whether a step may end now: stable with samples_needed(slo) samples; or past its share
        once it has measured the stability rule's least; or past all its point has left."""
        if figures.stability == "stable" and figures.completed >= samples_needed(self.slo):
            return True
        if seconds_left is not None and elapsed > seconds_left + STOP_SLACK_SECONDS:
            return True
        return figures.measured_seconds >= MIN_MEASURED_SECONDS and elapsed > cap + STOP_SLACK_SECONDS

    def _on_step(self, point: Point, step: StepResult) -> None:
        """One line per step as it lands (run_tune calls this right after the step returns)."""
        figures = (f"{format_rate(step.throughput)}, p50 {format_seconds(step.percentiles.get('p50'))}, "
                   f"{self.slo.key} {format_seconds(step.latency)}, {step.completed} samples in {step.seconds:.1f} s")
        if self.last_scenario == "offline":
            self.progress.message(f"{point.label}: offline maximum {format_rate(step.rate, '')} req/s: {figures}")
        else:
            self.progress.message(f"{point.label}: {format_rate(step.rate, '')} req/s: {figures}: "
                                  f"{verdict(step, self.slo)}")

    # -- result -------------------------------------------------------------------------
    def document(self, result: TuneResult, host: dict[str, Any]) -> dict[str, Any]:
        """The tune document (tune/result.py) in the export's envelope (created, tool, command)."""
        kind = DEVICE_KIND.get(self.backend)
        name = self.device_name if kind == "gpu" else (host.get("instance_type") or "")
        units = self.ready.cores_used if self.ready is not None else 1
        if self.price is None and host.get("instance_type"):  # neuron-monitor named it once it ran
            self.price, self.price_reason = resolve_price(None, host["instance_type"], self.args.prices)
        context = TuneContext(self.args.model, self.backend, self.args.precision,
                              Device(kind, name, units) if kind else None,
                              self.ready.flops_per_sample if self.ready is not None else None,
                              self.price, self.price_reason, host)
        envelope = new_document(host, ["neurontui", *self.argv])
        document = {**envelope, **tune_document(result, context, self.budget)}
        document["complete"] = self.stopped_by is None
        document["interrupted_by"] = self.stopped_by
        return document

    def write(self, document: dict[str, Any]) -> bool:
        path = self.args.export
        if not path:
            sys.stdout.write(render_tune(document, "tune.md"))
            return True
        try:
            write_atomic(path, render_tune(document, path))
        except OSError as exc:
            self.progress.message(f"neurontui tune: could not write {path}: {exc.strerror or exc}")
            return False
        self.progress.message(f"wrote the tune of {len(document['points'])} point(s) to {path}")
        return True


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    run = TuneRun(args, ["tune", *argv])
    problem = run.prepare()
    if problem:
        print(f"neurontui tune: error: {problem}", file=sys.stderr)
        return 2
    return run.run()

