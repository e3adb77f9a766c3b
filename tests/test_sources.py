"""Telemetry sources end to end: a stand-in neuron-monitor through a real pipe, the host
sampler, replay and recording, and which source `--monitor` picks."""
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import types

import psutil
import pytest

from neurontui.cli import build_parser
from neurontui.sources import default_monitor_config, open_source
from neurontui.sources import neuron_monitor
from neurontui.sources.host import HostSource
from neurontui.sources.neuron_monitor import NeuronMonitorSource
from neurontui.sources.recorder import Recorder
from neurontui.sources.replay import ReplaySource
from neurontui.store import Store
from tests.conftest import FIXTURES, ROOT

FAKE = ROOT / "tests" / "fake_neuron_monitor.py"
TRN1N = FIXTURES / "v2_trn1n_32xlarge_2runtimes.json"
V1 = FIXTURES / "v1_from_docs.json"


def args_for(*argv):
    return build_parser().parse_args(list(argv))


def fake_cmd(*options):
    return shlex.join([sys.executable, str(FAKE), *options])


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def events(store, level=None):
    return [e.text for e in store.events if level is None or e.level == level]


# -- packaging and selection ---------------------------------------------------------------
def test_packaged_monitor_conf_is_the_top_level_one():
    packaged = open(default_monitor_config(), "rb").read()
    assert packaged == (ROOT / "monitor.conf").read_bytes()
    config = json.loads(packaged)
    assert config["period"] == "1s"
    runtime_groups = {m["type"] for m in config["neuron_runtimes"][0]["metrics"]}
    assert runtime_groups == {"neuroncore_counters", "memory_used", "neuron_runtime_vcpu_usage", "execution_stats"}
    assert {m["type"] for m in config["system_metrics"]} == {"vcpu_usage", "memory_info", "neuron_hw_counters"}


def test_source_selection():
    store = Store()
    assert open_source(args_for("--monitor", "none"), store) is None
    assert isinstance(open_source(args_for("--monitor", "host"), store), HostSource)
    replay = open_source(args_for("--monitor", f"replay:{V1}", "--replay-speed", "4", "--loop"), store)
    assert isinstance(replay, ReplaySource) and (replay.path, replay.speed, replay.loop) == (str(V1), 4.0, True)
    neuron = open_source(args_for("--monitor", "neuron"), store)
    assert neuron.command == ["neuron-monitor", "-c", default_monitor_config()]
    custom = open_source(args_for("--monitor", "neuron", "--monitor-config", "/etc/my.conf"), store)
    assert custom.command == ["neuron-monitor", "-c", "/etc/my.conf"]
    # --monitor-cmd is split like a shell: quoting holds, metacharacters stay literal words
    split = open_source(args_for("--monitor-cmd", "ssh host 'neuron-monitor -c x' ; rm -rf /"), store)
    assert isinstance(split, NeuronMonitorSource)
    assert split.command == ["ssh", "host", "neuron-monitor -c x", ";", "rm", "-rf", "/"]


