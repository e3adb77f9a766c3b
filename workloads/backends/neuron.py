"""Neuron backend: torch-neuron (inf1) and torch-neuronx (inf2, trn1, trn2), per the AWS Neuron SDK docs.

- detect by importing inside try/except: PyPI's `torch-neuron` is a placeholder whose import
  raises ImportError("WRONG PACKAGE ..."), so find_spec would lie;
- gate on /dev/neuron*: a Neuron-traced model on a host without devices returns shape-only
  placeholder output instead of failing, which would be measured as "very fast";
- single = trace on one core; dp = DataParallel over the visible cores with dynamic batching
  (batch 1 fills cores only with several requests in flight: --concurrency); pipeline =
  `--neuroncore-pipeline-cores N` (torch-neuron only);
- --buckets: one trace per bucket at that bucket's example shape (AWS's bucketing app note);
  --copies N: N separate loads, copy i on visible core i % cores through a one-core DataParallel.
Code here must run on torch 1.x: no APIs newer than torch 1.13.
"""
from __future__ import annotations

import glob
import importlib
import os
import time
from typing import Any

from ..errors import WorkloadFailure, one_line
from ..loadgen import Load
from ..protocol import Ready
from ..rules import pipeline_cores
from . import Context, Prepared

DEVICE_GLOB = "/dev/neuron*"  # a module attribute so tests can point the gate at a fake directory
PACKAGES = ("torch_neuronx", "torch_neuron")  # inf2/trn first; an inf1 host has only torch_neuron
INSTALL_HINT = "install torch-neuron / torch-neuronx from AWS's package index (the PyPI one is a placeholder)"


def devices() -> list[str]:
    return sorted(glob.glob(DEVICE_GLOB))


def import_neuron() -> tuple[str, Any]:
    """(package name, module) of the installed Neuron framework; WorkloadFailure naming why not."""
    reasons = []
    for name in PACKAGES:
        try:
            return name, importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - ImportError, and whatever a broken install raises
            text = one_line(exc)
            if "WRONG PACKAGE" in text.upper():
                text = "the PyPI placeholder package is installed, not AWS's"
            reasons.append(f"{name}: {text}")
    raise WorkloadFailure("backend-unavailable", "no Neuron framework (" + "; ".join(reasons) + f"); {INSTALL_HINT}")


def unavailable() -> str | None:
    if not devices():
        return f"no Neuron devices ({DEVICE_GLOB}); a Neuron model run without them returns placeholder output"
    try:
        import_neuron()
    except WorkloadFailure as failure:
        return failure.message
    return None


def visible_cores(package: str, environ: dict[str, str] | None = None) -> int:
    """NeuronCores this process may use: NEURON_RT_VISIBLE_CORES ("0-3", "1,3"), else NEURON_RT_NUM_CORES,
    else per /dev/neuron* device 4 cores (inf1, torch-neuron) or 2 (inf2/trn1, torch-neuronx)."""
    env = os.environ if environ is None else environ
    spec = env.get("NEURON_RT_VISIBLE_CORES", "").strip()
    if spec:
        count = 0
        for part in spec.split(","):
            low, _, high = part.strip().partition("-")
            count += int(high) - int(low) + 1 if high else 1
        return count
    if env.get("NEURON_RT_NUM_CORES", "").strip().isdigit():
        return int(env["NEURON_RT_NUM_CORES"])
    return max(1, len(devices()) * (2 if package == "torch_neuronx" else 4))


def compiler_args(mode: str, cores: int) -> list[str]:
    return ["--neuroncore-pipeline-cores", str(cores)] if mode == "pipeline" else []


