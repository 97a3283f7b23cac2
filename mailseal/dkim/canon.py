"""DKIM canonicalization (RFC 6376 §3.4), header and body, with a streaming body hasher.

The body is canonicalized as it streams in: any split of the input gives the
same output, and memory stays bounded by the chunk size whatever the body size.
Work per byte is linear on every input (no regexes on the body; a long chunk is
worked on in slices), and ordinary text takes a fast path of a few ``bytes``
scans before hashing. ``benchmarks/bench_dkim.py`` measures it against
SHA-256 alone; ``benchmarks/check_canon.py`` checks it against a plain reference.
"""

from __future__ import annotations

import enum
import hashlib
import importlib
import os
import re
from collections.abc import Callable
from typing import Final


class Canon(enum.Enum):
    """A canonicalization algorithm (RFC 6376 §3.4)."""

    SIMPLE = "simple"
    RELAXED = "relaxed"


class CanonError(ValueError):
    """A c= value that names no known canonicalization."""


def parse_canon(text: str) -> tuple[Canon, Canon]:
    """Parse ``c=`` (``header[/body]``); the body algorithm defaults to simple (RFC 6376 §3.5)."""
    head, _, body = text.strip().lower().partition("/")
    try:
        return Canon(head), Canon(body or "simple")
    except ValueError:
        raise CanonError(f"unknown canonicalization {text!r}") from None


# Runs of two or more SP, to reduce to one in a header value once tabs are SP.
# It matches at a fixed position without backtracking: linear time.
_SP_RUN: Final = re.compile(rb" {2,}")

_TAB_TO_SP: Final = bytes.maketrans(b"\t", b" ")

# A body chunk longer than this is canonicalized in slices of this size, which
# bounds the temporaries and the number of run-halving passes (log2 of it).
_SLICE: Final = 65536

# Held-back empty lines are emitted in pieces of at most this many CRLFs.
_CRLF_PIECE: Final = 65536
_CRLFS: Final = b"\r\n" * _CRLF_PIECE  # longer than any slice plus its carry


def canon_header(raw: bytes, canon: Canon) -> bytes:
    """Canonicalize one header field (its exact bytes, no final CRLF); return it with CRLF.

    Relaxed (RFC 6376 §3.4.2): lower-case the name, unfold, reduce WSP runs to
    one SP, delete WSP at the end of the value and around the colon.
    """
    if canon is Canon.SIMPLE:
        return raw + b"\r\n"
    name, colon, value = raw.partition(b":")
    name = name.rstrip(b" \t").lower()
    if b"\r\n" in value:
        value = value.replace(b"\r\n", b"")
    if b"\t" in value:
        value = value.translate(_TAB_TO_SP)
    if b"  " in value:
        value = _SP_RUN.sub(b" ", value)
    return name + colon + value.strip(b" \t") + b"\r\n"


def _relaxed_segment_py(seg: bytes) -> bytes:
    """Relaxed body rules on a segment that ends at a line end or at held-back text.

    Every run of WSP becomes one SP, then SP before CRLF goes. Only ``bytes``
    methods, each a linear scan in C: ordinary text costs two searches, text
    without WSP (base64) one memchr.
    """
    if b"\t" in seg:
        seg = seg.translate(_TAB_TO_SP)  # a tab is, or is part of, a run: becomes SP
    elif b" " not in seg:
        return seg  # no WSP at all
    while b"  " in seg:
        seg = seg.replace(b"  ", b" ")  # halves every run; runs are at most _SLICE long
    return seg.replace(b" \r\n", b"\r\n")  # seg itself when there is none


def _load_accelerator() -> Callable[[bytes], bytes] | None:
    """The C version of :func:`_relaxed_segment_py` (same output), if it was built.

    ``mailseal.dkim._canon`` is an optional extension (setup.py): without a C
    compiler it is not built and the Python version is used. MAILSEAL_PURE_PYTHON=1
    forces the Python version (tests, benchmarks).
    """
    if os.environ.get("MAILSEAL_PURE_PYTHON") == "1":
        return None
    try:
        module = importlib.import_module("mailseal.dkim._canon")
    except ImportError:
        return None
    fn: Callable[[bytes], bytes] = module.relaxed_segment
    return fn


_accelerated: Final = _load_accelerator()
#: The relaxed body transform in use (BodyCanonicalizer looks it up at each call).
_relaxed_segment: Callable[[bytes], bytes] = _accelerated or _relaxed_segment_py
#: Which implementation of the relaxed body transform this process uses: "C" or "Python".
RELAXED_IMPLEMENTATION: Final = "C" if _accelerated is not None else "Python"


