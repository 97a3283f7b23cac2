"""check_host() against a static resolver: limits, errors, explanations, the questions asked."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailseal.spf import (
    SpfLimits,
    SpfResult,
    check_helo,
    check_host,
    check_mailfrom,
)
from tests.spf.static_dns import StaticDns, Status, record

PASS, FAIL, SOFTFAIL = SpfResult.PASS, SpfResult.FAIL, SpfResult.SOFTFAIL
NEUTRAL, NONE = SpfResult.NEUTRAL, SpfResult.NONE
TEMPERROR, PERMERROR = SpfResult.TEMPERROR, SpfResult.PERMERROR


def test_pass_reports_the_term_and_record() -> None:
    dns = StaticDns({"example.com": record("v=spf1 ip4:192.0.2.0/24 -all")})
    verdict = dns.run(check_host("192.0.2.7", "example.com", "a@example.com"))
    assert (verdict.result, verdict.mechanism, verdict.lookups) == (PASS, "ip4:192.0.2.0/24", 0)
    assert verdict.record == "v=spf1 ip4:192.0.2.0/24 -all"
    assert verdict.domain == "example.com" and verdict.explanation is None
    assert dns.asked == [("example.com", "TXT")]


def test_only_txt_is_asked_for_records_never_type_spf() -> None:
    dns = StaticDns({"example.com": {"SPF": ["v=spf1 +all"]}})
    assert dns.run(check_host("192.0.2.7", "example.com", "a@example.com")).result is NONE
    assert dns.asked_types() == {"TXT"}


@pytest.mark.parametrize(
    ("records", "result"),
    [
        (["v=spf1 -all", "v=spf1 -all"], PERMERROR),  # identical records still count twice
        (["v=spf1 -all", "V=SPF1 +all"], PERMERROR),
        (["v=spf1 -all", "v=spf10 +all", "hello"], FAIL),
        (["v=spf1mx"], NONE),
        ([], NONE),
    ],
)
def test_record_selection(records: list[str], result: SpfResult) -> None:
    dns = StaticDns({"example.com": {"TXT": records, "A": ["192.0.2.7"]}})
    assert dns.run(check_host("192.0.2.7", "example.com", "a@example.com")).result is result


@pytest.mark.parametrize(
    "domain",
    ["com", "example..com", "[192.0.2.1]", "a" * 64 + ".example", "", "x@y.example", "a b.example"],
)
def test_malformed_domains_are_none_without_a_query(domain: str) -> None:
    dns = StaticDns({})
    verdict = dns.run(check_host("192.0.2.7", domain, "a@example.com"))
    assert verdict.result is NONE and "RFC 7208 §4.3" in verdict.reason
    assert dns.asked == []


def test_trailing_dot_and_case_are_ignored() -> None:
    dns = StaticDns({"example.com": record("v=spf1 -all")})
    verdict = dns.run(check_host("192.0.2.7", "Example.COM.", "a@example.com"))
    assert (verdict.result, verdict.domain) == (FAIL, "example.com")


def test_unicode_domain_is_asked_as_a_label() -> None:
    dns = StaticDns({"xn--bcher-kva.example": record("v=spf1 +all")})
    assert dns.run(check_host("192.0.2.7", "bücher.example", "a@bücher.example")).result is PASS


@pytest.mark.parametrize(
    ("failure", "result"),
    [(Status.TIMEOUT, TEMPERROR), (Status.SERVFAIL, TEMPERROR), (Status.NXDOMAIN, NONE)],
)
def test_record_lookup_failures(failure: Status, result: SpfResult) -> None:
    dns = StaticDns({}, fail={"example.com": failure})
    verdict = dns.run(check_host("192.0.2.7", "example.com", "a@example.com"))
    assert verdict.result is result


@pytest.mark.parametrize(
    ("term", "failing", "result"),
    [
        ("a:h.example.com", ("h.example.com", "A"), TEMPERROR),
        ("mx:m.example.com", ("m.example.com", "MX"), TEMPERROR),
        ("mx:m.example.com", ("mx1.example.com", "A"), TEMPERROR),  # an MX host's address
        ("exists:e.example.com", ("e.example.com", "A"), TEMPERROR),
        ("include:i.example.com", ("i.example.com", "TXT"), TEMPERROR),
        ("redirect=i.example.com", ("i.example.com", "TXT"), TEMPERROR),
        ("ptr", ("7.2.0.192.in-addr.arpa", "PTR"), FAIL),  # "fails to match" (§5.5)
        ("ptr", ("mx1.example.com", "A"), FAIL),  # that name is skipped
    ],
)
def test_dns_errors_in_mechanisms(term: str, failing: tuple[str, str], result: SpfResult) -> None:
    dns = StaticDns(
        {
            "example.com": record(f"v=spf1 {term} -all" if "=" not in term else f"v=spf1 {term}"),
            "m.example.com": {"MX": ["10 mx1.example.com"]},
            "7.2.0.192.in-addr.arpa": {"PTR": ["mx1.example.com"]},
            "mx1.example.com": {"A": ["192.0.2.7"]},
            "i.example.com": record("v=spf1 -all"),
        },
        fail={failing: Status.SERVFAIL},
    )
    verdict = dns.run(check_host("192.0.2.7", "example.com", "a@example.com"))
    assert verdict.result is result, verdict.reason
    if result is TEMPERROR:
        assert "servfail" in verdict.reason


@pytest.mark.parametrize(
    ("inner", "result", "mechanism"),
    [
        ("v=spf1 +all", PASS, "include:i.example.com"),
        ("v=spf1 -all", SOFTFAIL, "~all"),
        ("v=spf1 ~all", SOFTFAIL, "~all"),
        ("v=spf1 ?all", SOFTFAIL, "~all"),
        ("v=spf1", SOFTFAIL, "~all"),
        ("v=spf1 moo", PERMERROR, None),
        (None, PERMERROR, None),  # none at the target is a permerror (§5.2)
    ],
)
def test_include_results(inner: str | None, result: SpfResult, mechanism: str | None) -> None:
    data = {"example.com": record("v=spf1 include:i.example.com ~all")}
    if inner is not None:
        data["i.example.com"] = record(inner)
    verdict = StaticDns(data).run(check_host("192.0.2.7", "example.com", "a@example.com"))
    assert (verdict.result, verdict.mechanism) == (result, mechanism)
    if result is PERMERROR:
        assert "include:i.example.com" in verdict.reason


def test_redirect_takes_the_targets_result_domain_and_explanation() -> None:
    dns = StaticDns(
        {
            "example.com": record("v=spf1 ip4:198.51.100.1 exp=old.example.com redirect=_s.%{d}"),
            "_s.example.com": record("v=spf1 a -all exp=new.%{d}"),
            "new._s.example.com": {"TXT": ["%{d} says no to %{i}"]},
            "old.example.com": {"TXT": ["never shown"]},
        }
    )
    verdict = dns.run(check_host("192.0.2.7", "example.com", "a@example.com"))
    assert (verdict.result, verdict.mechanism) == (FAIL, "-all")
    assert verdict.explanation == "_s.example.com says no to 192.0.2.7"
    assert ("_s.example.com", "A") in dns.asked  # "a" means the redirect target
    assert verdict.lookups == 2 and verdict.void_lookups == 1
    assert verdict.record == "v=spf1 ip4:198.51.100.1 exp=old.example.com redirect=_s.%{d}"


@pytest.mark.parametrize("target", [None, "v=spf2.0/pra -all"])
def test_redirect_to_nothing_is_permerror(target: str | None) -> None:
    data = {"example.com": record("v=spf1 redirect=r.example.com")}
    if target is not None:
        data["r.example.com"] = record(target)
    verdict = StaticDns(data).run(check_host("192.0.2.7", "example.com", "a@example.com"))
    assert verdict.result is PERMERROR and "redirect=r.example.com" in verdict.reason


def test_redirect_is_ignored_when_all_is_present() -> None:
    dns = StaticDns({"example.com": record("v=spf1 redirect=r.example.com ?all")})
    verdict = dns.run(check_host("192.0.2.7", "example.com", "a@example.com"))
    assert verdict.result is NEUTRAL and verdict.lookups == 0
    assert dns.asked == [("example.com", "TXT")]


def test_explanation_only_on_fail_and_never_counted() -> None:
    data = {
        "example.com": record("v=spf1 ip4:192.0.2.1 -ip4:192.0.2.2 ~all exp=nx.example.com"),
        "x.example.com": record("v=spf1 -all exp=e.example.com"),
        "e.example.com": {"TXT": ["%{i} may not send for %{o} (%{c}, %{r}, %{t})"]},
    }
    for ip, result in [("192.0.2.1", PASS), ("192.0.2.3", SOFTFAIL)]:
        dns = StaticDns(data)
        verdict = dns.run(check_host(ip, "example.com", "a@example.com"))
        assert verdict.result is result and dns.asked == [("example.com", "TXT")]
    dns = StaticDns(data)
    verdict = dns.run(check_host("192.0.2.2", "example.com", "a@example.com"))
    assert (verdict.result, verdict.explanation) == (FAIL, None)  # exp target does not exist
    assert (verdict.lookups, verdict.void_lookups) == (0, 0)
    dns = StaticDns(data)
    verdict = dns.run(
        check_host("192.0.2.9", "x.example.com", "a@example.com", receiver="mx.here", now=42)
    )
    assert verdict.explanation == "192.0.2.9 may not send for example.com (192.0.2.9, mx.here, 42)"


@pytest.mark.parametrize(
    "texts",
    [[], ["one", "two"], ["The %{x}-files."], ["caf\xe9"], [""]],
)
def test_unusable_explanations_are_dropped(texts: list[str]) -> None:
    dns = StaticDns(
        {"example.com": record("v=spf1 -all exp=e.example.com"), "e.example.com": {"TXT": texts}}
    )
    verdict = dns.run(check_host("192.0.2.7", "example.com", "a@example.com"))
    assert verdict.result is FAIL and verdict.explanation is None


def test_include_does_not_lend_its_explanation() -> None:
    dns = StaticDns(
        {
            "example.com": record("v=spf1 -include:i.example.com"),
            "i.example.com": record("v=spf1 +all exp=e.example.com"),
            "e.example.com": {"TXT": ["from the include"]},
        }
    )
    verdict = dns.run(check_host("192.0.2.7", "example.com", "a@example.com"))
    assert (verdict.result, verdict.mechanism, verdict.explanation) == (
        FAIL,
        "-include:i.example.com",
        None,
    )


# -- limits (§4.6.4) ---------------------------------------------------------


def test_lookups_are_counted_lazily_across_includes() -> None:
    dns = StaticDns(
        {
            "example.com": record("v=spf1 a include:i.example.com ip4:192.0.2.7 mx ptr -all"),
            "i.example.com": record("v=spf1 a:x.example.com a:y.example.com"),
            "x.example.com": {"A": ["192.0.2.1"]},
            "y.example.com": {"A": ["192.0.2.2"]},
        }
    )
    dns.data["example.com"]["A"] = ["192.0.2.99"]
    verdict = dns.run(check_host("192.0.2.7", "example.com", "a@example.com"))
    assert (verdict.result, verdict.lookups, verdict.void_lookups) == (PASS, 4, 0)
    assert ("example.com", "MX") not in dns.asked  # terms after the match cost nothing


@pytest.mark.parametrize(("limit", "result"), [(4, PASS), (3, PERMERROR)])
def test_custom_lookup_limit(limit: int, result: SpfResult) -> None:
    dns = StaticDns(
        {
            "example.com": record("v=spf1 a:a1.example a:a2.example a:a3.example a:a4.example"),
            "a1.example": {"A": ["192.0.2.1"]},
            "a2.example": {"A": ["192.0.2.2"]},
            "a3.example": {"A": ["192.0.2.3"]},
            "a4.example": {"A": ["192.0.2.4"]},
        }
    )
    verdict = dns.run(
        check_host("192.0.2.4", "example.com", "a@example.com", limits=SpfLimits(lookups=limit))
    )
    assert verdict.result is result
    assert verdict.lookups == 4
    if result is PERMERROR:
        assert "more than 3 DNS-querying terms" in verdict.reason


def test_eleventh_term_is_a_permerror_even_if_it_would_match() -> None:
    names = {f"a{i}.example": {"A": [f"192.0.2.{i}"]} for i in range(1, 12)}
    terms = " ".join(f"a:a{i}.example" for i in range(1, 12))
    dns = StaticDns({"example.com": record(f"v=spf1 {terms}"), **names})
    assert dns.run(check_host("192.0.2.10", "example.com", "a@x.example")).result is PASS
    verdict = StaticDns({"example.com": record(f"v=spf1 {terms}"), **names}).run(
        check_host("192.0.2.11", "example.com", "a@x.example")
    )
    assert (verdict.result, verdict.lookups) == (PERMERROR, 11)


def test_third_void_term_is_a_permerror_at_once() -> None:
    # The third void is the last term: it must still be noticed (a bug other
    # implementations had: checking only when moving on to the next term).
    dns = StaticDns({"example.com": record("v=spf1 a:n1.example a:n2.example exists:n3.example")})
    verdict = dns.run(check_host("192.0.2.7", "example.com", "a@example.com"))
    assert (verdict.result, verdict.void_lookups) == (PERMERROR, 3)
    assert "void lookups" in verdict.reason and "n3.example" in verdict.reason


def test_void_limit_inside_an_include_ends_the_check() -> None:
    dns = StaticDns(
        {
            "example.com": record("v=spf1 a:n1.example include:i.example ?all"),
            "i.example": record("v=spf1 a:n2.example a:n3.example"),
        }
    )
    verdict = dns.run(check_host("192.0.2.7", "example.com", "a@example.com"))
    assert verdict.result is PERMERROR and "(via include:i.example)" in verdict.reason


def test_nodata_counts_as_void_but_mx_host_addresses_do_not() -> None:
    # pyspf #44 and mailauth #104: an IPv6 client and IPv4-only MX hosts. The
    # limit is on terms; the MX hosts' empty AAAA answers are not terms.
    dns = StaticDns(
        {
            "example.com": record("v=spf1 mx a:v4only.example ip6:2001:db8::/32 -all"),
            "v4only.example": {"A": ["192.0.2.9"]},
        }
    )
    dns.data["example.com"]["MX"] = [f"{i} mx{i}.example" for i in range(4)]
    for i in range(4):
        dns.data[f"mx{i}.example"] = {"A": [f"192.0.2.{i}"]}
    verdict = dns.run(check_host("2001:db8::1", "example.com", "a@example.com"))
    assert (verdict.result, verdict.void_lookups, verdict.lookups) == (PASS, 1, 2)


def test_mx_record_limit() -> None:
    def run(count: int) -> SpfResult:
        dns = StaticDns(
            {"example.com": record("v=spf1 mx -all"), "h.example": {"A": ["192.0.2.7"]}}
        )
        dns.data["example.com"]["MX"] = [f"{i} h.example" for i in range(count)] + ["0 ."]
        return dns.run(check_host("192.0.2.7", "example.com", "a@example.com")).result

    assert run(10) is PASS  # ten, plus a null MX that names no host
    assert run(11) is PERMERROR


def test_null_mx_and_no_implicit_mx() -> None:
    dns = StaticDns({"example.com": {"TXT": ["v=spf1 mx -all"], "MX": ["0 ."], "A": ["192.0.2.7"]}})
    verdict = dns.run(check_host("192.0.2.7", "example.com", "a@example.com"))
    assert verdict.result is FAIL and ("example.com", "A") not in dns.asked


def test_ptr_uses_the_first_ten_names_and_validates_only_candidates() -> None:
    ptrs = [f"h{i}.other.example" for i in range(10)] + ["mail.example.com"]
    dns = StaticDns(
        {
            "example.com": record("v=spf1 ptr -all"),
            "7.2.0.192.in-addr.arpa": {"PTR": ptrs},
            "mail.example.com": {"A": ["192.0.2.7"]},
        }
    )
    assert dns.run(check_host("192.0.2.7", "example.com", "a@example.com")).result is FAIL
    assert [q for q in dns.asked if q[1] == "A"] == []  # no candidate among the first ten
    dns.data["7.2.0.192.in-addr.arpa"]["PTR"] = ["x.example.com", "mail.example.com"]
    assert dns.run(check_host("192.0.2.7", "example.com", "a@example.com")).result is PASS


def test_ptr_nothing_counts_a_void() -> None:
    dns = StaticDns({"example.com": record("v=spf1 ptr ?all")})
    verdict = dns.run(check_host("2001:db8::7", "example.com", "a@example.com"))
    assert (verdict.result, verdict.void_lookups) == (NEUTRAL, 1)
    assert dns.asked[1] == (ipaddress.ip_address("2001:db8::7").reverse_pointer, "PTR")


def test_p_macro_prefers_the_domain_then_subdomains_and_caches() -> None:
    dns = StaticDns(
        {
            "example.com": record("v=spf1 exists:%{p}.a.test exists:%{p}.b.test -all"),
            "7.2.0.192.in-addr.arpa": {"PTR": ["other.example", "mx.example.com"]},
            "other.example": {"A": ["192.0.2.7"]},
            "mx.example.com": {"A": ["192.0.2.7"]},
            "mx.example.com.b.test": {"A": ["127.0.0.2"]},
        }
    )
    verdict = dns.run(check_host("192.0.2.7", "example.com", "a@example.com"))
    assert (verdict.result, verdict.mechanism) == (PASS, "exists:%{p}.b.test")
    assert dns.asked.count(("7.2.0.192.in-addr.arpa", "PTR")) == 1
    assert ("other.example", "A") not in dns.asked  # the preferred name validated first
    assert verdict.lookups == 2  # %{p}'s own queries are not terms


def test_p_macro_is_unknown_on_dns_errors() -> None:
    dns = StaticDns(
        {
            "example.com": record("v=spf1 exists:%{p}.x.test -all"),
            "unknown.x.test": {"A": ["1.2.3.4"]},
        },
        fail={"7.2.0.192.in-addr.arpa": Status.TIMEOUT},
    )
    assert dns.run(check_host("192.0.2.7", "example.com", "a@example.com")).result is PASS


def test_ipv4_mapped_client_is_ipv4() -> None:
    dns = StaticDns({"example.com": record("v=spf1 a ip6:::ffff:0:0/96 -all")})
    dns.data["example.com"]["A"] = ["192.0.2.7"]
    verdict = dns.run(check_host("::ffff:192.0.2.7", "example.com", "a@example.com"))
    assert (verdict.result, verdict.mechanism) == (PASS, "a")
    assert ("example.com", "AAAA") not in dns.asked


@pytest.mark.parametrize(
    ("ip", "term", "result"),
    [
        ("192.0.2.200", "a/24", PASS),
        ("192.0.3.1", "a/24", FAIL),
        ("2001:db8:0:1::5", "a//64", PASS),
        ("2001:db8:0:2::5", "a//64", FAIL),
        ("2001:db8:0:2::5", "a/24//48", PASS),
        ("203.0.113.1", "a/0", PASS),
        ("2001:db9::1", "a//0", PASS),
    ],
)
def test_dual_cidr(ip: str, term: str, result: SpfResult) -> None:
    dns = StaticDns(
        {
            "example.com": {
                "TXT": [f"v=spf1 {term} -all"],
                "A": ["192.0.2.1"],
                "AAAA": ["2001:db8:0:1::1"],
            }
        }
    )
    assert dns.run(check_host(ip, "example.com", "a@example.com")).result is result


def test_target_that_is_no_name_matches_nothing_without_a_query() -> None:
    dns = StaticDns({"example.com": record("v=spf1 a:%{l}.example.com exists:x..example.com -all")})
    verdict = dns.run(check_host("192.0.2.7", "example.com", "a" * 70 + "@example.com"))
    assert verdict.result is FAIL and verdict.lookups == 2
    assert dns.asked == [("example.com", "TXT")]


def test_names_are_asked_literally() -> None:
    dns = StaticDns({"example.com": record("v=spf1 exists:%{l}.x.example -all")})
    dns.run(check_host("192.0.2.7", "example.com", "a\\b@example.com"))
    assert dns.asked[-1] == ("a\\\\b.x.example", "A")  # the backslash is escaped, not an escape


# -- identities (§2.3, §2.4) ---------------------------------------------------


def test_mailfrom_null_sender_is_postmaster_at_helo() -> None:
    dns = StaticDns(
        {
            "mx.example.com": record("v=spf1 -all exp=e.example.com"),
            "e.example.com": {"TXT": ["%{s} %{l} %{o} %{h}"]},
        }
    )
    verdict = dns.run(check_mailfrom("192.0.2.7", "", "mx.example.com"))
    assert verdict.domain == "mx.example.com"
    assert (
        verdict.explanation == "postmaster@mx.example.com postmaster mx.example.com mx.example.com"
    )
    assert dns.run(check_mailfrom("192.0.2.7", "", None)).result is NONE


def test_mailfrom_uses_the_part_after_the_last_at() -> None:
    dns = StaticDns(
        {
            "example.com": record("v=spf1 -all exp=e.example.com"),
            "e.example.com": {"TXT": ["%{l}|%{h}"]},
        }
    )
    verdict = dns.run(check_mailfrom("192.0.2.7", '"a@b"@example.com', None))
    assert verdict.explanation == '"a@b"|unknown'
    verdict = dns.run(check_mailfrom("192.0.2.7", "@example.com", "h.example"))
    assert verdict.explanation == "postmaster|h.example"


def test_helo_identity() -> None:
    dns = StaticDns({"mx.example.com": {"TXT": ["v=spf1 a -all"], "A": ["192.0.2.7"]}})
    verdict = dns.run(check_helo("192.0.2.7", "mx.example.com"))
    assert (verdict.result, verdict.domain) == (PASS, "mx.example.com")
    assert dns.run(check_helo("192.0.2.7", "localhost")).result is NONE


def test_bad_client_ip_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        StaticDns({}).run(check_host("not-an-ip", "example.com", "a@example.com"))


def test_at_sign_alone_is_a_label_not_the_origin() -> None:
    dns = StaticDns({"example.com": record("v=spf1 a:%{l}.x.example -all")})
    dns.run(check_host("192.0.2.7", "example.com", "@@example.com"))
    assert dns.asked[-1] == ("@.x.example", "A")


def test_nesting_is_bounded_whatever_the_lookup_limit() -> None:
    dns = StaticDns({"loop.example": record("v=spf1 include:loop.example")})
    limits = SpfLimits(lookups=10_000)
    verdict = dns.run(check_host("192.0.2.7", "loop.example", "a@loop.example", limits=limits))
    assert verdict.result is PERMERROR and "nested more than 64 deep" in verdict.reason


# -- properties ----------------------------------------------------------------

_NAMES = ["a.example", "b.example", "c.example", "nx.example"]
_term = st.one_of(
    st.sampled_from(
        [
            "a",
            "mx",
            "ptr",
            "-all",
            "~all",
            "?all",
            "ip4:192.0.2.0/25",
            "ip6:2001:db8::/33",
            "exists:%{i}.x.example",
            "a:%{d}",
            "mx/24//64",
            "ptr:example",
            "exp=e.example",
        ]
    ),
    st.builds(
        lambda q, n: f"{q}include:{n}",
        st.sampled_from(["", "-", "~", "?"]),
        st.sampled_from(_NAMES),
    ),
    st.builds(lambda n: f"redirect={n}", st.sampled_from(_NAMES)),
    st.builds(lambda n: f"a:{n}", st.sampled_from(_NAMES)),
)
_record = st.lists(_term, max_size=8).map(lambda terms: "v=spf1 " + " ".join(terms))


@settings(max_examples=300, deadline=None)
@given(
    records=st.fixed_dictionaries({n: _record for n in _NAMES[:3]}),
    ip=st.sampled_from(["192.0.2.1", "192.0.2.200", "2001:db8::1", "::ffff:192.0.2.1"]),
    fail=st.sampled_from([None, "b.example", "c.example"]),
)
def test_any_policy_gives_a_verdict_within_the_limits(
    records: dict[str, str], ip: str, fail: str | None
) -> None:
    data = {
        name: {"TXT": [text], "A": ["192.0.2.1"], "MX": ["10 b.example"]}
        for name, text in records.items()
    }
    data["e.example"] = {"TXT": ["%{i} %{c} %{p}"]}
    data["1.2.0.192.in-addr.arpa"] = {"PTR": ["a.example"]}
    dns = StaticDns(data, fail={fail: Status.TIMEOUT} if fail else None)
    verdict = dns.run(check_host(ip, "a.example", "x@a.example"))
    assert verdict.lookups <= 11 and verdict.void_lookups <= 3
    if verdict.lookups == 11 or verdict.void_lookups == 3:
        assert verdict.result is PERMERROR
    if verdict.explanation is not None:
        assert verdict.result is FAIL
    if verdict.result in (PASS, FAIL, SOFTFAIL):
        assert verdict.mechanism is not None
    assert all(rdtype in {"TXT", "A", "AAAA", "MX", "PTR"} for _, rdtype in dns.asked)
