"""Data-parallel replicas and pipeline stages for CPU (pinned worker processes) and CUDA (stages on GPUs).

CPU dp: one worker process per core group, pinned with sched_setaffinity, running the cached
traced artifact with torch.set_num_threads(group size). Requests travel as raw arrays over a
pipe (one copy each way, no per-call shared-memory setup); bench_modes.py measures that cost.
CPU pipeline: the model cut into N stages of about equal parameter count (torch.fx graph cut;
each cut carries whatever values are still live across it), one pinned worker per stage,
micro-batches flowing stage to stage over pipes. Workers die with the child (parent-death
signal, and EOF on their pipe).
"""
from __future__ import annotations

import collections
import multiprocessing
import os
import threading
import time
from typing import Any

import torch

from ..cache import quiet_jit
from ..errors import WorkloadFailure, one_line
from ..lifeline import set_parent_death_signal
from ..loadgen import Load
from ..protocol import Ready

WORKER_START_SECONDS = 300


# -- wire format: tensors as numpy arrays (bf16 has no numpy dtype: travels as int16 bits) ----------
def to_wire(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bfloat16:
            return ("bf16", value.contiguous().view(torch.int16).numpy())
        return value.contiguous().numpy()
    if isinstance(value, (tuple, list)):
        return type(value)(to_wire(v) for v in value)
    return value


def from_wire(value: Any) -> Any:
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str) and value[0] == "bf16":
        return torch.from_numpy(value[1]).view(torch.bfloat16)
    if type(value).__module__ == "numpy":
        return torch.from_numpy(value)
    if isinstance(value, (tuple, list)):
        return type(value)(from_wire(v) for v in value)
    return value


def first_tensor(value: Any) -> Any:
    """What a server returns to its caller: the model's first output tensor."""
    while isinstance(value, (tuple, list)) and value:
        value = value[0]
    return value


# -- worker processes ------------------------------------------------------------------------------
def _worker_setup(cpus: list[int]) -> None:
    set_parent_death_signal()
    os.sched_setaffinity(0, cpus)
    torch.set_num_threads(len(cpus))


def _dp_worker(conn: Any, artifacts: list[str], cpus: list[int]) -> None:
    """Loads a copy (one module per artifact: per bucket) on each "load", then serves
    (copy, artifact index, inputs) requests. Replies carry the worker's resident bytes."""
    from ..copies import resident_bytes

    _worker_setup(cpus)
    conn.send(("ready", 0.0, resident_bytes()))
    copies: list[list[Any]] = []
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message != "load":
            break
        started = time.perf_counter()
        try:
            with quiet_jit():
                copies.append([torch.jit.load(artifact) for artifact in artifacts])
        except Exception as exc:  # noqa: BLE001 - the child decides whether a refused copy is fatal
            conn.send(("failed", f"{type(exc).__name__}: {one_line(exc)}", resident_bytes()))
            continue
        conn.send(("loaded", time.perf_counter() - started, resident_bytes()))
    if message is None:
        conn.send(None)
        return
    pending = message
    with torch.inference_mode():
        while pending is not None:
            copy, bucket, payload = pending
            try:
                result = to_wire(first_tensor(copies[copy][bucket](*from_wire(payload))))
            except Exception as exc:  # noqa: BLE001 - travels back as one line
                result = WorkerError(f"{type(exc).__name__}: {one_line(exc)}")
            conn.send(result)
            try:
                pending = conn.recv()
            except (EOFError, OSError):
                return
    conn.send(None)


def _stage_worker(conn_in: Any, conn_out: Any, control: Any, stage: Any, cpus: list[int]) -> None:
    _worker_setup(cpus)
    control.send(("ready", 0.0))
    _serve(conn_in, conn_out, lambda args: to_wire(stage(*args)), tagged=True)


def _serve(conn_in: Any, conn_out: Any, compute: Any, tagged: bool = False) -> None:
    with torch.inference_mode():
        while True:
            try:
                message = conn_in.recv()
            except (EOFError, OSError):
                return  # the child is gone
            if message is None:
                conn_out.send(None)
                return
            tag, payload = message if tagged else (None, message)
            try:
                result = compute(from_wire(payload))
            except Exception as exc:  # noqa: BLE001 - travels back as one line
                result = WorkerError(f"{type(exc).__name__}: {one_line(exc)}")
            conn_out.send((tag, result) if tagged else result)


class WorkerError:
    def __init__(self, message: str) -> None:
        self.message = message


def core_groups(cpus: list[int], count: int) -> list[list[int]]:
    """`count` disjoint groups of consecutive CPUs, as equal as possible."""
    count = max(1, min(count, len(cpus)))
    size, extra = divmod(len(cpus), count)
    groups, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        groups.append(cpus[start:end])
        start = end
    return groups