class BodyCanonicalizer:
    """Canonicalize a body streamed in chunks, passing the output to ``sink``.

    RFC 6376 §3.4.3 (simple) and §3.4.4 (relaxed), with errata 3192: a
    non-empty body not ending in CRLF gets one. Trailing empty lines are held
    back as a count, never as bytes, so a body of a million empty lines costs
    no memory; a trailing CR or WSP run is held back until the next chunk
    shows whether a line end follows.
    """

    __slots__ = ("canon", "_sink", "_carry", "_pending", "_content")

    def __init__(self, canon: Canon, sink: Callable[[bytes], object]) -> None:
        self.canon = canon
        self._sink = sink
        self._carry = b""
        self._pending = 0  # CRLFs seen at the end so far, not yet emitted
        self._content = False  # something other than empty lines was emitted

    def update(self, chunk: bytes) -> None:
        """Take the next piece of the body (any size; a long one is worked on in slices)."""
        if len(chunk) > _SLICE:
            for start in range(0, len(chunk), _SLICE):
                self._update(chunk[start : start + _SLICE])
        elif chunk:
            self._update(chunk)

    def _update(self, chunk: bytes) -> None:
        data = self._carry + chunk if self._carry else chunk
        carry = b""
        if data[-1:] == b"\r":
            data, carry = data[:-1], b"\r"
        if self.canon is Canon.RELAXED:
            end = len(data)
            if data[end - 1 : end] in (b" ", b"\t"):
                stripped = data.rstrip(b" \t")
                data, carry = stripped, b" " + carry
            data = _relaxed_segment(data)
        self._carry = carry
        self._take(data)

    def _take(self, data: bytes) -> None:
        if not data:
            return
        body = data.rstrip(b"\r\n")
        tail = len(data) - len(body)
        if tail:
            run = data[len(body) :]
            if tail % 2 or not _CRLFS.startswith(run):
                # A bare CR or LF inside the run: only the whole CRLF pairs at its end
                # are empty lines. They start after the last doubled character (CR CR
                # or LF LF), where the CR/LF alternation breaks; one search each way,
                # so a long run costs linear time.
                if run.endswith(b"\r"):
                    tail = 0
                else:
                    start = max(run.rfind(b"\r\r"), run.rfind(b"\n\n")) + 1
                    tail = (len(run) - start) // 2 * 2
                body = data[: len(data) - tail]
        if body:
            self._flush_pending()
            self._sink(body)
            self._content = True
        self._pending += tail // 2

    def _flush_pending(self) -> None:
        n = self._pending
        if not n:
            return
        while n > 0:
            k = min(n, _CRLF_PIECE)
            self._sink(_CRLFS[: 2 * k])
            n -= k
        self._pending = 0

    def finish(self) -> None:
        """End of body: flush what is held back and add the final CRLF the rules call for."""
        carry, self._carry = self._carry, b""
        if carry:
            if carry == b" ":
                # Relaxed: WSP at the very end of the body ends the last line, which
                # gets its CRLF below; it is line-end WSP and is ignored.
                carry = b""
            if carry:
                self._flush_pending()
                self._sink(carry)
                self._content = True
        if self._content:
            self._sink(b"\r\n")
        elif self.canon is Canon.SIMPLE:
            self._sink(b"\r\n")
        self._pending = 0


class BodyHasher:
    """Hash a streamed body under one canonicalization, optionally only its first ``limit`` bytes.

    ``length`` is the canonicalized body's full length (known after
    :meth:`digest`), so a verifier can tell when ``l=`` exceeds the body.
    """

    __slots__ = ("_hash", "_canon", "limit", "length", "_done", "_digest")

    def __init__(self, canon: Canon, algorithm: str = "sha256", limit: int | None = None) -> None:
        self._hash = hashlib.new(algorithm)
        self.limit = limit
        self.length = 0
        self._done = False
        self._digest = b""
        sink = self._hash.update if limit is None else self._limited
        self._canon = BodyCanonicalizer(canon, self._counting(sink))

    def _counting(self, sink: Callable[[bytes], object]) -> Callable[[bytes], None]:
        def count_and_sink(data: bytes) -> None:
            self.length += len(data)
            sink(data)

        return count_and_sink

    def _limited(self, data: bytes) -> None:
        assert self.limit is not None
        room = self.limit - (self.length - len(data))
        if room > 0:
            self._hash.update(data[:room])

    def update(self, chunk: bytes) -> None:
        self._canon.update(chunk)

    def digest(self) -> bytes:
        if not self._done:
            self._canon.finish()
            self._digest = self._hash.digest()
            self._done = True
        return self._digest


def canonicalize_body(body: bytes, canon: Canon) -> bytes:
    """Return the whole canonicalized body (for tests and small inputs)."""
    out: list[bytes] = []
    c = BodyCanonicalizer(canon, out.append)
    c.update(body)
    c.finish()
    return b"".join(out)
