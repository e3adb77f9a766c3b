"""Hostile input for the workload event reader: `decode` and the WorkloadProcess stdout path.

Whatever the child prints, no exception escapes; a line is either a sound event (its figures
render in the Store, the progress line, the hints and a Prometheus scrape) or a bad line,
counted in `store.health["workload"]` with the last one kept for display.
"""
import json
import os
import stat
import sys
from dataclasses import fields

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from neurontui.exporter_families import StoreCollector
from neurontui.hints import update_hints
from neurontui.progress import describe
from neurontui.store import Store
from neurontui.workload import WorkloadProcess
from workloads.config import WorkloadConfig
from tests.conftest import json_paths
from workloads.protocol import EVENT_TYPES, Bye, Hello, LatencyHistogram, ProtocolError, Window, decode

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIELD_NAMES = {kind: [f.name for f in fields(cls)] for kind, cls in EVENT_TYPES.items()}
HISTOGRAM_KEYS = ["gamma", "min_seconds", "buckets", "count", "sum", "min", "max"]
KEYS = st.sampled_from(sorted({name for names in FIELD_NAMES.values() for name in names}
                              | {"event", "v", "p50", "p99", "0", "-1", "70000", *HISTOGRAM_KEYS})) | st.text(max_size=6)
NUMBERS = (st.integers() | st.integers(min_value=2**63, max_value=10**400) | st.integers(max_value=-1)
           | st.floats(allow_nan=True, allow_infinity=True))
SCALARS = st.none() | st.booleans() | NUMBERS | st.text(max_size=10)
JSON = st.recursive(SCALARS, lambda children: st.lists(children, max_size=4)
                    | st.dictionaries(KEYS, children, max_size=5), max_leaves=30)


def real_window() -> Window:
    hist = LatencyHistogram()
    for seconds in (0.001, 0.002, 0.0021, 0.05):
        hist.record(seconds, n=2)
    return Window.from_histogram(100.0, 100.5, hist, errors=1, per_core_completed=[5, 3])


def exposition(store: Store) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store))
    return generate_latest(registry).decode()


def absorb(store: Store, line: str | bytes) -> object | None:
    """What the reader does with one line, then everything a user would look at; None for a bad line."""
    try:
        event = decode(line)
    except ProtocolError:
        return None
    if not isinstance(event, Bye):
        store.workload_event(event)
    workload = store.workload
    assert isinstance(workload.run.completed, int) and 0 <= workload.run.completed < 2**64
    assert isinstance(workload.run.errors, int) and 0 <= workload.run.errors < 2**64
    json.dumps(workload.run.histogram.summary(), allow_nan=False)
    describe(workload, 10.0)
    update_hints(store)
    # the scrape must parse back, with no value a counter cannot hold
    for family in text_string_to_metric_families(exposition(store)):
        for sample in family.samples:
            assert sample.value == sample.value or family.type == "gauge", sample  # NaN only where "unknown"
    return event


def running_store() -> Store:
    store = Store()
    store.workload_starting(WorkloadConfig(model="cnn", backend="cpu").as_dict(), pid=1)
    return store


@st.composite
def event_shapes(draw):
    """Objects that look like events: a known kind, some of its fields, random values."""
    kind = draw(st.sampled_from(sorted(EVENT_TYPES)))
    body = {"event": kind, "v": draw(st.just(1) | JSON)}
    for name in draw(st.lists(st.sampled_from(FIELD_NAMES[kind]), unique=True, max_size=5)):
        body[name] = draw(JSON)
    return body


@st.composite
def mutated_windows(draw):
    """A real window with one value anywhere in it (histogram buckets included) replaced."""
    body = json.loads(real_window().to_json())
    path = draw(st.sampled_from([p for p in json_paths(body) if p]))
    target = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = draw(JSON)
    return body


@FUZZ
@given(JSON)
def test_random_json_shapes(value):
    absorb(running_store(), json.dumps(value))


@FUZZ
@given(event_shapes())
def test_random_events_of_known_kinds(body):
    absorb(running_store(), json.dumps(body))


@FUZZ
@given(mutated_windows())
def test_windows_with_one_value_swapped(body):
    store = running_store()
    absorb(store, real_window().to_json())
    absorb(store, json.dumps(body))
    assert store.workload.run.completed >= 8  # the sound window before it still counts


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes(raw):
    absorb(running_store(), raw)


