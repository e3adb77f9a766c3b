"""Compiled-artifact cache: traced TorchScript modules on disk, keyed by everything that shapes them.

Switching mode or batch restarts the child; the cache turns the second start from a trace
(or a Neuron compile: minutes) into a load (seconds). The directory is per user and
private (0700): a cached artifact is code that `torch.jit.load` runs.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from .errors import WorkloadFailure, one_line

APP_DIR = "neurontui"
HEARTBEAT_SECONDS = 10.0


@dataclass
class CacheInfo:
    compile_seconds: float
    load_seconds: float
    artifact_bytes: int
    cached: bool
    path: Path


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / APP_DIR


def private_dir(path: str | os.PathLike | None) -> Path:
    """Create (or tighten) the cache directory: owned by us, mode 0700."""
    directory = Path(path) if path else default_cache_dir()
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.stat()
        if info.st_uid != os.getuid():
            raise WorkloadFailure("usage", f"cache directory {directory} belongs to another user; "
                                           "pass --cache-dir DIR of your own")
        if info.st_mode & 0o077:
            os.chmod(directory, 0o700)
    except OSError as exc:
        raise WorkloadFailure("usage", f"cannot use cache directory {directory}: {exc.strerror or exc}") from None
    return directory


def artifact_key(parts: dict[str, Any]) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def model_fingerprint(module_name: str, weights: str | None) -> dict[str, Any]:
    """What identifies a model build: its source file's hash and the weights file's identity."""
    parts: dict[str, Any] = {}
    spec = importlib.util.find_spec(module_name)
    if spec and spec.origin and os.path.isfile(spec.origin):
        parts["source"] = hashlib.sha256(Path(spec.origin).read_bytes()).hexdigest()[:16]
    if weights:
        stat = os.stat(weights)
        parts["weights"] = [os.path.abspath(weights), stat.st_size, stat.st_mtime_ns]
    return parts


def input_signature(inputs: Sequence[Any]) -> list[str]:
    return [f"{tuple(t.shape)}:{t.dtype}" for t in inputs]


def trace_module(model: Any, inputs: tuple, tracer: Callable | None = None, **kwargs: Any) -> Any:
    """Trace `model` on `inputs`: torch.jit.trace, then, if given, `tracer` (a Neuron compiler's trace).

    Tracing freezes the graph, so a tracer warning (a branch on a tensor's value, a tensor
    turned into a Python number) means the artifact would silently be wrong: it is an error.
    The strict torch.jit.trace runs first on every path, so a compiler whose own internals
    warn is not mistaken for an untraceable model, and an untraceable one fails in seconds,
    not after minutes of compiling.
    """
    import torch

    shapes = ", ".join(input_signature(inputs))
    with quiet_jit():
        warnings.simplefilter("error", torch.jit.TracerWarning)
        try:
            with torch.no_grad():
                # check_trace would rerun the model on the same inputs: it proves nothing.
                traced = torch.jit.trace(model, inputs, check_trace=False)
        except Exception as exc:  # noqa: BLE001 - shape errors, unsupported ops: one line for the user
            warning = _tracer_warning(exc, torch.jit.TracerWarning)
            if warning is not None:
                raise WorkloadFailure(
                    "trace", f"{type(model).__name__} cannot be traced to a fixed graph: {one_line(warning)} "
                             "(tensor-dependent control flow; tracing needs a static graph)") from None
            raise WorkloadFailure("trace", f"tracing {type(model).__name__} on inputs {shapes} failed: "
                                           f"{one_line(exc)}") from None
    if tracer is None:
        return traced
    del traced
    try:
        # quiet_jit: the Neuron compilers call torch.jit.trace themselves, a deliberate use of it
        with torch.no_grad(), quiet_jit():
            return tracer(model, inputs, **kwargs)
    except Exception as exc:  # noqa: BLE001
        name = f"{getattr(tracer, '__module__', '') or ''}.{getattr(tracer, '__name__', 'trace')}".lstrip(".")
        raise WorkloadFailure("trace", f"{name} failed on {type(model).__name__} with inputs {shapes}: "
                                       f"{one_line(exc)}") from None


def _tracer_warning(exc: BaseException, kind: type) -> BaseException | None:
    """The TracerWarning behind `exc`: raised directly, or wrapped when it surfaced inside C++ code."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def load_or_compile(directory: Path, name: str, key_parts: dict[str, Any], compile_fn: Callable[[], Any],
                    on_compile: Callable[[float], None] = lambda elapsed: None) -> tuple[Any, CacheInfo]:
    """The artifact for `key_parts`: loaded from `directory`, or compiled, saved atomically, then loaded.

    `on_compile(elapsed)` is called when a compile starts and every HEARTBEAT_SECONDS while it
    runs: a Neuron compile takes minutes, and a silent child looks hung to its parent.
    """
    import torch

    parts = dict(key_parts, torch=torch.__version__)
    path = directory / f"{name}-{artifact_key(parts)}.pt"
    compile_seconds = 0.0
    cached = path.is_file()
    if cached:
        try:
            return _load(path, compile_seconds, cached)
        except Exception:  # noqa: BLE001 - a truncated or stale file is rebuilt, not fatal
            path.unlink(missing_ok=True)
            cached = False
    started = time.perf_counter()
    with _heartbeat(on_compile, started):
        artifact = compile_fn()
    compile_seconds = time.perf_counter() - started
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".partial-", suffix=".pt")
    os.close(fd)
    try:
        with quiet_jit():
            torch.jit.save(artifact, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    del artifact
    # Load what was saved, so a first start runs (and times) exactly what a cached start runs.
    return _load(path, compile_seconds, cached)


def _load(path: Path, compile_seconds: float, cached: bool) -> tuple[Any, CacheInfo]:
    import torch

    started = time.perf_counter()
    with quiet_jit():
        module = torch.jit.load(str(path))
    load_seconds = time.perf_counter() - started
    return module, CacheInfo(compile_seconds, load_seconds, path.stat().st_size, cached, path)



@contextlib.contextmanager
def quiet_jit() -> Iterator[None]:
    """TorchScript's deprecation notice would fill the stderr tail the parent shows on a crash."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\..*` is deprecated", category=FutureWarning)
        yield


@contextlib.contextmanager
def _heartbeat(beat: Callable[[float], None], started: float) -> Iterator[None]:
    beat(0.0)
    done = threading.Event()

    def run() -> None:
        while not done.wait(HEARTBEAT_SECONDS):
            beat(time.perf_counter() - started)

    thread = threading.Thread(target=run, name="compile-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
