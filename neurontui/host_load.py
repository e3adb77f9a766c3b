"""How busy the host is with work that is not ours: the CPU other processes and the hypervisor take.

A benchmark on a shared box measures the box as much as the model (a run at 850/s became 25/s when
other processes loaded the vCPUs), so every run's verdict says when others took a real share of
the CPUs, as pyperf and MLPerf warn of unstable systems. Everything here comes from psutil deltas:

- per vCPU, from `psutil.cpu_times(percpu=True)`: total time, busy = total - idle (io_wait counts as
  busy, as neuron-monitor counts it), steal (time the hypervisor gave the vCPU to another guest);
- ours: the CPU time (user + system) of neurontui's process and all its descendants, followed as
  they come and go (a process is known by pid and start time, so a reused pid is a new process);
- others = busy - steal - ours: other processes, and the kernel's interrupt work.

Torch-free and Textual-free: the host source, the headless run and the TUI all read it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import psutil

from .format import format_ratio

# A run where other processes took more than this share of all vCPU time is marked. pyperf warns
# of an unstable system at a similar level of outside load; below it the swing it causes stays
# within the 10% run-to-run noise the stability verdict already tolerates.
OTHERS_SHARE_LIMIT = 0.10
# Steal above this share means the hypervisor kept taking the vCPUs (a noisy neighbour).
STEAL_SHARE_LIMIT = 0.05

ProcessKey = tuple[int, float]  # (pid, create_time): a pid reused by a new process is a new key


@dataclass(frozen=True)
class VcpuTimes:
    """CPU seconds one vCPU spent over an interval."""

    total: float
    busy: float  # total - idle
    steal: float


def vcpu_times(before: Iterable[Any], after: Iterable[Any]) -> list[VcpuTimes]:
    """Per-vCPU deltas between two `psutil.cpu_times(percpu=True)` readings.

    Correct at any interval, however short: the ratios divide by the time that actually passed
    (psutil.cpu_times_percent divides by at least one second, so an idle vCPU read 50% busy at 0.5 s).
    """
    deltas = []
    for old, new in zip(before, after):
        total = max(_total(new) - _total(old), 0.0)
        idle = max(new.idle - old.idle, 0.0)
        steal = max(getattr(new, "steal", 0.0) - getattr(old, "steal", 0.0), 0.0)
        deltas.append(VcpuTimes(total, min(max(total - idle, 0.0), total), min(steal, total)))
    return deltas


def _total(times: Any) -> float:
    # guest and guest_nice are already counted in user and nice (Linux /proc/stat), as psutil knows.
    return sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)


@dataclass
class HostLoad:
    """Where the vCPUs' time went over an interval or a whole run; shares are of all vCPU time."""

    cpu_seconds: float = 0.0  # all vCPUs' time observed (2 vCPUs over 1 s = 2.0)
    busy_share: float = 0.0
    ours_share: float = 0.0  # neurontui and its children
    others_share: float = 0.0  # every other process (and interrupts)
    steal_share: float = 0.0
    per_vcpu_busy: list[float] = field(default_factory=list)  # busy / total per vCPU
    per_vcpu_others: list[float] = field(default_factory=list)  # estimated, see HostLoadMeter


@dataclass
class _Totals:
    """Seconds accumulated per vCPU (the shares of a run are ratios of sums, not means of ratios)."""

    total: list[float] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)
    steal: list[float] = field(default_factory=list)
    ours: list[float] = field(default_factory=list)

    def add(self, vcpus: list[VcpuTimes], ours: list[float]) -> None:
        if len(self.total) != len(vcpus):  # first interval, or a vCPU brought on/offline
            self.total, self.busy, self.steal, self.ours = ([0.0] * len(vcpus) for _ in range(4))
        for i, (vcpu, mine) in enumerate(zip(vcpus, ours)):
            self.total[i] += vcpu.total
            self.busy[i] += vcpu.busy
            self.steal[i] += vcpu.steal
            self.ours[i] += mine

    def load(self) -> HostLoad:
        total = sum(self.total)
        if total <= 0:
            return HostLoad(per_vcpu_busy=[0.0] * len(self.total), per_vcpu_others=[0.0] * len(self.total))
        busy, steal, ours = sum(self.busy), sum(self.steal), sum(self.ours)
        return HostLoad(
            cpu_seconds=total,
            busy_share=busy / total,
            ours_share=min(ours, busy) / total,
            others_share=max(busy - steal - ours, 0.0) / total,
            steal_share=steal / total,
            per_vcpu_busy=[_share(b, t) for b, t in zip(self.busy, self.total)],
            per_vcpu_others=[_share(max(b - s - o, 0.0), t)
                             for b, s, o, t in zip(self.busy, self.steal, self.ours, self.total)],
        )


def _share(part: float, whole: float) -> float:
    return min(max(part / whole, 0.0), 1.0) if whole > 0 else 0.0


def descendants(root_pid: int) -> list[int]:
    """Pids of every descendant of `root_pid`, from Linux's /proc/PID/task/TID/children files: a
    walk of our own tree only (psutil's children() reads every process on the host: 2 ms a call on
    a box of 100 processes, 20 on one of 1,000, every sample). Elsewhere, psutil's walk."""
    if not _has_children_files(root_pid):
        try:
            return [child.pid for child in psutil.Process(root_pid).children(recursive=True)]
        except psutil.Error:
            return []
    found, parents = [], [root_pid]
    while parents:
        parent = parents.pop()
        try:
            threads = os.listdir(f"/proc/{parent}/task")
        except OSError:  # ended meanwhile
            continue
        for thread in threads:  # each thread lists the children it started
            try:
                children = [int(pid) for pid in _read_proc(f"/proc/{parent}/task/{thread}/children").split()]
            except (OSError, ValueError):
                continue
            found += children
            parents += children
    return found


