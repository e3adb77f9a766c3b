"""Deterministic screens from recorded neuron-monitor reports, for snapshot tests, the
README screenshots and the benchmark's 64-core replay.

Reports go through the real parser (`parse_report`), the Store and the widgets; only the
clock is fixed, and the utilization of each core is varied along a known curve so the
plots have a shape.
"""
from __future__ import annotations

import copy
import json
import math
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from workloads.config import WorkloadConfig
from workloads.models import get_model
from workloads.protocol import Hello, LatencyHistogram, Phase, Ready, Window

from .. import store as store_module
from ..hints import update_hints
from ..sources.neuron_report import parse_report
from ..store import Store

FROZEN_TIME = 1_764_000_000.0  # 2025-11-24 16:00 UTC: every scene happens "now" at this instant
FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
INF1_REPORT = FIXTURES / "v1_from_docs.json"
TRN1_REPORT = FIXTURES / "v2_trn1n_32xlarge_2runtimes.json"


class _FrozenClock:
    def __init__(self, at: float) -> None:
        self.at = at

    def time(self) -> float:
        return self.at


@contextmanager
def frozen_store_clock(at: float = FROZEN_TIME) -> Iterator[None]:
    """Events logged by the Store carry `at` instead of the wall clock (restored on exit)."""
    real = store_module.time
    store_module.time = _FrozenClock(at)  # type: ignore[assignment]
    try:
        yield
    finally:
        store_module.time = real


def _runtime_cores(report: dict) -> list[dict]:
    blocks = []
    for runtime in report.get("neuron_runtime_data") or []:
        counters = (runtime.get("report") or {}).get("neuroncore_counters") or {}
        blocks.append(counters.get("neuroncores_in_use") or {})
    return blocks


def utilization_curve(core: int, step: int, busy: int) -> float:
    """Percent busy: the first `busy` cores work hard and breathe, the rest idle."""
    if core < busy:
        return round(78 + 15 * math.sin(step / 6 + core), 2)
    return round(2 + 2 * math.sin(step / 4 + core), 2)


def modulated_report(report: dict, step: int, busy: int) -> dict:
    out = copy.deepcopy(report)
    for in_use in _runtime_cores(out):
        for index, counters in in_use.items():
            if isinstance(counters, dict):
                counters["neuroncore_utilization"] = utilization_curve(int(index), step, busy)
    return out


def widen_report(report: dict, cores: int) -> dict:
    """A gen-2 report with `cores` NeuronCores (2 per device), copied from core 0's figures."""
    out = copy.deepcopy(report)
    per_device = out.get("neuron_hardware_info", {}).get("neuroncore_per_device_count", 2) or 2
    out.setdefault("neuron_hardware_info", {})["neuron_device_count"] = -(-cores // per_device)
    for runtime in out.get("neuron_runtime_data") or []:
        body = runtime.get("report") or {}
        in_use = body.get("neuroncore_counters", {}).get("neuroncores_in_use") or {}
        if in_use:
            first = in_use[min(in_use, key=int)]
            body["neuroncore_counters"]["neuroncores_in_use"] = {str(i): copy.deepcopy(first) for i in range(cores)}
        memory = body.get("memory_used", {}).get("neuron_runtime_used_bytes", {}).get("usage_breakdown", {})
        per_core = memory.get("neuroncore_memory_usage") or {}
        if per_core:
            first = per_core[min(per_core, key=int)]
            memory["neuroncore_memory_usage"] = {str(i): copy.deepcopy(first) for i in range(cores)}
    return out


def publish_telemetry(store: Store, report: dict, steps: int, busy: int, end: float = FROZEN_TIME) -> None:
    """`steps` one-second reports ending at `end`, through the real parser."""
    for step in range(steps):
        parsed = parse_report(modulated_report(report, step, busy), time=end - (steps - 1 - step))
        if parsed.snapshot is not None:
            store.publish_snapshot(parsed.snapshot)


def publish_run(store: Store, config: WorkloadConfig, backend: str, ready: Ready, windows: int,
                latency: float, pid: int = 31337, end: float = FROZEN_TIME, window_seconds: float = 0.5) -> None:
    """A workload run as its child reports it: hello, phases, ready, then `windows` windows."""
    store.workload_starting(config.as_dict(), pid)
    store.workload_event(Hello(pid=pid, model=config.model, backend=backend, mode=config.mode, batch=config.batch,
                               concurrency=config.concurrency, scenario=config.scenario))
    for phase in ("building", "compiling", "loading"):
        store.workload_event(Phase(phase=phase, progress=1.0))
    store.workload_event(ready)
    store.workload_event(Phase(phase="running", progress=0.0))
    for i in range(windows):
        start = end - (windows - i) * window_seconds
        hist = LatencyHistogram()
        drift = 1 + 0.08 * math.sin(i / 5)
        for k in range(int(60 * window_seconds / latency / 100) + 20):
            hist.record(latency * drift * (1 + 0.002 * (k % 50)) * (1.6 if k % 97 == 0 else 1), config.batch)
        store.workload_event(Window.from_histogram(start, start + window_seconds, hist, 0, []))


def trn1_scene(workload: bool = True) -> Store:
    """BERT under DataParallel at batch 1 on a trn1n.32xlarge recording: 1 of 32 cores busy
    (or, without the workload, the hardware alone as neuron-top would show it)."""
    store = Store()
    with frozen_store_clock():
        publish_telemetry(store, json.loads(TRN1_REPORT.read_text()), steps=90, busy=1 if workload else 0)
        if not workload:
            return store
        config = WorkloadConfig(model="bert", backend="neuron", mode="dp", batch=1)
        publish_run(store, config, "neuron", Ready(params=get_model("bert").params, cores_used=32,
                                                   compile_seconds=41.8, load_seconds=6.2, artifact_bytes=226_000_000,
                                                   device_memory_bytes=32 * 197_300_000, cached=True),
                    windows=150, latency=0.0026)
        update_hints(store)
    return store


def inf1_scene(compiling: bool = False) -> Store:
    """ResNet-50 on an inf1.xlarge recording: compiling (progress shown), or pipelined on 4 cores."""
    store = Store()
    with frozen_store_clock():
        publish_telemetry(store, json.loads(INF1_REPORT.read_text()), steps=90, busy=0 if compiling else 4)
        if compiling:
            config = WorkloadConfig(model="resnet50", backend="neuron")
            store.workload_starting(config.as_dict(), 31337)
            store.workload_event(Hello(pid=31337, model="resnet50", backend="neuron", mode="single"))
            store.workload_event(Phase(phase="compiling", progress=0.45, detail="neuron-cc: partitioning graph"))
        else:
            config = WorkloadConfig(model="resnet50", backend="neuron", mode="pipeline", batch=1, pipeline_cores=4)
            publish_run(store, config, "neuron", Ready(params=get_model("resnet50").params, cores_used=4,
                                                       compile_seconds=95.1, load_seconds=2.4, artifact_bytes=42_300_000,
                                                       device_memory_bytes=58_700_000, cached=True),
                        windows=150, latency=0.0031)
        update_hints(store)
    return store


def scene_config(store: Store) -> WorkloadConfig:
    """The settings the scene's run was started with (what the app would have asked for)."""
    return WorkloadConfig(**store.workload.config)
