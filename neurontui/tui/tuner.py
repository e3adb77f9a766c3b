"""The TUI's tune: `neurontui tune`'s search (tuning.StepMeasurer) run on the app's own session.

The measurer blocks for the whole budget, so it runs in a Textual thread worker; it replaces the
session's workload step after step, and its callbacks only log to the Store or post typed
messages (messages.py). When it ends the session gets back the settings it had before; the
winner is one key away (`W`, app.py).
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

from textual.app import App

from workloads.config import WorkloadConfig

from ..export.tune_views import render_tune, winner_line
from ..export.writers import write_atomic
from ..format import format_bound, format_duration, format_rate, format_seconds
from ..host_info import describe_host
from ..session import Session
from ..tune.decide import Point
from ..tune.search import StepResult, samples_needed
from ..tuning import StepMeasurer, TunePlan
from .messages import TuneFinished, TuneProgress, TuneStepLanded

SWITCH_RATE_DIGITS = 3  # the winner's rate is switched to rounded down to this many significant digits


def rounded_down(rate: float, digits: int = SWITCH_RATE_DIGITS) -> float:
    """412.345 -> 412.0: a rate the user can read back, never above the one that met the bound."""
    magnitude = 10.0 ** (math.floor(math.log10(rate)) - digits + 1)
    return math.floor(rate / magnitude) * magnitude


def outcome(document: dict[str, Any]) -> str:
    """The tune's result in a few words: 'winner: single batch 4 at 412 req/s, p99 8.8 ms'."""
    slo, winner = document["slo"], document["winner"]
    if winner is None:
        return f"no configuration met {slo['percentile']} {format_bound(slo['bound_seconds'])}"
    point = Point(winner["mode"], winner["batch"], winner["concurrency"])
    return (f"winner: {point.label} at {format_rate(winner['rate'], ' req/s')}, "
            f"{slo['percentile']} {format_seconds(winner['latency_at_bound'])}")


def tune_export_name(document: dict[str, Any], now: float) -> str:
    """neurontui-tune-<model>-<backend>-<time>.json, beside the runs' exports (session.export_name)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return f"neurontui-tune-{document['model']}-{document['backend']}-{stamp}.json"


class TuiTune:
    """One tune at a time over `session`; `document` holds the last one's result."""

    def __init__(self, app: App, session: Session) -> None:
        self.app, self.session, self.store = app, session, session.store
        self.measurer: StepMeasurer | None = None
        self.plan: TunePlan | None = None
        self.document: dict[str, Any] | None = None
        self._settings_before: WorkloadConfig | None = None

    @property
    def running(self) -> bool:
        return self.measurer is not None

    @property
    def winner(self) -> dict[str, Any] | None:
        return self.document.get("winner") if self.document else None

    def start(self, plan: TunePlan) -> None:
        self.plan, self.document = plan, None
        self._settings_before = self.session.config
        self.measurer = StepMeasurer(self.session, plan, on_progress=self._on_progress, on_message=self._on_message,
                                     on_step=self._on_step)
        self.store.log("info", "tune", f"tuning {plan.base.model}: {len(plan.points)} point(s) within {plan.slo.key} "
                       f"{format_bound(plan.slo.bound_seconds)}, budget {format_duration(plan.budget.seconds)}; "
                       f"steps need {samples_needed(plan.slo)} samples or their share of the budget")
        self.app.run_worker(self._measure, name="tune", group="tune", thread=True, exit_on_error=False)

    def stop(self, reason: str) -> None:
        """End the running tune at its next tick; the steps measured so far are kept."""
        if self.measurer is not None:
            self.measurer.interrupt(reason)

    def finished(self, message: TuneFinished) -> str:
        """Back to the settings from before the tune; its outcome into the events. Returns it in short."""
        measurer, self.measurer = self.measurer, None
        self.session.config = self._settings_before
        self.session.restart()
        if message.document is None:
            self.store.log("error", "tune", message.error)
            return message.error
        self.document = message.document
        stopped_by = measurer.stopped_by if measurer is not None else None
        if stopped_by:
            self.store.log("info", "tune", f"the tune was stopped by {stopped_by}; what it measured is kept")
        self.store.log("info", "tune", winner_line(self.document, emphasis="") +
                       (" Press W to switch to it." if self.winner else ""))
        for hint in self.document["hints"]:
            self.store.log("hint", "tune", hint)
        self.store.log("info", "tune", "back to the settings from before the tune")
        return ("stopped · " if stopped_by else "") + outcome(self.document)

    def winner_settings(self) -> dict[str, Any]:
        """What session.switch needs to run the winner: its point, served at its rate."""
        winner = self.winner
        assert winner is not None
        return {"mode": winner["mode"], "batch": winner["batch"], "concurrency": winner["concurrency"],
                "scenario": "server", "qps": rounded_down(winner["rate"])}

    def write(self, directory: Path) -> Path:
        """`e` with the tune's plot open: its document as `neurontui tune --export X.json` writes it;
        raises OSError when it cannot."""
        assert self.document is not None
        path = directory / tune_export_name(self.document, time.time())
        write_atomic(str(path), render_tune(self.document, str(path)))
        return path

    # -- in the worker thread ------------------------------------------------------------
    def _measure(self) -> None:
        measurer = self.measurer
        assert measurer is not None
        try:
            result = measurer.run()
            document = measurer.document(result, describe_host(self.store), sys.argv[1:])
        except Exception as exc:  # whatever broke, the app must get its workload back
            self.app.post_message(TuneFinished(None, f"the tune broke off: {exc}"))
            return
        self.app.post_message(TuneFinished(document))

    def _on_progress(self, text: str, fraction: float | None, stage: str) -> None:
        self.app.post_message(TuneProgress(text, fraction))

    def _on_message(self, text: str) -> None:
        self.store.log("info", "tune", text)

    def _on_step(self, point: Point, scenario: str, step: StepResult) -> None:
        self.app.post_message(TuneStepLanded(point, scenario, step))
