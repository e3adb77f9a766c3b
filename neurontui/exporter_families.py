"""Prometheus metric families built from the Store.

One custom Collector reads the Store under its lock and builds fresh families (once per
Store change when served by exposition.py; only the clock's families per scrape), so
concurrent scrapes are consistent and the series of a vanished runtime, core or source
disappear by themselves (no global Gauges mutated per report).

Neuron series keep the names and labels of AWS's `neuron-monitor-prometheus.py` so its
dashboards keep working, and fix its faults: runtimes sharing a tag get a `runtime`
label (the Store's per-snapshot key) instead of overwriting each other; execution
counters come from the Store's forward-only totals; a metric group that reported an
error is dropped and flagged in `neurontui_report_group_error`, never left stale.
neurontui's own series share the `neurontui_` prefix and base units.
"""
from __future__ import annotations

import re
import time
from typing import Callable, Iterable, Iterator

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from workloads.protocol import LatencyHistogram

from .store import Store, WorkloadState
from .telemetry import CORE_MEMORY_PARTS, Snapshot
from .workload import SOURCE as WORKLOAD_SOURCE

# Seconds; covers a tiny CNN on a GPU (~50 us) up to a cold CPU BERT batch (~10 s).
LATENCY_BUCKETS = (50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3,
                   100e-3, 250e-3, 500e-3, 1.0, 2.5, 5.0, 10.0)
WORKLOAD_STATES = ("idle", "starting", "building", "compiling", "loading", "warmup", "running",
                   "paused", "exited", "crashed")
WORKLOAD_INFO_KEYS = ("model", "backend", "mode", "batch", "concurrency", "scenario", "precision")

# AWS's instance label names, and where each may sit in Snapshot.instance (raw neuron-monitor
# keys, or shortened ones).
INSTANCE_LABELS = {
    "instance_name": ("instance_name",),
    "instance_id": ("instance_id",),
    "instance_type": ("instance_type",),
    "availability_zone": ("availability_zone", "instance_availability_zone"),
    "region": ("region", "instance_region"),
    "subnet_id": ("subnet_id",),
}


def _fine_index_limits() -> list[int]:
    """For each le-bucket, the highest LatencyHistogram bucket index wholly below it.

    A fine bucket (1% wide) that straddles a bound counts above it: a sample is never
    reported under a bound it may exceed, at the price of <= 1% on samples just below one.
    """
    limits = []
    index = 0
    for le in LATENCY_BUCKETS:
        while LatencyHistogram.bucket_upper(index) <= le:
            index += 1
        limits.append(index - 1)
    return limits


_FINE_LIMITS = _fine_index_limits()
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class _Families:
    """Collects samples into families, creating each family on first use."""

    def __init__(self) -> None:
        self.metrics: dict[str, Metric] = {}

    def add(self, name: str, kind: str, doc: str, labels: dict[str, str], value: float,
            suffix: str = "") -> None:
        metric = self.metrics.get(name)
        if metric is None:
            metric = self.metrics[name] = Metric(name, doc, kind)
        metric.samples.append(Sample(name + suffix, labels, value))  # positional fields every release has

    def gauge(self, name: str, doc: str, labels: dict[str, str], value: float | None) -> None:
        if value is not None:
            self.add(name, "gauge", doc, labels, value)

    def counter(self, name: str, doc: str, labels: dict[str, str], value: float) -> None:
        self.add(name, "counter", doc, labels, value, "_total")

    def info(self, name: str, doc: str, labels: dict[str, str]) -> None:
        self.add(name, "info", doc, labels, 1.0, "_info")

    def histogram(self, name: str, doc: str, labels: dict[str, str], hist: LatencyHistogram) -> None:
        fine = sorted(hist.buckets.items())
        cumulative, position = 0, 0
        for le, limit in zip(LATENCY_BUCKETS, _FINE_LIMITS):
            while position < len(fine) and fine[position][0] <= limit:
                cumulative += fine[position][1]
                position += 1
            self.add(name, "histogram", doc, {**labels, "le": _float_label(le)}, cumulative, "_bucket")
        self.add(name, "histogram", doc, {**labels, "le": "+Inf"}, hist.count, "_bucket")
        self.add(name, "histogram", doc, labels, hist.count, "_count")
        self.add(name, "histogram", doc, labels, hist.total, "_sum")


def _float_label(value: float) -> str:
    return repr(float(value))


