"""Telemetry sources: neuron-monitor, host (psutil + NVML), replay; chosen by `--monitor`.

Every source publishes Snapshots into the Store from daemon threads; nothing else
talks to a source. Modules load lazily: the parent-death exec wrapper, which lives in
this package, must start fast.
"""
from __future__ import annotations

import glob
import os
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


def requested_source_problem(args: Namespace) -> str | None:
    """Why the source the user asked for by name cannot start here, in one line; None when it can
    (or when `auto` will fall back quietly). Checked before anything starts: exit status 2."""
    spec = getattr(args, "monitor", "auto") or "auto"
    if spec.startswith("replay:"):
        path = spec[len("replay:"):]
        if not os.path.exists(path):
            return f"cannot replay {path}: no such file"
        if os.path.isdir(path):
            return f"cannot replay {path}: it is a directory"
        if not os.access(path, os.R_OK):
            return f"cannot replay {path}: not readable"
        return None
    monitor_cmd = getattr(args, "monitor_cmd", None)
    if spec not in ("neuron", "auto") or (spec == "auto" and not monitor_cmd):
        return None
    if monitor_cmd:
        program = shlex.split(monitor_cmd)[0]
        if shutil.which(program) is None:
            return f"cannot run {program} (--monitor-cmd): not found on PATH or not executable"
        return None
    if shutil.which(NEURON_MONITOR) is None:
        return (f"--monitor neuron: {NEURON_MONITOR} is not on PATH (it comes with AWS's Neuron tools; "
                "--monitor-cmd CMD runs another command)")
    config = getattr(args, "monitor_config", None)
    if config and not os.access(config, os.R_OK):
        return f"--monitor-config {config}: no readable file there"
    return None


def neuron_host() -> bool:
    """neuron-monitor is on PATH and this machine (or container) sees Neuron devices."""
    return shutil.which(NEURON_MONITOR) is not None and bool(glob.glob("/dev/neuron*"))


def default_monitor_config() -> str:
    """Path of the packaged monitor.conf (a copy of the top-level one, kept identical by a test)."""
    return str(resources.files("neurontui") / "data" / "monitor.conf")
