"""A small authoritative DNS server for tests: real UDP and TCP on loopback.

It answers from zone text with dnspython's message codec, and can misbehave
on purpose, globally or for one name:

- ``Mode.DROP``: read the question, never answer (the client times out);
- ``Mode.SERVFAIL`` / ``Mode.REFUSED``: answer with that rcode;
- ``Mode.TRUNCATE``: over UDP answer with TC set and no records, so the client
  must ask again over TCP (RFC 7766 §5); TCP is answered normally.

UDP answers that do not fit the client's payload size (512, or its EDNS size)
are truncated the same way, as a real server does. Every question is logged
as ``Received(name, rdtype, transport)``. ::

    with DnsTestServer({"example.com": ZONE}) as server:
        server.set_mode(Mode.TRUNCATE, "big.example.com")
        resolver = Resolver([server.spec], timeout=0.5)
        ...
        assert server.received_for("big.example.com") == [...]

The server lives in daemon threads, polls its sockets with short timeouts,
and stops by itself after ``max_lifetime`` seconds even if never stopped.
Independent of mailseal's own zone code on purpose: it is the oracle.
"""

from __future__ import annotations

import enum
import selectors
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Final

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.rrset
import dns.zone

_POLL: Final = 0.05  # seconds between checks of the stop flag
_CHAIN_LIMIT: Final = 8


class Mode(enum.Enum):
    """How the server treats a question."""

    ANSWER = "answer"
    DROP = "drop"
    SERVFAIL = "servfail"
    REFUSED = "refused"
    TRUNCATE = "truncate"


@dataclass(frozen=True, slots=True)
class Received:
    """One question as the server saw it."""

    name: str  # lower-case, no trailing dot
    rdtype: str  # "TXT"
    transport: str  # "udp" or "tcp"


