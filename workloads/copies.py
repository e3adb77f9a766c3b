"""`--copies N|max`: load independent copies of a model, measuring memory after each load.

Torch-free (config.py parses the flag with it; the backends pass in how to load one copy and
how to read memory). Bytes per copy is the least-squares slope of memory over the loads, so a
first load that also pays one-time costs (runtime start-up, allocator pools) or reuses memory
freed by the compile does not stand for every copy.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import one_line

# `max` never loads more: every window carries one completion count per copy, and the seed's
# estimate for the biggest device here (136 ResNet-50s in an inf1's 8 GB) sits well below it.
MAX_COPIES = 256
# `max` loads the next copy only if it leaves this share of the device's total memory free:
# activations, the runtime's own buffers and (on CPU) the rest of the host need room too.
HEADROOM = 0.10


def parse_copies(text: str) -> int | None:
    """'4' -> 4, 'max' -> None (as many as fit); ValueError with a one-line reason."""
    if text.strip().lower() == "max":
        return None
    try:
        count = int(text)
    except ValueError:
        raise ValueError(f"--copies {text!r}: expected a whole number or max") from None
    if not 1 <= count <= MAX_COPIES:
        raise ValueError(f"--copies must be between 1 and {MAX_COPIES} (or max), got {count}")
    return count


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over x; None with fewer than two distinct x."""
    if len(points) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


@dataclass
class LoadedCopies:
    """What `load_copies` loaded and measured; memory in bytes, None where it cannot be read."""
    loaded: list[Any]
    memory_before: int | None = None
    memory_after_each_load: list[int] = field(default_factory=list)
    memory_total: int | None = None
    stopped: str = ""  # why fewer than requested loaded ('' when all did)

    @property
    def bytes_per_copy(self) -> int | None:
        """Slope over the loads (copy k -> memory after it); one copy: its difference to before."""
        after = self.memory_after_each_load
        if len(after) >= 2:
            fitted = slope([(k + 1, m) for k, m in enumerate(after)])
        elif after and self.memory_before is not None:
            fitted = after[0] - self.memory_before
        else:
            return None
        return max(0, round(fitted)) if fitted is not None else None

    @property
    def copies_fit(self) -> int | None:
        """How many copies the device's total memory holds at the measured bytes per copy."""
        per_copy, base = self.bytes_per_copy, self.memory_before
        if not per_copy or self.memory_total is None or base is None:
            return None
        return max(0, (self.memory_total - base) // per_copy)


    def ready_fields(self, source: str) -> dict[str, Any]:
        """The `ready` event's copies fields (workloads/protocol.py)."""
        measured = bool(self.memory_after_each_load)
        return {"copies": len(self.loaded), "memory_before_copies": self.memory_before if measured else None,
                "memory_after_each_load": list(self.memory_after_each_load), "bytes_per_copy": self.bytes_per_copy,
                "copies_fit": self.copies_fit, "memory_total_bytes": self.memory_total,
                "memory_source": source if measured else "", "copies_stopped": self.stopped}


def load_copies(load_one: Callable[[int], Any], requested: int | None, *,
                measure: Callable[[], int | None] = lambda: None,
                free: Callable[[], int | None] = lambda: None, total: int | None = None,
                is_out_of_memory: Callable[[BaseException], bool] = lambda exc: is_out_of_memory(exc),
                on_loaded: Callable[[int, int], None] = lambda done, target: None) -> LoadedCopies:
    """Load `requested` copies (None: as many as fit, up to MAX_COPIES), measuring after each.

    With `max`, the next copy is tried only if the free memory minus the bytes per copy
    measured so far keeps HEADROOM of `total` free, and a refusal by the backend ends the
    loading. With a count, an out-of-memory after the first copy ends it too. Either way the
    copies that loaded are kept and `stopped` says why there are not more; a first copy that
    fails, or any other failure, raises.
    """
    target = requested or MAX_COPIES
    result = LoadedCopies(loaded=[], memory_before=measure(), memory_total=total)
    while len(result.loaded) < target:
        if requested is None and result.loaded and not _next_fits(result, free(), total):
            result.stopped = f"the next copy would leave less than {HEADROOM:.0%} of memory free"
            break
        try:
            copy = load_one(len(result.loaded))
        except Exception as exc:  # noqa: BLE001 - which failures end the loading is decided here
            if not result.loaded or (requested is not None and not is_out_of_memory(exc)):
                raise
            result.stopped = f"copy {len(result.loaded) + 1} did not load: {one_line(exc)}"
            break
        result.loaded.append(copy)
        memory = measure()
        if memory is not None:
            result.memory_after_each_load.append(memory)
        on_loaded(len(result.loaded), target)
    if requested is None and len(result.loaded) == MAX_COPIES:
        result.stopped = f"--copies max stops at {MAX_COPIES}"
    return result


def is_out_of_memory(exc: BaseException) -> bool:
    """torch's OutOfMemoryError (CUDA), Python's MemoryError, or a runtime saying so in words."""
    return isinstance(exc, MemoryError) or out_of_memory_text(f"{type(exc).__name__}: {exc}")


def out_of_memory_text(text: str) -> bool:
    """The same rule on "TypeName: message" text (how a dp worker reports a failed load)."""
    name = text.split(":", 1)[0]
    return name in ("OutOfMemoryError", "MemoryError") or "out of memory" in text.lower()


def _next_fits(result: LoadedCopies, free_bytes: int | None, total: int | None) -> bool:
    per_copy = result.bytes_per_copy
    if free_bytes is None or total is None or per_copy is None:
        return True  # nothing to judge by: the backend's refusal ends the loading
    return free_bytes - per_copy >= HEADROOM * total


# -- host memory, read from /proc (Linux): the CPU backend's device memory -------------------------
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int | None:
    """This process's resident memory (/proc/self/statm), None where there is no /proc."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def host_total_bytes() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * _PAGE
    except (AttributeError, ValueError, OSError):
        return None


def host_available_bytes() -> int | None:
    """MemAvailable: what the kernel can hand out without swapping."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def release_freed_memory() -> None:
    """Hand memory freed by the compile back to the OS (glibc), so the first load does not reuse it."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
