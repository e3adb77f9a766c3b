"""Compiled-artifact cache: traced TorchScript modules on disk, keyed by everything that shapes them.

Switching mode or batch restarts the child; the cache turns the second start from a trace
(or a Neuron compile: minutes) into a load (seconds). The directory is per user and
private (0700): a cached artifact is code that `torch.jit.load` runs, so it is loaded only
when it is a regular file of ours that nobody else can write and its SHA-256 is the one
saved beside it (`<artifact>.sha256`); anything else is rebuilt.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import os
import stat
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
    """The cache directory, owned by us and mode 0700.

    The default one (ours, under ~/.cache) is created or tightened. A directory given with
    --cache-dir is never re-permissioned: if it is ours and private it is used; if it is shared
    (writable by others, like /tmp) or ours but open to others, a private `neurontui-<uid>`
    directory is made inside it; another user's directory is refused.
    """
    if not path:
        directory = default_cache_dir()
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = directory.stat()
            _check_ours(directory, info)
            if info.st_mode & 0o077:
                os.chmod(directory, 0o700)
        except OSError as exc:
            raise _unusable(directory, exc) from None
        return directory
    directory = Path(path)
    try:
        if not directory.exists():
            directory.mkdir(mode=0o700, parents=True)
        info = directory.stat()
        if not stat.S_ISDIR(info.st_mode):
            raise WorkloadFailure("usage", f"cache directory {directory} is not a directory")
        ours = info.st_uid == os.getuid()
        if ours and not info.st_mode & 0o077:
            return directory
        if not ours and not info.st_mode & stat.S_IWOTH:
            _check_ours(directory, info)  # raises: another user's own directory
        inside = directory / f"{APP_DIR}-{os.getuid()}"
        with contextlib.suppress(FileExistsError):
            inside.mkdir(mode=0o700)
        info = os.lstat(inside)  # not followed: in a shared directory a link would be anyone's
        if not stat.S_ISDIR(info.st_mode) or info.st_mode & 0o077:
            raise WorkloadFailure("usage", f"cache directory {inside} is not a private directory; "
                                           "remove it or pass --cache-dir DIR of your own")
        _check_ours(inside, info)
    except OSError as exc:
        raise _unusable(directory, exc) from None
    return inside


def _check_ours(directory: Path, info: os.stat_result) -> None:
    if info.st_uid != os.getuid():
        raise WorkloadFailure("usage", f"cache directory {directory} belongs to another user; "
                                       "pass --cache-dir DIR of your own")


def _unusable(directory: Path, exc: OSError) -> WorkloadFailure:
    return WorkloadFailure("usage", f"cannot use cache directory {directory}: {exc.strerror or exc}")


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
        info = os.stat(weights)
        parts["weights"] = [os.path.abspath(weights), info.st_size, info.st_mtime_ns]
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
    digest_path = path.with_suffix(".sha256")  # the artifact's index entry: the hash it was saved with
    trusted = _trusted_bytes(path, digest_path)
    if trusted is not None:
        try:
            return _load(trusted, path, 0.0, cached=True)
        except Exception:  # noqa: BLE001 - a stale file (another torch) is rebuilt, not fatal
            pass
    # Absent, damaged, planted (not ours, writable by others, or not what we saved): rebuilt.
    path.unlink(missing_ok=True)
    digest_path.unlink(missing_ok=True)
    started = time.perf_counter()
    with _heartbeat(on_compile, started):
        artifact = compile_fn()
    compile_seconds = time.perf_counter() - started
    buffer = io.BytesIO()
    with quiet_jit():
        torch.jit.save(artifact, buffer)
    del artifact
    data = buffer.getvalue()
    _write_atomically(path, data)
    _write_atomically(digest_path, hashlib.sha256(data).hexdigest().encode())
    # Load what was saved, so a first start runs (and times) exactly what a cached start runs.
    return _load(data, path, compile_seconds, cached=False)


def _trusted_bytes(path: Path, digest_path: Path) -> bytes | None:
    """The artifact's bytes if we may run them: regular files of ours that nobody else can
    write, the artifact's hash the one saved beside it. Read once, so what was checked is
    exactly what is loaded."""
    try:
        expected = _read_private(digest_path).decode("ascii").strip()
        data = _read_private(path)
    except (OSError, UnicodeDecodeError):
        return None
    return data if hashlib.sha256(data).hexdigest() == expected else None


def _read_private(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
            raise PermissionError(f"{path} is not a private file of ours")
        return file.read()


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".partial-", suffix=path.suffix)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load(data: bytes, path: Path, compile_seconds: float, cached: bool) -> tuple[Any, CacheInfo]:
    import torch

    started = time.perf_counter()
    with quiet_jit():
        module = torch.jit.load(io.BytesIO(data))
    load_seconds = time.perf_counter() - started
    return module, CacheInfo(compile_seconds, load_seconds, len(data), cached, path)


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
