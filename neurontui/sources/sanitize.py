"""The last step of every parser (reports, recordings): clean every string, bound every list.

A report (or a recording) is outside input: its strings become labels, table cells, log
lines and file contents, and its lists become series. So each finished Snapshot passes
here once: strings through `clean_text` (no terminal escapes, no lone surrogates) and cut
to a label's length; runtimes, cores, ECC devices and names per map bounded, what is cut
counted in `snapshot.errors` (so it is shown, like any unreadable group).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from workloads.text import clean_text

from ..telemetry import Snapshot

MAX_RUNTIMES = 512  # a trn2.48xlarge has 128 NeuronCores: one runtime per core at most
MAX_CORES = 8192  # NeuronCores and vCPUs (each index is already at most 4096)
MAX_ECC_DEVICES = 256
MAX_NAMES = 64  # status, error and percentile names per runtime; instance and hardware fields
MAX_ERRORS = 100
MAX_LABEL_CHARS = 256
LABEL_CACHE_SIZE = 4096


def sanitize_snapshot(snapshot: Snapshot) -> Snapshot:
    """Clean and bound `snapshot` in place; returns it."""
    notes: list[str] = []
    snapshot.source = _label(snapshot.source)
    instance = snapshot.instance
    if not (len(instance) <= MAX_NAMES and _all_clean(instance) and _all_clean(instance.values())):
        snapshot.instance = {_label(k): _label(v) for k, v in _first(instance, "instance fields", notes)}
    snapshot.hardware = {_label(k): _label(v) if isinstance(v, str) else v
                         for k, v in _first(snapshot.hardware, "hardware fields", notes)}
    snapshot.runtimes = _cut(snapshot.runtimes, MAX_RUNTIMES, "runtimes", notes)
    keys: set[str] = set()
    for runtime in snapshot.runtimes:
        runtime.tag = _label(runtime.tag)
        runtime.key = _unique(_label(runtime.key), keys)
        runtime.status = _names(runtime.status, f"runtime[{runtime.key}] status names", notes)
        runtime.errors = _names(runtime.errors, f"runtime[{runtime.key}] error names", notes)
        runtime.latency_seconds = _names(runtime.latency_seconds, f"runtime[{runtime.key}] latency names", notes)
        runtime.device_latency_seconds = _names(runtime.device_latency_seconds,
                                                f"runtime[{runtime.key}] device latency names", notes)
        if not (len(runtime.loaded_models) <= MAX_NAMES and _all_clean(runtime.loaded_models)):
            runtime.loaded_models = [_label(name) for name in _cut(runtime.loaded_models, MAX_NAMES,
                                                                   f"runtime[{runtime.key}] models", notes)]
    snapshot.cores = _cut(snapshot.cores, MAX_CORES, "cores", notes)
    for core in snapshot.cores:
        if core.name:
            core.name = _label(core.name)
    snapshot.ecc = _cut(snapshot.ecc, MAX_ECC_DEVICES, "ECC devices", notes)
    snapshot.memory.host_breakdown = _names(snapshot.memory.host_breakdown, "host memory parts", notes)
    errors = notes + [clean_text(error) for error in snapshot.errors]  # what was cut first: it says most
    if len(errors) > MAX_ERRORS:
        errors = errors[:MAX_ERRORS - 1] + [f"report: {len(errors)} problems; only the first {MAX_ERRORS - 1} are kept"]
    snapshot.errors = errors
    return snapshot


def _label(text: Any) -> str:
    if type(text) is str and len(text) <= MAX_LABEL_CHARS:
        return _short_label(text)
    return _cleaned_label(text if isinstance(text, str) else str(text))


def _cleaned_label(text: str) -> str:
    text = clean_text(text)
    return text if len(text) <= MAX_LABEL_CHARS else text[:MAX_LABEL_CHARS - 1] + "…"


def _short_label_once(text: str) -> str:
    label = _cleaned_label(text)
    if label == text and len(_CLEAN_LABELS) < LABEL_CACHE_SIZE:
        _CLEAN_LABELS.add(text)
    return label


# The same few dozen names (statuses, percentiles, instance fields) come in every report:
# each short one is cleaned once. Only short ones, so the cache holds at most ~1 MB.
_short_label = lru_cache(maxsize=LABEL_CACHE_SIZE)(_short_label_once)
# The short strings that came out of cleaning unchanged: a map or list made only of them is
# kept as it is, with one set operation instead of a cache lookup per name.
_CLEAN_LABELS: set[str] = set()


def _all_clean(texts: Any) -> bool:
    try:
        return _CLEAN_LABELS.issuperset(texts)
    except TypeError:  # something unhashable among them: not a clean label
        return False


def _unique(key: str, seen: set[str]) -> str:
    """Two tags that differ only in what was escaped must not become one series."""
    candidate, count = key, 1
    while candidate in seen:
        count += 1
        candidate = f"{key}#{count}"
    seen.add(candidate)
    return candidate


def _cut(items: list, limit: int, what: str, notes: list[str]) -> list:
    if len(items) <= limit:
        return items
    notes.append(f"report: {len(items)} {what}; only the first {limit} are kept")
    return items[:limit]


def _first(mapping: dict, what: str, notes: list[str]) -> list[tuple[Any, Any]]:
    return _cut(list(mapping.items()), MAX_NAMES, what, notes)


def _names(mapping: dict[str, Any], what: str, notes: list[str]) -> dict[str, Any]:
    if len(mapping) <= MAX_NAMES and _all_clean(mapping):
        return mapping
    items = mapping.items() if len(mapping) <= MAX_NAMES else _first(mapping, what, notes)
    return {_label(name): value for name, value in items}
