"""One record of the run: the screen, /metrics and the export row read the same figures,
however long the run (more windows than the ring kept for plots) and whatever failed."""
import asyncio
import os
import socket
import sys
import urllib.request
from argparse import Namespace

import pytest

from neurontui.format import format_count, format_seconds
from neurontui.session import Session
from neurontui.store import Store
from neurontui.workload import WorkloadProcess
from tests.conftest import ROOT, wait_for
from workloads.config import WorkloadConfig

SCRIPTED = ROOT / "tests" / "scripted_workload.py"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def metrics_args(port: int) -> Namespace:
    return Namespace(prometheus_port=port, prometheus_addr="127.0.0.1", monitor="none", record=None,
                     tls_cert=None, tls_key=None, tls_client_ca=None, aws_labels=False)


def scrape(url: str) -> dict[str, float]:
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
            if line.startswith("neurontui_workload_") and "{" not in line}


def screen_text(session: Session) -> str:
    """The workload panel as the dashboard draws it for this Store."""
    from neurontui.tui.app import NeuronTUI
    from neurontui.tui.widgets.workload import WorkloadPanel

    async def draw() -> str:
        app = NeuronTUI(Session(session.store, session.config), host="test-host")  # no child: it only shows
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause(1.2)
            rendered = app.query_one(WorkloadPanel).render()
            return "\n".join(text.plain for text in rendered.renderables)

    return asyncio.run(draw())


@pytest.fixture
def scripted_session(tmp_path):
    sessions = []

    def start(windows: int, errors: int) -> Session:
        store = Store()
        env = dict(os.environ, SCRIPTED_WINDOWS=str(windows), SCRIPTED_ERRORS=str(errors))
        child = WorkloadProcess(store, python=sys.executable, env=env)
        child.argv = lambda config: [sys.executable, str(SCRIPTED)]
        session = Session(store, WorkloadConfig(model="cnn", backend="cpu"), child, metrics_args(free_port()))
        sessions.append(session)
        session.start(metrics_required=True)
        session.restart().result()
        assert session.wait(60), "the scripted child never finished"
        return session

    yield start
    for session in sessions:
        session.close()


def test_a_run_longer_than_the_ring_agrees_on_screen_in_metrics_and_in_the_export(scripted_session):
    """4,000 windows against a ring of 3,600: the export used to re-merge only the ring's (p50 10 ms
    and 36,000 completed) while Prometheus and the screen counted all (1 ms, 40,000)."""
    session = scripted_session(windows=4000, errors=1)
    store = session.store
    assert len(store.workload.windows) == 3600 and store.workload.run.window_count == 4000
    row = session.row()
    assert row["window_count"] == 4000 and row["completed"] == 40_000 and row["errors"] == 4000
    assert row["latency_p50_seconds"] == pytest.approx(0.001, rel=0.01)  # half the run at 1 ms, half at 10 ms
    assert row["duration_seconds"] == pytest.approx(2000.0)
    metrics = scrape(session.metrics_url)
    assert metrics["neurontui_workload_requests_total"] == row["completed"]
    assert metrics["neurontui_workload_errors_total"] == row["errors"]
    assert metrics["neurontui_workload_latency_seconds_count"] == row["latency_count"] == row["completed"]
    shown = screen_text(session)
    assert f"done {format_count(row['completed'])}" in shown and f"errors {row['errors']}" in shown
    assert f"run p50 {format_seconds(row['latency_p50_seconds'])}" in shown


@pytest.mark.slow
def test_requests_that_time_out_are_errors_on_screen_in_metrics_and_in_the_row(child_env):
    """A real child whose every request outlives --request-timeout: no completion, every sample an error."""
    store = Store()
    config = WorkloadConfig(model="cnn", backend="cpu", warmup=0.2, window=0.25, duration=1.5,
                            request_timeout=1e-6)
    session = Session(store, config, WorkloadProcess(store, env=child_env), metrics_args(free_port()))
    try:
        session.start(metrics_required=True)
        session.restart().result()
        wait_for(lambda: store.workload.run.errors > 0, 120, "the first errors")
        metrics = scrape(session.metrics_url)
        assert metrics["neurontui_workload_errors_total"] > 0
        assert session.wait(60)
        row = session.row()
        assert row["completed"] == 0 and row["errors"] > 0 and row["status"] == "failed"
        assert scrape(session.metrics_url)["neurontui_workload_errors_total"] == row["errors"]
        assert f"errors {row['errors']}" in screen_text(session)
    finally:
        session.close()


BURNER = "import time\nend = time.time() + 60\nwhile time.time() < end:\n    pass\n"


@pytest.mark.slow
def test_a_host_busy_with_other_processes_marks_the_run_and_says_so(child_env, tmp_path):
    """Two CPU burners that are not ours (re-parented away from this process tree) load the 2 vCPUs
    while a real child measures: the verdict says the host was busy, the screen and the log too."""
    import subprocess

    pids = tmp_path / "burners"
    launcher = f"for i in 1 2; do {sys.executable} -c '{BURNER}' & echo $! >> {pids}; done"
    subprocess.run(["setsid", "sh", "-c", launcher], check=True, timeout=10)  # the shell exits: burners orphaned
    store = Store()
    config = WorkloadConfig(model="cnn", backend="cpu", warmup=0.2, window=0.25, duration=3.0)
    session = Session(store, config, WorkloadProcess(store, env=child_env), metrics_args(0))
    try:
        session.start()
        session.restart().result()
        assert session.wait(120)
        row = session.row()
    finally:
        session.close()
        for pid in pids.read_text().split():
            try:
                os.kill(int(pid), 9)
            except ProcessLookupError:
                pass
    assert row["status"] == "ok" and row["host_others_cpu_share"] > 0.10
    assert row["stability"].startswith("unstable (host busy: ") and "used by other processes" in row["stability"]
    assert any(e.level == "warning" and e.source == "host" and "host busy" in e.text for e in store.events)
    assert "host busy" in screen_text(session)
