"""The live charts' braille renderer: what a reader sees in the rows it draws."""
from __future__ import annotations

from neurontui.tui.widgets.line_chart import BRAILLE, Chart, Series, render_chart

TICKS = [(-60.0, "-1m"), (-30.0, "-30s"), (0.0, "now")]


def text(rows) -> list[str]:
    return [row.text for row in rows]


def plot_area(lines: list[str]) -> list[str]:
    """The dot cells of each plotted row (right of the axis)."""
    return [line.split("┤", 1)[-1] if "┤" in line else line.split("│", 1)[-1] for line in lines[1:-2]]


def dots(cell: str) -> int:
    return ord(cell) - BRAILLE if cell.strip() else 0


def test_a_rising_line_goes_from_the_bottom_left_to_the_top_right_under_its_title_and_legend():
    xs = [-60 + k for k in range(61)]
    chart = Chart("latency ms 1m", [Series("p99", xs, [k / 6 for k in range(61)], "dark_orange")],
                  (-60.0, 0.0), 10.0, TICKS)
    lines = text(render_chart(chart, 60, 12))
    assert len(lines) == 12 and all(len(line) == 60 for line in lines)
    assert "latency ms 1m" in lines[0] and "p99" in lines[0]
    area = plot_area(lines)
    assert area[-1].strip() and area[-1][0] != " "  # the first point, bottom left
    assert area[0].rstrip()[-1] != " " and not area[0][:10].strip()  # the last, top right; the top left empty
    assert lines[1].lstrip().startswith("10┤") and lines[-3].lstrip().startswith("0┤")
    assert [label in lines[-1] for label in ("-1m", "-30s", "now")] == [True, True, True]
    assert lines[-2].count("┬") == 3


def test_values_beyond_the_limits_are_drawn_at_the_edge_and_points_outside_the_window_are_left_out():
    chart = Chart("throughput 1m", [Series("", [-90.0, -30.0, -29.0], [5.0, 50.0, -3.0], "bright_green")],
                  (-60.0, 0.0), 10.0, TICKS)
    area = plot_area(text(render_chart(chart, 50, 10)))
    top = [column for column, cell in enumerate(area[0]) if dots(cell)]
    bottom = [column for column, cell in enumerate(area[-1]) if dots(cell)]
    assert top and bottom and min(top) <= min(bottom)  # the clipped peak, then down to zero
    assert all(column > len(area[0]) // 3 for column in top + bottom)  # nothing from 90 s ago
    assert "▬▬" not in text(render_chart(chart, 50, 10))[0]  # one unnamed series: no legend


def test_a_later_series_is_drawn_over_an_earlier_one_in_its_own_colour():
    xs = [-60.0, 0.0]
    chart = Chart("", [Series("a", xs, [5.0, 5.0], "cyan"), Series("b", xs, [5.0, 5.0], "red")], (-60.0, 0.0),
                  10.0, [])
    colours = {segment.style.color.name for row in render_chart(chart, 40, 8)[1:-2] for segment in row
               if segment.style and segment.style.color and segment.text.strip() and "┤" not in segment.text
               and "│" not in segment.text}
    assert colours == {"red"}


def test_a_chart_too_small_to_draw_is_blank_rows_and_an_empty_one_has_its_axes():
    chart = Chart("t", [Series("a", [], [], "cyan")], (-60.0, 0.0), 1.0, TICKS)
    assert text(render_chart(chart, 8, 3)) == [" " * 8] * 3
    lines = text(render_chart(chart, 40, 8))
    assert all(not any(dots(cell) for cell in row) for row in plot_area(lines)) and "now" in lines[-1]


def test_axis_labels_read_as_figures_at_any_scale():
    for y_max, top in ((4140.0, "4140┤"), (0.23, "0.23┤"), (52_000.0, "52.0k┤"), (2.4e6, "2.40M┤")):
        lines = text(render_chart(Chart("t", [], (-60.0, 0.0), y_max, TICKS), 60, 12))
        assert lines[1].lstrip().startswith(top), lines[1]
        assert all("e+" not in line and "e-" not in line for line in lines)