def prepare(model: Any, inputs: tuple, ctx: Context) -> Prepared:
    import torch

    from ..cache import input_signature, load_or_compile, model_fingerprint, trace_module
    from .common import bucket_fields, count_params

    config = ctx.config
    if config.cuda_graphs or config.channels_last:
        raise WorkloadFailure("unsupported", "--cuda-graphs and --channels-last are CUDA options")
    if config.precision != "fp32":
        # Neuron casts fp32 models itself (auto-cast to bf16/fp16 in the compiler); ask it there.
        raise WorkloadFailure("unsupported", f"--precision {config.precision} on Neuron: compile fp32; "
                                             "the Neuron compiler casts matrix math itself")
    package, neuron = import_neuron()
    if config.mode == "pipeline" and package == "torch_neuronx":
        raise WorkloadFailure("unsupported", "pipeline mode (--neuroncore-pipeline-cores) exists only in "
                                             "torch-neuron (inf1); torch-neuronx has no pipeline mode: use dp")
    params = count_params(model)
    visible = visible_cores(package)
    cores = {"single": 1, "dp": min(config.cores or visible, visible),
             "pipeline": pipeline_cores(params, visible, config.pipeline_cores)}[config.mode]
    args = compiler_args(config.mode, cores)
    tracer = neuron.trace if package == "torch_neuronx" else torch.neuron.trace
    # BERT's scaled_dot_product_attention (torch >= 2, so torch-neuronx) is for CUDA's fused kernels;
    # the Neuron compilers get the explicit matmul-softmax attention they have always compiled.
    for module in model.modules():
        if getattr(module, "fused_attention", False):
            module.fused_attention = False

    pool = ctx.spec.request_pool(config.batch, config)
    artifacts, infos = [], []
    # AWS's bucketing app note: one trace per bucket, each with that bucket's example shape.
    for example in (pool.examples if pool else [inputs]):
        key = {"model": config.model, "inputs": input_signature(example), "backend": package,
               "compiler_args": args, "framework": getattr(neuron, "__version__", "?"),
               **model_fingerprint(ctx.spec.module, config.weights)}
        artifact, info = load_or_compile(
            ctx.cache_dir, f"{config.model}-{package}-{config.mode}{cores}", key,
            lambda: trace_module(model, example, tracer=tracer, compiler_args=args),
            on_compile=lambda elapsed: ctx.phase(
                "compiling", 0.0, f"{package}.trace {' '.join(args)} ({elapsed:.0f} s)".replace("  ", " ")))
        ctx.phase("loading", 1.0, f"{'cached' if info.cached else 'new'} artifact {info.path.name}")
        artifacts.append(artifact)
        infos.append(info)
    ready_fields = {"params": params, "cores_used": cores, "compile_seconds": sum(i.compile_seconds for i in infos),
                    "load_seconds": sum(i.load_seconds for i in infos),
                    "artifact_bytes": sum(i.artifact_bytes for i in infos), "device_memory_bytes": None,
                    "cached": all(i.cached for i in infos), "device_name": f"NeuronCore ({package})",
                    **bucket_fields(pool, infos)}
    if config.copies is not None or pool is not None:
        placement = cores if config.mode == "dp" else visible  # --copies in single mode: over every visible core
        return _prepare_copies(ctx, package, neuron, torch, artifacts, infos, pool, inputs, cores, placement,
                               ready_fields)

    if config.mode == "dp":
        parallel_model = data_parallel(package, neuron, torch, artifact, cores)
        # Several dispatchers call DataParallel at once: it cuts each merged batch across cores.
        dispatchers = max(cores, config.concurrency)
        runner = _runner(torch, parallel_model, inputs)
        load = Load([runner] * dispatchers, slots=[0] * dispatchers, max_merge=config.concurrency,
                    thread_context=torch.no_grad)
    else:
        # Compiled shapes are static: one request per call, never merged.
        load = Load([_runner(torch, artifact, inputs, merge=False)], max_merge=1, thread_context=torch.no_grad)
    return Prepared(load, Ready(**ready_fields))


def _prepare_copies(ctx: Context, package: str, neuron: Any, torch: Any, artifacts: list, infos: list, pool: Any,
                    inputs: tuple, cores: int, placement: int, ready_fields: dict) -> Prepared:
    """--copies N|max: copy i is its own load of each artifact, placed on core i % placement with a
    one-core DataParallel (device_ids count from 0 among NEURON_RT_VISIBLE_CORES). Without
    --copies (variable-length input alone) the artifacts run as single or dp would run them.

    The child cannot read NeuronCore memory (neuron-monitor can): copies carry no memory figures,
    and `max` loads until the runtime refuses one (or MAX_COPIES).
    """
    from . import load_model_copies
    from .common import load_artifact, variable_replica

    config = ctx.config
    if config.copies is None:
        parallel = config.mode == "dp"
        copies = [[data_parallel(package, neuron, torch, a, cores) if parallel else a for a in artifacts]]
        extra: dict = {}
        dispatchers = max(cores, config.concurrency) if parallel else 1
    else:
        def load_one(i: int) -> list:
            return [data_parallel(package, neuron, torch, load_artifact(info.path), 1, first=i % placement)
                    for info in infos]
        del artifacts[:]  # the compile's own loads are not copies: each copy loads its own
        started = time.perf_counter()
        loaded = load_model_copies(ctx, load_one, is_out_of_memory=_refused)
        copies = loaded.loaded
        extra = dict(loaded.ready_fields(""), load_seconds=time.perf_counter() - started)
        dispatchers = len(copies)
    replicas = []
    for i in range(dispatchers):
        modules = copies[i % len(copies)]
        if pool:
            replicas.append(variable_replica(modules, pool, start=i * len(pool.requests) // dispatchers))
        else:
            replicas.append(_runner(torch, modules[0], inputs, merge=False))
    fields = dict(ready_fields, **extra)
    if config.copies is not None:
        fields["cores_used"] = min(placement, len(copies))
    load = Load(replicas, slots=[i % placement if config.copies else 0 for i in range(dispatchers)],
                copies=list(range(len(copies))) if config.copies else None,
                buckets=pool.buckets if pool else None, max_merge=1, thread_context=torch.no_grad)
    return Prepared(load, Ready(**fields))


def _refused(exc: BaseException) -> bool:
    """A copy the Neuron runtime would not load for want of memory (NRT says so in words)."""
    from ..copies import is_out_of_memory

    text = str(exc).lower()
    return is_out_of_memory(exc) or "insufficient" in text or "allocate" in text


def data_parallel(package: str, neuron: Any, torch: Any, artifact: Any, cores: int, first: int = 0) -> Any:
    """DataParallel over `cores` visible cores from `first`, dynamic batching on (dim=0)."""
    device_ids = list(range(first, first + cores))  # from 0 inside this process (NEURON_RT_VISIBLE_CORES maps them)
    if package == "torch_neuronx":
        return neuron.DataParallel(artifact, device_ids=device_ids, dim=0, set_dynamic_batching=True)
    return torch.neuron.DataParallel(artifact, device_ids=device_ids, dim=0)


def _runner(torch: Any, module: Any, inputs: tuple, merge: bool = True) -> Any:
    def run(k: int) -> Any:
        batch = inputs if k == 1 or not merge else tuple(torch.cat([t] * k) for t in inputs)
        return module(*batch)
    return run
