"""Host vCPU utilization is right at any sampling interval, the first sample included.

The vCPU clock is a stand-in (psutil.cpu_times on a fake clock): on a shared box no test can make a
real vCPU exactly idle or exactly busy. The real `neurontui --once` runs at the end.
"""
import collections
import json
import subprocess
import sys

import psutil
import pytest

from neurontui import host_load
from neurontui.sources.host import HostSource
from neurontui.store import Store
from tests.conftest import ROOT

# The fields psutil.cpu_times(percpu=True) has on Linux.
CpuTimes = collections.namedtuple(
    "CpuTimes", "user nice system idle iowait irq softirq steal guest guest_nice")


class FakeCpuClock:
    """Per-vCPU times that advance with a fake clock: vCPU 0 idles, vCPU 1 runs user code."""

    def __init__(self) -> None:
        self.now = 1000.0  # seconds since boot: a reading is cumulative, never from zero

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def cpu_times(self, percpu: bool = False):
        assert percpu
        start = 1000.0  # both vCPUs spent the time before the test half idle, half busy
        idle = CpuTimes(start / 2, 0.0, 0.0, start / 2 + (self.now - start), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        busy = CpuTimes(start / 2 + (self.now - start), 0.0, 0.0, start / 2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        return [idle, busy]


@pytest.fixture
def clock(monkeypatch):
    fake = FakeCpuClock()
    monkeypatch.setattr(psutil, "cpu_times", fake.cpu_times)
    return fake


@pytest.mark.parametrize("interval", [0.3, 0.5, 1.0, 2.0])
def test_an_idle_and_a_busy_vcpu_read_0_and_1_at_any_interval_with_stand_in_cpu_times(clock, monkeypatch,
                                                                                        interval):
    # Our own process used a quarter of the busy vCPU: the rest is other processes' share.
    ours = {"seconds": 0.0}
    monkeypatch.setattr(host_load, "process_tree_times", lambda root: {(root, 1.0): (ours["seconds"], None)})
    source = HostSource(Store(), interval=interval)
    source.begin()
    for _ in range(3):  # the first sample and the ones after it
        clock.advance(interval)
        ours["seconds"] += interval / 4
        snap = source.sample()
        idle, busy = snap.cores_of("vcpu")
        assert (idle.utilization, busy.utilization) == (0.0, 1.0)
        assert idle.others_utilization == 0.0
        assert busy.others_utilization == pytest.approx(0.75)
        assert snap.vcpu_user_ratio == pytest.approx(0.5) and snap.vcpu_system_ratio == 0.0


def test_once_json_on_this_host_reads_every_vcpu_from_deltas(child_env):
    out = subprocess.run([sys.executable, "-m", "neurontui", "--once", "--json", "--monitor", "host",
                          "--no-workload"], capture_output=True, text=True, env=child_env, cwd=ROOT,
                         stdin=subprocess.DEVNULL, timeout=60)
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    vcpus = [core for core in body["cores"] if core["kind"] == "vcpu"]
    assert len(vcpus) == psutil.cpu_count()
    for core in vcpus:
        assert 0.0 <= core["others_utilization"] <= core["utilization"] <= 1.0
    if not any(core["kind"] == "gpu" for core in body["cores"]):  # why there are none, as the TUI says
        assert any(error.startswith("gpu: ") for error in body["errors"]), body["errors"]
