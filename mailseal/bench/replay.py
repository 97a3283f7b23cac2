"""The load generator's hot loop: recorded messages replayed over non-blocking sockets.

Driving :class:`~mailseal.milter.client.MilterClient` through asyncio costs the
client about 0.5 ms of CPU per 2 KB message with protocol 2 (a dozen round trips,
each an event-loop turn): as much as the milter it measures, on the cores it shares
with it. So the bytes are worked out before the clock starts and the run only moves
them.

**Recording** (``record.py``). Each message of the corpus is recorded once (per
negotiated options, and once more as the first of an SMTP session, with CONNECT and
HELO): the bytes Postfix writes at once and the event whose reply it then waits for.

**Replay.** One ``epoll`` loop over every connection: write a segment, read its
reply, write the next. Any other answer is handled as ``MilterClient`` handles it:
SKIP drops the rest of that kind of event, a final reply ends the message (and the
SMTP session, at CONNECT or HELO), progress resets the timeout, anything else is a
protocol error. Replies are kept as bytes and decoded after the clock stops.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from mailseal.bench.record import ABORT, Recorder, Script
from mailseal.errors import MilterProtocolError
from mailseal.milter.client import READ_SIZE, MilterClient
from mailseal.milter.codec import ReplyDecoder, encode_command, encode_reply
from mailseal.milter.messages import (
    Connect,
    Continue,
    OptNegReply,
    Quit,
    Reply,
)
from mailseal.milter.sockets import SocketFamily, parse_socket_spec

QUIT: Final = encode_command(Quit())
CONTINUE: Final = encode_reply(Continue())
#: Reply codes that end an event (MilterClient's FINAL_REPLIES, Skip apart).
_ENDS: Final = frozenset(b"artdy")
#: Reply codes that end the end of message.
_EOM_ENDS: Final = frozenset(b"cartdy")
#: Largest reply packet accepted (as the codec's default).
MAX_REPLY: Final = 64 * 1024 * 1024
#: How often waits are checked against the timeout, in seconds.
_TICK: Final = 0.25


def open_milter(spec: str, version: int, timeout: float) -> tuple[socket.socket, MilterClient]:
    """Connect and negotiate as Postfix does (blocking, bounded); the socket comes back
    non-blocking, with Nagle's algorithm on as Postfix leaves it."""
    family, address = parse_socket_spec(spec)
    sock: socket.socket
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
    else:
        host, port = address
        host = host or ("::1" if family is SocketFamily.INET6 else "127.0.0.1")
        sock = socket.create_connection((host, port), timeout=timeout)
    try:
        client = MilterClient(timeout=timeout)
        offer = client.offer(version)
        sock.sendall(encode_command(offer))
        decoder = ReplyDecoder()
        replies: list[Reply] = []
        while not replies:
            data = sock.recv(READ_SIZE)
            if not data:
                raise ConnectionError("the milter closed the connection")
            replies = decoder.feed(data)
        if not isinstance(replies[0], OptNegReply) or len(replies) > 1:
            raise MilterProtocolError(f"expected the O reply to our O, got {replies!r}")
        client.accept(offer, replies[0])
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock, client


@dataclass(slots=True)
class Done:
    """One message's end: the reply packets (raw) or the error kind."""

    index: int
    stage: bytes  # event that got the final reply
    packets: tuple[bytes, ...]
    body_skipped: bool
    leading_space: bool
    latency: float
    error: str | None = None


class _Conn:
    __slots__ = (
        "body_skipped",
        "client",
        "deadline",
        "eom",
        "fd",
        "first",
        "inbuf",
        "index",
        "key",
        "out",
        "pos",
        "prefix",
        "queue_id",
        "script",
        "sock",
        "t0",
    )

    def __init__(self, sock: socket.socket, client: MilterClient) -> None:
        self.sock: socket.socket | None = sock
        self.client = client
        self.fd = sock.fileno()
        self.key = encode_reply(client.reply) if client.reply is not None else b""
        self.first = True
        self.prefix = b""  # ABORT of the message before, sent with the next write
        self.script: Script = ()
        self.pos = 0
        self.index = -1
        self.queue_id = b""
        self.t0 = 0.0
        self.deadline = 0.0
        self.inbuf = bytearray()
        self.out = bytearray()
        self.eom: list[bytes] = []
        self.body_skipped = False


