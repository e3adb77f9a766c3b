"""The dashboard: a thin driver over a Session (session.py) that charts what it measures and
turns keys into the session's switches.

Threads never touch widgets: the Store listener only posts a coalesced `StoreChanged`;
the handler reads the Store under its lock and updates the panels in one batch.
"""
from __future__ import annotations

import ast
import asyncio
import os
import signal
import socket
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.events import Key, Resize
from textual.timer import Timer
from textual.widgets import Footer

from workloads.config import WorkloadConfig
from workloads.copies import MAX_COPIES, parse_copies
from workloads.rules import effective_backend

from ..hints import supports_pipeline
from ..session import Session
from ..store import WorkloadState
from ..tune.live import workload_economy
from ..tuning import TunePlan
from .messages import Notice, StoreChanged, TuneFinished, TuneProgress, TuneStepLanded
from .screens.help import HelpScreen
from .screens.model_picker import ModelPicker
from .screens.tune_form import TuneForm, form_defaults
from .tuner import TuiTune
from .widgets.charts import WINDOWS, ChartsPanel, recent_history, window_label
from .widgets.cores import CoresPanel
from .widgets.events import EventsPanel
from .widgets.header import HeaderBar
from .widgets.memory import MemoryPanel
from .widgets.runtimes import RuntimesPanel
from .widgets.tune_plot import TunePanel
from .widgets.workload import WorkloadPanel

MAX_BATCH = 1024
MAX_CONCURRENCY = 256
# Screen updates: figures move once per telemetry period; events and health (a crash, an outage,
# a restart) show within a quarter second. A burst of changes costs one update either way.
FIGURES_UPDATE_SECONDS = 1.0
EVENTS_UPDATE_SECONDS = 0.25
URGENT_CHANGES = frozenset({"event", "health", "run"})
# Plots redraw every other figures update: a redraw costs more than the rest of the screen, and
# the CPU it takes is taken from the workload being measured (tests/benchmarks/bench_tui.py).
# Two seconds move a 1-minute plot by about three columns. The slack lets a figures update whose
# timer fired a little early still carry the redraw, rather than a second screen update after it.
PLOT_SECONDS = 2.0
PLOT_SLACK = 0.25
COMPACT_HEIGHT = 40  # below this the utilization plot and per-core memory cells give way
FORCED_EXIT_SECONDS = 5.0  # after a signal, how long Textual may take to restore the terminal
WORKLOAD_ACTIONS = {"mode", "pick_model", "next_backend", "batch", "concurrency", "copies", "pause", "restart",
                    "export", "tune", "tune_winner"}
TUNING_REFUSAL = "tuning: press t or escape to stop it first"  # the tune owns the workload while it runs


def _parse_action(text: str) -> tuple[str, tuple]:
    """"mode('dp')" -> ("mode", ("dp",)); "pause" -> ("pause", ())."""
    name, _, arguments = text.partition("(")
    return name, ast.literal_eval(f"({arguments.rstrip(')')},)") if arguments.rstrip(")") else ()


def available_backends(dev: Path = Path("/dev")) -> list[str]:
    """Backends this host can run, from device files (no torch, no driver calls)."""
    found = ["cpu"]
    if any(dev.glob("nvidia[0-9]*")):
        found.append("cuda")
    if any(dev.glob("neuron[0-9]*")):
        found.append("neuron")
    return found


