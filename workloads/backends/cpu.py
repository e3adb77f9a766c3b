"""CPU backend: single = one traced replica on all threads; dp and pipeline live in workloads.backends.parallel."""
from __future__ import annotations

import time
from typing import Any

import torch

from ..copies import host_available_bytes, host_total_bytes, release_freed_memory, resident_bytes
from ..protocol import Ready
from ..loadgen import Load
from . import Context, Prepared, load_model_copies
from .common import DTYPES, bucket_fields, cached_trace, cast_inputs, check_options, count_params, cpu_name, \
    load_artifact, merged_inputs, variable_replica, visible_cpus


def unavailable() -> str | None:
    return None


def prepare_model(model: torch.nn.Module, inputs: tuple, ctx: Context) -> tuple[torch.nn.Module, tuple]:
    """Precision and memory format, as the run asks."""
    check_options(ctx, "cpu")
    config = ctx.config
    dtype = DTYPES[config.precision]
    model = model.to(dtype)
    inputs = cast_inputs(inputs, dtype)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
        inputs = tuple(t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for t in inputs)
    return model, inputs


def memory_total() -> int | None:
    return host_total_bytes()


def prepare(model: torch.nn.Module, inputs: tuple, ctx: Context) -> Prepared:
    config = ctx.config
    params = count_params(model)
    pool = ctx.spec.request_pool(config.batch, config)
    model, inputs = prepare_model(model, inputs, ctx)
    if config.mode != "single":
        from . import parallel

        return parallel.prepare_cpu(model, inputs, ctx, params, pool)
    cpus = visible_cpus()
    threads = min(config.cores or len(cpus), len(cpus))
    torch.set_num_threads(threads)
    # One traced artifact per bucket (or the one fixed shape), each through the cache.
    traced = [cached_trace(model, example, ctx, "cpu") for example in (pool.examples if pool else [inputs])]
    infos = [info for _, info in traced]
    del model
    copy_fields: dict = {"load_seconds": sum(i.load_seconds for i in infos)}
    if config.copies is None:
        modules = [[module for module, _ in traced]]
        del traced
    else:
        del traced
        release_freed_memory()
        started = time.perf_counter()
        loaded = load_model_copies(ctx, lambda i: [load_artifact(info.path) for info in infos],
                                   measure=resident_bytes, free=host_available_bytes, total=host_total_bytes())
        modules = loaded.loaded
        copy_fields = dict(loaded.ready_fields("process resident"), load_seconds=time.perf_counter() - started)

    def replica_for(i: int, mods: list) -> Any:
        if pool:
            return variable_replica(mods, pool, start=i * len(pool.requests) // len(modules))
        module = mods[0]
        return lambda k: module(*merged_inputs(inputs, k))

    ready = Ready(params=params, cores_used=threads, compile_seconds=sum(i.compile_seconds for i in infos),
                  artifact_bytes=sum(i.artifact_bytes for i in infos), device_memory_bytes=None,
                  cached=all(i.cached for i in infos), device_name=cpu_name(), **copy_fields,
                  **bucket_fields(pool, infos))
    load = Load([replica_for(i, mods) for i, mods in enumerate(modules)], slots=[0] * len(modules),
                copies=list(range(len(modules))) if config.copies else None,
                buckets=pool.buckets if pool else None,
                max_merge=1 if pool else config.concurrency, thread_context=torch.inference_mode)
    return Prepared(load, ready)
