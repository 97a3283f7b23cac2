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
from collections.abc import Callable
from typing import Final

from mailseal.config.opendkim import MilterConfig, OnAction
from mailseal.dns.drive import drive
from mailseal.dns.resolver import build_resolver
from mailseal.errors import MilterProtocolError
from mailseal.milter import codec
from mailseal.milter.session import Event, MilterSession

log = logging.getLogger("mailseal.milter")

#: How long a draining worker waits for the MTA to close its connections.
DRAIN_SECONDS: Final = 600.0
#: A connection with no packet for this long is closed (Postfix's own milter
#: timeouts are at most a few minutes; this only frees abandoned sockets).
IDLE_SECONDS: Final = 3600.0
READ_SIZE: Final = 262144

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


def quick_ack(writer: asyncio.StreamWriter) -> Callable[[], None] | None:
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
    sock = writer.get_extra_info("socket")
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

    def __init__(self, sock: socket.socket, cfg: MilterConfig, authserv_id: str | None) -> None:
        self.sock = sock
        self.cfg = cfg
        self.authserv_id = authserv_id
        self.hostname = socket.gethostname()
        self.resolver = build_resolver([], list(cfg.nameservers), float(cfg.dns_timeout))
        self.connections: set[asyncio.Task[None]] = set()
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        loop.add_signal_handler(signal.SIGINT, self.stopping.set)
        for sig in (signal.SIGUSR1, signal.SIGHUP):
            loop.add_signal_handler(sig, lambda: None)  # reloads are the parent's job
        if self.sock.family == socket.AF_UNIX:
            server = await asyncio.start_unix_server(self._serve, sock=self.sock)
        else:
            server = await asyncio.start_server(self._serve, sock=self.sock)
        await self.stopping.wait()
        server.close()  # stop accepting; the parent's new workers take over
        if self.connections:
            await asyncio.wait(set(self.connections), timeout=DRAIN_SECONDS)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.connections.add(task)
        try:
            await self._connection(reader, writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the MTA went away; nothing was promised for an unfinished message
        finally:
            self.connections.discard(task)
            writer.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = MilterSession(self.cfg, self.authserv_id, self.hostname)
        decoder = codec.Decoder()
        ack_now = quick_ack(writer)
        while not session.closed:
            try:
                data = await asyncio.wait_for(reader.read(READ_SIZE), IDLE_SECONDS)
            except TimeoutError:
                return
            if not data:
                return
            try:
                commands = decoder.feed(data)
            except MilterProtocolError as exc:
                log.warning(
                    "milter protocol error, closing connection: %s",
                    exc,
                    extra={"event": "milter.protocol_error"},
                )
                return
            out: list[bytes] = []
            for cmd in commands:
                replies = await self._handle(session, cmd)
                out.extend(codec.encode_reply(r) for r in replies)
                if session.closed:
                    break
            write_events(session.drain_events(), self.cfg)
            if out:
                writer.write(b"".join(out))
                await writer.drain()
            elif ack_now is not None:
                ack_now()

    async def _handle(self, session: MilterSession, cmd: codec.Command) -> list[codec.Reply]:
        """One command through the session; an unexpected error follows On-InternalError."""
        try:
            if isinstance(cmd, codec.EndOfMessage):
                return await drive(session.handle(cmd, int(time.time())), self.resolver)
            return session.handle_now(cmd)
        except MilterProtocolError:
            raise
        except Exception:  # noqa: BLE001 - the daemon must answer, whatever went wrong
            log.exception(
                "%s: internal error", session.queue_id, extra={"event": "milter.internal_error"}
            )
            return session.fail_message(cmd, self.cfg.on_internal_error, "internal error")


def worker_main(sock: socket.socket, cfg: MilterConfig, authserv_id: str | None) -> int:
    """Entry point of a forked worker; returns its exit status."""
    try:
        asyncio.run(Worker(sock, cfg, authserv_id).run())
    except KeyboardInterrupt:
        pass
    return 0


__all__ = ["OnAction", "Worker", "worker_main", "write_events"]