class _Workers:
    """Spawned worker processes and the ends of their pipes; close() ends them all."""

    def __init__(self) -> None:
        self.context = multiprocessing.get_context("spawn")  # fork after torch's thread pools start is unsafe
        self.processes: list[Any] = []
        self.conns: list[Any] = []

    def start(self, target: Any, args: tuple) -> Any:
        process = self.context.Process(target=target, args=args, daemon=True)
        process.start()
        self.processes.append(process)
        return process

    def wait_ready(self, conn: Any, process: Any, what: str) -> tuple:
        """The worker's first reply: ("ready", seconds) from a stage, ("ready", seconds, resident bytes) from dp."""
        if not conn.poll(WORKER_START_SECONDS):
            raise WorkloadFailure("worker", f"{what} did not start within {WORKER_START_SECONDS} s")
        try:
            reply = conn.recv()
        except EOFError:
            process.join(1)
            raise WorkloadFailure("worker", f"{what} (pid {process.pid}) died while starting, "
                                            f"exit code {process.exitcode}") from None
        return reply

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(None)
            except (OSError, ValueError):
                pass
        for process in self.processes:
            process.join(timeout=3)
            if process.is_alive():
                process.kill()
                process.join(timeout=3)


def prepare_cpu(model: torch.nn.Module, inputs: tuple, ctx: Any, params: int, pool: Any = None) -> Any:
    from . import Prepared
    from .common import bucket_fields, cached_trace, cpu_name, visible_cpus
    from ..copies import parse_copies

    config = ctx.config
    cpus = visible_cpus()
    workers = _Workers()
    extra: dict = {}
    try:
        if config.mode == "dp":
            groups = core_groups(cpus, config.cores or len(cpus))
            if config.copies and parse_copies(config.copies):
                groups = groups[:parse_copies(config.copies)]  # fewer copies than groups: one worker per copy
            infos = [cached_trace(model, example, ctx, "cpu")[1] for example in (pool.examples if pool else [inputs])]
            load, load_seconds, extra = _start_dp(workers, groups, [str(i.path) for i in infos], inputs, ctx, pool)
            compile_seconds, cached = sum(i.compile_seconds for i in infos), all(i.cached for i in infos)
            artifact_bytes = sum(i.artifact_bytes for i in infos)
            extra.update(bucket_fields(pool, infos))
        elif pool:
            raise WorkloadFailure("unsupported", "pipeline mode cuts one fixed shape into stages; "
                                                 "--seq-len-dist and --buckets run with single or dp")
        else:
            groups = core_groups(cpus, config.pipeline_cores or len(cpus))
            ctx.phase("compiling", 0.0, f"cutting {config.model} into {len(groups)} stages")
            started = time.perf_counter()
            stages = split_stages(model, len(groups))
            compile_seconds, artifact_bytes, cached = time.perf_counter() - started, None, False
            load, load_seconds = _start_pipeline(workers, stages, groups[:len(stages)], inputs, ctx)
    except BaseException:
        workers.close()
        raise
    ready = Ready(params=params, cores_used=sum(len(g) for g in groups), compile_seconds=compile_seconds,
                  load_seconds=load_seconds, artifact_bytes=artifact_bytes, device_memory_bytes=None,
                  cached=cached, device_name=cpu_name(), **extra)
    return Prepared(load, ready, close=workers.close)


