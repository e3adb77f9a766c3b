"""A typed fast path for gen-2 neuron-monitor reports: one line -> the same Snapshot, cheaper.

msgspec decodes the line straight into the structures below, in C, skipping every key they
do not name. The structures are strict where the tolerant parser (neuron_parser._Parser)
would transform or complain: a value of another type, a negative byte count, a group with
an error, a gen-1 report or anything this module does not handle makes `decode_report`
return None, and the caller falls back to the tolerant parser. So this path only ever
answers for a report the tolerant parser reads cleanly, and then with an equal Snapshot
(tests/test_neuron_typed.py checks that on every fixture and on mutated reports).

Where a figure has a rule, the rule is the tolerant parser's: its value readers
(_finite, _count, _ratio...), its group readers for the small groups (decoded here as
plain dicts), and its `build_neuroncores` for the all-cores view.
"""
from __future__ import annotations

from functools import lru_cache
from itertools import repeat
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from ..telemetry import HOST_MEMORY_PARTS, Core, CoreMemory, EccCounters, Runtime, Snapshot
from .neuron_parser import (FLOAT_MAX, INSTANCE_FIELDS, MAX_REPORTED_CORES, _add_names, _busy_of_idles, _count,
                            _Parser, _ratio, _short, sum_core_memories)

# What _count() passes through unchanged; anything else (negative, fractional, null) falls back.
Count = Annotated[int, Meta(ge=0, le=2**63 - 1)]
# A float that _finite() would pass unchanged: an integer literal becomes the float _finite() makes
# of it, and what _finite() reads as unknown (beyond 1e308) is refused.
Finite = Annotated[float, Meta(gt=-FLOAT_MAX, lt=FLOAT_MAX)]
# A core's name as _core_index() reads it: msgspec takes only plain digits ("7", never "07" or
# " 7") in range, so a name it takes is the index _core_index() gives, and two names never
# give one index (the tolerant parser reports such a core).
CoreIndex = Annotated[int, Meta(ge=0, le=MAX_REPORTED_CORES)]
PLAIN_INT = 2**63  # a larger integer is stringified differently by the two paths: fall back
Group = dict[str, Any]  # a small group, read by the tolerant parser's own method


class _Unhandled(Exception):
    """The report needs the tolerant parser (an error to report, a shape not handled here)."""


class _Typed(Struct, forbid_unknown_fields=False, gc=False):
    """Unknown keys are skipped; decoded JSON holds no cycles, so the collector need not track these."""


class CoreCounters(_Typed):
    neuroncore_utilization: Finite | None = None
    flops: Finite | None = None
    loaded_models: Any = None


class NeuroncoreCounters(_Typed):
    error: Any = None
    period: Finite | None = None
    neuroncores_in_use: dict[CoreIndex, CoreCounters] | None = None


class CoreMemoryParts(_Typed):
    constants: Count = 0
    model_code: Count = 0
    model_shared_scratchpad: Count = 0
    runtime_memory: Count = 0
    tensors: Count = 0


class UsageBreakdown(_Typed):
    host: Any = None
    # left undecoded here: its bytes key the cache of what they decode to (_core_memories)
    neuroncore_memory_usage: msgspec.Raw = msgspec.Raw()


class RuntimeUsedBytes(_Typed):
    host: Any = None
    neuron_device: Any = None
    usage_breakdown: UsageBreakdown | None = None


class LoadedModel(_Typed):
    name: Any = None  # the rest (subgraphs, each with its memory breakdown) is skipped, not decoded


class MemoryUsed(_Typed):
    error: Any = None
    neuron_runtime_used_bytes: RuntimeUsedBytes | None = None
    loaded_models: list[LoadedModel] | None = None  # another type (the tolerant parser ignores it) falls back


class RuntimeReport(_Typed):
    neuroncore_counters: NeuroncoreCounters | None | UnsetType = UNSET
    memory_used: MemoryUsed | None = None
    execution_stats: Any = UNSET
    inference_stats: Any = UNSET  # gen-1
    neuron_runtime_vcpu_usage: Any = UNSET
    hw_counters: Any = UNSET  # gen-1


class RuntimeEntry(_Typed):
    neuron_runtime_tag: Any = None
    pid: Any = None
    error: Any = None
    report: RuntimeReport | None = None


class VcpuIdle(_Typed):
    idle: Finite  # required: without it the busy share comes from the other fields (tolerant path)


class VcpuUsage(_Typed):
    error: Any = None
    average_usage: Any = UNSET
    usage_data: dict[CoreIndex, VcpuIdle] | None = None


class EccDevice(_Typed):
    neuron_device_index: Count | None = None
    mem_ecc_corrected: Count | None = None
    mem_ecc_uncorrected: Count | None = None
    sram_ecc_corrected: Count | None = None
    sram_ecc_uncorrected: Count | None = None


class HwCounters(_Typed):
    error: Any = None
    neuron_devices: msgspec.Raw = msgspec.Raw()  # decoded by _ecc_counters, once per change


class SystemData(_Typed):
    memory_info: Any = UNSET
    vcpu_usage: VcpuUsage | None = None
    neuron_hw_counters: HwCounters | None = None


