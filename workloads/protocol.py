"""The workload child's event protocol: one JSON object per line on stdout.

Torch-free on purpose: the observer (`neurontui`) imports this module to read the
events, and must run where torch is not installed.

Every event carries `"event"` (its kind) and `"v"` (PROTOCOL_VERSION). Times are
seconds, memory bytes, progress and utilization ratios 0..1.

    hello  {pid, model, backend, mode, batch, concurrency, scenario, precision}
    phase  {phase: building|compiling|loading|warmup|running, progress 0..1, detail}
    ready  {params, cores_used, compile_seconds, load_seconds, artifact_bytes,
            device_memory_bytes, cached; with --copies: copies, memory_before_copies,
            memory_after_each_load, bytes_per_copy, copies_fit, memory_total_bytes,
            memory_source, copies_stopped; with variable-length input: bucket_lengths,
            bucket_compile_seconds; flops_per_sample (None when not counted)}
    window {start, end, completed (samples = requests x batch), errors, throughput (samples/s),
            latency (LatencyHistogram.to_dict, one count per sample), percentiles {p50, p90, p95, p99, p99.9, min, max, mean, count}, per_core_completed;
            with --copies: per_copy_completed, per_copy_latency_seconds; with variable-length
            input: bucket_completed, bucket_latency, real_tokens, pad_tokens, padding_ratio}
    error  {kind, message, fatal}
    bye    {reason, completed, errors}
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import msgspec

from .text import clean_text

PROTOCOL_VERSION = 1
PHASES = ("building", "compiling", "loading", "warmup", "running")
PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
# Every number in an event is a count, a time, a size or a ratio: finite, >= 0 and within
# int64, so counters and Prometheus (float64) hold it. Anything else is a bad line.
MAX_NUMBER = 2**63


class ProtocolError(ValueError):
    """A line that is not a well-formed event of this protocol."""


class LatencyHistogram:
    """Mergeable log-bucketed histogram with bounded relative error.

    A value v > 0 falls in bucket floor(log(v / MIN_SECONDS) / log(GAMMA)); reporting the
    bucket's geometric midpoint keeps the relative error under (GAMMA - 1) / 2 (0.5%).
    Min, max, sum and count are exact.
    """

    GAMMA = 1.01
    MIN_SECONDS = 1e-7
    MAX_INDEX = 1 << 16  # bucket 65536 is ~1e276 s; a larger index would overflow bucket_value()
    # 100 ns to 3 hours is ~2,545 buckets at 1% apart: a window (and a child) never needs more;
    # a line with more is hostile or broken and would cost megabytes per window kept.
    MAX_BUCKETS = 4096
    _LOG_GAMMA = math.log(GAMMA)

    __slots__ = ("buckets", "count", "total", "minimum", "maximum")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0
        self.total = 0.0
        self.minimum = math.inf
        self.maximum = 0.0

    def record(self, seconds: float, n: int = 1) -> None:
        """Record `n` samples of latency `seconds` (a batch of n completes together, as in MLPerf)."""
        index = self._index(seconds)
        self.buckets[index] = self.buckets.get(index, 0) + n
        self.count += n
        self.total += seconds * n
        if seconds < self.minimum:
            self.minimum = seconds
        if seconds > self.maximum:
            self.maximum = seconds

    def merge(self, other: LatencyHistogram) -> None:
        for index, n in other.buckets.items():
            self.buckets[index] = self.buckets.get(index, 0) + n
        self.count += other.count
        self.total += other.total
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)

    @classmethod
    def _index(cls, seconds: float) -> int:
        if not seconds > cls.MIN_SECONDS:  # also catches NaN
            return 0
        return int(math.log(seconds / cls.MIN_SECONDS) / cls._LOG_GAMMA)

    @classmethod
    def bucket_value(cls, index: int) -> float:
        """Geometric midpoint of a bucket, in seconds."""
        return cls.MIN_SECONDS * cls.GAMMA ** (index + 0.5)

    @classmethod
    def bucket_upper(cls, index: int) -> float:
        return cls.MIN_SECONDS * cls.GAMMA ** (index + 1)

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile (q in 0..100), clamped to the exact min and max."""
        if self.count == 0:
            return None
        rank = max(1, math.ceil(q / 100.0 * self.count))
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                return min(max(self.bucket_value(index), self.minimum), self.maximum)
        return self.maximum

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def summary(self) -> dict[str, float | int | None]:
        out: dict[str, float | int | None] = {percentile_key(q): self.percentile(q) for q in PERCENTILES}
        out["min"] = self.minimum if self.count else None
        out["max"] = self.maximum if self.count else None
        out["mean"] = self.mean
        out["count"] = self.count
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "gamma": self.GAMMA,
            "min_seconds": self.MIN_SECONDS,
            "buckets": {str(k): v for k, v in self.buckets.items()},
            "count": self.count,
            "sum": self.total,
            "min": self.minimum if self.count else None,
            "max": self.maximum if self.count else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyHistogram:
        if data.get("gamma", cls.GAMMA) != cls.GAMMA or data.get("min_seconds", cls.MIN_SECONDS) != cls.MIN_SECONDS:
            raise ProtocolError("histogram uses a different bucket layout")
        buckets = data.get("buckets") or {}
        if not isinstance(buckets, dict):
            raise ProtocolError("histogram buckets are not an object")
        if len(buckets) > cls.MAX_BUCKETS:
            raise ProtocolError(f"histogram has {len(buckets)} buckets, more than {cls.MAX_BUCKETS}")
        hist = cls()
        try:
            for key, n in buckets.items():
                index = int(key)
                if not 0 <= index <= cls.MAX_INDEX or not _is_count(n):
                    raise ProtocolError(f"bad histogram bucket {key!r}: {n!r}")
                hist.buckets[index] = n
            hist.count = sum(hist.buckets.values())
            hist.total = _number(data.get("sum") or 0.0)
            if hist.count:
                hist.minimum = _number(data["min"])
                hist.maximum = _number(data["max"])
        except (TypeError, ValueError, KeyError) as exc:
            raise ProtocolError(f"bad histogram: {exc}") from exc
        return hist


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and 0 <= value < MAX_NUMBER and value == value)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and _is_number(value)


