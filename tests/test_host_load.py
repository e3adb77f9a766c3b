"""The busy-host check: CPU taken by processes other than neurontui's tree, and steal.

The arithmetic runs on stand-in psutil readings (no real box has a known outside load); the last
tests watch the real process table with a real CPU burner outside our tree.
"""
import collections
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from neurontui.host_load import (OTHERS_SHARE_LIMIT, HostLoad, HostLoadMeter, host_busy_reason,
                                 process_tree_times, vcpu_times)

CpuTimes = collections.namedtuple(
    "CpuTimes", "user nice system idle iowait irq softirq steal guest guest_nice")
BURN = "import time\nend = time.monotonic() + 60\nwhile time.monotonic() < end: pass\n"


def reading(user=0.0, idle=0.0, steal=0.0, iowait=0.0, guest=0.0):
    return CpuTimes(user, 0.0, 0.0, idle, iowait, 0.0, 0.0, steal, guest, 0.0)


class FakeHost:
    """Cumulative per-vCPU readings and our tree's CPU seconds, advanced by each test."""

    def __init__(self, vcpus=2):
        self.cpus = [reading() for _ in range(vcpus)]
        self.tree = {}

    def run(self, vcpu, user=0.0, idle=0.0, steal=0.0, iowait=0.0):
        old = self.cpus[vcpu]
        self.cpus[vcpu] = old._replace(user=old.user + user, idle=old.idle + idle, steal=old.steal + steal,
                                       iowait=old.iowait + iowait)

    def ours(self, pid, seconds, affinity=None, started=1.0):
        key = (pid, started)
        before = self.tree.get(key, (0.0, None))[0]
        self.tree[key] = (before + seconds, affinity)

    def meter(self):
        return HostLoadMeter(1, cpu_times=lambda: list(self.cpus), tree_times=lambda root: dict(self.tree))


def test_busy_is_everything_but_idle_and_guest_time_is_not_counted_twice():
    before = [reading(user=10.0, idle=10.0)]
    after = [reading(user=10.6, idle=10.2, iowait=0.2, guest=0.4)]  # guest time is inside user already
    (vcpu,) = vcpu_times(before, after)
    assert vcpu.total == pytest.approx(1.0) and vcpu.busy == pytest.approx(0.8)  # io_wait counts as busy


def test_others_are_the_busy_time_our_tree_did_not_use():
    host = FakeHost()
    meter = host.meter()
    host.run(0, user=0.9, idle=0.1)  # vCPU 0: our pinned worker 0.5 s, someone else 0.4 s
    host.run(1, user=0.2, idle=0.8)  # vCPU 1: someone else only
    host.ours(10, 0.5, affinity=[0])
    load = meter.sample()
    assert load.cpu_seconds == pytest.approx(2.0)
    assert load.ours_share == pytest.approx(0.25)
    assert load.others_share == pytest.approx(0.3)
    assert load.per_vcpu_busy == pytest.approx([0.9, 0.2])
    assert load.per_vcpu_others == pytest.approx([0.4, 0.2])
    assert host_busy_reason(load) == "host busy: 30% of the CPUs used by other processes"


def test_an_unpinned_process_is_spread_where_the_load_was():
    host = FakeHost()
    meter = host.meter()
    host.run(0, user=0.6, idle=0.4)
    host.run(1, user=0.2, idle=0.8)
    host.ours(10, 0.8)  # all the busy time is ours
    load = meter.sample()
    assert load.others_share == pytest.approx(0.0)
    assert load.per_vcpu_others == pytest.approx([0.0, 0.0])


def test_processes_that_come_and_go_and_a_reused_pid():
    host = FakeHost(vcpus=1)
    host.ours(10, 5.0)  # running before the meter started: its past is not this run's
    meter = host.meter()
    host.run(0, user=1.0)
    host.ours(10, 0.5)
    host.ours(11, 0.5)  # born during the interval: all its time is new
    assert meter.sample().others_share == pytest.approx(0.0)
    del host.tree[(11, 1.0)]  # ended
    host.tree[(10, 9.0)] = (0.25, None)  # pid 10 ended and a new process of ours took its pid
    del host.tree[(10, 1.0)]
    host.run(0, user=1.0)
    load = meter.sample()  # run total: 2 s busy, 1.25 s ours
    assert load.ours_share == pytest.approx(0.625) and load.others_share == pytest.approx(0.375)
    assert meter.last.others_share == pytest.approx(0.75)  # the second interval alone


def test_the_run_share_is_a_ratio_of_sums_and_reset_starts_afresh():
    host = FakeHost(vcpus=1)
    meter = host.meter()
    host.run(0, user=0.1, idle=0.9)  # warm-up: 10% others over 1 s
    meter.sample()
    meter.reset()
    host.run(0, user=3.0, idle=1.0)  # measured: 75% others over 4 s
    meter.sample()
    host.run(0, idle=4.0)
    load = meter.sample()
    assert load.others_share == pytest.approx(3.0 / 8.0)


