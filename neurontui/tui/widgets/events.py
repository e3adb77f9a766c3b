"""Events and hints: phase changes, errors, the child's stderr, hints — newest last."""
from __future__ import annotations

import time
from collections.abc import Sequence

from rich.text import Text
from textual.widgets import RichLog

from ...store import LogEvent

LEVEL_STYLES = {"error": "bold red", "warning": "yellow", "hint": "bold cyan", "info": ""}


def new_items(items: Sequence, last_seen: object | None) -> list:
    """Items after `last_seen` (by identity) in a ring buffer that may have dropped old ones."""
    if last_seen is None:
        return list(items)
    for position in range(len(items) - 1, -1, -1):
        if items[position] is last_seen:
            return list(items)[position + 1:]
    return list(items)  # everything we knew has rotated out


def event_line(event: LogEvent) -> Text:
    line = Text(time.strftime("%H:%M:%S ", time.localtime(event.time)), style="dim")
    line.append(f"{event.level:<5} ", style=LEVEL_STYLES.get(event.level, ""))
    if event.source != event.level:
        line.append(f"{event.source}: ", style="dim")
    line.append(event.text, style=LEVEL_STYLES.get(event.level, "") if event.level == "error" else "")
    return line


class EventsPanel(RichLog):
    DEFAULT_CSS = "EventsPanel { height: 5; }"

    def __init__(self, **kwargs) -> None:
        super().__init__(max_lines=500, wrap=True, markup=False, **kwargs)
        self.can_focus = False
        self._last_event: LogEvent | None = None
        self._last_stderr: str | None = None

    def show(self, events: Sequence[LogEvent], stderr: Sequence[str], now: float) -> None:
        for event in new_items(events, self._last_event):
            self.write(event_line(event))
            self._last_event = event
        for raw in new_items(stderr, self._last_stderr):
            self.write(event_line(LogEvent(now, "info", "child stderr", raw)))
            self._last_stderr = raw

    def forget_stderr(self) -> None:
        """A restarted child has a new stderr buffer."""
        self._last_stderr = None
