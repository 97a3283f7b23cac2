"""An asyncio MTA side: speak to a milter as Postfix's milter8.c does (tests, bench).

What it reproduces: Postfix's O packet per protocol version, a D packet before each
event (also before events the filter switched off, but not before events outside
the protocol version in use), the end-of-header macros before each header (D L) and
the end-of-data macros before each body chunk (D B), header values folded with bare
LF and without the one space after the colon unless HEADER_LEADING_SPACE was agreed,
body chunks of at most 65535 bytes with the last one sent as B before an empty E,
no wait for replies the filter said it would not send, SKIP for the rest of one kind
of event, and an A after every message. Simpler than Postfix: any final reply before
end of message (a rejected recipient too) ends the message.

Every read, write and connect is bounded by ``timeout`` seconds.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Final

from mailseal.errors import MilterProtocolError
from mailseal.message.headers import split_fields, to_crlf
from mailseal.milter.codec import ReplyDecoder, encode_command
from mailseal.milter.messages import (
    FINAL_REPLIES,
    Abort,
    Accept,
    AddHeader,
    Body,
    ChangeHeader,
    Command,
    Connect,
    Continue,
    Data,
    DefineMacros,
    Discard,
    EndOfHeaders,
    EndOfMessage,
    Header,
    Helo,
    InsertHeader,
    MailFrom,
    OptNeg,
    OptNegReply,
    Progress,
    Quit,
    QuitNewConnection,
    RcptTo,
    Reject,
    Reply,
    ReplyCode,
    Skip,
    Tempfail,
    macro_key,
)
from mailseal.milter.protocol import (
    CHUNK_SIZE,
    NO_STEP_FLAGS,
    POSTFIX_ACTIONS,
    POSTFIX_DEFAULT_MACROS,
    POSTFIX_PROTOCOL,
    ActionFlag,
    ProtocolFlag,
)
from mailseal.milter.sockets import SocketFamily, parse_socket_spec

#: Postfix's milter_command_timeout.
DEFAULT_TIMEOUT: Final = 30.0
READ_SIZE: Final = 65536
#: A loopback SMTP client, which OpenDKIM's default InternalHosts treats as ours.
DEFAULT_CONNECT: Final = Connect("localhost", b"4", 40000, "127.0.0.1")
#: Step flag and no-reply flag of each event (milter8.c passes the same pairs).
_FLAGS: Final[Mapping[bytes, tuple[ProtocolFlag, ProtocolFlag | None]]] = {
    b"C": (ProtocolFlag.NO_CONNECT, ProtocolFlag.NR_CONNECT),
    b"H": (ProtocolFlag.NO_HELO, ProtocolFlag.NR_HELO),
    b"M": (ProtocolFlag.NO_MAIL, ProtocolFlag.NR_MAIL),
    b"R": (ProtocolFlag.NO_RCPT, ProtocolFlag.NR_RCPT),
    b"T": (ProtocolFlag.NO_DATA, ProtocolFlag.NR_DATA),
    b"L": (ProtocolFlag.NO_HEADERS, ProtocolFlag.NR_HEADER),
    b"N": (ProtocolFlag.NO_EOH, ProtocolFlag.NR_EOH),
    b"B": (ProtocolFlag.NO_BODY, ProtocolFlag.NR_BODY),
    b"E": (ProtocolFlag.NONE, None),
}
#: Which macro list goes with each event's D packet.
_LIST_FOR: Final[Mapping[bytes, bytes]] = {b"L": b"N", b"B": b"E"}


@dataclass(frozen=True, slots=True)
class MessageResult:
    """How the filter answered one message."""

    reply: Reply  # the final reply: Continue, Accept, Reject, Tempfail, Discard, ReplyCode
    stage: bytes  # code of the event that got it: b"E" unless decided earlier
    modifications: tuple[Reply, ...] = ()  # header changes, quarantine, others, in order
    body_skipped: bool = False

    @property
    def added_headers(self) -> list[AddHeader]:
        return [m for m in self.modifications if isinstance(m, AddHeader)]

    @property
    def inserted_headers(self) -> list[InsertHeader]:
        return [m for m in self.modifications if isinstance(m, InsertHeader)]

    @property
    def changed_headers(self) -> list[ChangeHeader]:
        return [m for m in self.modifications if isinstance(m, ChangeHeader)]

    @property
    def accepted(self) -> bool:
        """The message goes on (Continue or Accept)."""
        return isinstance(self.reply, Continue | Accept)


def headers_and_body(raw: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Split a raw message into (name, value after the colon) pairs and the CRLF body."""
    data = to_crlf(raw)
    if data.startswith(b"\r\n"):
        return [], data[2:]
    end = data.find(b"\r\n\r\n")
    block, body = (data, b"") if end < 0 else (data[: end + 2], data[end + 4 :])
    fields = split_fields(block[:-2] if block.endswith(b"\r\n") else block)
    return [(f.name, f.value) for f in fields], body


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def _header_for_milter(value: bytes, leading_space: bool) -> bytes:
    # Postfix keeps folded lines apart with a bare LF and, unless the filter asked for
    # the exact bytes, eats one space (not a tab) after the colon (milter8_header).
    value = value.replace(b"\r\n", b"\n")
    if not leading_space and value.startswith(b" "):
        value = value[1:]
    return value


