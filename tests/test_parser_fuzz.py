"""Hostile input for the neuron-monitor parser and stream reader: no exception escapes,
whatever comes out is a valid snapshot (ratios in 0..1, plain JSON), bad lines are counted."""
import copy
import json
import sys
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurontui.sources.neuron_monitor import NeuronMonitorSource
from neurontui.sources.neuron_report import parse_report
from neurontui.sources.neuron_report import ParseResult
from neurontui.sources.recorder import snapshot_from_json
from neurontui.store import Store
from tests.conftest import FIXTURES, ROOT, json_paths
from workloads.text import clean_text

TRN1N_TEXT = (FIXTURES / "v2_trn1n_32xlarge_2runtimes.json").read_text()
TRN1N = json.loads(TRN1N_TEXT)
V1 = json.loads((FIXTURES / "v1_from_docs.json").read_text())
TRN1N_LINE = json.dumps(TRN1N).encode()
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Keys neuron-monitor uses, so random shapes reach deep into the parser.
KEYS = st.sampled_from([
    "neuron_runtime_data", "system_data", "instance_info", "instance_data", "neuron_hardware_info", "report",
    "neuron_runtime_tag", "neuron_runtime_index", "pid", "error", "period", "neuroncore_counters",
    "neuroncores_in_use", "neuroncore_utilization", "flops", "execution_stats", "inference_stats",
    "execution_summary", "inference_summary", "error_summary", "latency_stats", "total_latency", "p50",
    "memory_used", "neuron_runtime_used_bytes", "usage_breakdown", "neuroncore_memory_usage", "host",
    "neuron_device", "loaded_models", "name", "hw_counters", "neuron_hw_counters", "neuron_devices",
    "neuron_device_index", "mem_ecc_corrected", "vcpu_usage", "usage_data", "average_usage", "idle", "user",
    "memory_info", "memory_total_bytes", "neuron_device_count", "neuroncore_per_device_count",
    "neuron_device_memory_size", "instance_type", "0", "1", "6", "-1", "4097", "x"]) | st.text(max_size=8)
HOSTILE_TEXT = st.sampled_from(["\x1b]2;pwned\x07", "trn1n\udc80", "\ud800", "line\nforged", "\u202eevil"])
SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(min_value=10**300, max_value=10**400)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12) | HOSTILE_TEXT)
JSON = st.recursive(SCALARS, lambda children: st.lists(children, max_size=4)
                    | st.dictionaries(KEYS, children, max_size=5), max_leaves=40)


def check(result):
    """What every parse must give: a snapshot or a reason, and a snapshot that is sound."""
    if result.snapshot is None:
        assert result.problems
        return
    snap = result.snapshot
    for core in snap.cores:
        assert core.utilization is None or 0.0 <= core.utilization <= 1.0
    for runtime in snap.runtimes:
        assert all(0.0 <= ratio <= 1.0 for ratio in runtime.core_utilization.values())
        assert all(count >= 0 for count in runtime.status.values())
    assert len({runtime.key for runtime in snap.runtimes}) == len(snap.runtimes)
    body = snap.to_json_dict()
    json.dumps(body, allow_nan=False)  # what --once --json prints
    for text in strings(body):  # what labels, tables and CSV cells are made of
        assert clean_text(text) == text
        text.encode("utf-8")  # raises on a lone surrogate


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, child in value.items():
            yield from strings(key)
            yield from strings(child)
    elif isinstance(value, list):
        for child in value:
            yield from strings(child)


@FUZZ
@given(JSON)
def test_random_json_shapes(value):
    check(parse_report(value if isinstance(value, dict) else {"neuron_runtime_data": value}))
    check(parse_report(json.dumps(value)))



FIXTURE_PATHS = {"trn1n": list(json_paths(TRN1N, max_items=3))[:3000],
                 "v1": list(json_paths(V1, max_items=3))}
FIXTURES_BY_NAME = {"trn1n": TRN1N, "v1": V1}


@FUZZ
@given(st.sampled_from(["trn1n", "v1"]), st.data())
def test_fixtures_with_random_values_swapped_in(name, data):
    report = copy.deepcopy(FIXTURES_BY_NAME[name])
    for _ in range(data.draw(st.integers(1, 4))):
        path = data.draw(st.sampled_from(FIXTURE_PATHS[name]))
        if not path:
            continue
        parent = report
        try:
            for step in path[:-1]:
                parent = parent[step]
            parent[path[-1]] = data.draw(JSON)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier swap changed the shape above this path
    check(parse_report(report))


RECORDED = parse_report(TRN1N).snapshot.to_json_dict()
RECORDED_PATHS = list(json_paths(RECORDED, max_items=3))


@FUZZ
@given(st.data())
def test_recorded_snapshots_with_random_values_swapped_in_read_as_sound_snapshots(data):
    body = copy.deepcopy(RECORDED)
    for _ in range(data.draw(st.integers(1, 4))):
        path = data.draw(st.sampled_from(RECORDED_PATHS))
        parent = body
        try:
            for step in path[:-1]:
                parent = parent[step]
            parent[path[-1]] = data.draw(JSON)
        except (KeyError, IndexError, TypeError):
            continue
    try:
        snapshot = snapshot_from_json(body)
    except ValueError:
        return  # not a snapshot any more (no time): the replay counts it as a bad line
    check(ParseResult(snapshot))


