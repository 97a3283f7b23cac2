"""The DNS shell: answer :class:`Question` values over the network with dnspython.

This is the one place where DNS exceptions become :class:`Answer` statuses
(see STYLE.md, "DNS as questions"): :meth:`Resolver.ask` never raises for a
DNS outcome. NXDOMAIN and NODATA stay apart; a server's SERVFAIL, REFUSED or
other error rcode is SERVFAIL; no answer in time, or no server reachable at
all, is TIMEOUT. Each failure's ``detail`` names the servers and what each did.

Queries go over UDP with EDNS (RFC 6891) and are retried over TCP when the
answer comes back truncated (RFC 7766 §5; dnspython does the retry). Queries
set the AD bit so a validating resolver reports whether it validated the
answer (RFC 6840 §5.7), which becomes ``Answer.secure``.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Final, Protocol

import dns.asyncbackend
import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.nameserver
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.resolver

from mailseal.dns.cache import DEFAULT_FAILURE_TTL, DEFAULT_MAX_ENTRIES, AnswerCache
from mailseal.dns.drive import AsyncResolver, SyncResolver
from mailseal.dns.records import RDATATYPES, question_name, record_text
from mailseal.dns.types import Answer, Question, RdType, Status
from mailseal.dns.zone import ZoneResolver
from mailseal.errors import DnsError

log = logging.getLogger(__name__)
#: dnspython's asyncio backend, named rather than sniffed: dnspython would import it
#: (and sniffio) on the first query, and a milter worker that has dropped its
#: privileges may not be able to read the Python installation any more.
_ASYNCIO: Final = dns.asyncbackend.get_backend("asyncio")
# The same for the record classes of every type we ask for (dnspython finds them by
# importing on first use; the lookup is cached afterwards).
for _rdtype in RDATATYPES.values():
    dns.rdata.get_rdata_class(dns.rdataclass.IN, _rdtype)  # type: ignore[no-untyped-call]

#: Seconds one question may take in all, retries and every server included.
DEFAULT_TIMEOUT: Final = 5.0
DNS_PORT: Final = 53
#: The EDNS UDP payload size of DNS Flag Day 2020: big enough for most DKIM
#: keys, small enough to avoid IP fragmentation.
EDNS_PAYLOAD: Final = 1232
#: Longest wait for one server's UDP reply before asking the next one.
MAX_TRY_TIMEOUT: Final = 2.0
SYSTEM_RESOLV_CONF: Final = "/etc/resolv.conf"

_InflightKey = tuple[str, RdType]


class DnsClient(AsyncResolver, SyncResolver, Protocol):
    """What :func:`build_resolver` returns: answers by ``await ask()`` and by ``ask_sync()``."""


def parse_server_spec(spec: str) -> tuple[str, int]:
    """Parse ``HOST[:PORT]`` into an IP address and a port (default 53).

    Accepted: ``192.0.2.1``, ``192.0.2.1:5353``, ``::1``, ``[::1]``,
    ``[::1]:5353``. A bare IPv6 address takes no port (``::1:53`` is itself an
    address), so an IPv6 server on another port needs the brackets. Host names
    are refused: a DNS server is named by address (as in resolv.conf and
    OpenDKIM's ``Nameservers``), or finding it would need DNS.
    """
    text = spec.strip()
    hint = "give HOST or HOST:PORT, e.g. 127.0.0.1:5353 or [::1]:5353"
    if not text:
        raise DnsError(f"empty DNS server address ({hint})")
    port_text: str | None = None
    bracketed = text.startswith("[")
    if bracketed:
        host, closed, rest = text[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise DnsError(f"DNS server {spec!r}: bad brackets ({hint})")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host = text  # IPv4 without a port, or a bare IPv6 address
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise DnsError(f"DNS server {spec!r}: {host!r} is not an IP address ({hint})") from None
    if bracketed and address.version != 6:
        raise DnsError(f"DNS server {spec!r}: brackets are only for IPv6 addresses ({hint})")
    port = DNS_PORT
    if port_text is not None:
        if not (port_text.isascii() and port_text.isdigit() and 1 <= int(port_text) <= 65535):
            raise DnsError(f"DNS server {spec!r}: port {port_text!r} is not a number 1-65535")
        port = int(port_text)
    return str(address), port


def format_server(host: str, port: int) -> str:
    """Write a server as ``HOST:PORT``, with IPv6 in brackets (the inverse of parsing)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Resolver:
    """Answer questions through DNS servers, with a cache; never raises for DNS failures.

    ``servers`` are ``HOST[:PORT]`` specs asked in order; none means the system
    resolver's servers from ``resolv_conf``. ``timeout`` bounds each question as
    a whole. The cache holds ``cache_size`` answers (0 turns it off) and tells
    time by ``clock``. One Resolver serves one thread; within an event loop,
    concurrent asks for the same question share one query.
    """

    def __init__(
        self,
        servers: Sequence[str] = (),
        *,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        cache_size: int = DEFAULT_MAX_ENTRIES,
        failure_ttl: float = DEFAULT_FAILURE_TTL,
        resolv_conf: str | os.PathLike[str] = SYSTEM_RESOLV_CONF,
    ) -> None:
        if not timeout > 0:
            raise DnsError(f"DNS timeout must be more than 0 seconds, not {timeout!r}")
        self.servers: tuple[tuple[str, int], ...] = tuple(parse_server_spec(s) for s in servers)
        self.timeout = timeout
        self.cache = (
            AnswerCache(clock, cache_size, failure_ttl=failure_ttl) if cache_size > 0 else None
        )
        self._resolv_conf = os.fspath(resolv_conf)
        self._stub: dns.asyncresolver.Resolver | None = None
        self._inflight: dict[_InflightKey, asyncio.Task[Answer]] = {}

    async def ask(self, question: Question) -> Answer:
        """Answer one question from the cache or the servers (RFC 1034 §5.3.3)."""
        if self.cache is not None:
            cached = self.cache.get(question)
            if cached is not None:
                return cached
        loop = asyncio.get_running_loop()
        key = (question.name.rstrip(".").lower(), question.rdtype)
        task = self._inflight.get(key)
        if task is None or task.get_loop() is not loop:
            task = loop.create_task(self._resolve(question))
            self._inflight[key] = task
            task.add_done_callback(functools.partial(self._forget, key))
        # shield: one asker giving up must not cancel the query others wait on.
        answer = await asyncio.shield(task)
        return answer if answer.question == question else replace(answer, question=question)

    def ask_sync(self, question: Question) -> Answer:
        """Answer one question from code with no event loop running (CLIs)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.ask(question))
        # Blocking a running loop for up to `timeout` would stall everything on it.
        raise RuntimeError("Resolver.ask_sync() called inside an event loop: await ask() there")

    def _forget(self, key: _InflightKey, task: asyncio.Task[Answer]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]

    async def _resolve(self, question: Question) -> Answer:
        answer = await self._query(question)
        if self.cache is not None:
            self.cache.put(answer)
        return answer

    async def _query(self, question: Question) -> Answer:
        """Ask the servers once; every DNS outcome becomes an Answer here."""
        try:
            qname = question_name(question.name)
        except ValueError as exc:
            # No such name can exist: a definite "no", never worth retrying.
            return Answer(question, Status.NXDOMAIN, detail=str(exc))
        try:
            stub = self._stub_resolver()
        except DnsError as exc:
            return Answer(question, Status.TIMEOUT, detail=str(exc))
        servers = ", ".join(_server_label(stub, ns) for ns in stub.nameservers) or "no servers"
        try:
            # dnspython's lifetime can overrun by its back-off sleeps; this cannot.
            async with asyncio.timeout(self.timeout):
                result = await stub.resolve(
                    qname,
                    RDATATYPES[question.rdtype],
                    search=False,
                    raise_on_no_answer=False,
                    lifetime=self.timeout + 1.0,
                    backend=_ASYNCIO,
                )
        except (TimeoutError, dns.exception.Timeout):
            detail = f"no answer from {servers} within {self.timeout:g} s"
            return Answer(question, Status.TIMEOUT, detail=detail)
        except dns.resolver.NXDOMAIN as exc:
            responses: dict[Any, dns.message.Message] = exc.kwargs.get("responses") or {}
            response = next(iter(responses.values()), None)
            return _negative(question, Status.NXDOMAIN, response, "no such name")
        except dns.resolver.NoNameservers as exc:
            return _all_failed(question, exc.kwargs.get("errors") or [], servers)
        except dns.exception.DNSException as exc:
            return Answer(question, Status.SERVFAIL, detail=f"{servers}: {exc}")
        except OSError as exc:
            detail = f"cannot reach {servers}: {exc.strerror or exc}"
            return Answer(question, Status.TIMEOUT, detail=detail)
        if result.rrset is None:
            detail = f"no {question.rdtype.value} records"
            return _negative(question, Status.NODATA, result.response, detail)
        return Answer(
            question,
            Status.OK,
            tuple(record_text(rdata) for rdata in result.rrset),
            ttl=result.chaining_result.minimum_ttl,  # the smallest along any CNAME chain
            secure=_secure(result.response),
        )

    def _stub_resolver(self) -> dns.asyncresolver.Resolver:
        """Make dnspython's resolver on first use, so a broken resolv.conf costs no start-up."""
        if self._stub is not None:
            return self._stub
        if self.servers:
            stub = dns.asyncresolver.Resolver(configure=False)
            stub.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in self.servers]
        else:
            try:
                stub = dns.asyncresolver.Resolver(filename=self._resolv_conf)
            except (dns.exception.DNSException, OSError) as exc:
                # Not kept: the file may be fixed (or appear, at boot) before the next question.
                raise DnsError(f"no DNS servers: cannot use {self._resolv_conf} ({exc})") from None
        stub.lifetime = self.timeout
        # Leave time for every server: "tries servers in order" must reach the last one.
        stub.timeout = min(MAX_TRY_TIMEOUT, self.timeout / max(1, len(stub.nameservers)))
        stub.use_edns(0, 0, EDNS_PAYLOAD)
        stub.flags = dns.flags.RD | dns.flags.AD
        stub.cache = None  # ours is TTL-correct with an injectable clock
        self._stub = stub
        return stub


