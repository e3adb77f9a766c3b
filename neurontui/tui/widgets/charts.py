"""Live plots over a selectable window: throughput, latency p50/p99, utilization.

Each is a LineChart (braille dots drawn straight into the screen's rows). The app replots
only when the data changed and at most every PLOT_SECONDS (see app.py), only while visible,
from bounded deques (the Store's), thinned to about two points per column.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from textual.containers import Vertical
from textual.app import ComposeResult

from ...store import HistoryPoint, WorkloadState
from .line_chart import Chart, LineChart, Series

WINDOWS = (60, 300, 900)  # seconds: the `w` key cycles 1 / 5 / 15 min (titles say 1m, 5m, 15m)
KIND_TITLES = {"neuroncore": "NeuronCores", "gpu": "GPUs", "vcpu": "vCPUs"}
KIND_COLORS = {"neuroncore": "bright_green", "gpu": "bright_magenta", "vcpu": "cyan"}
PREVIOUS_RUN_COLORS = ("grey50", "grey70")  # a finished run's lines, greyed


def window_label(seconds: float) -> str:
    """60 -> '1m', 30 -> '30s', 150 -> '2.5m'."""
    return f"{seconds:g}s" if seconds < 60 else f"{seconds / 60:g}m"


def recent(points: Sequence[tuple[float, float]], window: float, max_points: int) -> tuple[list[float], list[float]]:
    """Points of the last `window` seconds, x relative to the newest (<= 0), thinned to max_points."""
    if not points:
        return [], []
    newest = points[-1][0]
    start = len(points)
    while start > 0 and points[start - 1][0] >= newest - window:
        start -= 1
    chosen = points[start:]
    step = max(1, -(-len(chosen) // max(max_points, 1)))
    chosen = chosen[::-1][::step][::-1]  # keep the newest point
    return [t - newest for t, _ in chosen], [v for _, v in chosen]


def latency_unit(slowest_ms: float) -> tuple[str, float]:
    """The unit of a latency axis and the factor from milliseconds: seconds once latencies pass a
    second (CRAFT on a CPU), so the axis never reads 10257.2."""
    return ("s", 1e-3) if slowest_ms >= 1000 else ("ms", 1.0)


def recent_history(history: Sequence[HistoryPoint], window: float) -> list[HistoryPoint]:
    """The points of the last `window` seconds (the Store keeps an hour; a plot needs minutes)."""
    if not history:
        return []
    oldest = history[-1].time - window
    out = []
    for point in reversed(history):
        if point.time < oldest:
            break
        out.append(point)
    return out[::-1]


def workload_series(wl: WorkloadState, window: float) -> dict[str, list[tuple[float, float]]]:
    throughput, p50, p99 = [], [], []
    recent = []
    if wl.windows:
        oldest = wl.windows[-1].end - window
        for event in reversed(wl.windows):  # newest first, only as far back as the plot shows
            if event.end < oldest:
                break
            recent.append(event)
    for event in reversed(recent):
        throughput.append((event.end, event.throughput))
        percentiles = event.percentiles or {}
        if percentiles.get("p50") is not None:
            p50.append((event.end, percentiles["p50"] * 1e3))
        if percentiles.get("p99") is not None:
            p99.append((event.end, percentiles["p99"] * 1e3))
    return {"throughput": throughput, "p50": p50, "p99": p99}


def utilization_series(history: Iterable[HistoryPoint]) -> dict[str, list[tuple[float, float]]]:
    series: dict[str, list[tuple[float, float]]] = {}
    for point in history:
        for kind, ratio in point.utilization.items():
            series.setdefault(kind, []).append((point.time, ratio * 100))
    return series


class ChartsPanel(Vertical):
    DEFAULT_CSS = """
    ChartsPanel { height: 1fr; }
    ChartsPanel LineChart { height: 1fr; min-height: 5; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.window = WINDOWS[0]

    def compose(self) -> ComposeResult:
        yield LineChart(id="plot-throughput")
        yield LineChart(id="plot-latency")
        yield LineChart(id="plot-util")

    def _plot(self, name: str) -> LineChart | None:
        plot = self.query_one(f"#plot-{name}", LineChart)
        return plot if plot.display and self.display else None

    def replot_workload(self, wl: WorkloadState | None, previous: bool) -> None:
        series = workload_series(wl, self.window) if wl is not None else {"throughput": [], "p50": [], "p99": []}
        suffix = " · previous run" if previous else ""
        plot = self._plot("throughput")
        if plot is not None:
            self._draw(plot, f"throughput {window_label(self.window)}{suffix}",
                       [("", series["throughput"], PREVIOUS_RUN_COLORS[0] if previous else "bright_green")])
        plot = self._plot("latency")
        if plot is not None:
            unit, scale = latency_unit(max((ms for _, ms in series["p99"] + series["p50"]), default=0.0))
            self._draw(plot, f"latency {unit} {window_label(self.window)}{suffix}",
                       [("p50", [(t, v * scale) for t, v in series["p50"]],
                         PREVIOUS_RUN_COLORS[0] if previous else "bright_cyan"),
                        ("p99", [(t, v * scale) for t, v in series["p99"]],
                         PREVIOUS_RUN_COLORS[1] if previous else "dark_orange")])

    def replot_utilization(self, history: Iterable[HistoryPoint]) -> None:
        plot = self._plot("util")
        if plot is None:
            return
        series = utilization_series(history)
        self._draw(plot, f"utilization % {window_label(self.window)}",
                   [(KIND_TITLES.get(kind, kind), points, KIND_COLORS.get(kind, "default"))
                    for kind, points in series.items()], y_max=100)

    def _draw(self, plot: LineChart, title: str, lines: list[tuple[str, list, str]],
              y_max: float | None = None) -> None:
        series = []
        for label, points, color in lines:
            xs, ys = recent(points, self.window, max(plot.size.width, 20) * 2)
            series.append(Series(label, xs, ys, color))
        top = max((max(line.ys) for line in series if line.ys), default=0.0)
        half = window_label(self.window // 2)
        plot.draw(Chart(title, series, (-self.window, 0.0), y_max if y_max is not None else (top * 1.15 or 1),
                        [(-self.window, f"-{window_label(self.window)}"), (-self.window / 2, f"-{half}"),
                         (0.0, "now")]))