@FUZZ
@given(st.integers(min_value=0, max_value=400))
def test_lines_cut_anywhere(cut):
    line = real_window().to_json()
    event = absorb(running_store(), line[:cut])
    assert event is None or cut >= len(line) - 1


@pytest.mark.parametrize("line", [
    '{"event":"window","v":1,"throughput":NaN}',
    '{"event":"window","v":1,"throughput":Infinity}',
    '{"event":"ready","v":1,"compile_seconds":-Infinity}',
    '{"event":"window","v":1,"throughput":1e400}',
    '{"event":"window","v":1,"completed":' + "9" * 400 + '}',
    '{"event":"window","v":1,"completed":' + "9" * 5000 + '}',  # over Python's int-parsing limit
    '{"event":"window","v":1,"completed":-5}',
    '{"event":"window","v":1,"latency":{"buckets":{"99999999":1},"count":1,"sum":1,"min":1,"max":1}}',
    '{"event":"window","v":1,"latency":{"buckets":{"-3":1},"count":1,"sum":1,"min":1,"max":1}}',
    '{"event":"window","v":1,"latency":{"buckets":"many"}}',
    '{"event":"window","v":1,"latency":{"buckets":[[1,2]]}}',
    '{"event":"window","v":1,"latency":{"buckets":{"5":-1}}}',
    '{"event":"window","v":1,"latency":{"buckets":{"5":1},"min":"nan","max":1,"sum":1}}',
    '{"event":"window","v":1,"latency":{"gamma":2}}',
    '{"event":"window","v":1,"percentiles":{"p50":"fast"}}',
    '{"event":"window","v":1,"per_core_completed":["a"]}',
    '{"event":"phase","v":1,"phase":"crashed"}',
    '{"event":"hello","v":1,"batch":1.5}',
    "[" * 100_000 + "]" * 100_000,
    '{"a":' * 100_000 + "1" + "}" * 100_000,
], ids=lambda line: line[:60])
def test_targeted_hostile_lines_are_bad_lines(line):
    store = running_store()
    assert absorb(store, line) is None
    assert store.workload.state == "starting"


def test_sound_events_still_pass():
    store = running_store()
    for line in (Hello(pid=7, model="cnn", backend="cpu").to_json(), real_window().to_json(),
                 '{"event":"window","v":1,"completed":0,"from_the_future":{"x":1e400}}'):
        assert absorb(store, line) is not None, line
    assert store.workload.run.completed == 8 and store.workload.state == "running"


# -- the real reader: a child process that prints hostile lines into a real pipe -------------------
FAKE_CHILD = """#!{python}
# Stands in for `python -m workloads ...`: ignores its arguments, prints the file named in
# HOSTILE_LINES byte for byte, then exits with HOSTILE_EXIT.
import os, sys
with open(os.environ["HOSTILE_LINES"], "rb") as lines:
    sys.stdout.buffer.write(lines.read())
sys.stdout.buffer.flush()
sys.exit(int(os.environ.get("HOSTILE_EXIT", "0")))
"""
HELLO = Hello(pid=1, model="cnn", backend="cpu").to_json().encode() + b"\n"
BYE = Bye(reason="done", completed=8).to_json().encode() + b"\n"


def read_through_a_pipe(tmp_path, payload: bytes, exit_code: int = 0, store: Store | None = None) -> Store:
    script = tmp_path / "fake_child"
    script.write_text(FAKE_CHILD.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "lines").write_bytes(payload)
    env = dict(os.environ, HOSTILE_LINES=str(tmp_path / "lines"), HOSTILE_EXIT=str(exit_code))
    store = store or Store()
    child = WorkloadProcess(store, python=str(script), env=env)
    child.start(WorkloadConfig(model="cnn", backend="cpu"))
    try:
        assert child.wait(30), "the reader never reached the end of the child's output"
    finally:
        child.stop(grace=1.0)
    return store


WINDOW = real_window().to_json().encode() + b"\n"


