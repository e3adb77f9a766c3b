"""Insights computed from telemetry and the workload's `ready` event, logged once each.

What the seed learned by hand, made visible: DataParallel at batch 1 leaves cores idle,
the pipeline size rule of thumb, the GPU batch-1 latency floor, and how many copies of a
loaded model fit in device memory (measured, not guessed from the file size).
Torch-free and Textual-free: the TUI and the headless path both call `update_hints`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from workloads.buckets import LengthDistribution, padding_ratio, parse_buckets, parse_seq_len_dist
from workloads.config import WorkloadConfig
from workloads.rules import pipeline_cores

from .format import format_bytes, format_count, format_rate, format_ratio, format_seconds
from .store import Store, WorkloadState
from .telemetry import Snapshot

GPU_FLOOR_MIN_WINDOWS = 4  # enough windows that the p50 is no warm-up accident
NO_PIPELINE_INSTANCES = ("inf2", "trn1", "trn2")  # torch-neuronx has no --neuroncore-pipeline-cores
SUGGESTED_BUCKETS = 4  # each bucket is one compile (minutes on Neuron): suggest few
SHORTEST_QUANTILE = 0.01  # a bucket below the 1st percentile length would hold almost no request
WORTH_SUGGESTING = 0.05  # a bucket set must cut the padding ratio by this much to be worth compiling


@dataclass(frozen=True)
class Hint:
    key: str  # identifies the situation; the same situation is logged once
    text: str


def supports_pipeline(instance_type: str) -> bool:
    return not instance_type.startswith(NO_PIPELINE_INSTANCES)


def compute_hints(workload: WorkloadState, snapshot: Snapshot | None) -> list[Hint]:
    """Every hint the current state supports (pure: nothing is logged)."""
    config = workload.config
    if not config:
        return []
    backend = workload.backend
    found = [
        _dp_idle(workload, snapshot, backend),
        _pipeline_size(workload, snapshot, backend),
        _gpu_floor(workload, backend),
        _memory_per_copy(workload, snapshot, backend),
        _copies_fit(workload, backend),
        _bucket_saving(workload),
    ]
    return [hint for hint in found if hint is not None]


def update_hints(store: Store) -> list[Hint]:
    """Log each hint the first time its situation appears; returns the ones logged now."""
    with store.lock():
        hints = compute_hints(store.workload, store.latest)
    return [hint for hint in hints if store.hint_once(hint.key, hint.text)]


def _device_cores(snapshot: Snapshot | None, backend: str) -> int:
    if snapshot is None:
        return 0
    kind = {"neuron": "neuroncore", "cuda": "gpu"}.get(backend)
    return len(snapshot.cores_of(kind)) if kind else 0


def _dp_idle(wl: WorkloadState, snapshot: Snapshot | None, backend: str) -> Hint | None:
    config = wl.config
    if config.get("mode") != "dp" or config.get("batch") != 1 or config.get("concurrency") != 1 or not wl.run.window_count:
        return None
    replicas = wl.ready.cores_used if wl.ready else _device_cores(snapshot, backend)
    if replicas <= 1:
        return None
    return Hint(
        f"dp-idle:{backend}:{config.get('model')}:{replicas}",
        f"DataParallel at batch 1 and concurrency 1 keeps 1 of {replicas} cores busy and {replicas - 1} idle: "
        f"raise batch (+) or concurrency (c) to {replicas} or more",
    )


def _pipeline_size(wl: WorkloadState, snapshot: Snapshot | None, backend: str) -> Hint | None:
    if backend != "neuron" or wl.ready is None or not wl.ready.params:
        return None
    cores = _device_cores(snapshot, backend)
    instance_type = snapshot.instance.get("instance_type", "") if snapshot else ""
    if cores < 1 or not supports_pipeline(instance_type):
        return None
    model = wl.config.get("model")
    suggested = pipeline_cores(wl.ready.params, cores)
    return Hint(
        f"pipeline:{model}:{cores}",
        f"pipeline rule of thumb for {model} ({format_count(wl.ready.params)} params): {suggested} NeuronCores "
        f"(4*round(params/2e7), clamped to 1..{cores})" + ("" if wl.config.get("mode") == "pipeline" else "; press p"),
    )


def _gpu_floor(wl: WorkloadState, backend: str) -> Hint | None:
    config = wl.config
    if backend != "cuda" or config.get("batch") != 1 or wl.run.window_count < GPU_FLOOR_MIN_WINDOWS:
        return None  # before the figures: hints run at every tick, and the figures change with each window
    figures = wl.run.figures()
    p50, throughput = figures.latency["p50"], figures.throughput
    if p50 is None:
        return None
    return Hint(
        f"gpu-floor:{config.get('model')}:{config.get('precision')}",
        f"GPU latency floor at batch 1 for {config.get('model')}: p50 {format_seconds(p50)} "
        f"({format_rate(throughput)}); a GPU shines with batches: raise batch (+) for throughput",
    )


def _memory_per_copy(wl: WorkloadState, snapshot: Snapshot | None, backend: str) -> Hint | None:
    """One loaded model's memory, extrapolated; a --copies run measures it instead (_copies_fit)."""
    if backend not in ("neuron", "cuda") or wl.ready is None or wl.ready.bytes_per_copy is not None:
        return None
    per_copy, how = _measured_copy_bytes(wl, snapshot)
    if per_copy is None:
        return None
    total = _device_capacity(snapshot, backend)
    config = wl.config
    text = f"{config.get('model')} takes {format_bytes(per_copy)} of device memory per loaded copy ({how})"
    if wl.ready.artifact_bytes:
        text += f"; its compiled file is {format_bytes(wl.ready.artifact_bytes)}"
    if total and backend == "cuda":
        text += f"; one GPU's {format_bytes(total)} fits about {total // per_copy} copies"
    elif total:
        cores = max(_device_cores(snapshot, backend), 1)
        per_core = total // cores  # each NeuronCore owns an equal slice of its chip's memory
        text += (f"; {format_bytes(total)} of device memory fits about {total // per_copy} copies "
                 f"({per_core // per_copy} per core)")
    return Hint(f"memory:{backend}:{config.get('model')}:{config.get('batch')}:{config.get('precision')}", text)


