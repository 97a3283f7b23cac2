"""An SMTP catcher: aiosmtpd on a free 127.0.0.1 port, in a thread, keeping what it gets.

Postfix relays to it (``relayhost = [127.0.0.1]:PORT``); ``wait_for`` waits,
bounded, for the messages a caller expects. Messages larger than
``spool_over`` bytes are kept in files under ``spool`` instead of memory.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

DATA_SIZE_LIMIT: Final = 64 * 1024 * 1024  # aiosmtpd's own default is 32 MiB
SPOOL_OVER: Final = 1024 * 1024


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Caught:
    """One delivered message: envelope, size, and the bytes as received."""

    mail_from: str
    rcpt_tos: list[str]
    size: int
    _data: bytes | None = None
    _path: Path | None = None
    received_at: float = 0.0

    @property
    def data(self) -> bytes:
        if self._data is not None:
            return self._data
        assert self._path is not None
        return self._path.read_bytes()

    def head(self, limit: int = 256 * 1024) -> bytes:
        """The header block (and a little more) without reading a spooled file whole."""
        if self._data is not None:
            return self._data[:limit]
        assert self._path is not None
        with self._path.open("rb") as f:
            return f.read(limit)


class _Handler:
    def __init__(self, catcher: Catcher) -> None:
        self.catcher = catcher

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.catcher._store(envelope)
        return "250 2.0.0 caught"


class Catcher:
    """aiosmtpd on a free 127.0.0.1 port; keeps what it receives, in order."""

    def __init__(
        self, spool: Path, data_size_limit: int = DATA_SIZE_LIMIT, spool_over: int = SPOOL_OVER
    ) -> None:
        self.spool = spool
        spool.mkdir(parents=True, exist_ok=True)
        self.spool_over = spool_over
        self.messages: list[Caught] = []
        self._cond = threading.Condition()
        self.port = _free_port()
        self.controller = Controller(
            _Handler(self),
            hostname="127.0.0.1",
            port=self.port,
            data_size_limit=data_size_limit,
            ready_timeout=10,
        )

    def _store(self, envelope: Envelope) -> None:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):  # only with decode_data=True, which is not used here
            raw = raw.encode("utf-8", "surrogateescape")
        with self._cond:
            n = len(self.messages)
        c = Caught(
            envelope.mail_from or "",
            list(envelope.rcpt_tos),
            len(raw),
            received_at=time.time(),
        )
        if len(raw) > self.spool_over:
            c._path = self.spool / f"{n:05d}-{os.getpid()}-{id(c)}.eml"
            c._path.write_bytes(raw)
        else:
            c._data = bytes(raw)
        with self._cond:
            self.messages.append(c)
            self._cond.notify_all()

    def start(self) -> Catcher:
        self.controller.start()
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.controller.stop()

    def __enter__(self) -> Catcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(
        self, n: int, timeout: float, match: bytes | Callable[[Caught], bool] | None = None
    ) -> list[Caught]:
        """The first ``n`` messages (matching ``match``: bytes found in the header
        block, or a predicate), waiting at most ``timeout`` seconds; TimeoutError
        if fewer arrived."""

        def pick() -> list[Caught]:
            if match is None:
                return list(self.messages)
            if isinstance(match, bytes):
                return [m for m in self.messages if match in m.head()]
            return [m for m in self.messages if match(m)]

        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = pick()
                if len(got) >= n:
                    return got[:n]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"catcher: {len(got)} of {n} message(s) "
                        f"matching {match!r} after {timeout}s "
                        f"({len(self.messages)} caught in all)"
                    )
                self._cond.wait(min(left, 0.5))


__all__ = ["Caught", "Catcher"]
