"""Write to the milter socket the way Postfix does, not one packet per send.

:class:`MilterClient` writes each packet at once on a socket asyncio set to
TCP_NODELAY. Postfix (milter8.c) writes packets into a VSTREAM buffer and sends
them when it needs a reply (or at the hand-over from smtpd to the cleanup server,
before the first header), and leaves Nagle's algorithm on: vstream_tweak_tcp() only
grows the buffer to twice the MSS. So a macro packet and its command leave in one
segment, headers the filter does not answer (NR_HDR) pile up until end of headers,
and a write that follows an unanswered one waits for the filter's ACK. A milter that
lets that ACK wait (Linux delays it up to 40 ms) stalls under Postfix; this client
shows it too, where a client that never delays its packets would not.

Only how bytes reach the socket changes; what is sent, and when replies are read,
stays :class:`MilterClient`'s.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping
from typing import Final

from mailseal.milter.client import READ_SIZE, MilterClient
from mailseal.milter.codec import encode_command
from mailseal.milter.messages import Command, Quit, Reply

#: Postfix's VSTREAM buffer on a loopback milter socket: twice the MSS (65483).
BUFFER: Final = 2 * 65483


class PostfixStreamClient(MilterClient):
    """A :class:`MilterClient` whose writes are buffered and batched as Postfix's are."""

    def __init__(self, *, timeout: float = 30.0, nagle: bool = True) -> None:
        super().__init__(timeout=timeout)
        self.nagle = nagle
        self._out = bytearray()
        self._in_content = False  # smtpd has handed the message over to cleanup

    async def connect(self, socket_spec: str) -> None:
        await super().connect(socket_spec)
        sock = self._writer.get_extra_info("socket") if self._writer is not None else None
        if self.nagle and sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)

    async def _send(self, cmd: Command) -> None:
        if self._writer is None:
            raise ConnectionError("not connected to a milter")
        self._out += encode_command(cmd)
        if len(self._out) >= BUFFER:
            await self._flush()

    async def _flush(self) -> None:
        writer = self._writer
        if self._out and writer is not None:
            writer.write(bytes(self._out))
            self._out.clear()
            if writer.transport.get_write_buffer_size():  # the filter is not reading
                async with asyncio.timeout(self.timeout):
                    await writer.drain()

    async def _next_reply(self) -> Reply:
        await self._flush()  # a VSTREAM read flushes what was written
        # as MilterClient._next_reply, with a cheaper timeout than wait_for (the load
        # generator shares the machine with the milter it measures)
        while not self._pending:
            if self._reader is None:
                raise ConnectionError("not connected to a milter")
            async with asyncio.timeout(self.timeout):
                data = await self._reader.read(READ_SIZE)
            if not data:
                raise ConnectionError("the milter closed the connection")
            self._pending.extend(self._decoder.feed(data))
        return self._pending.popleft()

    async def _event(self, code: bytes, cmd: Command, values: Mapping[str, str]) -> Reply | None:
        if code == b"M":
            self._in_content = False
        elif code in (b"L", b"N") and not self._in_content:
            self._in_content = True
            await self._flush()  # smtpd flushes before the cleanup server takes over
        return await super()._event(code, cmd, values)

    async def quit(self) -> None:
        if self._writer is not None:
            try:
                await self._send(Quit())
                await self._flush()
            except (OSError, TimeoutError):
                pass
        await self.close()


__all__ = ["BUFFER", "PostfixStreamClient"]
