"""The one sanitizer for text that comes from outside (neuron-monitor reports, the child's
events and stderr, recordings) before it reaches a terminal, a log line, a label or a file.

Control characters (C0, DEL, C1: escape sequences, newlines that forge lines) and the
bidirectional overrides are written as visible escapes (`\\x1b`); lone surrogates (valid in
JSON, not encodable as UTF-8: they crash CSV writers and scrapes) become U+FFFD. Lives in
`workloads` because both packages read such text and `workloads` imports nothing of
`neurontui`.
"""
from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _replacement(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xD800 <= code <= 0xDFFF:
        return "\ufffd"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean_text(text: str) -> str:
    """`text` with nothing a terminal would act on and nothing UTF-8 cannot encode."""
    if text.isascii() and text.isprintable():  # the usual case: one pass in C, no copy
        return text
    return _UNSAFE.sub(_replacement, text)
