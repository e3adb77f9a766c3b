"""The tolerant reader of one decoded neuron-monitor report (every generation). Pure: no I/O.

neuron-monitor's output changes between releases and a group can fail on its own
(`"error": "..."`), so nothing here trusts a key, a type or a value: what can be read
is read, what cannot is written to `problems` as "<group>: <message>", and no
exception escapes. Generations (see the reference notes):
- gen-2: runtimes keyed by `neuron_runtime_tag`/`pid`, `execution_stats` (or the older
  `inference_stats`), system `neuron_hw_counters`, `instance_info`, `neuron_hardware_info`;
- gen-1: runtimes keyed by `neuron_runtime_index`, `inference_stats.inference_summary`,
  runtime-level `hw_counters`, `instance_data`.
"""
from __future__ import annotations

import json
import math
from typing import Any, Iterable

from ..telemetry import CORE_MEMORY_PARTS, HOST_MEMORY_PARTS, Core, CoreMemory, EccCounters, Runtime, Snapshot

SOURCE = "neuron-monitor"
GIB = 1 << 30
# What older reports (gen-1 has no neuron_hardware_info) leave out, from the instance type:
# device memory and NeuronCores per chip by family, chips per instance size.
DEVICE_MEMORY_PER_CHIP = {"inf1": 8 * GIB, "inf2": 32 * GIB, "trn1": 32 * GIB, "trn1n": 32 * GIB}
CORES_PER_CHIP = {"inf1": 4, "inf2": 2, "trn1": 2, "trn1n": 2}
CHIPS_PER_INSTANCE = {"inf1.xlarge": 1, "inf1.2xlarge": 1, "inf1.6xlarge": 4, "inf1.24xlarge": 16,
                      "inf2.xlarge": 1, "inf2.8xlarge": 1, "inf2.24xlarge": 6, "inf2.48xlarge": 12,
                      "trn1.2xlarge": 1, "trn1.32xlarge": 16, "trn1n.32xlarge": 16}
ECC_FIELDS = ("mem_ecc_corrected", "mem_ecc_uncorrected", "sram_ecc_corrected", "sram_ecc_uncorrected")
INSTANCE_FIELDS = ("instance_name", "instance_id", "instance_type", "instance_availability_zone",
                   "instance_availability_zone_id", "instance_region", "ami_id", "subnet_id", "ultraserver_id")
HARDWARE_FIELDS = ("neuron_device_count", "neuroncore_per_device_count", "neuron_device_type",
                   "neuron_device_memory_size", "neuroncore_version", "logical_neuroncore_config")
# system vcpu_usage fields that count as busy time, split as AWS's bridge splits them
VCPU_USER_FIELDS = ("user", "nice")
VCPU_SYSTEM_FIELDS = ("system", "io_wait", "irq", "soft_irq")
MAX_REPORTED_CORES = 4096  # a core index above this is garbage, not hardware
FLOAT_MAX = 1e308
COUNT_MAX = 2**63  # counters and byte counts beyond int64 are garbage


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        if "integer string conversion" not in str(exc):
            raise
    # Python refuses integers of over 4300 digits; read them as "too large" rather than lose the report
    return json.loads(text, parse_int=lambda digits: int(digits) if len(digits) < 4000 else math.inf)


