"""The milter codec: round trips, any split of the stream, malformed input, exact bytes."""

from __future__ import annotations

import ast
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailseal.errors import MilterProtocolError
from mailseal.milter.codec import (
    Decoder,
    ReplyDecoder,
    decode_command,
    encode_command,
    encode_reply,
    frame,
)
from mailseal.milter.messages import (
    Accept,
    AddHeader,
    Body,
    ChangeHeader,
    Command,
    Connect,
    Continue,
    DefineMacros,
    EndOfHeaders,
    EndOfMessage,
    Header,
    InsertHeader,
    MailFrom,
    OptNeg,
    OptNegReply,
    Quarantine,
    Reply,
    ReplyCode,
    UnknownCommand,
    lookup_macro,
)
from mailseal.milter.protocol import (
    CHUNK_SIZE,
    POSTFIX_ACTIONS,
    POSTFIX_PROTOCOL,
    ActionFlag,
    CommandCode,
    ProtocolFlag,
    ResponseCode,
)
from tests.milter.strategies import commands, replies


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(min(c, len(data)) for c in cuts), len(data)]
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


# -- round trips and splits -----------------------------------------------------------


@given(commands)
def test_command_round_trip(cmd: Command) -> None:
    assert Decoder().feed(encode_command(cmd)) == [cmd]


@given(replies)
def test_reply_round_trip(reply: Reply) -> None:
    assert ReplyDecoder().feed(encode_reply(reply)) == [reply]


@given(st.lists(commands, max_size=12), st.lists(st.integers(0, 4000), max_size=10))
def test_any_split_of_commands_decodes_the_same(cmds: list[Command], cuts: list[int]) -> None:
    stream = b"".join(encode_command(c) for c in cmds)
    decoder = Decoder()
    got = [c for piece in split_at(stream, cuts) for c in decoder.feed(piece)]
    assert got == cmds
    assert decoder.buffered == 0


@given(st.lists(replies, max_size=12), st.lists(st.integers(0, 4000), max_size=10))
def test_any_split_of_replies_decodes_the_same(items: list[Reply], cuts: list[int]) -> None:
    stream = b"".join(encode_reply(r) for r in items)
    decoder = ReplyDecoder()
    assert [r for piece in split_at(stream, cuts) for r in decoder.feed(piece)] == items


def test_byte_by_byte_keeps_a_partial_packet_buffered() -> None:
    packet = encode_command(Header(b"Subject", b"hello"))
    decoder = Decoder()
    for byte in packet[:-1]:
        assert decoder.feed(bytes([byte])) == []
    assert decoder.buffered == len(packet) - 1
    assert decoder.feed(packet[-1:]) == [Header(b"Subject", b"hello")]


# -- hostile input: only MilterProtocolError ------------------------------------------


@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=6))
def test_random_bytes_raise_only_protocol_errors(data: bytes, cuts: list[int]) -> None:
    for decoder in (Decoder(max_packet=4096), ReplyDecoder(max_packet=4096)):
        try:
            for piece in split_at(data, cuts):
                decoder.feed(piece)
        except MilterProtocolError:
            pass


_CODES = [c.value for c in CommandCode] + [c.value for c in ResponseCode]


@given(st.lists(st.tuples(st.sampled_from(_CODES), st.binary(max_size=40)), max_size=8))
def test_well_framed_garbage_raises_only_protocol_errors(
    packets: list[tuple[bytes, bytes]],
) -> None:
    stream = b"".join(frame(code, payload) for code, payload in packets)
    for decoder in (Decoder(), ReplyDecoder()):
        try:
            decoder.feed(stream)
        except MilterProtocolError:
            pass


def _packet(code: bytes, payload: bytes) -> bytes:
    return frame(code, payload)


