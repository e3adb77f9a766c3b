"""A running workload's cost and share of the device's peak: the tune's rules (cost.py,
peaks.py) applied to the live throughput, for the TUI's workload panel and the tune's steps.

Peaks and prices are looked up once per device and instance type (reading /proc/cpuinfo and the
price table every second would cost more than the figures are worth).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from workloads.rules import effective_backend

from ..store import WorkloadState
from ..telemetry import Snapshot
from .cost import Price, dollars_per_million, resolve_price
from .peaks import Device, Peak, peak_flops

DEVICE_KIND = {"cpu": "cpu", "cuda": "gpu", "neuron": "neuron"}


def run_device(backend: str, ready: Any, instance_type: str | None) -> Device | None:
    """The device a run's peak is looked up for: the GPU by its NVML name, Neuron by instance
    type, the CPU by what /proc/cpuinfo says; the units it used from `ready.cores_used`."""
    kind = DEVICE_KIND.get(backend)
    if kind is None:
        return None
    name = (ready.device_name if ready is not None else "") if kind == "gpu" else (instance_type or "")
    return Device(kind, name, ready.cores_used if ready is not None else 1)


@lru_cache(maxsize=16)
def cached_peak(device: Device, precision: str) -> Peak | None:
    return peak_flops(device, precision)[0]


@lru_cache(maxsize=16)
def table_price(instance_type: str | None) -> Price | None:
    return resolve_price(None, instance_type)[0]


@dataclass(frozen=True)
class RunEconomy:
    dollars_per_million: float | None = None  # at the given throughput, when a price is known
    share_of_peak: float | None = None  # counted FLOPs x throughput / peak, when both are known
    peak_estimate: bool = False  # the peak is an estimate (CPUs), not a datasheet figure
    # Neuron: the FLOP/s neuron-monitor reports for the cores, against the same peak, beside the counted share
    reported_share_of_peak: float | None = None


def run_economy(throughput: float | None, backend: str, ready: Any, precision: str,
                instance_type: str | None, price: Price | None = None,
                reported_flops: float | None = None) -> RunEconomy:
    """What the run costs per million inferences and how much of the peak it uses at
    `throughput`; `price` defaults to the instance type's entry in the shipped table;
    `reported_flops`: the FLOP/s the telemetry reports for the run's cores, when it does."""
    price = price if price is not None else table_price(instance_type)
    dollars = dollars_per_million(price.per_hour if price else None, throughput)
    device = run_device(backend, ready, instance_type)
    peak = cached_peak(device, precision) if device is not None else None
    flops = ready.flops_per_sample if ready is not None else None
    share = peak.share(flops * throughput) if peak is not None and flops and throughput and throughput > 0 else None
    reported = peak.share(reported_flops) if peak is not None and reported_flops else None
    return RunEconomy(dollars, share, bool(peak and peak.estimate), reported)


def workload_economy(workload: WorkloadState, snapshot: Snapshot | None, live: bool) -> RunEconomy:
    """A run's economy at the rate a screen shows for it: the last seconds' while it runs
    (`live`), else the whole run's; on Neuron, live, beside neuron-monitor's FLOP/s now."""
    figures = workload.run.figures()
    config = workload.config
    backend = effective_backend(config.get("backend", ""), workload.hello.backend if workload.hello else None)
    instance_type = snapshot.instance.get("instance_type") if snapshot is not None else None
    reported = None
    if live and backend == "neuron" and snapshot is not None:
        reported = sum(core.flops for core in snapshot.cores_of("neuroncore") if core.flops) or None
    return run_economy(figures.recent_throughput if live else figures.throughput, backend, workload.ready,
                       config.get("precision", "fp32"), instance_type, reported_flops=reported)