class Report(_Typed):
    neuron_runtime_data: list[RuntimeEntry] | None | UnsetType = UNSET
    system_data: SystemData | None | UnsetType = UNSET
    instance_info: Group | None | UnsetType = UNSET
    neuron_hardware_info: Group | None | UnsetType = UNSET
    instance_data: Any = UNSET  # gen-1


_DECODER = msgspec.json.Decoder(Report)
_CORE_MEMORY_DECODER = msgspec.json.Decoder(dict[CoreIndex, CoreMemoryParts] | None)
_ECC_DECODER = msgspec.json.Decoder(list[EccDevice] | None)
CORE_MEMORY_CACHE_SIZE = 64  # a runtime's breakdown: one entry per runtime and layout, a few KB each
ECC_CACHE_SIZE = 8  # one host's devices: an entry per change of their counts


def decode_report(line: str | bytes, when: float) -> Snapshot | None:
    """The Snapshot of one gen-2 report line, or None when the tolerant parser must read it."""
    try:
        report = _DECODER.decode(line)
        return _Converter(when).convert(report)
    except (msgspec.DecodeError, RecursionError, _Unhandled):  # ValidationError is a DecodeError
        return None


def _view(**groups: Any) -> dict[str, Any]:
    """A dict of the groups present, for the tolerant parser's readers (absent != null there)."""
    return {name: value for name, value in groups.items() if value is not UNSET}


def _no_error(group: Any) -> None:
    if group.error:  # the tolerant parser words the error and drops the group
        raise _Unhandled


def _plain(group: Any) -> Any:
    """A small group as the tolerant parser reads it, unless its type or error would be worded:
    an integer of thousands of digits is `inf` there (json.loads) and an int here."""
    if group is UNSET or group is None:
        return group
    if type(group) is not dict:
        raise _Unhandled
    error = group.get("error")
    if error and type(error) is not str:
        raise _Unhandled
    return group


@lru_cache(maxsize=CORE_MEMORY_CACHE_SIZE)
def _core_memories(raw: bytes) -> dict[int, CoreMemory]:
    """A runtime's device memory per core from its breakdown's JSON (never mutate the dict).

    The breakdown changes when a model is loaded or a buffer allocated, not from one period to
    the next: in a steady run each report repeats the last one's bytes, and the 32 to 128
    CoreMemory of each runtime are built once, not once a report."""
    try:
        per_core = _CORE_MEMORY_DECODER.decode(raw)
    except msgspec.DecodeError:  # a part of another type: the tolerant parser words it
        raise _Unhandled from None
    return {index: CoreMemory(index, parts.constants, parts.model_code, parts.model_shared_scratchpad,
                              parts.runtime_memory, parts.tensors)
            for index, parts in (per_core or {}).items()}


@lru_cache(maxsize=ECC_CACHE_SIZE)
def _ecc_counters(raw: bytes) -> tuple[EccCounters, ...]:
    """Each device's ECC counts from the report's `neuron_devices` JSON. The counts move when a
    memory error is corrected, not every period: a report mostly repeats the last one's bytes."""
    try:
        devices = _ECC_DECODER.decode(raw) or ()
    except msgspec.DecodeError:  # a count of another type: the tolerant parser words it
        raise _Unhandled from None
    counters: dict[int, EccCounters] = {}
    for device in devices:
        index = device.neuron_device_index
        if index is None:
            continue  # nobody's counts (the tolerant parser skips it too)
        if index in counters:  # listed twice: the tolerant parser keeps the largest counts
            raise _Unhandled
        counters[index] = EccCounters(index, device.mem_ecc_corrected or 0, device.mem_ecc_uncorrected or 0,
                                      device.sram_ecc_corrected or 0, device.sram_ecc_uncorrected or 0)
    return tuple(counters.values())


@lru_cache(maxsize=CORE_MEMORY_CACHE_SIZE)
def _summed_core_memories(breakdowns: tuple[bytes, ...]) -> tuple[dict[int, CoreMemory], dict[int, int]]:
    """sum_core_memories of the runtimes' breakdowns (their JSON, b"" for none), once per change
    of any of them (never mutate the dicts)."""
    return sum_core_memories([_core_memories(raw) if raw else {} for raw in breakdowns])