@pytest.mark.parametrize("junk,shown", [
    (b"\xff\xfe\x00 not utf-8 \x80\n", "\ufffd\ufffd\\x00 not utf-8 \ufffd"),  # shown escaped
    (b'{"event":"window","v":1,"throughput":NaN}\n', '{"event":"window","v":1,"throughput":NaN}'),
    (b'{"event":"window","v":1,"latency":{"buckets":"many"}}\n', '{"event":"window","v":1,"latency":{"buck'),
    (b"[" * 200_000 + b"\n", "[" * 200),
    (b'{"event":"window","v":1,"pad":"' + b"x" * (10 * 1024 * 1024) + b'"\n', '{"event":"window","v":1,"pad":"xxx'),
], ids=["invalid-utf8", "nan", "buckets-not-object", "deep-nesting", "10mb-unterminated-string"])
def test_reader_counts_a_bad_line_keeps_it_and_reads_on(tmp_path, junk, shown):
    store = read_through_a_pipe(tmp_path, HELLO + junk + WINDOW + BYE)
    health = store.health["workload"]
    assert health.bad_lines == 1
    assert health.last_bad_line.startswith(shown[:200])
    assert len(health.last_bad_line) <= 200
    assert store.workload.run.completed == 8  # the window after the bad line was read
    assert store.workload.state == "exited"


def test_reader_keeps_a_10_mb_valid_window(tmp_path):
    body = json.loads(WINDOW)
    body["padding"] = "x" * (10 * 1024 * 1024)  # unknown keys are ignored, however long the line
    store = read_through_a_pipe(tmp_path, HELLO + json.dumps(body).encode() + b"\n" + BYE)
    assert store.workload.run.completed == 8 and "workload" not in store.health


def test_reader_counts_a_partial_line_at_eof_and_reports_the_exit(tmp_path):
    store = read_through_a_pipe(tmp_path, HELLO + WINDOW + WINDOW[:40], exit_code=1)
    health = store.health["workload"]
    assert health.bad_lines == 1 and health.last_bad_line == WINDOW[:40].decode()
    assert store.workload.run.completed == 8
    assert store.workload.state == "crashed" and store.workload.exit_code == 1
    assert any(e.level == "error" and "exited with status 1" in e.text for e in store.events)


def test_reader_survives_many_bad_lines_and_keeps_the_last(tmp_path):
    junk = b"".join(b"garbage %d\n" % i for i in range(2000))
    store = read_through_a_pipe(tmp_path, HELLO + junk + WINDOW + BYE)
    assert store.health["workload"].bad_lines == 2000
    assert store.health["workload"].last_bad_line == "garbage 1999"
    # one warning for the first, the rest counted: the event log is not flooded
    assert sum("unreadable line" in e.text for e in store.events) == 1


def test_a_failing_consumer_does_not_stop_the_reader(tmp_path):
    store = Store()

    def broken_listener(what):
        if what == "workload" and store.workload.windows and store.workload.state == "running":
            raise ZeroDivisionError("a widget's bug")

    store.subscribe(broken_listener)
    store = read_through_a_pipe(tmp_path, HELLO + WINDOW + WINDOW + BYE, store=store)
    assert store.workload.run.completed == 16 and store.workload.state == "exited"
    assert "ZeroDivisionError" in store.health["workload"].last_error


def test_a_window_with_more_buckets_than_any_latency_range_needs_is_a_bad_line():
    hist = LatencyHistogram()
    for index in range(LatencyHistogram.MAX_BUCKETS + 1):
        hist.buckets[index] = 1
    hist.count, hist.total, hist.minimum, hist.maximum = len(hist.buckets), 1.0, 1e-7, 1.0
    line = Window.from_histogram(0.0, 1.0, hist, 0, []).to_json()
    with pytest.raises(ProtocolError, match="buckets"):
        decode(line)


def test_the_childs_strings_are_decoded_without_terminal_escapes_or_surrogates():
    line = json.dumps({"event": "error", "v": 1, "kind": "oom\x1b[2J", "message": "boom\nforged\ud800"})
    event = decode(line)
    assert event.kind == "oom\\x1b[2J" and event.message == "boom\\x0aforged\ufffd"


def test_a_child_line_over_the_cap_is_a_bad_line_and_reading_goes_on(tmp_path, monkeypatch):
    from neurontui import workload

    monkeypatch.setattr(workload, "EVENT_LINE_BYTES", 10_000)
    store = read_through_a_pipe(tmp_path, HELLO + b"x" * 50_000 + b"\n" + BYE)
    assert store.health["workload"].bad_lines == 1 and store.workload.hello is not None
