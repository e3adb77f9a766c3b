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