def build_resolver(
    zones: Sequence[str | os.PathLike[str]],
    servers: Sequence[str],
    timeout: float = DEFAULT_TIMEOUT,
) -> DnsClient:
    """Build what the CLI's DNS options ask for: zone files (offline) or a network resolver.

    Raises :class:`DnsError` for a zone file that does not parse or a bad server spec.
    """
    if zones:
        if servers:
            log.warning(
                "dns.servers_ignored",
                extra={"servers": list(servers), "reason": "zone files given: answering offline"},
            )
        return ZoneResolver(zones)
    return Resolver(servers, timeout=timeout)


def _secure(response: dns.message.Message | None) -> bool:
    return response is not None and bool(response.flags & dns.flags.AD)


def _negative(
    question: Question, status: Status, response: dns.message.Message | None, detail: str
) -> Answer:
    """NXDOMAIN or NODATA, with the negative TTL of RFC 2308 §5."""
    ttl = 0  # RFC 2308 §5: without an SOA a negative answer SHOULD NOT be cached
    if response is not None:
        for rrset in response.authority:
            if rrset.rdtype == dns.rdatatype.SOA and len(rrset) > 0:
                soa = rrset[0]
                assert isinstance(soa, dns.rdtypes.ANY.SOA.SOA)
                # CNAMEs on the way bound the answer too.
                ttl = min([rrset.ttl, soa.minimum, *(r.ttl for r in response.answer)])
                break
    return Answer(question, status, ttl=ttl, secure=_secure(response), detail=detail)