class _Parser:
    def __init__(self, when: float) -> None:
        self.snapshot = Snapshot(time=when, source=SOURCE)
        self.errors = self.snapshot.errors
        self.ecc_by_device: dict[int, EccCounters] = {}
        self.tag_counts: dict[str, int] = {}
        self.runtime_keys: set[str] = set()

    # -- helpers ---------------------------------------------------------------------
    def group(self, parent: Any, name: str, where: str) -> dict | None:
        """The group `name` of `parent`, or None (absent, wrong type, or its `error` set)."""
        value = parent.get(name) if isinstance(parent, dict) else None
        if value is None:
            return None
        if not isinstance(value, dict):
            self.errors.append(f"{where}: expected an object, got {type(value).__name__}")
            return None
        error = value.get("error")
        if error:
            self.errors.append(f"{where}: {_short(error)}")
            return None
        return value

    # -- report ----------------------------------------------------------------------
    def parse(self, report: dict) -> Snapshot:
        snap = self.snapshot
        known = ("neuron_runtime_data", "system_data", "instance_info", "instance_data", "neuron_hardware_info")
        if not any(key in report for key in known):
            self.errors.append("report: no neuron-monitor groups in it")
        self.parse_instance(report)
        self.parse_hardware(report)
        runtimes = report.get("neuron_runtime_data")
        if runtimes is not None and not isinstance(runtimes, list):
            self.errors.append(f"neuron_runtime_data: expected a list, got {type(runtimes).__name__}")
            runtimes = None
        counters_complete = True
        for position, entry in enumerate(runtimes or ()):
            runtime, counters_read = self.parse_runtime(entry, position)
            if runtime is not None:
                snap.runtimes.append(runtime)
            counters_complete = counters_complete and counters_read
        self.parse_system(report.get("system_data"))
        self.build_neuroncores(counters_complete)
        return snap

    def parse_instance(self, report: dict) -> None:
        where = "instance_info" if "instance_info" in report else "instance_data"
        info = self.group(report, where, where)
        if info:
            for key in INSTANCE_FIELDS:
                value = info.get(key)
                if isinstance(value, (str, int, float)) and not isinstance(value, bool) and value != "":
                    self.snapshot.instance[key] = str(value)

    def parse_hardware(self, report: dict) -> None:
        info = self.group(report, "neuron_hardware_info", "neuron_hardware_info")
        if info:
            for key in HARDWARE_FIELDS:
                value = info.get(key)
                if isinstance(value, str) or _finite(value) is not None:
                    self.snapshot.hardware[key] = value

    # -- runtimes --------------------------------------------------------------------
    def unique_key(self, tag: str) -> str:
        """"<tag>" for a tag's first runtime, "<tag>#2", "<tag>#3"... after: tags repeat, keys must not."""
        count = self.tag_counts.get(tag, 0) + 1
        key = tag if count == 1 else f"{tag}#{count}"
        while key in self.runtime_keys:  # a tag that itself looks like "x#2"
            count += 1
            key = f"{tag}#{count}"
        self.tag_counts[tag] = count
        self.runtime_keys.add(key)
        return key

    def parse_runtime(self, entry: Any, position: int) -> tuple[Runtime | None, bool]:
        if not isinstance(entry, dict):
            self.errors.append(f"neuron_runtime_data[{position}]: expected an object, got {type(entry).__name__}")
            return None, False
        tag = entry.get("neuron_runtime_tag")
        if tag is None or isinstance(tag, (dict, list)):
            tag = entry.get("neuron_runtime_index", entry.get("pid", position))
        tag = _short(tag, 64)
        key = self.unique_key(tag)
        pid = _count(entry.get("pid"))
        runtime = Runtime(tag=tag, pid=pid, key=key)
        where = f"runtime[{key}]"
        if entry.get("error"):
            self.errors.append(f"{where}: {_short(entry['error'])}")
        report = entry.get("report")
        if not isinstance(report, dict):
            if report is not None:
                self.errors.append(f"{where}.report: expected an object, got {type(report).__name__}")
            return runtime, False
        counters_read = self.runtime_cores(runtime, report, where)
        stats_name = "execution_stats" if "execution_stats" in report else "inference_stats"
        self.runtime_stats(runtime, self.group(report, stats_name, f"{where}.{stats_name}"), where)
        self.runtime_memory(runtime, self.group(report, "memory_used", f"{where}.memory_used"))
        self.runtime_vcpu(runtime, self.group(report, "neuron_runtime_vcpu_usage", f"{where}.neuron_runtime_vcpu_usage"))
        hw = self.group(report, "hw_counters", f"{where}.hw_counters")  # gen-1 keeps ECC per runtime
        if hw:
            self.parse_ecc(hw.get("neuron_devices"))
        return runtime, counters_read

    def runtime_cores(self, runtime: Runtime, report: dict, where: str) -> bool:
        counters = self.group(report, "neuroncore_counters", f"{where}.neuroncore_counters")
        if counters is None:
            return "neuroncore_counters" not in report  # absent from the config is complete; an error is not
        runtime.period_seconds = _finite(counters.get("period"))
        in_use = counters.get("neuroncores_in_use")
        if not isinstance(in_use, dict):
            if in_use is not None:
                self.errors.append(f"{where}.neuroncores_in_use: expected an object")
            return in_use is None
        for name, core in in_use.items():
            index = _core_index(name)
            if index is None or not isinstance(core, dict) or index in runtime.cores:
                self.errors.append(f"{where}.neuroncores_in_use: unreadable core {_short(name, 20)!r}")
                continue
            runtime.cores.append(index)
            percent = _finite(core.get("neuroncore_utilization"))
            if percent is not None:
                runtime.core_utilization[index] = _ratio(percent)
            flops = _finite(core.get("flops"))
            if flops is not None and flops >= 0:
                runtime.core_flops[index] = flops
            _add_names(runtime.loaded_models, core.get("loaded_models"))
        runtime.cores.sort()
        return True

    def runtime_stats(self, runtime: Runtime, stats: dict | None, where: str) -> None:
        if stats is None:
            return
        if runtime.period_seconds is None:
            runtime.period_seconds = _finite(stats.get("period"))
        summary = stats.get("execution_summary", stats.get("inference_summary"))
        runtime.status = _counts(summary)
        runtime.completed = runtime.status.get("completed", 0)
        runtime.errors = _counts(stats.get("error_summary"))
        latency = stats.get("latency_stats")
        if isinstance(latency, dict):
            runtime.latency_seconds = _percentiles(latency.get("total_latency"))
            runtime.device_latency_seconds = _percentiles(latency.get("device_latency"))
        elif latency is not None:
            self.errors.append(f"{where}.latency_stats: expected an object")

    def runtime_memory(self, runtime: Runtime, memory: dict | None) -> None:
        if memory is None:
            return
        used = memory.get("neuron_runtime_used_bytes")
        if isinstance(used, dict):
            runtime.host_memory_bytes = _count(used.get("host"))
            runtime.device_memory_bytes = _count(used.get("neuron_device"))
            breakdown = used.get("usage_breakdown")
            if isinstance(breakdown, dict):
                per_core = breakdown.get("neuroncore_memory_usage")
                for name, parts in (per_core.items() if isinstance(per_core, dict) else ()):
                    index = _core_index(name)
                    if index is not None and isinstance(parts, dict):
                        runtime.core_memory[index] = CoreMemory(index, **{p: _count(parts.get(p)) or 0
                                                                          for p in CORE_MEMORY_PARTS})
                host = breakdown.get("host")
                if isinstance(host, dict):
                    for part in HOST_MEMORY_PARTS:
                        value = _count(host.get(part))
                        if value is not None:
                            host_parts = self.snapshot.memory.host_breakdown
                            host_parts[part] = host_parts.get(part, 0) + value
        models = memory.get("loaded_models")
        for model in models if isinstance(models, list) else ():
            if isinstance(model, dict):
                _add_names(runtime.loaded_models, [model.get("name")])

    def runtime_vcpu(self, runtime: Runtime, usage: dict | None) -> None:
        vcpu = usage.get("vcpu_usage") if usage else None
        if isinstance(vcpu, dict):
            user, system = _finite(vcpu.get("user")), _finite(vcpu.get("system"))
            runtime.vcpu_user_ratio = None if user is None else _ratio(user, clamp=False)
            runtime.vcpu_system_ratio = None if system is None else _ratio(system, clamp=False)

    # -- system ----------------------------------------------------------------------
    def parse_system(self, system: Any) -> None:
        if system is None:
            return
        if not isinstance(system, dict):
            self.errors.append(f"system_data: expected an object, got {type(system).__name__}")
            return
        snap = self.snapshot
        memory = self.group(system, "memory_info", "system_data.memory_info")
        if memory:
            snap.memory.host_total_bytes = _count(memory.get("memory_total_bytes"))
            snap.memory.host_used_bytes = _count(memory.get("memory_used_bytes"))
            snap.memory.swap_total_bytes = _count(memory.get("swap_total_bytes"))
            snap.memory.swap_used_bytes = _count(memory.get("swap_used_bytes"))
        vcpu = self.group(system, "vcpu_usage", "system_data.vcpu_usage")
        if vcpu:
            self.parse_vcpus(vcpu)
        hw = self.group(system, "neuron_hw_counters", "system_data.neuron_hw_counters")
        if hw:
            self.parse_ecc(hw.get("neuron_devices"))

    def parse_vcpus(self, vcpu: dict) -> None:
        snap = self.snapshot
        average = vcpu.get("average_usage")
        if isinstance(average, dict):
            snap.vcpu_user_ratio = _busy(average, VCPU_USER_FIELDS)
            snap.vcpu_system_ratio = _busy(average, VCPU_SYSTEM_FIELDS)
        usage = vcpu.get("usage_data")
        if isinstance(usage, dict):
            cores = []
            for name, fields in usage.items():
                index = _core_index(name)
                if index is not None and isinstance(fields, dict):
                    cores.append(Core("vcpu", index, utilization=_vcpu_busy(fields)))
            cores.sort(key=lambda core: core.index)
            snap.cores.extend(cores)
            snap.vcpu_count = len(cores)

    def parse_ecc(self, devices: Any) -> None:
        # `"neuron_devices": null` is a host (or container) without a device: nothing to read
        for device in devices if isinstance(devices, list) else ():
            index = _count(device.get("neuron_device_index")) if isinstance(device, dict) else None
            if index is None:
                continue
            existing = self.ecc_by_device.get(index)
            if existing is None:
                existing = self.ecc_by_device[index] = EccCounters(index)
                self.snapshot.ecc.append(existing)
            for name in ECC_FIELDS:
                value = _count(device.get(name))
                if value is not None:  # gen-1 lists the same device once per runtime: keep the largest
                    setattr(existing, name, max(getattr(existing, name), value))

    # -- the "all" view --------------------------------------------------------------
    def build_neuroncores(self, counters_complete: bool) -> None:
        """One Core per NeuronCore, summed over runtimes (processes never share a core)."""
        snap = self.snapshot
        utilization: dict[int, float] = {}
        flops: dict[int, float] = {}
        device_used = None
        for runtime in snap.runtimes:
            for index, ratio in runtime.core_utilization.items():
                utilization[index] = utilization.get(index, 0.0) + ratio
            for index, value in runtime.core_flops.items():
                flops[index] = flops.get(index, 0.0) + value
            if runtime.device_memory_bytes is not None:
                device_used = (device_used or 0) + runtime.device_memory_bytes
        per_core, totals = self.core_memory_sums()
        snap.memory.per_core = per_core
        snap.memory.device_used_bytes = device_used
        snap.memory.device_total_bytes = self.device_total()
        indices = set(utilization) | set(per_core)
        for runtime in snap.runtimes:
            indices.update(runtime.cores)
        hardware_cores = self.hardware_core_count()
        if hardware_cores:
            indices.update(range(hardware_cores))
        # neuron-monitor reports only cores a runtime holds; a core nobody holds is idle,
        # unless some runtime's counters were unreadable (then we do not know).
        idle = 0.0 if counters_complete else None
        get_utilization, get_flops, get_total = utilization.get, flops.get, totals.get
        snap.cores[:0] = [  # NeuronCores first, then vCPUs
            Core("neuroncore", index, idle if (share := get_utilization(index)) is None else min(share, 1.0), None,
                 get_flops(index), get_total(index))
            for index in sorted(indices)]

    def core_memory_sums(self) -> tuple[dict[int, CoreMemory], dict[int, int]]:
        """Each NeuronCore's device memory summed over the runtimes, and its total in bytes."""
        return sum_core_memories([runtime.core_memory for runtime in self.snapshot.runtimes])

    def hardware_core_count(self) -> int | None:
        instance_type = self.snapshot.instance.get("instance_type", "")
        devices = _count(self.snapshot.hardware.get("neuron_device_count")) or CHIPS_PER_INSTANCE.get(instance_type)
        per_device = (_count(self.snapshot.hardware.get("neuroncore_per_device_count"))
                      or CORES_PER_CHIP.get(instance_type.split(".")[0]))
        if devices and per_device and devices * per_device <= MAX_REPORTED_CORES:
            return devices * per_device
        return None

    def device_total(self) -> int | None:
        instance_type = self.snapshot.instance.get("instance_type", "")
        devices = _count(self.snapshot.hardware.get("neuron_device_count")) or CHIPS_PER_INSTANCE.get(instance_type)
        size = (_count(self.snapshot.hardware.get("neuron_device_memory_size"))
                or DEVICE_MEMORY_PER_CHIP.get(instance_type.split(".")[0]))
        return devices * size if devices and size else None


