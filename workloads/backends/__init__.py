"""Backends: detection, `--backend auto`, and preparing a model to run under the load generator.

Each backend module (cpu, cuda, neuron) has `unavailable() -> str | None` (why it cannot
run here, None when it can) and `prepare(model, inputs, ctx) -> Prepared`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import WorkloadFailure
from ..loadgen import Load
from ..protocol import Phase, Ready

if TYPE_CHECKING:
    from ..config import WorkloadConfig
    from ..models import ModelSpec

AUTO_ORDER = ("neuron", "cuda", "cpu")


@dataclass
class Context:
    """What every backend needs besides the model: the run's settings and a way to report."""
    config: WorkloadConfig
    spec: ModelSpec
    emit: Callable[[Any], None]
    cache_dir: Path

    def phase(self, name: str, progress: float = 0.0, detail: str = "") -> None:
        self.emit(Phase(phase=name, progress=progress, detail=detail))


@dataclass
class Prepared:
    load: Load
    ready: Ready
    close: Callable[[], None] = field(default=lambda: None)


def load_model_copies(ctx: Context, load_one: Callable[[int], Any], **measuring: Any) -> Any:
    """`--copies` through workloads.copies.load_copies, with a 'loading' phase per copy; a count
    cut short by an out-of-memory is a non-fatal `error` event (the loaded copies still run)."""
    from ..copies import load_copies, parse_copies
    from ..protocol import Error

    requested = parse_copies(ctx.config.copies)
    loaded = load_copies(load_one, requested, **measuring,
                         on_loaded=lambda done, target: ctx.phase(
                             "loading", done / target if requested else 0.0,
                             f"copy {done}" + (f" of {requested}" if requested else " (--copies max)")))
    if requested is not None and loaded.stopped:
        ctx.emit(Error(kind="oom", fatal=False,
                       message=f"{loaded.stopped}; running {len(loaded.loaded)} of {requested} copies"))
    return loaded


def copies_problem(backend: str, spec: ModelSpec, config: WorkloadConfig) -> str | None:
    """--copies N whose weights alone exceed the backend's total memory, before anything is built."""
    from ..copies import parse_copies

    requested = parse_copies(config.copies) if config.copies else None
    total = getattr(backend_module(backend), "memory_total", lambda: None)()
    if requested is None or total is None:
        return None
    weights = spec.params * (4 if config.precision == "fp32" else 2)
    if requested * weights <= total:
        return None
    return (f"--copies {requested}: {requested} x {config.model}'s {weights:,} bytes of weights is more than the "
            f"{total:,} bytes of memory here; at most {total // weights} copies could fit")


def backend_module(name: str):
    return importlib.import_module(f"{__name__}.{name}")


def resolve(requested: str) -> str:
    """The backend to use: `auto` picks neuron, then cuda, then cpu; an absent one is an error."""
    if requested == "auto":
        for name in AUTO_ORDER:
            if backend_module(name).unavailable() is None:
                return name
        return "cpu"
    reason = backend_module(requested).unavailable()
    if reason is not None:
        raise WorkloadFailure("backend-unavailable", f"backend {requested} is not available here: {reason}")
    return requested


def prepare(backend: str, model: Any, inputs: tuple, ctx: Context) -> Prepared:
    return backend_module(backend).prepare(model, inputs, ctx)
