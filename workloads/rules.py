"""The rules a run is judged by, written once: both packages import them (torch-free).

- stability: perf_analyzer's rule, the last 3 windows' throughputs each within 10% of their mean;
- pipeline cores: the seed's rule of thumb, 4 * round(params / 2e7), clamped to [1, cores];
- effective backend: what the child says it runs on (`hello`), else what was asked for.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

STABLE_WINDOWS = 3
STABLE_TOLERANCE = 0.10
STABLE = "stable"
UNSTABLE = "unstable"
TOO_FEW_WINDOWS = "too few windows"

PIPELINE_PARAMS_PER_STEP = 2e7  # 4 NeuronCores per 20 M parameters
PIPELINE_CORES_PER_STEP = 4

CORE_KIND_OF_BACKEND = {"cpu": "vcpu", "cuda": "gpu", "neuron": "neuroncore"}


def is_stable(throughputs: Sequence[float], windows: int = STABLE_WINDOWS,
              tolerance: float = STABLE_TOLERANCE) -> bool:
    """The last `windows` throughputs all within `tolerance` of their mean (and not all zero)."""
    if len(throughputs) < windows:
        return False
    last = list(throughputs)[-windows:]
    mean = sum(last) / windows
    return mean > 0 and all(abs(x - mean) <= tolerance * mean for x in last)


def stability(throughputs: Sequence[float]) -> str:
    """The verdict a run's rows and screen show: stable, unstable or too few windows."""
    if len(throughputs) < STABLE_WINDOWS:
        return TOO_FEW_WINDOWS
    return STABLE if is_stable(throughputs) else UNSTABLE


def pipeline_cores_unclamped(params: int) -> int:
    """4 * round(params / 2e7), rounding half up as the seed did (Python's round() would take
    1.5 to 2 but 2.5 to 2: half to even)."""
    return PIPELINE_CORES_PER_STEP * math.floor(params / PIPELINE_PARAMS_PER_STEP + 0.5)


def pipeline_cores(params: int, cores: int, requested: int | None = None) -> int:
    """--pipeline-cores when given, else the rule of thumb; clamped to [1, cores]."""
    wanted = requested if requested is not None else pipeline_cores_unclamped(params)
    return max(1, min(wanted, max(cores, 1)))


def effective_backend(requested: str, reported: str | None) -> str:
    """`--backend auto` becomes what the child reported in `hello`; an explicit one stays."""
    return reported if requested == "auto" and reported else requested


def core_kind(backend: str) -> str | None:
    """The kind of core a backend's work runs on (vcpu, gpu, neuroncore)."""
    return CORE_KIND_OF_BACKEND.get(backend)
