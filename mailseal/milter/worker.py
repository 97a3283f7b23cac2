"""A milter worker process: accept connections on a shared socket and serve them.

Each connection gets a :class:`~mailseal.milter.session.MilterSession`; this
module only moves bytes, drives DNS questions and writes log events. A worker
stops accepting on SIGTERM and exits once its connections have ended (the MTA
closes them at the end of each SMTP session), or after a grace period.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from collections import deque
from collections.abc import Callable, Generator
from typing import Final, cast

from mailseal.config.opendkim import MilterConfig, OnAction
from mailseal.dns.resolver import Resolver, build_resolver
from mailseal.dns.types import Answer, Question
from mailseal.errors import MilterProtocolError
from mailseal.milter import codec
from mailseal.milter.board import LoadBoard
from mailseal.milter.session import Event, MilterSession

log = logging.getLogger("mailseal.milter")

#: How long a draining worker waits for the MTA to close its connections.
DRAIN_SECONDS: Final = 600.0
#: A connection with no packet for this long is closed (Postfix's own milter
#: timeouts are at most a few minutes; this only frees abandoned sockets).
IDLE_SECONDS: Final = 3600.0
#: How long a worker that serves more connections than another lets that one accept
#: a new connection first (see Worker._accept).
ACCEPT_DEFER: Final = 0.001

_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def write_events(events: list[Event], cfg: MilterConfig) -> None:
    for e in events:
        level = _LEVELS.get(e.level, logging.INFO)
        if e.name == "dkim.signed" and not cfg.syslog_success:
            level = logging.DEBUG
        log.log(level, e.text, extra={"event": e.name, **e.fields})


def quick_ack(transport: asyncio.BaseTransport) -> Callable[[], None] | None:
    """A function that sends the TCP ACK for what was read now, not 40 ms later.

    Postfix does not turn Nagle's algorithm off on milter sockets (vstream_tweak_tcp
    only sizes its buffer), so a packet it writes while an earlier one that needs
    no reply is unacknowledged waits for our ACK, which Linux delays by up to 40 ms
    after a read that is not answered. That happens once per message at least: the
    macros of the RCPT and DATA steps we switched off are flushed alone by smtpd,
    and the cleanup server's first header waits behind them (NR_HDR and NR_BODY
    packets add more). Acknowledging at once after such a read (TCP_QUICKACK,
    Linux) removes the stall; a read that gets a reply needs nothing, the reply
    carries the ACK. None for unix sockets and where the option does not exist.
    """
    sock = transport.get_extra_info("socket")
    option = getattr(socket, "TCP_QUICKACK", None)
    if sock is None or option is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None

    def ack_now() -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, option, 1)
        except OSError:
            pass

    return ack_now


class Worker:
    """Serve milter connections from a listening socket until told to stop."""

    def __init__(
        self,
        sock: socket.socket,
        cfg: MilterConfig,
        authserv_id: str | None,
        board: LoadBoard | None = None,
        slot: int | None = None,
    ) -> None:
        self.sock = sock
        self.board = board if slot is not None else None  # None: accept at once
        self.slot = slot or 0
        self.cfg = cfg
        self.authserv_id = authserv_id
        self.hostname = socket.gethostname()
        self.resolver = build_resolver([], list(cfg.nameservers), float(cfg.dns_timeout))
        self.cache = self.resolver.cache if isinstance(self.resolver, Resolver) else None
        self.connections: set[Connection] = set()
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        loop.add_signal_handler(signal.SIGINT, self.stopping.set)
        for sig in (signal.SIGUSR1, signal.SIGHUP):
            loop.add_signal_handler(sig, lambda: None)  # reloads are the parent's job
        accepting = asyncio.create_task(self._accept())
        accepting.add_done_callback(self._accepting_ended)
        await self.stopping.wait()
        accepting.cancel()  # stop accepting; the parent's new workers take over
        if self.board is not None:
            self.board.leave(self.slot)  # others no longer wait for this worker
            self.board = None  # and its closing connections do not count again
        if self.connections:
            await asyncio.wait({c.done for c in self.connections}, timeout=DRAIN_SECONDS)

    async def _accept(self) -> None:
        """Take connections one at a time, the least busy worker first.

        Every worker is woken for each new connection. One that serves more
        connections than another accepting worker (the board says) waits
        ACCEPT_DEFER before trying, so that one takes it; if it is still there after
        the wait (the other is busy), this one takes it. A worker alone, or without
        a board slot, accepts at once.
        """
        loop = asyncio.get_running_loop()
        fd = self.sock.fileno()
        while True:
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _settle, ready)
            try:
                await ready
            finally:
                loop.remove_reader(fd)
            if self.board is not None and not self.board.least_busy(self.slot):
                await asyncio.sleep(ACCEPT_DEFER)
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                continue  # another worker took it
            except OSError as exc:  # EMFILE and the like: back off, do not spin
                log.warning("accept failed: %s", exc, extra={"event": "milter.accept_error"})
                await asyncio.sleep(0.1)
                continue
            try:
                await loop.connect_accepted_socket(lambda: Connection(self), sock=conn)
            except OSError:
                conn.close()
            except Exception:  # noqa: BLE001 - one connection, never the accepting
                log.exception("cannot serve a new connection", extra={"event": "milter.error"})
                conn.close()

    def _accepting_ended(self, task: asyncio.Task[None]) -> None:
        """A worker that can no longer accept finishes what it has and exits, so that
        the parent starts another (AutoRestart) instead of keeping one that idles."""
        if task.cancelled() or self.stopping.is_set():
            return
        exc = task.exception()
        log.error(
            "worker stopped accepting connections: %r; exiting to be replaced",
            exc,
            extra={"event": "milter.accept_stopped"},
        )
        self.stopping.set()

    def count_connections(self) -> None:
        if self.board is not None:
            self.board.set(self.slot, len(self.connections))


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Connection(asyncio.Protocol):
    """One MTA connection: packets in, the session's replies out, in the event loop's
    callbacks. Only an end of message that asks DNS questions (verifying) runs as a
    task, with reading paused until its replies are out, so replies keep their order.
    """

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.cfg = worker.cfg
        self.session = MilterSession(worker.cfg, worker.authserv_id, worker.hostname)
        self.decoder = codec.Decoder()
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.ack_now: Callable[[], None] | None = None
        self.queue: deque[codec.Command] = deque()  # commands behind a DNS lookup
        self.lookup: asyncio.Task[None] | None = None
        self.writing_paused = False
        self.last_read = self.loop.time()
        self.idle_timer = self.loop.call_at(self.last_read + IDLE_SECONDS, self._idle)

    # -- transport callbacks -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream transport
        self.ack_now = quick_ack(transport)
        self.worker.connections.add(self)
        self.worker.count_connections()

    def connection_lost(self, exc: Exception | None) -> None:
        # the MTA went away; nothing was promised for an unfinished message
        self.idle_timer.cancel()
        if self.lookup is not None:
            self.lookup.cancel()
        self.worker.connections.discard(self)
        self.worker.count_connections()
        if not self.done.done():
            self.done.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.last_read = self.loop.time()
        try:
            self.queue.extend(self.decoder.feed(data))
        except MilterProtocolError as exc:
            self._protocol_error(exc)
            return
        if self.lookup is None:
            self._run()

    def eof_received(self) -> bool | None:
        return None  # close: the MTA is done with this connection

    def pause_writing(self) -> None:
        # the MTA does not read what we write: stop reading what it sends, as
        # awaiting drain() did
        self.writing_paused = True
        if self.transport is not None and self.lookup is None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.transport is not None and self.lookup is None:
            self.transport.resume_reading()

    # -- commands --------------------------------------------------------------------

    def _run(self) -> None:
        """Handle queued commands until none is left, the session closes, or one waits
        for DNS; write the replies in one go."""
        session, queue = self.session, self.queue
        out: list[bytes] = []
        try:
            while queue and not session.closed:
                cmd = queue.popleft()
                replies = self._handle(cmd)
                if replies is None:  # a DNS lookup runs; _finish goes on from here
                    break
                for r in replies:
                    out.append(codec.encode_reply(r))
        except MilterProtocolError as exc:
            self._write(out)
            self._protocol_error(exc)
            return
        write_events(session.drain_events(), self.cfg)
        if out:
            self._write(out)
        elif self.ack_now is not None and self.lookup is None:
            self.ack_now()
        if session.closed and self.transport is not None:
            self.transport.close()

    def _handle(self, cmd: codec.Command) -> list[codec.Reply] | None:
        """One command through the session; an unexpected error follows On-InternalError.
        None when an end of message needs DNS: it goes on in a task."""
        session = self.session
        try:
            if not isinstance(cmd, codec.EndOfMessage):
                return session.handle_now(cmd)
            steps = session.handle(cmd, int(time.time()))
            try:
                question = next(steps)
                # Answers the cache holds need no task: Resolver.ask would return
                # them just the same, without waiting for anything.
                cache = self.worker.cache
                while cache is not None and (answer := cache.get(question)) is not None:
                    question = steps.send(answer)
            except StopIteration as stop:  # signing asks no questions
                return stop.value  # type: ignore[no-any-return]
        except MilterProtocolError:
            raise
        except Exception:  # noqa: BLE001 - the daemon must answer, whatever went wrong
            return self._internal_error(cmd)
        self.lookup = self.loop.create_task(self._finish(steps, question, cmd))
        if self.transport is not None:
            self.transport.pause_reading()
        return None

    async def _finish(
        self,
        steps: Generator[Question, Answer, list[codec.Reply]],
        question: Question,
        cmd: codec.Command,
    ) -> None:
        """Answer an end of message's DNS questions, send its replies, go on reading."""
        try:
            try:
                while True:
                    question = steps.send(await self.worker.resolver.ask(question))
            except StopIteration as stop:
                replies: list[codec.Reply] = stop.value
        except MilterProtocolError as exc:
            self.lookup = None
            self._protocol_error(exc)
            return
        except Exception:  # noqa: BLE001 - the daemon must answer, whatever went wrong
            replies = self._internal_error(cmd)
        self.lookup = None
        self._write([codec.encode_reply(r) for r in replies])
        write_events(self.session.drain_events(), self.cfg)
        if self.transport is None or self.transport.is_closing():
            return
        if not self.writing_paused:
            self.transport.resume_reading()
        self._run()

    def _internal_error(self, cmd: codec.Command) -> list[codec.Reply]:
        session = self.session
        log.exception(
            "%s: internal error", session.queue_id, extra={"event": "milter.internal_error"}
        )
        return session.fail_message(cmd, self.cfg.on_internal_error, "internal error")

    def _write(self, out: list[bytes]) -> None:
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out))

    def _protocol_error(self, exc: MilterProtocolError) -> None:
        write_events(self.session.drain_events(), self.cfg)
        log.warning(
            "milter protocol error, closing connection: %s",
            exc,
            extra={"event": "milter.protocol_error"},
        )
        if self.transport is not None:
            self.transport.close()

    def _idle(self) -> None:
        """Close a connection that sent nothing for IDLE_SECONDS (not while DNS runs)."""
        due = self.last_read + IDLE_SECONDS
        if self.lookup is None and self.loop.time() >= due:
            if self.transport is not None:
                self.transport.close()
            return
        self.idle_timer = self.loop.call_at(max(due, self.loop.time() + 1.0), self._idle)


def worker_main(
    sock: socket.socket,
    cfg: MilterConfig,
    authserv_id: str | None,
    board: LoadBoard | None = None,
    slot: int | None = None,
) -> int:
    """Entry point of a forked worker; returns its exit status."""
    try:
        asyncio.run(Worker(sock, cfg, authserv_id, board, slot).run())
    except KeyboardInterrupt:
        pass
    return 0


__all__ = ["Connection", "OnAction", "Worker", "quick_ack", "worker_main", "write_events"]
