"""The one data model every source fills and every consumer reads.

Base units only: seconds, bytes, ratios 0..1, counts. Formatting happens at the edge
(TUI widgets, report writers). `None` means "not known", never zero.

The types are msgspec Structs, not dataclasses: a neuron-monitor report builds a few
hundred of them (a Core per NeuronCore and vCPU, a CoreMemory per core and runtime) and a
Struct is built in a third of a dataclass's time. An empty `[]` or `{}` default is a new
one per instance, as `field(default_factory=...)` was. The ones that hold only scalars are
left out of the garbage collector's tracking: they can be in no reference cycle.
"""
from __future__ import annotations

from typing import Any

from msgspec import Struct, field
from msgspec.structs import asdict as _fields_of

SCHEMA_VERSION = 1

CORE_KINDS = ("neuroncore", "vcpu", "gpu")
CORE_MEMORY_PARTS = ("constants", "model_code", "model_shared_scratchpad", "runtime_memory", "tensors")
HOST_MEMORY_PARTS = ("application_memory", "constants", "dma_buffers", "tensors")


class Core(Struct, gc=False):
    kind: str  # one of CORE_KINDS
    index: int
    utilization: float | None = None  # 0..1 over the source's period
    # vCPUs: the part of `utilization` other processes took, not neurontui or its children (host_load.py)
    others_utilization: float | None = None
    flops: float | None = None  # floating-point operations per second, when the source reports them
    memory_used_bytes: int | None = None  # device memory attributed to this core (NeuronCore, GPU)
    memory_total_bytes: int | None = None
    name: str = ""  # e.g. the GPU's product name


class CoreMemory(Struct, gc=False):
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


class Memory(Struct):
    device_used_bytes: int | None = None
    device_total_bytes: int | None = None
    host_used_bytes: int | None = None
    host_total_bytes: int | None = None
    swap_used_bytes: int | None = None
    swap_total_bytes: int | None = None
    per_core: dict[int, CoreMemory] = {}  # NeuronCores only
    host_breakdown: dict[str, int] = {}  # HOST_MEMORY_PARTS of Neuron runtimes


class Runtime(Struct):
    """One process using NeuronCores, as neuron-monitor reports it for one period."""

    tag: str
    pid: int | None = None
    key: str = ""  # unique within a snapshot even when tags repeat: "<tag>" or "<tag>#<n>"
    period_seconds: float | None = None
    cores: list[int] = []
    core_utilization: dict[int, float] = {}  # this runtime's share of each core, 0..1
    core_flops: dict[int, float] = {}
    core_memory: dict[int, CoreMemory] = {}  # this runtime's device memory per core
    completed: int = 0  # executions completed in this period (not cumulative)
    status: dict[str, int] = {}  # execution_summary for this period
    errors: dict[str, int] = {}  # error_summary for this period
    latency_seconds: dict[str, float] = {}  # total_latency {p0..p100}
    device_latency_seconds: dict[str, float] = {}
    device_memory_bytes: int | None = None
    host_memory_bytes: int | None = None
    vcpu_user_ratio: float | None = None
    vcpu_system_ratio: float | None = None
    loaded_models: list[str] = []


class EccCounters(Struct, gc=False):
    device_index: int
    mem_ecc_corrected: int = 0
    mem_ecc_uncorrected: int = 0
    sram_ecc_corrected: int = 0
    sram_ecc_uncorrected: int = 0


class Snapshot(Struct):
    """Everything one source knew at one moment."""

    time: float  # unix seconds when the sample was taken (or replayed)
    source: str  # "neuron-monitor", "host", "replay"
    cores: list[Core] = []
    memory: Memory = field(default_factory=Memory)
    runtimes: list[Runtime] = []
    vcpu_user_ratio: float | None = None  # host-wide average
    vcpu_system_ratio: float | None = None
    vcpu_count: int | None = None
    instance: dict[str, str] = {}  # instance_type, instance_id, region, ...
    hardware: dict[str, Any] = {}  # neuron_device_count, neuroncore_per_device_count, ...
    ecc: list[EccCounters] = []
    errors: list[str] = []  # what could not be read, "<group>: <message>"

    def cores_of(self, kind: str) -> list[Core]:
        return [c for c in self.cores if c.kind == kind]

    def to_json_dict(self) -> dict[str, Any]:
        """The versioned `--once --json` shape (documented in the README)."""
        body = _plain(self)
        body["memory"]["per_core"] = [_plain(m) | {"total": m.total} for m in self.memory.per_core.values()]
        for runtime, raw in zip(body["runtimes"], self.runtimes):
            runtime["errors_total"] = sum(runtime["errors"].values())
            runtime["core_memory"] = [_plain(m) | {"total": m.total} for m in raw.core_memory.values()]
        return {"schema": SCHEMA_VERSION, **body}


def _plain(value: Any) -> Any:
    """`value` with every Struct a dict, every container a copy (what dataclasses.asdict gave)."""
    if isinstance(value, Struct):
        return {name: _plain(item) for name, item in _fields_of(value).items()}
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    return value