class _Converter(_Parser):
    def __init__(self, when: float) -> None:
        super().__init__(when)
        self.breakdowns: list[bytes] = []  # each runtime's neuroncore_memory_usage JSON, in order

    def convert(self, report: Report) -> Snapshot:
        if (report.instance_data is not UNSET
                or (report.neuron_runtime_data is UNSET and report.system_data is UNSET
                    and report.instance_info is UNSET and report.neuron_hardware_info is UNSET)):
            raise _Unhandled
        if report.instance_info:
            for key in INSTANCE_FIELDS:  # str() of a huge integer differs between the paths
                value = report.instance_info.get(key)
                if type(value) is int and not -PLAIN_INT < value < PLAIN_INT:
                    raise _Unhandled
        self.parse_instance(_view(instance_info=_plain(report.instance_info)))
        self.parse_hardware(_view(neuron_hardware_info=_plain(report.neuron_hardware_info)))
        counters_complete = True
        for entry in report.neuron_runtime_data or ():
            runtime, counters_read = self.typed_runtime(entry)
            self.snapshot.runtimes.append(runtime)
            counters_complete = counters_complete and counters_read
        if report.system_data:
            self.typed_system(report.system_data)
        self.build_neuroncores(counters_complete)
        return self.snapshot

    def typed_runtime(self, entry: RuntimeEntry) -> tuple[Runtime, bool]:
        tag = entry.neuron_runtime_tag
        if type(tag) is not str or entry.error:
            raise _Unhandled
        tag = _short(tag, 64)
        key = self.unique_key(tag)
        runtime = Runtime(tag=tag, pid=_count(entry.pid), key=key)
        report = entry.report
        if report is None:
            self.breakdowns.append(b"")
            return runtime, False
        if report.inference_stats is not UNSET or report.hw_counters is not UNSET:
            raise _Unhandled
        where = f"runtime[{key}]"
        counters_read = self.typed_cores(runtime, report.neuroncore_counters)
        if report.execution_stats is not UNSET:
            stats = self.group(_view(execution_stats=_plain(report.execution_stats)), "execution_stats",
                               f"{where}.execution_stats")
            self.runtime_stats(runtime, stats, where)
        used = report.memory_used
        self.breakdowns.append(self.typed_memory(runtime, used) if used is not None else b"")
        usage = _view(neuron_runtime_vcpu_usage=_plain(report.neuron_runtime_vcpu_usage))
        self.runtime_vcpu(runtime, self.group(usage, "neuron_runtime_vcpu_usage", f"{where}.neuron_runtime_vcpu_usage"))
        return runtime, counters_read

    def typed_cores(self, runtime: Runtime, counters: NeuroncoreCounters | None | UnsetType) -> bool:
        if counters is UNSET:
            return True  # absent from the config is complete; null is not
        if counters is None:
            return False
        _no_error(counters)
        runtime.period_seconds = counters.period
        in_use = counters.neuroncores_in_use
        if in_use is None:
            return True
        runtime.cores = sorted(in_use)
        utilization, flops = runtime.core_utilization, runtime.core_flops
        for index, core in in_use.items():
            if core.neuroncore_utilization is not None:
                utilization[index] = _ratio(core.neuroncore_utilization)
            if core.flops is not None and core.flops >= 0:
                flops[index] = core.flops
            if core.loaded_models is not None:
                _add_names(runtime.loaded_models, core.loaded_models)
        return True

    def typed_memory(self, runtime: Runtime, memory: MemoryUsed) -> bytes:
        """Reads the group; returns the JSON of its per-core breakdown (b"" without one)."""
        _no_error(memory)
        raw = b""
        used = memory.neuron_runtime_used_bytes
        if used is not None:
            runtime.host_memory_bytes = _count(used.host)
            runtime.device_memory_bytes = _count(used.neuron_device)
            breakdown = used.usage_breakdown
            if breakdown is not None:
                if breakdown.neuroncore_memory_usage:
                    raw = bytes(breakdown.neuroncore_memory_usage)
                    runtime.core_memory = dict(_core_memories(raw))
                host = breakdown.host
                if isinstance(host, dict):
                    host_parts = self.snapshot.memory.host_breakdown
                    for part in HOST_MEMORY_PARTS:
                        value = _count(host.get(part))
                        if value is not None:
                            host_parts[part] = host_parts.get(part, 0) + value
        if memory.loaded_models:
            _add_names(runtime.loaded_models, [model.name for model in memory.loaded_models])
        return raw

    def core_memory_sums(self) -> tuple[dict[int, CoreMemory], dict[int, int]]:
        per_core, totals = _summed_core_memories(tuple(self.breakdowns))
        return dict(per_core), totals

    def typed_system(self, system: SystemData) -> None:
        # memory through the tolerant reader; the vCPUs, 128 and more, typed; the ECC devices once per change
        self.parse_system(_view(memory_info=_plain(system.memory_info)))
        vcpu = system.vcpu_usage
        if vcpu is not None:
            _no_error(vcpu)
            snap = self.snapshot
            if vcpu.average_usage is not UNSET:
                self.parse_vcpus({"average_usage": vcpu.average_usage})
            usage = vcpu.usage_data
            if usage is not None:
                indices = list(usage)
                if indices != sorted(indices):  # listed out of order: sorted, as the tolerant parser does
                    usage = dict(sorted(usage.items()))  # the indices differ: no Struct is compared
                    indices = list(usage)
                busy = _busy_of_idles([fields.idle for fields in usage.values()])
                snap.cores.extend(map(Core, repeat("vcpu"), indices, busy))  # the loop in C
                snap.vcpu_count = len(indices)
        counters = system.neuron_hw_counters
        if counters is not None:
            _no_error(counters)
            if counters.neuron_devices:
                self.snapshot.ecc = list(_ecc_counters(bytes(counters.neuron_devices)))
