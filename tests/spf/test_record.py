"""Parsing SPF records into terms (RFC 7208 §4.5, §4.6.1, §5, §6)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailseal.spf.record import (
    Kind,
    Qualifier,
    SpfRecord,
    SpfSyntaxError,
    is_spf_record,
    parse_record,
    spf_records,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v=spf1", True),
        ("v=spf1 -all", True),
        ("V=SpF1 ~all", True),  # ABNF strings are case-insensitive
        ("v=spf1  ", True),
        ("v=spf10", False),
        ("v=spf1mx", False),  # joined strings without a space (suite: nospace1)
        (" v=spf1 -all", False),
        ("v=spf2.0/pra -all", False),
        ("", False),
        ("spf1", False),
    ],
)
def test_version(text: str, expected: bool) -> None:
    assert is_spf_record(text) is expected


def test_spf_records_keeps_order_and_skips_others() -> None:
    texts = ["google-site-verification=x", "v=spf1 -all", "v=spf10", "V=spf1 +all"]
    assert spf_records(texts) == ["v=spf1 -all", "V=spf1 +all"]


def test_every_mechanism() -> None:
    record = parse_record(
        "v=spf1 +all -include:_spf.example.net ~a ?a:mail.%{d2}/24//64 mx mx:example.org//48 "
        "ptr ptr:example.com ip4:192.0.2.1/24 ip6:2001:DB8::/32 exists:%{ir}.bl.example.net"
    )
    kinds = [(m.qualifier, m.kind) for m in record.mechanisms]
    assert kinds == [
        (Qualifier.PASS, Kind.ALL),
        (Qualifier.FAIL, Kind.INCLUDE),
        (Qualifier.SOFTFAIL, Kind.A),
        (Qualifier.NEUTRAL, Kind.A),
        (Qualifier.PASS, Kind.MX),
        (Qualifier.PASS, Kind.MX),
        (Qualifier.PASS, Kind.PTR),
        (Qualifier.PASS, Kind.PTR),
        (Qualifier.PASS, Kind.IP4),
        (Qualifier.PASS, Kind.IP6),
        (Qualifier.PASS, Kind.EXISTS),
    ]
    m = record.mechanisms
    assert m[1].target is not None and m[1].target.text == "_spf.example.net"
    assert m[2].target is None and (m[2].cidr4, m[2].cidr6) == (32, 128)
    assert m[3].target is not None and m[3].target.text == "mail.%{d2}"
    assert (m[3].cidr4, m[3].cidr6) == (24, 64)
    assert m[5].target is not None and (m[5].cidr4, m[5].cidr6) == (32, 48)
    assert m[8].network == ipaddress.ip_network("192.0.2.0/24")  # host bits dropped
    assert m[9].network == ipaddress.ip_network("2001:db8::/32")
    assert [x.text for x in m][:3] == ["+all", "-include:_spf.example.net", "~a"]
    assert record.dns_terms == 8


def test_modifiers() -> None:
    record = parse_record("v=spf1 mx Redirect=_spf.example.com exp=why.%{d} x-Custom.1=%{d}")
    assert record.redirect is not None and record.redirect.value.text == "_spf.example.com"
    assert record.explanation is not None and record.explanation.value.text == "why.%{d}"
    assert [u.name for u in record.unknown] == ["x-custom.1"]
    assert record.effective_redirect is record.redirect
    assert record.dns_terms == 2


def test_redirect_is_ignored_with_all() -> None:
    record = parse_record("v=spf1 redirect=_spf.example.com ~all")
    assert record.has_all and record.effective_redirect is None
    assert record.dns_terms == 0


@pytest.mark.parametrize(
    ("term", "target", "cidr4", "cidr6"),
    [
        ("a", None, 32, 128),
        ("a/0", None, 0, 128),
        ("a//0", None, 32, 0),
        ("a/24//64", None, 24, 64),
        ("mx:foo.example.com/24", "foo.example.com", 24, 128),
        ("a:foo:bar/baz.example.com", "foo:bar/baz.example.com", 32, 128),
        ("a:foo/24.example.com//96", "foo/24.example.com", 32, 96),
        ("a:%{d}/30", "%{d}", 30, 128),
        ("A:Example.COM", "Example.COM", 32, 128),
    ],
)
def test_a_and_mx_arguments(term: str, target: str | None, cidr4: int, cidr6: int) -> None:
    (mechanism,) = parse_record(f"v=spf1 {term}").mechanisms
    assert (mechanism.target.text if mechanism.target else None) == target
    assert (mechanism.cidr4, mechanism.cidr6) == (cidr4, cidr6)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ("v=spf1 moo", "unknown mechanism 'moo'"),
        ("v=spf1 -all.", "unknown mechanism 'all.'"),
        ("v=spf1 all:foo", "'all' takes no argument"),
        ("v=spf1 -all/8", "'all' takes no argument"),
        ("v=spf1 redirect:example.com", "redirect is a modifier"),
        ("v=spf1 1up=foo", "neither a mechanism nor a modifier"),
        ("v=spf1 =all", "neither a mechanism nor a modifier"),
        ("v=spf1 +foo=bar", "a modifier takes no qualifier"),
        ("v=spf1 include", "'include' needs ':' and a domain"),
        ("v=spf1 exists", "'exists' needs ':' and a domain"),
        ("v=spf1 include:", "empty domain-spec"),
        ("v=spf1 a:", "empty domain-spec"),
        ("v=spf1 a:/24", "empty domain-spec"),
        ("v=spf1 include:example.com/24", "not a valid domain-spec"),
        ("v=spf1 ptr/0", "no prefix length"),
        ("v=spf1 a/33", "/33 is not 0 to 32"),
        ("v=spf1 a//129", "/129 is not 0 to 128"),
        ("v=spf1 a/032", "/032 is not 0 to 32"),
        ("v=spf1 a/24/64", "bad prefix length"),
        ("v=spf1 a/", "bad prefix length"),
        ("v=spf1 a:museum", "not a valid domain-spec"),
        ("v=spf1 a:museum.", "not a valid domain-spec"),
        ("v=spf1 a:example.-com", "not a valid domain-spec"),
        ("v=spf1 a:abc.123", "not a valid domain-spec"),
        ("v=spf1 a:111.222.33.44", "not a valid domain-spec"),
        ("v=spf1 a:example.com:8080", "not a valid domain-spec"),
        ("v=spf1 ip4", "'ip4' needs ':'"),
        ("v=spf1 ip4:1.2.3", "not a full IPv4 address"),
        ("v=spf1 ip4:1.2.3.4.5", "not a full IPv4 address"),
        ("v=spf1 ip4:01.2.3.4", "not a full IPv4 address"),
        ("v=spf1 ip4:256.2.3.4", "not a full IPv4 address"),
        ("v=spf1 ip4:1.2.3.4/33", "/33 is not 0 to 32"),
        ("v=spf1 ip4:1.2.3.4/032", "/032 is not 0 to 32"),
        ("v=spf1 ip4:1.2.3.4//32", "'ip4' needs ':'"),
        ("v=spf1 ip4:1.2.3.4:8080", "'ip4' needs ':'"),
        ("v=spf1 ip6", "'ip6' needs ':'"),
        ("v=spf1 ip6::CAFE::BABE", "not an IPv6 address"),
        ("v=spf1 ip6:fe80::1%eth0", "'ip6' needs ':'"),
        ("v=spf1 ip6:::1/129", "/129 is not 0 to 128"),
        ("v=spf1 ip6:::1//64", "'ip6' needs ':'"),
        ("v=spf1 exp=", "empty domain-spec"),
        ("v=spf1 exp=-all", "not a valid domain-spec"),
        ("v=spf1 redirect=", "empty domain-spec"),
        ("v=spf1 exp=%{r}.example.com", "allowed only in explanation text"),
        ("v=spf1 exp=a.example.com exp=b.example.com", "exp= appears more than once"),
        ("v=spf1 redirect=a.example.com REDIRECT=a.example.com", "redirect= appears more"),
        ("v=spf1 foo=%abc", "is not a macro"),
        ("v=spf1 a:foo.example.com\x00", "control character 0x00"),
        ("v=spf1 ip4:192.0.2.5\n include:x.example", "control character 0x0a"),
        ("v=spf1 a\tmx", "control character 0x09"),
        ("v=spf1 a:\xc3\xafexample.net", "non-ASCII byte 0xc3"),
        ("v=spf2", "not an SPF record"),
    ],
)
def test_syntax_errors(record: str, message: str) -> None:
    with pytest.raises(SpfSyntaxError) as caught:
        parse_record(record)
    assert message in str(caught.value)


def test_error_names_the_term_printably() -> None:
    with pytest.raises(SpfSyntaxError) as caught:
        parse_record("v=spf1 ip4:192.0.2.1 a:ctrl.example.com\rptr -all")
    assert caught.value.term == "a:ctrl.example.com\rptr"
    assert str(caught.value).startswith("a:ctrl.example.com\\x0dptr: control character 0x0d")


def test_spaces_between_and_after_terms() -> None:
    assert len(parse_record("v=spf1  a   -all  ").mechanisms) == 2
    assert parse_record("v=spf1").mechanisms == ()


def test_unknown_modifiers_may_hold_any_macro_letter() -> None:
    # c, r and t are only for explanations, but an unknown modifier is ignored
    # whole; only its macro syntax is checked.
    record = parse_record("v=spf1 note=%{c}-%{t}-%{r} default=+ x=")
    assert len(record.unknown) == 3


@given(st.text(alphabet=st.characters(max_codepoint=0x17F), max_size=80))
def test_any_text_parses_or_raises_syntax_error(tail: str) -> None:
    try:
        record = parse_record("v=spf1 " + tail)
    except SpfSyntaxError:
        return
    assert isinstance(record, SpfRecord)


@given(
    st.lists(
        st.sampled_from(
            [
                "a",
                "mx",
                "ptr",
                "all",
                "-all",
                "~all",
                "ip4:192.0.2.0/24",
                "ip6:2001:db8::/32",
                "include:_spf.%{d}",
                "exists:%{ir}.x.example",
                "a:mail.example.com/24//64",
                "redirect=example.net",
                "exp=why.example.com",
                "x-foo=%{l}",
            ]
        ),
        max_size=12,
    )
)
def test_terms_round_trip(terms: list[str]) -> None:
    text = "v=spf1 " + " ".join(terms)
    try:
        record = parse_record(text)
    except SpfSyntaxError as exc:
        assert "appears more than once" in str(exc)
        return
    written = [m.text for m in record.mechanisms]
    assert written == [t for t in terms if "=" not in t]
