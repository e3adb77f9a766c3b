"""Failures the workload child reports as one `error` event (kind + one-line message)."""
from __future__ import annotations

# The kinds a parent may see in `error.kind`.
KINDS = ("usage", "model", "weights", "input", "backend-unavailable", "unsupported", "trace",
         "oom", "worker", "internal")


class WorkloadFailure(Exception):
    """A failure with a kind and a message a user can act on; details go to stderr."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def one_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's text, prefixed by its type when that is all there is."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__