def sum_core_memories(per_runtime: list[dict[int, CoreMemory]]) -> tuple[dict[int, CoreMemory], dict[int, int]]:
    """The runtimes' device memory per NeuronCore, added up, and each core's total in bytes."""
    per_core: dict[int, CoreMemory] = {}
    for memories in per_runtime:
        for index, parts in memories.items():
            # a core one runtime holds shares its (never mutated) CoreMemory; more make a new sum
            total = per_core.get(index)
            per_core[index] = parts if total is None else CoreMemory(
                index, total.constants + parts.constants, total.model_code + parts.model_code,
                total.model_shared_scratchpad + parts.model_shared_scratchpad,
                total.runtime_memory + parts.runtime_memory, total.tensors + parts.tensors)
    return per_core, {index: memory.total for index, memory in per_core.items()}


# -- value readers: wrong types, NaN and Infinity read as "not known" --------------------
# Exact type checks (bool is an int subclass and is no number here); they are also the
# fast path: these run about a thousand times per trn1 report.
def _finite(value: Any) -> float | None:
    kind = type(value)
    if kind is float:
        return value if value - value == 0.0 else None  # NaN and ±Infinity give NaN
    if kind is int:
        return float(value) if -FLOAT_MAX < value < FLOAT_MAX else None
    return None


