"""What every telemetry source shares: a name, daemon threads, publish into the Store, and
the staleness rule: a periodic source with no sample for STALL_PERIODS periods is down."""
from __future__ import annotations

import statistics
import threading
import time
from collections import deque

from ..store import Store
from ..telemetry import Snapshot
from .recorder import Recorder

MAX_ERRORS_LOGGED = 100  # distinct per-group errors logged once each; beyond this they are only counted
STALL_PERIODS = 3
MIN_PERIOD_SECONDS = 1.0  # neuron-monitor's default; a burst of quick samples must not shorten the rule
FIRST_SAMPLE_GRACE_SECONDS = 15.0  # neuron-monitor's first report can take a few seconds
STALL_CHECK_SECONDS = 0.5


class Source:
    name = "source"
    watch_stalls = False  # True for sources that sample on a period (a replay pauses as recorded)
    first_sample_grace = FIRST_SAMPLE_GRACE_SECONDS

    def __init__(self, store: Store, recorder: Recorder | None = None) -> None:
        self.store = store
        self.recorder = recorder
        self.finished = threading.Event()  # set when a finite source (a replay) has played everything
        self.unavailable: list[str] = []  # what it cannot read at all, "<group>: <why>" (--once --json reports it)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._errors_logged: set[str] = set()
        self._last_sample: float | None = None  # monotonic
        self._intervals: deque[float] = deque(maxlen=5)
        self._stalled = False

    def start(self) -> None:
        targets = [(self.run, f"source-{self.name}")]
        if self.watch_stalls:
            targets.append((self._watch_stalls, f"source-{self.name}-stalls"))
        for target, name in targets:
            thread = threading.Thread(target=target, name=name, daemon=True)
            self._threads.append(thread)
            thread.start()

    def run(self) -> None:  # pragma: no cover - every source defines it
        raise NotImplementedError

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
        if self.recorder:
            self.recorder.close()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def publish(self, snapshot: Snapshot) -> None:
        """Hand a snapshot to the Store (and the recording); log each new kind of group error once."""
        for error in snapshot.errors:
            if error not in self._errors_logged and len(self._errors_logged) < MAX_ERRORS_LOGGED:
                self._errors_logged.add(error)
                self.store.log("warning", self.name, f"could not read {error}")
        now = time.monotonic()
        if self._last_sample is not None:
            self._intervals.append(now - self._last_sample)
        self._last_sample, self._stalled = now, False
        self.store.publish_snapshot(snapshot)
        if self.recorder:
            self.recorder.snapshot(snapshot)

    # -- staleness ------------------------------------------------------------------------
    def stall_limit(self) -> float:
        """Seconds without a sample after which the source is down: STALL_PERIODS of its period."""
        period = max(statistics.median(self._intervals), MIN_PERIOD_SECONDS) if self._intervals else MIN_PERIOD_SECONDS
        limit = STALL_PERIODS * period
        return limit if self._last_sample is not None else max(limit, self.first_sample_grace)

    def stall_reason(self, silent: float) -> str:
        return f"{self.name} sent no sample for {silent:.0f} s"

    def _watch_stalls(self) -> None:
        """Mark the source down when it stalls (a hung monitor, half a line, only stderr): its
        figures leave /metrics and the screen says so; its next sample brings it back."""
        started = time.monotonic()
        while not self._stopping.wait(STALL_CHECK_SECONDS):
            silent = time.monotonic() - (self._last_sample or started)
            if not self._stalled and silent > self.stall_limit():
                self._stalled = True
                self.store.source_down(self.name, self.stall_reason(silent), restarting=False)
