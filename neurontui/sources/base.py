"""What every telemetry source shares: a name, daemon threads, publish into the Store."""
from __future__ import annotations

import threading

from ..store import Store
from ..telemetry import Snapshot
from .recorder import Recorder

MAX_ERRORS_LOGGED = 100  # distinct per-group errors logged once each; beyond this they are only counted


class Source:
    name = "source"

    def __init__(self, store: Store, recorder: Recorder | None = None) -> None:
        self.store = store
        self.recorder = recorder
        self.finished = threading.Event()  # set when a finite source (a replay) has played everything
        self.unavailable: list[str] = []  # what it cannot read at all, "<group>: <why>" (--once --json reports it)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._errors_logged: set[str] = set()

    def start(self) -> None:
        thread = threading.Thread(target=self.run, name=f"source-{self.name}", daemon=True)
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
        self.store.publish_snapshot(snapshot)
        if self.recorder:
            self.recorder.snapshot(snapshot)
