"""The Store: bounded history, counters that only move forward, workload state."""
from neurontui.store import Store
from neurontui.telemetry import Core, EccCounters, Runtime, Snapshot
from workloads.protocol import LatencyHistogram, Window


def snapshot(t, utilizations, runtimes=()):
    return Snapshot(time=t, source="test",
                    cores=[Core("neuroncore", i, u) for i, u in enumerate(utilizations)],
                    runtimes=list(runtimes))


def test_history_is_bounded_whatever_the_run_time():
    store = Store(history_points=100)
    for t in range(1000):
        store.publish_snapshot(snapshot(t, [0.5, 1.0]))
    assert len(store.history) == 100
    assert store.history[-1].time == 999
    assert store.history[-1].utilization["neuroncore"] == 0.75


def test_runtime_counters_accumulate_and_vanished_runtimes_drop():
    store = Store()
    rt = Runtime(tag="1", key="1", status={"completed": 5}, errors={"generic": 1})
    store.publish_snapshot(snapshot(0, [0.1], [rt]))
    store.publish_snapshot(snapshot(1, [0.1], [Runtime(tag="1", key="1", status={"completed": 3}, errors={"generic": -4})]))
    assert store.runtime_totals["1"].status == {"completed": 8}
    assert store.runtime_totals["1"].errors == {"generic": 1}
    store.publish_snapshot(snapshot(2, [0.1], []))
    assert store.runtime_totals == {}


def test_ecc_totals_count_each_event_once_through_quiet_and_busy_reports():
    """Reports repeat their quiet devices (no event in the period) for hours: the totals must
    still take each event once, and drop a device that leaves, whatever came before."""
    store = Store()

    def publish(*devices):
        store.publish_snapshot(Snapshot(time=0.0, source="test", ecc=list(devices)))

    quiet = [EccCounters(0), EccCounters(1)]
    for _ in range(3):
        publish(*quiet)
    assert set(store.ecc_totals.values()) == {0} and len(store.ecc_totals) == 8
    publish(EccCounters(0), EccCounters(1, sram_ecc_corrected=2))
    publish(EccCounters(0), EccCounters(1, sram_ecc_corrected=2))  # the same counts again: a new period's events
    publish(*quiet)
    assert store.ecc_totals[(1, "sram_ecc_corrected")] == 4
    publish(EccCounters(1))  # device 0 left
    publish(EccCounters(1))
    assert sorted({device for device, _ in store.ecc_totals}) == [1]
    publish(EccCounters(0, mem_ecc_uncorrected=1), EccCounters(1))  # it came back with an event
    assert store.ecc_totals[(0, "mem_ecc_uncorrected")] == 1 and store.ecc_totals[(1, "sram_ecc_corrected")] == 4


def test_windows_feed_totals_and_a_restart_starts_a_new_run():
    store = Store()
    store.workload_starting({"model": "cnn"}, pid=1)
    hist = LatencyHistogram()
    for _ in range(10):
        hist.record(0.002)
    store.workload_event(Window.from_histogram(0, 0.5, hist, errors=1, per_core_completed=[10]))
    assert store.workload.run.completed == 10 and store.workload.run.errors == 1
    assert store.workload.run.histogram.count == 10 and store.workload.state == "running"
    first = store.workload.run_id
    store.workload_starting({"model": "bert"}, pid=2)
    assert store.workload.run_id == first + 1 and store.workload.run.completed == 0


def test_bad_lines_are_counted_and_the_last_kept():
    store = Store()
    for i in range(3):
        store.bad_line("neuron-monitor", f"garbage {i}", "not JSON")
    health = store.health["neuron-monitor"]
    assert health.bad_lines == 3 and health.last_bad_line == "garbage 2"
    assert sum(1 for e in store.events if e.source == "neuron-monitor") == 1
