"""`--record PATH`: append every raw report and every snapshot as JSON lines.

Each line is written and flushed on its own, so a crash loses at most the line in
progress (recording again to such a file ends the cut line first). Lines: {"t": <unix s>,
"source": ..., "report": <neuron-monitor report>} and {"t": ..., "source": ..., "snapshot":
<Snapshot.to_json_dict()>}. A write that fails (full disk, unwritable path) is reported
once and ends the recording, not the run. The file is opened without following a symbolic
link and refused when another user owns it (open_recording).
"""
from __future__ import annotations

import errno
import json
import os
import stat
import threading
from typing import IO, Any, Callable

from ..store import Store
from ..telemetry import CORE_KINDS, Core, CoreMemory, EccCounters, Memory, Runtime, Snapshot
from .neuron_parser import _core_index, _count, _finite
from .sanitize import sanitize_snapshot

SOURCE = "recorder"


class Recorder:
    def __init__(self, path: str, store: Store) -> None:
        self.path = path
        self.store = store
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self.failed = False
        self.closed = False
        self.lines = 0

    def report(self, raw: bytes, time: float, source: str) -> None:
        """Record one raw neuron-monitor report, as it came (it parsed as a JSON object)."""
        raw = raw.strip()
        if b"\n" in raw:  # a pretty-printed report: one line per record
            raw = json.dumps(json.loads(raw), separators=(",", ":")).encode()
        head = json.dumps({"t": time, "source": source})[:-1].encode()
        self._write(head + b', "report": ' + raw + b"}\n")  # no re-encoding of a large report

    def snapshot(self, snapshot: Snapshot) -> None:
        body = {"t": snapshot.time, "source": snapshot.source, "snapshot": snapshot.to_json_dict()}
        self._write(json.dumps(body, separators=(",", ":")).encode() + b"\n")

    def _write(self, line: bytes) -> None:
        with self._lock:
            if self.failed or self.closed:  # a source thread that outlived stop() must not reopen the file
                return
            try:
                if self._file is None:
                    self._file = self._open_for_append()
                self._file.write(line)
                self._file.flush()
                self.lines += 1
            except (OSError, ValueError) as exc:
                self.failed = True
                self._close_quietly()
                self.store.log("error", SOURCE, f"recording to {self.path} stopped: {exc}")

    def _open_for_append(self) -> IO[bytes]:
        """Open the recording for appending; a last line cut by a kill is ended first, so the new
        run's first line stays whole and the cut one stays alone."""
        file = open_recording(self.path)
        try:
            info = os.fstat(file.fileno())
            if stat.S_ISREG(info.st_mode) and info.st_size > 0 and not self._ends_with_newline():
                file.write(b"\n")
        except BaseException:
            file.close()
            raise
        return file

    def _ends_with_newline(self) -> bool:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as existing:
                existing.seek(-1, os.SEEK_END)
                return existing.read(1) == b"\n"
        except OSError:  # not readable (a write-only file): append as before
            return True

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._close_quietly()

    def _close_quietly(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None


def open_recording(path: str) -> IO[bytes]:
    """Open `path` for appending (created 0600), never through a symbolic link and never a
    regular file of another user: in a shared directory either could make us write where its
    owner cannot (a root-owned file, another user's log)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and info.st_uid != os.getuid():
            raise PermissionError(errno.EPERM, "the file belongs to another user")
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "ab")


def check_recording_path(path: str) -> str | None:
    """One line saying why `path` cannot be recorded to, or None: checked before a run starts,
    as --export checks its path, so a run does not end with no recording and no word."""
    existed = os.path.lexists(path)
    try:
        open_recording(path).close()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"cannot record to {path}: it is a symbolic link (give the file itself)"
        return f"cannot record to {path}: {exc.strerror or exc}"
    if not existed:
        os.unlink(path)  # created only to prove it can be; the run creates it again
    return None


def snapshot_from_json(body: Any) -> Snapshot:
    """The inverse of `Snapshot.to_json_dict()`, for replaying recordings.

    A recording is outside input (it may have been edited): every value is checked as a
    report's is, by the type its field declares. A wrong value reads as "not known" (or its
    default); an item without its index is dropped; raises ValueError when the body is not
    a snapshot at all (no time).
    """
    if not isinstance(body, dict):
        raise ValueError("a snapshot is a JSON object")
    memory = _as_dict(body.get("memory"))
    snapshot = _build(Snapshot, body)
    if _finite(body.get("time")) is None:
        raise ValueError("a snapshot needs a finite time")
    snapshot.cores = _items(Core, body.get("cores"), lambda core: core.kind in CORE_KINDS)
    snapshot.memory = _build(Memory, memory)
    snapshot.memory.per_core = {m.index: m for m in _items(CoreMemory, memory.get("per_core"))}
    runtimes = []
    for raw in _as_list(body.get("runtimes")):
        if not isinstance(raw, dict) or not isinstance(raw.get("tag"), str):
            continue
        runtime = _build(Runtime, raw)
        # JSON object keys are strings; the model's per-core maps are keyed by core index
        runtime.core_memory = {m.index: m for m in _items(CoreMemory, raw.get("core_memory"))}
        runtimes.append(runtime)
    snapshot.runtimes = runtimes
    snapshot.ecc = _items(EccCounters, body.get("ecc"))
    return sanitize_snapshot(snapshot)


# One reader per declared field type; None (or the field's default) for a value it refuses.
def _ratio_or_none(value: Any) -> float | None:
    number = _finite(value)
    return number if number is not None and number >= 0 else None


def _index_map(value: Any) -> dict[int, float]:
    return {index: number for key, raw in _as_dict(value).items()
            if (index := _core_index(key)) is not None and (number := _ratio_or_none(raw)) is not None}


_READERS: dict[str, Callable[[Any], Any]] = {
    "str": lambda v: v if isinstance(v, str) else None,
    "int": _count,
    "int | None": _count,
    "float": _finite,
    "float | None": _ratio_or_none,
    "list[int]": lambda v: [i for x in _as_list(v) if (i := _core_index(x)) is not None],
    "list[str]": lambda v: [x for x in _as_list(v) if isinstance(x, str)],
    "dict[str, str]": lambda v: {k: x for k, x in _as_dict(v).items() if isinstance(x, str)},
    "dict[str, int]": lambda v: {k: c for k, x in _as_dict(v).items() if (c := _count(x)) is not None},
    "dict[str, float]": lambda v: {k: f for k, x in _as_dict(v).items() if (f := _ratio_or_none(x)) is not None},
    "dict[int, float]": _index_map,
    "dict[str, Any]": lambda v: {k: x for k, x in _as_dict(v).items()
                                 if isinstance(x, str) or _finite(x) is not None},
}


_SHARES = {(Core, "utilization"), (Runtime, "core_utilization"),  # the parser clamps these to 0..1
           (Snapshot, "vcpu_user_ratio"), (Snapshot, "vcpu_system_ratio")}


def _at_most_one(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: min(share, 1.0) for key, share in value.items()}
    return None if value is None else min(value, 1.0)


def _build(cls: type, body: dict) -> Any:
    """An instance of telemetry type `cls` from the fields of `body` its readers accept (others
    keep their defaults; fields of other types are filled by the caller)."""
    values = {}
    declared = cls.__annotations__  # as written (the module postpones annotations): "int | None"...
    for name, kind in declared.items():
        reader = _READERS.get(kind)
        if reader is not None and name in body:
            value = reader(body[name])
            if (cls, name) in _SHARES:
                value = _at_most_one(value)
            if value is not None or kind.endswith("| None"):
                values[name] = value
    try:
        return cls(**values)
    except TypeError:  # a required field (an index, a kind, a time) was refused
        raise ValueError(f"{cls.__name__} without a readable {[name for name in declared if name not in values]}")


def _items(cls: type, raw: Any, keep: Callable[[Any], bool] = lambda item: True) -> list:
    items = []
    for entry in _as_list(raw):
        if isinstance(entry, dict):
            try:
                item = _build(cls, entry)
            except ValueError:
                continue  # an item without its index is nobody's
            if keep(item):
                items.append(item)
    return items


def _as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else []
