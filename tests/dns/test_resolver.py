"""Resolver against a real DNS server on loopback (tests/support/dnsserver.py).

No mocks: every test sends real UDP/TCP packets to an in-process server that
answers, refuses, fails, truncates or stays silent on purpose. Timeouts are
short so every test stays well under a couple of seconds.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailseal.dns.resolver import Resolver, build_resolver
from mailseal.dns.types import Answer, Question, RdType, Status
from mailseal.dns.zone import ZoneResolver
from mailseal.errors import DnsError
from tests.support.dnsserver import DnsTestServer, Mode, Received

SHORT = 0.3  # seconds: the timeout for tests that expect one
BIG = " ".join(f'"{c * 250}"' for c in "abcdefg")  # 1,750 bytes: over the 1,232 EDNS size

ZONE = f"""\
$TTL 300
@        IN SOA ns1 hostmaster 1 3600 600 86400 60
@        IN NS  ns1
@        IN TXT "v=spf1 " "-all"
@        IN MX  10 mail
mail 100 IN A   192.0.2.1
alias 50 IN CNAME mail
big      IN TXT {BIG}
a.b      IN TXT "deep"
"""


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def server() -> Iterator[DnsTestServer]:
    with DnsTestServer({"example.com": ZONE}, max_lifetime=30) as running:
        yield running


def ask(resolver: Resolver, name: str, rdtype: RdType = RdType.TXT) -> Answer:
    return resolver.ask_sync(Question(name, rdtype))


def free_port(host: str = "127.0.0.1") -> int:
    """A port with nothing listening on it (bound, read, released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


# -- answers ---------------------------------------------------------------


def test_ok_answer(server: DnsTestServer) -> None:
    answer = ask(Resolver([server.spec], timeout=2), "example.com")
    assert answer.status is Status.OK
    assert answer.records == ("v=spf1 -all",)
    assert answer.ttl == 300
    assert answer.secure is False
    assert server.received == [Received("example.com", "TXT", "udp")]


def test_record_shapes_and_cname_chain(server: DnsTestServer) -> None:
    resolver = Resolver([server.spec], timeout=2)
    assert ask(resolver, "Example.COM.", RdType.MX).records == ("10 mail.example.com",)
    answer = ask(resolver, "alias.example.com", RdType.A)
    assert answer.records == ("192.0.2.1",)
    assert answer.ttl == 50  # the CNAME's TTL is the smaller


def test_nxdomain_with_soa_negative_ttl(server: DnsTestServer) -> None:
    answer = ask(Resolver([server.spec], timeout=2), "nope.example.com")
    assert answer.status is Status.NXDOMAIN
    assert answer.ttl == 60  # min(SOA TTL 300, MINIMUM 60)


def test_nodata_and_empty_non_terminal(server: DnsTestServer) -> None:
    resolver = Resolver([server.spec], timeout=2)
    answer = ask(resolver, "mail.example.com")
    assert (answer.status, answer.ttl) == (Status.NODATA, 60)
    assert ask(resolver, "b.example.com").status is Status.NODATA


def test_servfail(server: DnsTestServer) -> None:
    server.set_mode(Mode.SERVFAIL)
    answer = ask(Resolver([server.spec], timeout=2), "example.com")
    assert answer.status is Status.SERVFAIL
    assert server.spec in answer.detail and "SERVFAIL" in answer.detail


def test_refused_is_servfail(server: DnsTestServer) -> None:
    server.set_mode(Mode.REFUSED)
    answer = ask(Resolver([server.spec], timeout=2), "example.com")
    assert answer.status is Status.SERVFAIL
    assert "REFUSED" in answer.detail


def test_modes_apply_per_name(server: DnsTestServer) -> None:
    server.set_mode(Mode.SERVFAIL, "mail.example.com")
    resolver = Resolver([server.spec], timeout=2)
    assert ask(resolver, "mail.example.com", RdType.A).status is Status.SERVFAIL
    assert ask(resolver, "example.com").status is Status.OK


def test_timeout_when_the_server_never_answers(server: DnsTestServer) -> None:
    server.set_mode(Mode.DROP)
    started = time.monotonic()
    answer = ask(Resolver([server.spec], timeout=SHORT), "example.com")
    elapsed = time.monotonic() - started
    assert answer.status is Status.TIMEOUT
    assert server.spec in answer.detail
    assert SHORT * 0.9 <= elapsed < SHORT + 1.0  # bounded, with room for a busy machine
    assert server.received  # it did ask


def test_timeout_when_nothing_listens() -> None:
    spec = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    answer = ask(Resolver([spec], timeout=SHORT), "example.com")
    assert answer.status is Status.TIMEOUT
    assert spec in answer.detail
    assert time.monotonic() - started < SHORT + 1.0


def test_tcp_fallback_when_udp_answer_is_truncated(server: DnsTestServer) -> None:
    server.set_mode(Mode.TRUNCATE)
    answer = ask(Resolver([server.spec], timeout=2), "example.com")
    assert answer.records == ("v=spf1 -all",)
    assert [r.transport for r in server.received] == ["udp", "tcp"]


def test_refused_tcp_connection_is_a_timeout_naming_it() -> None:
    with DnsTestServer({"example.com": ZONE}, serve_tcp=False, max_lifetime=30) as server:
        server.set_mode(Mode.TRUNCATE)
        answer = ask(Resolver([server.spec], timeout=2), "example.com")
    assert answer.status is Status.TIMEOUT
    assert f"{server.spec} over TCP: connection refused" in answer.detail


def test_large_answer_comes_over_tcp(server: DnsTestServer) -> None:
    answer = ask(Resolver([server.spec], timeout=2), "big.example.com")
    assert answer.records == ("".join(c * 250 for c in "abcdefg"),)
    assert [r.transport for r in server.received] == ["udp", "tcp"]


def test_ad_bit_sets_secure(server: DnsTestServer) -> None:
    server.authenticated_data = True
    assert ask(Resolver([server.spec], timeout=2), "example.com").secure is True


def test_ipv6_loopback_server() -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"IPv6 loopback ::1 is not usable here: {exc}")
    with DnsTestServer({"example.com": ZONE}, host="::1", max_lifetime=30) as server:
        assert server.spec.startswith("[::1]:")
        answer = ask(Resolver([server.spec], timeout=2), "example.com")
        assert answer.records == ("v=spf1 -all",)


