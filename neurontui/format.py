"""Human formatting of base units: the one place numbers become text (screen, hints,
progress lines, reports, Markdown exports).

The Store keeps seconds, bytes and ratios; these turn them into short strings and say
"-" for an unknown value (None, NaN, not a number), never a misleading zero.
"""
from __future__ import annotations

import math
from typing import Any

UNKNOWN = "-"


def _known(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _three_digits(value: float) -> str:
    """Three significant digits, trailing zeros kept so columns line up: 4.20, 12.3, 282."""
    magnitude = abs(value)
    if magnitude >= 99.95:
        return f"{value:.0f}"
    if magnitude >= 9.995:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_bytes(n: Any) -> str:
    """1536 -> '1.5 KiB'; binary units as neuron-top and free(1) show them."""
    if not _known(n):
        return UNKNOWN
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_seconds(s: Any) -> str:
    """Latencies: 0.0000123 -> '12.3 us', 0.0042 -> '4.20 ms', 1.5 -> '1.50 s'."""
    if not _known(s):
        return UNKNOWN
    if s < 1e-3:
        return f"{_three_digits(s * 1e6)} us"
    if s < 1.0:
        return f"{_three_digits(s * 1e3)} ms"
    return f"{_three_digits(s)} s"


def format_duration(s: Any) -> str:
    """Wall-clock spans (compile, load, run time): 0.42 -> '0.4 s', 95 -> '95.0 s'."""
    return UNKNOWN if not _known(s) else f"{s:.1f} s"


def format_rate(per_second: Any, unit: str = "/s") -> str:
    """Throughput on screen: 1234.5 -> '1234/s', 12345 -> '12.3k/s'."""
    if not _known(per_second):
        return UNKNOWN
    if per_second >= 1e6:
        return f"{per_second / 1e6:.2f}M{unit}"
    if per_second >= 1e4:
        return f"{per_second / 1e3:.1f}k{unit}"
    if per_second >= 100:
        return f"{per_second:.0f}{unit}"
    return f"{per_second:.1f}{unit}"


def format_table_rate(per_second: Any) -> str:
    """Throughput in a report table, every digit kept: 3540.2 -> '3,540', 12.34 -> '12.3'."""
    if not _known(per_second):
        return UNKNOWN
    return f"{per_second:,.0f}" if per_second >= 100 else f"{per_second:.3g}"


def format_ratio(ratio: Any) -> str:
    """0.423 -> '42%'."""
    if not _known(ratio):
        return UNKNOWN
    return f"{ratio * 100:.0f}%"


def format_times(factor: Any) -> str:
    """A speed-up: 2.648 -> '2.65x'."""
    return UNKNOWN if not _known(factor) else f"{factor:.2f}x"


def format_number(value: Any) -> str:
    """A plain figure with three significant digits: 12.345 -> '12.3'."""
    return UNKNOWN if not _known(value) else f"{value:.3g}"


def format_axis(value: Any) -> str:
    """A chart's axis label, never an exponent: from 100 on, a rate's digits and its k and M
    (3452, 12.3k, 1.50M); below, three significant digits, so close ticks at a small scale
    stay apart (0.046, 0.092, 2.11)."""
    if not _known(value):
        return UNKNOWN
    return format_rate(value, unit="") if abs(value) >= 100 else f"{value:.3g}"


def format_count(n: Any) -> str:
    """Parameter counts and the like: 25_557_032 -> '25.6 M'."""
    if not _known(n):
        return UNKNOWN
    for threshold, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(n) >= threshold:
            return f"{n / threshold:.1f}{suffix}"
    return f"{n:.0f}"


def format_flops(per_second: float | None) -> str:
    """Compute rates: 8.1e12 -> '8.1 TFLOP/s', 3.32e11 -> '332 GFLOP/s' (three significant digits)."""
    if per_second is None or not math.isfinite(per_second):
        return UNKNOWN
    for threshold, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M")):
        if per_second >= threshold:
            value = per_second / threshold
            return f"{value:.3g} {prefix}FLOP/s" if value < 100 else f"{value:.0f} {prefix}FLOP/s"
    return f"{per_second:.0f} FLOP/s"


def format_bound(s: float | None) -> str:
    """A latency bound or floor as a person writes it: 0.015 -> '15 ms', 0.0031 -> '3.1 ms', 5e-4 -> '500 us'."""
    if s is None or not math.isfinite(s):
        return UNKNOWN
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if s >= scale or unit == "us":
            return f"{s / scale:.3g} {unit}"
    raise AssertionError("unreachable")


def format_multiple(ratio: float | None) -> str:
    """How many times: 2.13 -> '2.1x', 2.0 -> '2.0x', 12.4 -> '12x'."""
    if ratio is None or not math.isfinite(ratio):
        return UNKNOWN
    return f"{ratio:.1f}x" if ratio < 10 else f"{ratio:.0f}x"


def format_dollars(usd: float | None) -> str:
    """Costs: 0.2106 -> '$0.211', 12.5 -> '$12.50'."""
    if usd is None or not math.isfinite(usd):
        return UNKNOWN
    return f"${usd:.3g}" if usd < 1 else f"${usd:,.2f}"


def format_joules(j: float | None) -> str:
    """Energy: 0.0153 -> '15.3 mJ', 2.5 -> '2.50 J'."""
    if j is None or not math.isfinite(j):
        return UNKNOWN
    if j < 1e-3:
        return f"{j * 1e6:.3g} uJ"
    if j < 1.0:
        return f"{j * 1e3:.3g} mJ"
    return f"{j:.2f} J"
