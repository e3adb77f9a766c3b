"""Text bars and colour thresholds shared by the panels (Rich only, no widgets)."""
from __future__ import annotations

from rich.console import Group
from rich.text import Text

# nvitop's thresholds: under 10% a core is idle, over 75% it is busy; memory is tight over 80%.
UTIL_LOW, UTIL_HIGH = 0.10, 0.75
MEMORY_HIGH = 0.80
EIGHTHS = " ▏▎▍▌▋▊▉"
LEVELS = " ▁▂▃▄▅▆▇█"


def util_style(ratio: float | None) -> str:
    if ratio is None:
        return "dim"
    if ratio < UTIL_LOW:
        return "blue"
    if ratio < UTIL_HIGH:
        return "green"
    return "bold yellow"


def memory_style(ratio: float | None) -> str:
    if ratio is None:
        return "dim"
    return "bold red" if ratio >= MEMORY_HIGH else "cyan"


OTHERS_CELL, OTHERS_STYLE = "▒", "magenta"  # the part of a vCPU that other processes take


def bar(ratio: float | None, width: int, style: str, others: float | None = None) -> Text:
    """A horizontal bar `width` cells wide, with eighth-cell resolution; unknown is dotted.
    `others` (part of `ratio`) is drawn after ours in OTHERS_CELL, so a busy host shows."""
    width = max(width, 1)
    if ratio is None:
        return Text("·" * width, style="dim")
    ratio = max(0.0, min(1.0, ratio))
    theirs = max(0.0, min(others or 0.0, ratio))
    cells = (ratio - theirs) * width
    full = int(cells)
    part = EIGHTHS[int((cells - full) * 8)] if full < width else ""
    filled = "█" * full + part.strip()
    text = Text(filled, style=style)
    shaded = min(round(theirs * width), width - len(filled))
    text.append(OTHERS_CELL * shaded, style=OTHERS_STYLE)
    text.append("░" * (width - len(filled) - shaded), style="dim")
    return text


def level(ratio: float | None) -> str:
    """One cell showing a ratio as a block height (for dense core maps)."""
    if ratio is None:
        return "·"
    return LEVELS[max(1, min(8, round(max(0.0, min(1.0, ratio)) * 8)))]


def panel_lines(texts: list[Text]) -> Group:
    """Panel lines that never wrap: a narrow terminal cuts them with an ellipsis instead."""
    for text in texts:
        text.no_wrap = True
        text.overflow = "ellipsis"
    return Group(*texts)
