"""Joules over a measured step, where the hardware says it; None and the reason where it does not.

- CPU: Linux RAPL, /sys/class/powercap/<zone>/energy_uj of the top-level zones (the packages;
  DRAM subzones are not added). The counters wrap at max_energy_range_uj; `sample()` between
  `start()` and `stop()` keeps a long step from wrapping twice unseen.
- NVIDIA GPU: NVML's total-energy counter (nvmlDeviceGetTotalEnergyConsumption, Volta and later);
  where it is not supported, power x time from nvmlDeviceGetPowerUsage at each `sample()`.
- Neuron: only from a power figure the telemetry reports (`PowerSamplesMeter`); neuron-monitor's
  groups carry none today, so the reading is None with that reason.
Both counters cover the whole device (other processes included); the label says so. Never an
invented figure: anything unreadable gives None and one line saying why.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

POWERCAP_ROOT = "/sys/class/powercap"
# intel-rapl:0, not intel-rapl:0:0 (a part of it) nor intel-rapl-mmio:0 (the same package again)
_TOP_LEVEL_ZONE = re.compile(r"^[a-z-]*rapl:\d+$")
NEURON_NO_POWER = "neuron-monitor reports no power for NeuronCores, so energy is not measured"


@dataclass(frozen=True)
class EnergyReading:
    joules: float | None
    source: str = ""  # what measured it, e.g. 'RAPL package-0 (whole CPU package)'
    reason: str = ""  # why joules is None

    def per_inference(self, completed: int) -> float | None:
        """Joules per sample over the same step; None when either is unknown."""
        return self.joules / completed if self.joules is not None and completed > 0 else None


class Unavailable:
    """A meter for hardware that does not say its energy: stop() says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def start(self) -> None:
        pass

    def sample(self) -> None:
        pass

    def stop(self) -> EnergyReading:
        return EnergyReading(None, reason=self.reason)


class RaplMeter:
    """Sums the top-level RAPL zones' energy counters, wrap-around handled."""

    def __init__(self, root: str = POWERCAP_ROOT) -> None:
        self.root = Path(root)
        self.problem = ""
        self.source = "RAPL"
        self.zones: list[tuple[str, Path, int | None]] = []  # (name, energy_uj path, wrap range)
        self._last: list[int] = []
        self._joules = 0.0
        try:
            candidates = sorted(p for p in self.root.iterdir() if _TOP_LEVEL_ZONE.match(p.name))
        except OSError as exc:
            self.problem = f"no RAPL counters: {self.root}: {exc.strerror or exc}"
            return
        named = [(_read_text(p / "name") or p.name, p) for p in candidates]
        # psys covers the whole platform, packages included: add it only when it is all there is.
        packages = [(n, p) for n, p in named if n != "psys"] or named
        for name, path in packages:
            self.zones.append((name, path / "energy_uj", _read_int(path / "max_energy_range_uj")))
        if not self.zones:
            self.problem = f"no RAPL zones under {self.root}"
        scope = "whole platform" if [n for n, _ in packages] == ["psys"] else "whole CPU package"
        self.source = "RAPL " + ", ".join(name for name, _, _ in self.zones) + f" ({scope})"

    def _read_all(self) -> list[int] | None:
        values = []
        for _, path, _ in self.zones:
            try:
                values.append(int(path.read_text().strip()))
            except (OSError, ValueError) as exc:
                detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                hint = " (RAPL counters are readable by root only on most kernels)" if isinstance(
                    exc, PermissionError) else ""
                self.problem = f"cannot read {path}: {detail}{hint}"
                return None
        return values

    def start(self) -> None:
        if self.problem:
            return
        self._joules = 0.0
        self._last = self._read_all() or []

    def sample(self) -> None:
        if self.problem or not self._last:
            return
        values = self._read_all()
        if values is None:
            return
        for (_, path, wrap), before, now in zip(self.zones, self._last, values):
            if now < before:
                if wrap is None:
                    self.problem = f"{path} wrapped and its max_energy_range_uj cannot be read"
                    return
                now += wrap
            self._joules += (now - before) / 1e6
        self._last = values

    def stop(self) -> EnergyReading:
        self.sample()
        if self.problem:
            return EnergyReading(None, reason=self.problem)
        if not self._last:
            return EnergyReading(None, reason="the energy meter was not started")
        return EnergyReading(self._joules, self.source)


