"""The /metrics body, built once per Store change; a scrape serves bytes.

Building every family from the Store, serializing it and gzipping it (Prometheus asks for
gzip) costs a scrape as much as a full exposition, again for every Prometheus server that
scrapes (HA pairs, federation). Here the body is rendered on the first scrape after the
Store changed (a burst of changes renders once), in each format a client asked for
(Prometheus text, OpenMetrics), re-encoding only the families that changed, and its gzip
stream is compressed once too. Per scrape only
the families that move with the clock alone (StoreCollector.clock_families: a sample's age)
are built and appended; the gzip stream is resumed from a copy of the paused compressor.
The bytes are what prometheus_client's generate_latest gives over the same collector.
"""
from __future__ import annotations

import math
import threading
import zlib
from typing import Callable, Iterable

from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.metrics_core import Metric

from .exporter_families import StoreCollector
from .store import Store

Encoder = Callable[[object], bytes]
GZIP_LEVEL = 6  # once per change, not per scrape; prometheus_client's 9 buys ~1% here
GZIP_WBITS = 31  # a gzip container (header and trailer), as gzip.compress writes


class _Fixed:
    """A collector of families already built (what prometheus_client's encoders read)."""

    def __init__(self, metrics: Iterable[Metric]) -> None:
        self._metrics = list(metrics)

    def collect(self) -> list[Metric]:
        return self._metrics


FamilyTexts = dict[str, tuple[Metric, bytes]]  # a family's name -> the family and its encoding


class _Rendered:
    """One format's body without the clock's families, and its gzip stream paused before them.

    A family equal to the one last encoded in this format (most of them: memory per core,
    instance and hardware info...) reuses those bytes: encoding is what a render costs.
    """

    def __init__(self, encoder: Encoder, metrics: list[Metric], previous: FamilyTexts) -> None:
        self.encoder = encoder
        end = encoder(_Fixed(()))  # what closes a body: "# EOF\n" in OpenMetrics, nothing in text
        self.texts: FamilyTexts = {}
        for metric in metrics:
            known = previous.get(metric.name)
            if known is not None and _same(known[0], metric):
                text = known[1]
            else:
                body = encoder(_Fixed((metric,)))
                text = body[: len(body) - len(end)]
            self.texts[metric.name] = (metric, text)
        self.head = b"".join(text for _, text in self.texts.values())
        self._gzip_lock = threading.Lock()
        self._compressor: zlib._Compress | None = None
        self._gzip_head = b""

    def plain(self, tail: bytes) -> bytes:
        return self.head + tail

    def gzip(self, tail: bytes) -> bytes:
        with self._gzip_lock:
            if self._compressor is None:  # the first gzip scrape of this body compresses it
                compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, GZIP_WBITS)
                self._gzip_head = compressor.compress(self.head)
                self._compressor = compressor
            resumed = self._compressor.copy()
        return self._gzip_head + resumed.compress(tail) + resumed.flush()


def _same(old: Metric, new: Metric) -> bool:
    """Whether the two families encode alike: equal, with labels in the same order and zeros of the same sign."""
    if old != new:
        return False
    for a, b in zip(old.samples, new.samples):
        if (a.value == 0 and math.copysign(1.0, a.value) != math.copysign(1.0, b.value)) or \
                list(a.labels) != list(b.labels):
            return False
    return True


class Exposition:
    """Serves StoreCollector's families as bytes; re-renders only after the Store changed."""

    def __init__(self, store: Store, collector: StoreCollector) -> None:
        self._store = store
        self._collector = collector
        self._lock = threading.Lock()
        self._stale = True
        self._families: list[Metric] | None = None
        self._formats: dict[str, _Rendered] = {}  # by content type (format, version, escaping)
        self._texts: dict[str, FamilyTexts] = {}  # by content type, from its latest render
        store.subscribe(self._changed)

    def _changed(self, what: str) -> None:
        self._stale = True  # the next scrape renders; until then further changes cost nothing

    def close(self) -> None:
        self._store.unsubscribe(self._changed)

    def response(self, accept: str | None, accept_encoding: str | None) -> tuple[list[tuple[str, str]], bytes]:
        """Headers and body for a GET /metrics with these Accept and Accept-Encoding headers."""
        encoder, content_type = choose_encoder(accept or "")
        rendered = self._rendered(encoder, content_type)
        tail = rendered.encoder(_Fixed(self._collector.clock_families()))
        headers = [("Content-Type", content_type)]
        if gzip_accepted(accept_encoding or ""):
            return headers + [("Content-Encoding", "gzip")], rendered.gzip(tail)
        return headers, rendered.plain(tail)

    def _rendered(self, encoder: Encoder, content_type: str) -> _Rendered:
        with self._lock:
            if self._stale:
                self._stale = False  # before reading: a change from now on marks it stale again
                self._families = None
                self._formats.clear()
            rendered = self._formats.get(content_type)
            if rendered is None:
                try:
                    if self._families is None:
                        self._families = self._collector.static_families()
                    rendered = _Rendered(encoder, self._families, self._texts.get(content_type, {}))
                    self._formats[content_type] = rendered
                    self._texts[content_type] = rendered.texts
                except BaseException:
                    self._stale = True  # a failed render is retried by the next scrape
                    raise
            return rendered
