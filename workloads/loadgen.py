"""The load generator: scenarios after MLPerf LoadGen and Triton perf_analyzer.

- single-stream: the next request is issued when the last completes (closed loop);
  with --concurrency N, N such loops keep N requests in flight (each driving its own
  replica when there are enough, else queueing for the next free one).
- offline: keep every replica busy (at least two requests in flight per replica).
- server: Poisson arrivals at --qps; latency counts from the *scheduled* arrival, so
  queueing behind a busy replica shows up in the percentiles.

A request is `batch` samples; a batch's latency is recorded once per sample (as MLPerf
does), so `completed` and throughput are in samples. Warm-up is run but never recorded.
Torch-free: backends hand over plain callables ("replicas") that run k merged requests
synchronously, device work included.
A request that raises, or that takes longer than --request-timeout, counts its samples as
errors, not completions; only when every request of FAILED_WINDOWS_LIMIT windows in a row
raised, or a run ends with no request completed, does it stop with that exception (a broken
model, not a passing fault).

With --copies each copy is a replica, and the load is spread over them: each driver owns its
share of the replicas and cycles through it. With variable-length input (Load.buckets) a
replica returns (bucket index, real tokens, pad tokens) for the request it ran, and windows
count samples, latencies and tokens per bucket.

The hot path matters: at ~0.28 ms per cnn call, every microsecond here is 0.4% of the
result, so single-stream at concurrency 1 runs a bare loop (two clock reads, one
histogram record, one flag test per call) and no thread, lock or JSON per call.
"""
from __future__ import annotations

import collections
import math
import queue
import random
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Callable

from .config import WorkloadConfig
from .protocol import LatencyHistogram, Phase, Window
from .rules import is_stable

Replica = Callable[[int], object]  # runs k merged requests (k x batch samples), returns when done
WARM_CALLS_PER_COPY = 2  # TorchScript's profiling executor runs a module once to profile, then optimizes
FAILED_WINDOWS_LIMIT = 2
clock = time.perf_counter


class Control:
    """The parent's commands as flags the load loop polls; `interrupt` is the only one read per call."""

    def __init__(self) -> None:
        self.interrupt = False
        self.stopping = False
        self.paused = False
        self.in_load = False  # set while a load loop runs; outside it a stop must interrupt the main thread
        self._resumed = threading.Event()
        self._resumed.set()
        self._wake = threading.Event()

    def command(self, command: str) -> None:
        if command == "stop":
            self.stopping = True
            self._resumed.set()
        elif command == "pause":
            self.paused = True
            self._resumed.clear()
        elif command == "resume":
            self.paused = False
            self._resumed.set()
        self.interrupt = self.stopping or self.paused
        self._wake.set()

    def sleep(self, seconds: float) -> None:
        """Sleep, waking early on any command."""
        if seconds > 0 and self._wake.wait(seconds):
            self._wake.clear()

    def wait_resumed(self) -> None:
        self._resumed.wait()


@dataclass
class Load:
    """What a backend hands the load generator."""
    replicas: list[Replica]
    slots: list[int] | None = None  # per replica, the index it counts under in per_core_completed
    copies: list[int] | None = None  # per replica, the copy it runs (--copies); None: no per-copy counts
    buckets: list[int] | None = None  # variable-length input: replicas return (bucket, real, pad tokens)
    max_merge: int = 1  # dynamic batching: at most this many queued requests run as one batch
    thread_context: Callable[[], AbstractContextManager] = nullcontext  # entered once per load thread

    def __post_init__(self) -> None:
        if self.slots is None:
            self.slots = list(range(len(self.replicas)))

    @property
    def slot_count(self) -> int:
        return max(self.slots) + 1

    @property
    def copy_count(self) -> int:
        return max(self.copies) + 1 if self.copies else 0


@dataclass
class Outcome:
    completed: int = 0
    errors: int = 0
    reason: str = "done"
    throughputs: list[float] = field(default_factory=list)


