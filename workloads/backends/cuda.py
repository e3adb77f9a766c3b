"""CUDA backend: eager replicas on GPUs, each on its own stream; optional bf16/fp16, channels-last, CUDA graphs.

- single: one replica on GPU 0, one stream;
- dp: per GPU one weight copy driven from STREAMS_PER_GPU streams (replicas), dynamic batching;
- pipeline: stages on consecutive GPUs (streams on one GPU when there is only one), see parallel.py.
- --copies N / variable-length input: copy i on GPU i % GPUs, one stream each (prepare_copies).
A replica's call returns only after its stream has finished (stream.synchronize()), so the
clock the load generator reads afterwards measures device work, not the kernel launches.
Inputs live on the device (as a server's would after its host-to-device copy).
"""
from __future__ import annotations

import time
from typing import Any

import torch

from ..errors import WorkloadFailure
from ..loadgen import Load
from ..protocol import Ready
from . import Context, Prepared
from ..buckets import RequestPool
from .common import DTYPES, cast_inputs, check_options, count_params, merged_inputs, variable_replica

STREAMS_PER_GPU = 2
GRAPH_WARMUP_CALLS = 3


def unavailable() -> str | None:
    if not torch.cuda.is_available():
        return "torch.cuda.is_available() is False (no NVIDIA GPU or driver, or a CPU-only torch build)"
    return None


