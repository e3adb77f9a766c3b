"""The workload's live figures: phase with progress until numbers arrive, then throughput
and latency percentiles; figures of the previous run stay, dimmed, until new ones come."""
from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text

from ...format import (format_bytes, format_count, format_dollars, format_duration, format_rate, format_ratio,
                       format_seconds)
from ...store import WorkloadState
from ...tune.live import RunEconomy
from .bars import panel_lines, bar
from .text_lines import TextLines

PANEL_LINES = 5
STATE_STYLES = {"running": "bold green", "paused": "bold yellow", "crashed": "bold red", "exited": "dim",
                "idle": "dim"}


class WorkloadPanel(TextLines):
    DEFAULT_CSS = f"WorkloadPanel {{ height: {PANEL_LINES}; }}"  # fixed: new figures never re-layout the screen

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.current: WorkloadState | None = None
        self.previous: WorkloadState | None = None
        self.enabled = True
        self.economy = RunEconomy()

    def show(self, current: WorkloadState, previous: WorkloadState | None, enabled: bool = True,
             economy: RunEconomy | None = None) -> None:
        """`economy`: the shown run's cost and share of peak (tune.live.run_economy), when known."""
        self.current, self.previous, self.enabled = current, previous, enabled
        self.economy = economy or RunEconomy()
        self.repaint_changed()

    def render(self) -> RenderableType:
        wl = self.current
        if not self.enabled:
            return Text("watching the hardware only (--no-workload)", style="dim")
        if wl is None:
            return Text("starting the workload…", style="dim")
        width = self.size.width or 80
        lines = [state_line(wl, width)]
        if wl.run.window_count:
            lines += figures(wl, dim=False, width=width, economy=self.economy)
        elif self.previous is not None and self.previous.run.window_count:
            lines.append(Text(f"previous run ({run_label(self.previous)}):", style="dim"))
            lines += figures(self.previous, dim=True, width=width, economy=self.economy)
        if wl.ready is not None:
            mix = bucket_mix(wl)
            room = mix is not None and len(lines) + 2 <= PANEL_LINES  # the mix on a line of its own
            lines.append(ready_line(wl, width, with_mix=mix is not None and not room))
            if room:
                lines.append(Text(mix, style="dim"))
        return panel_lines(lines)


def run_label(wl: WorkloadState) -> str:
    c = wl.config
    return f"{c.get('model')} {c.get('mode')} b{c.get('batch')} c{c.get('concurrency')}"


def state_line(wl: WorkloadState, width: int) -> Text:
    line = Text(f"{wl.state:<10}", style=STATE_STYLES.get(wl.state, "bold cyan"))
    figures = wl.run.figures()
    if not figures.windows and wl.phase is not None and wl.state not in ("crashed", "exited"):
        # the progress indicator shown until the first numbers arrive
        line.append_text(bar(wl.phase.progress, max(min(20, width - 16), 4), "cyan"))
        line.append(f" {wl.phase.progress * 100:3.0f}% ")
        line.append(wl.phase.detail, style="dim")
        return line
    if figures.windows:  # the run's totals, also once it has ended
        quiet = "dim" if wl.state in ("paused", "exited") else ""
        line.append(f" {figures.measured_seconds:6.1f} s  done {format_count(figures.completed)}", style=quiet)
        line.append(f"  errors {figures.errors}", style="bold red" if figures.errors else quiet)
        host_busy = wl.run.host_busy is not None
        if width >= 56 or figures.stability != "stable":  # narrow: only a verdict worth a warning
            line.append(f"  {figures.stability}", style="bold yellow" if host_busy else "dim")
    if wl.state in ("crashed", "exited") and wl.exit_code is not None:
        line.append(f"  exit {wl.exit_code}", style="dim")
        if wl.last_error is not None:
            line.append(f"  {wl.last_error.kind}: {wl.last_error.message}", style="red")
    return line


