"""The dashboard driven with Textual's Pilot: keys change the settings and restart the real
workload child, panels show what the Store holds, keys are dimmed where they do not apply."""
import asyncio
import functools
import json
import os
import re
import signal
import time
from types import SimpleNamespace

import jsonschema
import pytest

from neurontui.sources.neuron_report import parse_report
from neurontui.store import Store
from neurontui.telemetry import Core, Snapshot
from neurontui.tui import app as app_module, scenes
from neurontui.session import Session
from neurontui.tui.app import FIGURES_UPDATE_SECONDS, PLOT_SECONDS, PLOT_SLACK, NeuronTUI
from neurontui.tui.screens.help import HelpScreen
from neurontui.tui.widgets.charts import ChartsPanel
from neurontui.tui.widgets.cores import CoresPanel
from neurontui.tui.widgets.events import EventsPanel
from neurontui.tui.widgets.header import HeaderBar
from neurontui.tui.widgets.memory import MemoryPanel
from neurontui.tui.widgets.workload import WorkloadPanel
from neurontui.workload import WorkloadProcess
from tests.conftest import FIXTURES, ROOT
from workloads.config import WorkloadConfig
from workloads.protocol import LatencyHistogram, Phase, Ready, Window

FAST_CPU_RUN = WorkloadConfig(model="cnn", backend="cpu", warmup=0.2, window=0.25)


def sync(scenario):
    """Run an async Pilot scenario as a plain test (no asyncio plugin needed)."""
    @functools.wraps(scenario)
    def test(*args, **kwargs):
        return asyncio.run(scenario(*args, **kwargs))
    return test


def plain(widget) -> str:
    rendered = widget.render()
    return "\n".join(text.plain for text in getattr(rendered, "renderables", [rendered]))


async def wait_for(pilot, predicate, timeout=90.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.2)


def snapshot_with_cores(n: int, kind: str = "neuroncore") -> Snapshot:
    return Snapshot(time=1000.0, source="replay", cores=[Core(kind=kind, index=i, utilization=i / n) for i in range(n)])


def events_text(store: Store) -> str:
    return "\n".join(f"{e.level} {e.source}: {e.text}" for e in store.events)


@pytest.mark.parametrize("size,dense", [((160, 48), False), ((80, 24), True)])
@sync
async def test_no_core_is_dropped_on_a_64_core_host(size, dense):
    store = Store()
    store.publish_snapshot(snapshot_with_cores(64))
    app = NeuronTUI(Session(store, None), host="test-host")
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        text = plain(app.query_one(CoresPanel))
        assert "NeuronCores ×64" in text
        if dense:  # one cell per core
            assert sum(text.count(cell) for cell in "·▁▂▃▄▅▆▇█") == 64
        else:  # one labelled bar per core
            labels = {int(line.split()[i]) for line in text.splitlines()[1:] for i in range(0, len(line.split()), 3)}
            assert labels == set(range(64))


@sync
async def test_panels_are_redrawn_only_when_what_they_show_changes(monkeypatch):
    """A saturated box reads 100% second after second: the bars, memory and header are not
    redrawn for it (each redraw takes CPU from the workload), but any visible change is."""
    store = Store()
    app = NeuronTUI(Session(store, None), host="test-host")
    redrawn: list[str] = []
    for panel in (CoresPanel, MemoryPanel, HeaderBar):
        monkeypatch.setattr(panel, "refresh", lambda self, *a, **k: (redrawn.append(type(self).__name__), self)[1])
    async with app.run_test(size=(100, 30)) as pilot:
        def publish(utilization: float) -> None:
            snapshot = Snapshot(time=time.time(), source="host", cores=[Core("vcpu", i, utilization) for i in (0, 1)])
            snapshot.memory.host_used_bytes, snapshot.memory.host_total_bytes = 2**30, 2**34
            store.publish_snapshot(snapshot)

        publish(1.0)
        await wait_for(pilot, lambda: "100%" in plain(app.query_one(CoresPanel)), timeout=5, what="the first figures")
        await pilot.pause(1.2)  # the next figures update is due within a second
        redrawn.clear()
        for _ in range(2):
            publish(1.0)
            await pilot.pause(1.2)
        assert redrawn == []
        publish(0.5)
        await wait_for(pilot, lambda: "50%" in plain(app.query_one(CoresPanel)), timeout=5, what="the change")
        assert redrawn == ["CoresPanel"]


