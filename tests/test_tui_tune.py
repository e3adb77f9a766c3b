"""The tune key (t) driven with Textual's Pilot over a real cnn child on the CPU: the form refuses
bad values under their field, a tune draws a point per step as it lands, ends with the winner in
the events and W switches to it; workload keys wait while it runs, and t stops it keeping its steps."""
import json

import jsonschema
import pytest

from neurontui.session import Session
from neurontui.store import Store
from neurontui.tui.app import TUNING_REFUSAL, NeuronTUI
from neurontui.tui.screens.tune_form import TuneForm, build_plan, suggested_bound
from neurontui.tui.tuner import rounded_down
from neurontui.tui.widgets.events import EventsPanel
from neurontui.tui.widgets.tune_plot import TunePanel
from neurontui.workload import WorkloadProcess
from tests.conftest import ROOT
from tests.test_tui import FAST_CPU_RUN, sync, wait_for
from workloads.config import WorkloadConfig

ONE_POINT = {"modes": "single", "batches": "1", "concurrency": "1"}
TUNE_SCHEMA = json.loads((ROOT / "docs" / "tune-schema.json").read_text())
TUNE_TIMEOUT = 240.0  # a busy 2-vCPU box starts each step's child in seconds


def events_panel_text(app: NeuronTUI) -> str:
    return "\n".join(line.text for line in app.query_one(EventsPanel).lines)


async def open_form(pilot, app: NeuronTUI, **values: str) -> TuneForm:
    await pilot.press("t")
    await wait_for(pilot, lambda: isinstance(app.screen, TuneForm), timeout=10, what="the tune form")
    form = app.screen
    for name, value in values.items():
        form.query_one(f"#tune-{name}").value = value
    return form


async def start_tune(pilot, app: NeuronTUI, budget: str) -> None:
    """A one-point tune with a bound every step meets (p99 10 s), started from the form."""
    await open_form(pilot, app, slo="p99=10s", budget=budget, **ONE_POINT)
    await pilot.press("enter")


@pytest.fixture
def tui_app(child_env, tmp_path):
    store = Store()
    app = NeuronTUI(Session(store, FAST_CPU_RUN, WorkloadProcess(store, env=child_env)), host="test-host",
                    output_dir=str(tmp_path))
    yield app
    app.shutdown()
    assert not app.workload.running


def test_the_form_reads_each_field_as_neurontui_tune_reads_its_flag():
    base = WorkloadConfig(model="cnn", backend="cpu")
    good = {"slo": "p99=15ms", "budget": "18", **ONE_POINT}
    plan, errors = build_plan(base, good)
    assert errors == {} and plan.slo.bound_seconds == 0.015 and [p.label for p in plan.points] == ["single batch 1"]
    _, errors = build_plan(base, {**good, "slo": "p99=abc", "batches": "1,x", "budget": "5"})
    assert errors == {"slo": "'abc' is not a latency; write it like 15ms, 800us or 0.2s",
                      "batches": "'x' is not a whole number"}  # the budget is judged once the points are known
    _, errors = build_plan(base, {**good, "budget": "5"})
    assert errors == {"budget": "5 s cannot search 1 point(s); give at least 18 s"}
    assert suggested_bound(0.003715) == pytest.approx(0.0074) and suggested_bound(None) == 0.015


def test_the_winners_rate_is_switched_to_rounded_down():
    assert rounded_down(412.345) == 412.0 and rounded_down(0.98765) == pytest.approx(0.987)


@sync
async def test_the_form_refuses_a_bad_bound_with_one_line_and_starts_nothing(tui_app):
    app = tui_app
    async with app.run_test(size=(100, 30)) as pilot:
        form = await open_form(pilot, app)
        assert form.query_one("#tune-slo").value == "p99=15 ms"  # the current run has no p99 yet
        assert form.query_one("#tune-modes").value == "single,dp"
        await pilot.press(*"p99=abc", "enter")
        await pilot.pause()
        errors = form.errors()
        assert errors["slo"] == "'abc' is not a latency; write it like 15ms, 800us or 0.2s"
        assert [name for name, text in errors.items() if text] == ["slo"]
        assert app.screen is form and not app.tuner.running
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, TuneForm) and not app.tuner.running and not app.has_class("-tune")