def test_steal_is_its_own_share_and_its_own_reason():
    host = FakeHost(vcpus=1)
    meter = host.meter()
    host.run(0, user=0.5, steal=0.3, idle=0.2)
    host.ours(10, 0.5)
    load = meter.sample()
    assert (load.others_share, load.steal_share) == (pytest.approx(0.0), pytest.approx(0.3))
    assert host_busy_reason(load) == "host busy: 30% of the CPU time stolen by the hypervisor"


def test_a_quiet_host_has_no_reason_and_the_limit_is_exclusive():
    assert host_busy_reason(HostLoad(others_share=OTHERS_SHARE_LIMIT)) is None
    assert host_busy_reason(HostLoad()) is None
    assert host_busy_reason(HostLoad(others_share=0.38)) == "host busy: 38% of the CPUs used by other processes"


def test_our_tree_holds_our_children_and_their_children(tmp_path):
    script = tmp_path / "grandchild.py"
    script.write_text("import subprocess, sys, time\n"
                      f"subprocess.Popen([sys.executable, '-c', {BURN!r}])\n"
                      "time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, str(script)])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(process_tree_times(os.getpid())) < 3:
            time.sleep(0.1)
        tree = process_tree_times(os.getpid())
        assert {pid for pid, _ in tree} >= {os.getpid(), child.pid} and len(tree) >= 3
    finally:
        for pid, _ in process_tree_times(child.pid):
            os.kill(pid, 9)
        child.wait()


@pytest.mark.skipif(not os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children"), reason="Linux /proc")
def test_the_proc_reading_agrees_with_psutil_even_for_a_command_named_with_parentheses(tmp_path):
    """/proc/PID/stat is split after the command name's last ")": a name with spaces and
    parentheses must not shift the fields (a burner named "a) b (c", as its executable's link)."""
    odd = tmp_path / "a) b (c"
    odd.symlink_to(sys.executable)
    burner = subprocess.Popen([str(odd), "-c", BURN])
    try:
        process = psutil.Process(burner.pid)
        assert process.name() == "a) b (c"
        deadline = time.monotonic() + 30
        while sum(process.cpu_times()[:2]) < 0.2 and time.monotonic() < deadline:
            time.sleep(0.1)
        burner.send_signal(signal.SIGSTOP)  # its CPU time stands still: both readings must agree exactly
        time.sleep(0.1)
        tree = {pid: (key_start, seconds, affinity) for (pid, key_start), (seconds, affinity)
                in process_tree_times(os.getpid()).items()}
        start, seconds, affinity = tree[burner.pid]
        times = process.cpu_times()
        assert seconds == pytest.approx(times.user + times.system) and seconds >= 0.2
        assert affinity == sorted(process.cpu_affinity())
        assert start + psutil.boot_time() == pytest.approx(process.create_time(), abs=0.02)
        assert tree[os.getpid()][1] > 0
    finally:
        burner.kill()
        burner.wait()


def test_a_real_burner_outside_our_tree_counts_as_others():
    # neurontui's stand-in is a sleeping process; the burner is its sibling, not its child. A second
    # meter rooted at the burner itself must see the same CPU as its own.
    root = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    burner = subprocess.Popen([sys.executable, "-c", BURN])
    try:
        beside, inside = HostLoadMeter(root.pid), HostLoadMeter(burner.pid)
        assert burner.pid not in {pid for pid, _ in process_tree_times(root.pid)}
        deadline = time.monotonic() + 50
        while True:
            time.sleep(0.5)
            seen_beside, seen_inside = beside.sample(), inside.sample()
            if (seen_beside.others_share > 0 and seen_inside.ours_share > 0) or time.monotonic() > deadline:
                break
        assert seen_beside.others_share > 0 and max(seen_beside.per_vcpu_others) > 0
        assert seen_inside.ours_share > 0
    finally:
        burner.kill()
        root.kill()
        burner.wait()
        root.wait()


class SwingingHostStandIn:
    """Stands in for a hypervisor whose steal swings around the limit (not producible on demand
    here): the meter's readings alternate between busy and quiet."""

    def __init__(self) -> None:
        self.readings = 0

    def reset(self) -> None:
        pass

    def sample(self) -> HostLoad:
        self.readings += 1
        return HostLoad(steal_share=0.3 if self.readings % 2 == 0 else 0.0)


def test_a_run_whose_host_load_swings_across_the_limit_is_warned_about_once_with_a_swinging_host_stand_in():
    from neurontui.session import Session
    from neurontui.store import Store
    from neurontui.workload import WorkloadProcess
    from workloads.config import WorkloadConfig

    store = Store()
    session = Session(store, WorkloadConfig(model="cnn", backend="cpu"), WorkloadProcess(store))
    session._host_load = SwingingHostStandIn()
    store.workload.state, store.workload.run_id, store.workload.run.window_count = "running", 1, 1
    for _ in range(9):  # a baseline, then busy, quiet, busy... ending quiet
        session.watch_host_load()
    warnings = [event.text for event in store.events if event.level == "warning"]
    assert warnings == ["host busy: 30% of the CPU time stolen by the hypervisor: this run's figures are marked unstable"]
    assert store.workload.run.host_busy is None  # the last reading was quiet: the verdict follows the load
