"""The tune as it runs: each server and confirmation step as a point of throughput (x) against
latency at the bound's percentile (y), the bound as a horizontal line, each offline maximum (the
most a point can serve) as a vertical one; the current step's progress above, the key below.

Steps arrive a few seconds apart (TuneStepLanded), so the plot is redrawn on each one.
"""
from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from ...format import format_bound, format_duration, format_ratio
from ...tune.decide import Point
from ...tune.search import StepResult, verdict
from ...tune.slo import Slo
from .charts import latency_unit

# (plotext colour, the same as a Rich style for the key below the plot)
VERDICT_COLORS = {"within": ("green+", "bright_green"), "over": ("orange+", "dark_orange"),
                  "saturated": ("red+", "bright_red")}
BOUND_COLOR, CEILING_COLOR = ("orange", "orange3"), ("gray", "grey50")
SEARCH_MARKER, CONFIRM_MARKER = "●", "◆"


@dataclass(frozen=True)
class LandedStep:
    point: Point
    scenario: str  # 'offline' | 'server' | 'confirm'
    step: StepResult


class TunePanel(Vertical):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.slo: Slo | None = None
        self.budget_seconds: float | None = None
        self.steps: list[LandedStep] = []

    def compose(self) -> ComposeResult:
        yield Static("", id="tune-progress")
        yield PlotextPlot(id="plot-tune")
        yield Static("", id="tune-key")

    @property
    def plotted(self) -> list[LandedStep]:
        """The steps drawn as points: those offered a rate that measured a latency."""
        return [s for s in self.steps if s.scenario != "offline" and s.step.latency is not None]

    def begin(self, slo: Slo, budget_seconds: float | None) -> None:
        self.slo, self.budget_seconds, self.steps = slo, budget_seconds, []
        self.show_progress("starting the first step…", None)
        self._show_key()
        self._replot()

    def add_step(self, point: Point, scenario: str, step: StepResult) -> None:
        self.steps.append(LandedStep(point, scenario, step))
        self._replot()

    def show_progress(self, text: str, fraction: float | None) -> None:
        line = Text(text + (f" ({format_ratio(fraction)})" if fraction is not None else ""))
        self._show_lines(line, "t/escape stops it")

    def finish(self, outcome: str, has_winner: bool) -> None:
        keys = ("W runs the winner · " if has_winner else "") + "e exports · t tunes again · escape closes"
        self._show_lines(Text(outcome, style="bold"), keys)

    def _show_lines(self, first: Text, keys: str) -> None:
        """The step running (or the outcome), then the keys (first: they must fit 80 columns) and the steps so far."""
        spent = sum(s.step.seconds for s in self.steps)
        budget = f" of {format_duration(self.budget_seconds)}" if self.budget_seconds is not None else ""
        first.append(f"\n{keys} · {len(self.steps)} step(s) in {format_duration(spent)}{budget}", style="dim")
        self.query_one("#tune-progress", Static).update(first)

    def _show_key(self) -> None:
        assert self.slo is not None
        key = Text()
        for name, (_, style) in VERDICT_COLORS.items():
            key.append(f"{SEARCH_MARKER} {name}  ", style=style)
        key.append(f"{CONFIRM_MARKER} confirm  ", style="bold")
        key.append(f"─ {format_bound(self.slo.bound_seconds)}  ", style=BOUND_COLOR[1])
        key.append("│ offline max", style=CEILING_COLOR[1])
        self.query_one("#tune-key", Static).update(key)

    def _replot(self) -> None:
        assert self.slo is not None
        plot = self.query_one("#plot-tune", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        points = self.plotted
        slowest_ms = max([s.step.latency * 1e3 for s in points] + [self.slo.bound_seconds * 1e3])
        unit, scale = latency_unit(slowest_ms)
        ceilings = [s.step.throughput for s in self.steps if s.scenario == "offline"]
        widest = max([s.step.throughput for s in points] + ceilings, default=0.0)
        for scenario, marker in (("server", SEARCH_MARKER), ("confirm", CONFIRM_MARKER)):
            for name, (color, _) in VERDICT_COLORS.items():
                chosen = [s.step for s in points if s.scenario == scenario and verdict(s.step, self.slo) == name]
                if chosen:
                    plt.scatter([s.throughput for s in chosen], [s.latency * 1e3 * scale for s in chosen],
                                marker=marker, color=color)
        bound = self.slo.bound_seconds * 1e3 * scale
        plt.hline(bound, BOUND_COLOR[0])
        for ceiling in ceilings:
            plt.vline(ceiling, CEILING_COLOR[0])
        plt.xlim(0, widest * 1.1 or 1)
        plt.ylim(0, slowest_ms * scale * 1.15)
        plt.xlabel("samples/s")
        plt.ylabel(f"{self.slo.key} {unit}")
        plot.refresh()
