"""The SPF macro language (RFC 7208 §7): parsing, expansion, domain-specs."""

from __future__ import annotations

import ipaddress

import pytest
import spf as pyspf  # type: ignore[import-untyped]  # test oracle only
from hypothesis import given, settings
from hypothesis import strategies as st

from mailseal.spf.macros import (
    Macro,
    MacroContext,
    MacroSyntaxError,
    expand,
    expand_name,
    parse_domain_spec,
    parse_macro_string,
)

# RFC 7208 §7.4: "The <sender> is strong-bad@email.example.com. The IPv4 SMTP
# client IP is 192.0.2.3. The IPv6 SMTP client IP is 2001:db8::cb01. The PTR
# domain name of the client IP is mx.example.org."
RFC = MacroContext(
    sender="strong-bad@email.example.com",
    domain="email.example.com",
    ip=ipaddress.ip_address("192.0.2.3"),
    helo="mx.example.org",
    validated="mx.example.org",
    receiver="receiver.example.net",
    now=1700000000,
)
RFC6 = MacroContext(
    sender=RFC.sender, domain=RFC.domain, ip=ipaddress.ip_address("2001:db8::cb01"), helo=RFC.helo
)


def x(text: str, ctx: MacroContext = RFC, explanation: bool = False) -> str:
    return expand(parse_macro_string(text, explanation=explanation), ctx)


@pytest.mark.parametrize(
    ("macro", "expansion"),
    [
        ("%{s}", "strong-bad@email.example.com"),
        ("%{o}", "email.example.com"),
        ("%{d}", "email.example.com"),
        ("%{d4}", "email.example.com"),
        ("%{d3}", "email.example.com"),
        ("%{d2}", "example.com"),
        ("%{d1}", "com"),
        ("%{dr}", "com.example.email"),
        ("%{d2r}", "example.email"),
        ("%{l}", "strong-bad"),
        ("%{l-}", "strong.bad"),
        ("%{lr}", "strong-bad"),
        ("%{lr-}", "bad.strong"),
        ("%{l1r-}", "strong"),
        ("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"),
        ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
        ("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"),
        ("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"),
        ("%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"),
    ],
)
def test_rfc_7208_examples(macro: str, expansion: str) -> None:
    assert x(macro) == expansion


def test_rfc_7208_ipv6_example() -> None:
    assert x("%{ir}.%{v}._spf.%{d2}", RFC6) == (
        "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"
    )


def test_other_letters() -> None:
    assert x("%{h} %{p} %{p2} %{i} %{v}", explanation=True) == (
        "mx.example.org mx.example.org example.org 192.0.2.3 in-addr"
    )
    assert x("%{c} %{r} %{t}", explanation=True) == "192.0.2.3 receiver.example.net 1700000000"
    assert x("%{c} %{v}", RFC6, explanation=True) == "2001:db8::cb01 ip6"
    assert x("%{p}", RFC6) == "unknown"  # the default: no validated name


def test_escapes_and_url_encoding() -> None:
    assert x("a%%b%_c%-d") == "a%b c%20d"
    ctx = MacroContext("~jack&jill=up-a_b3.c@example.com", "example.com", RFC.ip, "h.example")
    # Suite: upper-macro. Everything outside RFC 3986 unreserved is escaped.
    assert x("%{L}", ctx) == "~jack%26jill%3Dup-a_b3.c"
    assert x("%{D2}", ctx) == "example.com"
    assert x("%{S}", ctx) == "~jack%26jill%3Dup-a_b3.c%40example.com"


@pytest.mark.parametrize(
    ("macro", "expansion"),
    [
        ("%{l2r-}", "gladstone.philip"),  # suite: macro-reverse-split-on-dash
        ("%{l2r+-}", "gladstone.philip"),
        ("%{l+-}", "philip.gladstone.test"),
        ("%{l9}", "philip-gladstone-test"),  # more parts than there are: all
        ("%{l1}", "philip-gladstone-test"),  # one part, split on "." only
        ("%{lR}", "philip-gladstone-test"),  # "R" reverses too
        ("%{d999999999999}", "example.com"),
    ],
)
def test_transformers(macro: str, expansion: str) -> None:
    ctx = MacroContext("philip-gladstone-test@example.com", "example.com", RFC.ip, "h.example")
    assert x(macro, ctx) == expansion


def test_sender_without_local_part_keeps_the_context() -> None:
    ctx = MacroContext("postmaster@example.net", "example.net", RFC.ip, "h.example")
    assert x("%{l}@%{o}", ctx) == "postmaster@example.net"


def test_parse_pieces() -> None:
    spec = parse_macro_string("x.%{L2r-.}%%y")
    assert spec.pieces == ("x.", Macro("l", 2, True, "-.", escape=True), "%y")
    assert spec.uses("l") and not spec.uses("p")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("%", "is not a macro"),
        ("foo%", "is not a macro"),
        ("%a", "is not a macro"),
        ("%(ir)", "is not a macro"),
        ("%{d", "is not a macro"),
        ("%{}", "is not a macro"),
        ("%{x}", "'x' is not a macro letter"),
        ("%{a}", "'a' is not a macro letter"),
        ("%{d0}", "must not be 0"),
        ("%{d2x}", "is not a macro"),
        ("%{d r}", "is not a macro"),
        ("%{c}", "allowed only in explanation text"),
        ("%{R}", "allowed only in explanation text"),
        ("%{t}", "allowed only in explanation text"),
        ("a b", "not allowed"),
        ("a\tb", "not allowed"),
        ("caf\xe9", "not allowed"),
    ],
)
def test_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(MacroSyntaxError) as caught:
        parse_macro_string(text)
    assert message in str(caught.value)


