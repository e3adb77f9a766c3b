"""The child->parent event protocol and its latency histogram."""
import json
import math
import random

import pytest

from workloads.protocol import (
    Error, Hello, LatencyHistogram, Phase, ProtocolError, Ready, Window, decode,
)


def exact_percentile(samples, q):
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def test_histogram_percentiles_within_half_a_percent_of_exact():
    rng = random.Random(7)
    samples = [rng.lognormvariate(math.log(0.003), 0.8) for _ in range(20000)]
    hist = LatencyHistogram()
    for s in samples:
        hist.record(s)
    for q in (50, 90, 95, 99, 99.9):
        assert hist.percentile(q) == pytest.approx(exact_percentile(samples, q), rel=0.006)
    summary = hist.summary()
    assert summary["min"] == min(samples) and summary["max"] == max(samples)
    assert summary["count"] == 20000
    assert summary["mean"] == pytest.approx(sum(samples) / len(samples))


def test_histograms_merge_as_if_recorded_together():
    a, b, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for i in range(1, 500):
        a.record(i * 1e-4)
        both.record(i * 1e-4)
    for i in range(1, 300):
        b.record(i * 3e-3)
        both.record(i * 3e-3)
    a.merge(b)
    assert a.buckets == both.buckets and a.count == both.count
    assert a.percentile(99) == both.percentile(99)


def test_histogram_round_trips_through_json():
    hist = LatencyHistogram()
    for s in (1e-5, 2e-3, 2e-3, 0.5):
        hist.record(s)
    again = LatencyHistogram.from_dict(json.loads(json.dumps(hist.to_dict())))
    assert again.summary() == hist.summary()


def test_events_round_trip_and_unknown_keys_are_ignored():
    hist = LatencyHistogram()
    hist.record(0.01)
    window = Window.from_histogram(10.0, 10.5, hist, errors=0, per_core_completed=[1])
    assert window.throughput == pytest.approx(2.0)
    for event in (Hello(pid=3, model="cnn"), Phase(phase="compiling", progress=0.5), Ready(params=10), window,
                  Error(kind="oom", message="CUDA out of memory")):
        assert decode(event.to_json()) == event
    line = json.dumps({"event": "phase", "v": 1, "phase": "warmup", "from_the_future": [1, 2]})
    assert decode(line) == Phase(phase="warmup")


@pytest.mark.parametrize("line", [
    b"", b"not json", b"[1,2]", b'{"event":"nope","v":1}', b'{"event":"phase","v":99}',
    b'{"event":"ready","v":1,"params":"many"}', b'{"event":"window","v":1,"completed":true}',
    b"\xff\xfe\x00garbage",
])
def test_bad_lines_raise_protocol_error_only(line):
    with pytest.raises(ProtocolError):
        decode(line)


def test_capacity_fields_round_trip_and_older_events_decode_without_them():
    hist = LatencyHistogram()
    hist.record(0.02, 2)
    ready = Ready(params=10, copies=3, memory_before_copies=500, memory_after_each_load=[600, 700, 800],
                  bytes_per_copy=100, copies_fit=9, memory_total_bytes=1400, memory_source="process resident",
                  bucket_lengths=[32, 64], bucket_compile_seconds=[1.5, 2.0])
    window = Window.from_histogram(1.0, 2.0, hist, errors=0, per_core_completed=[2])
    window.per_copy_completed, window.per_copy_latency_seconds = [2, 0, 0], [0.04, 0.0, 0.0]
    window.bucket_completed, window.bucket_latency = [0, 2], [LatencyHistogram().to_dict(), hist.to_dict()]
    window.real_tokens, window.pad_tokens, window.padding_ratio = 80, 48, 0.6
    assert decode(ready.to_json()) == ready and decode(window.to_json()) == window
    old = decode('{"event":"ready","v":1,"params":10}')
    assert old.copies == 1 and old.bytes_per_copy is None and old.bucket_lengths == []
    assert decode('{"event":"window","v":1}').padding_ratio is None


@pytest.mark.parametrize("line", [
    b'{"event":"ready","v":1,"memory_after_each_load":[1,-5]}',
    b'{"event":"ready","v":1,"bucket_compile_seconds":["slow"]}',
    b'{"event":"window","v":1,"per_copy_completed":[1.5]}',
    b'{"event":"window","v":1,"bucket_latency":[{"buckets":{"-3":1}}]}',
    b'{"event":"window","v":1,"bucket_latency":[7]}',
    b'{"event":"window","v":1,"padding_ratio":"most"}',
])
def test_bad_capacity_fields_are_bad_lines(line):
    with pytest.raises(ProtocolError):
        decode(line)
