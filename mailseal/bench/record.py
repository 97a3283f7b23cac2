"""Recording: what Postfix writes for a message, worked out before a benchmark's clock.

As long as the milter answers Continue, the bytes Postfix writes for a message do not
depend on the milter. :class:`Recorder` drives the real client,
:class:`~mailseal.bench.stream.PostfixStreamClient` (which buffers as Postfix
buffers), on the terms a milter agreed to, answering Continue to everything, and
keeps each write with the event whose reply then comes: a :class:`Script` of
:class:`Segment`. The queue ID (macro ``i``) is a placeholder, filled in per message
when the script is replayed (``replay.py``).
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Final

from mailseal.bench.stream import BUFFER, PostfixStreamClient
from mailseal.milter.codec import encode_command
from mailseal.milter.messages import Abort, Command, Connect, Continue, OptNegReply, Reply

#: Stands in for the queue ID (``f"{n:010X}"``, ten characters) while recording.
QUEUE_ID: Final = "\x01QUEUE-ID\x01"
_QUEUE_ID_BYTES: Final = QUEUE_ID.encode("ascii")
#: Pieces of a recording at least this long are kept once (see Recorder._shared).
_SHARE_FROM: Final = 4096
ABORT: Final = encode_command(Abort())


@dataclass(frozen=True, slots=True)
class Segment:
    """Bytes written at once, then the reply to the event ``code`` awaited (none if b"")."""

    parts: tuple[bytes, ...]  # the bytes, split at the queue-ID placeholder
    code: bytes

    def data(self, queue_id: bytes) -> bytes:
        return self.parts[0] if len(self.parts) == 1 else queue_id.join(self.parts)


Script = tuple[Segment, ...]


def run_now(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never waits (the recorder's), return its value."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("the recorder waited for something")


class Recorder(PostfixStreamClient):
    """A client on the terms a milter agreed to; writes nothing, answers Continue."""

    def __init__(self, version: int, reply: OptNegReply) -> None:
        super().__init__()
        self.accept(self.offer(version), reply)
        self.segments: list[tuple[bytes, bytes]] = []
        self._pieces: dict[bytes, bytes] = {}
        self._code = b""

    def record(
        self,
        *,
        first: bool,
        connect: Connect,
        mail_from: str,
        rcpts: Sequence[str],
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
    ) -> Script:
        """The script of one message (``first``: it opens the SMTP session)."""
        self.segments.clear()
        self._out.clear()
        self._smtp_started = not first
        self._smtp_over = False
        run_now(
            self.send_message(
                connect=connect, mail_from=mail_from, rcpts=rcpts, headers=headers, body=body
            )
        )
        if bytes(self._out) != ABORT:  # what follows every message, sent with the next
            raise RuntimeError(f"recorded message ends with {bytes(self._out)!r}, not ABORT")
        self._out.clear()
        return tuple(
            Segment(tuple(self._shared(p) for p in data.split(_QUEUE_ID_BYTES)), code)
            for data, code in self.segments
        )

    def _shared(self, part: bytes) -> bytes:
        """One copy of each large piece (the body chunks of a message recorded as the
        first of a session and as a later one are the same bytes)."""
        if len(part) < _SHARE_FROM:
            return part
        return self._pieces.setdefault(part, part)

    async def _send(self, cmd: Command) -> None:
        self._out += encode_command(cmd)
        if len(self._out) >= BUFFER:
            await self._flush()

    async def _flush(self) -> None:
        if self._out:
            self.segments.append((bytes(self._out), b""))
            self._out.clear()

    async def _next_reply(self) -> Reply:
        if not self._out:
            raise RuntimeError("a second reply awaited for one write")
        self.segments.append((bytes(self._out), self._code))
        self._out.clear()
        return Continue()

    async def _event(self, code: bytes, cmd: Command, values: Any) -> Reply | None:
        self._code = code
        return await super()._event(code, cmd, values)

    async def _end_of_message(self, values: dict[str, str], body_skipped: bool) -> Any:
        self._code = b"E"
        return await super()._end_of_message(values, body_skipped)

    def _values(self, *args: Any) -> dict[str, str]:
        values = super()._values(*args)
        values["{i}"] = QUEUE_ID
        return values


__all__ = ["ABORT", "QUEUE_ID", "Recorder", "Script", "Segment", "run_now"]
