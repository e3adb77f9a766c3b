"""Host telemetry where there is no neuron-monitor: vCPUs and memory (psutil), GPUs (NVML).

NVML (nvidia-ml-py) is optional: without the package or a driver the GPUs are simply
absent, said once in the event log.
"""
from __future__ import annotations

import socket
import time
from typing import Any

import psutil

from ..store import Store
from ..telemetry import Core, Snapshot
from .base import Source
from .recorder import Recorder

SOURCE = "host"
FIRST_SAMPLE_SECONDS = 0.5  # CPU percentages need an interval; do not make --once wait a full period


class HostSource(Source):
    name = SOURCE

    def __init__(self, store: Store, interval: float = 1.0, recorder: Recorder | None = None) -> None:
        super().__init__(store, recorder)
        self.interval = interval
        self.gpus = Gpus()
        self.hostname = socket.gethostname()

    def run(self) -> None:
        if self.gpus.problem:
            self.store.log("info", self.name, f"no NVIDIA GPU telemetry: {self.gpus.problem}")
        psutil.cpu_times_percent(percpu=True)  # start the first measuring interval
        self.store.source_up(self.name)
        wait = min(self.interval, FIRST_SAMPLE_SECONDS)
        try:
            while not self._stopping.wait(wait):
                self.publish(self.sample())
                wait = self.interval
        finally:
            self.gpus.close()

    def sample(self) -> Snapshot:
        snap = Snapshot(time=time.time(), source=self.name, instance={"instance_name": self.hostname})
        per_cpu = psutil.cpu_times_percent(percpu=True)
        for index, times in enumerate(per_cpu):
            # busy = everything but idle, as neuron-monitor counts it (io_wait included)
            snap.cores.append(Core("vcpu", index, utilization=_ratio(100.0 - times.idle)))
        snap.vcpu_count = len(per_cpu)
        if per_cpu:
            snap.vcpu_user_ratio = _ratio(sum(t.user + getattr(t, "nice", 0.0) for t in per_cpu) / len(per_cpu))
            snap.vcpu_system_ratio = _ratio(sum(t.system + getattr(t, "iowait", 0.0) + getattr(t, "irq", 0.0)
                                                + getattr(t, "softirq", 0.0) for t in per_cpu) / len(per_cpu))
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


def _ratio(percent: float) -> float:
    return min(max(percent / 100.0, 0.0), 1.0)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
