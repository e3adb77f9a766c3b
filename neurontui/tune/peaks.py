"""The device's peak FLOP rate for a precision, and a run's share of it.

GPUs by product name and NeuronCores by instance type come from the shipped datasheet table
(neurontui/data/peaks.json). A CPU's peak is an estimate, labelled so: physical cores x
frequency x fp32 vector lanes x 2 (a fused multiply-add) x 2 FMA units per core, read from
/proc/cpuinfo and cpufreq. A run's peak counts only the units it used (GPUs, NeuronCores, CPUs).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..format import format_flops

CPUINFO = "/proc/cpuinfo"
CPU_MAX_FREQ = "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"  # kHz
FMA_UNITS_PER_CORE = 2  # x86 server cores since Haswell/Zen 2, Arm Neoverse: an assumption, said in the label
FLOPS_PER_FMA = 2
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Device:
    kind: str  # 'gpu' | 'neuron' | 'cpu'
    name: str = ""  # the GPU's product name (NVML), or the Neuron host's instance type
    units: int = 1  # GPUs, NeuronCores or logical CPUs the run used (Ready.cores_used)


@dataclass(frozen=True)
class Peak:
    flops_per_second: float
    label: str  # what the figure is, e.g. 'NVIDIA T4 fp16 dense peak x1 GPU (datasheet)'
    estimate: bool = False

    def share(self, flops_per_second: float) -> float:
        """The one share-of-peak rule: achieved FLOP/s over the peak."""
        return flops_per_second / self.flops_per_second


@lru_cache(maxsize=1)
def _table() -> dict:
    return json.loads(resources.files("neurontui").joinpath("data/peaks.json").read_text(encoding="utf-8"))


def gpu_peak(name: str, precision: str, gpus: int = 1) -> tuple[Peak | None, str]:
    for entry in _table()["gpus"]:
        if re.search(rf"(?<![A-Za-z0-9]){re.escape(entry['match'])}(?![A-Za-z0-9])", name, re.IGNORECASE):
            per_gpu = entry.get(precision)
            if per_gpu is None:
                return None, f"{entry['name']} has no {precision} peak (not supported)"
            return Peak(per_gpu * gpus, f"{entry['name']} {precision} dense peak x{gpus} GPU (datasheet)"), ""
    return None, f"no peak for GPU {name!r} in the table" if name else "GPU name not known"


def neuron_peak(instance_type: str, precision: str, cores: int | None = None) -> tuple[Peak | None, str]:
    table = _table()
    instance = (instance_type or "").strip().lower()
    if instance not in table["neuron_instances"]:
        return None, f"no Neuron peak for instance type {instance!r}" if instance else "instance type not known"
    chip_name, chips = table["neuron_instances"][instance]
    chip = table["neuron_chips"][chip_name]
    runs_as = chip.get("fp32_runs_as", precision) if precision == "fp32" else precision
    used = cores if cores is not None else chips * chip["cores_per_chip"]
    per_core = chip[runs_as] / chip["cores_per_chip"]
    cast = f" (fp32 matrix products run as {runs_as})" if runs_as != precision else ""
    label = f"{chip['name']} {runs_as} dense peak x{used} NeuronCore(s) of {instance}{cast}"
    return Peak(per_core * used, label), ""


@dataclass(frozen=True)
class CpuFacts:
    physical_cores: int
    logical_cpus: int
    ghz: float | None
    flags: frozenset[str]


def read_cpu_facts(cpuinfo: str = CPUINFO, max_freq: str = CPU_MAX_FREQ) -> CpuFacts:
    """Cores, frequency and ISA flags from /proc/cpuinfo (and cpufreq's maximum, when readable)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    cores, mhz, flags, logical = set(), [], frozenset(), 0
    physical = core = None
    for line in text.splitlines() + [""]:
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "processor":
            logical += 1
        elif key == "physical id":
            physical = value
        elif key == "core id":
            core = value
        elif key == "cpu MHz":
            mhz.append(_float(value))
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
        elif not key:  # the blank line that ends one processor's block
            if core is not None:
                cores.add((physical, core))
            physical = core = None
    logical = logical or os.cpu_count() or 1
    ghz = None
    try:
        ghz = int(Path(max_freq).read_text().strip()) / 1e6
    except (OSError, ValueError):
        known = [m for m in mhz if m]
        ghz = max(known) / 1e3 if known else None
    return CpuFacts(len(cores) or logical, logical, ghz, flags)


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _fp32_lanes(flags: frozenset[str]) -> tuple[int, str]:
    if "avx512f" in flags:
        return 16, "AVX-512"
    if "avx2" in flags or "avx" in flags:
        return 8, "AVX2" if "avx2" in flags else "AVX"
    if "asimd" in flags:
        return 4, "NEON"
    return 4, "SSE"


def cpu_peak(precision: str, cpus_used: int | None = None, facts: CpuFacts | None = None) -> tuple[Peak | None, str]:
    """An estimate: cores x GHz x fp32 lanes x 2 (FMA) x 2 FMA units, scaled to the CPUs the run
    used; bf16/fp16 double the lanes only where the ISA has the instructions (avx512_bf16, avx512_fp16)."""
    facts = facts or read_cpu_facts()
    if facts.ghz is None:
        return None, "CPU frequency not known (no cpufreq, no 'cpu MHz' in /proc/cpuinfo)"
    lanes, isa = _fp32_lanes(facts.flags)
    widen = {"bf16": "avx512_bf16", "fp16": "avx512_fp16"}.get(precision)
    if widen and widen in facts.flags:
        lanes, isa = lanes * 2, f"{isa} {widen}"
    used = min(cpus_used or facts.logical_cpus, facts.logical_cpus)
    cores = facts.physical_cores * used / facts.logical_cpus
    flops = cores * facts.ghz * 1e9 * lanes * FLOPS_PER_FMA * FMA_UNITS_PER_CORE
    label = (f"estimate: {cores:g} core(s) x {facts.ghz:.2f} GHz x {lanes} {precision} lanes ({isa}) x 2 (FMA) "
             f"x {FMA_UNITS_PER_CORE} FMA units = {format_flops(flops)}")
    return Peak(flops, label, estimate=True), ""


def peak_flops(device: Device, precision: str) -> tuple[Peak | None, str]:
    if precision not in PRECISIONS:
        return None, f"no peak for precision {precision!r}"
    if device.kind == "gpu":
        return gpu_peak(device.name, precision, device.units)
    if device.kind == "neuron":
        return neuron_peak(device.name, precision, device.units)
    if device.kind == "cpu":
        return cpu_peak(precision, device.units)
    return None, f"no peak for device kind {device.kind!r}"


def share_of_peak(flops_per_sample: int | None, throughput: float | None, device: Device,
                  precision: str) -> tuple[float | None, str]:
    """(achieved FLOP/s / peak FLOP/s, what the peak is), or (None, why not); achieved is the
    FLOPs counted per sample (ready.flops_per_sample) x samples per second."""
    if flops_per_sample is None:
        return None, "FLOPs per sample not counted"
    if throughput is None or not throughput > 0:
        return None, "no throughput"
    return rate_share_of_peak(flops_per_sample * throughput, device, precision)


def rate_share_of_peak(flops_per_second: float, device: Device, precision: str) -> tuple[float | None, str]:
    """A FLOP rate's share of the device's peak: the counted one above, or the FLOP/s that
    neuron-monitor reports for the cores in use (Core.flops summed), to set beside it."""
    peak, reason = peak_flops(device, precision)
    if peak is None:
        return None, reason
    return peak.share(flops_per_second), peak.label
