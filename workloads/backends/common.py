"""Helpers shared by the CPU and CUDA backends."""
from __future__ import annotations

import os
import platform
from typing import Any

import torch

from ..errors import WorkloadFailure

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def cast_inputs(inputs: tuple, dtype: torch.dtype) -> tuple:
    """Floating inputs take the model's precision; token ids and masks stay integers."""
    return tuple(t.to(dtype) if t.is_floating_point() else t for t in inputs)


def merged_inputs(inputs: tuple, k: int) -> tuple:
    """k requests gathered into one batch (dynamic batching); the gather is part of the measured cost."""
    if k == 1:
        return inputs
    return tuple(torch.cat([t] * k) for t in inputs)


def check_options(ctx: Any, backend: str) -> None:
    config = ctx.config
    if config.cuda_graphs and backend != "cuda":
        raise WorkloadFailure("unsupported", "--cuda-graphs needs --backend cuda")
    if config.channels_last and not ctx.spec.convolutional:
        raise WorkloadFailure("unsupported", f"--channels-last is for convolutional models; {config.model} is not one")


def visible_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:
        return list(range(os.cpu_count() or 1))


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cached_trace(model: torch.nn.Module, inputs: tuple, ctx: Any, backend: str, name: str | None = None,
                 **key_extra: Any) -> tuple[Any, Any]:
    """torch.jit.trace through the compile cache; phases 'compiling' (on a miss) and 'loading'."""
    from ..cache import input_signature, load_or_compile, model_fingerprint, trace_module

    config = ctx.config
    key = {"model": config.model, "inputs": input_signature(inputs), "backend": backend,
           "precision": config.precision, "channels_last": config.channels_last,
           **model_fingerprint(ctx.spec.module, config.weights), **key_extra}
    module, info = load_or_compile(
        ctx.cache_dir, name or f"{config.model}-{backend}", key, lambda: trace_module(model, inputs),
        on_compile=lambda elapsed: ctx.phase("compiling", 0.0, f"torch.jit.trace ({elapsed:.0f} s)"))
    ctx.phase("loading", 1.0, f"{'cached' if info.cached else 'new'} artifact {info.path.name}")
    return module, info


def variable_replica(modules: list, pool: Any, start: int, run: Any = None) -> Any:
    """A replica cycling through the pool's variable-length requests (workloads/buckets.py), each run
    by its bucket's module; returns (bucket index, real tokens, pad tokens) for the load generator.
    `start` staggers replicas through the pool, so copies do not all run the same request at once."""
    requests, position = pool.requests, [start % len(pool.requests)]
    run = run or (lambda module, inputs: module(*inputs))

    def replica(k: int) -> tuple[int, int, int]:
        index = position[0]
        position[0] = index + 1 if index + 1 < len(requests) else 0
        bucket, inputs, real, pad = requests[index]
        run(modules[bucket], inputs)
        return bucket, real, pad
    return replica


def load_artifact(path: Any) -> Any:
    """One more independent copy of a saved TorchScript artifact (its own weights in memory)."""
    from ..cache import quiet_jit

    with quiet_jit():
        return torch.jit.load(str(path))


def bucket_fields(pool: Any, infos: list) -> dict[str, list]:
    """The `ready` event's per-bucket fields, from the pool and each bucket's CacheInfo."""
    if pool is None:
        return {}
    return {"bucket_lengths": list(pool.buckets), "bucket_compile_seconds": [i.compile_seconds for i in infos]}