def _start_dp(workers: _Workers, groups: list[list[int]], artifacts: list[str], inputs: tuple, ctx: Any,
              pool: Any) -> tuple:
    """One worker per core group; copy i loads in worker i % workers (without --copies: one each).

    Returns the load, the load seconds and the `ready` event's copies fields (memory: the
    workers' resident bytes summed).
    """
    from . import load_model_copies
    from .common import merged_inputs, variable_replica
    from ..copies import out_of_memory_text

    started = time.perf_counter()
    config = ctx.config
    ends = []
    for group in groups:
        mine, theirs = workers.context.Pipe()
        ends.append((mine, workers.start(_dp_worker, (theirs, artifacts, group))))
        theirs.close()  # the worker holds its end now; a worker that dies reads as EOF here
        workers.conns.append(mine)
    resident = [workers.wait_ready(conn, process, f"dp worker {i}")[2] for i, (conn, process) in enumerate(ends)]
    local: list[int] = []  # per copy, its index inside its worker

    def load_one(i: int) -> int:
        w = i % len(ends)
        conn, process = ends[w]
        conn.send("load")
        try:
            tag, detail, resident[w] = conn.recv()
        except EOFError:
            raise WorkloadFailure("worker", f"dp worker {w} (pid {process.pid}) died loading copy {i + 1}") from None
        if tag == "failed":
            raise WorkloadFailure("oom" if out_of_memory_text(detail) else "worker", f"dp worker {w}: {detail}")
        local.append(i // len(ends))  # copies go round robin: this is the worker's (i // workers)th
        if config.copies is None:
            ctx.phase("loading", (i + 1) / len(ends), f"dp worker {w} on CPUs {groups[w]}")
        return w

    def measure() -> int | None:
        return sum(resident) if all(r is not None for r in resident) else None

    extra: dict = {}
    if config.copies is None:
        owners = [load_one(i) for i in range(len(ends))]
    else:
        from ..copies import host_available_bytes, host_total_bytes

        loaded = load_model_copies(ctx, load_one, measure=measure, free=host_available_bytes,
                                   total=host_total_bytes(), is_out_of_memory=lambda e: getattr(e, "kind", "") == "oom")
        owners, extra = loaded.loaded, loaded.ready_fields("process resident")
    locks = [threading.Lock() for _ in ends]  # copies in one worker share its pipe

    def replica_for(copy: int, w: int) -> Any:
        conn, process = ends[w]

        def call(bucket: int, args: tuple) -> Any:
            with locks[w]:
                conn.send((local[copy], bucket, to_wire(args)))
                try:
                    result = conn.recv()
                except EOFError:
                    raise WorkloadFailure("worker", f"dp worker {w} (pid {process.pid}) died") from None
            if isinstance(result, WorkerError):
                raise WorkloadFailure("worker", f"dp worker {w}: {result.message}")
            return from_wire(result)
        if pool:
            return variable_replica(list(range(len(pool.buckets))), pool, start=copy * len(pool.requests) // len(owners),
                                    run=call)
        return lambda k: call(0, merged_inputs(inputs, k))

    replicas = [replica_for(copy, w) for copy, w in enumerate(owners)]
    load = Load(replicas, slots=list(owners), copies=list(range(len(owners))) if config.copies else None,
                buckets=pool.buckets if pool else None, max_merge=1 if pool else config.concurrency)
    return load, time.perf_counter() - started, extra


def _start_pipeline(workers: _Workers, stages: list, groups: list[list[int]], inputs: tuple, ctx: Any) -> tuple:
    started = time.perf_counter()
    ctx_mp = workers.context
    links = [ctx_mp.Pipe(duplex=False) for _ in range(len(stages) + 1)]  # (receive end, send end)
    for i, (stage, group) in enumerate(zip(stages, groups)):
        mine, theirs = ctx_mp.Pipe()
        process = workers.start(_stage_worker, (links[i][0], links[i + 1][1], theirs, stage, group))
        theirs.close()
        workers.wait_ready(mine, process, f"pipeline stage {i}")
        ctx.phase("loading", (i + 1) / len(stages), f"stage {i} on CPUs {group}")
    # Only the workers hold the inner pipe ends now, so a stage that dies ends the chain with EOF.
    # links[0]: us -> stage 0; links[i]: stage i-1 -> stage i; links[-1]: last stage -> us.
    for receive, send in links[1:-1]:
        receive.close()
        send.close()
    links[0][0].close()
    links[-1][1].close()
    pipeline = _Pipeline(links[0][1], links[-1][0], inputs, micro_batches=min(ctx.config.batch, len(stages)))
    workers.conns.append(links[0][1])
    callers = max(ctx.config.concurrency, len(stages))
    # Many callers share the one pipeline; it keeps order, so its requests are never merged.
    return Load([pipeline.run] * callers, slots=[0] * callers, max_merge=1), time.perf_counter() - started


class _Pipeline:
    """Feeds micro-batches into stage 0 and matches what comes out of the last stage, in order."""

    def __init__(self, head: Any, tail: Any, inputs: tuple, micro_batches: int) -> None:
        self.head, self.tail = head, tail
        self.parts = [to_wire(part) for part in zip(*(t.chunk(micro_batches) for t in inputs))]
        self.pending: collections.deque = collections.deque()
        self.lock = threading.Lock()
        self.failure: str | None = None
        threading.Thread(target=self._collect, daemon=True, name="pipeline-tail").start()

    def run(self, k: int) -> None:
        done = threading.Event()
        with self.lock:
            self.pending.append([len(self.parts), done])
            for part in self.parts:
                self.head.send((0, list(part)))
        done.wait()
        if self.failure:
            raise WorkloadFailure("worker", self.failure)

    def _collect(self) -> None:
        while True:
            try:
                message = self.tail.recv()
            except (EOFError, OSError):
                message = None
            if message is None:
                self.failure = self.failure or "a pipeline stage ended"
                for _, done in self.pending:
                    done.set()
                return
            _, result = message
            if isinstance(result, WorkerError):
                self.failure = result.message
            entry = self.pending[0]
            entry[0] -= 1
            if entry[0] == 0:
                self.pending.popleft()
                entry[1].set()


# -- cutting a model into stages -------------------------------------------------------------------
def split_stages(model: torch.nn.Module, count: int) -> list[torch.fx.GraphModule]:
    """Cut the model's graph into up to `count` consecutive stages of about equal parameter count.

    Each stage takes the values live across its input cut (as a flat tuple) and returns those
    live across its output cut; the last stage returns the model's output.
    """
    try:
        graph_module = torch.fx.GraphModule(model, _BufferTracer().trace(model))
    except Exception as exc:  # noqa: BLE001
        raise WorkloadFailure("unsupported", f"pipeline mode cannot cut {type(model).__name__} into stages "
                                             f"(torch.fx cannot trace it: {one_line(exc)})") from None
    nodes = list(graph_module.graph.nodes)
    body = [n for n in nodes if n.op not in ("placeholder", "output")]
    count = max(1, min(count, len(body)))
    before = [0]  # before[b]: parameters of body[:b]
    for node in body:
        before.append(before[-1] + _node_params(graph_module, node))
    cuts = [0]
    for j in range(1, count):
        # The boundary nearest to j/count of the parameters, leaving every stage at least one node.
        target = before[-1] * j / count
        options = range(cuts[-1] + 1, len(body) - (count - j) + 1)
        cuts.append(min(options, key=lambda b: abs(before[b] - target)))
    cuts.append(len(body))
    position = {n: i for i, n in enumerate(body)}
    placeholders = [n for n in nodes if n.op == "placeholder"]
    output = next(n for n in nodes if n.op == "output")

    def live_at(cut: int) -> list[torch.fx.Node]:
        """Values defined before `cut` and used at or after it."""
        defined = placeholders + body[:cut]
        return [n for n in defined if any(u is output or position[u] >= cut for u in n.users)]

    stages = []
    for s in range(len(cuts) - 1):
        graph, env = torch.fx.Graph(), {}
        for value in live_at(cuts[s]):
            env[value] = graph.placeholder(value.name)
        for node in body[cuts[s]:cuts[s + 1]]:
            env[node] = graph.node_copy(node, lambda n: env[n])
        if s == len(cuts) - 2:
            graph.output(torch.fx.graph.map_arg(output.args[0], lambda n: env[n]))
        else:
            graph.output(tuple(env[v] for v in live_at(cuts[s + 1])))
        stages.append(torch.fx.GraphModule(graph_module, graph))
    return stages


class _BufferTracer(torch.fx.Tracer):
    """Buffers become graph values too, so slicing one by an input's size (BERT's position ids) traces."""
    proxy_buffer_attributes = True


def _node_params(graph_module: torch.fx.GraphModule, node: torch.fx.Node) -> int:
    if node.op == "call_module":
        return sum(p.numel() for p in graph_module.get_submodule(node.target).parameters())
    if node.op == "get_attr":
        value = graph_module
        for part in node.target.split("."):
            value = getattr(value, part)
        return value.numel() if isinstance(value, torch.Tensor) else 0
    return 0


# -- CUDA pipeline ---------------------------------------------------------------------------------
def prepare_cuda_pipeline(model: torch.nn.Module, inputs: tuple, ctx: Any, params: int,
                          load_seconds: float) -> Any:
    """Stages on consecutive GPUs (round robin; several streams on one GPU when there is one)."""
    from . import Prepared

    config = ctx.config
    if config.cuda_graphs:
        raise WorkloadFailure("unsupported", "--cuda-graphs captures one forward; use it with single or dp")
    gpus = torch.cuda.device_count()
    ctx.phase("compiling", 0.0, "cutting the model into stages")
    started = time.perf_counter()
    stages = split_stages(model, config.pipeline_cores or max(2, gpus))
    devices = [torch.device("cuda", i % gpus) for i in range(len(stages))]
    stages = [stage.to(device) for stage, device in zip(stages, devices)]
    compile_seconds = time.perf_counter() - started

    def caller() -> Any:
        streams = [torch.cuda.Stream(device=device) for device in devices]

        def run(k: int) -> None:
            values: Any = inputs
            previous = torch.cuda.current_stream(devices[0])
            for stage, device, stream in zip(stages, devices, streams):
                stream.wait_stream(previous)  # this stage starts when the one before has finished
                with torch.cuda.stream(stream):
                    values = stage(*(v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                                     for v in values))
                values = values if isinstance(values, tuple) else (values,)
                previous = stream
            previous.synchronize()
        return run

    callers = max(config.concurrency, len(stages))
    load = Load([caller() for _ in range(callers)], slots=[0] * callers, max_merge=1,
                thread_context=torch.inference_mode)
    ready = Ready(params=params, cores_used=len(set(devices)), compile_seconds=compile_seconds,
                  load_seconds=load_seconds, artifact_bytes=None,
                  device_memory_bytes=sum(torch.cuda.memory_allocated(i) for i in range(gpus)),
                  cached=False, device_name=torch.cuda.get_device_name(0))
    return Prepared(load, ready)
