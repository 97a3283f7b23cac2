"""Benchmark messages: the sizes and the mix of docs/performance.md, the same on every run.

Each size class has a fixed body (made from a seeded generator) and a small pool of
variants with their own Subject and Message-ID, so a run does not send one message
over and over, and a verify run signs only the pool, not every message. ``mix`` is
70% 2 KB text, 25% 20 KB text+HTML (multipart/alternative) and 5% 200 KB with a
base64 attachment (multipart/mixed), interleaved in a fixed order.

Sizes are of the whole message as sent (header fields, empty line, body, CRLF line
ends); the milter never sees the Received: field Postfix adds, so it is not counted.
"""

from __future__ import annotations

import base64
import email.utils
import enum
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from mailseal.milter.client import headers_and_body

#: Bytes of each size class (the whole message, CRLF line ends).
SIZE_BYTES: Final[dict[str, int]] = {
    "2k": 2 * 1024,
    "20k": 20 * 1024,
    "200k": 200 * 1024,
    "50m": 50 * 1024 * 1024,
}
SIZES: Final = (*SIZE_BYTES, "mix")
#: The message mix of /work/shared/BASELINES.md (out of 20, so the order repeats every 20).
MIX: Final = (("2k", 14), ("20k", 5), ("200k", 1))
#: Variants per size class: enough that consecutive messages differ.
POOL: Final = 32
#: A fixed Date: (2026-11-25 12:00:00 UTC): runs stay byte-for-byte the same.
DATE: Final = email.utils.formatdate(1795608000, usegmt=True)
SEED: Final = 20261125
LINE: Final = 72

_WORDS: Final = (
    "the mail server signs every message it sends so that receivers can check "
    "where it came from and that nobody changed it on the way a milter sits in "
    "the path of each message between the smtp daemon and the queue it reads "
    "headers and body and adds a signature field at the top of the header block "
    "invoice meeting tomorrow project report attached please find below thanks "
    "regards schedule review budget quarter results customer order shipping "
    "delivery account password reset notification newsletter weekly update"
).split()


class Mode(enum.Enum):
    """What the milter is asked to do with the messages."""

    SIGN = "sign"  # the client is inside (127.0.0.1): the milter signs
    VERIFY = "verify"  # the client is outside: the milter verifies our signatures


@dataclass(frozen=True, slots=True)
class BenchMessage:
    """One message as the milter client sends it."""

    size: str  # size class: "2k", "20k", "200k", "50m"
    headers: tuple[tuple[bytes, bytes], ...]  # (name, value after the colon, CRLF-folded)
    body: bytes  # CRLF lines
    raw_size: int  # bytes of the whole message


def _text(rng: random.Random, size: int) -> bytes:
    """About ``size`` bytes of plain text in lines under LINE characters, with paragraphs."""
    lines: list[bytes] = []
    total = 0
    while total < size:
        words: list[str] = []
        length = 0
        target = rng.randint(40, LINE)
        while length < target:
            w = rng.choice(_WORDS)
            words.append(w)
            length += len(w) + 1
        line = " ".join(words).capitalize().encode("ascii")
        if rng.random() < 0.15:
            line += b"."
            lines.append(line + b"\r\n\r\n")
            total += len(line) + 4
        else:
            lines.append(line + b"\r\n")
            total += len(line) + 2
    text = b"".join(lines)
    return text[:size].rsplit(b"\r\n", 1)[0] + b"\r\n" if len(text) > size else text


def _html(rng: random.Random, size: int) -> bytes:
    out: list[bytes] = [b"<html><body>\r\n"]
    total = len(out[0]) + 16
    while total < size:
        para = _text(rng, rng.randint(200, 600)).replace(b"\r\n", b" ").strip()
        piece = b"<p>" + para + b"</p>\r\n"
        out.append(piece)
        total += len(piece)
    out.append(b"</body></html>\r\n")
    return b"".join(out)


