"""A braille line chart drawn straight into Strips: a title, a legend, a y axis and x ticks.

The live charts redraw every PLOT_SECONDS for as long as the dashboard runs. plotext builds
a coloured character canvas, prints it as ANSI text, and Textual parses that text back into
segments, every time (tests/benchmarks/bench_charts.py: the three live charts cost several
times more that way). Here the dots go into a grid of cells and each row becomes one Strip,
a Segment per run of one colour; the compositor then reads the cached rows (the Line API).
The tune's plot, drawn a few times per search, stays on plotext.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from itertools import groupby

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from ...format import format_axis

BRAILLE = 0x2800
DOT_BITS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))  # [row in cell][column in cell]
Y_TICKS = 5  # labelled rows, bottom (0) to top (the y limit)
AXIS = Style(color="grey50")
LABEL = Style(color="grey70")
TITLE = Style(bold=True)
PLAIN = Style()  # never None: Textual's filters (NO_COLOR's monochrome) read every segment's style


@dataclass
class Series:
    label: str  # "" for a chart of one series: no legend
    xs: list[float]
    ys: list[float]
    color: str  # a Rich colour name


@dataclass
class Chart:
    title: str = ""
    series: list[Series] = field(default_factory=list)
    x_range: tuple[float, float] = (-60.0, 0.0)
    y_max: float = 1.0
    x_ticks: list[tuple[float, str]] = field(default_factory=list)


class LineChart(Widget):
    DEFAULT_CSS = "LineChart { height: 1fr; min-height: 5; }"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.chart = Chart()
        self._rows: list[Strip] = []
        self._rows_size: tuple[int, int] | None = None

    def draw(self, chart: Chart) -> None:
        """Show `chart`, repainting only the rows that differ from those on screen (the title, the
        x axis and the rows the lines do not cross stay as they are)."""
        self.chart = chart
        size = (self.size.width, self.size.height)
        if size != self._rows_size:  # not drawn at this size: every row, when painted
            self._rows_size = None
            self.refresh()
            return
        rows = render_chart(chart, *size)
        changed = [y for y, (old, new) in enumerate(zip(self._rows, rows)) if old != new]
        self._rows = rows
        if changed:
            self.refresh(*[Region(0, y, size[0], 1) for y in changed])

    def render_line(self, y: int) -> Strip:
        size = (self.size.width, self.size.height)
        if size != self._rows_size:
            self._rows, self._rows_size = render_chart(self.chart, *size), size
        return self._rows[y] if y < len(self._rows) else Strip.blank(size[0], PLAIN)


def render_chart(chart: Chart, width: int, height: int) -> list[Strip]:
    """The chart as `height` rows of `width` cells."""
    if width < 12 or height < 4:
        return [Strip.blank(width, PLAIN)] * height
    rows = height - 3  # the title row above, the axis and the tick labels below
    ticks = [chart.y_max * k / Y_TICKS for k in range(Y_TICKS + 1)]
    labels = [format_axis(tick) for tick in ticks]
    margin = max(map(len, labels))
    columns = width - margin - 2  # the axis, and a column to the right of the last dot
    tick_rows = {round((rows - 1) * (1 - k / Y_TICKS)): label for k, label in enumerate(labels)} if rows > 1 else {}
    cells, colours = _plot(chart, columns, rows)
    out = [_title_row(chart, width)]
    for row in range(rows):
        label = tick_rows.get(row)
        segments = [Segment(f"{label:>{margin}}┤" if label is not None else " " * margin + "│", AXIS)]
        segments += _cell_segments(cells[row], colours[row])
        out.append(Strip(segments, margin + 1 + columns).extend_cell_length(width, PLAIN))
    out += _x_axis(chart, margin, columns, width)
    return out


def _plot(chart: Chart, columns: int, rows: int) -> tuple[list[list[int]], list[list[str | None]]]:
    """Each cell's braille dots and colour; a later series draws over an earlier one."""
    cells = [[0] * columns for _ in range(rows)]
    colours: list[list[str | None]] = [[None] * columns for _ in range(rows)]
    x0, x1 = chart.x_range
    dots_x, dots_y = columns * 2 - 1, rows * 4 - 1
    x_scale = dots_x / (x1 - x0) if x1 > x0 else 0.0
    y_max = chart.y_max
    y_scale = dots_y / y_max if y_max > 0 else 0.0
    for series in chart.series:
        previous = None
        for x, y in zip(series.xs, series.ys):
            if not x0 <= x <= x1:
                continue
            dot_x = round((x - x0) * x_scale)
            dot_y = dots_y - round((0.0 if y < 0.0 else y_max if y > y_max else y) * y_scale)
            for dx, dy in _segment(previous, (dot_x, dot_y)):
                row, column = dy >> 2, dx >> 1
                cells[row][column] |= DOT_BITS[dy & 3][dx & 1]
                colours[row][column] = series.color
            previous = (dot_x, dot_y)
    return cells, colours


def _segment(start: tuple[int, int] | None, end: tuple[int, int]) -> list[tuple[int, int]]:
    """The dots from just after `start` to `end`: `end` alone when they touch (most steps)."""
    if start is None:
        return [end]
    (ax, ay), (bx, by) = start, end
    steps = max(abs(bx - ax), abs(by - ay))
    if steps <= 1:
        return [end]
    return [(ax + round((bx - ax) * k / steps), ay + round((by - ay) * k / steps)) for k in range(1, steps + 1)]


_CELL_TEXT = [chr(BRAILLE + bits) if bits else " " for bits in range(256)]


def _cell_segments(dots: list[int], colours: list[str | None]) -> list[Segment]:
    """One Segment per run of cells of one colour (empty cells are spaces, with no colour)."""
    segments = []
    start = 0
    for colour, run in groupby(colours):
        end = start + len(list(run))
        segments.append(Segment("".join([_CELL_TEXT[bits] for bits in dots[start:end]]), _style(colour)))
        start = end
    return segments


@lru_cache(maxsize=64)
def _style(colour: str | None) -> Style:
    return Style(color=colour) if colour else PLAIN


def _title_row(chart: Chart, width: int) -> Strip:
    segments = [Segment(chart.title, TITLE)]
    for series in chart.series:
        if series.label:
            segments += [Segment("  ", PLAIN), Segment("▬▬ ", _style(series.color)), Segment(series.label, LABEL)]
    length = sum(len(segment.text) for segment in segments)
    return Strip([Segment(" " * max((width - length) // 2, 0), PLAIN), *segments]).crop_extend(0, width, PLAIN)


def _x_axis(chart: Chart, margin: int, columns: int, width: int) -> list[Strip]:
    x0, x1 = chart.x_range
    axis = ["─"] * columns
    labels = [" "] * (margin + 1 + columns + 1)
    for x, label in chart.x_ticks:
        column = round((x - x0) / (x1 - x0) * (columns - 1)) if x1 > x0 else 0
        axis[column] = "┬"
        start = min(max(margin + 1 + column - len(label) // 2, 0), len(labels) - len(label))
        labels[start:start + len(label)] = label
    return [Strip([Segment(" " * margin + "└" + "".join(axis), AXIS)]).crop_extend(0, width, PLAIN),
            Strip([Segment("".join(labels), LABEL)]).crop_extend(0, width, PLAIN)]