class _Tally:
    """One window's completions: the latency histogram, per slot, per copy and per bucket."""

    def __init__(self, load: Load, batch: int, timeout: float = math.inf) -> None:
        self.load, self.batch, self.timeout = load, batch, timeout
        self.errors = 0  # samples of requests that raised or outlived the timeout
        self.hist = LatencyHistogram()
        self.per_slot = [0] * load.slot_count
        self.per_copy = [0] * load.copy_count
        self.per_copy_seconds = [0.0] * load.copy_count
        buckets = len(load.buckets or ())
        self.bucket_hists = [LatencyHistogram() for _ in range(buckets)]
        self.real_tokens = self.pad_tokens = 0

    def record(self, index: int, latency: float | None, tag: object) -> None:
        """A request that replica `index` completed in `latency` seconds (None: it raised); `tag`
        is what it returned."""
        batch, load = self.batch, self.load
        if latency is None or latency > self.timeout:
            self.errors += batch
            return
        self.hist.record(latency, batch)
        self.per_slot[load.slots[index]] += batch
        if load.copies:
            copy = load.copies[index]
            self.per_copy[copy] += batch
            self.per_copy_seconds[copy] += latency * batch
        if load.buckets:
            bucket, real, pad = tag  # type: ignore[misc]
            self.bucket_hists[bucket].record(latency, batch)
            self.real_tokens += real
            self.pad_tokens += pad

    def fields(self) -> dict:
        """The window fields beyond the histogram and per_core_completed."""
        extra: dict = {}
        if self.load.copies:
            extra.update(per_copy_completed=self.per_copy, per_copy_latency_seconds=self.per_copy_seconds)
        if self.load.buckets:
            extra.update(bucket_completed=[h.count for h in self.bucket_hists],
                         bucket_latency=[h.to_dict() for h in self.bucket_hists],
                         real_tokens=self.real_tokens, pad_tokens=self.pad_tokens,
                         padding_ratio=self.pad_tokens / self.real_tokens if self.real_tokens else None)
        return extra


class _Windows:
    """Turns recorded latencies into `window` events and decides when the run ends."""

    def __init__(self, config: WorkloadConfig, emit: Callable, slot_count: int) -> None:
        self.config = config
        self.emit = emit
        self.slot_count = slot_count
        self.outcome = Outcome()
        self.measured = 0.0  # seconds of measured load so far (pauses excluded)
        self._failed_windows = 0
        # Window times are wall-clock seconds, derived from the monotonic clock so they never jump.
        self._wall_offset = time.time() - clock()

    def flush(self, start: float, end: float, hist: LatencyHistogram, per_slot: list[int],
              extra: dict | None = None, errors: int = 0, raised: BaseException | None = None) -> str | None:
        """Emit one window; return a reason to stop ('duration', 'stable') or None.

        `raised` is the last exception of a request in this window: when no request of
        FAILED_WINDOWS_LIMIT windows in a row completed, it ends the run.
        """
        offset = self._wall_offset
        window = Window.from_histogram(start + offset, end + offset, hist, errors, per_slot)
        for name, value in (extra or {}).items():
            setattr(window, name, value)
        self.emit(window)
        self._failed_windows = self._failed_windows + 1 if raised is not None and not hist.count else 0
        if self._failed_windows >= FAILED_WINDOWS_LIMIT:
            raise raised  # type: ignore[misc]
        self.outcome.completed += window.completed
        self.outcome.errors += errors
        self.outcome.throughputs.append(window.throughput)
        self.measured += end - start
        reason = self._end_reason()
        # A run that ends having completed nothing but failures is a broken model, however few
        # windows it lasted (a late wake-up can make the first window the whole --duration).
        if reason and raised is not None and not self.outcome.completed:
            raise raised
        return reason

    def _end_reason(self) -> str | None:
        duration = self.config.duration
        if duration:
            self.emit(Phase(phase="running", progress=round(min(1.0, self.measured / duration), 4)))
            if self.measured >= duration - 1e-9:
                return "duration"
        if self.config.until_stable and is_stable(self.outcome.throughputs):
            return "stable"
        return None

    def window_end(self, start: float) -> float:
        end = start + self.config.window
        if self.config.duration:
            end = min(end, start + self.config.duration - self.measured)
        return end


def run(load: Load, config: WorkloadConfig, emit: Callable, control: Control) -> Outcome:
    """Warm up, then measure until --duration, --until-stable or a stop command."""
    control.in_load = True
    try:
        if (config.scenario == "single-stream" and config.concurrency == 1 and len(load.replicas) == 1
                and not load.buckets):
            return _run_direct(load, config, emit, control)
        return _run_pooled(load, config, emit, control)
    finally:
        control.in_load = False


