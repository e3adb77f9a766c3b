import os
import socket
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = ROOT.parent / "shared" / "fixtures" / "neuron-monitor"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def child_env():
    """Environment for real subprocesses of this checkout (`python -m neurontui`, `-m workloads`)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def python():
    return sys.executable


@pytest.fixture
def busy_port():
    """A loopback port that another socket is listening on for the whole test."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def json_paths(value, prefix=(), max_items=None):
    """Every key/index path into a JSON value (lists cut to max_items), for fuzzers that swap one value."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from json_paths(child, prefix + (key,), max_items)
    elif isinstance(value, list):
        for index, child in enumerate(value[:max_items]):
            yield from json_paths(child, prefix + (index,), max_items)


def wait_for(predicate, timeout, what):
    """Poll `predicate` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
