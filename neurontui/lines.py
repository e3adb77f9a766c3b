"""Read lines from a pipe or a file with a cap on each: a writer that never ends its line
(a stuck monitor, a hostile child, `replay:/dev/zero`) costs at most the cap, not all memory.

A line over the cap is skipped in chunks, never held whole, and comes out as a TooLong
(its length and its start) so the reader can count it, and show it, as a bad line.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Iterator

REPORT_LINE_BYTES = 64 * 2**20  # a trn1 report is tens of KB; a 64 MiB one is not a report
EVENT_LINE_BYTES = 16 * 2**20  # a window is ~100 KB at most (4,096 buckets); room for a newer child's keys
STDERR_LINE_BYTES = 64 * 2**10  # a log line; only its start is ever shown
_SKIP_CHUNK = 2**20
_HEAD_BYTES = 1000  # what Store.bad_line keeps of any line


@dataclass(frozen=True)
class TooLong:
    length: int  # bytes, with the newline if it had one
    head: bytes  # its start, for display

    def reason(self, what: str) -> str:
        return f"a line of {self.length} bytes is no {what}; skipped"


def capped_lines(stream: IO[bytes], limit: int) -> Iterator[bytes | TooLong]:
    """Each line of `stream` (with its newline) while at most `limit` bytes; a TooLong for a longer one."""
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit:
            yield line
            continue
        skipped, head = len(line), line[:_HEAD_BYTES]
        while not line.endswith(b"\n"):
            line = stream.readline(_SKIP_CHUNK)
            if not line:
                break
            skipped += len(line)
        yield TooLong(skipped, head)
