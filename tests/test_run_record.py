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


def capacity_window(start: float, per_copy: list[int], bucket_latencies: list[list[float]], real: int, pad: int):
    """A window as a --copies, bucketed child sends it, read back through the protocol."""
    from workloads.protocol import LatencyHistogram, Window, decode

    buckets = []
    for latencies in bucket_latencies:
        hist = LatencyHistogram()
        for seconds in latencies:
            hist.record(seconds)
        buckets.append(hist)
    whole = LatencyHistogram()
    for hist in buckets:
        whole.merge(hist)
    window = Window.from_histogram(start, start + 0.5, whole, 0, [])
    window.per_copy_completed = per_copy
    window.per_copy_latency_seconds = [0.01 * n for n in per_copy]  # each copy's samples took 10 ms
    window.bucket_completed = [h.count for h in buckets]
    window.bucket_latency = [h.to_dict() for h in buckets]
    window.real_tokens, window.pad_tokens = real, pad
    window.padding_ratio = pad / real
    return decode(window.to_json())


def test_copies_and_buckets_add_up_over_the_whole_run_not_the_ring():
    from neurontui.run import RunRecord

    record = RunRecord(window_points=2)  # three windows: the ring keeps two, the totals all three
    record.add_window(capacity_window(0.0, [3, 1], [[0.002, 0.002], [0.008, 0.009]], real=40, pad=10))
    record.add_window(capacity_window(0.5, [2, 2], [[0.003], [0.010, 0.011, 0.012]], real=30, pad=30))
    record.add_window(capacity_window(1.0, [1, 0], [[0.002], []], real=10, pad=0))
    figures = record.figures()
    assert figures.per_copy_completed == (6, 3) and sum(figures.per_copy_completed) == figures.completed == 9
    assert figures.per_copy_mean_latency == pytest.approx((0.01, 0.01))
    assert figures.bucket_completed == (4, 5)
    assert figures.bucket_latency[0]["p50"] == pytest.approx(0.002, rel=0.01)
    assert figures.bucket_latency[1]["p99"] == pytest.approx(0.012, rel=0.01)
    # the run's ratio is its tokens summed (40 pad / 80 real), not a mean of the windows' ratios
    assert (figures.real_tokens, figures.pad_tokens, figures.padding_ratio) == (80, 40, 0.5)
    kept = record.copy()
    record.add_window(capacity_window(1.5, [1, 0], [[0.002], []], real=10, pad=0))
    assert kept.figures().per_copy_completed == (6, 3) and record.figures().per_copy_completed == (7, 3)
    assert kept.figures().bucket_completed == (4, 5) and record.figures().bucket_completed == (5, 5)


def test_a_run_without_copies_or_buckets_has_none_of_their_figures():
    from neurontui.run import RunRecord

    record = RunRecord()
    record.add_window(_plain_window())
    figures = record.figures()
    assert figures.per_copy_completed == () and figures.bucket_completed == () and figures.padding_ratio is None


def _plain_window():
    from workloads.protocol import LatencyHistogram, Window

    hist = LatencyHistogram()
    hist.record(0.004, 5)
    return Window.from_histogram(0.0, 0.5, hist, 0, [5])
