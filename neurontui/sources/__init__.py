"""Telemetry sources: neuron-monitor, host (psutil + NVML), replay; chosen by `--monitor`.

Every source publishes Snapshots into the Store from daemon threads; nothing else
talks to a source. Modules load lazily: the parent-death exec wrapper, which lives in
this package, must start fast.
"""
from __future__ import annotations

import glob
import shlex
import shutil
from argparse import Namespace
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..store import Store
    from .base import Source

NEURON_MONITOR = "neuron-monitor"


def open_source(args: Namespace, store: Store) -> Source | None:
    """The source `args.monitor` asks for (auto|neuron|host|replay:PATH|none), not yet started."""
    spec = getattr(args, "monitor", "auto") or "auto"
    if spec == "none":
        return None
    from .recorder import Recorder

    record = getattr(args, "record", None)
    recorder = Recorder(record, store) if record else None
    if spec.startswith("replay:"):
        from .replay import ReplaySource

        return ReplaySource(store, spec[len("replay:"):], speed=getattr(args, "replay_speed", 1.0),
                            loop=getattr(args, "loop", False), recorder=recorder)
    monitor_cmd = getattr(args, "monitor_cmd", None)
    if spec == "neuron" or (spec == "auto" and (monitor_cmd or neuron_host())):
        from .neuron_monitor import NeuronMonitorSource

        if monitor_cmd:
            command = shlex.split(monitor_cmd)  # split like a shell, never run by one
        else:
            command = [NEURON_MONITOR, "-c", getattr(args, "monitor_config", None) or default_monitor_config()]
        return NeuronMonitorSource(store, command, recorder=recorder)
    from .host import HostSource

    return HostSource(store, interval=getattr(args, "interval", 1.0), recorder=recorder)


def neuron_host() -> bool:
    """neuron-monitor is on PATH and this machine (or container) sees Neuron devices."""
    return shutil.which(NEURON_MONITOR) is not None and bool(glob.glob("/dev/neuron*"))


def default_monitor_config() -> str:
    """Path of the packaged monitor.conf (a copy of the top-level one, kept identical by a test)."""
    return str(resources.files("neurontui") / "data" / "monitor.conf")