@pytest.mark.slow
@sync
async def test_a_tune_plots_each_step_ends_with_the_winner_and_W_switches_to_it(tui_app, tmp_path):
    app, store = tui_app, tui_app.store
    async with app.run_test(size=(100, 30)) as pilot:
        await start_tune(pilot, app, "30")
        await wait_for(pilot, lambda: app.tuner.running, timeout=5, what="the tune to start")
        assert app.query_one(TunePanel).display and not app.query_one("#charts").display

        await pilot.press("d", "plus")  # the tune owns the workload while it runs
        await wait_for(pilot, lambda: {f"dp: {TUNING_REFUSAL}", f"batch+: {TUNING_REFUSAL}"}
                       <= {e.text for e in store.events}, timeout=5, what="the refusals")

        await wait_for(pilot, lambda: app.tuner.document is not None, timeout=TUNE_TIMEOUT, what="the tune's end")
        document = app.tuner.document
        served = [step for point in document["points"] for step in point["steps"] if step["scenario"] != "offline"]
        panel = app.query_one(TunePanel)
        assert served and len(panel.plotted) == len(served)  # one point per server step
        assert "●" in panel.query_one("#plot-tune").render().plain
        winner = document["winner"]
        assert winner is not None, events_panel_text(app)
        await pilot.pause(0.5)
        assert "Winner within p99 10 s: single batch 1 at" in events_panel_text(app)
        assert app.config == FAST_CPU_RUN  # back to the settings from before the tune

        await pilot.press("e")  # with the tune's plot open: the tune, as `neurontui tune --export` writes it
        await wait_for(pilot, lambda: list(tmp_path.glob("neurontui-tune-*.json")), timeout=20, what="the export")
        written = json.loads(next(tmp_path.glob("neurontui-tune-*.json")).read_text())
        jsonschema.validate(written, TUNE_SCHEMA)
        assert written["winner"] == winner and written["complete"] is True

        await pilot.press("W")
        assert (app.config.mode, app.config.batch, app.config.scenario) == ("single", 1, "server")
        assert app.config.qps == rounded_down(winner["rate"])
        await wait_for(pilot, lambda: store.workload.config.get("qps") == app.config.qps, what="the winner running")
        await pilot.press("escape")  # the plots come back
        await pilot.pause()
        assert app.query_one("#charts").display and not app.query_one(TunePanel).display


@pytest.mark.slow
@sync
async def test_t_stops_a_tune_and_keeps_its_steps(tui_app):
    app, store = tui_app, tui_app.store
    async with app.run_test(size=(100, 30)) as pilot:
        await start_tune(pilot, app, "120")
        panel = app.query_one(TunePanel)
        await wait_for(pilot, lambda: panel.plotted, timeout=TUNE_TIMEOUT, what="a server step")
        await pilot.press("t")
        await wait_for(pilot, lambda: app.tuner.document is not None, timeout=60, what="the tune to stop")
        assert app.tuner.document["interrupted_by"] == "the user"
        assert panel.plotted and len(panel.plotted) >= 1  # what it found stays on the plot
        assert "the tune was stopped by the user" in "\n".join(e.text for e in store.events)
        assert app.config == FAST_CPU_RUN


@pytest.mark.slow
@sync
async def test_quitting_during_a_tune_leaves_no_child(tui_app):
    app, store = tui_app, tui_app.store
    async with app.run_test(size=(100, 30)) as pilot:
        await start_tune(pilot, app, "60")
        await wait_for(pilot, lambda: app.tuner.running and store.workload.state == "running",
                       timeout=TUNE_TIMEOUT, what="a step running")
        await pilot.press("q")
    assert app.tuner.measurer.stopped_by == "the app's exit"  # the fixture then checks no child is left
