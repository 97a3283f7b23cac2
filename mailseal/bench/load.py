"""The load: C milter connections, each sending message after message, as Postfix would.

Every message is what :meth:`MilterClient.send_message` sends (connect and HELO once
per connection, then MAIL, RCPT, DATA, headers, end of headers, body chunks, end of
message, abort), recorded before the clock starts and replayed from one epoll loop
(``replay.py``), so the client costs the machine it shares with the milter little.
The clock runs from the moment every connection is open and negotiated to the last
final reply; a latency is one message, first packet to final reply. The replies are
decoded and checked after the clock stops (``check.py``).

In sign mode the client looks like a local sender (127.0.0.1, which the tutorial's
InternalHosts lists); in verify mode like an outside server (198.51.100.25), and the
messages carry a signature made here with the key, relaxed/simple as the tutorial's.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from mailseal.bench.check import ResultCheck, SignatureCheck
from mailseal.bench.corpus import BenchMessage, Corpus, Mode, from_raw, raw_message
from mailseal.bench.replay import Done, Replayer, decode, open_milter
from mailseal.bench.stats import Latency, Summary, count_errors
from mailseal.dkim.canon import Canon
from mailseal.dkim.keys import SigningKey
from mailseal.dkim.sign import SignerSpec, sign_message
from mailseal.dkim.verify import VerifyOptions
from mailseal.errors import MailsealError, MilterProtocolError
from mailseal.milter.client import DEFAULT_CONNECT, MessageResult, MilterClient
from mailseal.milter.messages import Connect, OptNegReply, Progress, Skip

#: How a local sender looks (what Postfix's smtpd sends for a loopback client).
INSIDE: Final = DEFAULT_CONNECT
#: An outside server (TEST-NET-2), which no tutorial-style InternalHosts lists.
OUTSIDE: Final = Connect("mx.example.net", b"4", 40001, "198.51.100.25")
RECIPIENT: Final = "<receiver@example.net>"
MAX_CONCURRENCY: Final = 1024


class BenchError(MailsealError):
    """The benchmark cannot run: no connection to the milter, a key that cannot sign."""


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """One ``mailseal bench`` run."""

    socket: str  # inet:PORT@HOST, inet6:PORT@HOST, unix:/path
    messages: int = 1000
    concurrency: int = 8
    size: str = "2k"
    mode: Mode = Mode.SIGN
    protocol: int = 6  # Postfix's milter_protocol (its default is 6)
    key: SigningKey | None = None
    domain: str = "example.com"  # d= to check (sign) or to sign with (verify)
    selector: str = "mail"
    sender: str | None = None  # envelope sender and From:, default bench@DOMAIN
    timeout: float = 30.0  # per read, write or connect, as Postfix's milter timeouts

    def __post_init__(self) -> None:
        if self.messages < 1:
            raise ValueError("--messages must be at least 1")
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise ValueError(f"--concurrency must be 1..{MAX_CONCURRENCY}")
        if self.protocol not in (2, 6):
            raise ValueError("--protocol must be 2 or 6")
        if self.mode is Mode.VERIFY and self.key is None:
            raise ValueError("verify mode signs its messages itself: give --key, -d and -s")

    @property
    def from_address(self) -> str:
        return self.sender or f"bench@{self.domain}"


@dataclass(slots=True)
class _Outcome:
    index: int
    result: MessageResult | None  # None: no final reply (the error says why)
    leading_space: bool
    latency: float
    error: str | None = None


@dataclass(slots=True)
class BenchRun:
    """What came back, unchecked; ``end`` is the timed part's length in seconds."""

    outcomes: list[_Outcome] = field(default_factory=list)
    end: float = 0.0
    cpu: float = 0.0  # process CPU seconds over the timed part


def signed_pools(corpus: Corpus, opts: BenchOptions, now: int) -> dict[str, list[BenchMessage]]:
    """Each pool message signed with --key (relaxed/simple, as the tutorial configures)."""
    assert opts.key is not None
    spec = SignerSpec(
        key=opts.key,
        domain=opts.domain,
        selector=opts.selector,
        header_canon=Canon.RELAXED,
        body_canon=Canon.SIMPLE,
    )
    out: dict[str, list[BenchMessage]] = {}
    for cls, pool in corpus.pools.items():
        signed = []
        for msg in pool:
            raw = raw_message(msg)
            fields = sign_message(raw, [spec], now)
            signed.append(from_raw(cls, b"".join(f + b"\r\n" for f in fields) + raw))
        out[cls] = signed
    return out