@sync
async def test_resize_switches_between_compact_and_full_layout():
    store = Store()
    store.publish_snapshot(parse_report((FIXTURES / "v2_trn1n_32xlarge_2runtimes.json").read_text(), 1000.0).snapshot)
    app = NeuronTUI(Session(store, WorkloadConfig(), None), host="test-host")  # the settings shown; no child here
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.has_class("-compact") and not app.query_one("#plot-util").display
        await pilot.resize_terminal(160, 48)
        await pilot.pause()
        assert not app.has_class("-compact") and app.query_one("#plot-util").display
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert app.has_class("-compact")


@sync
async def test_without_a_workload_its_keys_are_dimmed_and_do_nothing():
    store = Store()
    app = NeuronTUI(Session(store, None), host="test-host")
    async with app.run_test() as pilot:
        for action, parameters in (("mode", ("dp",)), ("batch", (2,)), ("pause", ()), ("restart", ()),
                                   ("export", ()), ("pick_model", ())):
            assert app.check_action(action, parameters) is None, action
        assert app.check_action("window", ()) and app.check_action("help", ())
        await pilot.press("d", "plus", "r")
        assert app.config is None and store.workload.run_id == 0
        assert "hardware only" in plain(app.query_one(WorkloadPanel))
        # the utilization plot takes the workload plots' place, even on a small terminal
        assert app.query_one("#plot-util").display and not app.query_one("#plot-throughput").display


@sync
async def test_previous_run_figures_stay_dimmed_until_the_new_run_has_some():
    store = Store()
    scenes.publish_run(store, FAST_CPU_RUN, "cpu", Ready(params=3_165_826, cores_used=2), windows=10, latency=0.004,
                       end=time.time())
    app = NeuronTUI(Session(store, FAST_CPU_RUN, None), host="test-host")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.3)
        panel = app.query_one(WorkloadPanel)
        assert "previous run" not in plain(panel) and "throughput" in plain(panel)
        store.workload_starting(WorkloadConfig(model="cnn", backend="cpu", batch=2).as_dict(), pid=2)
        await pilot.pause(0.5)
        rendered = panel.render()
        assert "previous run (cnn single b1 c1)" in plain(panel)
        throughput = next(t for t in rendered.renderables if t.plain.startswith("throughput"))
        assert all("dim" in str(span.style) for span in throughput.spans)  # old figures, dimmed
        scenes.publish_run(store, WorkloadConfig(model="cnn", backend="cpu", batch=2), "cpu",
                           Ready(params=3_165_826, cores_used=2), windows=1, latency=0.006, end=time.time())
        await pilot.pause(0.5)
        assert "previous run" not in plain(panel) and "throughput" in plain(panel)


class SimulatedTimers:
    """The app's clock and timers, stepped by the test: no wall time is measured."""

    def __init__(self, monkeypatch) -> None:
        self.now = 1000.0
        self.pending: list[list] = []  # [due, callback, stopped]
        # the app module's clock only: Textual, pytest and the Store keep the real one
        monkeypatch.setattr(app_module, "time", SimpleNamespace(monotonic=lambda: self.now, time=time.time))

    def set_timer(self, delay, callback):
        timer = [self.now + delay, callback, False]
        self.pending.append(timer)
        return SimpleNamespace(stop=lambda: timer.__setitem__(2, True))

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for timer in sorted(self.pending, key=lambda t: t[0]):
            if timer[0] <= self.now and not timer[2]:
                timer[2] = True
                timer[1]()
        self.pending = [timer for timer in self.pending if not timer[2]]


def completed_shown(app) -> int:
    return int(re.search(r"done (\d+)", plain(app.query_one(WorkloadPanel))).group(1))