def test_explanation_strings_allow_spaces_and_exp_letters() -> None:
    spec = parse_macro_string("%{i} is not %{c} at %{t} for %{r}", explanation=True)
    assert spec.uses("c") and spec.uses("t") and spec.uses("r")
    with pytest.raises(MacroSyntaxError):
        parse_macro_string("The %{x}-files.", explanation=True)  # suite: explanation-syntax-error
    with pytest.raises(MacroSyntaxError):
        parse_macro_string("\xefExplanation", explanation=True)  # suite: non-ascii-exp


@pytest.mark.parametrize(
    "text",
    [
        "example.com",
        "example.com.",
        "_spf.example.com",
        "%{d}",
        "%{d2}",
        "_spf.%{d2}",
        "%{ir}.%{v}._spf.%{d2}",
        "foo:bar/baz.example.com",
        "foo.example.xn--zckzah",
        "mail.example...com",  # syntax allows it; the name is unusable (no match)
        ".museum",
        "x.%{d}%%",
        "x.%{d}%-",
        "a-b.c-d.e3",
        "example.123a",
    ],
)
def test_valid_domain_specs(text: str) -> None:
    assert parse_domain_spec(text).text == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "museum",
        "museum.",
        "foo-bar",
        "example.-com",
        "example.com-",
        "abc.123",
        "111.222.33.44",
        "example.com:8080",
        "%{d}com",
        "%{d}.",  # a final dot only after a top-level label
        "example.com/24",
        "%%{d}",
    ],
)
def test_invalid_domain_specs(text: str) -> None:
    with pytest.raises(MacroSyntaxError):
        parse_domain_spec(text)


def test_expand_name_drops_final_dot_and_truncates() -> None:
    ctx = MacroContext(
        "test@somewhat.long.exp.example.com", "somewhat.long.exp.example.com", RFC.ip, "h"
    )
    assert expand_name(parse_domain_spec("%{d}.example."), ctx) == ctx.domain + ".example"
    spec = parse_domain_spec("foobar." + "%{o}." * 8 + "example.com")
    name = expand_name(spec, ctx)
    # Suite: domain-name-truncation. 258 characters lose "foobar." to fit 253.
    assert name == "somewhat.long.exp.example.com." * 8 + "example.com"
    assert len(name) == 251
    long_label = MacroContext("a@b.example", "x" * 300 + ".example", RFC.ip, "h")
    assert expand_name(parse_domain_spec("%{d}"), long_label) == "example"


# -- properties ------------------------------------------------------------

_piece = st.one_of(
    st.sampled_from(["%%", "%_", "%-", ".", "example", "-x", "_spf", "="]),
    st.builds(
        lambda letter, digits, rev, delims: f"%{{{letter}{digits}{rev}{delims}}}",
        st.sampled_from("slodipvhcrtSLODIPVHCRT"),
        st.sampled_from(["", "1", "2", "3", "10"]),
        st.sampled_from(["", "r", "R"]),
        st.sampled_from(["", ".", "-", "+-", "._=", ",/"]),
    ),
)


@given(st.lists(_piece, max_size=8))
def test_generated_macro_strings_parse_and_expand(pieces: list[str]) -> None:
    spec = parse_macro_string("".join(pieces), explanation=True)
    assert isinstance(expand(spec, RFC), str)
    assert isinstance(expand(spec, RFC6), str)


@given(st.text(max_size=40))
def test_any_text_parses_or_raises_macro_syntax_error(text: str) -> None:
    for explanation in (False, True):
        try:
            spec = parse_macro_string(text, explanation=explanation)
        except MacroSyntaxError:
            continue
        assert spec.text == text


_oracle_piece = st.one_of(
    st.sampled_from(["%_", "%-", ".", "x", "-", "_spf"]),  # pyspf rejects a final "%%"
    st.builds(
        lambda letter, digits, rev: f"%{{{letter}{digits}{rev}}}",
        st.sampled_from("sodivhSODIVH"),
        st.sampled_from(["", "1", "2", "5"]),
        st.sampled_from(["", "r"]),
    ),
    st.builds(
        lambda letter, digits, rev, delims: f"%{{{letter}{digits}{rev}{delims}}}",
        st.sampled_from("lsLS"),
        st.sampled_from(["", "1", "2"]),
        st.sampled_from(["", "r"]),
        st.sampled_from(["", "-", "+-", "._"]),
    ),
)


@settings(max_examples=200)
@given(
    pieces=st.lists(_oracle_piece, max_size=6),
    local=st.sampled_from(["strong-bad", "a+b-c", "x.y_z", "~jack&jill=up"]),
    domain=st.sampled_from(["email.example.com", "a.b.c.d.example.org", "example.net"]),
)
def test_expansion_agrees_with_pyspf(pieces: list[str], local: str, domain: str) -> None:
    """pyspf as an oracle, on the part of the language where it follows RFC 7208.

    Left out: ``p`` (needs DNS), IPv6 ``i`` (pyspf writes upper-case nibbles)
    and delimiters on letters other than ``l`` and ``s`` (pyspf keeps the
    original delimiters there; §7.3 says the parts are "rejoined using "."").
    """
    text = "".join(pieces)
    sender = f"{local}@{domain}"
    query = pyspf.query(i="192.0.2.3", s=sender, h="mx.example.org")
    ctx = MacroContext(sender, domain, ipaddress.ip_address("192.0.2.3"), "mx.example.org")
    assert expand(parse_macro_string(text), ctx) == query.expand(text, stripdot=False)
