"""The MTA-side client against a tiny in-test filter on 127.0.0.1.

The filter is built from the codec (Decoder, negotiate, encode_reply), records every
command it receives and answers per the negotiated flags. Every test runs under an
overall time limit and stops its server itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from mailseal.milter.client import MilterClient, headers_and_body
from mailseal.milter.codec import Decoder, encode_reply, negotiate
from mailseal.milter.messages import (
    Abort,
    AddHeader,
    Body,
    Command,
    Connect,
    Continue,
    DefineMacros,
    EndOfHeaders,
    EndOfMessage,
    Header,
    Helo,
    InsertHeader,
    MailFrom,
    OptNeg,
    Quit,
    RcptTo,
    Reject,
    Reply,
    Skip,
)
from mailseal.milter.negotiation import DEFAULT_ACTIONS, DEFAULT_PROTOCOL
from mailseal.milter.protocol import CHUNK_SIZE, ProtocolFlag

LIMIT = 20.0  # seconds for a whole test


@dataclass
class EchoFilter:
    """Answers like a milter; adds two header fields at end of message."""

    protocol: ProtocolFlag = DEFAULT_PROTOCOL
    macros: Mapping[bytes, Sequence[str]] | None = None
    script: dict[type, Reply] = field(default_factory=dict)  # reply per command class
    silent: bool = False  # never answer anything (for timeouts)
    received: list[Command] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder, agreed = Decoder(), None
        try:
            while data := await asyncio.wait_for(reader.read(65536), LIMIT):
                out: list[Reply] = []
                for cmd in decoder.feed(data):
                    self.received.append(cmd)
                    if self.silent:
                        continue
                    if isinstance(cmd, OptNeg):
                        reply, agreed = negotiate(cmd, DEFAULT_ACTIONS, self.protocol, self.macros)
                        out.append(reply)
                    elif isinstance(cmd, EndOfMessage):
                        out += [
                            AddHeader(b"X-Echo", b"seen"),
                            InsertHeader(0, b"X-Top", b" first\n\tsecond"),
                            self.script.get(EndOfMessage, Continue()),
                        ]
                    elif agreed is not None and agreed.needs_reply(cmd):
                        out.append(self.script.get(type(cmd), Continue()))
                writer.write(b"".join(encode_reply(r) for r in out))
                await writer.drain()
        except (ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()

    def of(self, kind: type) -> list[Command]:
        return [c for c in self.received if isinstance(c, kind)]

    def macros_for(self, stage: bytes) -> list[dict[str, str]]:
        return [c.macros for c in self.received if isinstance(c, DefineMacros) and c.stage == stage]


@asynccontextmanager
async def running(filt: EchoFilter) -> AsyncIterator[str]:
    server = await asyncio.start_server(filt.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"inet:{port}@127.0.0.1"
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), LIMIT)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(LIMIT):
            await scenario()

    asyncio.run(bounded())


HEADERS = [(b"Subject", b" hello"), (b"From", b" Alice <a@example.com>,\r\n\tBob <b@example.com>")]


def test_version_6_message_as_postfix_sends_it() -> None:
    filt = EchoFilter(macros={b"C": ["j", "{client_addr}"]})
    body = b"line\r\n" * 20_000  # 120000 bytes: two chunks

    async def scenario() -> None:
        async with running(filt) as spec, MilterClient(timeout=5) as client:
            await client.connect(spec)
            reply = await client.negotiate(version=6)
            assert reply.protocol == DEFAULT_PROTOCOL
            result = await client.send_message(headers=HEADERS, body=body)
            assert isinstance(result.reply, Continue) and result.stage == b"E"
            assert result.added_headers == [AddHeader(b"X-Echo", b"seen")]
            assert result.inserted_headers == [InsertHeader(0, b"X-Top", b" first\n\tsecond")]
            assert result.accepted and not result.body_skipped
            await client.quit()

    run(scenario)
    kinds = [type(c) for c in filt.received if not isinstance(c, DefineMacros)]
    # HELO, RCPT and DATA were switched off: their macros still came, the events did not.
    assert kinds == [
        OptNeg,
        Connect,
        MailFrom,
        Header,
        Header,
        EndOfHeaders,
        Body,
        Body,
        EndOfMessage,
        Abort,
        Quit,
    ]
    stages = [c.stage for c in filt.received if isinstance(c, DefineMacros)]
    assert stages == [b"C", b"H", b"M", b"R", b"T", b"L", b"L", b"N", b"B", b"B", b"E"]
    # Exact header bytes (HDR_LEADSPC), folds as bare LF.
    assert filt.of(Header) == [
        Header(b"Subject", b" hello"),
        Header(b"From", b" Alice <a@example.com>,\n\tBob <b@example.com>"),
    ]
    chunks = [c.chunk for c in filt.of(Body) if isinstance(c, Body)]
    assert [len(c) for c in chunks] == [CHUNK_SIZE, len(body) - CHUNK_SIZE]
    assert b"".join(chunks) == body
    assert filt.of(EndOfMessage) == [EndOfMessage(b"")]
    # The filter's list for CONNECT replaced Postfix's; MAIL kept Postfix's default list.
    assert filt.macros_for(b"C") == [{"j": "localhost", "{client_addr}": "127.0.0.1"}]
    (mail_macros,) = filt.macros_for(b"M")
    assert set(mail_macros) == {"i", "{mail_addr}"}
    assert mail_macros["{mail_addr}"] == "sender@example.com"


def test_version_2_strips_the_space_and_leaves_out_data() -> None:
    filt = EchoFilter()

    async def scenario() -> None:
        async with running(filt) as spec, MilterClient(timeout=5) as client:
            await client.connect(spec)
            reply = await client.negotiate(version=2)
            assert reply.version == 2 and reply.protocol == ProtocolFlag(0x0A)  # NOHELO|NORCPT
            result = await client.send_message(headers=HEADERS, body=b"hi\r\n")
            assert isinstance(result.reply, Continue)
            await client.quit()

    run(scenario)
    assert filt.of(Header) == [
        Header(b"Subject", b"hello"),
        Header(b"From", b"Alice <a@example.com>,\n\tBob <b@example.com>"),
    ]
    # DATA does not exist in protocol 2: neither the event nor its macros are sent.
    assert filt.macros_for(b"T") == []
    assert filt.of(Helo) == [] and filt.macros_for(b"H") != []


def test_several_messages_on_one_connection() -> None:
    filt = EchoFilter()

    async def scenario() -> None:
        async with running(filt) as spec, MilterClient(timeout=5) as client:
            await client.connect(spec)
            await client.negotiate()
            for n in range(3):
                result = await client.send_message(headers=[(b"Subject", f" {n}".encode())])
                assert isinstance(result.reply, Continue)
            await client.new_smtp_session()
            await client.send_message(headers=[(b"Subject", b" again")])
            await client.quit()

    run(scenario)
    assert len(filt.of(Connect)) == 2  # once per SMTP session
    assert len(filt.of(EndOfMessage)) == 4 and len(filt.of(Abort)) == 4
    queue_ids = [m["i"] for m in filt.macros_for(b"M")]
    assert len(set(queue_ids)) == 4


def test_a_final_reply_before_end_of_message_ends_the_message() -> None:
    filt = EchoFilter(script={EndOfHeaders: Reject()})

    async def scenario() -> None:
        async with running(filt) as spec, MilterClient(timeout=5) as client:
            await client.connect(spec)
            await client.negotiate()
            result = await client.send_message(headers=HEADERS, body=b"body\r\n")
            assert isinstance(result.reply, Reject) and result.stage == b"N"
            assert not result.accepted
            await client.quit()

    run(scenario)
    assert filt.of(Body) == [] and filt.of(EndOfMessage) == []
    assert len(filt.of(Abort)) == 1


def test_skip_stops_the_body_but_not_the_end() -> None:
    protocol = ProtocolFlag.NR_HEADER | ProtocolFlag.SKIP | ProtocolFlag.HEADER_LEADING_SPACE
    filt = EchoFilter(protocol=protocol, script={Body: Skip()})

    async def scenario() -> None:
        async with running(filt) as spec, MilterClient(timeout=5) as client:
            await client.connect(spec)
            await client.negotiate()
            result = await client.send_message(body=b"x" * (3 * CHUNK_SIZE))
            assert result.body_skipped and isinstance(result.reply, Continue)
            await client.quit()

    run(scenario)
    assert len(filt.of(Body)) == 1
    assert len(filt.of(EndOfMessage)) == 1
    assert filt.of(RcptTo) and filt.of(Helo)  # this filter did not switch them off


def test_every_read_is_bounded() -> None:
    filt = EchoFilter(silent=True)

    async def scenario() -> None:
        async with running(filt) as spec, MilterClient(timeout=0.2) as client:
            await client.connect(spec)
            with pytest.raises(TimeoutError):
                await client.negotiate()

    run(scenario)


def test_refuses_a_message_after_the_filter_ended_the_session() -> None:
    filt = EchoFilter(protocol=ProtocolFlag.NONE, script={Connect: Reject()})

    async def scenario() -> None:
        async with running(filt) as spec, MilterClient(timeout=5) as client:
            await client.connect(spec)
            await client.negotiate()
            result = await client.send_message()
            assert isinstance(result.reply, Reject) and result.stage == b"C"
            with pytest.raises(RuntimeError):
                await client.send_message()

    run(scenario)


def test_headers_and_body_of_a_raw_message() -> None:
    raw = b"Subject: hi\nFrom: a@b\n\tc\n\nbody\n"
    headers, body = headers_and_body(raw)
    assert headers == [(b"Subject", b" hi"), (b"From", b" a@b\r\n\tc")]
    assert body == b"body\r\n"
    assert headers_and_body(b"\r\nonly body") == ([], b"only body")
    assert headers_and_body(b"X: y") == ([(b"X", b" y")], b"")


def test_usage_errors() -> None:
    async def scenario() -> None:
        client = MilterClient(timeout=1)
        with pytest.raises(ValueError, match="no milter protocol 5"):
            await client.negotiate(version=5)
        with pytest.raises(RuntimeError, match="negotiate"):
            await client.send_message()

    run(scenario)