def _count(value: Any) -> int | None:
    kind = type(value)
    if kind is int:
        return value if 0 <= value < COUNT_MAX else None
    if kind is float:
        return int(value) if 0.0 <= value < COUNT_MAX else None  # NaN compares False
    return None


def _ratio(percent: float, clamp: bool = True) -> float:
    ratio = percent / 100.0  # comparisons, not max()/min(): this runs for every core of every report
    if ratio < 0.0:
        return 0.0
    return 1.0 if clamp and ratio > 1.0 else ratio


def _counts(block: Any) -> dict[str, int]:
    if not isinstance(block, dict):
        return {}
    return {str(name): count for name, value in block.items() if (count := _count(value)) is not None}


def _percentiles(block: Any) -> dict[str, float]:
    if not isinstance(block, dict):  # null when nothing ran in the period
        return {}
    return {str(name): seconds for name, value in block.items()
            if (seconds := _finite(value)) is not None and seconds >= 0}


def _busy(fields: dict, names: tuple[str, ...]) -> float | None:
    values = [v for name in names if (v := _finite(fields.get(name))) is not None]
    return _ratio(sum(values)) if values else None


def _vcpu_busy(fields: dict) -> float | None:
    # the fields add up to 100, so busy = 100 - idle (one lookup for each of 128+ vCPUs)
    idle = _finite(fields.get("idle"))
    if idle is not None:
        return _busy_of_idle(idle)
    return _busy(fields, VCPU_USER_FIELDS + VCPU_SYSTEM_FIELDS)


