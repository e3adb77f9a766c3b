"""The one data model every source fills and every consumer reads.

Base units only: seconds, bytes, ratios 0..1, counts. Formatting happens at the edge
(TUI widgets, report writers). `None` means "not known", never zero.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1

CORE_KINDS = ("neuroncore", "vcpu", "gpu")
CORE_MEMORY_PARTS = ("constants", "model_code", "model_shared_scratchpad", "runtime_memory", "tensors")
HOST_MEMORY_PARTS = ("application_memory", "constants", "dma_buffers", "tensors")


@dataclass
class Core:
    kind: str  # one of CORE_KINDS
    index: int
    utilization: float | None = None  # 0..1 over the source's period
    # vCPUs: the part of `utilization` other processes took, not neurontui or its children (host_load.py)
    others_utilization: float | None = None
    flops: float | None = None  # floating-point operations per second, when the source reports them
    memory_used_bytes: int | None = None  # device memory attributed to this core (NeuronCore, GPU)
    memory_total_bytes: int | None = None
    name: str = ""  # e.g. the GPU's product name


@dataclass
class CoreMemory:
    """Device memory on one NeuronCore, by use (neuron-monitor's usage_breakdown)."""

    index: int
    constants: int = 0
    model_code: int = 0
    model_shared_scratchpad: int = 0
    runtime_memory: int = 0
    tensors: int = 0

    @property
    def total(self) -> int:
        return self.constants + self.model_code + self.model_shared_scratchpad + self.runtime_memory + self.tensors


@dataclass
class Memory:
    device_used_bytes: int | None = None
    device_total_bytes: int | None = None
    host_used_bytes: int | None = None
    host_total_bytes: int | None = None
    swap_used_bytes: int | None = None
    swap_total_bytes: int | None = None
    per_core: dict[int, CoreMemory] = field(default_factory=dict)  # NeuronCores only
    host_breakdown: dict[str, int] = field(default_factory=dict)  # HOST_MEMORY_PARTS of Neuron runtimes


@dataclass
class Runtime:
    """One process using NeuronCores, as neuron-monitor reports it for one period."""

    tag: str
    pid: int | None = None
    key: str = ""  # unique within a snapshot even when tags repeat: "<tag>" or "<tag>#<n>"
    period_seconds: float | None = None
    cores: list[int] = field(default_factory=list)
    core_utilization: dict[int, float] = field(default_factory=dict)  # this runtime's share of each core, 0..1
    core_flops: dict[int, float] = field(default_factory=dict)
    core_memory: dict[int, CoreMemory] = field(default_factory=dict)  # this runtime's device memory per core
    completed: int = 0  # executions completed in this period (not cumulative)
    status: dict[str, int] = field(default_factory=dict)  # execution_summary for this period
    errors: dict[str, int] = field(default_factory=dict)  # error_summary for this period
    latency_seconds: dict[str, float] = field(default_factory=dict)  # total_latency {p0..p100}
    device_latency_seconds: dict[str, float] = field(default_factory=dict)
    device_memory_bytes: int | None = None
    host_memory_bytes: int | None = None
    vcpu_user_ratio: float | None = None
    vcpu_system_ratio: float | None = None
    loaded_models: list[str] = field(default_factory=list)


@dataclass
class EccCounters:
    device_index: int
    mem_ecc_corrected: int = 0
    mem_ecc_uncorrected: int = 0
    sram_ecc_corrected: int = 0
    sram_ecc_uncorrected: int = 0


@dataclass
class Snapshot:
    """Everything one source knew at one moment."""

    time: float  # unix seconds when the sample was taken (or replayed)
    source: str  # "neuron-monitor", "host", "replay"
    cores: list[Core] = field(default_factory=list)
    memory: Memory = field(default_factory=Memory)
    runtimes: list[Runtime] = field(default_factory=list)
    vcpu_user_ratio: float | None = None  # host-wide average
    vcpu_system_ratio: float | None = None
    vcpu_count: int | None = None
    instance: dict[str, str] = field(default_factory=dict)  # instance_type, instance_id, region, ...
    hardware: dict[str, Any] = field(default_factory=dict)  # neuron_device_count, neuroncore_per_device_count, ...
    ecc: list[EccCounters] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # what could not be read, "<group>: <message>"

    def cores_of(self, kind: str) -> list[Core]:
        return [c for c in self.cores if c.kind == kind]

    def to_json_dict(self) -> dict[str, Any]:
        """The versioned `--once --json` shape (documented in the README)."""
        body = asdict(self)
        body["memory"]["per_core"] = [asdict(m) | {"total": m.total} for m in self.memory.per_core.values()]
        for runtime, raw in zip(body["runtimes"], self.runtimes):
            runtime["errors_total"] = sum(runtime["errors"].values())
            runtime["core_memory"] = [asdict(m) | {"total": m.total} for m in raw.core_memory.values()]
        return {"schema": SCHEMA_VERSION, **body}
