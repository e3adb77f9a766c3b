"""Host telemetry where there is no neuron-monitor: vCPUs and memory (psutil), GPUs (NVML).

NVML (nvidia-ml-py) is optional: without the package or a driver the GPUs are simply
absent, said once in the event log.
"""
from __future__ import annotations

import os
import socket
import time
from typing import Any

import psutil

from ..host_load import HostLoadMeter, vcpu_times
from ..store import Store
from ..telemetry import Core, Snapshot
from .base import Source
from .recorder import Recorder

SOURCE = "host"
FIRST_SAMPLE_SECONDS = 0.5  # CPU shares need an interval; do not make --once wait a full period


class HostSource(Source):
    name = SOURCE
    watch_stalls = True  # a psutil or NVML call that hangs (a wedged driver) is an outage too

    def __init__(self, store: Store, interval: float = 1.0, recorder: Recorder | None = None) -> None:
        super().__init__(store, recorder)
        self.interval = interval
        self.gpus = Gpus()
        self.unavailable = [f"gpu: {self.gpus.problem}"] if self.gpus.problem else []
        self.hostname = socket.gethostname()
        self.meter = HostLoadMeter(os.getpid())

    def run(self) -> None:
        if self.gpus.problem:
            self.store.log("info", self.name, f"no NVIDIA GPU telemetry: {self.gpus.problem}")
        self.begin()
        self.store.source_up(self.name)
        wait = min(self.interval, FIRST_SAMPLE_SECONDS)
        try:
            while not self._stopping.wait(wait):
                self.publish(self.sample())
                wait = self.interval
        finally:
            self.gpus.close()

    def begin(self) -> None:
        """Take the first CPU reading: each sample covers the time since the previous one."""
        self.meter = HostLoadMeter(os.getpid())

    def sample(self) -> Snapshot:
        snap = Snapshot(time=time.time(), source=self.name, instance={"instance_name": self.hostname})
        self.meter.sample()
        load = self.meter.last
        for index, (busy, others) in enumerate(zip(load.per_vcpu_busy, load.per_vcpu_others)):
            snap.cores.append(Core("vcpu", index, utilization=busy, others_utilization=others))
        before, after = self.meter.readings
        snap.vcpu_count = len(after)
        total = sum(v.total for v in vcpu_times(before, after))
        if after and total > 0:
            user = sum(_delta(b, a, "user", "nice") for b, a in zip(before, after))
            system = sum(_delta(b, a, "system", "iowait", "irq", "softirq") for b, a in zip(before, after))
            snap.vcpu_user_ratio = min(user / total, 1.0)
            snap.vcpu_system_ratio = min(system / total, 1.0)
        memory = psutil.virtual_memory()
        swap = psutil.swap_memory()
        snap.memory.host_total_bytes = memory.total
        snap.memory.host_used_bytes = memory.total - memory.available  # what programs can no longer get
        snap.memory.swap_total_bytes = swap.total
        snap.memory.swap_used_bytes = swap.used
        gpus = self.gpus.sample(snap.errors)
        if gpus:
            snap.cores.extend(gpus)
            known = [g for g in gpus if g.memory_used_bytes is not None and g.memory_total_bytes is not None]
            if known:
                snap.memory.device_used_bytes = sum(g.memory_used_bytes for g in known)
                snap.memory.device_total_bytes = sum(g.memory_total_bytes for g in known)
        return snap


class Gpus:
    """NVML handles, opened once; `problem` says why there are none."""

    def __init__(self) -> None:
        self.problem = ""
        self._nvml: Any = None
        self._handles: list[Any] = []
        self._memory_v2 = True
        try:
            import pynvml
        except ImportError:
            self.problem = "nvidia-ml-py is not installed"
            return
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except pynvml.NVMLError as exc:
            self.problem = f"NVML unavailable ({exc})"
            return
        self._nvml = pynvml
        if not self._handles:
            self.problem = "the NVIDIA driver reports no GPU"

    def sample(self, errors: list[str]) -> list[Core]:
        nvml = self._nvml
        cores = []
        for index, handle in enumerate(self._handles):
            core = Core("gpu", index)
            try:
                core.name = _text(nvml.nvmlDeviceGetName(handle))
                core.utilization = _ratio(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
                memory = self._memory_info(handle)
                core.memory_used_bytes, core.memory_total_bytes = int(memory.used), int(memory.total)
            except nvml.NVMLError as exc:
                errors.append(f"gpu[{index}]: {exc}")
            cores.append(core)
        return cores

    def _memory_info(self, handle: Any) -> Any:
        # v2 counts driver-reserved memory apart from `used`, as nvidia-smi does; v1 (older
        # drivers and nvidia-ml-py) counts it as used: an idle H200 would show 615 MiB "used".
        nvml = self._nvml
        if self._memory_v2:
            try:
                return nvml.nvmlDeviceGetMemoryInfo(handle, version=nvml.nvmlMemory_v2)
            except (nvml.NVMLError, TypeError, AttributeError):
                self._memory_v2 = False
        return nvml.nvmlDeviceGetMemoryInfo(handle)

    def close(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except self._nvml.NVMLError:
                pass
            self._nvml = None
            self._handles = []


def _delta(before: object, after: object, *names: str) -> float:
    """Seconds spent in the named psutil.cpu_times fields between two readings of one vCPU."""
    return max(sum(getattr(after, n, 0.0) - getattr(before, n, 0.0) for n in names), 0.0)


def _ratio(percent: float) -> float:
    return min(max(percent / 100.0, 0.0), 1.0)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