def prepare(model: torch.nn.Module, inputs: tuple, ctx: Context) -> Prepared:
    check_options(ctx, "cuda")
    config = ctx.config
    params = count_params(model)
    dtype = DTYPES[config.precision]
    gpus = torch.cuda.device_count()
    used = min(config.cores or gpus, gpus) if config.mode == "dp" else 1
    torch.backends.cudnn.benchmark = True  # static shapes: let cuDNN pick its fastest kernels once
    pool = ctx.spec.request_pool(config.batch, config)
    if config.copies is not None or pool is not None:
        return prepare_copies(model, inputs, ctx, params, pool, used)

    ctx.phase("loading", 0.0, f"to {used} GPU(s), {config.precision}")
    started = time.perf_counter()
    placed = [place(model, inputs, torch.device("cuda", i), dtype, config.channels_last) for i in range(used)]
    torch.cuda.synchronize()
    load_seconds = time.perf_counter() - started

    if config.mode == "pipeline":
        from . import parallel

        return parallel.prepare_cuda_pipeline(placed[0][0], placed[0][1], ctx, params, load_seconds)

    streams_per_gpu = STREAMS_PER_GPU if config.mode == "dp" else 1
    replicas, capture_seconds = [], 0.0
    with torch.inference_mode():
        for gpu_model, gpu_inputs in placed:
            for _ in range(streams_per_gpu):
                stream = torch.cuda.Stream(device=gpu_inputs[0].device)
                if config.cuda_graphs:
                    ctx.phase("compiling", len(replicas) / (used * streams_per_gpu), "capturing CUDA graphs")
                    started = time.perf_counter()
                    replicas.append(graph_replica(gpu_model, gpu_inputs, stream))
                    capture_seconds += time.perf_counter() - started
                else:
                    replicas.append(eager_replica(gpu_model, gpu_inputs, stream))
    memory = sum(torch.cuda.memory_allocated(i) for i in range(used))
    ready = Ready(params=params, cores_used=used, compile_seconds=capture_seconds, load_seconds=load_seconds,
                  artifact_bytes=None, device_memory_bytes=memory, cached=False,
                  device_name=torch.cuda.get_device_name(0))
    slots = [i // streams_per_gpu for i in range(len(replicas))]  # completions count per GPU
    # A graph replays one fixed shape: requests are never merged then.
    max_merge = 1 if config.cuda_graphs else config.concurrency
    return Prepared(Load(replicas, slots=slots, max_merge=max_merge, thread_context=torch.inference_mode), ready)


def memory_total() -> int | None:
    """GPU 0's memory: single runs there, and a copy too big for one GPU fits on none."""
    return torch.cuda.get_device_properties(0).total_memory


def prepare_copies(model: torch.nn.Module, inputs: tuple, ctx: Context, params: int, pool: Any,
                   used: int) -> Prepared:
    """--copies N|max (copy i on GPU i % used) and/or variable-length input; one stream per copy.

    Eager models take any sequence length, so a bucket needs no compile here: each request runs
    at its bucket's shape on the same weights (bucket_compile_seconds are 0).
    """
    from . import load_model_copies
    from ..copies import is_out_of_memory

    config = ctx.config
    if config.cuda_graphs:
        raise WorkloadFailure("unsupported", "--cuda-graphs captures one fixed forward; "
                                             "not with --copies, --seq-len-dist or --buckets")
    if config.mode == "pipeline":
        raise WorkloadFailure("unsupported", "pipeline mode runs one fixed shape: use single or dp")
    dtype = DTYPES[config.precision]
    devices = [torch.device("cuda", i) for i in range(used)]

    def allocated() -> int:
        torch.cuda.synchronize()
        return sum(torch.cuda.memory_allocated(d) for d in devices)

    def place_copy(i: int) -> tuple[torch.nn.Module, tuple]:
        return place(model, inputs, devices[i % used], dtype, config.channels_last)

    ctx.phase("loading", 0.0, f"to {used} GPU(s), {config.precision}")
    started = time.perf_counter()
    extra: dict = {}
    if config.copies is None:
        placed = [place_copy(i) for i in range(used)]
    else:
        loaded = load_model_copies(ctx, place_copy, measure=allocated,
                                   free=lambda: torch.cuda.mem_get_info(devices[0])[0] if used == 1 else None,
                                   total=memory_total() if used == 1 else None,
                                   is_out_of_memory=lambda e: getattr(e, "kind", "") == "oom" or is_out_of_memory(e))
        placed, extra = loaded.loaded, loaded.ready_fields("cuda allocated")
    torch.cuda.synchronize()
    load_seconds = time.perf_counter() - started
    on_device = {d: [(b, tuple(t.to(d) for t in x), real, pad) for b, x, real, pad in pool.requests]
                 for d in devices} if pool else {}

    replicas = []
    for i, (gpu_model, gpu_inputs) in enumerate(placed):
        stream = torch.cuda.Stream(device=gpu_inputs[0].device)
        if pool:
            device_pool = RequestPool(pool.buckets, pool.examples, on_device[gpu_inputs[0].device])
            replicas.append(variable_replica([gpu_model] * len(pool.buckets), device_pool,
                                             start=i * len(pool.requests) // len(placed), run=_on_stream(stream)))
        else:
            replicas.append(eager_replica(gpu_model, gpu_inputs, stream))
    ready = Ready(params=params, cores_used=used, compile_seconds=0.0, load_seconds=load_seconds,
                  artifact_bytes=None, device_memory_bytes=sum(torch.cuda.memory_allocated(d) for d in devices),
                  cached=False, device_name=torch.cuda.get_device_name(0), **extra,
                  **({"bucket_lengths": list(pool.buckets), "bucket_compile_seconds": [0.0] * len(pool.buckets)}
                     if pool else {}))
    load = Load(replicas, slots=[int(inp[0].device.index) for _, inp in placed],
                copies=list(range(len(placed))) if config.copies else None,
                buckets=pool.buckets if pool else None, max_merge=1 if pool else config.concurrency,
                thread_context=torch.inference_mode)
    return Prepared(load, ready)


def _on_stream(stream: torch.cuda.Stream) -> Any:
    def run(model: torch.nn.Module, inputs: tuple) -> None:
        with torch.cuda.stream(stream):
            model(*inputs)
        stream.synchronize()
    return run


def place(model: torch.nn.Module, inputs: tuple, device: torch.device, dtype: torch.dtype,
          channels_last: bool) -> tuple[torch.nn.Module, tuple]:
    try:
        copy = _copy_of(model).to(device=device, dtype=dtype)
        moved = tuple(t.to(device) for t in cast_inputs(inputs, dtype))
    except torch.cuda.OutOfMemoryError as exc:
        raise WorkloadFailure("oom", f"the model does not fit on {device}: {exc}".splitlines()[0]) from None
    if channels_last:
        copy = copy.to(memory_format=torch.channels_last)
        moved = tuple(t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for t in moved)
    return copy, moved


def _copy_of(model: torch.nn.Module) -> torch.nn.Module:
    """`.to(device)` moves a module in place; each GPU needs its own copy of the CPU-built weights."""
    import copy

    return copy.deepcopy(model)


def eager_replica(model: torch.nn.Module, inputs: tuple, stream: torch.cuda.Stream) -> Any:
    def run(k: int) -> None:
        with torch.cuda.stream(stream):
            model(*merged_inputs(inputs, k))
        stream.synchronize()
    return run


def graph_replica(model: torch.nn.Module, inputs: tuple, stream: torch.cuda.Stream) -> Any:
    """Capture one forward at this static shape; each call replays it (one launch instead of hundreds)."""
    with torch.cuda.stream(stream):
        for _ in range(GRAPH_WARMUP_CALLS):  # capture needs warmed-up allocations and cuDNN choices
            model(*inputs)
    stream.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        model(*inputs)
    stream.synchronize()

    def run(k: int) -> None:
        with torch.cuda.stream(stream):
            graph.replay()
        stream.synchronize()
    return run