def _all_failed(question: Question, errors: list[Any], servers: str) -> Answer:
    """Every server failed: SERVFAIL if one answered (with a bad rcode), else TIMEOUT."""
    if not errors:
        return Answer(question, Status.TIMEOUT, detail=f"no DNS servers to ask ({servers})")
    parts = []
    answered = False
    for server, tcp, port, error, response in errors:
        answered = answered or response is not None
        # dnspython names servers "Do53:ADDRESS@PORT" (2.4+) or just "ADDRESS".
        host = str(server).removeprefix("Do53:").rsplit("@", 1)[0]
        transport = "TCP" if tcp else "UDP"
        parts.append(f"{format_server(host, port)} over {transport}: {_error_text(error)}")
    detail = "; ".join(dict.fromkeys(parts))  # unique, in order
    if answered:
        return Answer(question, Status.SERVFAIL, detail=detail)
    return Answer(question, Status.TIMEOUT, detail=f"no DNS server reachable: {detail}")


def _error_text(error: object) -> str:
    if isinstance(error, str):  # an rcode's name, as dnspython records it
        return f"answered {error}"
    if isinstance(error, dns.exception.Timeout):
        return "timed out"
    if isinstance(error, dns.message.Truncated):
        return "answer truncated"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error) or type(error).__name__


def _server_label(stub: dns.asyncresolver.Resolver, nameserver: object) -> str:
    if isinstance(nameserver, dns.nameserver.Do53Nameserver):
        return format_server(nameserver.address, nameserver.port)
    if isinstance(nameserver, str):  # from resolv.conf: an address, the port kept apart
        return format_server(nameserver, stub.nameserver_ports.get(nameserver, stub.port))
    return str(nameserver)
