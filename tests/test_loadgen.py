"""The load generator's scenarios, driven through its real interface: replicas are plain callables.

Replicas here sleep instead of running a model; the load generator is torch-free and cannot
tell the difference, so what is asserted (what gets counted, when, under which scenario) is
exactly what a real model run does.
"""
from __future__ import annotations

import threading
import time

import pytest

from workloads.config import WorkloadConfig
from workloads.loadgen import Control, Load, run
from workloads.rules import is_stable
from workloads.protocol import Phase, Window


def sleeper(seconds, calls=None):
    def replica(k):
        if calls is not None:
            calls.append(k)
        time.sleep(seconds)
    return replica


def measure(load, **settings):
    events = []
    config = WorkloadConfig(**{"warmup": 0.1, "window": 0.1, "duration": 0.5, **settings})
    outcome = run(load, config, events.append, Control())
    return outcome, [e for e in events if isinstance(e, Window)], events


def test_stability_follows_perf_analyzer_rule():
    assert is_stable([50, 100, 104, 98])
    assert not is_stable([100, 104])
    assert not is_stable([100, 130, 100])
    assert not is_stable([0, 0, 0])


def test_single_stream_excludes_warmup_and_counts_samples():
    calls = []
    outcome, windows, events = measure(Load([sleeper(0.004, calls)]), batch=4)
    recorded = sum(w.completed for w in windows)
    assert outcome.reason == "duration" and recorded == outcome.completed
    assert recorded % 4 == 0 and recorded // 4 < len(calls)  # warm-up calls ran but are not in any window
    assert sum(w.duration for w in windows) >= 0.5 - 1e-9  # measured until --duration (never a time bound)
    assert all(w.percentiles["p50"] >= 0.004 for w in windows)
    phases = [e.phase for e in events if isinstance(e, Phase)]
    assert phases[:2] == ["warmup", "running"] and phases[-1] == "running"


def test_two_replicas_need_two_requests_in_flight():
    two, windows, _ = measure(Load([sleeper(0.01), sleeper(0.01)]), concurrency=2)
    per_slot = [sum(w.per_core_completed[i] for w in windows) for i in range(2)]
    # Two in flight keep both replicas working (the rate that gives is a benchmark's question).
    assert all(n > 5 for n in per_slot) and sum(per_slot) == two.completed


def test_one_request_in_flight_leaves_the_second_replica_idle():
    _, windows, _ = measure(Load([sleeper(0.005), sleeper(0.005)]), concurrency=1)
    assert all(w.per_core_completed[1] == 0 for w in windows) and sum(w.completed for w in windows) > 0


def test_dynamic_batching_merges_waiting_requests():
    calls = []
    outcome, windows, _ = measure(Load([sleeper(0.01, calls)], max_merge=4), concurrency=4, batch=2)
    assert max(calls) > 1  # four callers, one replica: the ones waiting run as one batch
    assert outcome.completed % 2 == 0


def test_offline_keeps_every_replica_busy():
    outcome, windows, _ = measure(Load([sleeper(0.01), sleeper(0.01)]), scenario="offline")
    per_slot = [sum(w.per_core_completed[i] for w in windows) for i in range(2)]
    # every replica serves (how evenly is a matter of scheduling, for a benchmark, not a test)
    assert min(per_slot) > 0 and sum(per_slot) == outcome.completed


def test_server_latency_counts_queueing_from_the_scheduled_arrival():
    service = 0.01  # capacity 100 requests/s
    _, calm, _ = measure(Load([sleeper(service)]), scenario="server", qps=20, duration=1.0)
    _, overloaded, _ = measure(Load([sleeper(service)]), scenario="server", qps=300, duration=1.0)

    def p90(windows):
        return max(w.percentiles["p90"] for w in windows if w.completed)

    # Overloaded (300/s against at most 100/s: a sleep never returns early), arrivals wait behind
    # the busy replica and that wait is counted: one-sided, a slower machine only queues more.
    assert p90(overloaded) > 10 * service and p90(calm) >= service


def test_until_stable_stops_after_three_agreeing_windows():
    outcome, windows, _ = measure(Load([sleeper(0.002)]), duration=None, until_stable=True)
    assert outcome.reason == "stable" and len(windows) >= 3


def test_stop_command_ends_the_run_from_another_thread():
    control = Control()
    config = WorkloadConfig(warmup=0, window=0.05)
    threading.Timer(0.3, control.command, args=("stop",)).start()
    outcome = run(Load([sleeper(0.002)]), config, lambda e: None, control)
    assert outcome.reason == "stopped" and outcome.completed > 0


