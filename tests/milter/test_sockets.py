"""Milter socket specifications (libmilter's forms, and Postfix's inet:host:port)."""

from __future__ import annotations

import pytest

from mailseal.milter.sockets import SocketFamily, SocketSpec, parse_socket_spec

GOOD = {
    "inet:8891@localhost": SocketSpec(SocketFamily.INET, ("localhost", 8891)),
    "inet:8891@127.0.0.1": SocketSpec(SocketFamily.INET, ("127.0.0.1", 8891)),
    "inet:8891": SocketSpec(SocketFamily.INET, ("", 8891)),
    "inet:8891@[192.0.2.1]": SocketSpec(SocketFamily.INET, ("192.0.2.1", 8891)),
    "inet6:8891@::1": SocketSpec(SocketFamily.INET6, ("::1", 8891)),
    "inet6:8891@[::1]": SocketSpec(SocketFamily.INET6, ("::1", 8891)),
    "inet6:8891": SocketSpec(SocketFamily.INET6, ("", 8891)),
    "inet:localhost:8891": SocketSpec(SocketFamily.INET, ("localhost", 8891)),
    "inet:[::1]:8891": SocketSpec(SocketFamily.INET6, ("::1", 8891)),
    "unix:/run/opendkim/opendkim.sock": SocketSpec(
        SocketFamily.UNIX, "/run/opendkim/opendkim.sock"
    ),
    "local:/var/spool/postfix/opendkim/opendkim.sock": SocketSpec(
        SocketFamily.UNIX, "/var/spool/postfix/opendkim/opendkim.sock"
    ),
    "/run/mailseal.sock": SocketSpec(SocketFamily.UNIX, "/run/mailseal.sock"),
    " INET:25@mx ": SocketSpec(SocketFamily.INET, ("mx", 25)),
}


@pytest.mark.parametrize(("spec", "expected"), GOOD.items(), ids=GOOD.keys())
def test_good_specs(spec: str, expected: SocketSpec) -> None:
    parsed = parse_socket_spec(spec)
    assert parsed == expected
    family, address = parsed  # unpacks as (family, address)
    assert (family, address) == (expected.family, expected.address)


BAD = [
    "",
    "inet:",
    "inet:0@localhost",
    "inet:70000@localhost",
    "inet:smtp@localhost",
    "inet:localhost",
    "tcp:8891@localhost",
    "unix:",
    "local:",
    "inet:８８９１@localhost",
]


@pytest.mark.parametrize("spec", BAD)
def test_bad_specs_say_what_is_allowed(spec: str) -> None:
    with pytest.raises(ValueError, match="socket|port"):
        parse_socket_spec(spec)
