"""`--slo p99=15ms`: a latency bound at one of the percentiles the workload measures.

The percentiles are the protocol's (workloads/protocol.py PERCENTILES); the bound is kept in
seconds, like every other time in the data model.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from workloads.protocol import PERCENTILES, percentile_key

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
_SPEC = re.compile(r"^\s*p(?P<q>[0-9.]+)\s*=\s*(?P<bound>.*?)\s*$", re.IGNORECASE)
_BOUND = re.compile(r"^(?P<value>[+-]?[0-9]*\.?[0-9]+(e[+-]?[0-9]+)?)\s*(?P<unit>us|ms|s)?$", re.IGNORECASE)


class TuneUsageError(ValueError):
    """A tune flag value the user must fix; str() is one line the CLI prints before exiting 2."""


@dataclass(frozen=True)
class Slo:
    percentile: float  # one of PERCENTILES, e.g. 99.0
    bound_seconds: float  # > 0

    @property
    def key(self) -> str:
        """The percentile's name in window events and exports: 'p99', 'p99.9'."""
        return percentile_key(self.percentile)

    def met_by(self, latency_seconds: float | None) -> bool:
        return latency_seconds is not None and latency_seconds <= self.bound_seconds

    def to_dict(self) -> dict:
        return {"percentile": self.key, "bound_seconds": self.bound_seconds}


def parse_slo(text: str) -> Slo:
    """'p99=15ms' -> Slo(99.0, 0.015); units us, ms or s (seconds when none is given)."""
    measured = ", ".join(percentile_key(q) for q in PERCENTILES)
    match = _SPEC.match(text)
    if not match:
        raise TuneUsageError(f"--slo: expected PERCENTILE=BOUND like p99=15ms, got {text!r}")
    try:
        percentile = float(match["q"])
    except ValueError:
        raise TuneUsageError(f"--slo: {match['q']!r} is not a percentile; choose from {measured}") from None
    if percentile not in PERCENTILES:
        raise TuneUsageError(f"--slo: p{match['q']} is not a percentile we measure; choose from {measured}")
    bound_match = _BOUND.match(match["bound"])
    if not bound_match:
        raise TuneUsageError(f"--slo: {match['bound']!r} is not a latency; write it like 15ms, 800us or 0.2s")
    value, unit = bound_match["value"], (bound_match["unit"] or "s").lower()
    bound = float(value) * _UNITS[unit]
    if not (bound > 0 and math.isfinite(bound)):
        raise TuneUsageError(f"--slo: the bound must be a positive time, got {value}{unit}")
    return Slo(percentile, bound)