class _Failed(Exception):
    """This connection is done for: the message gets ``kind`` as its error."""

    def __init__(self, kind: str) -> None:
        self.kind = kind


class _Poller:
    """epoll where there is one, poll elsewhere: register, modify, unregister, poll."""

    def __init__(self) -> None:
        if hasattr(select, "epoll"):
            self._p: Any = select.epoll()
            self.IN, self.OUT = select.EPOLLIN, select.EPOLLOUT
            self._scale = 1.0
        else:  # pragma: no cover - not Linux
            self._p = select.poll()
            self.IN, self.OUT = select.POLLIN, select.POLLOUT
            self._scale = 1000.0

    def register(self, fd: int, mask: int) -> None:
        self._p.register(fd, mask)

    def modify(self, fd: int, mask: int) -> None:
        self._p.modify(fd, mask)

    def unregister(self, fd: int) -> None:
        try:
            self._p.unregister(fd)
        except (OSError, KeyError, ValueError):
            pass

    def poll(self, timeout: float) -> list[tuple[int, int]]:
        return list(self._p.poll(timeout * self._scale))

    def close(self) -> None:
        if hasattr(self._p, "close"):
            self._p.close()


class Replayer:
    """Sends ``messages`` messages over the connections given, each reused."""

    def __init__(
        self,
        *,
        spec: str,
        version: int,
        timeout: float,
        messages: int,
        message: Callable[[int], Any],  # index -> BenchMessage
        connect: Connect,
        mail_from: str,
        rcpts: Sequence[str],
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.spec, self.version, self.timeout = spec, version, timeout
        self.messages = messages
        self.message = message
        self.connect, self.mail_from, self.rcpts = connect, mail_from, tuple(rcpts)
        self.progress = progress
        self.done: list[Done] = []
        self._next = 0
        self._scripts: dict[tuple[int, bool, bytes], Script] = {}
        self._recorders: dict[bytes, Recorder] = {}
        self._held: list[Any] = []  # messages whose id() keys a script
        self._conns: dict[int, _Conn] = {}
        self._poller = _Poller()
        self.end = 0.0  # perf_counter of the last final reply

    # -- scripts ---------------------------------------------------------------------

    def script(self, conn: _Conn, msg: Any) -> Script:
        key = (id(msg), conn.first, conn.key)
        found = self._scripts.get(key)
        if found is None:
            recorder = self._recorders.get(conn.key)
            if recorder is None:
                assert conn.client.reply is not None  # open_milter negotiated
                recorder = Recorder(self.version, conn.client.reply)
                self._recorders[conn.key] = recorder
            found = self._scripts[key] = recorder.record(
                first=conn.first,
                connect=self.connect,
                mail_from=self.mail_from,
                rcpts=self.rcpts,
                headers=msg.headers,
                body=msg.body,
            )
            self._held.append(msg)
        return found

    def prepare(self, conns: Sequence[tuple[socket.socket, MilterClient]]) -> None:
        """Take the open connections and record every message before the clock starts."""
        for sock, client in conns:
            conn = _Conn(sock, client)
            self._conns[conn.fd] = conn
            self._poller.register(conn.fd, self._poller.IN)
        seen: set[int] = set()
        for i in range(min(self.messages, 20_000)):  # the corpus repeats well before
            msg = self.message(i)
            if id(msg) in seen:
                continue
            seen.add(id(msg))
            for conn in {c.key: c for c in self._conns.values()}.values():
                for first in (True, False):
                    conn.first = first
                    self.script(conn, msg)
                conn.first = True

    # -- the loop --------------------------------------------------------------------

    def run(self) -> None:
        poller = self._poller
        for first in list(self._conns.values()):
            self._guarded(first, self._start_next)
        next_tick = time.perf_counter() + _TICK
        while self._conns:
            for fd, events in poller.poll(_TICK):
                conn = self._conns.get(fd)
                if conn is None:
                    continue
                if events & poller.OUT:
                    self._guarded(conn, self._write_more)
                if events & ~poller.OUT and conn.sock is not None and conn.fd == fd:
                    self._guarded(conn, self._readable)
            now = time.perf_counter()
            if now >= next_tick:
                next_tick = now + _TICK
                for conn in list(self._conns.values()):
                    if conn.script and now > conn.deadline:
                        self._guarded(conn, self._time_out)
        poller.close()

    def _guarded(self, conn: _Conn, step: Callable[[_Conn], None]) -> None:
        try:
            step(conn)
        except _Failed as failed:
            self._fail(conn, failed.kind)
        except OSError:
            self._fail(conn, "connection lost")

    def _time_out(self, conn: _Conn) -> None:
        raise _Failed("timeout")

    def _fail(self, conn: _Conn, kind: str) -> None:
        if conn.script:
            self._finish(conn, b"", (), kind)
        self._drop(conn)
        self._reopen(conn)

    def _reopen(self, conn: _Conn) -> None:
        """The next message on a new connection (a new SMTP session); a connection that
        cannot be opened, or fails at once, costs that message."""
        conn.first = True
        while conn.sock is None:
            index = self._take()
            if index is None:
                return
            try:
                sock, client = open_milter(self.spec, self.version, self.timeout)
            except (OSError, MilterProtocolError, ValueError) as exc:
                self._record(Done(index, b"", (), False, False, 0.0, _kind(exc)))
                continue
            conn.sock, conn.client, conn.fd = sock, client, sock.fileno()
            conn.key = encode_reply(client.reply) if client.reply is not None else b""
            conn.inbuf.clear()
            conn.out.clear()
            self._conns[conn.fd] = conn
            self._poller.register(conn.fd, self._poller.IN)
            try:
                self._begin(conn, index)
            except (OSError, _Failed) as exc:
                self._finish(conn, b"", (), exc.kind if isinstance(exc, _Failed) else _kind(exc))
                self._drop(conn)

    def _drop(self, conn: _Conn) -> None:
        sock, conn.sock = conn.sock, None
        conn.script = ()
        conn.prefix = b""
        if sock is not None:
            self._poller.unregister(conn.fd)
            self._conns.pop(conn.fd, None)
            sock.close()

    def _take(self) -> int | None:
        if self._next >= self.messages:
            return None
        self._next += 1
        return self._next - 1

    def _start_next(self, conn: _Conn) -> None:
        index = self._take()
        if index is None:  # no more messages: QUIT, as at the end of a Postfix session
            if conn.sock is not None:
                try:
                    conn.sock.send(conn.prefix + QUIT)
                except OSError:
                    pass
            self._drop(conn)
            return
        if conn.sock is None:
            self._next -= 1
            self._reopen(conn)
            return
        self._begin(conn, index)

    def _begin(self, conn: _Conn, index: int) -> None:
        conn.script = self.script(conn, self.message(index))
        conn.index = index
        conn.queue_id = f"{index + 1:010X}".encode("ascii")
        conn.pos = 0
        conn.eom = []
        conn.body_skipped = False
        conn.t0 = time.perf_counter()
        conn.deadline = conn.t0 + self.timeout
        self._send_to_reply(conn)

    def _send_to_reply(self, conn: _Conn) -> None:
        script = conn.script
        while True:
            seg = script[conn.pos]
            data = seg.data(conn.queue_id)
            if conn.prefix:
                data, conn.prefix = conn.prefix + data, b""
            self._write(conn, data)
            if seg.code:
                return
            conn.pos += 1

    def _write(self, conn: _Conn, data: bytes) -> None:
        assert conn.sock is not None
        if conn.out:
            conn.out += data
            return
        try:
            sent = conn.sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            conn.out += memoryview(data)[sent:]
            self._poller.modify(conn.fd, self._poller.IN | self._poller.OUT)

    def _write_more(self, conn: _Conn) -> None:
        if conn.sock is None or not conn.out:
            return
        try:
            sent = conn.sock.send(conn.out)
        except BlockingIOError:
            return
        del conn.out[:sent]
        if not conn.out:
            self._poller.modify(conn.fd, self._poller.IN)

    def _readable(self, conn: _Conn) -> None:
        assert conn.sock is not None
        try:
            data = conn.sock.recv(READ_SIZE)
        except BlockingIOError:
            return
        if not data:
            raise _Failed("connection lost")
        if data == CONTINUE and not conn.inbuf:  # the usual answer, in one piece
            self._packet(conn, b"c", data)
            return
        buf = conn.inbuf
        buf += data
        while len(buf) >= 4:
            size = int.from_bytes(buf[:4], "big")
            if size < 1 or size > MAX_REPLY:
                raise _Failed("protocol error")
            if len(buf) < 4 + size:
                break
            packet = bytes(buf[: 4 + size])
            del buf[: 4 + size]
            self._packet(conn, packet[4:5], packet)
            if conn.sock is None:
                return

    def _packet(self, conn: _Conn, code: bytes, packet: bytes) -> None:
        if not conn.script:
            raise _Failed("protocol error")  # nothing was asked
        conn.deadline = time.perf_counter() + self.timeout
        if code == b"p":  # progress: keep waiting
            return
        seg = conn.script[conn.pos]
        if seg.code == b"E":
            if code == b"s" or code == b"O":
                raise _Failed("protocol error")
            conn.eom.append(packet)
            if code[0] in _EOM_ENDS:
                self._message_done(conn, b"E", tuple(conn.eom))
            return
        if code == b"c":
            conn.pos += 1
            self._send_to_reply(conn)
        elif code == b"s":  # SKIP: no more events of this kind in this message
            conn.body_skipped = conn.body_skipped or seg.code == b"B"
            conn.pos += 1
            while conn.script[conn.pos].code == seg.code:
                conn.pos += 1
            self._send_to_reply(conn)
        elif code[0] in _ENDS:
            self._message_done(conn, seg.code, (packet,))
        else:
            raise _Failed("protocol error")

    def _message_done(self, conn: _Conn, stage: bytes, packets: tuple[bytes, ...]) -> None:
        self._finish(conn, stage, packets, None)
        conn.script = ()
        if stage in (b"C", b"H"):  # the milter is done with this SMTP session
            if conn.sock is not None:
                try:
                    conn.sock.send(QUIT)
                except OSError:
                    pass
            self._drop(conn)
            self._reopen(conn)
            return
        conn.first = False
        conn.prefix = ABORT  # Postfix's mail_reset, written with the next message
        self._start_next(conn)

    def _finish(
        self, conn: _Conn, stage: bytes, packets: tuple[bytes, ...], error: str | None
    ) -> None:
        t1 = time.perf_counter()
        self.end = max(self.end, t1)
        self._record(
            Done(
                conn.index,
                stage,
                packets,
                conn.body_skipped,
                conn.client.leading_space,
                t1 - conn.t0,
                error,
            )
        )

    def _record(self, done: Done) -> None:
        self.done.append(done)
        if self.progress is not None:
            self.progress(len(self.done))


def _kind(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, MilterProtocolError):
        return "protocol error"
    return "connection lost"


def decode(packets: Sequence[bytes]) -> Iterator[Reply]:
    """The replies of a finished message (raises MilterProtocolError on a bad one)."""
    decoder = ReplyDecoder()
    for packet in packets:
        yield from decoder.feed(packet)


__all__ = ["Done", "Replayer", "decode", "open_milter"]