def _run_direct(load: Load, config: WorkloadConfig, emit: Callable, control: Control) -> Outcome:
    call = load.replicas[0]
    batch = config.batch
    windows = _Windows(config, emit, 1)
    with load.thread_context():
        emit(Phase(phase="warmup", progress=0.0))
        call(1)  # the first call (lazy loading, allocation) is never measured, whatever --warmup says
        warm_until = clock() + config.warmup
        while clock() < warm_until and not control.stopping:
            if control.paused:
                control.wait_resumed()
            try:
                call(1)
            except Exception:  # noqa: BLE001 - unmeasured; a model that always fails failed above
                pass
        emit(Phase(phase="running", progress=0.0))
        reason = None
        timeout = config.request_timeout or math.inf
        while reason is None and not control.stopping:
            hist = LatencyHistogram()
            record = hist.record
            start = clock()
            end = windows.window_end(start)
            t1 = start
            errors, raised = 0, None
            # The hot loop: nothing but the call, two clock reads, a record and three comparisons
            # (a try block costs nothing until something raises).
            while t1 < end and not control.interrupt:
                t0 = clock()
                try:
                    call(1)
                except Exception as exc:  # noqa: BLE001 - a failed request is counted, not fatal
                    errors += batch
                    raised = exc
                    t1 = clock()
                    continue
                t1 = clock()
                if t1 - t0 > timeout:
                    errors += batch
                else:
                    record(t1 - t0, batch)
            per_copy = {"per_copy_completed": [hist.count], "per_copy_latency_seconds": [hist.total]}
            reason = windows.flush(start, clock(), hist, [hist.count], per_copy if load.copies else None,
                                   errors, raised)
            if control.paused and not control.stopping:
                control.wait_resumed()
    windows.outcome.reason = reason or "stopped"
    return windows.outcome


class _Request:
    __slots__ = ("issued", "waiter")

    def __init__(self, issued: float, waiter: threading.Event | None) -> None:
        self.issued = issued
        self.waiter = waiter


class BatchingPool:
    """Replicas fed from one queue; each replica's dispatcher merges what is waiting (dynamic batching).

    With dispatch=False there are no dispatchers: callers drive replicas themselves and the pool
    only collects their results.
    """

    def __init__(self, load: Load, dispatch: bool = True) -> None:
        self.load = load
        # (replica index, latency or None for a request that raised, what the replica returned)
        self.results: collections.deque[tuple[int, float | None, object]] = collections.deque()
        self.raised: BaseException | None = None  # the latest exception of a request, until drained
        self._closing = False
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._dispatch, args=(replica, i), daemon=True,
                                          name=f"replica-{i}")
                         for i, replica in enumerate(load.replicas)] if dispatch else []
        for thread in self._threads:
            thread.start()

    def submit(self, issued: float, waiter: threading.Event | None = None) -> None:
        self._queue.put(_Request(issued, waiter))

    def close(self) -> None:
        """Drop what is still queued (nobody will measure it) and end the dispatchers."""
        self._closing = True
        while True:
            try:
                request = self._queue.get_nowait()
            except queue.Empty:
                break
            if request is not None and request.waiter:
                request.waiter.set()
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=30)

    def _dispatch(self, replica: Replica, index: int) -> None:
        get, get_nowait, max_merge = self._queue.get, self._queue.get_nowait, self.load.max_merge
        with self.load.thread_context():
            while True:
                first = get()
                if first is None or self._closing:
                    return
                batch = [first]
                while len(batch) < max_merge:
                    try:
                        more = get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        self._queue.put(None)  # leave the shutdown signal for this thread's next get
                        break
                    batch.append(more)
                try:
                    tag = replica(len(batch))
                except Exception as exc:  # noqa: BLE001 - counted as errors; the main thread decides
                    self.raised, done, tag = exc, None, None
                else:
                    done = clock()
                append = self.results.append
                for request in batch:
                    append((index, None if done is None else done - request.issued, tag))
                    if request.waiter:
                        request.waiter.set()


