"""The milter packets as values: frozen, slotted dataclasses checked on construction.

One class per command the MTA sends and per reply or modification the filter sends
(``protocol.py`` has the codes; ``codec.py`` the bytes). Strings travel as C strings
(NUL-terminated), so no field may hold a NUL. Text fields are ``str`` decoded as
latin-1 (lossless); header fields and body data stay ``bytes``. Constructors raise
ValueError for values the protocol cannot carry; the decoders turn that into
MilterProtocolError.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, TypeAlias

from mailseal.milter.protocol import (
    COMMAND_STAGE,
    MACRO_LIST_SEPARATORS,
    MAX_UINT32,
    ActionFlag,
    AddressFamily,
    ProtocolFlag,
)

# -- validation helpers used by the message classes -----------------------------------


def _no_nul(what: str, value: str | bytes) -> None:
    if (isinstance(value, str) and "\0" in value) or (isinstance(value, bytes) and b"\0" in value):
        raise ValueError(f"{what} must not contain NUL (the protocol sends it as a C string)")


def _uint32(what: str, value: int) -> None:
    if not 0 <= value <= MAX_UINT32:
        raise ValueError(f"{what} must fit in 32 bits unsigned, got {value}")


def _code(what: str, value: bytes) -> None:
    if len(value) != 1:
        raise ValueError(f"{what} must be one byte, got {value!r}")


def macro_key(name: str) -> str:
    """Give a macro name in the braced form (``auth_type`` -> ``{auth_type}``).

    Postfix sends each name exactly as its ``milter_*_macros`` list (or the filter's
    SETSYMLIST list) spells it, so ``{auth_type}`` and ``auth_type`` both occur;
    Postfix itself looks names up in the braced form.
    """
    return name if name.startswith("{") and name.endswith("}") else "{" + name + "}"


# -- MTA -> filter --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OptNeg:
    """O: the MTA opens with its version, the actions it allows, the protocol flags it offers."""

    version: int
    actions: ActionFlag
    protocol: ProtocolFlag

    def __post_init__(self) -> None:
        for what, value in (
            ("version", self.version),
            ("actions", self.actions),
            ("protocol", self.protocol),
        ):
            _uint32(what, int(value))


@dataclass(frozen=True, slots=True)
class DefineMacros:
    """D: macro values for the command whose code is ``stage`` (sent just before it)."""

    stage: bytes  # b"C", b"H", b"M", b"R", b"T", b"L", b"N", b"B", b"E", b"U"
    macros: dict[str, str] = field(default_factory=dict)  # names as sent

    def __post_init__(self) -> None:
        _code("macro stage", self.stage)
        for name, value in self.macros.items():
            if not name:
                raise ValueError("a macro name must not be empty")
            _no_nul("macro name", name)
            _no_nul("macro value", value)

    def get(self, name: str) -> str | None:
        """Look a macro up by name, braced or not (``i`` finds ``{i}`` and back)."""
        return lookup_macro(self.macros, name)


def lookup_macro(macros: Mapping[str, str], name: str) -> str | None:
    """Find ``name`` in ``macros`` whether either side is written with braces or without."""
    if name in macros:
        return macros[name]
    key = macro_key(name)
    for sent, value in macros.items():
        if macro_key(sent) == key:
            return value
    return None


_FAMILIES: Final = frozenset(f.value for f in AddressFamily)


@dataclass(frozen=True, slots=True)
class Connect:
    """C: the SMTP client. Postfix sends ``[addr]`` as hostname when the name is unknown."""

    hostname: str
    family: bytes  # b"4", b"6", b"L" (unix socket), b"U" (unknown: no port, no address)
    port: int | None = None  # 0 for a unix socket
    address: str | None = None

    def __post_init__(self) -> None:
        _no_nul("hostname", self.hostname)
        if self.family not in _FAMILIES:
            raise ValueError(
                f"address family must be one of b'4' b'6' b'L' b'U', got {self.family!r}"
            )
        if self.family == AddressFamily.UNKNOWN.value:
            if self.port is not None or self.address is not None:
                raise ValueError("family b'U' carries no port and no address")
            return
        if self.port is None or self.address is None:
            raise ValueError(f"family {self.family!r} needs a port and an address")
        if not 0 <= self.port <= 0xFFFF:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        _no_nul("address", self.address)


@dataclass(frozen=True, slots=True)
class Helo:
    """H: the HELO/EHLO argument."""

    name: str

    def __post_init__(self) -> None:
        _no_nul("HELO name", self.name)


def _check_args(what: str, args: tuple[str, ...]) -> None:
    if not args:
        raise ValueError(f"{what} needs at least the address")
    for arg in args:
        _no_nul(f"{what} argument", arg)


@dataclass(frozen=True, slots=True)
class MailFrom:
    """M: ``<sender>`` as the client wrote it, then ESMTP arguments (``SIZE=1234``)."""

    args: tuple[str, ...]

    def __post_init__(self) -> None:
        _check_args("MAIL", self.args)


@dataclass(frozen=True, slots=True)
class RcptTo:
    """R: ``<recipient>`` as the client wrote it, then ESMTP arguments."""

    args: tuple[str, ...]

    def __post_init__(self) -> None:
        _check_args("RCPT", self.args)


@dataclass(frozen=True, slots=True)
class Data:
    """T: the client sent DATA (protocol 4 and later)."""


@dataclass(frozen=True, slots=True)
class Header:
    """L: one header field.

    ``name`` has no colon and no trailing blanks. ``value`` is what follows the colon,
    with folded lines joined by a bare LF (Postfix and Sendmail send ``"\\n\\t"``, not
    CRLF). Without HEADER_LEADING_SPACE the MTA has removed one space after the colon
    (only a space, and only one); with it the value is exact.
    """

    name: bytes
    value: bytes

    def __post_init__(self) -> None:
        _header_fields(self.name, self.value)


def _header_fields(name: bytes, value: bytes) -> None:
    if not name:
        raise ValueError("a header name must not be empty")
    _no_nul("header name", name)
    _no_nul("header value", value)


@dataclass(frozen=True, slots=True)
class EndOfHeaders:
    """N: no more headers."""


@dataclass(frozen=True, slots=True)
class Body:
    """B: a body chunk (at most CHUNK_SIZE bytes from Postfix), lines ending in CRLF."""

    chunk: bytes


@dataclass(frozen=True, slots=True)
class EndOfMessage:
    """E: end of the message; modifications and the final reply answer it.

    Postfix always sends the last chunk as B and E empty; libmilter also accepts a
    final chunk here and treats it as one more body chunk first.
    """

    chunk: bytes = b""


@dataclass(frozen=True, slots=True)
class Abort:
    """A: forget the current message, keep the connection. No reply.

    Postfix also sends it after every finished message (3.7 sends two in a row), so
    an A with no message in progress is normal.
    """


@dataclass(frozen=True, slots=True)
class Quit:
    """Q: the connection ends. No reply."""


@dataclass(frozen=True, slots=True)
class QuitNewConnection:
    """K: the SMTP connection ends but the MTA reuses this milter connection (v6). No reply."""


@dataclass(frozen=True, slots=True)
class Unknown:
    """U: an SMTP command the MTA did not recognise, as the client sent it."""

    command: bytes

    def __post_init__(self) -> None:
        _no_nul("unknown SMTP command", self.command)


@dataclass(frozen=True, slots=True)
class UnknownCommand:
    """A packet whose code byte is no milter command; libmilter closes the connection."""

    code: bytes
    payload: bytes = b""

    def __post_init__(self) -> None:
        _code("command code", self.code)


Command: TypeAlias = (
    OptNeg
    | DefineMacros
    | Connect
    | Helo
    | MailFrom
    | RcptTo
    | Data
    | Header
    | EndOfHeaders
    | Body
    | EndOfMessage
    | Abort
    | Quit
    | QuitNewConnection
    | Unknown
    | UnknownCommand
)

# -- filter -> MTA --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OptNegReply:
    """O: the filter's version, the actions it will use, its protocol flags, macro lists.

    ``macros`` maps a command code (``b"C"``, ``b"H"``, ``b"M"``, ``b"R"``, ``b"T"``,
    ``b"N"``, ``b"E"``) to the macro names the filter wants at that stage (SETSYMLIST).
    Postfix replaces its list for the stages named and keeps its own for the rest; an
    empty list counts as not named. An empty mapping is stored as None.
    """

    version: int
    actions: ActionFlag
    protocol: ProtocolFlag
    macros: dict[bytes, list[str]] | None = None

    def __post_init__(self) -> None:
        for what, value in (
            ("version", self.version),
            ("actions", self.actions),
            ("protocol", self.protocol),
        ):
            _uint32(what, int(value))
        if not self.macros:
            object.__setattr__(self, "macros", None)
            return
        for stage, names in self.macros.items():
            if stage not in COMMAND_STAGE:
                raise ValueError(
                    f"no macro list stage for command {stage!r}; use one of {sorted(COMMAND_STAGE)}"
                )
            for name in names:
                if not name or any(c in name for c in MACRO_LIST_SEPARATORS + "\0"):
                    raise ValueError(
                        f"macro name {name!r} must be non-empty, without NUL or the "
                        "list separators (space, comma, tab, CR, LF)"
                    )


@dataclass(frozen=True, slots=True)
class Continue:
    """c: go on."""


@dataclass(frozen=True, slots=True)
class Accept:
    """a: accept; no more events for this message (or connection, at CONNECT/HELO)."""


@dataclass(frozen=True, slots=True)
class Reject:
    """r: reject (Postfix answers 550 5.7.1 Command rejected)."""


@dataclass(frozen=True, slots=True)
class Tempfail:
    """t: temporary failure (Postfix answers 451 4.7.1 Service unavailable)."""


@dataclass(frozen=True, slots=True)
class Discard:
    """d: accept and throw the message away."""


@dataclass(frozen=True, slots=True)
class Skip:
    """s: send no more of this kind of event (body chunks); only if SKIP was negotiated."""


@dataclass(frozen=True, slots=True)
class Progress:
    """p: still working; the MTA restarts its timeout and keeps waiting."""


def _check_smtp_reply(text: bytes) -> None:
    """Apply Postfix's check (milter8.c, milter8_valid_smtp_reply) to a reply text."""
    lines = text.split(b"\r\n")
    for number, line in enumerate(lines):
        final = number == len(lines) - 1
        if (
            len(line) < 4
            or line[:1] not in (b"4", b"5")
            or not line[1:3].isdigit()
            or line[3:4] != (b" " if final else b"-")
            or (line[4:5].isdigit() and line[4:5] != line[:1])
            or b"\r" in line
            or b"\n" in line
        ):
            raise ValueError(
                f"SMTP reply line {line!r} must read '4xx x.y.z text' or '5xx x.y.z text', "
                "with 'ddd-' on all but the last line and lines joined by CRLF"
            )