class DnsTestServer:
    """Serve ``zones`` (origin -> master-file text) on ``host`` over UDP and TCP, one port."""

    def __init__(
        self,
        zones: Mapping[str, str],
        *,
        host: str = "127.0.0.1",
        max_lifetime: float = 60.0,
        serve_tcp: bool = True,
    ) -> None:
        self.host = host
        #: False keeps the TCP port bound but not listening: TCP connections are refused.
        self.serve_tcp = serve_tcp
        self.port = 0
        self.max_lifetime = max_lifetime
        #: Set the AD bit on every answer, as a validating resolver would.
        self.authenticated_data = False
        self._zones = [
            dns.zone.from_text(text, origin, relativize=False, check_origin=False)
            for origin, text in zones.items()
        ]
        self._mode = Mode.ANSWER
        self._modes: dict[str, Mode] = {}
        self._log: list[Received] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._udp: socket.socket | None = None
        #: Exceptions raised while answering; leaving the ``with`` block re-raises the first.
        self.errors: list[Exception] = []
        self._tcp: socket.socket | None = None

    # -- control -----------------------------------------------------------

    @property
    def spec(self) -> str:
        """The server as a ``HOST:PORT`` spec (``[::1]:PORT`` for IPv6)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def set_mode(self, mode: Mode, name: str | None = None) -> None:
        """Behave as ``mode`` for questions about ``name``, or for all when name is None."""
        with self._lock:
            if name is None:
                self._mode = mode
            else:
                self._modes[_key(name)] = mode

    @property
    def received(self) -> list[Received]:
        """Every question received so far, in order."""
        with self._lock:
            return list(self._log)

    def received_for(self, name: str) -> list[Received]:
        key = _key(name)
        return [r for r in self.received if r.name == key]

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def __enter__(self) -> DnsTestServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if exc is None and self.errors:
            raise RuntimeError("the test DNS server failed while answering") from self.errors[0]

    def start(self) -> None:
        """Bind UDP and TCP on one free port of ``host`` and start serving."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _ in range(20):  # the UDP port may be taken for TCP: try another
            udp = socket.socket(family, socket.SOCK_DGRAM)
            udp.bind((self.host, 0))
            port = udp.getsockname()[1]
            tcp = socket.socket(family, socket.SOCK_STREAM)
            try:
                tcp.bind((self.host, port))
            except OSError:
                udp.close()
                tcp.close()
                continue
            if self.serve_tcp:
                tcp.listen(16)
            break
        else:
            raise OSError(f"no free port on {self.host} for both UDP and TCP")
        udp.settimeout(_POLL)
        tcp.settimeout(_POLL)
        self._udp, self._tcp, self.port = udp, tcp, port
        deadline = time.monotonic() + self.max_lifetime
        for target in (self._serve_udp, self._serve_tcp) if self.serve_tcp else (self._serve_udp,):
            thread = threading.Thread(target=target, args=(deadline,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2.0)
        for sock in (self._udp, self._tcp):
            if sock is not None:
                sock.close()

    # -- serving -----------------------------------------------------------

    def _running(self, deadline: float) -> bool:
        return not self._stop.is_set() and time.monotonic() < deadline

    def _serve_udp(self, deadline: float) -> None:
        assert self._udp is not None
        while self._running(deadline):
            try:
                wire, peer = self._udp.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            reply = self._safe_reply(wire, "udp")
            if reply is not None:
                try:
                    self._udp.sendto(reply, peer)
                except OSError:
                    pass  # the client went away; UDP has no one to tell

    def _serve_tcp(self, deadline: float) -> None:
        assert self._tcp is not None
        while self._running(deadline):
            try:
                conn, _ = self._tcp.accept()
            except (TimeoutError, OSError):
                continue
            thread = threading.Thread(target=self._serve_conn, args=(conn, deadline), daemon=True)
            thread.start()

    def _serve_conn(self, conn: socket.socket, deadline: float) -> None:
        """Answer length-prefixed messages on one connection (RFC 1035 §4.2.2)."""
        with conn, selectors.DefaultSelector() as sel:
            sel.register(conn, selectors.EVENT_READ)
            buffer = b""
            while self._running(deadline):
                if not sel.select(_POLL):
                    continue
                try:
                    data = conn.recv(65537)
                except OSError:
                    return
                if not data:
                    return
                buffer += data
                while len(buffer) >= 2 and len(buffer) >= 2 + int.from_bytes(buffer[:2], "big"):
                    size = int.from_bytes(buffer[:2], "big")
                    wire, buffer = buffer[2 : 2 + size], buffer[2 + size :]
                    reply = self._safe_reply(wire, "tcp")
                    if reply is not None:
                        try:
                            conn.sendall(len(reply).to_bytes(2, "big") + reply)
                        except OSError:
                            return

    def _safe_reply(self, wire: bytes, transport: str) -> bytes | None:
        # A bug here must fail the test, not silently kill a serving thread.
        try:
            return self._reply(wire, transport)
        except Exception as exc:
            with self._lock:
                self.errors.append(exc)
            return None

    def _reply(self, wire: bytes, transport: str) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        if len(query.question) != 1:
            return None
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        with self._lock:
            self._log.append(Received(name, dns.rdatatype.to_text(question.rdtype), transport))
            mode = self._modes.get(name, self._mode)
        if mode is Mode.DROP:
            return None
        response = dns.message.make_response(query)
        if mode is Mode.SERVFAIL:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif mode is Mode.REFUSED:
            response.set_rcode(dns.rcode.REFUSED)
        elif mode is Mode.TRUNCATE and transport == "udp":
            response.flags |= dns.flags.TC
        else:
            self._answer(response, question.name, question.rdtype)
            if self.authenticated_data:
                response.flags |= dns.flags.AD
        if transport == "tcp":
            return response.to_wire(max_size=65535)  # the default would be the EDNS size
        payload = query.payload if query.edns >= 0 else 512
        try:
            return response.to_wire(max_size=max(payload, 512))
        except dns.exception.TooBig:
            short = dns.message.make_response(query)
            short.flags |= dns.flags.TC
            return short.to_wire()

    def _answer(self, response: dns.message.Message, qname: dns.name.Name, rdtype: int) -> None:
        """Fill in an authoritative answer (RFC 1034 §4.3.2), following in-zone CNAMEs."""
        zone = self._zone_for(qname)
        if zone is None:
            response.set_rcode(dns.rcode.REFUSED)  # not authoritative for this name
            return
        response.flags |= dns.flags.AA
        name = qname
        for _ in range(_CHAIN_LIMIT):
            node = zone.get_node(name)
            if node is None:
                below = any(n.is_subdomain(name) for n in zone.nodes)  # an empty non-terminal
                if not below:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                break
            rdataset = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.RdataType(rdtype))
            if rdataset is not None:
                response.answer.append(_rrset(name, rdataset))
                return
            cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
            if cname is None or rdtype == dns.rdatatype.CNAME:
                break
            response.answer.append(_rrset(name, cname))
            name = cname[0].target
            if self._zone_for(name) is not zone:
                return  # the client follows a chain that leaves the zone
        assert zone.origin is not None
        soa = zone.get_rdataset(zone.origin, dns.rdatatype.SOA)
        if soa is not None:
            rdata = soa[0]
            assert isinstance(rdata, dns.rdtypes.ANY.SOA.SOA)
            # RFC 2308 §3: the SOA's TTL in a negative answer is min(TTL, MINIMUM).
            rrset = dns.rrset.RRset(zone.origin, dns.rdataclass.IN, dns.rdatatype.SOA)
            rrset.add(rdata, min(soa.ttl, rdata.minimum))
            response.authority.append(rrset)

    def _zone_for(self, name: dns.name.Name) -> dns.zone.Zone | None:
        """The zone with the longest origin that holds ``name``."""
        best: dns.zone.Zone | None = None
        best_labels = -1
        for zone in self._zones:
            assert zone.origin is not None
            if name.is_subdomain(zone.origin) and len(zone.origin) > best_labels:
                best, best_labels = zone, len(zone.origin)
        return best


def _rrset(name: dns.name.Name, rdataset: dns.rdataset.Rdataset) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(name, dns.rdataclass.IN, rdataset.rdtype)
    for rdata in rdataset:
        rrset.add(rdata, rdataset.ttl)
    return rrset


def _key(name: str) -> str:
    return name.rstrip(".").lower()
