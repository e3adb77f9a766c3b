"""Is the accelerator a `--backend` names on this host? Asked by the parent before anything starts.

Torch-free (the parent never imports torch): device nodes and NVML, not torch.cuda. Only a backend
named explicitly is checked; `auto` falls back quietly to what is there (the child decides).
"""
from __future__ import annotations

import glob

NVIDIA_DEVICES = "/dev/nvidia[0-9]*"  # one node per GPU the driver (or the container runtime) exposes
NEURON_DEVICES = "/dev/neuron*"  # one node per Neuron device (inf1, inf2, trn1, trn2)


def requested_backend_problem(backend: str) -> str | None:
    """Why `--backend <backend>` cannot run here, in one line; None when it may (or for auto, cpu)."""
    if backend == "cuda" and not glob.glob(NVIDIA_DEVICES):
        from .sources.host import Gpus  # NVML, as the host source reads GPUs (WSL has no /dev/nvidia*)

        gpus = Gpus()
        gpus.close()
        if gpus.problem:
            return f"--backend cuda: no NVIDIA GPU here (no {NVIDIA_DEVICES} device; {gpus.problem})"
    if backend == "neuron" and not glob.glob(NEURON_DEVICES):
        return f"--backend neuron: no Neuron device here (no {NEURON_DEVICES}); this is not an inf/trn instance"
    return None