def process_tree_times(root_pid: int) -> dict[ProcessKey, tuple[float, list[int] | None]]:
    """CPU seconds (user + system) and allowed vCPUs of `root_pid` and every descendant alive now.

    On Linux one read of /proc/PID/stat and one sched_getaffinity call per process. Through
    psutil's Process, oneshot, cpu_times, create_time and cpu_affinity, the same reading of
    neurontui and its child took 230 µs against 129 (the walk included), and the host source and
    each run's verdict take one every second."""
    pids = [root_pid, *descendants(root_pid)]
    if not _has_children_files(root_pid):
        return _psutil_tree_times(pids)
    times: dict[ProcessKey, tuple[float, list[int] | None]] = {}
    for pid in pids:
        try:
            stat = _read_proc(f"/proc/{pid}/stat")
            affinity = sorted(os.sched_getaffinity(pid))
        except OSError:  # ended meanwhile (or not ours to read): its last interval is lost
            continue
        # after "pid (comm) ": state ppid ... utime (index 11) stime (12) ... starttime (19), in clock ticks;
        # the command name may hold spaces and parentheses, so split after its last ")"
        fields = stat[stat.rindex(b")") + 2:].split()
        times[(pid, int(fields[19]) / _CLOCK_TICKS)] = ((int(fields[11]) + int(fields[12])) / _CLOCK_TICKS, affinity)
    return times


def _psutil_tree_times(pids: list[int]) -> dict[ProcessKey, tuple[float, list[int] | None]]:
    times: dict[ProcessKey, tuple[float, list[int] | None]] = {}
    for pid in pids:
        try:
            process = psutil.Process(pid)
            with process.oneshot():
                cpu = process.cpu_times()
                key = (process.pid, process.create_time())
                affinity = process.cpu_affinity() if hasattr(process, "cpu_affinity") else None
        except psutil.Error:  # ended meanwhile (or not ours to read): its last interval is lost
            continue
        times[key] = (cpu.user + cpu.system, affinity)
    return times


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _has_children_files(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}/task/{pid}/children")  # its main thread's file


def _read_proc(path: str) -> bytes:
    """A /proc file whole, through os.read: open() builds a buffered file object for each one,
    which cost more than the read itself."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


class HostLoadMeter:
    """Samples the host's vCPUs and our process tree; `sample()` returns the load since `reset()`.

    Ours per vCPU is an estimate (the kernel keeps no per-process, per-vCPU account): each
    process's CPU time is spread over the vCPUs it may run on (its affinity), in proportion to how
    busy each of them was, never above a vCPU's busy time. Exact for pinned workers (`--mode dp`,
    pipeline stages); for one process on every vCPU, its time is spread where the load was. A
    process that ends between two samples loses its last interval (counted as others').
    """

    def __init__(self, root_pid: int | None = None,
                 cpu_times: Callable[[], list[Any]] | None = None,
                 tree_times: Callable[[int], dict[ProcessKey, tuple[float, list[int] | None]]] | None = None
                 ) -> None:
        self.root_pid = os.getpid() if root_pid is None else root_pid
        self._cpu_times = cpu_times or (lambda: psutil.cpu_times(percpu=True))
        self._tree_times = tree_times or process_tree_times
        self._run = _Totals()
        self.last = HostLoad()  # the latest interval alone (for per-vCPU bars)
        self._cpus = self._cpu_times()
        self._processes = self._tree_times(self.root_pid)
        self.readings: tuple[list[Any], list[Any]] = (self._cpus, self._cpus)  # the last interval's

    def reset(self) -> None:
        """Start accumulating afresh (at the start of the measured run, after warm-up)."""
        self._run = _Totals()

    def sample(self) -> HostLoad:
        cpus, processes = self._cpu_times(), self._tree_times(self.root_pid)
        vcpus = vcpu_times(self._cpus, cpus)
        ours = self._ours_per_vcpu(vcpus, processes)
        self.readings = (self._cpus, cpus)
        self._cpus, self._processes = cpus, processes
        interval = _Totals()
        interval.add(vcpus, ours)
        self.last = interval.load()
        self._run.add(vcpus, ours)
        return self._run.load()

    def _ours_per_vcpu(self, vcpus: list[VcpuTimes],
                       processes: dict[ProcessKey, tuple[float, list[int] | None]]) -> list[float]:
        room = [max(v.busy - v.steal, 0.0) for v in vcpus]  # what processes can have used
        ours = [0.0] * len(vcpus)
        for key, (seconds, affinity) in processes.items():
            before = self._processes.get(key)
            used = seconds - before[0] if before else seconds  # new: born during the interval
            allowed = [i for i in (affinity or range(len(vcpus))) if 0 <= i < len(vcpus)]
            left = [room[i] - ours[i] for i in allowed]
            free = sum(left)
            if used <= 0 or free <= 0:
                continue
            for i, share in zip(allowed, left):
                ours[i] += min(used, free) * share / free
        return ours


def host_busy_reason(load: HostLoad, others_limit: float = OTHERS_SHARE_LIMIT,
                     steal_limit: float = STEAL_SHARE_LIMIT) -> str | None:
    """Why a run's figures are polluted by the host, in one phrase; None when the host was quiet."""
    reasons = []
    if load.others_share > others_limit:
        reasons.append(f"{format_ratio(load.others_share)} of the CPUs used by other processes")
    if load.steal_share > steal_limit:
        reasons.append(f"{format_ratio(load.steal_share)} of the CPU time stolen by the hypervisor")
    return "host busy: " + ", ".join(reasons) if reasons else None
