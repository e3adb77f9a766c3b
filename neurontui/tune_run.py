"""`neurontui tune`: the best (mode, batch, concurrency) under a latency bound, measured.

A thin driver over a Session, like headless.py: the steps are measured by tuning.StepMeasurer
(the TUI's tune key uses the same). Progress goes to stderr; the result is written as JSON,
Markdown or CSV (export/tune_views.py). Never imports Textual.
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
from types import SimpleNamespace
from typing import Any

from workloads.config import WorkloadConfig, positive_float

from .args import OneLineParser, monitor_spec
from .backend_presence import requested_backend_problem
from .export.tune_views import render_tune
from .export.writers import check_writable, write_atomic
from .format import format_bound
from .host_info import describe_host
from .progress import Progress
from .session import Session
from .store import Store
from .tune.cost import resolve_price
from .tune.decide import TuneResult
from .tune.search import Budget, check_budget, samples_needed
from .tune.slo import TuneUsageError, parse_slo
from .tuning import (CONFIRM_MEASURED_SECONDS, DEFAULT_BUDGET_SECONDS, MIN_STEP_SECONDS, StepMeasurer, TunePlan,
                     parse_points)
from .workload import WorkloadProcess

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


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


class TuneRun:
    """Validates everything first (one line, exit 2), then drives a StepMeasurer over one Session."""

    def __init__(self, args: argparse.Namespace, argv: list[str]) -> None:
        self.args = args
        self.argv = argv
        self.progress = Progress()
        self.store = Store()
        self.measurer: StepMeasurer | None = None

    def prepare(self) -> str | None:
        """Why the tune cannot run as asked, in one line; None when it can."""
        args = self.args
        try:
            base = WorkloadConfig(model=args.model, backend=args.backend, precision=args.precision,
                                  cache_dir=args.cache_dir)
            self.plan = TunePlan(base, parse_slo(args.slo), parse_points(args.modes, args.batches, args.concurrency),
                                 Budget(seconds=args.budget))
            if problem := self.plan.problem():
                raise TuneUsageError(problem)
            check_budget(self.plan.budget, len(self.plan.points), MIN_STEP_SECONDS)
            instance_type = args.instance_type or describe_host()["instance_type"]
            self.price, self.price_reason = resolve_price(args.price_per_hour, instance_type, args.prices)
        except TuneUsageError as exc:
            return str(exc)
        if args.export and (problem := check_writable(args.export)):
            return problem
        return requested_backend_problem(args.backend)

    # -- entry --------------------------------------------------------------------------
    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        plan = self.plan
        session = Session(self.store, plan.base, WorkloadProcess(self.store),
                          SimpleNamespace(monitor=self.args.monitor, prometheus_port=0))
        self.measurer = measurer = StepMeasurer(session, plan, on_progress=self._on_progress,
                                                on_message=self.progress.message)
        started = time.monotonic()
        try:
            session.start(metrics=False)
            confirm = (f"; the winner is confirmed by a run of at least {CONFIRM_MEASURED_SECONDS:g} s"
                       if plan.confirm_seconds else "; the budget leaves no room to confirm the winner")
            self.progress.message(f"tune {self.args.model} {self.args.backend}: {len(plan.points)} point(s) within "
                                  f"{plan.slo.key} {format_bound(plan.slo.bound_seconds)}, budget "
                                  f"{plan.budget.seconds:g} s; steps need {samples_needed(plan.slo)} samples "
                                  f"or their share of the budget{confirm}")
            result = measurer.run()
            host = describe_host(self.store)
        finally:
            session.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.progress.close()
        document = self.document(result, host)
        self.progress.message(f"tune took {time.monotonic() - started:.0f} s of a {plan.budget.seconds:g} s budget")
        for hint in document["hints"]:
            self.progress.message(hint)
        if not self.write(document):
            return 1
        if measurer.stopped_by:
            return 128 + signal.Signals[measurer.stopped_by].value
        return 0 if result.winner is not None else 1

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.measurer is not None:
            self.measurer.interrupt(signal.Signals(signum).name)

    def _on_progress(self, text: str, fraction: float | None, stage: str) -> None:
        self.progress.update(text, fraction, stage=stage)

    # -- result -------------------------------------------------------------------------
    def document(self, result: TuneResult, host: dict[str, Any]) -> dict[str, Any]:
        assert self.measurer is not None
        return self.measurer.document(result, host, self.argv, self.price, self.price_reason, self.args.prices)

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

