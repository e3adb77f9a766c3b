"""Panels repaint only the lines that change, and what is on screen is what a full redraw shows."""
from __future__ import annotations

import asyncio
import functools

from textual.app import App, ComposeResult

from neurontui.telemetry import Core, Snapshot
from neurontui.tui.widgets.cores import CoresPanel
from neurontui.tui.widgets.line_chart import Chart, LineChart, Series

TICKS = [(-60.0, "-1m"), (-30.0, "-30s"), (0.0, "now")]


def sync(scenario):
    @functools.wraps(scenario)
    def test(*args, **kwargs):
        return asyncio.run(scenario(*args, **kwargs))
    return test


class OnePanel(App):
    CSS = "CoresPanel { height: 20; padding: 0 2; } LineChart { height: 12; }"

    def compose(self) -> ComposeResult:
        yield CoresPanel()
        yield LineChart()


def vcpus(*utilization: float) -> Snapshot:
    return Snapshot(time=1000.0, source="host", cores=[Core("vcpu", i, u) for i, u in enumerate(utilization)])


def repainted_lines(widget, monkeypatch) -> list[set[int] | None]:
    """Each refresh of `widget`: the content lines it marks for repainting, None for all of them."""
    calls: list[set[int] | None] = []
    original = type(widget).refresh

    def refresh(self, *regions, **kwargs):
        if self is widget:
            calls.append({y for region in regions for y in region.line_range} if regions else None)
        return original(self, *regions, **kwargs)
    monkeypatch.setattr(type(widget), "refresh", refresh)
    return calls


def screen_lines(app: App) -> list[str]:
    """The terminal's lines as the compositor last painted them, partial updates included."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


@sync
async def test_a_changed_core_repaints_its_bar_and_the_title_and_nothing_else(monkeypatch):
    app = OnePanel()
    async with app.run_test(size=(60, 34)) as pilot:
        panel = app.query_one(CoresPanel)
        panel.show(vcpus(0.20, 0.40, 0.60))
        await pilot.pause()
        calls = repainted_lines(panel, monkeypatch)
        panel.show(vcpus(0.20, 0.90, 0.60))
        await pilot.pause()
        assert calls == [{0, 2}]  # "vCPUs ×3  mean … max …" and core 1's bar; 17 other lines untouched
        lines = screen_lines(app)
        assert "90%" in lines[2] and "20%" in lines[1] and "60%" in lines[3]
        assert lines[2].startswith("  1 ")  # drawn inside the padding, where a full redraw puts it
        panel.show(vcpus(0.20, 0.90, 0.60))
        await pilot.pause()
        assert calls == [{0, 2}]  # the same figures again: nothing repainted
        panel.refresh()  # what a full redraw (a resize, a new theme) paints
        await pilot.pause()
        assert screen_lines(app) == lines


@sync
async def test_a_panel_with_fewer_lines_blanks_the_ones_it_no_longer_has(monkeypatch):
    app = OnePanel()
    async with app.run_test(size=(60, 34)) as pilot:
        panel = app.query_one(CoresPanel)
        panel.show(vcpus(0.2, 0.4, 0.6, 0.8))
        await pilot.pause()
        panel.show(vcpus(0.2, 0.4))  # a vCPU taken offline
        await pilot.pause()
        lines = screen_lines(app)
        assert "×2" in lines[0] and "40%" in lines[2] and not lines[3].strip() and not lines[4].strip()


@sync
async def test_a_chart_repaints_the_rows_its_lines_cross_and_keeps_title_and_axis(monkeypatch):
    app = OnePanel()
    async with app.run_test(size=(60, 34)) as pilot:
        chart = app.query_one(LineChart)
        xs = [-60.0 + k for k in range(61)]
        chart.draw(Chart("throughput 1m", [Series("", xs, [5.0] * 61, "green")], (-60.0, 0.0), 10.0, TICKS))
        await pilot.pause()
        calls = repainted_lines(chart, monkeypatch)
        chart.draw(Chart("throughput 1m", [Series("", xs, [5.0] * 60 + [9.5], "green")], (-60.0, 0.0), 10.0, TICKS))
        await pilot.pause()
        assert len(calls) == 1 and calls[0] and 0 not in calls[0] and not {10, 11} & calls[0]
        assert len(calls[0]) <= 5  # the step up at the right edge, not the flat rows' whole area
        lines = screen_lines(app)[20:32]
        chart.refresh()
        await pilot.pause()
        assert screen_lines(app)[20:32] == lines