def _number(value: Any) -> float:
    if not _is_number(value):
        raise ValueError(f"{value!r} is not a finite number >= 0")
    return float(value)


def percentile_key(q: float) -> str:
    """50.0 -> 'p50', 99.9 -> 'p99.9'."""
    return f"p{q:g}"


@dataclass
class Event:
    KIND: ClassVar[str] = ""

    def to_json(self) -> str:
        body = {"event": self.KIND, "v": PROTOCOL_VERSION}
        body.update(asdict(self))
        return json.dumps(body, separators=(",", ":"), allow_nan=False)


@dataclass
class Hello(Event):
    KIND: ClassVar[str] = "hello"
    pid: int = 0
    model: str = ""
    backend: str = ""
    mode: str = ""
    batch: int = 1
    concurrency: int = 1
    scenario: str = ""
    precision: str = "fp32"


@dataclass
class Phase(Event):
    KIND: ClassVar[str] = "phase"
    phase: str = "building"
    progress: float = 0.0
    detail: str = ""


@dataclass
class Ready(Event):
    KIND: ClassVar[str] = "ready"
    params: int = 0
    cores_used: int = 1
    compile_seconds: float = 0.0
    load_seconds: float = 0.0
    artifact_bytes: int | None = None
    device_memory_bytes: int | None = None
    cached: bool = False
    device_name: str = ""
    # --copies (workloads/copies.py); memory in bytes of `memory_source` ("process resident" on
    # CPU, summed over dp workers; "cuda allocated" on CUDA; "" where the child cannot read it).
    copies: int = 1
    memory_before_copies: int | None = None
    memory_after_each_load: list = field(default_factory=list)  # after copy 1, 2, ...
    bytes_per_copy: int | None = None  # least-squares slope over memory_after_each_load
    copies_fit: int | None = None  # (memory_total_bytes - memory_before_copies) // bytes_per_copy
    memory_total_bytes: int | None = None  # the device's total (CPU: host RAM)
    memory_source: str = ""
    copies_stopped: str = ""  # why fewer copies loaded than asked ('' when all did)
    # Variable-length input (workloads/buckets.py): one artifact per bucket length.
    bucket_lengths: list = field(default_factory=list)
    bucket_compile_seconds: list = field(default_factory=list)  # per bucket, 0 on a cache hit
    flops_per_sample: int | None = None  # one sample's forward pass (workloads/flops.py)