class PowerSamplesMeter:
    """Energy as power x time: the trapezoid over the watts read at start, each sample() and stop."""

    def __init__(self, read_watts: Callable[[], float | None], source: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.read_watts = read_watts
        self.source = source
        self.clock = clock
        self.problem = ""
        self._last: tuple[float, float] | None = None
        self._joules = 0.0
        self._samples = 0

    def _read(self) -> None:
        watts, now = self.read_watts(), self.clock()
        if watts is None:
            self.problem = f"{self.source}: no power reading"
            return
        if self._last is not None:
            then, before = self._last
            self._joules += (watts + before) / 2 * (now - then)
        self._last = (now, watts)
        self._samples += 1

    def start(self) -> None:
        self._last, self._joules, self._samples, self.problem = None, 0.0, 0, ""
        self._read()

    def sample(self) -> None:
        if not self.problem:
            self._read()

    def stop(self) -> EnergyReading:
        self.sample()
        if self.problem:
            return EnergyReading(None, reason=self.problem)
        return EnergyReading(self._joules, f"{self.source}, power x time over {self._samples} readings")


class NvmlMeter:
    """NVML's total-energy counter over the GPUs given (all by default); power x time where the
    counter is not supported. `nvml` is the pynvml module (nvidia-ml-py), imported when not given;
    NVML stays initialised for the meter's life (its init is reference-counted)."""

    def __init__(self, indices: list[int] | None = None, nvml: Any = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.problem = ""
        self._inner: PowerSamplesMeter | None = None
        self._start: list[int] = []
        if nvml is None:
            try:
                import pynvml as nvml
            except ImportError:
                self.problem = "NVML is not available (nvidia-ml-py is not installed)"
                return
        self.nvml = nvml
        try:
            nvml.nvmlInit()
            count = nvml.nvmlDeviceGetCount()
            chosen = list(range(count)) if indices is None else indices
            self.handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in chosen]
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded...: no usable GPU
            self.problem = f"NVML: {exc}"
            return
        if not self.handles:
            self.problem = "NVML sees no GPU"
            return
        self.source = f"NVML total energy of {len(self.handles)} GPU(s) (whole device)"
        try:
            self._read_counters()
        except nvml.NVMLError:
            self._inner = PowerSamplesMeter(self._watts, f"NVML power of {len(self.handles)} GPU(s)", clock)

    def _read_counters(self) -> list[int]:
        return [self.nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self.handles]  # millijoules

    def _watts(self) -> float | None:
        try:
            return sum(self.nvml.nvmlDeviceGetPowerUsage(h) for h in self.handles) / 1000.0  # milliwatts
        except self.nvml.NVMLError:
            return None

    def start(self) -> None:
        if self.problem:
            return
        if self._inner:
            self._inner.start()
            return
        try:
            self._start = self._read_counters()
        except self.nvml.NVMLError as exc:
            self.problem = f"NVML: {exc}"

    def sample(self) -> None:
        if self._inner and not self.problem:
            self._inner.sample()

    def stop(self) -> EnergyReading:
        if self.problem:
            return EnergyReading(None, reason=self.problem)
        if self._inner:
            return self._inner.stop()
        if not self._start:
            return EnergyReading(None, reason="the energy meter was not started")
        try:
            now = self._read_counters()
        except self.nvml.NVMLError as exc:
            return EnergyReading(None, reason=f"NVML: {exc}")
        return EnergyReading(sum(b - a for a, b in zip(self._start, now)) / 1000.0, self.source)


def meter_for(backend: str, neuron_watts: Callable[[], float | None] | None = None,
              gpu_indices: list[int] | None = None) -> Unavailable | RaplMeter | NvmlMeter | PowerSamplesMeter:
    """The meter for the backend a run resolved to ('cpu', 'cuda', 'neuron')."""
    if backend == "cuda":
        return NvmlMeter(gpu_indices)
    if backend == "neuron":
        return PowerSamplesMeter(neuron_watts, "neuron-monitor power") if neuron_watts else Unavailable(NEURON_NO_POWER)
    return RaplMeter()


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _read_int(path: Path) -> int | None:
    text = _read_text(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
