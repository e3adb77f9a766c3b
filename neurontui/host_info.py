"""Describe the machine a result was measured on, for the rows of an export.

Instance metadata (IMDS) is deliberately not queried: it is often unreachable and a
network call at run time is against the house rules. The instance type comes from
neuron-monitor's `instance_info` (in the Store's latest snapshot) or from the
NEURONTUI_INSTANCE_TYPE environment variable; the CPU model from /proc/cpuinfo; the
GPU name from NVML when it is present.
"""
from __future__ import annotations

import os
import platform
import socket
from typing import Any

from .store import Store

INSTANCE_TYPE_ENV = "NEURONTUI_INSTANCE_TYPE"


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str | None:
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def gpu_names() -> list[str]:
    """Names of the NVIDIA GPUs NVML sees; empty without a driver or without nvidia-ml-py."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...: no GPU here
        return []
    try:
        names = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(index))
            names.append(name.decode() if isinstance(name, bytes) else str(name))
        return names
    except Exception:
        return []
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def describe_host(store: Store | None = None) -> dict[str, Any]:
    """The host fields of a result row; None where not known."""
    snapshot = store.latest if store is not None else None
    instance = dict(snapshot.instance) if snapshot is not None else {}
    hardware = dict(snapshot.hardware) if snapshot is not None else {}
    gpus = gpu_names()
    if not gpus and snapshot is not None:
        gpus = [core.name for core in snapshot.cores_of("gpu") if core.name]
    neuron_devices = hardware.get("neuron_device_count")
    cores_per_device = hardware.get("neuroncore_per_device_count")
    return {
        "hostname": socket.gethostname(),
        "instance_type": instance.get("instance_type") or os.environ.get(INSTANCE_TYPE_ENV) or None,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu_name": gpus[0] if gpus else None,
        "gpu_count": len(gpus),
        "neuron_device_count": neuron_devices if isinstance(neuron_devices, int) else None,
        "neuroncore_count": (neuron_devices * cores_per_device
                             if isinstance(neuron_devices, int) and isinstance(cores_per_device, int) else None),
    }


def host_label(host: dict[str, Any]) -> str:
    """Short name for a host in tables: instance type, else host name."""
    return str(host.get("instance_type") or host.get("hostname") or "unknown host")