@sync
async def test_plots_redraw_every_other_second_and_the_last_window_still_reaches_them(monkeypatch):
    """Plots cost the most to draw, and on a busy box that CPU is taken from the workload: they
    redraw every PLOT_SECONDS while the figures move each second, and a last window that no
    later update follows is drawn all the same. The app's clock and timers are simulated, so
    a slow box cannot fail this: no wall time is measured."""
    store = Store()
    scenes.publish_run(store, FAST_CPU_RUN, "cpu", Ready(params=3_165_826, cores_used=2), windows=2, latency=0.004,
                       end=time.time())
    clock = SimulatedTimers(monkeypatch)
    drawn: list[tuple[float, int]] = []  # (simulated time, windows on the throughput plot) at each redraw
    original = ChartsPanel.replot_workload
    monkeypatch.setattr(ChartsPanel, "replot_workload", lambda panel, wl, previous: (
        drawn.append((clock.now, len(wl.windows))), original(panel, wl, previous)))
    app = NeuronTUI(Session(store, FAST_CPU_RUN, None), host="test-host")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.5)
        clock.now = time.monotonic() + PLOT_SECONDS  # past what mounting saw: the next update is due
        monkeypatch.setattr(app, "set_timer", clock.set_timer)
        before, done_before = len(drawn), completed_shown(app)
        latency = LatencyHistogram()
        latency.record(0.004, 1)

        def send_window() -> None:
            now = time.time()
            store.workload_event(Window.from_histogram(now - 0.5, now, latency, 0, []))

        for step in range(24):  # six seconds of windows and more, two a second as the child sends them
            send_window()
            await pilot.pause()  # the app takes the Store's message
            clock.advance(0.5)
            await pilot.pause()
            if step >= 11 and drawn[-1][0] == clock.now:
                break  # a redraw has just been: the next window must wait for the plot
        redraws = [when for when, _ in drawn[before:]]
        assert len(redraws) >= 3, drawn
        assert all(later - earlier >= PLOT_SECONDS - PLOT_SLACK for earlier, later in zip(redraws, redraws[1:])), drawn
        assert completed_shown(app) > done_before  # the figures kept moving meanwhile
        done_before = completed_shown(app)
        send_window()  # the last one: nothing follows it
        await pilot.pause()
        clock.advance(FIGURES_UPDATE_SECONDS)
        await pilot.pause()
        assert completed_shown(app) > done_before  # the figures show it at once
        assert drawn[-1][1] < len(store.workload.windows)  # the plot waits its turn
        for _ in range(round(PLOT_SECONDS / 0.5)):
            clock.advance(0.5)
            await pilot.pause()
        assert drawn[-1][1] == len(store.workload.windows), drawn


def test_figures_update_once_a_second_however_changes_and_events_interleave(monkeypatch):
    """Windows ten times a second, telemetry once, and now and then an event that shows at once:
    the screen still updates once per FIGURES_UPDATE_SECONDS. (An event's immediate update once
    left the figures update already due to fire; from then on two update cycles ran side by side,
    each orphaning the other's timer: twice the screen's CPU for the rest of the run.)"""
    clock = SimulatedTimers(monkeypatch)
    app = NeuronTUI(Session(Store(), None), host="test-host")
    updates: list[float] = []
    monkeypatch.setattr(app, "set_timer", clock.set_timer)
    monkeypatch.setattr(app, "post_message", lambda message: app._on_store_changed())
    monkeypatch.setattr(app, "update_panels", lambda kinds: updates.append(clock.now))
    for step in range(100):  # ten simulated seconds
        clock.advance(0.1)
        app._store_changed("workload")
        if step % 10 == 3:
            app._store_changed("snapshot")
        if step in (12, 19, 26):  # events in the first three seconds
            app._store_changed("event")
    figures_only = [t for t in updates if t > 1000.0 + 4.0]  # after the events' own updates
    assert len(figures_only) == round(6 / FIGURES_UPDATE_SECONDS), [round(t - 1000.0, 2) for t in updates]
    assert len(clock.pending) == 1  # one update due, not one per cycle


@sync
async def test_the_screen_update_logs_each_phase_once_where_the_ticker_no_longer_does():
    """The dashboard ticks its session before each screen update (the session's ticker thread then
    only reads the host load): each phase still reaches the event log, once."""
    store = Store()
    app = NeuronTUI(Session(store, FAST_CPU_RUN, None), host="test-host")
    async with app.run_test(size=(100, 30)) as pilot:
        assert app.session._driver_ticks
        store.workload_starting(FAST_CPU_RUN.as_dict(), pid=2)
        store.workload_event(Phase(phase="building", detail="cnn: float [B,1,28,28]"))
        await wait_for(pilot, lambda: "workload: building: cnn" in events_text(store), timeout=10,
                       what="the phase in the event log")
        store.workload_event(Phase(phase="warmup"))
        await wait_for(pilot, lambda: "workload: warmup" in events_text(store), timeout=10, what="the next phase")
        await pilot.pause(1.5)  # more screen updates: no phase twice
        assert events_text(store).count("workload: building") == 1