def _measured_copy_bytes(wl: WorkloadState, snapshot: Snapshot | None) -> tuple[int | None, str]:
    """Prefer neuron-monitor's per-core figures for our process; else what the child measured."""
    pids = {pid for pid in (wl.pid, wl.hello.pid if wl.hello else None) if pid}
    if snapshot is not None:
        for runtime in snapshot.runtimes:
            if runtime.pid in pids:
                totals = [memory.total for memory in runtime.core_memory.values() if memory.total > 0]
                if totals:
                    return max(totals), "neuron-monitor, per core"
    ready = wl.ready
    if ready is None or not ready.device_memory_bytes:
        return None, ""
    copies = ready.cores_used if wl.config.get("mode") == "dp" else 1
    return ready.device_memory_bytes // max(copies, 1), "measured at load"


def _device_capacity(snapshot: Snapshot | None, backend: str) -> int | None:
    if snapshot is None:
        return None
    if backend == "cuda":
        gpus = [core.memory_total_bytes for core in snapshot.cores_of("gpu") if core.memory_total_bytes]
        return gpus[0] if gpus else None
    return snapshot.memory.device_total_bytes


def _copies_fit(wl: WorkloadState, backend: str) -> Hint | None:
    """--copies: the copies that fit at the measured bytes per copy, against the file-size guess."""
    ready = wl.ready
    if ready is None or not ready.bytes_per_copy or ready.copies_fit is None:
        return None
    model, loads = wl.config.get("model"), len(ready.memory_after_each_load)
    text = (f"{model}: {format_bytes(ready.bytes_per_copy)} per loaded copy, measured "
            f"({ready.memory_source or 'memory'}, " + (f"slope over {loads} loads" if loads > 1 else "one load")
            + f"): {format_count(ready.copies_fit)} copies fit")
    if ready.memory_total_bytes:
        text += f" in {format_bytes(ready.memory_total_bytes)}"
    free = (ready.memory_total_bytes or 0) - (ready.memory_before_copies or 0)
    if ready.artifact_bytes and free > 0:
        text += (f"; the file-size guess ({format_bytes(ready.artifact_bytes)} per copy) says "
                 f"{format_count(free // ready.artifact_bytes)}")
    if ready.copies_stopped:
        text += f"; {ready.copies} loaded: {ready.copies_stopped}"
    return Hint(f"copies-fit:{backend}:{model}:{wl.config.get('batch')}:{ready.copies}", text)


def _bucket_saving(wl: WorkloadState) -> Hint | None:
    """bert with --seq-len-dist padded to one length: what a bucket set would save, before trying it."""
    config = WorkloadConfig.from_dict(wl.config)
    if config.model != "bert" or not config.seq_len_dist or config.buckets:
        return None
    try:  # validated when the run started; a file: mix may have gone since
        suggestion = bucket_saving(config.seq_len_dist, config.max_seq_len(), config.batch)
    except ValueError:
        return None
    if suggestion is None:
        return None
    buckets, now, then = suggestion
    return Hint(f"buckets:{config.seq_len_dist}:{config.max_seq_len()}:{config.batch}",
                f"buckets {buckets} would cut padding from {format_ratio(now)} to {format_ratio(then)} "
                f"on this length mix (--buckets {buckets}: one compile per bucket)")


@lru_cache(maxsize=32)  # hints are recomputed each tick; a file: mix is read once
def bucket_saving(seq_len_dist: str, longest: int, batch: int) -> tuple[str, float, float] | None:
    """(bucket set, padding ratio padded to `longest`, padding ratio with the set), exact from the
    distribution (workloads.buckets.padding_ratio); None when no set saves WORTH_SUGGESTING."""
    distribution = parse_seq_len_dist(seq_len_dist)
    text = ",".join(str(n) for n in suggest_buckets(distribution, longest))
    now = padding_ratio(distribution, [longest], batch=batch)
    then = padding_ratio(distribution, parse_buckets(text), batch=batch)
    return (text, now, then) if now - then >= WORTH_SUGGESTING else None


def suggest_buckets(distribution: LengthDistribution, longest: int) -> list[int]:
    """A bucket set for a length mix: the powers of two above its 1st-percentile length and
    below its top, then the top itself; the largest SUGGESTED_BUCKETS of them.

    The top is the longest length the mix draws (uniform, file), or `longest` (the padded length
    today) for a normal mix, which is clipped there. Powers of two halve the worst padding of
    each bucket; a bucket below the 1st percentile would hold almost no request and cost a compile.
    uniform:16-128 -> 32,64,128; uniform:5-16 -> 8,16.
    """
    pmf = distribution.pmf(longest)
    top = min(distribution.longest() or longest, longest)
    seen, shortest = 0.0, top
    for length in sorted(pmf):
        seen += pmf[length]
        if seen >= SHORTEST_QUANTILE:
            shortest = length
            break
    powers = [1 << k for k in range(top.bit_length()) if shortest < 1 << k < top]
    return (powers + [top])[-SUGGESTED_BUCKETS:]
