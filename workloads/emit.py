"""Protocol events out on the real stdout; everything else printed goes to stderr.

Libraries (torch, the Neuron compiler) print to fd 1 from Python and from C. The child
keeps a private duplicate of fd 1 for events and points fd 1 at stderr, so no stray
print can corrupt the event stream.
"""
from __future__ import annotations

import os
import sys
import threading
from typing import TextIO

from .protocol import Event


class Emitter:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self.broken = False  # the parent stopped reading

    @classmethod
    def take_stdout(cls) -> Emitter:
        sys.stdout.flush()
        events_fd = os.dup(1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        return cls(os.fdopen(events_fd, "w", encoding="utf-8"))

    def __call__(self, event: Event) -> None:
        self.write_line(event.to_json())

    def write_line(self, line: str) -> None:
        with self._lock:
            if self.broken:
                return
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except (BrokenPipeError, OSError, ValueError):
                self.broken = True
