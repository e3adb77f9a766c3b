"""`?`: what each key does and what the colours mean."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """\
[b]Workload[/b]  a switch restarts the child; the last figures stay dimmed
  s  single core / replica         d  DataParallel
  p  pipeline (where it exists)    m  pick the model
  b  next backend                  + / -  double / halve the batch
  c / C  more / fewer in flight    space  pause / resume the load
  n / N  double / halve the copies (--copies: independent loaded models)
  r  restart the workload          e  export the run (JSON, current dir)
  t  tune within a latency bound   W  run the tune's winner (e: its JSON)
[b]Screen[/b]  the footer shows what fits; every key is here
  w  history 1 / 5 / 15 min        S  save an SVG screenshot
  ?  this help                     q  quit (also Ctrl-C)
[b]Colours[/b]
  utilization: blue < 10% idle, green, yellow >= 75%; ▒ other processes
  memory: red >= 80%; many cores: one cell each, height = utilization
[b]Figures[/b]
  latency per request after warm-up, from a histogram: p50 p90 p99 p99.9
  throughput = completed / window time; "run" = the whole current run
Press escape, q or ? to close."""


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 78; max-width: 100%; height: auto; max-height: 90%;
                                  border: round $accent; background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(HELP)
