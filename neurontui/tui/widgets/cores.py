"""Per-core utilization: one bar per NeuronCore, GPU or vCPU, wrapped into columns.

No core is ever dropped: when bars do not fit the panel, the largest group turns into a
dense map (one cell per core, block height = utilization), which fits 64+ cores in a
few lines; past that the panel scrolls.
"""
from __future__ import annotations

import math

from rich.console import RenderableType
from rich.text import Text

from ...format import format_ratio
from ...telemetry import Core, Snapshot
from .bars import OTHERS_CELL, OTHERS_STYLE, bar, level, panel_lines, util_style
from .text_lines import TextLines

GROUPS = (("neuroncore", "NeuronCores", "NC"), ("gpu", "GPUs", "GPU"), ("vcpu", "vCPUs", "CPU"))
MIN_CELL = 13  # narrowest bar cell: "12 █████ 42%"


class CoresPanel(TextLines):
    DEFAULT_CSS = "CoresPanel { height: 1fr; min-height: 3; }"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.snapshot: Snapshot | None = None

    def show(self, snapshot: Snapshot | None) -> None:
        self.snapshot = snapshot
        self.repaint_changed()

    def render(self) -> RenderableType:
        if self.snapshot is None or not self.snapshot.cores:
            return Text("waiting for telemetry…", style="dim")
        groups = [(title, [c for c in self.snapshot.cores if c.kind == kind]) for kind, title, _ in GROUPS]
        groups = [(title, cores) for title, cores in groups if cores]
        layout = plan_layout([len(cores) for _, cores in groups], self.size.width, self.size.height)
        rows: list[Text] = []
        for (title, cores), columns in zip(groups, layout):
            rows.append(group_title(title, cores))
            rows += core_map(cores, self.size.width) if columns == 0 else bar_rows(cores, columns, self.size.width)
        return panel_lines(rows)


def plan_layout(counts: list[int], width: int, height: int) -> list[int]:
    """Columns of bars per group, 0 meaning a dense map; dense maps replace the largest
    bar groups until everything fits the height."""
    width = max(width, 1)
    budget = max(height - len(counts), 1)
    max_columns = max(1, width // MIN_CELL)
    share = max(budget // max(len(counts), 1), 1)
    columns = [max(1, min(max_columns, n, math.ceil(n / share))) for n in counts]

    def lines(i: int) -> int:
        return math.ceil(counts[i] / width) if columns[i] == 0 else math.ceil(counts[i] / columns[i])

    while sum(lines(i) for i in range(len(counts))) > budget:
        bars = [i for i in range(len(counts)) if columns[i]]
        if not bars:
            break
        columns[max(bars, key=lines)] = 0
    return columns


def group_title(title: str, cores: list[Core]) -> Text:
    known = [c.utilization for c in cores if c.utilization is not None]
    text = Text(f"{title} ×{len(cores)}", style="bold")
    if known:
        text.append(f"  mean {format_ratio(sum(known) / len(known))}  max {format_ratio(max(known))}", style="dim")
    others = [c.others_utilization for c in cores if c.others_utilization is not None]
    if others and max(others) > 0:  # vCPUs: what processes other than ours take (host_load.py)
        text.append(f"  {OTHERS_CELL} others {format_ratio(sum(others) / len(others))}", style=OTHERS_STYLE)
    return text


def bar_rows(cores: list[Core], columns: int, width: int) -> list[Text]:
    digits = len(str(max(c.index for c in cores)))
    cell = width // columns
    bar_width = max(cell - digits - 6, 1)
    rows = math.ceil(len(cores) / columns)
    lines = []
    for row in range(rows):
        line = Text()
        for core in cores[row::rows]:  # column-major: indices run down each column
            ratio = core.utilization
            line.append(f"{core.index:>{digits}} ", style="dim")
            line.append_text(bar(ratio, bar_width, util_style(ratio), core.others_utilization))
            line.append(f"{format_ratio(ratio):>4} ".ljust(cell - digits - 1 - bar_width), style=util_style(ratio))
        lines.append(line)
    return lines


def core_map(cores: list[Core], width: int) -> list[Text]:
    lines = []
    for start in range(0, len(cores), max(width, 1)):
        line = Text()
        for core in cores[start:start + width]:
            line.append(level(core.utilization), style=util_style(core.utilization))
        lines.append(line)
    return lines
