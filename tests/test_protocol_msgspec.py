"""The workload event reader's msgspec fast path: every line decodes to the same event, or
fails the same way, as through json.loads alone (the path msgspec falls back to)."""
import json

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import json_paths
from tests.test_event_fuzz import FUZZ, JSON, real_window
from workloads import protocol
from workloads.protocol import Hello, Phase, ProtocolError, decode

REAL = [real_window().to_json(), Hello(pid=7, model="cnn", backend="cpu").to_json(),
        Phase(phase="warmup", progress=0.5).to_json()]
WINDOW = json.loads(REAL[0])
WINDOW_PATHS = [path for path in json_paths(WINDOW) if path]


class _Refusing:
    """A msgspec decoder that refuses every line: decode() then reads it with json.loads."""

    def decode(self, line):
        raise msgspec.DecodeError("refused")


def through_json_loads(line):
    fast, protocol._JSON = protocol._JSON, _Refusing()
    try:
        return outcome(line)
    finally:
        protocol._JSON = fast


def outcome(line):
    try:
        return decode(line)
    except ProtocolError:
        return ProtocolError


def same(line) -> None:
    for form in (line, line.encode("utf-8", "surrogatepass")):
        assert outcome(form) == through_json_loads(form)


def test_real_events_decode_the_same_and_are_events():
    for line in REAL:
        same(line)
        assert outcome(line) is not ProtocolError


def test_lines_msgspec_refuses_read_as_before():
    for line in ['{"event": "window", "v": 1, "throughput": NaN}', '{"event": "hello", "v": 1, "model": "\\ud800"}',
                 '{"event": "hello", "v": 1, "pid": 1' + "0" * 5000 + "}",
                 '{"event": "hello", "v": 1, "x": ' + "[" * 5000 + "]" * 5000 + "}", "\ufeff{}"]:
        same(line)


@FUZZ
@given(st.sampled_from(WINDOW_PATHS), JSON)
def test_a_window_with_any_value_swapped_in(path, value):
    window = json.loads(REAL[0])
    parent = window
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    same(json.dumps(window))


@FUZZ
@given(JSON)
def test_any_json_value(value):
    same(json.dumps(value))
