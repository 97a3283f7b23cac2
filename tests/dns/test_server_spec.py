"""parse_server_spec: HOST[:PORT] for --dns-server and Nameservers."""

from __future__ import annotations

import pytest

from mailseal.dns.resolver import format_server, parse_server_spec
from mailseal.errors import DnsError


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        (" 192.0.2.1:53 ", ("192.0.2.1", 53)),
        ("::1", ("::1", 53)),
        ("[::1]", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
        ("2001:DB8:0:0::53", ("2001:db8::53", 53)),
        ("::1:53", ("::1:53", 53)),  # a bare IPv6 address takes no port
        ("[2001:db8::1]:65535", ("2001:db8::1", 65535)),
    ],
)
def test_good_specs(spec: str, expected: tuple[str, int]) -> None:
    assert parse_server_spec(spec) == expected


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("", "empty DNS server address"),
        ("dns.example.com", "is not an IP address"),
        ("dns.example.com:53", "is not an IP address"),
        ("127.0.0.1:", "port '' is not a number"),
        ("127.0.0.1:0", "port '0' is not a number"),
        ("127.0.0.1:65536", "port '65536'"),
        ("127.0.0.1:53x", "port '53x'"),
        ("127.0.0.1:５３", "port '５３'"),
        ("[::1", "bad brackets"),
        ("[::1]5353", "bad brackets"),
        ("[127.0.0.1]:53", "brackets are only for IPv6"),
        ("256.1.1.1", "is not an IP address"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, complaint: str) -> None:
    with pytest.raises(DnsError) as caught:
        parse_server_spec(spec)
    assert complaint in str(caught.value)
    assert repr(spec.strip()) in str(caught.value) or not spec.strip()


@pytest.mark.parametrize("spec", ["127.0.0.1:5353", "[::1]:5353", "[2001:db8::1]:53"])
def test_format_is_the_inverse(spec: str) -> None:
    assert format_server(*parse_server_spec(spec)) == spec
