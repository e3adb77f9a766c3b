"""`?`: what each key does and what the colours mean."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """\
[b]Workload[/b] (a switch restarts the child; the last run's figures stay dimmed until new ones arrive)
  s  single core / replica       d  DataParallel          p  pipeline (where the backend has it)
  m  pick the model              b  next backend           + / -  double / halve the batch
  c / C  more / fewer requests in flight                   space  pause / resume the load
  r  restart the workload        e  export the current run (JSON, in the current directory)
[b]Screen[/b]
  w  history window 1 / 5 / 15 min    S  save an SVG screenshot    ?  this help    q  quit
[b]Colours[/b]
  utilization: blue under 10% (idle), green, yellow from 75% (busy); memory: red from 80%
  dense core map (many cores): one cell per core, block height = utilization
[b]Figures[/b]
  latency is measured per request after warm-up, kept as a histogram (p50/p90/p99/p99.9);
  throughput = completed / window wall time; "run" figures cover the whole current run

Press escape, q or ? to close."""


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 96; max-width: 100%; height: auto; max-height: 90%;
                                  border: round $accent; background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(HELP)
