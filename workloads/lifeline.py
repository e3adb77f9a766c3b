"""Tie a child's life to its parent's, and read the parent's commands.

A workload that outlives neurontui would keep its NeuronCores (processes never share
them) and block the next run. Two independent ties, so either suffices:
- Linux's parent-death signal (prctl PR_SET_PDEATHSIG): SIGTERM when the parent dies,
  even by SIGKILL;
- the parent holds our stdin open; EOF on stdin means the parent is gone.
Lines on stdin are commands: `pause`, `resume`, `stop` (see protocol.py).
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from typing import Callable

PR_SET_PDEATHSIG = 1
COMMANDS = ("pause", "resume", "stop")
EOF_MESSAGE = ("workloads: stdin reached its end (the parent closed it or is gone), stopping; "
               "run alone, keep stdin open (e.g. `sleep infinity | python -m workloads ...`)")


def set_parent_death_signal(sig: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send `sig` when our parent dies; False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def watch_parent(on_command: Callable[[str], None], expected_parent: int | None = None) -> threading.Thread:
    """Read commands from stdin in a daemon thread; exit the process when stdin closes.

    `expected_parent`: if the parent already died before prctl took effect, our parent
    pid has changed; exit at once rather than run as an orphan.
    """
    set_parent_death_signal()
    if expected_parent is not None and os.getppid() != expected_parent:
        os._exit(3)

    def reader() -> None:
        for raw in sys.stdin:
            command = raw.strip()
            if command in COMMANDS:
                on_command(command)
        # EOF: the parent closed the pipe or died. Exit without waiting on worker threads, and say
        # why, so whoever ran the child alone (`python -m workloads ... </dev/null`) is not left guessing.
        print(EOF_MESSAGE, file=sys.stderr, flush=True)
        on_command("stop")
        killer = threading.Timer(2.0, os._exit, args=(4,))
        killer.daemon = True
        killer.start()

    thread = threading.Thread(target=reader, name="lifeline", daemon=True)
    thread.start()
    return thread
