"""`m`: pick the model to run (arrows + enter; escape keeps the current one)."""
from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from workloads.models import REGISTRY

MODELS = tuple(REGISTRY)


class ModelPicker(ModalScreen[str | None]):
    DEFAULT_CSS = """
    ModelPicker { align: center middle; }
    ModelPicker > OptionList { width: 50; height: auto; border: round $accent; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "cancel")]

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        options = OptionList(*[Option(f"{spec.name:<9} {spec.summary}", id=spec.name) for spec in REGISTRY.values()])
        options.border_title = "model"
        yield options

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.highlighted = MODELS.index(self.current) if self.current in MODELS else 0
        options.focus()

    @on(OptionList.OptionSelected)
    def chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