def _run_pooled(load: Load, config: WorkloadConfig, emit: Callable, control: Control) -> Outcome:
    in_flight = config.concurrency
    if config.scenario == "offline":
        in_flight = max(in_flight, 2 * len(load.replicas))
    # No more requests in flight than replicas: nothing ever queues, so each caller drives its own
    # replica and the hop through the queue and a dispatcher thread is saved.
    owned = config.scenario != "server" and in_flight <= len(load.replicas)
    pool = BatchingPool(load, dispatch=not owned)
    halt = threading.Event()
    if config.scenario == "server":
        drivers = [threading.Thread(target=_poisson_arrivals, args=(pool, config.qps, control, halt), daemon=True)]
    elif owned:
        # Copies share the load (each driver cycles through its own share of them); other replicas
        # (cores, streams) serve one driver each, so fewer requests than replicas leave some idle.
        shares = [list(range(i, len(load.replicas), in_flight)) if load.copies else [i] for i in range(in_flight)]
        drivers = [threading.Thread(target=_owned_loop, args=(pool, share, control, halt), daemon=True)
                   for share in shares]
    else:
        drivers = [threading.Thread(target=_closed_loop, args=(pool, control, halt), daemon=True)
                   for _ in range(in_flight)]
    windows = _Windows(config, emit, load.slot_count)
    batch = config.batch
    emit(Phase(phase="warmup", progress=0.0))
    for driver in drivers:
        driver.start()
    try:
        # Warm-up: --warmup seconds and at least one completed request; with copies under a closed
        # loop (which reaches every copy), WARM_CALLS_PER_COPY each, since every loaded copy pays its
        # own first calls (TorchScript optimizes per module). Poisson arrivals may starve a copy: not there.
        warm_until = clock() + config.warmup
        timeout = config.request_timeout or math.inf
        warm = _Tally(load, batch, timeout)
        warm_each_copy = bool(load.copies) and config.scenario != "server"
        while not control.stopping and (
                clock() < warm_until or not (warm.hist.count or warm.errors)
                or warm_each_copy and min(warm.per_copy) < WARM_CALLS_PER_COPY * batch):
            control.sleep(min(0.05, max(0.001, warm_until - clock())))
            _drain(pool, warm)
        _drain(pool, _Tally(load, batch))
        pool.raised = None
        emit(Phase(phase="running", progress=0.0))
        reason = None
        while reason is None and not control.stopping:
            start = clock()
            end = windows.window_end(start)
            while clock() < end and not control.interrupt:
                control.sleep(end - clock())
            tally = _Tally(load, batch, timeout)
            _drain(pool, tally)
            raised, pool.raised = pool.raised, None
            reason = windows.flush(start, clock(), tally.hist, tally.per_slot, tally.fields(), tally.errors,
                                   raised if tally.errors else None)
            if control.paused and not control.stopping:
                control.wait_resumed()
                _drain(pool, _Tally(load, batch))  # finished while paused
    finally:
        halt.set()
        pool.close()
        for driver in drivers:  # none may still be talking to a replica when the backend closes it
            driver.join(timeout=30)
    windows.outcome.reason = reason or "stopped"
    return windows.outcome


def _drain(pool: BatchingPool, tally: _Tally) -> None:
    results, record = pool.results, tally.record
    while True:
        try:
            index, latency, tag = results.popleft()
        except IndexError:
            return
        record(index, latency, tag)


def _closed_loop(pool: BatchingPool, control: Control, halt: threading.Event) -> None:
    done = threading.Event()
    while not halt.is_set() and not control.stopping:
        if control.paused:
            control.wait_resumed()
            continue
        done.clear()
        pool.submit(clock(), done)
        done.wait()


def _owned_loop(pool: BatchingPool, owned: list[int], control: Control, halt: threading.Event) -> None:
    """Drive the replicas in `owned` (this driver's share, never another's) one after another."""
    replicas, append = pool.load.replicas, pool.results.append
    turn = 0
    with pool.load.thread_context():
        while not halt.is_set() and not control.stopping:
            if control.paused:
                control.wait_resumed()
                continue
            index = owned[turn]
            turn = turn + 1 if turn + 1 < len(owned) else 0
            issued = clock()
            try:
                tag = replicas[index](1)
            except Exception as exc:  # noqa: BLE001 - counted as errors; the main thread decides
                pool.raised = exc
                append((index, None, None))
                continue
            append((index, clock() - issued, tag))


def _poisson_arrivals(pool: BatchingPool, qps: float, control: Control, halt: threading.Event) -> None:
    rng = random.Random()
    next_arrival = clock()
    while not halt.is_set() and not control.stopping:
        if control.paused:
            control.wait_resumed()
            next_arrival = clock()  # no burst of "late" arrivals after a pause
        next_arrival += rng.expovariate(qps)
        delay = next_arrival - clock()
        if delay > 0:
            halt.wait(delay)
        pool.submit(next_arrival)