class NeuronTUI(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "neurontui"
    ENABLE_COMMAND_PALETTE = False
    # The footer shows what fits 80 columns, help and quit first; `?` lists every key.
    BINDINGS = [
        Binding("question_mark", "help", "help", key_display="?"),
        Binding("q", "quit", "quit"),
        Binding("s", "mode('single')", "single"),
        Binding("d", "mode('dp')", "dp"),
        Binding("p", "mode('pipeline')", "pipe"),
        Binding("m", "pick_model", "model"),
        Binding("plus", "batch(2)", "batch+", key_display="+"),
        Binding("minus", "batch(-2)", "batch-", key_display="-", show=False),
        Binding("space", "pause", "pause"),
        Binding("e", "export", "export"),
        Binding("b", "next_backend", "backend", show=False),
        Binding("c", "concurrency(2)", "conc+", show=False),
        Binding("C", "concurrency(-2)", "conc-", show=False),
        Binding("n", "copies(2)", "copies+", show=False),
        Binding("N", "copies(-2)", "copies-", show=False),
        Binding("r", "restart", "restart", show=False),
        Binding("w", "window", "window", show=False),
        Binding("S", "screenshot", "svg", show=False),
        Binding("t", "tune", "tune", show=False),
        Binding("W", "tune_winner", "winner", show=False),
        Binding("escape", "close_tune", "close tune", show=False),
        Binding("ctrl+c", "quit", "quit", show=False, priority=True),
    ]

    def __init__(self, session: Session, *, host: str | None = None, backends: list[str] | None = None,
                 output_dir: str | None = None, handle_signals: bool = False) -> None:
        super().__init__()
        self.session = session
        self.store = session.store
        self.host = host or socket.gethostname()
        self.backends = backends or available_backends()
        self.output_dir = Path(output_dir or os.getcwd())
        self.handle_signals = handle_signals
        self.returned = threading.Event()  # set by the caller once run() has returned
        self.on_forced_exit: Callable[[], None] = self.shutdown
        self._exit_watchdog = threading.Thread()
        self.window = WINDOWS[0]
        self._pending: set[str] = set()
        self._pending_lock = threading.Lock()
        self._current: WorkloadState | None = None  # the Store's state of the run on screen
        self._current_view: WorkloadState | None = None
        self._previous: WorkloadState | None = None  # last view of the previous run, dimmed until the new one has figures
        self._plotted: tuple[int, int, bool] | None = None
        self._plotted_history: Any = None
        self._last_update = self._last_plot = 0.0
        self._replot_scheduled = False
        self._flush_timer: Timer | None = None
        self._bindings_state: tuple | None = None
        self.tuner = TuiTune(self, session)

    @property
    def config(self) -> WorkloadConfig | None:
        """What the user asked for; None with --no-workload."""
        return self.session.config

    @property
    def workload(self) -> Any:
        return self.session.child

    # -- layout ---------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield HeaderBar(self.host, self.session.metrics_error, id="header")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield CoresPanel(id="cores")
                yield MemoryPanel(id="memory")
            with Vertical(id="right"):
                yield WorkloadPanel(id="workload")
                yield ChartsPanel(id="charts")
                yield TunePanel(id="tune")
        yield RuntimesPanel(id="runtimes")
        yield EventsPanel(id="events")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        if self.handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                loop.add_signal_handler(sig, self._exit_on_signal, sig)
        self.set_class(self.size.height < COMPACT_HEIGHT, "-compact")
        self.set_class(self.config is None, "-no-workload")
        self.store.subscribe(self._store_changed)
        if not self.session.started:
            self.session.start(driver_ticks=True)
        if self.config is not None and self.workload is not None:
            self.session.restart()
        self.session.tick()
        self.update_panels({"snapshot", "workload", "run", "event", "health"})

    def on_unmount(self) -> None:
        self.tuner.stop("the app's exit")  # the worker thread must end before the app can
        self.store.unsubscribe(self._store_changed)

    def on_resize(self, event: Resize) -> None:
        compact = event.size.height < COMPACT_HEIGHT
        if compact != self.has_class("-compact"):
            self.set_class(compact, "-compact")
            self._plotted = self._plotted_history = None  # plots that appear need drawing
            self.call_after_refresh(self.update_panels, {"snapshot", "workload"})

    # -- store -> screen --------------------------------------------------------------------
    def _store_changed(self, what: str) -> None:
        """Store listener: runs in source threads; only posts a message, at most one pending."""
        with self._pending_lock:
            # one message while an update is pending, plus one when something urgent joins it
            post = not self._pending or (what in URGENT_CHANGES and not self._pending & URGENT_CHANGES)
            self._pending.add(what)
        if post:
            self.post_message(StoreChanged())

    @on(StoreChanged)
    def _on_store_changed(self) -> None:
        with self._pending_lock:
            urgent = bool(self._pending & URGENT_CHANGES)
        wait = self._last_update + (EVENTS_UPDATE_SECONDS if urgent else FIGURES_UPDATE_SECONDS) - time.monotonic()
        if wait > 0:
            if self._flush_timer is not None and not urgent:
                return  # an update is already due
            if self._flush_timer is not None:
                self._flush_timer.stop()
            self._flush_timer = self.set_timer(wait, self._flush_when_due)
            return
        self._flush()

    def _flush_when_due(self) -> None:
        self._flush_timer = None
        self._flush()

    def _flush(self) -> None:
        if self._flush_timer is not None:  # an update now replaces the one due: left to fire, it
            self._flush_timer.stop()       # would start a second once-a-second cycle beside this one
            self._flush_timer = None
        self._last_update = time.monotonic()
        with self._pending_lock:
            kinds, self._pending = self._pending, set()
        self.session.tick()
        self.update_panels(kinds)

    @on(Notice)
    def _on_notice(self, message: Notice) -> None:
        self.store.log(message.level, "tui", message.text)

    def update_panels(self, kinds: set[str]) -> None:
        if not self.is_running:
            return  # a timer that fires while the app shuts down finds no panels left
        store = self.store
        with store.lock():
            snapshot, wl = store.latest, store.workload
            view = wl.copy()  # reader threads keep appending to the Store's run record
            health = [h for h in store.health.values() if h.name != "workload"]
            events = list(store.events)
            history_tail = store.history[-1] if store.history else None
            history = recent_history(store.history, self.window) if history_tail is not self._plotted_history else None
        events_panel = self.query_one(EventsPanel)
        if wl is not self._current:
            if self._current_view is not None and self._current_view.run.window_count:
                self._previous = self._current_view
            self._current = wl
            events_panel.forget_stderr()
        self._current_view = view
        if view.run.window_count:
            self._previous = None
        shown, dimmed = (self._previous, True) if self._previous is not None else (view, False)
        with self.batch_update():
            self.query_one(HeaderBar).show(snapshot, view, self.config.as_dict() if self.config else None,
                                           health, self.session.metrics_url)
            if "snapshot" in kinds:
                self.query_one(CoresPanel).show(snapshot)
                self.query_one(MemoryPanel).show(snapshot, detailed=not self.has_class("-compact"))
                self.query_one(RuntimesPanel).show(snapshot)
            self.query_one(WorkloadPanel).show(view, self._previous, enabled=self.config is not None,
                                               economy=workload_economy(shown, snapshot, live=not dimmed))
            self._replot(shown, dimmed, history, history_tail)
            events_panel.show(events, view.stderr_tail, time.time())
        bindings_state = (self.config, view.state, bool(view.run.window_count), self.resolved_backend(),
                          snapshot.instance.get("instance_type") if snapshot else None)
        if bindings_state != self._bindings_state:  # the footer re-renders only when a key's state changes
            self._bindings_state = bindings_state
            self.refresh_bindings()

    def _replot(self, shown: WorkloadState, dimmed: bool, history: list | None, history_tail: Any) -> None:
        """Redraw the plots whose data changed, all at once, at most every PLOT_SECONDS; a new run,
        a dimmed previous run, a resize or a new window length draw at once."""
        workload_key = (shown.run_id, len(shown.windows), dimmed)
        replot_workload, replot_util = workload_key != self._plotted, history is not None
        if not (replot_workload or replot_util):
            return
        same_view = self._plotted is not None and (self._plotted[0], self._plotted[2]) == (shown.run_id, dimmed)
        wait = self._last_plot + PLOT_SECONDS - time.monotonic()
        if same_view and wait > PLOT_SLACK:
            if not self._replot_scheduled:  # a later figures update draws it; this catches a last change
                self._replot_scheduled = True
                self.set_timer(wait + FIGURES_UPDATE_SECONDS, partial(self._scheduled_replot, self._last_plot))
            return
        charts = self.query_one(ChartsPanel)
        if replot_workload:
            charts.replot_workload(shown, previous=dimmed)
            self._plotted = workload_key
        if replot_util:
            charts.replot_utilization(history)
            self._plotted_history = history_tail
        self._last_plot = time.monotonic()

    def _scheduled_replot(self, last_plot: float) -> None:
        self._replot_scheduled = False
        if self._last_plot == last_plot:  # no figures update has redrawn the plots since
            self.update_panels(set())

    # -- keys -------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """None dims a key that does not apply now (shown in the footer, does nothing)."""
        return None if self.why_not(action, parameters) else True

    def why_not(self, action: str, parameters: tuple[object, ...]) -> str | None:
        """Why a key cannot act now, in words the user sees when pressing it; None when it can."""
        if action not in WORKLOAD_ACTIONS:
            return None
        if self.tuner.running:
            return None if action == "tune" else TUNING_REFUSAL  # `t` stops it
        config = self.config
        if config is None or self.workload is None:
            return "no workload (--no-workload): this key switches the workload"
        if action == "mode":
            if parameters[0] == config.mode:
                return f"already in {config.mode} mode"
            if parameters[0] == "pipeline" and not self.pipeline_possible():
                return "no pipeline mode here: torch-neuronx (inf2, trn) has no NeuronCore pipeline; use dp"
        elif action == "batch":
            if parameters[0] < 0 and config.batch <= 1:
                return "batch is 1 already"
            if parameters[0] > 0 and config.batch >= MAX_BATCH:
                return f"batch is at its limit ({MAX_BATCH})"
        elif action == "concurrency":
            if parameters[0] < 0 and config.concurrency <= 1:
                return "one request in flight already"
            if parameters[0] > 0 and config.concurrency >= MAX_CONCURRENCY:
                return f"concurrency is at its limit ({MAX_CONCURRENCY})"
        elif action == "copies":
            return self._why_not_copies(config, parameters[0])
        elif action == "next_backend" and len(self.backends) < 2:
            return f"{self.backends[0]} is the only backend on this host"
        elif action == "pause" and self.store.workload.state not in ("running", "paused"):
            return f"nothing to pause: the workload is {self.store.workload.state}"
        elif action == "export" and not self.tune_result_shown() and not self.store.workload.run.window_count:
            return "nothing measured yet to export"
        elif action == "tune_winner" and self.tuner.winner is None:
            return "the last tune found no winner" if self.tuner.document else "no tune yet: t runs one"
        return None

    def _why_not_copies(self, config: WorkloadConfig, factor: int) -> str | None:
        if config.mode == "pipeline":
            return "pipeline mode cuts one model into stages: switch to single (s) or dp (d) for copies"
        copies = self.current_copies()
        if factor < 0 and copies <= 1:
            return "one copy already"
        if factor > 0 and config.copies is not None and parse_copies(config.copies) is None:
            return "copies at max already (as many as fit)"
        if factor > 0 and copies >= MAX_COPIES:
            return f"copies at the limit ({MAX_COPIES})"
        return None

    def current_copies(self) -> int:
        """The copies asked for; with `max`, those the child loaded (MAX_COPIES until it says)."""
        assert self.config is not None
        if self.config.copies is None:
            return 1
        asked = parse_copies(self.config.copies)
        ready = self.store.workload.ready
        return asked if asked is not None else (ready.copies if ready is not None else MAX_COPIES)

    def on_key(self, event: Key) -> None:
        """A key whose action cannot run now says why, instead of doing nothing silently."""
        for binding in self.BINDINGS:
            if isinstance(binding, Binding) and event.key in binding.key.split(","):
                action, parameters = _parse_action(binding.action)
                reason = self.why_not(action, parameters)
                if reason:
                    self.store.log("info", "tui", f"{binding.description}: {reason}")
                return

    def resolved_backend(self) -> str:
        if self.config is None:
            return ""
        hello = self.store.workload.hello
        return effective_backend(self.config.backend, hello.backend if hello else None)

    def pipeline_possible(self) -> bool:
        """torch-neuronx (inf2, trn) has no NeuronCore pipeline; CPU and CUDA stage it themselves."""
        if self.resolved_backend() != "neuron":
            return True
        latest = self.store.latest
        return supports_pipeline(latest.instance.get("instance_type", "") if latest else "")

    def action_mode(self, mode: str) -> None:
        self.switch(mode=mode)

    def action_batch(self, factor: int) -> None:
        assert self.config is not None
        batch = self.config.batch * factor if factor > 0 else self.config.batch // -factor
        self.switch(batch=max(1, min(batch, MAX_BATCH)))

    def action_concurrency(self, factor: int) -> None:
        assert self.config is not None
        value = self.config.concurrency * factor if factor > 0 else self.config.concurrency // -factor
        self.switch(concurrency=max(1, min(value, MAX_CONCURRENCY)))

    def action_copies(self, factor: int) -> None:
        copies = self.current_copies()
        value = copies * factor if factor > 0 else copies // -factor
        self.switch(copies=str(max(1, min(value, MAX_COPIES))))

    def action_next_backend(self) -> None:
        current = self.resolved_backend()
        following = self.backends[(self.backends.index(current) + 1) % len(self.backends)] \
            if current in self.backends else self.backends[0]
        self.switch(backend=following)

    def action_pick_model(self) -> None:
        assert self.config is not None

        def chosen(model: str | None) -> None:
            if model and self.config is not None and model != self.config.model:
                self.switch(model=model)

        self.push_screen(ModelPicker(self.config.model), chosen)

    def action_window(self) -> None:
        self.window = WINDOWS[(WINDOWS.index(self.window) + 1) % len(WINDOWS)]
        self.query_one(ChartsPanel).window = self.window
        self._plotted = self._plotted_history = None
        self.update_panels(set())
        self.notify(f"history window: {window_label(self.window)}", timeout=2)

    def action_pause(self) -> None:
        self.session.pause_or_resume()

    def action_restart(self) -> None:
        self.store.log("info", "tui", "restarting the workload")
        self.session.restart()
        self.update_panels(set())

    def action_export(self) -> None:
        write = self.tuner.write if self.tune_result_shown() else self.session.export_current
        threading.Thread(target=self._export, args=(write,), name="export", daemon=True).start()

    def action_screenshot(self) -> None:
        path = self.save_screenshot(path=str(self.output_dir))
        self.store.log("info", "tui", f"screenshot saved to {path}")

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    # -- the tune ---------------------------------------------------------------------------
    def action_tune(self) -> None:
        """Open the tune form; while a tune runs, stop it."""
        if self.tuner.running:
            self._stop_tune()
            return
        assert self.config is not None
        current_p99 = self.session.workload().run.figures().latency.get("p99")
        self.push_screen(TuneForm(self.config, form_defaults(self.config, current_p99)), self._start_tune)

    def _start_tune(self, plan: TunePlan | None) -> None:
        if plan is None:
            return
        self.tuner.start(plan)
        self.query_one(TunePanel).begin(plan.slo, plan.budget.seconds)
        self.set_class(True, "-tune")
        self.refresh_bindings()

    def _stop_tune(self) -> None:
        self.store.log("info", "tune", "stopping the tune: the steps measured so far are kept")
        self.tuner.stop("the user")

    def action_close_tune(self) -> None:
        """escape: stop a running tune; close the panel of a finished one (the plots come back)."""
        if self.tuner.running:
            self._stop_tune()
        elif self.has_class("-tune"):
            self.set_class(False, "-tune")
            self._plotted = self._plotted_history = None
            self.call_after_refresh(self.update_panels, set())

    def tune_result_shown(self) -> bool:
        """A finished tune's plot is open: `e` exports the tune rather than the run."""
        return self.has_class("-tune") and not self.tuner.running and self.tuner.document is not None

    def action_tune_winner(self) -> None:
        self.switch(**self.tuner.winner_settings())

    @on(TuneProgress)
    def _on_tune_progress(self, message: TuneProgress) -> None:
        if self.tuner.running:
            self.query_one(TunePanel).show_progress(message.text, message.fraction)

    @on(TuneStepLanded)
    def _on_tune_step(self, message: TuneStepLanded) -> None:
        self.query_one(TunePanel).add_step(message.point, message.scenario, message.step)

    @on(TuneFinished)
    def _on_tune_finished(self, message: TuneFinished) -> None:
        outcome = self.tuner.finished(message)
        self.query_one(TunePanel).finish(outcome, has_winner=self.tuner.winner is not None)
        self.update_panels(set())
        self.refresh_bindings()

    # -- workload control -------------------------------------------------------------------
    def switch(self, **changes: Any) -> None:
        """Apply new settings: the child restarts with them; figures of this run stay dimmed."""
        problems, _ = self.session.switch(**changes)
        if problems:
            self.store.log("error", "tui", problems[0])
            return
        described = ", ".join(f"{name} {value}" for name, value in changes.items())
        self.store.log("info", "tui", f"switching to {described}: restarting the workload")
        self.update_panels(set())

    def _export(self, write: Callable[[Path], Path]) -> None:
        try:
            path = write(self.output_dir)
        except OSError as exc:
            self.post_message(Notice("error", f"export failed: {exc.strerror or exc}"))
        else:
            self.post_message(Notice("info", f"export written to {path}"))

    def _exit_on_signal(self, sig: int) -> None:
        """Exit as on `q`; if Textual cannot finish (its writer blocks on a terminal that hung
        up), a watchdog stops everything we started and ends the process anyway."""
        if not self._exit_watchdog.is_alive():
            self._exit_watchdog = threading.Thread(target=self._force_exit, args=(sig,), name="exit-watchdog",
                                                   daemon=True)
            self._exit_watchdog.start()
        self.exit()

    def _force_exit(self, sig: int) -> None:
        if self.returned.wait(FORCED_EXIT_SECONDS):
            return  # the app returned; run_tui cleans up as usual
        self.on_forced_exit()
        os._exit(128 + sig)

    def shutdown(self) -> None:
        """Stop the session (the workload child after any queued start): nothing outlives the app."""
        self.session.close()


def run_tui(args, config: WorkloadConfig) -> int:
    session = Session.from_args(args, None if args.no_workload else config)
    session.start(driver_ticks=True)  # metrics (or why not) and telemetry, before the first screen
    app = NeuronTUI(session, handle_signals=True)
    app.on_forced_exit = session.close  # from the exit watchdog if Textual hangs
    try:
        app.run()
    finally:
        app.returned.set()
        session.close()
    return app.return_code or 0