@sync
async def test_window_key_cycles_1_5_15_minutes():
    app = NeuronTUI(Session(Store(), None), host="test-host")
    async with app.run_test() as pilot:
        seen = [app.window]
        for _ in range(3):
            await pilot.press("w")
            seen.append(app.window)
        assert seen == [60, 300, 900, 60]


@sync
async def test_help_opens_and_closes_and_screenshot_key_writes_an_svg(tmp_path):
    app = NeuronTUI(Session(Store(), None), host="test-host", output_dir=str(tmp_path))
    async with app.run_test() as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("S")
        await pilot.pause()
    svgs = list(tmp_path.glob("*.svg"))
    assert len(svgs) == 1 and svgs[0].read_text().lstrip().startswith("<svg")


@pytest.mark.slow
@sync
async def test_a_failing_child_is_an_event_and_r_restarts_it(child_env):
    """Neuron on a host without Neuron: the child fails for real; the dashboard says so and lives on."""
    store = Store()
    trn1 = parse_report((FIXTURES / "v2_trn1n_32xlarge_2runtimes.json").read_text(), 1000.0).snapshot
    store.publish_snapshot(trn1)
    workload = WorkloadProcess(store, env=child_env)
    app = NeuronTUI(Session(store, WorkloadConfig(model="cnn", backend="neuron"), workload), host="test-host")
    try:
        async with app.run_test() as pilot:
            await wait_for(pilot, lambda: store.workload.state in ("crashed", "exited"), what="the child to fail")
            await pilot.pause(0.3)
            assert any(e.level == "error" and e.source == "workload" for e in store.events), events_text(store)
            assert "workload" in "\n".join(line.text for line in app.query_one(EventsPanel).lines)
            # torch-neuronx on trn1 has no NeuronCore pipeline: the key is dimmed
            assert app.check_action("mode", ("pipeline",)) is None
            assert app.check_action("pause", ()) is None  # nothing runs to pause
            first_run = store.workload.run_id
            await pilot.press("r")
            await wait_for(pilot, lambda: store.workload.run_id > first_run, what="a restart")
            await pilot.press("m", "down", "enter")  # cnn -> resnet50
            assert app.config.model == "resnet50"
    finally:
        app.shutdown()
    assert not workload.running


@pytest.mark.slow
@sync
async def test_keys_restart_the_child_and_old_figures_stay_dimmed(child_env, tmp_path):
    store = Store()
    workload = WorkloadProcess(store, env=child_env)
    app = NeuronTUI(Session(store, FAST_CPU_RUN, workload), host="test-host", output_dir=str(tmp_path))
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: len(store.workload.windows) >= 2, what="first windows")
            first = store.workload
            assert app.check_action("batch", (-2,)) is None  # batch 1 cannot go lower
            assert app.check_action("concurrency", (-2,)) is None
            assert app.check_action("mode", ("single",)) is None  # already single
            await pilot.press("minus", "C", "s")  # keys that cannot act say why in the events
            await wait_for(pilot, lambda: {"batch-: batch is 1 already", "conc-: one request in flight already",
                                           "single: already in single mode"} <= {e.text for e in store.events},
                           timeout=5, what="the reasons")

            await pilot.press("e")  # export of the run on screen
            await wait_for(pilot, lambda: list(tmp_path.glob("*.json")), timeout=20, what="the export")
            document = json.loads(next(tmp_path.glob("*.json")).read_text())
            jsonschema.validate(document, json.loads((ROOT / "docs" / "export-schema.json").read_text()))
            row = document["rows"][0]
            assert (row["model"], row["status"]) == ("cnn", "ok") and row["completed"] > 0

            await pilot.press("plus", "c")
            assert (app.config.batch, app.config.concurrency) == (2, 2)
            await wait_for(pilot, lambda: (store.workload.config.get("batch"), store.workload.config.get("concurrency"))
                           == (2, 2), what="restart with new settings")
            assert store.workload.run_id > first.run_id
            await pilot.pause(0.6)  # the screen catches up (it updates at most 4 times a second)
            if not store.workload.windows:  # the last run's figures, dimmed, until new ones arrive
                assert "previous run" in plain(app.query_one(WorkloadPanel))
            await wait_for(pilot, lambda: store.workload.windows, what="windows of the new run")
            # figures reach the screen within a second (FIGURES_UPDATE_SECONDS)
            await wait_for(pilot, lambda: "previous run" not in plain(app.query_one(WorkloadPanel)), timeout=3,
                           what="the new run's figures in place of the dimmed ones")
            assert app.check_action("batch", (-2,)) and app.check_action("concurrency", (-2,))

            await pilot.press("space")
            await wait_for(pilot, lambda: store.workload.state == "paused", timeout=10, what="pause")
            await pilot.press("space")
            await wait_for(pilot, lambda: store.workload.state == "running", timeout=10, what="resume")

            await pilot.press("d")
            assert app.config.mode == "dp"
            await wait_for(pilot, lambda: store.workload.config.get("mode") == "dp", what="restart in DataParallel")
            child = workload.pid
    finally:
        app.shutdown()
    assert not workload.running and child is not None