def test_invalid_name_is_nxdomain_without_a_query(server: DnsTestServer) -> None:
    answer = ask(Resolver([server.spec], timeout=2), "a..example.com")
    assert answer.status is Status.NXDOMAIN
    assert server.received == []


def test_system_resolver_reads_resolv_conf(tmp_path: Path) -> None:
    # A loopback address where nothing listens: the question stays on this machine.
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.255.0.53\n")
    answer = ask(Resolver(timeout=SHORT, resolv_conf=conf), "example.com")
    assert answer.status is Status.TIMEOUT
    assert "127.255.0.53:53" in answer.detail


def test_missing_resolv_conf_is_a_timeout_not_an_exception(tmp_path: Path) -> None:
    resolver = Resolver(timeout=SHORT, resolv_conf=tmp_path / "resolv.conf")
    answer = ask(resolver, "example.com")
    assert answer.status is Status.TIMEOUT
    assert "resolv.conf" in answer.detail


# -- several servers -------------------------------------------------------


@pytest.fixture
def second() -> Iterator[DnsTestServer]:
    with DnsTestServer({"example.com": ZONE}, max_lifetime=30) as running:
        yield running


def test_servers_are_tried_in_order(server: DnsTestServer, second: DnsTestServer) -> None:
    answer = ask(Resolver([server.spec, second.spec], timeout=2), "example.com")
    assert answer.status is Status.OK
    assert len(server.received) == 1
    assert second.received == []


def test_silent_first_server_falls_back_to_the_second(
    server: DnsTestServer, second: DnsTestServer
) -> None:
    server.set_mode(Mode.DROP)
    # 0.6 s in all: each server gets 0.3 s, so the second is reached in time.
    answer = ask(Resolver([server.spec, second.spec], timeout=0.6), "example.com")
    assert answer.status is Status.OK
    assert len(server.received) == 1 and len(second.received) == 1


def test_failing_first_server_falls_back_to_the_second(
    server: DnsTestServer, second: DnsTestServer
) -> None:
    server.set_mode(Mode.SERVFAIL)
    answer = ask(Resolver([server.spec, second.spec], timeout=2), "example.com")
    assert answer.status is Status.OK


def test_all_servers_failing_names_each(server: DnsTestServer, second: DnsTestServer) -> None:
    server.set_mode(Mode.SERVFAIL)
    second.set_mode(Mode.REFUSED)
    answer = ask(Resolver([server.spec, second.spec], timeout=2), "example.com")
    assert answer.status is Status.SERVFAIL
    assert f"{server.spec} over UDP: answered SERVFAIL" in answer.detail
    assert f"{second.spec} over UDP: answered REFUSED" in answer.detail


# -- cache -----------------------------------------------------------------


def test_second_ask_is_answered_from_the_cache(server: DnsTestServer) -> None:
    clock = FakeClock()
    resolver = Resolver([server.spec], timeout=2, clock=clock)
    first = ask(resolver, "example.com")
    clock.advance(100)
    second = ask(resolver, "EXAMPLE.com.")
    assert second.records == first.records
    assert second.ttl == 200  # what remains of 300
    assert second.question == Question("EXAMPLE.com.", RdType.TXT)
    assert len(server.received) == 1


