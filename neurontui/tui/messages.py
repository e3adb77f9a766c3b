"""Typed messages posted to the app. Store listeners run in source threads and may only
post these; widgets are touched on the app's own thread when a message is handled."""
from __future__ import annotations

from typing import Any

from textual.message import Message

from ..tune.decide import Point
from ..tune.search import StepResult


class StoreChanged(Message):
    """Something in the Store changed since the last one was handled (coalesced)."""


class Notice(Message):
    """A result from a background action (export written, restart failed) for the events panel."""

    def __init__(self, level: str, text: str) -> None:
        super().__init__()
        self.level = level
        self.text = text


class TuneProgress(Message):
    """The tune's current step, as it runs: one line and how far it is (0..1, None when unknown)."""

    def __init__(self, text: str, fraction: float | None) -> None:
        super().__init__()
        self.text = text
        self.fraction = fraction


class TuneStepLanded(Message):
    """A tune step measured: `scenario` is 'offline', 'server' or 'confirm'."""

    def __init__(self, point: Point, scenario: str, step: StepResult) -> None:
        super().__init__()
        self.point = point
        self.scenario = scenario
        self.step = step


class TuneFinished(Message):
    """The tune ended: its document (tune/result.py), or why it broke off."""

    def __init__(self, document: dict[str, Any] | None, error: str = "") -> None:
        super().__init__()
        self.document = document
        self.error = error
