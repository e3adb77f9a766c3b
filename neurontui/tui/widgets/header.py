"""Header: where we are (host, instance type, telemetry), what runs, and in which state."""
from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text

from workloads.rules import effective_backend

from ...store import SourceHealth, WorkloadState
from ...telemetry import Snapshot
from .bars import panel_lines
from .text_lines import TextLines
from .workload import STATE_STYLES


class HeaderBar(TextLines):
    DEFAULT_CSS = "HeaderBar { height: 2; background: $panel; padding: 0 1; }"

    def __init__(self, host: str, metrics_error: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.host = host
        self.snapshot: Snapshot | None = None
        self.workload: WorkloadState | None = None
        self.pending: dict | None = None
        self.health: list[SourceHealth] = []
        self.metrics_url = ""
        self.metrics_error = metrics_error  # why the exporter is not serving (the event has the details)

    def show(self, snapshot, workload, pending, health, metrics_url) -> None:
        self.snapshot, self.workload, self.pending = snapshot, workload, pending
        self.health, self.metrics_url = health, metrics_url
        self.repaint_changed()

    def render(self) -> RenderableType:
        top = Text("neurontui", style="bold")
        top.append(" on ", style="dim")
        top.append(self.host)
        instance = self.snapshot.instance.get("instance_type") if self.snapshot else None
        if instance:
            top.append(f" · {instance}", style="bold")
        for health in self.health:
            top.append("  telemetry ", style="dim")
            top.append(f"{health.name} ")
            top.append("up" if health.up else "down", style="green" if health.up else "bold red")
            if health.bad_lines:
                top.append(f" ({health.bad_lines} bad lines)", style="yellow")
        if self.metrics_url:
            top.append(f"  metrics {self.metrics_url}", style="dim")
        elif self.metrics_error:
            top.append(f"  metrics off: {self.metrics_error.rsplit(': ', 1)[-1]}", style="yellow")
        return panel_lines([top, self.workload_line()])

    def workload_line(self) -> Text:
        config = self.pending
        if config is None:
            return Text("no workload", style="dim")
        wl = self.workload
        backend = effective_backend(config["backend"], wl.hello.backend if wl is not None and wl.hello else None)
        line = Text(" · ".join([config["model"], backend, config["mode"], f"batch {config['batch']}",
                                f"conc {config['concurrency']}", config["scenario"]]))
        if wl is not None and wl.config and {k: wl.config.get(k) for k in config} != config:
            line.append("  restarting…", style="bold yellow")
        elif wl is not None:
            line.append("  ● ", style=STATE_STYLES.get(wl.state, "bold cyan"))
            line.append(wl.state, style=STATE_STYLES.get(wl.state, "bold cyan"))
        return line