@pytest.mark.slow
@sync
async def test_a_killed_child_is_an_event_with_its_status_and_r_brings_it_back(child_env):
    """The workload dying (as under the OOM killer) costs the run, not the dashboard."""
    store = Store()
    workload = WorkloadProcess(store, env=child_env)
    app = NeuronTUI(Session(store, FAST_CPU_RUN, workload), host="test-host")
    try:
        async with app.run_test() as pilot:
            await wait_for(pilot, lambda: store.workload.windows, what="first windows")
            os.kill(workload.pid, signal.SIGKILL)
            await wait_for(pilot, lambda: store.workload.state == "crashed", timeout=20, what="the crash")
            await pilot.pause(0.5)
            shown = "\n".join(line.text for line in app.query_one(EventsPanel).lines)
            assert "killed by SIGKILL" in shown and "press r to restart" in shown
            assert "crashed" in plain(app.query_one(WorkloadPanel))
            assert app.check_action("restart", ()) and app.check_action("pause", ()) is None
            await pilot.press("r")
            await wait_for(pilot, lambda: store.workload.state == "running" and store.workload.windows,
                           what="the restarted run")
    finally:
        app.shutdown()


@sync
async def test_vcpu_bars_show_the_part_other_processes_take():
    store = Store()
    store.publish_snapshot(Snapshot(time=1.0, source="host", cores=[
        Core("vcpu", 0, utilization=0.8, others_utilization=0.5), Core("vcpu", 1, utilization=0.2, others_utilization=0.0)]))
    app = NeuronTUI(Session(store, None), host="test-host")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        lines = plain(app.query_one(CoresPanel)).splitlines()
        assert "▒ others 25%" in lines[0]  # the mean over the vCPUs
        assert "▒" in lines[1] and "▒" not in lines[2]


def bucketed_window(start: float, bucket_completed: list[int], real: int, pad: int) -> Window:
    hist = LatencyHistogram()
    buckets = []
    for n in bucket_completed:
        bucket = LatencyHistogram()
        if n:
            bucket.record(0.05, n)
        hist.merge(bucket)
        buckets.append(bucket.to_dict())
    window = Window.from_histogram(start, start + 0.5, hist, 0, [])
    window.bucket_completed, window.bucket_latency = bucket_completed, buckets
    window.real_tokens, window.pad_tokens, window.padding_ratio = real, pad, pad / real
    return window


