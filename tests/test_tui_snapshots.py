"""SVG snapshots of the main screen at 80x24 and 160x48, from recorded neuron-monitor reports
(trn1n.32xlarge, inf1.xlarge) through the real parser and Store, with a fixed clock and host
name so they are deterministic. `pytest --snapshot-update tests/test_tui_snapshots.py`
accepts a deliberate change after looking at the new SVGs."""
import time

import pytest

from neurontui.store import Store
from neurontui.tui import scenes
from neurontui.session import Session
from neurontui.tui.app import NeuronTUI


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def scene_app(store: Store, workload: bool = True) -> NeuronTUI:
    return NeuronTUI(Session(store, scenes.scene_config(store) if workload else None, None), host="ip-10-0-0-1", backends=["cpu", "neuron"])


def compare(snap_compare, app, size, press=()):
    with scenes.frozen_store_clock():
        return snap_compare(app, terminal_size=size, press=press)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_trn1_dataparallel_at_batch1(snap_compare, size):
    assert compare(snap_compare, scene_app(scenes.trn1_scene()), size)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_inf1_pipeline_run(snap_compare, size):
    assert compare(snap_compare, scene_app(scenes.inf1_scene()), size)


def test_inf1_compiling_shows_progress(snap_compare):
    assert compare(snap_compare, scene_app(scenes.inf1_scene(compiling=True)), (80, 24))


def test_hardware_only(snap_compare):
    assert compare(snap_compare, scene_app(scenes.trn1_scene(workload=False), workload=False), (80, 24))


def test_help_screen(snap_compare):
    assert compare(snap_compare, scene_app(scenes.inf1_scene()), (80, 24), press=["question_mark"])
