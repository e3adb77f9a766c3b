"""Typed messages posted to the app. Store listeners run in source threads and may only
post these; widgets are touched on the app's own thread when a message is handled."""
from __future__ import annotations

from textual.message import Message


class StoreChanged(Message):
    """Something in the Store changed since the last one was handled (coalesced)."""


class Notice(Message):
    """A result from a background action (export written, restart failed) for the events panel."""

    def __init__(self, level: str, text: str) -> None:
        super().__init__()
        self.level = level
        self.text = text
