"""Floating-point operations per sample, counted once per model and input shape.

torch.utils.flop_counter.FlopCounterMode counts the matrix products, convolutions and attention
of one forward pass (2 FLOPs per multiply-add; elementwise ops, pooling and norms are not
counted, so the figure is the work a peak FLOP rate is quoted for). The count runs on the
`meta` device, on a second copy of the model built there: shapes only, no arithmetic, no weights
loaded, and the measured model is not touched. The counter's first use imports torch._dynamo
(seconds), so the count is kept in the artifact cache, keyed by model source, input shape and torch
version: a tune's many children of one model count it once.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from .cache import artifact_key, input_signature, model_fingerprint


def count_flops(model: torch.nn.Module, inputs: tuple) -> int | None:
    """FLOPs of model(*inputs); None where this torch has no flop counter or an op defeats it."""
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:  # torch < 2.1 (inf1 hosts)
        return None
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(*inputs)
    except Exception as exc:  # noqa: BLE001 - a figure we cannot count is absent, never a failed run
        print(f"workloads: FLOPs not counted: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None
    return int(counter.get_total_flops())


def flops_per_sample(spec: Any, config: Any, cache_dir: Path | None = None) -> int | None:
    """FLOPs of one sample of `spec`'s model at `config`'s input shape (batch 1), counted on `meta`
    (or read from `cache_dir`, where a count is kept once made)."""
    try:
        with torch.device("meta"):
            model = spec.build(replace(config, weights=None))  # weights do not change the count
        inputs = tuple(t.to("meta") for t in spec.example_inputs(1, config))
    except Exception as exc:  # noqa: BLE001 - same as above: absent, with the reason on stderr
        print(f"workloads: FLOPs not counted: cannot build {config.model} on meta: {exc}", file=sys.stderr)
        return None
    key = artifact_key({"flops": config.model, "inputs": input_signature(inputs), "torch": torch.__version__,
                        **model_fingerprint(spec.module, None)})
    path = cache_dir / f"flops-{config.model}-{key}.json" if cache_dir else None
    cached = _read_count(path) if path else None
    if cached is not None:
        return cached
    flops = count_flops(model, inputs)
    if flops is not None and path:
        _write_count(path, flops)
    return flops


def _read_count(path: Path) -> int | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("flops_per_sample")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _write_count(path: Path, flops: int) -> None:
    """Atomically (a reader never sees half a file); a cache that cannot be written is only slower."""
    temp = None
    try:
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".flops-")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"flops_per_sample": flops}, handle)
        os.replace(temp, path)
    except OSError as exc:
        print(f"workloads: FLOPs count not cached: {exc}", file=sys.stderr)
        if temp:
            Path(temp).unlink(missing_ok=True)