def test_a_failing_replica_surfaces_its_exception():
    def broken(k):
        raise RuntimeError("CUDA out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        measure(Load([broken, broken]), concurrency=2)


@pytest.mark.parametrize("settings", [{}, {"concurrency": 2}])
def test_a_run_that_completed_nothing_surfaces_the_exception_even_in_one_window(settings):
    # One window is the whole --duration (as when a loaded box wakes the timer late): fewer than
    # FAILED_WINDOWS_LIMIT windows, yet a model that never answered must not pass as a result.
    def broken(k):
        raise RuntimeError("CUDA out of memory")

    replicas = [broken] * settings.get("concurrency", 1)
    with pytest.raises(RuntimeError, match="out of memory"):
        measure(Load(replicas), duration=0.1, window=1.0, **settings)


def flaky(every, calls):
    """A replica whose every `every`-th request raises, as a request that hits a device fault."""
    def replica(k):
        calls.append(k)
        if len(calls) % every == 0:
            raise RuntimeError("device fault")
        time.sleep(0.002)
    return replica


@pytest.mark.parametrize("settings,replicas", [({}, 1), ({"concurrency": 2}, 2), ({"concurrency": 4}, 1)])
def test_a_failed_request_is_counted_as_errors_and_the_run_goes_on(settings, replicas):
    calls = []
    outcome, windows, _ = measure(Load([flaky(3, calls) for _ in range(replicas)]), batch=2, **settings)
    errors = sum(w.errors for w in windows)
    assert outcome.reason == "duration" and errors > 0 and errors % 2 == 0  # samples: a batch of 2 fails as 2
    assert outcome.errors == errors and outcome.completed == sum(w.completed for w in windows) > 0


def test_a_request_slower_than_the_timeout_is_an_error_not_a_completion():
    outcome, windows, _ = measure(Load([sleeper(0.003)]), request_timeout=0.001)
    assert sum(w.completed for w in windows) == 0 and sum(w.errors for w in windows) > 0
    assert outcome.reason == "duration"  # late answers are errors, not a broken model


@pytest.mark.parametrize("settings", [{}, {"concurrency": 2}])
def test_a_model_that_always_raises_ends_the_run_with_its_error(settings):
    calls = []

    def broken(k):  # the first call (never measured) passes; every later one raises
        calls.append(k)
        if len(calls) > 1:
            raise RuntimeError("shape mismatch")

    events = []
    config = WorkloadConfig(warmup=0.0, window=0.05, duration=5.0, **settings)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        run(Load([broken] * (1 + bool(settings))), config, events.append, Control())
    windows = [e for e in events if isinstance(e, Window)]
    assert windows and all(w.errors > 0 and w.completed == 0 for w in windows)


def test_copies_share_one_request_stream_and_their_counts_add_up():
    calls = [[], [], []]
    load = Load([sleeper(0.003, calls[i]) for i in range(3)], slots=[0, 0, 0], copies=[0, 1, 2])
    outcome, windows, _ = measure(load, concurrency=1)
    assert all(len(c) > 5 for c in calls)  # one request in flight still reaches every copy, in turn
    for w in windows:
        assert len(w.per_copy_completed) == 3 and sum(w.per_copy_completed) == w.completed
        assert w.per_core_completed == [w.completed]
        assert all((n == 0) == (s == 0) for n, s in zip(w.per_copy_completed, w.per_copy_latency_seconds))
    assert sum(sum(w.per_copy_completed) for w in windows) == outcome.completed


def test_variable_length_windows_count_samples_latency_and_tokens_per_bucket():
    shapes = [(0, 10, 6), (1, 40, 24), (1, 50, 14)]  # (bucket, real tokens, pad tokens) of each request
    turn = [0]

    def bucketed(k):
        bucket, real, pad = shapes[turn[0] % 3]
        turn[0] += 1
        time.sleep(0.002 if bucket == 0 else 0.006)
        return bucket, real, pad

    _, windows, _ = measure(Load([bucketed], buckets=[16, 64]), batch=2)
    assert windows and all(sum(w.bucket_completed) == w.completed for w in windows)
    busy = [w for w in windows if w.completed]
    assert all(w.padding_ratio == pytest.approx(w.pad_tokens / w.real_tokens) for w in busy)
    short, long = (sum(w.bucket_completed[b] for w in windows) for b in (0, 1))
    assert short > 0 and long == pytest.approx(2 * short, abs=4)  # every third request is the short bucket
    assert all(hist["count"] == n for w in windows for hist, n in zip(w.bucket_latency, w.bucket_completed))
    # Every request fills its bucket: real plus pad tokens are the bucket's length, per request of 2 samples.
    assert sum(w.real_tokens + w.pad_tokens for w in windows) == 16 * short // 2 + 64 * long // 2


def test_every_copy_is_warmed_up_before_measuring_even_with_no_warmup_seconds():
    calls = [[] for _ in range(5)]
    load = Load([sleeper(0.001, calls[i]) for i in range(5)], slots=[0] * 5, copies=list(range(5)))
    at_start = []

    def emit(event):
        if isinstance(event, Phase) and event.phase == "running" and not at_start:
            at_start.extend(len(c) for c in calls)
    run(load, WorkloadConfig(warmup=0.0, window=0.1, duration=0.2), emit, Control())
    assert min(at_start) >= 2  # each copy ran its profiling and its first optimized call unmeasured
