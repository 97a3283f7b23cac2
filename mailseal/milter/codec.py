"""Milter packets to values and back, sans-IO: no sockets, no event loop, no clock.

The filter side feeds what it reads to a :class:`Decoder` and gets commands back,
for any split of the stream; it turns replies into bytes with :func:`encode_reply`.
The MTA side (tests, ``mailseal bench``) uses :func:`encode_command` and
:class:`ReplyDecoder`. :func:`negotiate` answers the MTA's O packet. What the MTA
sends where, and why we ask for what we ask for, is in ``docs/milter-protocol.md``.

Decoding is strict: a packet that does not parse for its code raises
:class:`MilterProtocolError` (never anything else), and the decoder stays broken
afterwards, since the stream can no longer be trusted to be in step. A packet with
an unknown code is not an error here; it comes back as :class:`UnknownCommand` (or
:class:`UnknownReply`) for the caller to answer as the protocol says.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from typing import Final, TypeVar, assert_never

from mailseal.errors import MilterProtocolError
from mailseal.milter.messages import (
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
    Quarantine,
    Quit,
    QuitNewConnection,
    RcptTo,
    Reject,
    Reply,
    ReplyCode,
    Skip,
    Tempfail,
    Unknown,
    UnknownCommand,
    UnknownReply,
    lookup_macro,
)
from mailseal.milter.negotiation import (
    DEFAULT_ACTIONS,
    DEFAULT_PROTOCOL,
    REQUIRED_ACTIONS,
    Negotiated,
    negotiate,
)
from mailseal.milter.protocol import (
    COMMAND_STAGE,
    DEFAULT_MAX_PACKET,
    MACRO_LIST_SEPARATORS,
    STAGE_COMMAND,
    ActionFlag,
    CommandCode,
    MacroStage,
    ProtocolFlag,
    ResponseCode,
)
from mailseal.milter.sockets import parse_socket_spec

_LENGTH: Final = struct.Struct("!I")
_OPTNEG: Final = struct.Struct("!III")
_PORT: Final = struct.Struct("!H")
_MACRO_SEPARATORS: Final = re.compile("[" + re.escape(MACRO_LIST_SEPARATORS) + "]")

T = TypeVar("T")

# -- framing --------------------------------------------------------------------------


def frame(code: bytes, payload: bytes = b"") -> bytes:
    """Wrap a payload in a packet: 4-byte big-endian length (code byte included), code, payload."""
    return _LENGTH.pack(1 + len(payload)) + code + payload


class _Framer:
    """Cut a byte stream into (code, payload) packets, for any split of the input."""

    def __init__(self, max_packet: int) -> None:
        self._buffer = bytearray()
        self._max_packet = max_packet
        self._broken: str | None = None

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def fail(self, message: str) -> MilterProtocolError:
        self._broken = message
        return MilterProtocolError(message)

    def packets(self, data: bytes) -> list[tuple[bytes, bytes]]:
        if self._broken is not None:
            raise MilterProtocolError(f"stream already broken: {self._broken}")
        buffer = self._buffer
        buffer += data
        found: list[tuple[bytes, bytes]] = []
        pos, end = 0, len(buffer)
        while end - pos >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(buffer, pos)
            if length == 0:
                raise self.fail("packet length 0: every packet has at least its code byte")
            if length > self._max_packet:
                raise self.fail(
                    f"packet length {length} is over the cap of {self._max_packet} bytes "
                    "(libmilter's is 65536, Postfix sends headers up to header_size_limit)"
                )
            if end - pos - _LENGTH.size < length:
                break
            start = pos + _LENGTH.size
            found.append(
                (bytes(buffer[start : start + 1]), bytes(buffer[start + 1 : start + length]))
            )
            pos = start + length
        del buffer[:pos]
        return found


# -- payload pieces -------------------------------------------------------------------


def _cstrings(payload: bytes, what: str) -> list[bytes]:
    """Split NUL-terminated strings; the payload must end with NUL unless it is empty."""
    if not payload:
        return []
    if not payload.endswith(b"\0"):
        raise ValueError(f"{what}: last string is not NUL-terminated")
    return payload[:-1].split(b"\0")


def _exactly(payload: bytes, count: int, what: str) -> list[bytes]:
    strings = _cstrings(payload, what)
    if len(strings) != count:
        raise ValueError(f"{what}: expected {count} NUL-terminated string(s), got {len(strings)}")
    return strings


def _text(raw: bytes) -> str:
    return raw.decode("latin-1")


def _empty(payload: bytes, what: str, value: T) -> T:
    if payload:
        raise ValueError(f"{what} carries no data, got {len(payload)} bytes")
    return value


def _uint32_then(payload: bytes, what: str) -> tuple[int, bytes]:
    if len(payload) < 4:
        raise ValueError(f"{what}: too short for its 32-bit index")
    return _LENGTH.unpack_from(payload)[0], payload[4:]


# -- MTA -> filter --------------------------------------------------------------------


def _optneg(payload: bytes) -> OptNeg:
    # libmilter reads the first 12 bytes and ignores any more (st_optionneg).
    if len(payload) < _OPTNEG.size:
        raise ValueError(f"O: needs 12 bytes (version, actions, protocol), got {len(payload)}")
    version, actions, protocol = _OPTNEG.unpack_from(payload)
    return OptNeg(version, ActionFlag(actions), ProtocolFlag(protocol))


#: Decoded D packets by payload. Postfix sends the same few again and again (an empty
#: end-of-header list before every header, say); a DefineMacros is never changed
#: after decoding, so one object serves every connection of a worker.
_MACRO_CACHE: dict[bytes, DefineMacros] = {}
_MACRO_CACHE_SIZE: Final = 1024


def _macros(payload: bytes) -> DefineMacros:
    found = _MACRO_CACHE.get(payload)
    if found is not None:
        return found
    decoded = _decode_macros(payload)
    if len(_MACRO_CACHE) >= _MACRO_CACHE_SIZE:
        _MACRO_CACHE.clear()
    _MACRO_CACHE[payload] = decoded
    return decoded


def _decode_macros(payload: bytes) -> DefineMacros:
    if not payload:
        raise ValueError("D: missing the stage code")
    strings = _cstrings(payload[1:], "D")
    if len(strings) % 2:
        raise ValueError("D: macro names and values do not pair up")
    names, values = strings[0::2], strings[1::2]
    return DefineMacros(
        payload[:1], {_text(n): _text(v) for n, v in zip(names, values, strict=True)}
    )


def _connect(payload: bytes) -> Connect:
    nul = payload.find(b"\0")
    if nul < 0 or nul + 1 >= len(payload):
        raise ValueError("C: needs a NUL-terminated host name and a family byte")
    hostname, family, rest = _text(payload[:nul]), payload[nul + 1 : nul + 2], payload[nul + 2 :]
    if family == b"U":
        return _empty(rest, "C with family U", Connect(hostname, family))
    if len(rest) < _PORT.size:
        raise ValueError("C: missing the 2-byte port")
    (address,) = _exactly(rest[_PORT.size :], 1, "C address")
    return Connect(hostname, family, _PORT.unpack_from(rest)[0], _text(address))


def _args(payload: bytes, what: str) -> tuple[str, ...]:
    args = tuple(_text(s) for s in _cstrings(payload, what))
    if not args:
        raise ValueError(f"{what}: no arguments")
    return args


def _header(payload: bytes) -> Header:
    name, value = _exactly(payload, 2, "L")
    return Header(name, value)


_COMMAND_PARSERS: Final[dict[bytes, Callable[[bytes], Command]]] = {
    CommandCode.OPTION_NEGOTIATION.value: _optneg,
    CommandCode.MACRO.value: _macros,
    CommandCode.CONNECT.value: _connect,
    CommandCode.HELO.value: lambda p: Helo(_text(_exactly(p, 1, "H")[0])),
    CommandCode.MAIL.value: lambda p: MailFrom(_args(p, "M")),
    CommandCode.RCPT.value: lambda p: RcptTo(_args(p, "R")),
    CommandCode.DATA.value: lambda p: _empty(p, "T", Data()),
    CommandCode.HEADER.value: _header,
    CommandCode.END_OF_HEADERS.value: lambda p: _empty(p, "N", EndOfHeaders()),
    CommandCode.BODY.value: Body,
    CommandCode.END_OF_MESSAGE.value: EndOfMessage,
    CommandCode.ABORT.value: lambda p: _empty(p, "A", Abort()),
    CommandCode.QUIT.value: lambda p: _empty(p, "Q", Quit()),
    CommandCode.QUIT_NEW_CONNECTION.value: lambda p: _empty(p, "K", QuitNewConnection()),
    CommandCode.UNKNOWN.value: lambda p: Unknown(_exactly(p, 1, "U")[0]),
}


def decode_command(code: bytes, payload: bytes) -> Command:
    """Turn one MTA packet (its code byte and payload) into a command value."""
    parse = _COMMAND_PARSERS.get(code)
    if parse is None:
        return UnknownCommand(code, payload)
    try:
        return parse(payload)
    except ValueError as problem:
        raise MilterProtocolError(f"malformed {code!r} packet: {problem}") from None


class Decoder:
    """Decode what the MTA sends, fed in pieces of any size (filter side)."""

    def __init__(self, max_packet: int = DEFAULT_MAX_PACKET) -> None:
        self._framer = _Framer(max_packet)

    @property
    def buffered(self) -> int:
        """Bytes of an unfinished packet held back; non-zero at EOF means a cut packet."""
        return self._framer.buffered

    def feed(self, data: bytes) -> list[Command]:
        """Take the next bytes of the stream, return the commands they complete."""
        commands: list[Command] = []
        for code, payload in self._framer.packets(data):
            try:
                commands.append(decode_command(code, payload))
            except MilterProtocolError as error:
                raise self._framer.fail(str(error)) from None
        return commands


def _str(value: str) -> bytes:
    return value.encode("latin-1") + b"\0"


def _command_payload(cmd: Command) -> tuple[CommandCode | bytes, bytes]:
    match cmd:
        case OptNeg():
            return CommandCode.OPTION_NEGOTIATION, _OPTNEG.pack(
                cmd.version, int(cmd.actions), int(cmd.protocol)
            )
        case DefineMacros():
            return CommandCode.MACRO, cmd.stage + b"".join(
                _str(n) + _str(v) for n, v in cmd.macros.items()
            )
        case Connect():
            head = _str(cmd.hostname) + cmd.family
            if cmd.port is None or cmd.address is None:
                return CommandCode.CONNECT, head
            return CommandCode.CONNECT, head + _PORT.pack(cmd.port) + _str(cmd.address)
        case Helo():
            return CommandCode.HELO, _str(cmd.name)
        case MailFrom():
            return CommandCode.MAIL, b"".join(_str(a) for a in cmd.args)
        case RcptTo():
            return CommandCode.RCPT, b"".join(_str(a) for a in cmd.args)
        case Data():
            return CommandCode.DATA, b""
        case Header():
            return CommandCode.HEADER, cmd.name + b"\0" + cmd.value + b"\0"
        case EndOfHeaders():
            return CommandCode.END_OF_HEADERS, b""
        case Body():
            return CommandCode.BODY, cmd.chunk
        case EndOfMessage():
            return CommandCode.END_OF_MESSAGE, cmd.chunk
        case Abort():
            return CommandCode.ABORT, b""
        case Quit():
            return CommandCode.QUIT, b""
        case QuitNewConnection():
            return CommandCode.QUIT_NEW_CONNECTION, b""
        case Unknown():
            return CommandCode.UNKNOWN, cmd.command + b"\0"
        case UnknownCommand():
            return cmd.code, cmd.payload
        case _:
            assert_never(cmd)


def encode_command(cmd: Command) -> bytes:
    """Turn a command into its packet (MTA side)."""
    code, payload = _command_payload(cmd)
    return frame(code if isinstance(code, bytes) else code.value, payload)


# -- filter -> MTA --------------------------------------------------------------------


def _optneg_reply(payload: bytes) -> OptNegReply:
    if len(payload) < _OPTNEG.size:
        raise ValueError(f"O: needs 12 bytes (version, actions, protocol), got {len(payload)}")
    version, actions, protocol = _OPTNEG.unpack_from(payload)
    macros: dict[bytes, list[str]] = {}
    rest = payload[_OPTNEG.size :]
    while rest:
        number, rest = _uint32_then(rest, "O macro list")
        nul = rest.find(b"\0")
        if nul < 0:
            raise ValueError("O: macro list is not NUL-terminated")
        if number not in MacroStage._value2member_map_:
            raise ValueError(f"O: unknown macro list stage {number}")
        names = _MACRO_SEPARATORS.split(_text(rest[:nul]))
        macros[STAGE_COMMAND[MacroStage(number)]] = [name for name in names if name]
        rest = rest[nul + 1 :]
    return OptNegReply(version, ActionFlag(actions), ProtocolFlag(protocol), macros)


def _indexed(payload: bytes, what: str, make: Callable[[int, bytes, bytes], T]) -> T:
    index, rest = _uint32_then(payload, what)
    name, value = _exactly(rest, 2, what)
    return make(index, name, value)


def _one_text(payload: bytes) -> bytes:
    # libmilter sends the terminating NUL; Postfix reads the payload raw and allows its absence.
    return payload[:-1] if payload.endswith(b"\0") else payload


_REPLY_PARSERS: Final[dict[bytes, Callable[[bytes], Reply]]] = {
    ResponseCode.OPTION_NEGOTIATION.value: _optneg_reply,
    ResponseCode.CONTINUE.value: lambda p: _empty(p, "c", Continue()),
    ResponseCode.ACCEPT.value: lambda p: _empty(p, "a", Accept()),
    ResponseCode.REJECT.value: lambda p: _empty(p, "r", Reject()),
    ResponseCode.TEMPFAIL.value: lambda p: _empty(p, "t", Tempfail()),
    ResponseCode.DISCARD.value: lambda p: _empty(p, "d", Discard()),
    ResponseCode.SKIP.value: lambda p: _empty(p, "s", Skip()),
    ResponseCode.PROGRESS.value: lambda p: _empty(p, "p", Progress()),
    ResponseCode.REPLY_CODE.value: lambda p: ReplyCode(_one_text(p)),
    ResponseCode.ADD_HEADER.value: lambda p: AddHeader(*_exactly(p, 2, "h")),
    ResponseCode.INSERT_HEADER.value: lambda p: _indexed(p, "i", InsertHeader),
    ResponseCode.CHANGE_HEADER.value: lambda p: _indexed(p, "m", ChangeHeader),
    ResponseCode.QUARANTINE.value: lambda p: Quarantine(_one_text(p)),
}


def decode_reply(code: bytes, payload: bytes) -> Reply:
    """Turn one filter packet (its code byte and payload) into a reply value."""
    parse = _REPLY_PARSERS.get(code)
    if parse is None:
        return UnknownReply(code, payload)
    try:
        return parse(payload)
    except ValueError as problem:
        raise MilterProtocolError(f"malformed {code!r} reply: {problem}") from None


class ReplyDecoder:
    """Decode what a filter sends, fed in pieces of any size (MTA side)."""

    def __init__(self, max_packet: int = DEFAULT_MAX_PACKET) -> None:
        self._framer = _Framer(max_packet)

    @property
    def buffered(self) -> int:
        """Bytes of an unfinished packet held back."""
        return self._framer.buffered

    def feed(self, data: bytes) -> list[Reply]:
        """Take the next bytes of the stream, return the replies they complete."""
        replies: list[Reply] = []
        for code, payload in self._framer.packets(data):
            try:
                replies.append(decode_reply(code, payload))
            except MilterProtocolError as error:
                raise self._framer.fail(str(error)) from None
        return replies


def _reply_payload(reply: Reply) -> tuple[ResponseCode | bytes, bytes]:
    match reply:
        case OptNegReply():
            head = _OPTNEG.pack(reply.version, int(reply.actions), int(reply.protocol))
            lists = sorted((COMMAND_STAGE[s], names) for s, names in (reply.macros or {}).items())
            body = b"".join(_LENGTH.pack(n) + _str(" ".join(names)) for n, names in lists)
            return ResponseCode.OPTION_NEGOTIATION, head + body
        case Continue():
            return ResponseCode.CONTINUE, b""
        case Accept():
            return ResponseCode.ACCEPT, b""
        case Reject():
            return ResponseCode.REJECT, b""
        case Tempfail():
            return ResponseCode.TEMPFAIL, b""
        case Discard():
            return ResponseCode.DISCARD, b""
        case Skip():
            return ResponseCode.SKIP, b""
        case Progress():
            return ResponseCode.PROGRESS, b""
        case ReplyCode():
            return ResponseCode.REPLY_CODE, reply.text + b"\0"
        case AddHeader():
            return ResponseCode.ADD_HEADER, reply.name + b"\0" + reply.value + b"\0"
        case InsertHeader():
            fields = reply.name + b"\0" + reply.value + b"\0"
            return ResponseCode.INSERT_HEADER, _LENGTH.pack(reply.index) + fields
        case ChangeHeader():
            fields = reply.name + b"\0" + reply.value + b"\0"
            return ResponseCode.CHANGE_HEADER, _LENGTH.pack(reply.index) + fields
        case Quarantine():
            return ResponseCode.QUARANTINE, reply.reason + b"\0"
        case UnknownReply():
            return reply.code, reply.payload
        case _:
            assert_never(reply)


_CONTINUE: Final = frame(ResponseCode.CONTINUE.value, b"")


def encode_reply(reply: Reply) -> bytes:
    """Turn a reply or modification into its packet (filter side)."""
    if type(reply) is Continue:  # most replies: one fixed packet
        return _CONTINUE
    code, payload = _reply_payload(reply)
    return frame(code if isinstance(code, bytes) else code.value, payload)


# -- header values --------------------------------------------------------------------


def milter_header_value(folded_crlf_value: bytes, *, leading_space: bool | None = None) -> bytes:
    """Turn a header value folded with CRLF into the form the MTA expects, LF-folded.

    Postfix stores a milter's header with its lines split at LF and writes each line
    back with CRLF (cleanup_out.c), so a CR we sent would stay as a stray CR before
    the line end: folds go out as ``"\n\t"``, as OpenDKIM sends them
    (dkimf_stripcr). Postfix prefixes a line that does not start with a blank with a
    TAB, which would change signed bytes, so such a line is an error, as are bare
    CR or LF and NUL.

    The start of the value is left alone unless ``leading_space`` is given, with
    the input then being everything after the colon as it must be delivered
    (``b" v=1; ..."``): True (HEADER_LEADING_SPACE agreed) keeps it as it is; False
    drops the one space the MTA puts back itself after the colon, and a value that
    does not start with a space is an error, since it could not be delivered exactly.
    """
    if b"\0" in folded_crlf_value:
        raise ValueError("a header value must not contain NUL")
    lines = folded_crlf_value.split(b"\r\n")
    for line in lines:
        if b"\r" in line or b"\n" in line:
            raise ValueError("header value has a bare CR or LF; fold with CRLF")
    for line in lines[1:]:
        if not line.startswith((b" ", b"\t")):
            raise ValueError(f"folded line {line[:40]!r} must start with a space or tab")
    value = b"\n".join(lines)
    if leading_space is None or leading_space:
        return value
    if not value.startswith(b" "):
        raise ValueError(
            "without SMFIP_HDR_LEADSPC the MTA puts exactly one space after the colon; "
            "the value must start with it"
        )
    return value[1:]


def message_header_value(milter_value: bytes, *, leading_space: bool = False) -> bytes:
    """Turn a Header command's value back into the bytes after the colon, CRLF-folded.

    Without HEADER_LEADING_SPACE the MTA removed one space, if there was one; assume
    there was (right for nearly all mail).
    """
    # OpenDKIM compat: mlfi_eoh adds ": " and turns each LF not after a CR into CRLF.
    value = milter_value.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return value if leading_space else b" " + value


__all__ = [
    "DEFAULT_ACTIONS",
    "DEFAULT_PROTOCOL",
    "REQUIRED_ACTIONS",
    "Abort",
    "Accept",
    "ActionFlag",
    "AddHeader",
    "Body",
    "ChangeHeader",
    "Command",
    "Connect",
    "Continue",
    "Data",
    "Decoder",
    "DefineMacros",
    "Discard",
    "EndOfHeaders",
    "EndOfMessage",
    "Header",
    "Helo",
    "InsertHeader",
    "MailFrom",
    "MilterProtocolError",
    "Negotiated",
    "OptNeg",
    "OptNegReply",
    "Progress",
    "ProtocolFlag",
    "Quarantine",
    "Quit",
    "QuitNewConnection",
    "RcptTo",
    "Reject",
    "Reply",
    "ReplyCode",
    "ReplyDecoder",
    "Skip",
    "Tempfail",
    "Unknown",
    "UnknownCommand",
    "UnknownReply",
    "decode_command",
    "decode_reply",
    "encode_command",
    "encode_reply",
    "frame",
    "lookup_macro",
    "message_header_value",
    "milter_header_value",
    "negotiate",
    "parse_socket_spec",
]
