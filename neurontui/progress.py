"""Progress of a headless run on stderr: a bar on a terminal, plain lines otherwise.

stdout stays clean for whatever a script pipes; stderr gets phase, compile progress,
elapsed/remaining and the current throughput. Plain lines (a log, a journal) come when the
stage changes (compiling, running, ...) and otherwise at most every PLAIN_INTERVAL_SECONDS,
so a day under systemd is a few thousand lines, not one a second.
"""
from __future__ import annotations

import shutil
import sys
import threading
import time
from typing import TextIO

from workloads.text import clean_text

from .format import format_rate, format_seconds
from .store import WorkloadState

BAR_WIDTH = 20
PLAIN_INTERVAL_SECONDS = 30.0


def describe(workload: WorkloadState, duration: float | None) -> tuple[str, float | None]:
    """(text, fraction done or None) for the workload's current state, from its run record."""
    state = workload.state
    if state in ("starting", "idle"):
        return "starting the workload", None
    figures = workload.run.figures()
    if figures.windows and state in ("running", "paused", "exited"):
        done = figures.measured_seconds
        text = f"{state}: {done:.1f} s measured"
        fraction = None
        if duration:
            text += f", {max(duration - done, 0.0):.1f} s left"
            fraction = min(done / duration, 1.0)
        text += f", {format_rate(figures.recent_throughput)}, p50 {format_seconds(figures.recent_latency['p50'])}"
        if figures.errors:
            text += f", {figures.errors} errors"
        return text, fraction
    phase = workload.phase
    if state == "running":
        return "running, first window pending", None
    if phase is not None and state == phase.phase:
        text = f"{phase.phase} {phase.progress:.0%}" + (f" ({phase.detail})" if phase.detail else "")
        return text, phase.progress if phase.phase == "compiling" else None
    return state, None


class Progress:
    def __init__(self, stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self._last_plain = 0.0
        self._last_text = ""
        self._last_stage: str | None = None
        self._bar_shown = False
        self._lock = threading.RLock()  # reader threads report events while the main thread draws

    def update(self, text: str, fraction: float | None = None, force: bool = False, stage: str | None = None) -> None:
        with self._lock:
            self._update(clean_text(text), fraction, force, stage)

    def _update(self, text: str, fraction: float | None, force: bool, stage: str | None) -> None:
        if self.tty:
            self._draw_bar(text, fraction)
            return
        now = time.monotonic()
        if text == self._last_text and not force:
            return
        new_stage = stage is not None and stage != self._last_stage
        if not force and not new_stage and now - self._last_plain < PLAIN_INTERVAL_SECONDS:
            return
        self._last_plain, self._last_text, self._last_stage = now, text, stage
        self._write(text + "\n")

    def message(self, text: str) -> None:
        """A line that must not be rate-limited or overdrawn (a finished row, a warning)."""
        with self._lock:
            self._message(clean_text(text))  # a child's or a report's text may carry escapes

    def _message(self, text: str) -> None:
        if self.tty and self._bar_shown:
            self._write("\r\x1b[K")
            self._bar_shown = False
        self._write(text + "\n")
        self._last_text = text

    def close(self) -> None:
        if self.tty and self._bar_shown:
            self._write("\n")
            self._bar_shown = False

    def _draw_bar(self, text: str, fraction: float | None) -> None:
        if fraction is None:
            bar = "[" + " " * BAR_WIDTH + "]"
        else:
            filled = int(round(max(0.0, min(fraction, 1.0)) * BAR_WIDTH))
            bar = "[" + "#" * filled + "." * (BAR_WIDTH - filled) + "]"
        width = shutil.get_terminal_size((80, 24)).columns
        line = f"{bar} {text}"[: max(width - 1, 10)]
        self._write("\r\x1b[K" + line)
        self._bar_shown = True

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # stderr closed (SSH gone): progress is not worth dying for
            pass