def _busy_of_idle(idle: float) -> float:
    return _ratio(100.0 - idle)


def _busy_of_idles(idles: Iterable[float]) -> list[float]:
    """What _busy_of_idle(idle) gives for each, in one comprehension: a host has 128 vCPUs and
    more, and a call per value costs more than its arithmetic (the typed path uses this, the
    tolerant one _busy_of_idle, and tests/test_neuron_typed.py checks that their snapshots agree)."""
    return [0.0 if (busy := (100.0 - idle) / 100.0) < 0.0 else 1.0 if busy > 1.0 else busy for idle in idles]


_INDEX_OF = {str(index): index for index in range(MAX_REPORTED_CORES + 1)}  # the common case, one lookup


def _core_index(name: Any) -> int | None:
    if type(name) is str and name in _INDEX_OF:
        return _INDEX_OF[name]
    try:
        index = int(name)
    except (TypeError, ValueError, OverflowError):
        return None
    return index if 0 <= index <= MAX_REPORTED_CORES else None


def _add_names(into: list[str], names: Any) -> None:
    for name in names if isinstance(names, list) else ():
        if isinstance(name, str) and name and name not in into:
            into.append(name)


def _short(value: Any, limit: int = 200) -> str:
    try:
        text = value if isinstance(value, str) else str(value)
    except (ValueError, RecursionError):  # a 5000-digit integer, a deeply nested list
        text = f"<unprintable {type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"
