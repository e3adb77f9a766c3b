"""`--sweep "model=cnn,resnet50 mode=single,dp batch=1,4"`: the cross product of workload configs.

Keys are WorkloadConfig fields (dashes or underscores); values are comma-separated and
coerced to the field's type. The first key varies slowest, so rows come out grouped the
way a reader scans a table (per model, then per mode, ...). Every value is checked up front
with a single run's validation, so a typo is refused before anything is measured.
"""
from __future__ import annotations

import itertools
from dataclasses import fields, replace

from workloads.config import WorkloadConfig

_FIELD_TYPES = {f.name: f.type for f in fields(WorkloadConfig)}
# Flags that make no sense to vary within one sweep.
_NOT_SWEEPABLE = {"duration", "cache_dir", "weights", "window"}


class SweepError(ValueError):
    """A sweep spec the user must fix; the message is one line."""


def _coerce(key: str, text: str) -> object:
    kind = str(_FIELD_TYPES[key])
    try:
        if kind.startswith("int"):
            return int(text)
        if kind.startswith("float"):
            return float(text)
    except ValueError:
        raise SweepError(f"sweep: {key}={text!r} is not a number") from None
    if kind == "bool":
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise SweepError(f"sweep: {key}={text!r} is not true/false")
    return text


def parse_sweep(spec: str) -> dict[str, list[object]]:
    """'model=cnn,resnet50 batch=1,4' -> {'model': ['cnn', 'resnet50'], 'batch': [1, 4]}."""
    axes: dict[str, list[object]] = {}
    for term in spec.split():
        key, sep, values = term.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise SweepError(f"sweep: expected KEY=V1,V2,... got {term!r}")
        if key not in _FIELD_TYPES or key in _NOT_SWEEPABLE:
            allowed = ", ".join(sorted(set(_FIELD_TYPES) - _NOT_SWEEPABLE))
            raise SweepError(f"sweep: cannot vary {key!r}; choose from {allowed}")
        if key in axes:
            raise SweepError(f"sweep: {key} given twice")
        items = [v for v in values.split(",") if v]
        if not items:
            raise SweepError(f"sweep: {key} has no values")
        axes[key] = [_coerce(key, item) for item in items]
    if not axes:
        raise SweepError("sweep: empty spec")
    return axes


def expand(base: WorkloadConfig, axes: dict[str, list[object]]) -> list[WorkloadConfig]:
    """Every combination, in order; each is `base` with the swept fields replaced."""
    keys = list(axes)
    return [replace(base, **dict(zip(keys, combo))) for combo in itertools.product(*(axes[k] for k in keys))]


def check(base: WorkloadConfig, axes: dict[str, list[object]]) -> None:
    """Refuse the sweep (SweepError, one line) if a swept value is one a single run would refuse
    whatever the other flags (`WorkloadConfig.value_problems()`, part of `validate()`): a typo
    must not wait for the configurations before it to be measured."""
    for key, values in axes.items():
        for value in values:
            problems = replace(base, **{key: value}).value_problems()
            if problems:
                raise SweepError(f"sweep: {key}={value!r}: {problems[0]}")