def test_a_report_with_10000_runtimes_keeps_a_bounded_number_and_says_so():
    report = copy.deepcopy(TRN1N)
    runtime = report["neuron_runtime_data"][0]
    report["neuron_runtime_data"] = [dict(runtime, neuron_runtime_tag=str(n)) for n in range(10_000)]
    result = parse_report(json.dumps(report))
    check(result)
    assert 0 < len(result.snapshot.runtimes) <= 512
    assert any("10000 runtimes" in problem for problem in result.problems)


def test_hostile_strings_in_a_report_come_out_escaped():
    report = copy.deepcopy(TRN1N)
    report["instance_info"]["instance_type"] = "trn1n\udc80"
    report["instance_info"]["instance_name"] = "\x1b]2;pwned\x07"
    report["neuron_runtime_data"][0]["neuron_runtime_tag"] = "a\nforged line"
    snapshot = parse_report(json.dumps(report)).snapshot
    assert snapshot.instance["instance_type"] == "trn1n\ufffd"
    assert snapshot.instance["instance_name"] == "\\x1b]2;pwned\\x07"
    assert snapshot.runtimes[0].tag == "a\\x0aforged line"


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(raw):
    check(parse_report(raw))


@FUZZ
@given(st.integers(0, len(TRN1N_LINE)))
def test_lines_cut_anywhere(cut):
    result = parse_report(TRN1N_LINE[:cut])
    check(result)
    assert result.snapshot is None or cut == len(TRN1N_LINE)


@FUZZ
@given(st.integers(0, len(TRN1N_LINE) - 1), st.binary(min_size=1, max_size=4))
def test_invalid_utf8_spliced_into_a_report(at, junk):
    check(parse_report(TRN1N_LINE[:at] + b"\xff" + junk + TRN1N_LINE[at:]))


def test_deep_nesting():
    check(parse_report("[" * 200_000 + "]" * 200_000))
    deep = []
    for _ in range(5000):
        deep = [deep]
    report = copy.deepcopy(V1)
    report["system_data"]["memory_info"]["error"] = deep  # an error "message" nobody can print
    report["neuron_runtime_data"][0]["neuron_runtime_tag"] = deep
    check(parse_report(report))


def test_huge_numbers_and_non_finite_values_read_as_unknown():
    text = TRN1N_TEXT.replace('"memory_total_bytes": 532523487232', '"memory_total_bytes": 1' + "0" * 5000)
    text = text.replace('"neuroncore_utilization": 41.4', '"neuroncore_utilization": NaN')
    text = text.replace('"memory_used_bytes": 81207975936', '"memory_used_bytes": -Infinity')
    result = parse_report(text)
    check(result)
    assert result.snapshot.memory.host_total_bytes is None and result.snapshot.memory.host_used_bytes is None
    assert result.snapshot.cores_of("neuroncore")[6].utilization == 0.0


# -- the stream reader, through a real pipe -------------------------------------------------
def read_from(command, until, timeout=30.0):
    store = Store()
    source = NeuronMonitorSource(store, command, backoff_initial=5.0)
    source.start()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(store):
            time.sleep(0.05)
    finally:
        source.stop()
    return store


def test_a_10_mb_report_line_through_a_pipe():
    fake = [sys.executable, str(ROOT / "tests" / "fake_neuron_monitor.py"), "--count", "2", "--pad-bytes",
            str(10 * 1024 * 1024)]
    store = read_from(fake, lambda s: s.health.get("neuron-monitor") and s.health["neuron-monitor"].samples >= 2)
    health = store.health["neuron-monitor"]
    assert health.samples >= 2 and health.bad_lines == 0
    assert store.latest.cores_of("neuroncore")[6].utilization == 0.414


def test_a_partial_line_at_eof_is_counted_not_fatal():
    script = ("import sys; line = open(sys.argv[1]).read().replace('\\n', '');"
              "sys.stdout.write(line + '\\n' + line[:500]); sys.stdout.flush()")
    command = [sys.executable, "-c", script, str(FIXTURES / "v1_from_docs.json")]
    store = read_from(command, lambda s: s.health.get("neuron-monitor") and s.health["neuron-monitor"].down_since)
    health = store.health["neuron-monitor"]
    assert health.samples == 1 and health.bad_lines == 1 and health.last_bad_line.startswith('{ "neuron_runtime_data"')
    assert "exited with status 0" in health.last_error


def test_invalid_utf8_lines_through_a_pipe():
    script = ("import sys; out = sys.stdout.buffer;"
              "out.write(b'\\xff\\xfe\\x00garbage\\n' + open(sys.argv[1], 'rb').read().replace(b'\\n', b'')"
              ".replace(b'My_Instance', b'My_\\xffInstance') + b'\\n'); out.flush()")
    command = [sys.executable, "-c", script, str(FIXTURES / "v1_from_docs.json")]
    store = read_from(command, lambda s: s.latest is not None)
    assert store.health["neuron-monitor"].bad_lines == 1
    assert store.latest.instance["instance_name"] == "My_\ufffdInstance"
