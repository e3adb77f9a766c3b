"""Device and host memory; on Neuron the per-core breakdown (neuron-top's memory view)."""
from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text

from ...format import format_bytes
from ...telemetry import CORE_MEMORY_PARTS, Snapshot
from .bars import bar, memory_style, panel_lines
from .text_lines import TextLines

PART_LABELS = {"constants": "const", "model_code": "code", "model_shared_scratchpad": "scratch",
               "runtime_memory": "runtime", "tensors": "tensors"}
LABEL = 7
CELL = 15  # "31 1023.9 MiB  "


class MemoryPanel(TextLines):
    DEFAULT_CSS = "MemoryPanel { height: auto; }"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.snapshot: Snapshot | None = None
        self.detailed = True  # per-core cells; off on small terminals
        self._shown_shape: tuple | None = None

    def show(self, snapshot: Snapshot | None, detailed: bool) -> None:
        shape = self._shape(snapshot, detailed)
        self.snapshot = snapshot
        self.detailed = detailed
        self.repaint_changed(layout=shape != self._shown_shape)  # re-layout only when the line count can change
        self._shown_shape = shape

    @staticmethod
    def _shape(snapshot: Snapshot | None, detailed: bool) -> tuple:
        if snapshot is None:
            return ()
        mem = snapshot.memory
        return (len(snapshot.cores_of("gpu")), mem.device_used_bytes is None, len(mem.per_core), detailed)

    def render(self) -> RenderableType:
        snap = self.snapshot
        if snap is None:
            return Text("memory: waiting for telemetry…", style="dim")
        width = self.size.width or 40
        mem = snap.memory
        lines = []
        for gpu in snap.cores_of("gpu"):
            lines.append(usage_line(f"GPU{gpu.index}", gpu.memory_used_bytes, gpu.memory_total_bytes, width))
        if mem.device_used_bytes is not None or mem.per_core:
            used = mem.device_used_bytes if mem.device_used_bytes is not None else \
                sum(m.total for m in mem.per_core.values())
            lines.append(usage_line("device", used, mem.device_total_bytes, width))
        lines.append(usage_line("host", mem.host_used_bytes, mem.host_total_bytes, width))
        if mem.per_core:
            lines.append(breakdown(mem.per_core.values()))
            if self.detailed:
                lines += per_core_cells(mem.per_core, width)
            else:
                totals = [m.total for m in mem.per_core.values()]
                lines.append(Text(f"per core {format_bytes(min(totals))} – {format_bytes(max(totals))} "
                                  f"over {len(totals)} cores", style="dim"))
        return panel_lines(lines)


def usage_line(label: str, used: int | None, total: int | None, width: int) -> Text:
    ratio = used / total if used is not None and total else None
    figures = f" {format_bytes(used)}/{format_bytes(total)}"
    line = Text(f"{label:<{LABEL}}", style="bold")
    line.append_text(bar(ratio, max(width - LABEL - len(figures), 4), memory_style(ratio)))
    line.append(figures)
    return line


def breakdown(per_core) -> Text:
    sums = {part: sum(getattr(m, part) for m in per_core) for part in CORE_MEMORY_PARTS}
    line = Text("  ")
    for part, value in sorted(sums.items(), key=lambda item: -item[1]):
        if value:
            line.append(f"{PART_LABELS[part]} ", style="dim")
            line.append(f"{format_bytes(value)}  ")
    return line


def per_core_cells(per_core, width: int) -> list[Text]:
    cores = sorted(per_core.values(), key=lambda m: m.index)
    digits = len(str(cores[-1].index))
    columns = max(width // CELL, 1)
    rows = -(-len(cores) // columns)
    lines = []
    for row in range(rows):
        line = Text()
        for memory in cores[row::rows]:
            line.append(f"{memory.index:>{digits}} ", style="dim")
            line.append(f"{format_bytes(memory.total):<{CELL - digits - 1}}")
        lines.append(line)
    return lines