MALFORMED = {
    "length 0": b"\0\0\0\0",
    "optneg short": _packet(b"O", b"\0\0\0\x06\0\0\x01\xff"),
    "macro no stage": _packet(b"D", b""),
    "macro unpaired": _packet(b"D", b"Cj\0"),
    "macro unterminated": _packet(b"D", b"Cj\0mx"),
    "macro empty name": _packet(b"D", b"C\0value\0"),
    "connect no nul": _packet(b"C", b"host"),
    "connect no family": _packet(b"C", b"host\0"),
    "connect bad family": _packet(b"C", b"host\0X\0\x19127.0.0.1\0"),
    "connect U with data": _packet(b"C", b"host\0U\0\x19"),
    "connect no port": _packet(b"C", b"host\x004\0"),
    "connect address unterminated": _packet(b"C", b"host\x004\0\x19127.0.0.1"),
    "connect two addresses": _packet(b"C", b"host\x004\0\x19a\0b\0"),
    "helo unterminated": _packet(b"H", b"client"),
    "helo two strings": _packet(b"H", b"a\0b\0"),
    "mail empty": _packet(b"M", b""),
    "rcpt unterminated": _packet(b"R", b"<a@b>"),
    "data with payload": _packet(b"T", b"x"),
    "header one string": _packet(b"L", b"Subject\0"),
    "header three strings": _packet(b"L", b"Subject\0a\0b\0"),
    "header empty name": _packet(b"L", b"\0value\0"),
    "header unterminated": _packet(b"L", b"Subject\0value"),
    "eoh with payload": _packet(b"N", b"\0"),
    "abort with payload": _packet(b"A", b"x"),
    "quit with payload": _packet(b"Q", b"x"),
    "quit_nc with payload": _packet(b"K", b"x"),
    "unknown unterminated": _packet(b"U", b"FOO"),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_commands_raise_protocol_error(data: bytes) -> None:
    with pytest.raises(MilterProtocolError):
        Decoder().feed(data)


MALFORMED_REPLIES = {
    "continue with payload": _packet(b"c", b"x"),
    "accept with payload": _packet(b"a", b"\0"),
    "reply code not smtp": _packet(b"y", b"hello\0"),
    "reply code 2xx": _packet(b"y", b"250 2.0.0 ok\0"),
    "reply code bad continuation": _packet(b"y", b"451 4.7.1 a\r\n451 4.7.1 b\0"),
    "reply code bare lf": _packet(b"y", b"451-4.7.1 a\n451 4.7.1 b\0"),
    "add header one string": _packet(b"h", b"X\0"),
    "insert header no index": _packet(b"i", b"\0\0"),
    "change header empty name": _packet(b"m", b"\0\0\0\x01\0v\0"),
    "quarantine empty": _packet(b"q", b"\0"),
    "optneg reply short": _packet(b"O", b"\0\0\0\x06"),
    "optneg reply unknown stage": _packet(b"O", struct.pack("!IIII", 6, 1, 0, 9) + b"i\0"),
    "optneg reply list unterminated": _packet(b"O", struct.pack("!IIII", 6, 1, 0, 0) + b"j"),
    "optneg reply list stage cut": _packet(b"O", struct.pack("!III", 6, 1, 0) + b"\0\0"),
}


@pytest.mark.parametrize("data", MALFORMED_REPLIES.values(), ids=MALFORMED_REPLIES.keys())
def test_malformed_replies_raise_protocol_error(data: bytes) -> None:
    with pytest.raises(MilterProtocolError):
        ReplyDecoder().feed(data)


def test_packet_over_the_cap_fails_before_its_payload_arrives() -> None:
    decoder = Decoder(max_packet=100)
    with pytest.raises(MilterProtocolError, match="over the cap"):
        decoder.feed(struct.pack("!I", 101))


def test_a_broken_stream_stays_broken() -> None:
    decoder = Decoder()
    with pytest.raises(MilterProtocolError):
        decoder.feed(b"\0\0\0\0")
    with pytest.raises(MilterProtocolError, match="already broken"):
        decoder.feed(encode_command(EndOfHeaders()))


def test_a_full_body_chunk_fits_the_default_cap() -> None:
    # libmilter and Postfix: 65535 data bytes, so the length field says 65536.
    chunk = b"x" * CHUNK_SIZE
    packet = encode_command(Body(chunk))
    assert packet[:4] == struct.pack("!I", 65536)
    assert Decoder().feed(packet) == [Body(chunk)]


def test_a_header_larger_than_libmilter_allows_still_decodes() -> None:
    # Postfix sends a header of up to header_size_limit (102400) in one packet.
    value = b"x" * 102_000
    assert Decoder().feed(encode_command(Header(b"X-Big", value))) == [Header(b"X-Big", value)]


def test_unknown_code_is_a_value_not_an_error() -> None:
    assert Decoder().feed(frame(b"Z", b"payload")) == [UnknownCommand(b"Z", b"payload")]
    assert decode_command(b"\x01", b"") == UnknownCommand(b"\x01")


# -- exact bytes, as Postfix writes them ----------------------------------------------


def test_postfix_v6_optneg_bytes() -> None:
    # milter8_connect: version 6, actions 0x1FF, every protocol flag up to LEADSPC.
    data = bytes.fromhex("0000000d 4f 00000006 000001ff 001fffff")
    (cmd,) = Decoder().feed(data)
    assert cmd == OptNeg(6, POSTFIX_ACTIONS, POSTFIX_PROTOCOL[6])
    assert encode_command(cmd) == data


def test_postfix_connect_macros_and_events_bytes() -> None:
    stream = (
        frame(b"D", b"Cj\0mx.example.com\0{daemon_name}\0smtpd\0")
        + frame(b"C", b"[192.0.2.1]\x004\xd4\x31192.0.2.1\0")
        + frame(b"D", b"L")  # Postfix sends the (here empty) eoh list before each header
        + frame(b"L", b"Subject\0hello\n\tworld\0")
        + frame(b"M", b"<a@example.com>\0SIZE=100\0")
        + frame(b"E", b"")
    )
    assert Decoder().feed(stream) == [
        DefineMacros(b"C", {"j": "mx.example.com", "{daemon_name}": "smtpd"}),
        Connect("[192.0.2.1]", b"4", 54321, "192.0.2.1"),
        DefineMacros(b"L", {}),
        Header(b"Subject", b"hello\n\tworld"),
        MailFrom(("<a@example.com>", "SIZE=100")),
        EndOfMessage(),
    ]


def test_filter_reply_bytes() -> None:
    assert encode_reply(Continue()) == b"\0\0\0\x01c"
    assert encode_reply(ReplyCode(b"451 4.7.1 later")) == b"\0\0\0\x11y451 4.7.1 later\0"
    assert encode_reply(InsertHeader(0, b"X", b"v")) == b"\0\0\0\x09i\0\0\0\0X\0v\0"
    assert encode_reply(ChangeHeader(1, b"X", b"")) == b"\0\0\0\x08m\0\0\0\x01X\0\0"
    reply = OptNegReply(6, ActionFlag.ADD_HEADERS, ProtocolFlag.NR_HEADER, {b"N": ["i", "{x}"]})
    assert encode_reply(reply) == frame(b"O", struct.pack("!IIII", 6, 1, 0x80, 6) + b"i {x}\0")


def test_reply_text_may_come_without_its_nul() -> None:
    # libmilter sends the NUL; Postfix reads the payload raw and takes it either way.
    assert ReplyDecoder().feed(frame(b"y", b"550 5.7.1 no")) == [ReplyCode(b"550 5.7.1 no")]
    assert ReplyDecoder().feed(frame(b"q", b"held")) == [Quarantine(b"held")]


def test_macro_lists_split_like_postfix() -> None:
    payload = struct.pack("!IIII", 6, 0x100, 0, 0) + b"j, {daemon_name}\t{client_addr}\0"
    (reply,) = ReplyDecoder().feed(frame(b"O", payload))
    assert isinstance(reply, OptNegReply)
    assert reply.macros == {b"C": ["j", "{daemon_name}", "{client_addr}"]}


def test_modifications_then_final_reply() -> None:
    stream = b"".join(encode_reply(r) for r in (AddHeader(b"X-A", b"1"), Accept()))
    assert ReplyDecoder().feed(stream) == [AddHeader(b"X-A", b"1"), Accept()]


# -- values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Header(b"X", b"a\0b"), "NUL"),
        (lambda: Header(b"", b"v"), "empty"),
        (lambda: Connect("h", b"4"), "port"),
        (lambda: Connect("h", b"U", 25, "1.2.3.4"), "no port"),
        (lambda: Connect("h", b"X", 1, "a"), "family"),
        (lambda: Connect("h", b"4", 70000, "a"), "port"),
        (lambda: MailFrom(()), "address"),
        (lambda: InsertHeader(-1, b"X", b"v"), "32 bits"),
        (lambda: ReplyCode(b"250 ok"), "SMTP reply"),
        (lambda: DefineMacros(b"CC", {}), "one byte"),
        (lambda: OptNegReply(6, ActionFlag(0), ProtocolFlag(0), {b"Z": ["i"]}), "stage"),
        (lambda: OptNegReply(6, ActionFlag(0), ProtocolFlag(0), {b"C": ["a b"]}), "separators"),
        (lambda: Quarantine(b""), "empty"),
    ],
)
def test_values_the_protocol_cannot_carry_are_refused(make: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()  # type: ignore[operator]


def test_empty_macro_list_mapping_is_none() -> None:
    assert OptNegReply(6, ActionFlag(1), ProtocolFlag(0), {}).macros is None


def test_macro_lookup_takes_either_spelling() -> None:
    macros = DefineMacros(b"M", {"{auth_type}": "PLAIN", "i": "4F2A", "auth_authen": "bob"})
    assert macros.get("auth_type") == "PLAIN"
    assert macros.get("{auth_type}") == "PLAIN"
    assert macros.get("{i}") == "4F2A"
    assert lookup_macro(macros.macros, "{auth_authen}") == "bob"
    assert macros.get("{mail_addr}") is None


# -- sans-IO --------------------------------------------------------------------------

SANS_IO = ["protocol.py", "messages.py", "codec.py", "negotiation.py", "sockets.py"]


@pytest.mark.parametrize("name", SANS_IO)
def test_protocol_modules_do_no_io(name: str) -> None:
    path = Path(__file__).resolve().parents[2] / "mailseal" / "milter" / name
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"asyncio", "socket", "selectors", "time", "threading"}


def test_public_api_resolves() -> None:
    import mailseal.milter as package
    from mailseal.milter import codec

    for name in codec.__all__:
        assert getattr(codec, name) is getattr(package, name), name