@dataclass
class Window(Event):
    KIND: ClassVar[str] = "window"
    start: float = 0.0
    end: float = 0.0
    completed: int = 0
    errors: int = 0
    throughput: float = 0.0
    latency: dict = field(default_factory=dict)
    percentiles: dict = field(default_factory=dict)
    per_core_completed: list = field(default_factory=list)
    # --copies: per copy (index as loaded), samples completed and their latencies summed (seconds),
    # so a row's per-copy mean latency is exact over any number of windows.
    per_copy_completed: list = field(default_factory=list)
    per_copy_latency_seconds: list = field(default_factory=list)
    # Variable-length input, per bucket of ready.bucket_lengths: samples and latency histograms.
    bucket_completed: list = field(default_factory=list)
    bucket_latency: list = field(default_factory=list)
    real_tokens: int = 0  # the rows' true lengths summed
    pad_tokens: int = 0  # padded positions the model computed (bucket x rows - real tokens)
    padding_ratio: float | None = None  # pad_tokens / real_tokens (workloads/buckets.py)

    @property
    def duration(self) -> float:
        return self.end - self.start

    def histogram(self) -> LatencyHistogram:
        """The latency histogram, decoded once per event (read it; merge it into another)."""
        decoded = self.__dict__.get("_histogram")
        if decoded is None:
            decoded = self.__dict__["_histogram"] = LatencyHistogram.from_dict(self.latency)
        return decoded

    @classmethod
    def from_histogram(cls, start: float, end: float, hist: LatencyHistogram, errors: int,
                       per_core_completed: list[int]) -> Window:
        elapsed = end - start
        window = cls(start=start, end=end, completed=hist.count, errors=errors,
                     throughput=hist.count / elapsed if elapsed > 0 else 0.0,
                     latency=hist.to_dict(), percentiles=hist.summary(),
                     per_core_completed=list(per_core_completed))
        window.__dict__["_histogram"] = hist
        return window


@dataclass
class Error(Event):
    KIND: ClassVar[str] = "error"
    kind: str = "internal"
    message: str = ""
    fatal: bool = True


@dataclass
class Bye(Event):
    KIND: ClassVar[str] = "bye"
    reason: str = "done"
    completed: int = 0
    errors: int = 0


EVENT_TYPES: dict[str, type[Event]] = {cls.KIND: cls for cls in (Hello, Phase, Ready, Window, Error, Bye)}


def decode(line: str | bytes) -> Event:
    """Parse one stdout line into an Event; unknown keys are ignored, bad lines raise ProtocolError."""
    try:
        data = _JSON.decode(line)  # msgspec: the same objects as json.loads, several times faster
    except (msgspec.DecodeError, RecursionError):  # what it refuses (NaN, huge integers...) is read as before
        try:
            data = json.loads(line, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise ProtocolError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ProtocolError("event is not a JSON object")
    kind = data.get("event")
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ProtocolError(f"unknown event kind {kind!r}")
    if data.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {data.get('v')!r}, expected {PROTOCOL_VERSION}")
    kwargs = {}
    for f in fields(cls):
        if f.name in data:
            value = data[f.name]
            expected = _FIELD_KINDS.get(f.type if isinstance(f.type, str) else "")
            if expected and not isinstance(value, expected) or isinstance(value, bool) and f.type in ("int", "float"):
                raise ProtocolError(f"{kind}.{f.name} has type {type(value).__name__}")
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not _is_number(value):
                raise ProtocolError(f"{kind}.{f.name} is out of range: {value!r:.40}")
            kwargs[f.name] = clean_text(value) if isinstance(value, str) else value  # shown on terminals
    event = cls(**kwargs)
    if isinstance(event, Phase) and event.phase not in PHASES:
        raise ProtocolError(f"unknown phase {event.phase!r:.40}")
    if isinstance(event, Window):
        _check_window(event)
    if isinstance(event, Ready):
        _check_ready(event)
    return event


_JSON = msgspec.json.Decoder()


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number an event may carry")


def _check_window(window: Window) -> None:
    """Consumers merge the histogram and do arithmetic on the rest: check them here, once."""
    window.histogram()
    if not all(value is None or _is_number(value) for value in window.percentiles.values()):
        raise ProtocolError("window.percentiles holds a value that is not a number")
    window.percentiles = {clean_text(name): value for name, value in window.percentiles.items()}
    for name in ("per_core_completed", "per_copy_completed", "bucket_completed"):
        if not all(_is_count(n) for n in getattr(window, name)):
            raise ProtocolError(f"window.{name} holds a value that is not a count")
    if not all(_is_number(s) for s in window.per_copy_latency_seconds):
        raise ProtocolError("window.per_copy_latency_seconds holds a value that is not a number")
    for hist in window.bucket_latency:
        if not isinstance(hist, dict):
            raise ProtocolError("window.bucket_latency holds a value that is not a histogram")
        LatencyHistogram.from_dict(hist)


def _check_ready(ready: Ready) -> None:
    for name in ("memory_after_each_load", "bucket_lengths"):
        if not all(_is_count(n) for n in getattr(ready, name)):
            raise ProtocolError(f"ready.{name} holds a value that is not a count")
    if not all(_is_number(s) for s in ready.bucket_compile_seconds):
        raise ProtocolError("ready.bucket_compile_seconds holds a value that is not a number")


_FIELD_KINDS: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "dict": (dict,),
    "list": (list,),
    "int | None": (int, type(None)),
    "float | None": (int, float, type(None)),
}
