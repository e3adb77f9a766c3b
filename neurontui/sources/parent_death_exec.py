"""`python -m neurontui.sources.parent_death_exec CMD ARGS...`: exec CMD tied to our parent.

Sets the kernel's parent-death signal, then replaces itself with CMD (the setting
survives exec), so neuron-monitor dies with neurontui even when neurontui is SIGKILLed.
The signal fires when the *thread* that started us ends: start it from a thread that
lives as long as the source.
"""
from __future__ import annotations

import os
import signal
import sys

from workloads.lifeline import set_parent_death_signal

EXPECTED_PARENT_ENV = "NEURONTUI_PARENT_PID"


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m neurontui.sources.parent_death_exec CMD [ARGS...]", file=sys.stderr)
        return 2
    set_parent_death_signal(signal.SIGKILL)  # a monitor has nothing to flush
    expected = os.environ.get(EXPECTED_PARENT_ENV)
    if expected and os.getppid() != int(expected):
        return 3  # the parent died before the signal was armed
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        print(f"cannot run {argv[0]}: {exc.strerror or exc}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
