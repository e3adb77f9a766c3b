"""The lowest releases pyproject.toml accepts really run the code: each floor is installed into a
scratch directory (pip, no dependencies: the rest are this environment's) and the code that
depends on it runs there in a subprocess."""
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

SCRAPE = r"""
import prometheus_client, sys
from prometheus_client import CollectorRegistry, generate_latest
from neurontui.exporter_families import StoreCollector
from neurontui.store import Store
from workloads.protocol import Hello, LatencyHistogram, Window
store = Store()
store.workload_starting({"model": "cnn"}, pid=1)
store.workload_event(Hello(pid=1, model="cnn", backend="cpu"))
hist = LatencyHistogram()
hist.record(0.001, 5)
store.workload_event(Window.from_histogram(0.0, 0.5, hist, 1, [5]))
registry = CollectorRegistry(auto_describe=False)
registry.register(StoreCollector(store))
print(prometheus_client.__file__)
print(generate_latest(registry).decode())
"""

DASHBOARD = r"""
import asyncio, textual
from neurontui.session import Session
from neurontui.tui import scenes
from neurontui.tui.app import NeuronTUI
from neurontui.tui.widgets.cores import CoresPanel

async def main():
    store = scenes.inf1_scene()
    app = NeuronTUI(Session(store, scenes.scene_config(store)), host="floor")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause(0.3)
        await pilot.press("escape")
        await pilot.pause(1.2)
        print(textual.__file__)
        print("NeuronCores" in str(app.query_one(CoresPanel).render().renderables[0]))

asyncio.run(main())
"""


def floor(package: str) -> str:
    text = (ROOT / "pyproject.toml").read_text()
    return re.search(rf'"{package}>=([\d.]+)"', text).group(1)


def install(package: str, version: str, target) -> None:
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                          f"{package}=={version}"], capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        pytest.skip(f"cannot install {package}=={version} here: {out.stderr.strip().splitlines()[-1:]}")


def run_with(target, script: str) -> list[str]:
    env = {"PYTHONPATH": f"{target}:{ROOT}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.splitlines()


@pytest.mark.slow
def test_the_lowest_prometheus_client_scrapes(tmp_path):
    install("prometheus-client", floor("prometheus-client"), tmp_path)
    lines = run_with(tmp_path, SCRAPE)
    assert lines[0].startswith(str(tmp_path)), "the floor release, not this environment's, was imported"
    assert "neurontui_workload_requests_total 5.0" in lines and "neurontui_workload_errors_total 1.0" in lines


@pytest.mark.slow
def test_the_lowest_textual_draws_the_dashboard(tmp_path):
    install("textual", floor("textual"), tmp_path)
    lines = run_with(tmp_path, DASHBOARD)
    assert lines[0].startswith(str(tmp_path)) and lines[1] == "True"