def figures(wl: WorkloadState, dim: bool, width: int = 80, economy: RunEconomy | None = None) -> list[Text]:
    """Live: the last few seconds' throughput and percentiles, the run's p50/p99 beside them, and
    (where the width allows) the share of the device's peak and the cost per million at that rate.
    A previous run (dim): the whole run's figures, which is what it measured."""
    run = wl.run.figures()
    style = "dim" if dim else ""
    value_style = "dim" if dim else "bold"
    rate, latency = (run.throughput, run.latency) if dim else (run.recent_throughput, run.recent_latency)
    throughput = Text("throughput " if width >= 50 else "", style="dim")
    if wl.state == "paused" and not dim:  # nothing runs: no live rate to show
        throughput.append("paused", style="bold yellow")
    else:
        throughput.append(format_rate(rate), style=value_style)
    throughput.append(f"  run p50 {format_seconds(run.latency['p50'])} p99 {format_seconds(run.latency['p99'])}",
                      style="dim")
    extra = economy_text(economy) if economy is not None else ""
    if extra and len(throughput) + len(extra) + 2 <= width:
        throughput.append(f"  {extra}", style=style or "cyan")
    percentiles = Text()
    # about 12 cells a percentile: where four do not fit, p90 gives way (the tail matters more)
    for key in ("p50", "p90", "p99", "p99.9") if width >= 50 else ("p50", "p99", "p99.9"):
        percentiles.append(f"{key} ", style="dim")
        percentiles.append(f"{format_seconds(latency[key])} ", style=value_style if key in ("p50", "p99") else style)
    return [throughput, percentiles]


def economy_text(economy: RunEconomy) -> str:
    """'3% of peak (est.) · $0.12/M', the parts that are known; on Neuron, the share the FLOP/s
    neuron-monitor reports make beside the counted one: '3% of peak (monitor 4%)'."""
    peak = ""
    if economy.share_of_peak is not None:
        peak = f"{format_ratio(economy.share_of_peak)} of peak" + (" (est.)" if economy.peak_estimate else "")
    if economy.reported_share_of_peak is not None:
        monitor = f"monitor {format_ratio(economy.reported_share_of_peak)}"
        peak = f"{peak} ({monitor})" if peak else f"{monitor} of peak"
    parts = [peak] if peak else []
    if economy.dollars_per_million is not None:
        parts.append(f"{format_dollars(economy.dollars_per_million)}/M")
    return " · ".join(parts)


def ready_line(wl: WorkloadState, width: int = 80, with_mix: bool = False) -> Text:
    """Params, cores, memory, compile and load; led by the copies (when more than one) and, where
    the bucket mix has no line of its own, by the mix. Where they do not fit the panel, params,
    then device memory, then cores give way, never the compile and load figures."""
    r = wl.ready
    assert r is not None
    parts = []
    if r.copies > 1:
        parts.append(f"{r.copies} copies × {format_bytes(r.bytes_per_copy)}"
                     + (f" (fit {format_count(r.copies_fit)})" if r.copies_fit is not None else ""))
    mix = bucket_mix(wl) if with_mix else None
    if mix:
        parts.append(mix)
    params, cores = f"{format_count(r.params)} params", f"{r.cores_used} core{'s' if r.cores_used != 1 else ''}"
    memory = f"dev {format_bytes(r.device_memory_bytes)}" if r.device_memory_bytes else None
    parts += [params, cores] + ([memory] if memory else [])
    parts += [f"compile {format_duration(r.compile_seconds)}" + (" cached" if r.cached else ""),
              f"load {format_duration(r.load_seconds)}"]
    for expendable in (params, memory, cores):
        if len(" · ".join(parts)) > width and expendable in parts:
            parts.remove(expendable)
    return Text(" · ".join(parts), style="dim")


def bucket_mix(wl: WorkloadState) -> str | None:
    """Variable-length input: the run's padding ratio and completions per bucket length."""
    r, run = wl.ready, wl.run.figures()
    if r is None or not r.bucket_lengths:
        return None
    counts = list(run.bucket_completed) + [0] * (len(r.bucket_lengths) - len(run.bucket_completed))
    return f"pad {format_ratio(run.padding_ratio)} · " + " ".join(
        f"{length}:{format_count(n)}" for length, n in zip(r.bucket_lengths, counts))
