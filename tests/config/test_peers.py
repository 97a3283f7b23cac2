"""Peer lists: OpenDKIM's matching order, and the two tutorial traps."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailseal.config.model import Warnings
from mailseal.config.peers import PeerList
from mailseal.errors import Where
from tests.config.conftest import ConfDir

LIST = Path("/etc/opendkim/TrustedHosts")


def peers(*lines: str, refile: bool = False) -> tuple[PeerList, Warnings]:
    warnings = Warnings()
    items = [(line, Where(LIST, n)) for n, line in enumerate(lines, 1)]
    return PeerList.parse(items, warnings, refile=refile), warnings


@pytest.mark.parametrize(
    ("lines", "ip", "host", "expected"),
    [
        # Addresses, IPv4 and IPv6, with and without brackets.
        (["127.0.0.1"], "127.0.0.1", None, True),
        (["127.0.0.1"], "127.0.0.2", None, False),
        (["[192.0.2.1]"], "192.0.2.1", None, True),
        (["192.0.2.1"], "[192.0.2.1]", None, True),
        (["::1"], "::1", None, True),
        (["2001:db8::1"], "2001:DB8:0:0::1", None, True),
        (["[2001:db8::1]"], "2001:db8::1", None, True),
        # CIDR.
        (["192.168.0.0/16"], "192.168.44.5", None, True),
        (["192.168.0.0/16"], "192.169.0.1", None, False),
        (["10.0.0.0/8"], "10.255.255.255", None, True),
        (["2001:db8::/32"], "2001:db8:ffff::5", None, True),
        (["2001:db8::/32"], "2001:db9::5", None, False),
        (["0.0.0.0/0"], "203.0.113.9", None, True),
        (["192.0.2.0/24"], "2001:db8::1", None, False),  # families never mix
        # Negation: the most specific entry wins, exclusions first at equal specificity.
        (["192.168.0.0/16", "!192.168.1.0/24"], "192.168.1.9", None, False),
        (["192.168.0.0/16", "!192.168.1.0/24"], "192.168.2.9", None, True),
        (["!192.168.1.0/24", "192.168.1.1"], "192.168.1.1", None, True),
        (["192.168.1.1", "!192.168.1.1"], "192.168.1.1", None, False),
        (["::/0", "!2001:db8::/48"], "2001:db8::7", None, False),
        # Host names and .domain.
        (["localhost"], None, "localhost", True),
        (["localhost"], None, "LOCALHOST", True),
        (["mail.example.com"], None, "mail.example.com", True),
        (["mail.example.com"], None, "smtp.example.com", False),
        ([".example.com"], None, "mail.example.com", True),
        ([".example.com"], None, "a.b.example.com", True),
        ([".example.com"], None, "example.com", False),  # a .domain names what is below it
        (["example.com"], None, "mail.example.com", False),
        ([".example.com", "!bad.example.com"], None, "bad.example.com", False),
        ([".example.com", "!.dev.example.com"], None, "x.dev.example.com", False),
        (["!.example.com", "ok.example.com"], None, "ok.example.com", True),
        # The name or the address: either matching is enough (dkimf_checkhost || checkip).
        (["!mail.example.com", "192.0.2.0/24"], "192.0.2.5", "mail.example.com", True),
        (["mail.example.com", "!192.0.2.5"], "192.0.2.5", "mail.example.com", True),
        (["192.0.2.5"], "192.0.2.6", "192.0.2.5", False),
        # IPv4-mapped IPv6 clients also match IPv4 entries (an OpenDKIM difference).
        (["192.0.2.0/24"], "::ffff:192.0.2.7", None, True),
        ([], "127.0.0.1", "localhost", False),
        (["127.0.0.1"], None, None, False),
        (["127.0.0.1"], "not-an-ip", None, False),
    ],
)
def test_matching(lines: list[str], ip: str | None, host: str | None, expected: bool) -> None:
    assert peers(*lines)[0].matches(ip, host) is expected


def test_default_internal_hosts_are_opendkims() -> None:
    default = PeerList.default_internal()
    assert default.matches("127.0.0.1", None) and default.matches("::1", None)
    # OpenDKIM's DEFINTERNAL is "csl:127.0.0.1,::1": no "localhost" name.
    assert not default.matches(None, "localhost")
    assert not default.matches("127.0.0.2", None)


# --- trap 1: a network with host bits set ---------------------------------------------


@pytest.mark.parametrize("refile", [False, True])
def test_cidr_with_host_bits_means_the_network(refile: bool) -> None:
    plist, warnings = peers("127.0.0.1", "192.168.0.1/24", refile=refile)
    assert plist.matches("192.168.0.77", None)
    assert not plist.matches("192.168.1.1", None)
    (w,) = warnings.freeze()
    assert str(w) == (
        "/etc/opendkim/TrustedHosts:2: OpenDKIM never matches '192.168.0.1/24' (a network "
        "must have its host bits zero); mailseal reads it as 192.168.0.0/24 (write that to "
        "mean the same in OpenDKIM)"
    )


def test_ipv6_network_with_host_bits() -> None:
    plist, warnings = peers("2001:db8::1/64")
    assert plist.matches("2001:db8::abcd", None)
    assert "2001:db8::/64" in warnings.freeze()[0].text


def test_non_canonical_ipv6_warns() -> None:
    plist, warnings = peers("0:0:0:0:0:0:0:1")
    assert plist.matches("::1", None)
    assert "inet_ntop" in warnings.freeze()[0].text


# --- trap 2: a wildcard in a refile: list -----------------------------------------------


def test_refile_wildcard_means_any_subdomain() -> None:
    plist, warnings = peers("127.0.0.1", "localhost", "*.example.com", refile=True)
    assert plist.matches("203.0.113.5", "mail.example.com")
    assert plist.matches(None, "a.b.EXAMPLE.com")
    assert not plist.matches(None, "example.com")
    assert not plist.matches(None, "mail.example.net")
    assert plist.matches(None, "localhost") and plist.matches("127.0.0.1", None)
    (w,) = warnings.freeze()
    assert w.where == Where(LIST, 3)
    assert w.text == (
        "OpenDKIM never matches '*.example.com': it tries the exclusion '!host' first and "
        "this pattern matches that too, so the host counts as excluded; mailseal matches any "
        "host name ending in '.example.com' (write '.example.com' to mean the same in OpenDKIM)"
    )


def test_refile_negated_wildcard_is_an_exclusion_without_warning() -> None:
    plist, warnings = peers(".example.com", "!*.dev.example.com", refile=True)
    assert plist.matches(None, "www.example.com")
    assert not plist.matches(None, "x.dev.example.com")
    assert warnings.freeze() == ()


def test_refile_wildcard_for_addresses() -> None:
    plist, warnings = peers("192.168.0.*", "!192.168.0.13", refile=True)
    assert plist.matches("192.168.0.200", None)
    assert not plist.matches("192.168.0.13", None)
    assert not plist.matches("192.168.1.1", None)
    assert warnings.freeze() == ()  # does not start with *: OpenDKIM matches it too


def test_wildcard_in_a_file_list_is_a_literal() -> None:
    # Only refile: lists have patterns; elsewhere "*.example.com" is a (never-matching) name.
    plist, warnings = peers("*.example.com")
    assert not plist.matches(None, "mail.example.com")
    assert "never matches" in warnings.freeze()[0].text


def test_garbage_entries_warn() -> None:
    plist, warnings = peers("300.1.2.3", "10.0.0.0/40", "a b")
    texts = [w.text for w in warnings.freeze()]
    assert texts == [
        "'300.1.2.3' is not a valid IP address or network; it never matches",
        "'10.0.0.0/40' has a bad prefix length; it never matches",
        "'a b' is neither a host name nor an IP address; it never matches",
    ]
    assert not plist.matches("10.0.0.1", "mail.example.com")


# --- through load_config -------------------------------------------------------------------


def test_lists_from_config(conf: ConfDir) -> None:
    conf.write("internal", "10.0.0.0/8\n.corp.example\n")
    cfg = conf.load(
        "Mode v\nInternalHosts file:internal\nExternalIgnoreList 192.0.2.0/24\n"
        "PeerList csl:203.0.113.9,[2001:db8::9]\n"
    )
    assert cfg.internal_hosts.matches("10.1.2.3", None)
    assert cfg.internal_hosts.matches(None, "pc.corp.example")
    assert not cfg.internal_hosts.matches("127.0.0.1", None)  # replacing the default
    assert cfg.external_ignore.matches("192.0.2.1", None)
    assert cfg.peer_list.matches("2001:db8::9", None)
    assert cfg.peer_list.matches("203.0.113.9", None)