def _base64_lines(rng: random.Random, size: int) -> bytes:
    """About ``size`` bytes of base64 in 76-character CRLF lines."""
    raw = rng.randbytes(max(size * 57 // 78, 1))
    return base64.encodebytes(raw).replace(b"\n", b"\r\n")


def _headers(domain: str, sender: str, cls: str, variant: int) -> list[tuple[bytes, bytes]]:
    msgid = f"<bench.{cls}.{variant}.{SEED}@{domain}>"
    return [
        (b"From", f" Benchmark Sender <{sender}>".encode()),
        (b"To", b" Receiver <receiver@example.net>"),
        (b"Subject", f" mailseal bench {cls} message {variant}".encode()),
        (b"Date", f" {DATE}".encode()),
        (b"Message-ID", f" {msgid}".encode()),
        (b"MIME-Version", b" 1.0"),
        (b"User-Agent", b" mailseal-bench/1"),
    ]


def _header_bytes(headers: Sequence[tuple[bytes, bytes]]) -> int:
    return sum(len(n) + 1 + len(v) + 2 for n, v in headers) + 2


def _body(rng: random.Random, cls: str, room: int) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Content headers and the body of a size class, the body about ``room`` bytes."""
    if cls == "2k":
        return [
            (b"Content-Type", b" text/plain; charset=us-ascii"),
            (b"Content-Transfer-Encoding", b" 7bit"),
        ], _text(rng, room)
    boundary = f"=_mailseal_bench_{cls}".encode()
    if cls == "20k":
        kind = b"alternative"
        text = _text(rng, room * 2 // 5)
        parts = [
            (b"text/plain; charset=us-ascii", b"7bit", text),
            (b"text/html; charset=us-ascii", b"7bit", b""),
        ]
    else:
        kind = b"mixed"
        parts = [
            (b"text/plain; charset=us-ascii", b"7bit", _text(rng, 1500)),
            (b'application/pdf; name="report.pdf"', b"base64", b""),
        ]
    overhead = 200 * len(parts) + 64
    used = sum(len(p[2]) for p in parts)
    fill = max(room - used - overhead, 64)
    last_type, last_cte, _ = parts[-1]
    last = _html(rng, fill) if cls == "20k" else _base64_lines(rng, fill)
    parts[-1] = (last_type, last_cte, last)
    out = [b"This is a multi-part message in MIME format.\r\n"]
    for ctype, cte, content in parts:
        out.append(b"--" + boundary + b"\r\n")
        out.append(b"Content-Type: " + ctype + b"\r\n")
        out.append(b"Content-Transfer-Encoding: " + cte + b"\r\n")
        if cte == b"base64":
            out.append(b'Content-Disposition: attachment; filename="report.pdf"\r\n')
        out.append(b"\r\n" + content)
    out.append(b"--" + boundary + b"--\r\n")
    ctype_header = b" multipart/" + kind + b'; boundary="' + boundary + b'"'
    return [(b"Content-Type", ctype_header)], b"".join(out)


def make_message(cls: str, domain: str, sender: str, variant: int = 0) -> BenchMessage:
    """One message of size class ``cls`` (variant ``variant`` differs in Subject/Message-ID)."""
    if cls not in SIZE_BYTES:
        raise ValueError(f"unknown size {cls!r}: use one of {', '.join(SIZES)}")
    headers = _headers(domain, sender, cls, variant)
    rng = random.Random(f"{SEED}-{cls}")  # the body is the same for every variant
    content_headers, body = _body(rng, cls, SIZE_BYTES[cls] - _header_bytes(headers) - 120)
    headers += content_headers
    return BenchMessage(cls, tuple(headers), body, _header_bytes(headers) + len(body))


def raw_message(msg: BenchMessage) -> bytes:
    """The message as one CRLF byte string."""
    head = b"".join(n + b":" + v + b"\r\n" for n, v in msg.headers)
    return head + b"\r\n" + msg.body


def from_raw(cls: str, raw: bytes) -> BenchMessage:
    """A message back from its bytes (after signing it, say)."""
    fields, body = headers_and_body(raw)
    return BenchMessage(cls, tuple(fields), body, len(raw))


def schedule(size: str) -> tuple[str, ...]:
    """Size class of message i is ``schedule(size)[i % len(...)]``."""
    if size != "mix":
        if size not in SIZE_BYTES:
            raise ValueError(f"unknown size {size!r}: use one of {', '.join(SIZES)}")
        return (size,)
    order = [cls for cls, count in MIX for _ in range(count)]
    random.Random(SEED).shuffle(order)
    return tuple(order)


class Corpus:
    """The messages of one run: message ``i`` is ``corpus[i]``."""

    def __init__(
        self, size: str, domain: str, sender: str, *, messages: int, pool: int = POOL
    ) -> None:
        self.size = size
        self.order = schedule(size)
        self.pools: dict[str, list[BenchMessage]] = {}
        for cls in dict.fromkeys(self.order):
            # as many variants as messages of this class will be sent, up to the pool size
            share = -(-max(messages, 1) * self.order.count(cls) // len(self.order))
            count = 1 if cls == "50m" else max(1, min(pool, share))
            self.pools[cls] = [make_message(cls, domain, sender, v) for v in range(count)]

    def __getitem__(self, i: int) -> BenchMessage:
        cls = self.order[i % len(self.order)]
        pool = self.pools[cls]
        return pool[(i // len(self.order)) % len(pool)]

    def replace_pools(self, pools: dict[str, list[BenchMessage]]) -> None:
        """Swap in other messages (the signed ones of a verify run), class by class."""
        self.pools = pools

    def mean_size(self, messages: int) -> float:
        n = max(1, min(messages, 10_000))
        return sum(self[i].raw_size for i in range(n)) / n


__all__ = [
    "MIX",
    "SIZES",
    "SIZE_BYTES",
    "BenchMessage",
    "Corpus",
    "Mode",
    "from_raw",
    "make_message",
    "raw_message",
    "schedule",
]
