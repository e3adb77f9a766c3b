"""CPU per redraw of the three live charts: plotext (textual-plotext) against LineChart.

    python3 tests/benchmarks/bench_charts.py [--redraws 40] [--width 96] [--height 14]

Each app shows three charts of the given size (a chart's size at 160x48) in a headless
Textual app; each redraw gives every chart new data (two series of two points per column,
as the live charts thin them) and waits until the screen has been composited. The figure is
CPU time (process_time) per redraw of all three, median of five rounds, less the same loop
redrawing nothing; the ratio is the price of drawing through plotext's ANSI text.
"""
from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from textual.app import App, ComposeResult  # noqa: E402
from textual_plotext import PlotextPlot  # noqa: E402

from neurontui.tui.widgets.line_chart import Chart, LineChart, Series  # noqa: E402

WINDOW = 60.0


def series(turn: int, points: int) -> tuple[list[float], list[float], list[float]]:
    xs = [-WINDOW + WINDOW * k / (points - 1) for k in range(points)]
    p50 = [3 + math.sin((k + turn) / 7) for k in range(points)]
    p99 = [6 + 2 * math.sin((k + turn) / 5) for k in range(points)]
    return xs, p50, p99


class Charts(App):
    def __init__(self, kind: str, width: int, height: int) -> None:
        super().__init__()
        self.kind, self.chart_width, self.chart_height = kind, width, height

    def compose(self) -> ComposeResult:
        for _ in range(3):
            widget = PlotextPlot() if self.kind == "plotext" else LineChart()  # "none": charts not redrawn
            widget.styles.width, widget.styles.height = self.chart_width, self.chart_height
            yield widget

    def redraw(self, turn: int) -> None:
        if self.kind == "none":
            return
        xs, p50, p99 = series(turn, self.chart_width * 2)
        for widget in self.query(PlotextPlot if self.kind == "plotext" else LineChart):
            if self.kind == "plotext":
                plt = widget.plt
                plt.clear_data()
                plt.clear_figure()
                plt.title("latency ms 1m")
                plt.xlim(-WINDOW, 0)
                plt.plot(xs, p50, marker="braille", color="cyan+", label="p50")
                plt.plot(xs, p99, marker="braille", color="orange+", label="p99")
                plt.ylim(0, 10)
                plt.xticks([-WINDOW, -WINDOW / 2, 0], ["-1m", "-30s", "now"])
                widget.refresh()
            else:
                widget.draw(Chart("latency ms 1m", [Series("p50", xs, p50, "bright_cyan"),
                                                    Series("p99", xs, p99, "dark_orange")],
                                  (-WINDOW, 0.0), 10.0, [(-WINDOW, "-1m"), (-WINDOW / 2, "-30s"), (0.0, "now")]))


async def per_redraw(kind: str, opts) -> float:
    app = Charts(kind, opts.width, opts.height)
    rounds = []
    async with app.run_test(size=(opts.width + 4, opts.height * 3 + 2)) as pilot:
        for turn in range(5):  # warm-up: first layouts, caches
            app.redraw(turn)
            await pilot.pause()
        for _ in range(5):
            began = time.process_time()
            for turn in range(opts.redraws):
                app.redraw(turn)
                await pilot.pause()
            rounds.append((time.process_time() - began) / opts.redraws)
    return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redraws", type=int, default=40)
    parser.add_argument("--width", type=int, default=96)
    parser.add_argument("--height", type=int, default=14)
    opts = parser.parse_args()
    idle = asyncio.run(per_redraw("none", opts))  # the test harness's own cost of a screen update
    plotext = asyncio.run(per_redraw("plotext", opts)) - idle
    ours = asyncio.run(per_redraw("line_chart", opts)) - idle
    print(f"three {opts.width}x{opts.height} charts, CPU per redraw (less {idle * 1e3:.2f} ms of an update "
          f"that draws nothing): plotext {plotext * 1e3:.2f} ms, LineChart {ours * 1e3:.2f} ms, "
          f"plotext/LineChart {plotext / ours:.1f}x")


if __name__ == "__main__":
    main()