def test_cache_entry_expires_with_its_ttl(server: DnsTestServer) -> None:
    clock = FakeClock()
    resolver = Resolver([server.spec], timeout=2, clock=clock)
    ask(resolver, "mail.example.com", RdType.A)  # TTL 100
    clock.advance(99.5)
    ask(resolver, "mail.example.com", RdType.A)
    assert len(server.received) == 1
    clock.advance(1)
    assert ask(resolver, "mail.example.com", RdType.A).ttl == 100
    assert len(server.received) == 2


def test_negative_answers_are_cached_for_the_soa_minimum(server: DnsTestServer) -> None:
    clock = FakeClock()
    resolver = Resolver([server.spec], timeout=2, clock=clock)
    assert ask(resolver, "nope.example.com").status is Status.NXDOMAIN
    clock.advance(59)
    assert ask(resolver, "nope.example.com").status is Status.NXDOMAIN
    assert len(server.received) == 1
    clock.advance(2)
    ask(resolver, "nope.example.com")
    assert len(server.received) == 2


def test_failures_are_cached_only_briefly(server: DnsTestServer) -> None:
    clock = FakeClock()
    resolver = Resolver([server.spec], timeout=2, clock=clock, failure_ttl=1.0)
    server.set_mode(Mode.SERVFAIL)
    ask(resolver, "example.com")
    ask(resolver, "example.com")
    assert len(server.received) == 1
    server.set_mode(Mode.ANSWER)
    clock.advance(1.5)
    assert ask(resolver, "example.com").status is Status.OK
    assert len(server.received) == 2


def test_failures_not_cached_with_failure_ttl_zero(server: DnsTestServer) -> None:
    resolver = Resolver([server.spec], timeout=2, failure_ttl=0)
    server.set_mode(Mode.SERVFAIL)
    ask(resolver, "example.com")
    ask(resolver, "example.com")
    assert len(server.received) == 2


def test_cache_is_bounded(server: DnsTestServer) -> None:
    resolver = Resolver([server.spec], timeout=2, cache_size=2, clock=FakeClock())
    for name in ("example.com", "mail.example.com", "a.b.example.com", "example.com"):
        ask(resolver, name)
    assert resolver.cache is not None and len(resolver.cache) == 2
    assert len(server.received_for("example.com")) == 2  # evicted, asked again


def test_cache_off(server: DnsTestServer) -> None:
    resolver = Resolver([server.spec], timeout=2, cache_size=0)
    ask(resolver, "example.com")
    ask(resolver, "example.com")
    assert resolver.cache is None
    assert len(server.received) == 2


def test_concurrent_asks_share_one_query(server: DnsTestServer) -> None:
    resolver = Resolver([server.spec], timeout=2, cache_size=0)
    question = Question("example.com", RdType.TXT)

    async def many() -> list[Answer]:
        return await asyncio.gather(*(resolver.ask(question) for _ in range(5)))

    answers = asyncio.run(many())
    assert all(a.records == ("v=spf1 -all",) for a in answers)
    assert len(server.received) == 1


# -- sync use --------------------------------------------------------------


def test_ask_sync_refuses_to_block_a_running_loop(server: DnsTestServer) -> None:
    resolver = Resolver([server.spec], timeout=2)

    async def inside() -> None:
        with pytest.raises(RuntimeError, match="await ask"):
            resolver.ask_sync(Question("example.com", RdType.TXT))

    asyncio.run(inside())


# -- factory ---------------------------------------------------------------


def test_build_resolver_with_zones_is_offline(tmp_path: Path) -> None:
    zone = tmp_path / "example.com.zone"
    zone.write_text('example.com. 60 IN TXT "offline"\n')
    resolver = build_resolver([zone], ["127.0.0.1:1"], 0.3)
    assert isinstance(resolver, ZoneResolver)
    assert resolver.ask_sync(Question("example.com", RdType.TXT)).records == ("offline",)


def test_build_resolver_with_servers(server: DnsTestServer) -> None:
    resolver = build_resolver([], [server.spec], 2.0)
    assert isinstance(resolver, Resolver)
    assert resolver.servers == (("127.0.0.1", server.port),)
    assert resolver.timeout == 2.0
    assert resolver.ask_sync(Question("example.com", RdType.TXT)).ok


def test_build_resolver_errors_are_dns_errors(tmp_path: Path) -> None:
    with pytest.raises(DnsError, match="not an IP address"):
        build_resolver([], ["dns.example"], 1.0)
    bad = tmp_path / "bad.zone"
    bad.write_text("example.com. 60 IN A 1.2.3\n")
    with pytest.raises(DnsError, match=r"bad.zone:1: bad A record"):
        build_resolver([bad], [], 1.0)
    with pytest.raises(DnsError, match="timeout"):
        build_resolver([], [], 0)