@sync
async def test_the_ready_line_shows_copies_and_the_bucket_mix_at_80x24():
    store = Store()
    config = WorkloadConfig(model="bert", backend="cpu", copies="4", seq_len_dist="uniform:16-128",
                            buckets="32,64,128")
    scenes.publish_run(store, config, "cpu", Ready(params=109_482_240, copies=4, bytes_per_copy=440 << 20,
                                                   copies_fit=52, bucket_lengths=[32, 64, 128]),
                       windows=0, latency=0.05, end=time.time())
    now = time.time()
    store.workload_event(bucketed_window(now - 1.0, [3, 5, 2], real=600, pad=200))
    store.workload_event(bucketed_window(now - 0.5, [1, 1, 8], real=900, pad=100))
    app = NeuronTUI(Session(store, config, None), host="test-host")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        panel = app.query_one(WorkloadPanel)
        *_, ready, mix = plain(panel).splitlines()
        # 80 columns: params give way before compile and load (the panel's rule)
        assert ready.startswith("4 copies × 440.0 MiB (fit 52) · ") and ready.endswith("load 0.0 s")
        # the run's tokens: 300 pad over 1500 real; the counts per bucket over both windows
        assert mix == "pad 20% · 32:4 64:6 128:10"
        assert len(plain(panel).splitlines()) == 5  # the panel's fixed height
        # a new run with no figures yet under the previous run's: the mix leads its ready line
        store.workload_starting(config.as_dict(), pid=2)
        store.workload_event(Ready(params=109_482_240, bucket_lengths=[32, 64, 128]))
        await pilot.pause(0.5)
        lines = plain(panel).splitlines()
        assert "previous run" in lines[1] and len(lines) == 5
        assert lines[-1].startswith("pad - · 32:0 64:0 128:0 · ")


@sync
async def test_a_run_without_copies_or_buckets_keeps_its_ready_line():
    store = Store()
    scenes.publish_run(store, FAST_CPU_RUN, "cpu", Ready(params=3_165_826, cores_used=1), windows=2,
                       latency=0.004, end=time.time())
    app = NeuronTUI(Session(store, FAST_CPU_RUN, None), host="test-host")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        assert plain(app.query_one(WorkloadPanel)).splitlines()[-1] == "1 core · compile 0.0 s · load 0.0 s"


@pytest.mark.slow
@sync
async def test_copies_keys_double_and_halve_the_loaded_copies(child_env):
    store = Store()
    workload = WorkloadProcess(store, env=child_env)
    app = NeuronTUI(Session(store, FAST_CPU_RUN, workload), host="test-host")
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: store.workload.ready is not None, what="the first load")
            assert app.check_action("copies", (-2,)) is None
            await pilot.press("N")
            await wait_for(pilot, lambda: "copies-: one copy already" in {e.text for e in store.events},
                           timeout=5, what="the reason")
            await pilot.press("n")
            assert app.config.copies == "2"
            await wait_for(pilot, lambda: store.workload.ready is not None and store.workload.ready.copies == 2
                           and store.workload.run.window_count, what="two copies loaded and measured")
            await wait_for(pilot, lambda: "2 copies ×" in plain(app.query_one(WorkloadPanel)), timeout=5,
                           what="the copies on screen")
            assert app.check_action("copies", (-2,))  # now it can halve
            assert sum(store.workload.run.figures().per_copy_completed) == store.workload.run.figures().completed
    finally:
        app.shutdown()
    assert not workload.running


@pytest.mark.parametrize("changes,factor,reason", [
    ({"mode": "pipeline"}, 2, "pipeline mode cuts one model into stages: switch to single (s) or dp (d) for copies"),
    ({"copies": "max"}, 2, "copies at max already (as many as fit)"),
    ({"copies": "256"}, 2, "copies at the limit (256)"),
    ({}, -2, "one copy already"),
    ({"copies": "4"}, -2, None),
    ({"copies": "max"}, -2, None),  # halves what max loaded
])
def test_the_copies_keys_say_why_they_cannot_act(changes, factor, reason):
    store = Store()
    config = WorkloadConfig(model="cnn", backend="cpu", **changes)
    app = NeuronTUI(Session(store, config, WorkloadProcess(store)), host="test-host")  # never started
    assert app.why_not("copies", (factor,)) == reason


def test_copies_max_halves_the_copies_it_loaded():
    store = Store()
    config = WorkloadConfig(model="cnn", backend="cpu", copies="max")
    store.workload_starting(config.as_dict(), pid=7)
    store.workload_event(Ready(params=3_165_826, copies=12))
    app = NeuronTUI(Session(store, config, WorkloadProcess(store)), host="test-host")
    assert app.current_copies() == 12
