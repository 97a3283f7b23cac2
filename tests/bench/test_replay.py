"""The bench's replay loop against a scripted milter on loopback.

A small threaded milter answers each command as a test says (Continue by default)
and keeps every byte it reads. The replayed byte stream must equal what the real
client (:class:`PostfixStreamClient`, which writes as Postfix does) sends for the
same messages, and every other answer (SKIP, a reject, a tempfail at CONNECT,
progress, garbage, silence, a closed socket) must end up as MilterClient would
have it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from mailseal.bench.corpus import Mode
from mailseal.bench.load import Bench, BenchOptions, BenchRun
from mailseal.bench.stream import PostfixStreamClient
from mailseal.milter.codec import Decoder, encode_reply
from mailseal.milter.messages import (
    Abort,
    AddHeader,
    Body,
    Command,
    Connect,
    Continue,
    EndOfMessage,
    Header,
    OptNeg,
    OptNegReply,
    Progress,
    Quit,
    RcptTo,
    Reject,
    Reply,
    Skip,
    Tempfail,
)
from mailseal.milter.protocol import ActionFlag, ProtocolFlag

#: What a behaviour returns: replies to send, or CLOSE / SILENT.
CLOSE = "close"
SILENT = "silent"
Behaviour = Callable[[Command, "Seen"], "list[Reply] | bytes | str"]
NO_REPLY_TO = (OptNeg,)  # answered by the server itself


@dataclass
class Seen:
    """What one connection of the fake milter read."""

    raw: bytearray = field(default_factory=bytearray)
    commands: list[Command] = field(default_factory=list)


class FakeMilter:
    """A milter on 127.0.0.1 that answers with ``behaviour`` (threads, bounded)."""

    def __init__(self, behaviour: Behaviour, protocol: ProtocolFlag, version: int) -> None:
        self.behaviour = behaviour
        self.protocol, self.version = protocol, version
        self.conns: list[Seen] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.spec = f"inet:{self.listener.getsockname()[1]}@127.0.0.1"
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            seen = Seen()
            self.conns.append(seen)
            t = threading.Thread(target=self._serve, args=(sock, seen), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, sock: socket.socket, seen: Seen) -> None:
        decoder = Decoder()
        sock.settimeout(0.2)
        with sock:
            while not self.stopping.is_set():
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                seen.raw += data
                for cmd in decoder.feed(data):
                    seen.commands.append(cmd)
                    if isinstance(cmd, OptNeg):
                        reply = OptNegReply(self.version, ActionFlag(0x1FF), self.protocol)
                        sock.sendall(encode_reply(reply))
                        continue
                    if isinstance(cmd, Quit):
                        return
                    answer = self.behaviour(cmd, seen)
                    if answer == CLOSE:
                        return
                    if isinstance(answer, bytes):
                        sock.sendall(answer)
                    elif isinstance(answer, list):
                        sock.sendall(b"".join(encode_reply(r) for r in answer))

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()
        self.acceptor.join(5)
        for t in self.threads:
            t.join(5)


def continue_all(cmd: Command, seen: Seen) -> list[Reply]:
    """Answer as a milter that only ever says Continue (no reply where none is due)."""
    if isinstance(cmd, Abort) or type(cmd).__name__ == "DefineMacros":
        return []
    return [Continue()]


@pytest.fixture
def milter() -> Iterator[Callable[..., FakeMilter]]:
    started: list[FakeMilter] = []

    def start(
        behaviour: Behaviour = continue_all,
        protocol: ProtocolFlag = ProtocolFlag.NONE,
        version: int = 6,
    ) -> FakeMilter:
        m = FakeMilter(behaviour, protocol, version)
        started.append(m)
        return m

    yield start
    for m in started:
        m.stop()


def replay(spec: str, *, messages: int = 3, size: str = "2k", protocol: int = 6,
           timeout: float = 10.0) -> BenchRun:  # fmt: skip
    opts = BenchOptions(
        socket=spec, messages=messages, concurrency=1, size=size, protocol=protocol,
        timeout=timeout,
    )  # fmt: skip
    return Bench(opts).run()


def by_hand(spec: str, *, messages: int, size: str, protocol: int) -> None:
    """What the asyncio client sends for the same messages on one connection."""
    bench = Bench(BenchOptions(socket=spec, messages=messages, size=size, protocol=protocol))

    async def go() -> None:
        client = PostfixStreamClient()
        await client.connect(spec)
        await client.negotiate(protocol)
        for i in range(messages):
            msg = bench.corpus[i]
            await client.send_message(
                connect=bench.connect,
                mail_from=f"<{bench.opts.from_address}>",
                rcpts=("<receiver@example.net>",),
                headers=msg.headers,
                body=msg.body,
            )
        await client.quit()

    asyncio.run(go())


FLAG_SETS = [
    (2, ProtocolFlag.NONE),
    (6, ProtocolFlag.NONE),
    (6, ProtocolFlag.NR_HEADER | ProtocolFlag.NR_EOH | ProtocolFlag.NO_RCPT),
    (6, ProtocolFlag.HEADER_LEADING_SPACE | ProtocolFlag.NR_BODY | ProtocolFlag.NR_CONNECT
        | ProtocolFlag.NR_HELO | ProtocolFlag.NR_MAIL | ProtocolFlag.NR_RCPT),
]  # fmt: skip


def _wait_for(cond: Callable[[], bool]) -> None:
    for _ in range(100):
        if cond():
            return
        threading.Event().wait(0.05)
    raise AssertionError("the fake milter did not see it")


def _replying_to(flags: ProtocolFlag) -> Behaviour:
    """Continue where a reply is due under ``flags``, nothing where it is not."""
    no_reply = {
        "Connect": ProtocolFlag.NR_CONNECT, "Helo": ProtocolFlag.NR_HELO,
        "MailFrom": ProtocolFlag.NR_MAIL, "RcptTo": ProtocolFlag.NR_RCPT,
        "Header": ProtocolFlag.NR_HEADER, "EndOfHeaders": ProtocolFlag.NR_EOH,
        "Body": ProtocolFlag.NR_BODY, "Data": ProtocolFlag.NR_DATA,
    }  # fmt: skip

    def behaviour(cmd: Command, seen: Seen) -> list[Reply]:
        name = type(cmd).__name__
        if name in ("Abort", "DefineMacros") or (name in no_reply and no_reply[name] & flags):
            return []
        return [Continue()]

    return behaviour


@pytest.mark.parametrize(("version", "flags"), FLAG_SETS)
@pytest.mark.parametrize("size", ["2k", "200k"])
def test_replay_writes_what_the_client_writes(
    milter: Callable[..., FakeMilter], version: int, flags: ProtocolFlag, size: str
) -> None:
    m = milter(_replying_to(flags), flags, version)
    by_hand(m.spec, messages=3, size=size, protocol=version)
    run = replay(m.spec, messages=3, size=size, protocol=version)
    _wait_for(lambda: len(m.conns) == 2 and all(isinstance(s.commands[-1], Quit) for s in m.conns))
    client, replayed = m.conns
    assert [o.error for o in run.outcomes] == [None] * 3
    assert bytes(replayed.raw) == bytes(client.raw)
    assert sum(isinstance(c, EndOfMessage) for c in replayed.commands) == 3
    assert b"QUEUE-ID" not in replayed.raw  # the placeholder was filled in


def test_skip_drops_the_rest_of_the_body(milter: Callable[..., FakeMilter]) -> None:
    def skip_body(cmd: Command, seen: Seen) -> list[Reply]:
        if isinstance(cmd, Body):
            return [Skip()]
        return continue_all(cmd, seen)

    m = milter(skip_body)
    run = replay(m.spec, messages=2, size="200k")
    _wait_for(lambda: len(m.conns) == 1 and isinstance(m.conns[0].commands[-1], Quit))
    bodies = [c for c in m.conns[0].commands if isinstance(c, Body)]
    assert len(bodies) == 2  # one chunk per message out of four
    assert [o.result.body_skipped for o in run.outcomes if o.result] == [True, True]
    assert all(isinstance(o.result.reply, Continue) for o in run.outcomes if o.result)


def test_a_rejected_recipient_ends_the_message_not_the_connection(
    milter: Callable[..., FakeMilter],
) -> None:
    def reject_rcpt(cmd: Command, seen: Seen) -> list[Reply]:
        return [Reject()] if isinstance(cmd, RcptTo) else continue_all(cmd, seen)

    m = milter(reject_rcpt)
    run = replay(m.spec, messages=3)
    _wait_for(lambda: len(m.conns) == 1 and isinstance(m.conns[0].commands[-1], Quit))
    assert [(o.result.stage, o.result.reply) for o in run.outcomes if o.result] == [
        (b"R", Reject())
    ] * 3
    assert sum(isinstance(c, Abort) for c in m.conns[0].commands) == 3
    assert not any(isinstance(c, Header) for c in m.conns[0].commands)


def test_tempfail_at_connect_starts_a_new_session(milter: Callable[..., FakeMilter]) -> None:
    def tempfail_connect(cmd: Command, seen: Seen) -> list[Reply]:
        return [Tempfail()] if isinstance(cmd, Connect) else continue_all(cmd, seen)

    m = milter(tempfail_connect)
    run = replay(m.spec, messages=3)
    _wait_for(lambda: len(m.conns) == 3)
    assert [o.result.stage for o in run.outcomes if o.result] == [b"C"] * 3
    for seen in m.conns:  # each connection: O, macros, CONNECT, then QUIT
        _wait_for(lambda s=seen: bool(s.commands) and isinstance(s.commands[-1], Quit))


def test_progress_and_modifications_at_end_of_message(milter: Callable[..., FakeMilter]) -> None:
    def eom(cmd: Command, seen: Seen) -> list[Reply]:
        if isinstance(cmd, EndOfMessage):
            return [Progress(), AddHeader(b"X-Test", b"yes"), Progress(), Continue()]
        return continue_all(cmd, seen)

    m = milter(eom)
    run = replay(m.spec, messages=2)
    results = [o.result for o in run.outcomes]
    assert all(r is not None for r in results)
    assert [r.modifications for r in results if r] == [(AddHeader(b"X-Test", b"yes"),)] * 2


def test_unexpected_reply_is_a_protocol_error_and_the_next_message_reconnects(
    milter: Callable[..., FakeMilter],
) -> None:
    once = threading.Event()

    def odd_mail(cmd: Command, seen: Seen) -> list[Reply]:
        if type(cmd).__name__ == "MailFrom" and not once.is_set():
            once.set()
            return [AddHeader(b"X-Early", b"1")]  # not an answer to MAIL FROM
        return continue_all(cmd, seen)

    m = milter(odd_mail)
    run = replay(m.spec, messages=2)
    assert [o.error for o in run.outcomes] == ["protocol error", None]
    assert len(m.conns) == 2


def test_malformed_packet_is_a_protocol_error(milter: Callable[..., FakeMilter]) -> None:
    def broken(cmd: Command, seen: Seen) -> list[Reply] | bytes:
        if isinstance(cmd, Connect):
            return b"\x00\x00\x00\x00"  # a packet of length 0
        return continue_all(cmd, seen)

    m = milter(broken)
    run = replay(m.spec, messages=2)
    assert [o.error for o in run.outcomes] == ["protocol error"] * 2


def test_silence_times_out(milter: Callable[..., FakeMilter]) -> None:
    def silent_eom(cmd: Command, seen: Seen) -> list[Reply] | str:
        return SILENT if isinstance(cmd, EndOfMessage) else continue_all(cmd, seen)

    m = milter(silent_eom)
    run = replay(m.spec, messages=2, timeout=0.5)
    assert [o.error for o in run.outcomes] == ["timeout", "timeout"]
    assert all(0.5 <= o.latency < 5 for o in run.outcomes)


def test_a_closed_connection_is_lost_and_replaced(milter: Callable[..., FakeMilter]) -> None:
    once = threading.Event()

    def close_once(cmd: Command, seen: Seen) -> list[Reply] | str:
        if isinstance(cmd, Header) and not once.is_set():
            once.set()
            return CLOSE
        return continue_all(cmd, seen)

    m = milter(close_once)
    run = replay(m.spec, messages=3)
    assert [o.error for o in run.outcomes] == ["connection lost", None, None]
    assert len(m.conns) == 2


def test_no_milter_there_counts_every_message() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from mailseal.bench.load import BenchError

    with pytest.raises(BenchError, match="cannot open a milter connection"):
        replay(f"inet:{port}@127.0.0.1")


def test_verify_mode_connects_from_outside(milter: Callable[..., FakeMilter]) -> None:
    from mailseal.dkim.keys import KeyType, generate_key

    m = milter()
    opts = BenchOptions(
        socket=m.spec, messages=2, concurrency=1, mode=Mode.VERIFY,
        key=generate_key(KeyType.ED25519), selector="mail",
    )  # fmt: skip
    run = Bench(opts).run()
    assert [o.error for o in run.outcomes] == [None, None]
    connects = [c for c in m.conns[0].commands if isinstance(c, Connect)]
    assert [c.address for c in connects] == ["198.51.100.25"]
    headers = [c for c in m.conns[0].commands if isinstance(c, Header)]
    assert headers[0].name == b"DKIM-Signature"


def test_many_connections_failing_now_and_then_account_for_every_message(
    milter: Callable[..., FakeMilter],
) -> None:
    lock = threading.Lock()
    seen_headers = [0]

    def flaky(cmd: Command, seen: Seen) -> list[Reply] | str:
        if isinstance(cmd, Header):
            with lock:
                seen_headers[0] += 1
                if seen_headers[0] % 23 == 0:
                    return CLOSE
        return continue_all(cmd, seen)

    m = milter(flaky)
    opts = BenchOptions(socket=m.spec, messages=60, concurrency=4, protocol=6, timeout=10.0)
    run = Bench(opts).run()
    assert sorted(o.index for o in run.outcomes) == list(range(60))
    lost = [o for o in run.outcomes if o.error == "connection lost"]
    assert lost and all(o.result is None for o in lost)
    assert all(o.result is not None for o in run.outcomes if o.error is None)
    # each loss opens a new connection, unless no message was left for it
    assert len(lost) <= len(m.conns) <= 4 + len(lost)
