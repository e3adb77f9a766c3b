"""Parse one neuron-monitor report (every generation) into a Snapshot. Pure: no I/O.

A clean gen-2 line takes the typed fast path (neuron_typed.py, msgspec); anything it refuses
is decoded with json.loads and read by the tolerant parser (neuron_parser.py), which trusts
no key, type or value. Either way the snapshot passes the sanitizing and bounding post-pass
(sanitize.py), and no exception escapes.
"""
from __future__ import annotations

import time as _time
from dataclasses import dataclass, field

from ..telemetry import Snapshot
from . import neuron_typed
from .neuron_parser import SOURCE, _loads, _Parser, _short
from .sanitize import sanitize_snapshot

__all__ = ["SOURCE", "ParseResult", "parse_report"]


@dataclass
class ParseResult:
    snapshot: Snapshot | None  # None only when the input is not a JSON object at all
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.snapshot is not None


def parse_report(report: str | bytes | dict, time: float | None = None) -> ParseResult:
    """Turn one report (a JSON line, its bytes, or the decoded dict) into a Snapshot."""
    when = _time.time() if time is None else time
    # The typed fast path (neuron_typed.py) reads a clean gen-2 line; anything else comes here.
    typed = neuron_typed.decode_report(report, when) if isinstance(report, (str, bytes, bytearray)) else None
    if typed is not None:
        report = None
    elif isinstance(report, (bytes, bytearray)):
        report = bytes(report).decode("utf-8", "replace")
    if isinstance(report, str):
        try:
            report = _loads(report)
        except (ValueError, RecursionError) as exc:
            return ParseResult(None, [f"report: not JSON ({_short(exc)})"])
    if typed is None and not isinstance(report, dict):
        return ParseResult(None, [f"report: expected a JSON object, got {type(report).__name__}"])
    try:
        snapshot = sanitize_snapshot(typed if typed is not None else _Parser(when).parse(report))
    except Exception as exc:  # noqa: BLE001 - a parser bug must cost one report, not the stream
        return ParseResult(None, [f"report: parser failed ({type(exc).__name__}: {_short(exc)})"])
    return ParseResult(snapshot, list(snapshot.errors))