@dataclass(frozen=True, slots=True)
class ReplyCode:
    """y: reject or tempfail with this SMTP reply, e.g. ``b"451 4.7.1 try again later"``.

    A ``%`` must be written ``%%``: Sendmail uses the text as a format string, and
    Postfix turns ``%%`` into ``%`` and drops a lone ``%``.
    """

    text: bytes

    def __post_init__(self) -> None:
        _no_nul("reply text", self.text)
        _check_smtp_reply(self.text)


@dataclass(frozen=True, slots=True)
class AddHeader:
    """h: append a header field at the end of the header (value as ``Header`` describes)."""

    name: bytes
    value: bytes

    def __post_init__(self) -> None:
        _header_fields(self.name, self.value)


@dataclass(frozen=True, slots=True)
class InsertHeader:
    """i: insert a header field at 0-based position ``index`` (0: at the very top).

    Postfix counts the header as it stands: its own Received: field, which the milter
    never saw, and fields inserted before. So index 0 puts the field above that
    Received: field, and index 1 (what OpenDKIM uses) just below it, if nothing was
    inserted before.
    """

    index: int
    name: bytes
    value: bytes

    def __post_init__(self) -> None:
        _uint32("header index", self.index)
        _header_fields(self.name, self.value)


@dataclass(frozen=True, slots=True)
class ChangeHeader:
    """m: replace the index-th field called ``name`` (1-based), or delete it if value is empty.

    Postfix treats index 0 as 1 and does not count its own Received: field here.
    """

    index: int
    name: bytes
    value: bytes

    def __post_init__(self) -> None:
        _uint32("header index", self.index)
        _header_fields(self.name, self.value)


@dataclass(frozen=True, slots=True)
class Quarantine:
    """q: put the message on hold; the reason is for the logs (Postfix keeps 100 bytes)."""

    reason: bytes

    def __post_init__(self) -> None:
        if not self.reason:
            raise ValueError("a quarantine reason must not be empty (libmilter refuses it)")
        _no_nul("quarantine reason", self.reason)


@dataclass(frozen=True, slots=True)
class UnknownReply:
    """Any other filter packet (recipient or body changes, shutdown...), kept raw."""

    code: bytes
    payload: bytes = b""

    def __post_init__(self) -> None:
        _code("reply code", self.code)


Reply: TypeAlias = (
    OptNegReply
    | Continue
    | Accept
    | Reject
    | Tempfail
    | Discard
    | Skip
    | Progress
    | ReplyCode
    | AddHeader
    | InsertHeader
    | ChangeHeader
    | Quarantine
    | UnknownReply
)
#: Replies that end the handling of a command (as opposed to modifications and progress).
FINAL_REPLIES: Final = (Continue, Accept, Reject, Tempfail, Discard, Skip, ReplyCode)