def _outcome(done: Done) -> _Outcome:
    """What a replayed message got, decoded (after the clock: decoding costs nothing)."""
    if done.error is not None:
        return _Outcome(done.index, None, False, done.latency, done.error)
    try:
        replies = [r for r in decode(done.packets) if not isinstance(r, Progress)]
    except MilterProtocolError:
        replies = []
    unexpected = done.stage == b"E" and any(isinstance(r, Skip | OptNegReply) for r in replies)
    if not replies or unexpected:
        return _Outcome(done.index, None, False, done.latency, "protocol error")
    result = MessageResult(replies[-1], done.stage, tuple(replies[:-1]), done.body_skipped)
    return _Outcome(done.index, result, done.leading_space, done.latency)


class Bench:
    """Set up once (messages, signatures), then :meth:`run` and :meth:`summary`."""

    def __init__(self, opts: BenchOptions, *, now: int | None = None) -> None:
        self.opts = opts
        self.now = int(time.time()) if now is None else now
        domain = opts.from_address.rpartition("@")[2] or opts.domain
        self.corpus = Corpus(opts.size, domain, opts.from_address, messages=opts.messages)
        if opts.mode is Mode.VERIFY:
            self.corpus.replace_pools(signed_pools(self.corpus, opts, self.now))
        self.connect = OUTSIDE if opts.mode is Mode.VERIFY else INSIDE
        self.flags: dict[str, int] = {}
        self.negotiated = 0

    def run(self, progress: Callable[[int], None] | None = None) -> BenchRun:
        """Open the connections, send every message, return what came back (unchecked)."""
        opts = self.opts
        conns: list[tuple[socket.socket, MilterClient]] = []
        try:
            for _ in range(opts.concurrency):
                conns.append(open_milter(opts.socket, opts.protocol, opts.timeout))
        except (OSError, MilterProtocolError, ValueError) as exc:
            for sock, _client in conns:
                sock.close()
            raise BenchError(f"cannot open a milter connection to {opts.socket}: {exc}") from None
        reply = conns[0][1].reply
        if reply is not None:
            self.negotiated = reply.version
            self.flags = {
                "version": reply.version,
                "actions": int(reply.actions),
                "protocol": int(reply.protocol),
            }
        replayer = Replayer(
            spec=opts.socket,
            version=opts.protocol,
            timeout=opts.timeout,
            messages=opts.messages,
            message=self.corpus.__getitem__,
            connect=self.connect,
            mail_from=f"<{opts.from_address}>",
            rcpts=(RECIPIENT,),
            progress=progress,
        )
        replayer.prepare(conns)  # every message recorded before the clock starts
        cpu = time.process_time()
        start = time.perf_counter()
        replayer.run()
        run = BenchRun()
        run.cpu = time.process_time() - cpu
        run.end = (replayer.end or time.perf_counter()) - start
        run.outcomes = [_outcome(done) for done in replayer.done]
        return run

    def summary(self, run: BenchRun) -> Summary:
        """Check every reply and sum up."""
        opts = self.opts
        options = VerifyOptions()
        check: SignatureCheck | ResultCheck
        if opts.mode is Mode.VERIFY:
            check = ResultCheck(opts.domain)
        else:
            check = SignatureCheck(opts.key, opts.domain, opts.selector, options)
        # verify "now" is when the milter signed (t=), not after a long run
        now = int(time.time())
        kinds: list[str] = []
        latencies: list[float] = []
        sent = ok = 0
        for o in run.outcomes:
            error = o.error
            if o.result is not None:
                sent += 1
                latencies.append(o.latency)
                error = check(self.corpus[o.index], o.result, o.leading_space, now)
            if error is None:
                ok += 1
            else:
                kinds.append(error)
        seconds = round(run.end, 4)
        return Summary(
            socket=opts.socket,
            mode=opts.mode.value,
            size=opts.size,
            protocol=opts.protocol,
            negotiated=self.negotiated,
            messages=opts.messages,
            concurrency=opts.concurrency,
            sent=sent,
            ok=ok,
            errors=len(kinds),
            error_kinds=count_errors(kinds),
            checked=opts.key is not None,
            seconds=seconds,
            messages_per_second=round(ok / run.end, 2) if run.end > 0 else 0.0,
            latency_ms=Latency.of(latencies),
            mean_message_bytes=round(self.corpus.mean_size(opts.messages), 1),
            client_cpu_ms=round(run.cpu * 1000 / max(len(run.outcomes), 1), 3),
            milter_flags=self.flags,
        )


def run_bench(opts: BenchOptions, progress: Callable[[int], None] | None = None) -> Summary:
    """Run a whole benchmark (for scripts and tests)."""
    bench = Bench(opts)
    return bench.summary(bench.run(progress))


__all__ = ["INSIDE", "OUTSIDE", "Bench", "BenchError", "BenchOptions", "BenchRun", "run_bench"]
