"""Variable-length input: sequence-length distributions, bucket sets and the padding they cost.

Torch-free: config.py validates `--seq-len-dist` and `--buckets` with it before anything is
built, and the parent can compute what a bucket set would save before the user tries it.

A traced graph has fixed shapes, so each request (a batch of `batch` rows, each with its own
real length) is padded to the smallest bucket that holds its longest row (AWS's bucketing app
note: one traced model per bucket). The padding ratio is

    padding ratio = pad tokens / real tokens

where real tokens are the rows' true lengths summed, and pad tokens are the positions the
model computes on that hold padding (bucket length x rows - real tokens). 0 means no wasted
positions; 0.5 means the model computes half again as many positions as the input has.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path

MAX_SEQ_LEN = 512  # BERT's position table: the longest sequence it can embed
DEFAULT_SEQ_LEN = 128
# Each bucket is one compile (minutes on Neuron) and one latency histogram in every window event.
MAX_BUCKETS = 16
FILE_MAX_LINES = 1_000_000  # a length file larger than this is not a length mix but a mistake


@dataclass(frozen=True)
class LengthDistribution:
    """Where each row's real length comes from: uniform:A-B, normal:MEAN,SD or file:PATH."""
    kind: str
    low: int = 1
    high: int = 1
    mean: float = 0.0
    sd: float = 0.0
    lengths: tuple[int, ...] = field(default=(), repr=False)

    def sample(self, rng: random.Random, limit: int) -> int:
        """One real length in [1, limit]; normal draws are rounded and clipped to that range."""
        if self.kind == "uniform":
            return rng.randint(self.low, self.high)
        if self.kind == "normal":
            return min(limit, max(1, round(rng.gauss(self.mean, self.sd))))
        return rng.choice(self.lengths)

    def pmf(self, limit: int) -> dict[int, float]:
        """Probability of each length in [1, limit] (normal: the clipped, rounded normal)."""
        if self.kind == "uniform":
            return {n: 1.0 / (self.high - self.low + 1) for n in range(self.low, self.high + 1)}
        if self.kind == "normal":
            def cdf(x: float) -> float:
                return 0.5 * (1.0 + math.erf((x - self.mean) / (self.sd * math.sqrt(2.0))))
            pmf = {n: cdf(n + 0.5) - cdf(n - 0.5) for n in range(1, limit + 1)}
            pmf[1] += cdf(0.5)
            pmf[limit] += 1.0 - cdf(limit + 0.5)
            return pmf
        counts: dict[int, float] = {}
        for n in self.lengths:
            counts[n] = counts.get(n, 0.0) + 1.0 / len(self.lengths)
        return counts

    def longest(self) -> int | None:
        """The longest length it can draw before clipping (None for normal: unbounded)."""
        if self.kind == "uniform":
            return self.high
        if self.kind == "file":
            return max(self.lengths)
        return None


def parse_seq_len_dist(text: str) -> LengthDistribution:
    """'uniform:16-128', 'normal:64,16' or 'file:PATH'; ValueError with a one-line reason."""
    kind, sep, rest = text.partition(":")
    if not sep or kind not in ("uniform", "normal", "file"):
        raise ValueError(f"--seq-len-dist {text!r}: expected uniform:A-B, normal:MEAN,SD or file:PATH")
    if kind == "uniform":
        low, dash, high = rest.partition("-")
        try:
            a, b = int(low), int(high)
        except ValueError:
            raise ValueError(f"--seq-len-dist {text!r}: expected uniform:A-B with whole numbers A <= B") from None
        if not dash or a < 1 or a > b:
            raise ValueError(f"--seq-len-dist {text!r}: expected uniform:A-B with 1 <= A <= B")
        return LengthDistribution("uniform", low=a, high=b)
    if kind == "normal":
        mean_text, comma, sd_text = rest.partition(",")
        try:
            mean, sd = float(mean_text), float(sd_text)
        except ValueError:
            raise ValueError(f"--seq-len-dist {text!r}: expected normal:MEAN,SD (numbers)") from None
        if not comma or not (math.isfinite(mean) and math.isfinite(sd)) or mean < 1 or sd <= 0:
            raise ValueError(f"--seq-len-dist {text!r}: expected normal:MEAN,SD with MEAN >= 1 and SD > 0")
        return LengthDistribution("normal", mean=mean, sd=sd)
    return LengthDistribution("file", lengths=_read_lengths(rest))


def _read_lengths(path: str) -> tuple[int, ...]:
    try:
        with open(Path(path), encoding="utf-8") as handle:
            lines = [line.strip() for _, line in zip(range(FILE_MAX_LINES + 1), handle)]
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"--seq-len-dist file:{path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") \
            from None
    if len(lines) > FILE_MAX_LINES:
        raise ValueError(f"--seq-len-dist file:{path}: more than {FILE_MAX_LINES:,} lines")
    lengths = []
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        if not line.isdigit() or int(line) < 1:
            raise ValueError(f"--seq-len-dist file:{path} line {number}: {line[:20]!r} is not a length >= 1")
        lengths.append(int(line))
    if not lengths:
        raise ValueError(f"--seq-len-dist file:{path}: no lengths in it (one per line)")
    return tuple(lengths)


def parse_buckets(text: str) -> list[int]:
    """'32,64,128' -> [32, 64, 128] ('/' separates too, so a sweep's commas can list bucket sets)."""
    parts = text.replace("/", ",").split(",")
    try:
        buckets = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"--buckets {text!r}: expected increasing whole numbers like 32,64,128") from None
    if any(b < 1 for b in buckets) or any(b >= c for b, c in zip(buckets, buckets[1:])):
        raise ValueError(f"--buckets {text!r}: lengths must be at least 1 and strictly increasing")
    if len(buckets) > MAX_BUCKETS:
        raise ValueError(f"--buckets {text!r}: at most {MAX_BUCKETS} buckets (each one is a compile)")
    if buckets[-1] > MAX_SEQ_LEN:
        raise ValueError(f"--buckets {text!r}: {buckets[-1]} is above the model's maximum length {MAX_SEQ_LEN}")
    return buckets


def bucket_for(length: int, buckets: list[int]) -> int:
    """Index of the smallest bucket that holds `length` (the caller keeps lengths <= buckets[-1])."""
    for index, bucket in enumerate(buckets):
        if length <= bucket:
            return index
    raise ValueError(f"length {length} is longer than the largest bucket {buckets[-1]}")


def padding_ratio(distribution: LengthDistribution, buckets: list[int], batch: int = 1) -> float:
    """The expected padding ratio (module docstring) of requests of `batch` rows drawn from
    `distribution`, each request padded to the smallest bucket holding its longest row.

    Exact, not sampled: the longest of `batch` rows has P(longest <= n) = F(n)^batch.
    """
    pmf = distribution.pmf(buckets[-1])
    lengths = sorted(pmf)
    mean_length = sum(n * p for n, p in pmf.items())
    expected_bucket, below, previous = 0.0, 0.0, 0.0
    for n in lengths:
        below += pmf[n]
        at_most = min(1.0, below) ** batch
        expected_bucket += (at_most - previous) * buckets[bucket_for(n, buckets)]
        previous = at_most
    return expected_bucket / mean_length - 1.0


@dataclass
class RequestPool:
    """Pre-drawn variable-length requests, cycled through by the replicas.

    `examples[b]` are the inputs a trace for bucket b takes; each request is
    (bucket index, inputs, real tokens, pad tokens).
    """
    buckets: list[int]
    examples: list[tuple]
    requests: list[tuple[int, tuple, int, int]]