class StoreCollector(Collector):
    def __init__(self, store: Store, aws_labels: bool = False, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.aws_labels = aws_labels
        self.clock = clock

    def describe(self) -> list:
        # Families depend on what the Store holds; no describe-time registration checks.
        return []

    def collect(self) -> Iterator[Metric]:
        with self.store.lock():  # one consistent view: the lock is reentrant
            metrics = self.static_families() + self.clock_families()
        yield from metrics

    def static_families(self) -> list[Metric]:
        """Every family but the clock's: these change only when the Store does."""
        out = _Families()
        with self.store.lock():
            snapshot = self.store.latest
            self._health(out)
            if snapshot is not None and self._source_alive(snapshot.source):
                self._group_errors(out, snapshot)
                self._neuron(out, snapshot)
                self._system(out, snapshot)
                self._cores(out, snapshot)
            self._workload(out)
        return self._labelled(out.metrics.values(), snapshot)

    def clock_families(self) -> list[Metric]:
        """The families that move with the clock alone (a sample's age), cheap to build per scrape."""
        out = _Families()
        with self.store.lock():
            now = self.clock()
            for name, health in sorted(self.store.health.items()):
                if name != WORKLOAD_SOURCE and health.last_sample_time is not None:
                    out.gauge("neurontui_source_last_sample_age_seconds", "Seconds since the source's latest sample",
                              {"source": name}, max(0.0, now - health.last_sample_time))
            snapshot = self.store.latest
        return self._labelled(out.metrics.values(), snapshot)

    def _labelled(self, metrics: Iterable[Metric], snapshot: Snapshot | None) -> list[Metric]:
        metrics = list(metrics)
        instance = instance_labels(snapshot) if self.aws_labels and snapshot is not None else {}
        if instance:
            for metric in metrics:
                metric.samples = [s._replace(labels={**instance, **s.labels}) for s in metric.samples]
        return metrics

    def _source_alive(self, name: str) -> bool:
        # A source known to be down has stale figures: export its health, not its values.
        health = self.store.health.get(name)
        return health is None or health.up

    # -- neurontui's own health ---------------------------------------------------------
    def _health(self, out: _Families) -> None:
        telemetry_up = True
        for name, health in sorted(self.store.health.items()):
            labels = {"source": name}
            if name != WORKLOAD_SOURCE:
                telemetry_up = telemetry_up and health.up
                out.gauge("neurontui_source_up", "1 while the telemetry source delivers samples", labels,
                          1.0 if health.up else 0.0)
                out.counter("neurontui_source_samples", "Samples received from the source", labels,
                            health.samples)
                out.counter("neurontui_source_restarts", "Times the source was lost and restarted", labels,
                            health.restarts)
            out.counter("neurontui_source_bad_lines", "Unreadable lines skipped from the source", labels,
                        health.bad_lines)
        out.gauge("neurontui_up", "1 while every telemetry source is up", {}, 1.0 if telemetry_up else 0.0)

    def _group_errors(self, out: _Families, snapshot: Snapshot) -> None:
        # "<group>: <message>"; the group names a fixed set of places, the message stays out of labels
        for group in sorted({error.split(":", 1)[0].strip() for error in snapshot.errors}):
            out.gauge("neurontui_report_group_error",
                      "1 for each metric group whose latest report carried an error (its series are left out)",
                      {"source": snapshot.source, "group": group}, 1.0)

    # -- AWS's neuron-monitor series ----------------------------------------------------
    def _neuron(self, out: _Families, snapshot: Snapshot) -> None:
        for runtime in snapshot.runtimes:
            base = {"runtime_tag": runtime.tag, "runtime": runtime.key or runtime.tag}
            for core, ratio in sorted(runtime.core_utilization.items()):
                out.gauge("neuroncore_utilization_ratio", "NeuronCore utilization ratio",
                          {**base, "neuroncore": str(core)}, ratio)
            for core, flops in sorted(runtime.core_flops.items()):
                out.gauge("neurontui_neuroncore_flops", "Floating-point operations per second on the NeuronCore",
                          {**base, "neuroncore": str(core)}, flops)
            for usage_type, ratio in (("user", runtime.vcpu_user_ratio), ("system", runtime.vcpu_system_ratio)):
                out.gauge("neuron_runtime_vcpu_usage_ratio", "Runtime vCPU usage ratio",
                          {**base, "usage_type": usage_type}, ratio)
            for location, used in (("host", runtime.host_memory_bytes), ("neuron_device", runtime.device_memory_bytes)):
                out.gauge("neuron_runtime_memory_used_bytes", "Runtime memory used bytes",
                          {**base, "memory_location": location}, used)
            for core, memory in sorted(runtime.core_memory.items()):
                labels = {**base, "memory_location": "None", "neuroncore": str(core)}
                for part in CORE_MEMORY_PARTS:
                    out.gauge(f"neuroncore_memory_usage_{part}", f"NeuronCore memory used for {part} in bytes",
                              labels, getattr(memory, part))
            totals = self.store.runtime_totals.get(runtime.key)
            if totals is not None:
                for error_type, count in sorted(totals.errors.items()):
                    out.counter("execution_errors", "Execution errors total", {**base, "error_type": error_type}, count)
                for status_type, count in sorted(totals.status.items()):
                    out.counter("execution_status", "Execution status total", {**base, "status_type": status_type},
                                count)
            for percentile, seconds in runtime.latency_seconds.items():
                out.gauge("execution_latency_seconds", "Execution latency in seconds (last period)",
                          {**base, "percentile": percentile}, seconds)
        for (device, event_type), count in sorted(self.store.ecc_totals.items()):
            out.counter("hardware_ecc_events", "Hardware ECC events total",
                        {"event_type": event_type, "neuron_device_index": str(device)}, count)
        if snapshot.instance:
            out.info("instance", "EC2 instance information", instance_labels(snapshot))
        hardware = {key: str(value) for key, value in snapshot.hardware.items()
                    if key != "error" and _LABEL_NAME.fullmatch(key) and isinstance(value, (str, int, float))}
        if hardware:
            out.info("neuron_hardware", "Neuron hardware information", hardware)

    def _system(self, out: _Families, snapshot: Snapshot) -> None:
        out.gauge("system_vcpu_count", "System vCPU count", {}, snapshot.vcpu_count)
        for usage_type, ratio in (("user", snapshot.vcpu_user_ratio), ("system", snapshot.vcpu_system_ratio)):
            out.gauge("system_vcpu_usage_ratio", "System vCPU usage ratio", {"usage_type": usage_type}, ratio)
        memory = snapshot.memory
        out.gauge("system_memory_total_bytes", "System memory total bytes", {}, memory.host_total_bytes)
        out.gauge("system_memory_used_bytes", "System memory used bytes", {}, memory.host_used_bytes)
        out.gauge("system_swap_total_bytes", "System swap total bytes", {}, memory.swap_total_bytes)
        out.gauge("system_swap_used_bytes", "System swap used bytes", {}, memory.swap_used_bytes)

    # -- host-wide per-core view, any core kind -------------------------------------------
    def _cores(self, out: _Families, snapshot: Snapshot) -> None:
        for core in snapshot.cores:
            labels = {"kind": core.kind, "core": str(core.index)}
            out.gauge("neurontui_core_utilization_ratio", "Core utilization over the source's period, 0..1",
                      labels, core.utilization)
            used = core.memory_used_bytes
            if used is None and core.kind == "neuroncore" and core.index in snapshot.memory.per_core:
                used = snapshot.memory.per_core[core.index].total
            out.gauge("neurontui_device_memory_used_bytes", "Device memory used on the core", labels, used)
            out.gauge("neurontui_device_memory_total_bytes", "Device memory of the core", labels,
                      core.memory_total_bytes)

    # -- the workload ---------------------------------------------------------------------
    def _workload(self, out: _Families) -> None:
        workload = self.store.workload
        for state in WORKLOAD_STATES:
            out.gauge("neurontui_workload_state", "1 for the workload child's current state",
                      {"state": state}, 1.0 if workload.state == state else 0.0)
        if workload.run_id == 0:
            return
        settings = {**{k: workload.config.get(k) for k in WORKLOAD_INFO_KEYS},
                    **({k: getattr(workload.hello, k) for k in WORKLOAD_INFO_KEYS} if workload.hello else {})}
        out.info("neurontui_workload", "The running workload's settings",
                 {key: "" if value is None else str(value) for key, value in settings.items()})
        out.counter("neurontui_workload_starts", "Workload child (re)starts", {}, workload.run_id)
        # Counters of the current run (the run record's totals): a restart resets them, which rate() handles.
        run = workload.run
        out.counter("neurontui_workload_requests",
                    "Inferences completed by the workload, a batch of n counting n (this run)", {}, run.completed)
        out.counter("neurontui_workload_errors", "Inferences that failed or timed out (this run)", {}, run.errors)
        out.histogram("neurontui_workload_latency_seconds",
                      "Latency of each inference (this run, warm-up excluded)", {}, run.histogram)
        throughput = run.figures().recent_throughput
        if throughput is not None:
            out.gauge("neurontui_workload_throughput_requests_per_second",
                      "Inferences per second over the last few seconds of windows", {}, throughput)
        self._capacity(out, workload)

    def _capacity(self, out: _Families, workload: WorkloadState) -> None:
        """--copies and variable-length input; labels bounded by the child (256 copies, 16 buckets)."""
        ready, figures = workload.ready, workload.run.figures()
        if ready is not None and (ready.copies > 1 or ready.bytes_per_copy is not None):
            out.gauge("neurontui_workload_copies", "Copies of the model loaded (--copies)", {}, ready.copies)
            out.gauge("neurontui_workload_bytes_per_copy", "Measured memory per loaded copy (slope over the loads)",
                      {}, ready.bytes_per_copy)
            out.gauge("neurontui_workload_copies_fit", "Copies the device's memory holds at the measured bytes per copy",
                      {}, ready.copies_fit)
            for index, completed in enumerate(figures.per_copy_completed):
                out.counter("neurontui_workload_copy_requests", "Inferences completed by each copy (this run)",
                            {"copy": str(index)}, completed)
        lengths = ready.bucket_lengths if ready is not None else []
        for length, completed in zip(lengths, figures.bucket_completed):
            out.counter("neurontui_workload_bucket_requests", "Inferences padded to each bucket length (this run)",
                        {"bucket_length": str(length)}, completed)
        out.gauge("neurontui_workload_padding_ratio", "Pad tokens over real tokens (this run)", {},
                  figures.padding_ratio)


def instance_labels(snapshot: Snapshot) -> dict[str, str]:
    if not snapshot.instance:
        return {}
    labels = {}
    for label, keys in INSTANCE_LABELS.items():
        labels[label] = next((str(snapshot.instance[k]) for k in keys if snapshot.instance.get(k) is not None), "")
    return labels


