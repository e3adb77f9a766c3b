"""Neuron runtimes as neuron-monitor reports them: one row per process using NeuronCores."""
from __future__ import annotations

from textual.widgets import DataTable

from ...format import format_bytes, format_rate, format_ratio, format_seconds
from ...telemetry import Runtime, Snapshot

COLUMNS = ("tag", "pid", "cores", "util", "done/s", "p50", "p99", "device", "host", "errors")


def core_ranges(cores: list[int]) -> str:
    """[0, 1, 2, 3, 8] -> '0-3,8'."""
    out, run = [], []
    for core in sorted(cores):
        if run and core != run[-1] + 1:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
            run = []
        run.append(core)
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def runtime_row(runtime: Runtime) -> tuple[str, ...]:
    utils = list(runtime.core_utilization.values())
    rate = runtime.completed / runtime.period_seconds if runtime.period_seconds else None
    return (runtime.tag, str(runtime.pid or "-"), core_ranges(runtime.cores),
            format_ratio(sum(utils) / len(utils) if utils else None), format_rate(rate, ""),
            format_seconds(runtime.latency_seconds.get("p50")), format_seconds(runtime.latency_seconds.get("p99")),
            format_bytes(runtime.device_memory_bytes), format_bytes(runtime.host_memory_bytes),
            str(sum(runtime.errors.values())))


class RuntimesPanel(DataTable):
    DEFAULT_CSS = "RuntimesPanel { height: auto; max-height: 6; scrollbar-size: 0 0; }"

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="none", zebra_stripes=False, **kwargs)
        self.can_focus = False
        self._rows: list[tuple[str, ...]] | None = None

    def on_mount(self) -> None:
        self.add_columns(*COLUMNS)

    def show(self, snapshot: Snapshot | None) -> None:
        rows = [runtime_row(runtime) for runtime in (snapshot.runtimes if snapshot else [])]
        if rows == self._rows:
            return  # unchanged: no re-layout
        self._rows = rows
        if self.display != bool(rows):
            self.display = bool(rows)
        self.clear()
        self.add_rows(rows)
