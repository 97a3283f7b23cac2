"""A plain, line-by-line reference for DKIM body canonicalization.

Written straight from RFC 6376 §3.4.3 / §3.4.4 (with errata 3192: a non-empty
body that does not end in CRLF gets one) and deliberately slow and obvious, to
check the streaming engine in ``mailseal.dkim.canon`` against. Not for production.

Semantics it pins down (the engine's documented choices):

- a "line" ends at CRLF only; a bare CR or LF is ordinary content;
- relaxed: WSP is SP and HTAB; every run of WSP becomes one SP, WSP at the end
  of a line is deleted, and WSP at the very end of a body with no final CRLF
  counts as the end of the last line (deleted too);
- trailing empty lines are deleted; simple turns an empty body into CRLF,
  relaxed leaves it empty.
"""

from __future__ import annotations

import re


def _strip_trailing_crlf(data: bytes) -> bytes:
    end = len(data)
    while end >= 2 and data[end - 2 : end] == b"\r\n":
        end -= 2
    return data[:end]


def _reduce_wsp(line: bytes) -> bytes:
    out = bytearray()
    in_run = False
    for byte in line:
        if byte in (0x20, 0x09):
            if not in_run:
                out.append(0x20)
            in_run = True
        else:
            out.append(byte)
            in_run = False
    return bytes(out)


def reference_simple(body: bytes) -> bytes:
    return _strip_trailing_crlf(body) + b"\r\n"


def reference_relaxed(body: bytes) -> bytes:
    lines = [_reduce_wsp(line).rstrip(b" ") for line in body.split(b"\r\n")]
    text = _strip_trailing_crlf(b"\r\n".join(lines))
    return text + b"\r\n" if text else b""


def reference(body: bytes, relaxed: bool) -> bytes:
    return reference_relaxed(body) if relaxed else reference_simple(body)


def reference_header(raw: bytes, relaxed: bool) -> bytes:
    """One header field (exact bytes, no final CRLF), canonicalized, with CRLF (§3.4.1, §3.4.2)."""
    if not relaxed:
        return raw + b"\r\n"
    name, colon, value = raw.partition(b":")
    value = re.sub(rb"[ \t]+", b" ", value.replace(b"\r\n", b""))
    return name.rstrip(b" \t").lower() + colon + value.strip(b" \t") + b"\r\n"
