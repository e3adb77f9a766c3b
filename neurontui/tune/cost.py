"""Dollars per million inferences, from a price per hour or the shipped table of on-demand prices.

The table (neurontui/data/prices.json) is dated and approximate; `--prices FILE` in the same
shape overrides the entries it names. A price is looked up by instance type; an unknown type has
no price, with the reason, never a guess. Types the tool targets that had no on-demand price at
the table's date (trn2, sold through Capacity Blocks) are listed under "unpriced" with why.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .slo import TuneUsageError

MAX_PRICES_BYTES = 1 << 20  # a prices file is a few KiB; refuse anything that could exhaust memory


class PricesError(TuneUsageError):
    """A --prices file that cannot be used; str() is one line."""


@dataclass(frozen=True)
class Price:
    per_hour: float  # USD
    source: str  # where the figure came from, for rows and reports
    instance_type: str | None = None


@dataclass(frozen=True)
class PriceTable:
    prices: dict[str, float]  # instance type -> USD per hour
    date: str  # of the shipped table
    source: str
    overrides: str | None = None  # the --prices file whose entries replaced the shipped ones
    override_keys: frozenset[str] = frozenset()
    override_date: str = ""
    unpriced: dict[str, str] = field(default_factory=dict)  # instance type -> why the table has no price

    def lookup(self, instance_type: str | None) -> tuple[Price | None, str]:
        """The price of an instance type, or None and why."""
        if not instance_type:
            return None, "instance type not known (pass --instance-type T or --price-per-hour USD)"
        key = instance_type.strip().lower()
        if key not in self.prices and key in self.unpriced:
            return None, f"no price for {key}: {self.unpriced[key]}; pass --price-per-hour USD"
        if key not in self.prices:
            where = f"{self.overrides} or the shipped table" if self.overrides else "the shipped table"
            return None, f"no price for {key} in {where} ({self.date}); pass --price-per-hour USD"
        if key in self.override_keys:
            label = f"{self.overrides} ({self.override_date})" if self.override_date else self.overrides
        else:
            label = f"on-demand table of {self.date} (approximate)"
        return Price(self.prices[key], label, key), ""


def _parse_table(text: str, origin: str) -> tuple[dict[str, float], str, str]:
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise PricesError(f"{origin}: not JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("prices_per_hour"), dict):
        raise PricesError(f'{origin}: expected an object with "prices_per_hour": {{"TYPE": USD, ...}}')
    prices = {}
    for name, value in body["prices_per_hour"].items():
        if not name.strip():
            raise PricesError(f"{origin}: an empty instance type")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
            raise PricesError(f"{origin}: the price of {name[:40]!r} is not a positive number: {value!r:.40}")
        prices[name.strip().lower()] = float(value)
    return prices, str(body.get("date", "undated")), str(body.get("source", origin))


def shipped_table() -> PriceTable:
    text = resources.files("neurontui").joinpath("data/prices.json").read_text(encoding="utf-8")
    prices, date, source = _parse_table(text, "neurontui/data/prices.json")
    unpriced = {name.lower(): str(why) for name, why in json.loads(text).get("unpriced", {}).items()}
    return PriceTable(prices, date, source, unpriced=unpriced)


def load_prices(path: str | None = None) -> PriceTable:
    """The shipped table, with the entries of `path` (a --prices file) over it."""
    table = shipped_table()
    if path is None:
        return table
    origin = f"--prices {path}"
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_PRICES_BYTES + 1)
    except OSError as exc:
        raise PricesError(f"{origin}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_PRICES_BYTES:
        raise PricesError(f"{origin}: larger than {MAX_PRICES_BYTES // 1024} KiB, not a prices file")
    prices, date, _ = _parse_table(raw.decode("utf-8", errors="replace"), origin)
    return PriceTable({**table.prices, **prices}, table.date, table.source, overrides=Path(path).name,
                      override_keys=frozenset(prices), override_date="" if date == "undated" else date,
                      unpriced=table.unpriced)


def resolve_price(price_per_hour: float | None = None, instance_type: str | None = None,
                  prices_file: str | None = None) -> tuple[Price | None, str]:
    """--price-per-hour wins; else the instance type's entry in the (overridden) table; else None and why."""
    if price_per_hour is not None:
        return Price(price_per_hour, "--price-per-hour", instance_type), ""
    return load_prices(prices_file).lookup(instance_type)


def dollars_per_million(price_per_hour: float | None, throughput: float | None) -> float | None:
    """price_per_hour / 3600 / throughput * 1e6: what a million inferences cost at this throughput."""
    if price_per_hour is None or throughput is None or not throughput > 0:
        return None
    return price_per_hour / 3600.0 / throughput * 1e6
