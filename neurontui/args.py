"""Argument helpers shared by every command line of neurontui (`neurontui`, `neurontui report`):
one-line errors and the value checks of the telemetry and Prometheus flags."""
from __future__ import annotations

import argparse
import shlex

MONITOR_CHOICES = ("auto", "neuron", "host", "none")


class OneLineParser(argparse.ArgumentParser):
    """Bad flag values get one line and exit status 2, not a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def monitor_spec(text: str) -> str:
    if text in MONITOR_CHOICES or (text.startswith("replay:") and len(text) > len("replay:")):
        return text
    raise argparse.ArgumentTypeError(f"expected one of {', '.join(MONITOR_CHOICES)} or replay:PATH, got {text!r}")


def monitor_command(text: str) -> str:
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"cannot split {text!r}: {exc}") from None
    if not words:
        raise argparse.ArgumentTypeError("empty command")
    return text


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, got {value}")
    return value
