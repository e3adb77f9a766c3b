"""CPU backend: single = one traced replica on all threads; dp and pipeline live in workloads.parallel."""
from __future__ import annotations

from typing import Any

import torch

from ..protocol import Ready
from ..loadgen import Load
from . import Context, Prepared
from .common import DTYPES, cached_trace, cast_inputs, check_options, count_params, cpu_name, merged_inputs, visible_cpus


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


def prepare(model: torch.nn.Module, inputs: tuple, ctx: Context) -> Prepared:
    config = ctx.config
    params = count_params(model)
    model, inputs = prepare_model(model, inputs, ctx)
    if config.mode != "single":
        from .. import parallel

        return parallel.prepare_cpu(model, inputs, ctx, params)
    cpus = visible_cpus()
    threads = min(config.cores or len(cpus), len(cpus))
    torch.set_num_threads(threads)
    module, info = cached_trace(model, inputs, ctx, "cpu")
    del model

    def replica(k: int) -> Any:
        return module(*merged_inputs(inputs, k))

    ready = Ready(params=params, cores_used=threads, compile_seconds=info.compile_seconds,
                  load_seconds=info.load_seconds, artifact_bytes=info.artifact_bytes,
                  device_memory_bytes=None, cached=info.cached, device_name=cpu_name())
    return Prepared(Load([replica], max_merge=config.concurrency, thread_context=torch.inference_mode), ready)
