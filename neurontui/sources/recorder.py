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
from dataclasses import fields
from typing import IO

from ..store import Store
from ..telemetry import Core, CoreMemory, EccCounters, Memory, Runtime, Snapshot

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


def snapshot_from_json(body: dict) -> Snapshot:
    """The inverse of `Snapshot.to_json_dict()`, for replaying recordings; raises on bad input."""
    memory = dict(body.get("memory") or {})
    per_core = {int(m["index"]): CoreMemory(**_known(CoreMemory, m)) for m in memory.pop("per_core", None) or ()}
    runtimes = []
    for raw in body.get("runtimes") or ():
        runtime = Runtime(**_known(Runtime, raw))
        # JSON object keys are strings; the model's per-core maps are keyed by core index
        runtime.core_utilization = {int(k): float(v) for k, v in (raw.get("core_utilization") or {}).items()}
        runtime.core_flops = {int(k): float(v) for k, v in (raw.get("core_flops") or {}).items()}
        runtime.core_memory = {int(m["index"]): CoreMemory(**_known(CoreMemory, m))
                               for m in raw.get("core_memory") or ()}
        runtimes.append(runtime)
    snapshot = Snapshot(**_known(Snapshot, body))
    snapshot.cores = [Core(**_known(Core, core)) for core in body.get("cores") or ()]
    snapshot.memory = Memory(**_known(Memory, memory))
    snapshot.memory.per_core = per_core
    snapshot.runtimes = runtimes
    snapshot.ecc = [EccCounters(**_known(EccCounters, ecc)) for ecc in body.get("ecc") or ()]
    return snapshot


def _known(cls: type, body: dict) -> dict:
    """The keys of `body` that are plain fields of dataclass `cls` (newer recordings may add keys)."""
    return {f.name: body[f.name] for f in fields(cls) if f.name in body}
