"""A panel of one-line Rich Texts drawn through the Line API, repainting only the lines that change.

A panel re-rendered whole each second costs the compositor every one of its lines: the cores
panel is 38 lines tall at 160x48 and shows 3 on a 2-vCPU box, the header changes one line of
two. Here each line becomes a Strip once, and `repaint_changed()` renders and repaints only the
lines whose text or styles differ from what is on screen; on a saturated box that reads 100%
second after second, nothing at all. A resize or a new theme renders everything anew.
"""
from __future__ import annotations

from rich.console import Group
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget

LineKey = tuple[str, str, tuple]


def line_key(text: Text) -> LineKey:
    """What a line shows, comparable: its text and its styles."""
    return text.plain, str(text.style), tuple(text.spans)


class TextLines(Widget):
    """Subclasses keep their state, build their lines in `render()` (a Text or a Group of
    Texts, one per line) and call `repaint_changed()` when their state changes."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._texts: list[Text] = []
        self._keys: list[LineKey] = []
        self._strips: dict[int, Strip] = {}
        self._drawn_for: tuple[Size, Style] | None = None  # the size and base style of the strips

    def repaint_changed(self, layout: bool = False) -> None:
        """Take the lines to show now; repaint those that changed (all of them, and the layout
        around the panel, with `layout`: its height may change)."""
        old = self._keys
        self._take_lines()
        if layout or self._drawn_for is None:
            self._strips.clear()
            self.refresh(layout=layout)
            return
        new = self._keys
        changed = [y for y in range(max(len(new), len(old)))
                   if y >= len(new) or y >= len(old) or new[y] != old[y]]
        if changed:
            for y in changed:
                self._strips.pop(y, None)
            width = self.size.width
            self.refresh(*[Region(0, y, width, 1) for y in changed])

    def render_line(self, y: int) -> Strip:
        style = self.visual_style.rich_style
        drawn_for = (self.size, style)
        if drawn_for != self._drawn_for:  # first paint, a resize or a new theme
            self._drawn_for = drawn_for
            self._strips.clear()
            self._take_lines()
        strip = self._strips.get(y)
        if strip is None:
            strip = self._strips[y] = (self._render_text(self._texts[y], style) if y < len(self._texts)
                                       else Strip.blank(self.size.width, style))
        return strip

    def _take_lines(self) -> None:
        rendered = self.render()
        texts = list(rendered.renderables) if isinstance(rendered, Group) else [rendered]
        self._texts, self._keys = texts, [line_key(text) for text in texts]

    def _render_text(self, text: Text, style: Style) -> Strip:
        """One line over the widget's style, cut to its width with an ellipsis (as panel_lines
        asks); Text.render, not console.render, which would wrap and justify a single line."""
        width = self.size.width
        line = Text(end="")
        line.append_text(text)  # its own style becomes a span: Text.render alone drops it from a line without spans
        if line.cell_len > width:
            line.truncate(width, overflow="ellipsis")
        return Strip(Segment.apply_style(line.render(self.app.console), style))