class MilterClient:
    """One milter connection, driven like Postfix's smtpd/cleanup would drive it."""

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self.reply: OptNegReply | None = None  # the filter's answer to our O
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._decoder = ReplyDecoder()
        self._pending: deque[Reply] = deque()
        self._version = 0
        self._filter_steps = ProtocolFlag.NONE  # the filter's protocol flags
        self._not_in_protocol = ProtocolFlag.NONE  # events this version does not have
        self._lists: dict[bytes, tuple[str, ...]] = dict(POSTFIX_DEFAULT_MACROS)
        self._smtp_started = False
        self._smtp_over = False
        self._skip: bytes | None = None
        self._queue_ids = 0

    # -- connection ----------------------------------------------------------------

    async def connect(self, socket_spec: str) -> None:
        """Open the milter socket (``inet:PORT@HOST``, ``inet6:...``, ``unix:/path``)."""
        family, address = parse_socket_spec(socket_spec)
        if isinstance(address, str):
            opening = asyncio.open_unix_connection(address)
        else:
            host, port = address
            host = host or ("::1" if family is SocketFamily.INET6 else "127.0.0.1")
            opening = asyncio.open_connection(host, port)
        self._reader, self._writer = await asyncio.wait_for(opening, self.timeout)

    async def __aenter__(self) -> MilterClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the socket without a QUIT (as after a protocol error)."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), self.timeout)
            except (OSError, TimeoutError):
                pass

    async def quit(self) -> None:
        """Send QUIT (no reply comes) and close."""
        if self._writer is not None:
            try:
                await self._send(Quit())
            except (OSError, TimeoutError):
                pass
        await self.close()

    async def new_smtp_session(self) -> None:
        """Send QUIT_NC: the next message starts a new SMTP session on this connection."""
        await self._send(QuitNewConnection())
        self._smtp_started = self._smtp_over = False

    # -- negotiation ---------------------------------------------------------------

    async def negotiate(
        self,
        version: int = 6,
        actions: ActionFlag = POSTFIX_ACTIONS,
        protocol: ProtocolFlag | None = None,
    ) -> OptNegReply:
        """Offer what Postfix with ``milter_protocol = version`` offers; check the answer."""
        offer = self.offer(version, actions, protocol)
        await self._send(offer)
        reply = await self._next_reply()
        if not isinstance(reply, OptNegReply):
            raise MilterProtocolError(f"expected the O reply to our O, got {reply!r}")
        self.accept(offer, reply)
        return reply

    @staticmethod
    def offer(
        version: int = 6,
        actions: ActionFlag = POSTFIX_ACTIONS,
        protocol: ProtocolFlag | None = None,
    ) -> OptNeg:
        """The O packet Postfix with ``milter_protocol = version`` sends."""
        if protocol is None and version not in POSTFIX_PROTOCOL:
            raise ValueError(f"Postfix has no milter protocol {version}; pass protocol=")
        offered = POSTFIX_PROTOCOL[version] if protocol is None else protocol
        return OptNeg(version, actions, offered)

    def accept(self, offer: OptNeg, reply: OptNegReply) -> None:
        """Check the filter's answer to ``offer`` as Postfix does and take it on
        (for a caller that moved the bytes itself)."""
        version, actions, offered = offer.version, offer.actions, offer.protocol
        # The checks Postfix makes (milter8_connect); it ignores unoffered steps.
        if reply.version > version:
            raise MilterProtocolError(f"filter answered version {reply.version} to {version}")
        if reply.actions & ~actions:
            raise MilterProtocolError(f"filter wants actions {reply.actions!r}, not offered")
        self.reply, self._version = reply, reply.version
        self._filter_steps = reply.protocol
        # Events of neither our version nor the filter's are never sent, macros included.
        not_ours = NO_STEP_FLAGS & ~offered
        known = [v for v in POSTFIX_PROTOCOL if v <= reply.version]
        not_theirs = NO_STEP_FLAGS & ~POSTFIX_PROTOCOL[max(known)] if known else NO_STEP_FLAGS
        self._not_in_protocol = ProtocolFlag(
            not_ours | not_theirs if reply.version < version else not_ours
        )
        for stage, names in (reply.macros or {}).items():
            if names:  # Postfix keeps its own list for a stage given an empty one
                self._lists[stage] = tuple(names)

    @property
    def leading_space(self) -> bool:
        """Header values go out exactly (HEADER_LEADING_SPACE agreed)."""
        return ProtocolFlag.HEADER_LEADING_SPACE in self._filter_steps

    # -- one message ---------------------------------------------------------------

    async def send_message(
        self,
        *,
        connect: Connect = DEFAULT_CONNECT,
        helo: str = "client.example",
        mail_from: str = "<sender@example.com>",
        rcpts: Sequence[str] = ("<rcpt@example.com>",),
        headers: Sequence[tuple[bytes | str, bytes | str]] = (),
        body: bytes = b"",
        macros: Mapping[str, str] | None = None,
        leading_space: bool | None = None,
    ) -> MessageResult:
        """Send one message the way Postfix would and return the filter's verdict.

        ``connect`` and ``helo`` go out with the first message of an SMTP session only.
        Header values are what follows the colon (``b" hello"``), folded with CRLF or
        LF. ``macros`` adds or overrides macro values (``{auth_type}``...); ``i``
        (a queue ID), ``{mail_addr}`` and ``{rcpt_addr}`` are filled in. With
        ``leading_space`` None the negotiated spacing applies.
        """
        if self.reply is None:
            raise RuntimeError("negotiate() first")
        if self._smtp_over:
            raise RuntimeError("the filter ended this SMTP session; call new_smtp_session()")
        self._queue_ids += 1
        values = self._values(connect, helo, mail_from, macros)
        spacing = self.leading_space if leading_space is None else leading_space
        self._skip = None
        result = await self._message(
            connect, helo, mail_from, rcpts, headers, body, values, spacing
        )
        if not self._smtp_over:
            await self._send(Abort())  # Postfix's mail_reset, after every message
        return result

    async def _message(
        self,
        connect: Connect,
        helo: str,
        mail_from: str,
        rcpts: Sequence[str],
        headers: Sequence[tuple[bytes | str, bytes | str]],
        body: bytes,
        values: dict[str, str],
        spacing: bool,
    ) -> MessageResult:
        if not self._smtp_started:
            self._smtp_started = True
            session: list[tuple[bytes, Command]] = [(b"C", connect), (b"H", Helo(helo))]
            for code, cmd in session:
                reply = await self._event(code, cmd, values)
                if reply is not None and not isinstance(reply, Continue):
                    self._smtp_over = True  # Postfix drops the milter for this session
                    return MessageResult(reply, code)
        steps: list[tuple[bytes, Command]] = [(b"M", MailFrom((mail_from,)))]
        steps += [(b"R", RcptTo((rcpt,))) for rcpt in rcpts]
        steps.append((b"T", Data()))
        steps += [
            (b"L", Header(_bytes(name), _header_for_milter(_bytes(value), spacing)))
            for name, value in headers
        ]
        steps.append((b"N", EndOfHeaders()))
        data = to_crlf(body)
        if data and not data.endswith(b"\r\n"):
            data += b"\r\n"  # Postfix ends every body line with CRLF
        steps += [(b"B", Body(data[i : i + CHUNK_SIZE])) for i in range(0, len(data), CHUNK_SIZE)]
        body_skipped = False
        for code, cmd in steps:
            if isinstance(cmd, RcptTo):
                values["{rcpt_addr}"] = cmd.args[0].strip("<>")
            reply = await self._event(code, cmd, values)
            body_skipped = body_skipped or (code == b"B" and self._skip == b"B")
            if reply is not None and not isinstance(reply, Continue | Skip):
                return MessageResult(reply, code)
        return await self._end_of_message(values, body_skipped)

    async def _end_of_message(self, values: dict[str, str], body_skipped: bool) -> MessageResult:
        await self._send(self._macros(b"E", values))
        await self._send(EndOfMessage())
        modifications: list[Reply] = []
        while True:
            reply = await self._next_reply()
            if isinstance(reply, Progress):
                continue
            if isinstance(reply, Continue | Accept | Reject | Tempfail | Discard | ReplyCode):
                return MessageResult(reply, b"E", tuple(modifications), body_skipped)
            if isinstance(reply, Skip | OptNegReply):
                raise MilterProtocolError(f"unexpected {reply!r} at end of message")
            modifications.append(reply)

    # -- events --------------------------------------------------------------------

    def _values(
        self, connect: Connect, helo: str, mail_from: str, extra: Mapping[str, str] | None
    ) -> dict[str, str]:
        """Macro values by braced name, as Postfix's smtpd would have them."""
        values = {
            "{j}": "localhost",
            "{daemon_name}": "mailseal-client",
            "{v}": "mailseal test client",
            "{client_name}": connect.hostname,
            "{client_addr}": connect.address or "",
            "{client_port}": str(connect.port or 0),
            "{i}": f"{self._queue_ids:010X}",
            "{mail_addr}": mail_from.strip("<>"),
        }
        if helo:
            values["{s}"] = helo
        for name, value in (extra or {}).items():
            values[macro_key(name)] = value
        return values

    def _macros(self, code: bytes, values: Mapping[str, str]) -> DefineMacros:
        names = self._lists.get(_LIST_FOR.get(code, code), ())
        found = {n: values[macro_key(n)] for n in names if macro_key(n) in values}
        return DefineMacros(code, found)

    async def _event(self, code: bytes, cmd: Command, values: Mapping[str, str]) -> Reply | None:
        """Send one event as milter8_event does; return its reply, None if none comes."""
        step, no_reply = _FLAGS[code]
        if step & self._not_in_protocol:
            return None
        if self._skip is not None:
            if self._skip == code:
                return None
            self._skip = None
        await self._send(self._macros(code, values))
        if step & self._filter_steps:
            return None
        await self._send(cmd)
        if no_reply is not None and no_reply in self._filter_steps:
            return None
        while True:
            reply = await self._next_reply()
            if isinstance(reply, Progress):
                continue
            if not isinstance(reply, FINAL_REPLIES):
                raise MilterProtocolError(f"unexpected {reply!r} after {code!r}")
            if isinstance(reply, Skip):
                self._skip = code
            return reply

    # -- bytes ---------------------------------------------------------------------

    async def _send(self, cmd: Command) -> None:
        if self._writer is None:
            raise ConnectionError("not connected to a milter")
        self._writer.write(encode_command(cmd))
        await asyncio.wait_for(self._writer.drain(), self.timeout)

    async def _next_reply(self) -> Reply:
        while not self._pending:
            if self._reader is None:
                raise ConnectionError("not connected to a milter")
            data = await asyncio.wait_for(self._reader.read(READ_SIZE), self.timeout)
            if not data:
                raise ConnectionError("the milter closed the connection")
            self._pending.extend(self._decoder.feed(data))
        return self._pending.popleft()


__all__ = ["DEFAULT_CONNECT", "MessageResult", "MilterClient", "headers_and_body"]
