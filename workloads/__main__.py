"""`python -m workloads --model M --backend B --mode X ...`: one measured inference workload.

Events (workloads/protocol.py) go to stdout, one JSON object per line; logs and details go
to stderr. Every failure is one `error` event and a non-zero exit (2 for bad flags), never a
traceback on stdout. `python -m workloads --list --json` describes the models.
"""
from __future__ import annotations

import _thread
import argparse
import json
import os
import signal
import sys
import traceback

from .config import WorkloadConfig, add_workload_arguments
from .copies import is_out_of_memory
from .emit import Emitter
from .errors import WorkloadFailure, one_line
from .lifeline import watch_parent
from .loadgen import Control
from .protocol import Bye, Error, Hello, Phase


class Stopped(BaseException):
    """The parent asked us to stop (command, signal or hang-up) before the load loop ran.
    A BaseException, as KeyboardInterrupt is: an import's `except Exception` guard must not
    swallow it (torchvision's did, then failed on its half-registered operators)."""


class UsageError(Exception):
    pass


class EventArgumentParser(argparse.ArgumentParser):
    """Bad flags become one `error` event (kind usage) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def main(argv: list[str] | None = None) -> int:
    emit = Emitter.take_stdout()
    parser = EventArgumentParser(prog="python -m workloads", description=__doc__.splitlines()[0])
    add_workload_arguments(parser)
    parser.add_argument("--list", action="store_true", help="describe the models and exit")
    parser.add_argument("--json", action="store_true", help="with --list: one JSON object")
    try:
        args = parser.parse_args(argv)
        config = WorkloadConfig.from_namespace(args)
        problems = config.validate()
        if problems:
            raise UsageError("; ".join(problems))
    except UsageError as exc:
        return fail(emit, "usage", str(exc), code=2)
    if args.list:
        return list_models(emit, args.json)

    control = Control()
    interruptible = [True]  # outside the load loop a stop must break into whatever the main thread does

    def on_command(command: str) -> None:
        control.command(command)
        if command == "stop" and interruptible[0] and not control.in_load:
            _thread.interrupt_main(signal.SIGTERM)

    def on_signal(signum: int, frame: object) -> None:
        control.command("stop")
        if interruptible[0] and not control.in_load:
            raise Stopped()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    parent = os.environ.get("NEURONTUI_PARENT_PID", "")
    try:
        watch_parent(on_command, expected_parent=int(parent) if parent.isdigit() else None)
        outcome = run(config, emit, control)
    except Stopped:
        interruptible[0] = False
        emit(Bye(reason="stopped"))
        return 0
    except WorkloadFailure as exc:
        interruptible[0] = False
        return fail(emit, exc.kind, exc.message, code=2 if exc.kind == "usage" else 1)
    except BaseException as exc:  # noqa: BLE001 - whatever happens, the parent gets one error event
        interruptible[0] = False
        if control.stopping:  # a stop broke into code that swallowed it and failed after: still a stop
            emit(Bye(reason="stopped"))
            return 0
        kind, message = classify(exc)
        if kind == "internal":
            traceback.print_exc(file=sys.stderr)
        return fail(emit, kind, message)
    interruptible[0] = False
    emit(Bye(reason=outcome.reason, completed=outcome.completed, errors=outcome.errors))
    return 0


def run(config: WorkloadConfig, emit: Emitter, control: Control):
    from . import backends, loadgen
    from .cache import private_dir
    from .flops import flops_per_sample
    from .models import get_model

    spec = get_model(config.model)
    backend = backends.resolve(config.backend)
    emit(Hello(pid=os.getpid(), model=config.model, backend=backend, mode=config.mode, batch=config.batch,
               concurrency=config.concurrency, scenario=config.scenario, precision=config.precision))
    problem = backends.copies_problem(backend, spec, config)
    if problem:
        raise WorkloadFailure("usage", problem)
    emit(Phase(phase="building", progress=0.0, detail=f"{config.model}: {spec.input_description}"))
    ctx = backends.Context(config=config, spec=spec, emit=emit, cache_dir=private_dir(config.cache_dir))
    model = spec.build(config)
    try:
        inputs = spec.example_inputs(config.batch, config)
    except ValueError as exc:
        raise WorkloadFailure("input", one_line(exc)) from None
    flops = flops_per_sample(spec, config, ctx.cache_dir)  # part of building: a copy of the model on `meta`
    prepared = backends.prepare(backend, model, inputs, ctx)
    del model
    prepared.ready.flops_per_sample = flops
    try:
        emit(prepared.ready)
        return loadgen.run(prepared.load, config, emit, control)
    finally:
        prepared.close()


def classify(exc: BaseException) -> tuple[str, str]:
    """An unexpected exception's error kind and one-line message."""
    name = type(exc).__name__
    if name == "WeightsError":
        return "weights", one_line(exc)
    if is_out_of_memory(exc):
        return "oom", f"out of memory: {one_line(exc)} (lower --batch or --concurrency)"
    if isinstance(exc, KeyError) and "unknown model" in str(exc):
        return "model", str(exc.args[0])
    return "internal", f"{name}: {one_line(exc)} (details on stderr)"


def fail(emit: Emitter, kind: str, message: str, code: int = 1) -> int:
    print(f"workloads: {kind}: {message}", file=sys.stderr)
    emit(Error(kind=kind, message=message, fatal=True))
    return code


def list_models(emit: Emitter, as_json: bool) -> int:
    from .models import describe_models

    models = describe_models()
    if as_json:
        emit.write_line(json.dumps({"models": models}, separators=(",", ":")))
    else:
        for m in models:
            emit.write_line(f"{m['name']:<10} {m['params']:>12,} params  {m['input']}")
    return 0


if __name__ == "__main__":
    status = main()
    sys.stderr.flush()
    # Skip interpreter teardown: a daemon thread still inside a torch op (a dispatcher finishing
    # its last batch) can make C++ destructors abort the process after the goodbye was sent.
    os._exit(status)
