"""Header fields and the header/body split of an RFC 5322 message, streaming.

The input is the CRLF form of a message (see :func:`to_crlf`). A header field
is kept as its exact bytes, name, colon, value and folding included, without
the CRLF that ends it: DKIM simple canonicalization needs those bytes unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from mailseal.errors import MessageError

#: Default cap on the header block. OpenDKIM's MaximumHeaders default is 65,536;
#: we allow more because real mail with long Received chains exceeds it, and the
#: cap exists for memory, not policy.
DEFAULT_MAX_HEADER_BYTES: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class HeaderField:
    """One header field as it stands in the message."""

    raw: bytes  # b"Subject: hello\r\n world", no final CRLF

    @property
    def name(self) -> bytes:
        """The field name as written (no trailing whitespace); the whole line if it has no colon."""
        colon = self.raw.find(b":")
        return (self.raw if colon < 0 else self.raw[:colon]).rstrip(b" \t")

    @property
    def lname(self) -> str:
        """The field name lower-cased, as text, for comparisons."""
        # Same as self.name, inlined: this runs for every field on every message.
        return self.raw.partition(b":")[0].rstrip(b" \t").decode("latin-1").lower()

    @property
    def value(self) -> bytes:
        """Everything after the colon, leading whitespace and folding included."""
        colon = self.raw.find(b":")
        return b"" if colon < 0 else self.raw[colon + 1 :]


def split_fields(block: bytes) -> list[HeaderField]:
    """Split a header block (CRLF lines, without the empty line) into fields.

    A line that starts with a space or tab continues the field before it
    (RFC 5322 §2.2.3). A continuation line with no field before it becomes a
    field of its own that matches no name.
    """
    fields: list[HeaderField] = []
    if not block:
        return fields
    lines = block.split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()
    current: list[bytes] = []
    for line in lines:
        if current and line[:1] in (b" ", b"\t"):
            current.append(line)
            continue
        if current:
            fields.append(HeaderField(b"\r\n".join(current)))
        current = [line]
    if current:
        fields.append(HeaderField(b"\r\n".join(current)))
    return fields


class CrlfNormalizer:
    """Turn bare LF line ends into CRLF as chunks stream by (a bare CR is kept as it is)."""

    __slots__ = ("_held_cr", "saw_bare_lf")

    def __init__(self) -> None:
        self._held_cr = False
        self.saw_bare_lf = False

    def feed(self, chunk: bytes) -> bytes:
        if self._held_cr:
            chunk = b"\r" + chunk
            self._held_cr = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            self._held_cr = True
        if b"\n" not in chunk:
            return chunk
        lf = chunk.count(b"\n")
        if chunk.count(b"\r\n") == lf:
            return chunk
        self.saw_bare_lf = True
        return chunk.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")

    def finish(self) -> bytes:
        if self._held_cr:
            self._held_cr = False
            return b"\r"
        return b""


def to_crlf(data: bytes) -> bytes:
    """Return ``data`` with every bare LF made CRLF."""
    n = CrlfNormalizer()
    return n.feed(data) + n.finish()


class MessageSplitter:
    """Split a streamed message into its header fields and body chunks.

    Feed CRLF-form chunks; once the empty line ending the header block is seen,
    :attr:`fields` is set and every later byte is body. A message with no empty
    line is all header (its body is empty), as RFC 5322 allows.
    """

    __slots__ = ("_buf", "fields", "max_header_bytes")

    def __init__(self, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES) -> None:
        self._buf = bytearray()
        self.fields: list[HeaderField] | None = None
        self.max_header_bytes = max_header_bytes

    def feed(self, chunk: bytes) -> bytes:
        """Take a chunk; return the part of it that is body (empty until the headers end)."""
        if self.fields is not None:
            return chunk
        data: bytes | bytearray
        if self._buf:
            start = max(0, len(self._buf) - 3)
            self._buf += chunk
            data = self._buf
        else:
            # Nothing held yet: look in the chunk itself, so that a whole message
            # fed at once is not copied into the buffer and out again.
            start, data = 0, chunk
        if data.startswith(b"\r\n"):  # no header fields at all
            self.fields = []
            self._buf = bytearray()
            return bytes(data[2:])
        end = data.find(b"\r\n\r\n", start)
        if end < 0:
            if len(data) > self.max_header_bytes:
                raise MessageError(f"header block is larger than {self.max_header_bytes} bytes")
            if data is chunk:
                self._buf += chunk
            return b""
        if end > self.max_header_bytes:
            raise MessageError(f"header block is larger than {self.max_header_bytes} bytes")
        self.fields = split_fields(bytes(data[: end + 2]))
        body = bytes(data[end + 4 :])
        self._buf = bytearray()
        return body

    def finish(self) -> list[HeaderField]:
        """End of input: return the header fields (all of it, if no empty line came)."""
        if self.fields is None:
            block = bytes(self._buf)
            self._buf = bytearray()
            if block.endswith(b"\r\n"):
                block = block[:-2]
            self.fields = split_fields(block)
        return self.fields


def iter_chunks(data: bytes, size: int = 65536) -> Iterator[bytes]:
    """Yield ``data`` in pieces of at most ``size`` bytes."""
    for i in range(0, len(data), size):
        yield data[i : i + size]