def test_auto_picks_host_without_neuron_monitor(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert isinstance(open_source(args_for(), Store()), HostSource)


# -- neuron-monitor through a real pipe ------------------------------------------------------
def test_contract_fake_neuron_monitor_reads_survives_death_restarts(child_env):
    """Stand-in neuron-monitor (no Neuron hardware here): 3 reports, then it exits 3."""
    store = Store()
    outages = []
    store.subscribe(lambda what: what == "health" and not store.health["neuron-monitor"].up
                    and outages.append(store.health["neuron-monitor"].last_error))
    source = open_source(args_for("--monitor-cmd", fake_cmd("--count", "3", "--exit-code", "3")), store)
    source.backoff_initial = 0.1
    source.start()
    try:
        assert wait_for(lambda: store.health.get("neuron-monitor") and store.health["neuron-monitor"].samples >= 5)
        health = store.health["neuron-monitor"]
        assert health.restarts >= 1
        assert outages and "exited with status 3" in outages[0] and "fake neuron-monitor: done" in outages[0]
        assert any("exited with status 3" in text for text in events(store, "error"))
        assert any(text.startswith("neuron-monitor is back after") for text in events(store, "info"))
        cores = store.latest.cores_of("neuroncore")
        assert len(cores) == 32 and cores[6].utilization == pytest.approx(0.414)
        assert store.latest.source == "neuron-monitor"
    finally:
        source.stop()
    assert source.pid is None


def test_garbage_lines_are_counted_and_the_stream_goes_on():
    store = Store()
    source = NeuronMonitorSource(store, shlex.split(fake_cmd("--count", "0", "--garbage")))
    source.start()
    try:
        assert wait_for(lambda: store.latest is not None and store.health["neuron-monitor"].bad_lines >= 2)
        health = store.health["neuron-monitor"]
        assert health.samples >= 1 and health.last_bad_line.startswith("\\x00not json")  # shown escaped
        assert sum("unreadable line skipped" in text for text in events(store)) == 1
    finally:
        source.stop()


def test_a_command_that_cannot_start_is_an_outage_not_a_crash():
    store = Store()
    source = NeuronMonitorSource(store, ["neurontui-no-such-monitor"], backoff_initial=0.05, backoff_max=0.1)
    source.start()
    try:
        assert wait_for(lambda: store.health.get("neuron-monitor") and store.health["neuron-monitor"].restarts >= 3)
        health = store.health["neuron-monitor"]
        assert not health.up and health.down_since is not None
        assert "cannot run neurontui-no-such-monitor" in health.last_error
        assert len(events(store, "error")) == 1  # the outage is logged once, not once per retry
    finally:
        source.stop()


def test_stop_kills_a_monitor_that_ignores_sigterm(monkeypatch, tmp_path):
    monkeypatch.setattr(neuron_monitor, "STOP_GRACE_SECONDS", 0.3)
    script = tmp_path / "stubborn.py"
    script.write_text("import signal, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                      f"sys.stdout.write(open({str(V1)!r}).read().replace('\\n', '') + '\\n'); sys.stdout.flush()\n"
                      "time.sleep(60)\n")
    store = Store()
    source = NeuronMonitorSource(store, [sys.executable, str(script)])
    source.start()
    assert wait_for(lambda: store.latest is not None)
    pid = source.pid
    source.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


OWNER = r"""
import shlex, sys, time
from neurontui.sources.neuron_monitor import NeuronMonitorSource
from neurontui.store import Store
store = Store()
source = NeuronMonitorSource(store, shlex.split(sys.argv[1]))
source.start()
while source.pid is None or store.latest is None:
    time.sleep(0.02)
print(source.pid, flush=True)
time.sleep(60)
"""


def test_monitor_dies_with_a_sigkilled_neurontui(child_env):
    # --hang: the monitor goes silent, so no broken pipe can end it; only the parent-death signal
    owner = subprocess.Popen([sys.executable, "-c", OWNER, fake_cmd("--count", "1", "--hang")], stdout=subprocess.PIPE,
                             env=child_env, cwd=ROOT)
    monitor_pid = None
    try:
        monitor_pid = int(owner.stdout.readline())
        assert psutil.Process(monitor_pid).cmdline()[1].endswith("fake_neuron_monitor.py")  # exec'd, no wrapper left
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        assert wait_for(lambda: not psutil.pid_exists(monitor_pid)
                        or psutil.Process(monitor_pid).status() == psutil.STATUS_ZOMBIE, timeout=5)
    finally:
        if owner.poll() is None:
            owner.kill()
        kill_if_fake(monitor_pid)  # do not leave an orphan when the test fails


def kill_if_fake(pid):
    try:
        process = psutil.Process(pid)
        if any("fake_neuron_monitor" in word for word in process.cmdline()):
            process.kill()
    except (psutil.Error, TypeError, ValueError):
        pass


# -- host -------------------------------------------------------------------------------------
def test_host_source_samples_vcpus_and_memory():
    store = Store()
    source = HostSource(store, interval=0.2)
    source.start()
    try:
        assert wait_for(lambda: store.latest is not None)
    finally:
        source.stop()
    snap = store.latest
    vcpus = snap.cores_of("vcpu")
    assert len(vcpus) == snap.vcpu_count == os.cpu_count()
    assert all(0.0 <= core.utilization <= 1.0 for core in vcpus)
    memory = psutil.virtual_memory()
    assert snap.memory.host_total_bytes == memory.total
    assert 0 < snap.memory.host_used_bytes < memory.total
    if source.gpus.problem:  # no NVIDIA driver here: said once, no GPU cores
        assert snap.cores_of("gpu") == []
        assert sum("no NVIDIA GPU telemetry" in text for text in events(store, "info")) == 1
    else:
        assert snap.cores_of("gpu") and snap.memory.device_total_bytes > 0


# -- replay and record ----------------------------------------------------------------------------
def play(path, speed=1000.0, loop=False, store=None, recorder=None):
    store = store or Store()
    source = ReplaySource(store, str(path), speed=speed, loop=loop, recorder=recorder)
    snapshots = []
    store.subscribe(lambda what: what == "snapshot" and snapshots.append(store.latest))
    source.start()
    return source, store, snapshots


def test_replay_a_pretty_printed_report_then_finish():
    source, store, snapshots = play(TRN1N)
    assert source.finished.wait(5)
    assert len(snapshots) == 1 and snapshots[0].source == "replay"
    assert snapshots[0].cores_of("neuroncore")[6].utilization == pytest.approx(0.414)
    assert abs(snapshots[0].time - time.time()) < 5  # played now, not when captured
    assert events(store, "info")[-1] == f"replay of {TRN1N} finished after 1 report (--loop plays it again)"


def test_replay_paces_reports_by_their_period(tmp_path):
    report = json.loads(V1.read_text())  # groups' periods about 1 s
    path = tmp_path / "stream.jsonl"
    path.write_text("\n".join(json.dumps(report) for _ in range(3)) + "\n")
    started = time.monotonic()
    source, store, snapshots = play(path, speed=10.0)
    assert source.finished.wait(5)
    elapsed = time.monotonic() - started
    assert len(snapshots) == 3
    assert elapsed >= 0.18  # two gaps of ~1.03 s at 10x; a replay that ignores periods takes ~0


def test_replay_paces_a_recording_by_its_timestamps(tmp_path):
    report = json.loads(V1.read_text())
    path = tmp_path / "recording.jsonl"
    path.write_text("".join(json.dumps({"t": 100.0 + 2 * i, "source": "neuron-monitor", "report": report}) + "\n"
                            for i in range(3)))
    started = time.monotonic()
    source, store, snapshots = play(path, speed=20.0)
    assert source.finished.wait(5)
    assert len(snapshots) == 3
    assert time.monotonic() - started >= 0.18  # two 2 s gaps at 20x


def test_replay_keeps_its_pace_when_publishing_is_slow(monkeypatch):
    """Pacing is against deadlines, not a sleep after each publish: time spent handling a report
    is absorbed (sleeping gap/speed after it made a 20x replay of 64-core reports run at 15.5x).
    A fake clock stands in for the wall clock, so what is checked is the schedule, not the box."""
    from neurontui.sources import replay as replay_module

    clock = {"now": 100.0}
    monkeypatch.setattr(replay_module, "time", types.SimpleNamespace(monotonic=lambda: clock["now"], time=time.time))
    source = ReplaySource(Store(), "unused.jsonl", speed=20.0)
    waited = []

    def wait(seconds):  # the stop event's wait: time passes, nobody stops us
        waited.append(seconds)
        clock["now"] += seconds
        return False

    monkeypatch.setattr(source._stopping, "wait", wait)
    gap, handling, reports = 0.1, 0.035, 11
    start = clock["now"]
    for n in range(reports):
        assert source._wait_until_due(0.0 if n == 0 else gap) is False
        clock["now"] += handling  # publishing this report takes time
    assert clock["now"] - start == pytest.approx((reports - 1) * gap + handling)  # not reports * (gap + handling)
    assert waited and all(w == pytest.approx(gap - handling) for w in waited)

def test_recording_to_an_unwritable_path_is_reported_once():
    store = Store()
    recorder = Recorder("/nonexistent-dir/session.jsonl", store)
    for _ in range(3):
        recorder.report(b'{"system_data": {}}', 1.0, "neuron-monitor")
    assert recorder.failed and recorder.lines == 0
    assert [e.text for e in store.events] == [
        "recording to /nonexistent-dir/session.jsonl stopped: [Errno 2] No such file or directory: "
        "'/nonexistent-dir/session.jsonl'"]


def test_replay_loops_until_stopped_at_the_reports_pace(tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(json.loads(V1.read_text())) + "\n")
    started = time.monotonic()
    source, store, snapshots = play(path, loop=True, speed=20.0)
    assert wait_for(lambda: len(snapshots) >= 3)
    # each pass waits the report's ~1 s period (at 20x), rather than spinning
    assert time.monotonic() - started >= 0.09
    time.sleep(0.3)
    assert len(snapshots) < 15
    assert not source.finished.is_set()
    source.stop()
    assert source.finished.is_set()


def test_replay_of_a_missing_file_says_so_and_finishes():
    source, store, snapshots = play("/nonexistent/recording.jsonl")
    assert source.finished.wait(5)
    assert snapshots == []
    assert "cannot replay /nonexistent/recording.jsonl" in store.health["replay"].last_error


def test_record_then_replay_a_neuron_monitor_session(tmp_path):
    recording = tmp_path / "session.jsonl"
    store = Store()
    source = NeuronMonitorSource(store, shlex.split(fake_cmd("--count", "0", str(TRN1N), str(V1))),
                                 recorder=Recorder(str(recording), store))
    source.start()
    assert wait_for(lambda: store.health.get("neuron-monitor") and store.health["neuron-monitor"].samples >= 2)
    source.stop()
    lines = [json.loads(line) for line in recording.read_text().splitlines()]
    assert {"report", "snapshot"} <= {key for line in lines for key in line}
    assert all(isinstance(line["t"], float) for line in lines)
    _, replay_store, snapshots = play(recording)
    assert wait_for(lambda: len(snapshots) >= 2)
    assert len(snapshots[0].cores_of("neuroncore")) == 32 and len(snapshots[1].cores_of("neuroncore")) == 4
    assert snapshots[1].runtimes[0].latency_seconds["p50"] == pytest.approx(0.01100008)


def test_record_then_replay_a_host_session_keeps_the_figures(tmp_path):
    recording = tmp_path / "host.jsonl"
    store = Store()
    source = HostSource(store, interval=0.1, recorder=Recorder(str(recording), store))
    source.start()
    assert wait_for(lambda: store.health.get("host") and store.health["host"].samples >= 2)
    source.stop()
    recorded = [json.loads(line) for line in recording.read_text().splitlines()]
    first_recorded = recorded[0]["snapshot"]
    _, _, snapshots = play(recording)
    assert wait_for(lambda: len(snapshots) >= len(recorded))
    replayed = snapshots[0]
    assert [c.utilization for c in replayed.cores] == [c["utilization"] for c in first_recorded["cores"]]
    assert replayed.memory.host_used_bytes == first_recorded["memory"]["host_used_bytes"]


def test_recording_to_a_full_disk_is_reported_once_and_not_fatal():
    store = Store()
    source = NeuronMonitorSource(store, shlex.split(fake_cmd("--count", "0")), recorder=Recorder("/dev/full", store))
    source.start()
    try:
        assert wait_for(lambda: store.health.get("neuron-monitor") and store.health["neuron-monitor"].samples >= 3)
    finally:
        source.stop()
    failures = [text for text in events(store, "error") if "recording to /dev/full stopped" in text]
    assert len(failures) == 1 and "No space left" in failures[0]


def test_a_recording_cut_mid_line_replays_what_is_whole(tmp_path):
    path = tmp_path / "cut.jsonl"
    line = json.dumps({"t": 1.0, "source": "neuron-monitor", "report": json.loads(V1.read_text())})
    path.write_text(line + "\n" + line[: len(line) // 3])  # the process died while writing
    source, store, snapshots = play(path)
    assert source.finished.wait(5)
    assert len(snapshots) == 1 and store.health["replay"].bad_lines == 1


def test_stopping_sources_leaves_no_threads_behind():
    before = {t.name for t in threading.enumerate()}
    source, _, _ = play(V1, loop=True)
    source.stop()
    assert {t.name for t in threading.enumerate()} - before == set()


def test_replay_of_a_file_whose_first_line_was_cut_plays_the_whole_lines(tmp_path):
    report = json.dumps(json.loads(V1.read_text()))
    path = tmp_path / "cut.jsonl"
    path.write_text(report[: len(report) // 2] + "\n" + report + "\n" + report + "\n")
    source, store, snapshots = play(path)
    assert source.finished.wait(5)
    assert len(snapshots) == 2
    assert store.health["replay"].bad_lines == 1


# -- tampered recordings --------------------------------------------------------------------------
def recorded_snapshot(**changes):
    from neurontui.sources.neuron_report import parse_report

    body = parse_report(TRN1N.read_text()).snapshot.to_json_dict()
    body["cores"][6].update(changes)
    return {"t": 1.0, "source": "host", "snapshot": body}


def test_a_tampered_recording_plays_every_line_with_bad_values_unknown(tmp_path):
    path = tmp_path / "tampered.jsonl"
    lines = [recorded_snapshot(utilization="NaN"), recorded_snapshot(utilization=1e308),
             recorded_snapshot(index="many"), recorded_snapshot(memory_used_bytes=-5)]
    lines[1]["snapshot"]["runtimes"][0]["completed"] = "many"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    source, store, snapshots = play(path)
    assert source.finished.wait(10) and len(snapshots) == 4, [e.text for e in store.events]
    nan, huge, no_index, negative = snapshots
    assert nan.cores[6].utilization is None
    assert huge.cores[6].utilization == 1.0 and huge.runtimes[0].completed == 0
    assert len(no_index.cores) == len(nan.cores) - 1  # a core without its index is nobody's
    assert negative.cores[6].memory_used_bytes is None


def test_a_recorded_report_with_one_huge_integer_loses_that_value_not_the_report(tmp_path):
    report = json.loads(TRN1N.read_text())
    path = tmp_path / "huge.jsonl"
    line = json.dumps({"t": 1.0, "source": "neuron-monitor", "report": report})
    path.write_text(line.replace('"memory_total_bytes": 532523487232', '"memory_total_bytes": 1' + "0" * 5000) + "\n")
    source, store, snapshots = play(path)
    assert source.finished.wait(10) and len(snapshots) == 1
    assert snapshots[0].memory.host_total_bytes is None and snapshots[0].memory.host_used_bytes is not None


# -- line caps ----------------------------------------------------------------------------------------
class ReadlineSizes:
    """A stream that remembers how much each readline() asked for: none may ask for everything."""

    def __init__(self, data: bytes):
        import io

        self.stream = io.BytesIO(data)
        self.asked = []

    def readline(self, size=-1):
        self.asked.append(size)
        return self.stream.readline(size)


def test_a_line_over_the_cap_is_counted_by_its_length_never_read_whole():
    from neurontui.lines import TooLong, capped_lines

    stream = ReadlineSizes(b"short\n" + b"x" * 3_000_000 + b"\nafter\n" + b"y" * 5000)
    assert list(capped_lines(stream, 1000)) == [b"short\n", TooLong(3_000_001, b"x" * 1000), b"after\n",
                                                TooLong(5000, b"y" * 1000)]
    assert all(0 < size <= 2**20 for size in stream.asked)


def test_a_monitor_line_over_the_cap_is_a_bad_line_and_the_next_report_is_read(monkeypatch):
    monkeypatch.setattr(neuron_monitor, "REPORT_LINE_BYTES", 100_000)
    script = ("import sys; report = open(sys.argv[1]).read().replace('\\n', '');"
              "sys.stdout.write('x' * 300_000 + '\\n' + report + '\\n'); sys.stdout.flush();"
              "import time; time.sleep(60)")  # still running when checked: its exit would be the last error
    store = Store()
    source = NeuronMonitorSource(store, [sys.executable, "-c", script, str(V1)], backoff_initial=5.0)
    source.start()
    try:
        assert wait_for(lambda: store.health.get("neuron-monitor") and store.health["neuron-monitor"].samples >= 1)
    finally:
        source.stop()
    health = store.health["neuron-monitor"]
    assert health.bad_lines == 1 and "300001 bytes" in health.last_error


# -- a stalled monitor ---------------------------------------------------------------------------------
def exported(store):
    from prometheus_client import CollectorRegistry, generate_latest

    from neurontui.exporter_families import StoreCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store))
    return generate_latest(registry).decode()


def test_a_monitor_that_stops_reporting_is_down_after_3_periods_and_its_figures_leave_metrics():
    script = ("import sys, time; report = open(sys.argv[1]).read().replace('\\n', '');"
              "print(report, flush=True); print('monitor: stuck reading /dev/neuron0', file=sys.stderr, flush=True);"
              "sys.stdout.write(report[:100]); sys.stdout.flush(); time.sleep(120)")  # half a line, then silence
    store = Store()
    source = NeuronMonitorSource(store, [sys.executable, "-c", script, str(V1)])
    source.start()
    try:
        assert wait_for(lambda: store.health.get("neuron-monitor") and store.health["neuron-monitor"].samples == 1)
        text = exported(store)
        assert 'neurontui_source_up{source="neuron-monitor"} 1.0' in text and "neuroncore_utilization_ratio{" in text
        assert wait_for(lambda: not store.health["neuron-monitor"].up, timeout=30)
    finally:
        source.stop()
    health = store.health["neuron-monitor"]
    assert "sent no report for" in health.last_error and "stuck reading /dev/neuron0" in health.last_error
    text = exported(store)
    assert 'neurontui_source_up{source="neuron-monitor"} 0.0' in text and "neuroncore_utilization_ratio{" not in text
    assert [t for t in events(store, "error") if "sent no report" in t] == [health.last_error]


def test_a_monitor_that_never_reports_is_down_after_the_first_sample_grace(monkeypatch):
    monkeypatch.setattr(NeuronMonitorSource, "first_sample_grace", 1.0)
    script = "import sys, time; print('monitor: waiting for the driver', file=sys.stderr, flush=True); time.sleep(120)"
    store = Store()
    source = NeuronMonitorSource(store, [sys.executable, "-c", script])
    source.start()
    try:
        assert wait_for(lambda: store.health.get("neuron-monitor") and not store.health["neuron-monitor"].up,
                        timeout=30)
    finally:
        source.stop()
    assert "waiting for the driver" in store.health["neuron-monitor"].last_error
