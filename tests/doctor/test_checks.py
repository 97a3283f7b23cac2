"""The domain doctor's checks against static zones: each finding, its status and its fix."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from mailseal.dkim.keys import KeyType, SigningKey
from mailseal.dns.types import Answer, Question
from mailseal.dns.types import Status as DnsStatus
from mailseal.doctor.dkimcheck import COMMON_SELECTORS, Selector, Source, without_testing
from mailseal.doctor.findings import Status
from tests.doctor.domains import (
    BROKEN,
    BROKEN_HELO,
    BROKEN_IP,
    GOOD,
    GOOD_HELO,
    GOOD_IP,
    key_record,
    rsa_key,
    txt,
)
from tests.doctor.helpers import by_check, check, one, resolver, zone

OK, WARN, FAIL, ERROR = Status.OK, Status.WARN, Status.FAIL, Status.ERROR


def test_good_domain_is_all_ok_and_scores_10() -> None:
    report = check(GOOD, ip=GOOD_IP, helo=GOOD_HELO)
    assert report.score == 10.0
    assert not report.failed
    assert [f for f in report.findings if f.status is not OK] == []
    ids = [f.check for f in report.findings]
    for expected in (
        "mx",
        "mx.address",
        "spf.record",
        "spf.all",
        "spf.lookups",
        "spf.ip",
        "spf.helo",
        "dkim.key",
        "dmarc.record",
        "dmarc.policy",
        "dmarc.rua",
        "dmarc.alignment",
        "rdns.ptr",
        "rdns.fcrdns",
        "rdns.helo",
        "dnsbl",
        "mta-sts",
        "tls-rpt",
    ):
        assert expected in ids
    assert one(report.findings, "dkim.key").message.endswith("RSA 2048-bit key")
    assert "1 of 10" in one(report.findings, "spf.lookups").message


def test_broken_domain_findings_and_their_fixes() -> None:
    report = check(BROKEN, ip=BROKEN_IP, helo=BROKEN_HELO)
    f = report.findings
    assert report.failed and report.score < 5
    lookups = one(f, "spf.lookups", FAIL)
    assert "needs 11 DNS lookups; the limit is 10" in lookups.message
    assert lookups.fix and "include:s1.broken.example" in lookups.fix
    dmarc = one(f, "dmarc.record", FAIL)
    assert dmarc.fix == (
        'publish: _dmarc.broken.example. IN TXT "v=DMARC1; p=none; '
        'rua=mailto:postmaster@broken.example"'
    )
    fcrdns = one(f, "rdns.fcrdns", FAIL)
    assert "resolves to 192.0.2.99, not 192.0.2.20" in fcrdns.message
    assert fcrdns.fix and fcrdns.fix.startswith("publish: mail.broken.example. IN A 192.0.2.20")
    listed = one(f, "dnsbl", FAIL)
    assert "listed in dnsbl.example (127.0.0.2): listed for the mailseal test" in listed.message
    assert listed.fix
    testing = one(f, "dkim.testing", WARN)
    assert testing.fix and "t=y" not in testing.fix and testing.fix.startswith("publish: default.")
    assert one(f, "dkim.size", WARN).fix
    assert one(f, "spf.ip", FAIL).message.startswith("mail from 192.0.2.20 cannot pass SPF")
    assert one(f, "mta-sts", WARN).fix and one(f, "tls-rpt", WARN).fix
    # every deduction has its fix
    for finding in report.findings:
        if finding.deduction:
            assert finding.fix, finding


def test_refusal_codes_are_errors_not_listings() -> None:
    report = check(BROKEN, ip=BROKEN_IP, dnsbls=("refusing.example",))
    refused = one(report.findings, "dnsbl")
    assert refused.status is ERROR and refused.deduction == 0
    assert "127.255.255.254: query through a public or open resolver refused" in refused.message
    assert "not a listing" in refused.message and "is listed" not in refused.message


@pytest.mark.parametrize(
    ("answer", "words"),
    [("127.0.0.1", "no listing code"), ("203.0.113.9", "no listing code")],
)
def test_odd_blocklist_answers_are_errors(answer: str, words: str) -> None:
    dns = resolver(zone("odd.example", f"* IN A {answer}\n"))
    finding = one(check(GOOD, dns, ip=GOOD_IP, dnsbls=("odd.example",)).findings, "dnsbl")
    assert finding.status is ERROR and words in finding.message


def spf_zone(record: str, extra: str = "") -> dict[str, str]:
    return zone(
        "s.example", f"@ IN MX 10 mail\nmail IN A {GOOD_IP}\n@ IN TXT {txt(record)}\n{extra}"
    )


@pytest.mark.parametrize(
    ("record", "status", "fix"),
    [
        ("v=spf1 mx +all", FAIL, 'publish: s.example. IN TXT "v=spf1 mx -all"'),
        ("v=spf1 mx all", FAIL, 'publish: s.example. IN TXT "v=spf1 mx -all"'),
        ("v=spf1 mx ?all", WARN, 'publish: s.example. IN TXT "v=spf1 mx -all" (or ~all)'),
        ("v=spf1 mx", WARN, 'publish: s.example. IN TXT "v=spf1 mx -all"'),
        ("v=spf1 mx ~all", OK, None),
    ],
)
def test_spf_all(record: str, status: Status, fix: str | None) -> None:
    finding = one(check("s.example", resolver(spf_zone(record))).findings, "spf.all")
    assert (finding.status, finding.fix) == (status, fix)


def test_spf_missing_multiple_and_syntax() -> None:
    none = one(
        check("s.example", resolver(zone("s.example", "@ IN MX 10 mail\n")), ip=GOOD_IP).findings,
        "spf.record",
    )
    assert (
        none.status is FAIL
        and none.fix == 'publish: s.example. IN TXT "v=spf1 mx ip4:192.0.2.10 -all"'
    )
    two = zone("s.example", '@ IN TXT "v=spf1 mx -all"\n@ IN TXT "v=spf1 ip4:192.0.2.1 ~all"\n')
    multiple = one(check("s.example", resolver(two)).findings, "spf.record")
    assert multiple.status is FAIL and "2 SPF records" in multiple.message
    assert multiple.fix and '"v=spf1 mx ip4:192.0.2.1 ~all"' in multiple.fix
    bad = one(
        check("s.example", resolver(spf_zone("v=spf1 mx ip4:300.1.1.1 -all"))).findings,
        "spf.record",
    )
    assert bad.status is FAIL and "syntax error" in bad.message
    assert bad.fix and bad.fix.endswith('publish: s.example. IN TXT "v=spf1 mx -all"')


def test_spf_include_without_record_is_permerror() -> None:
    findings = check(
        "s.example", resolver(spf_zone("v=spf1 include:nothing.s.example -all"))
    ).findings
    record = one(findings, "spf.record")
    assert record.status is FAIL and "permerror" in record.message


def test_spf_ip_not_permitted_gets_the_record_that_permits_it() -> None:
    findings = check("s.example", resolver(spf_zone("v=spf1 mx -all")), ip="192.0.2.77").findings
    ip = one(findings, "spf.ip", FAIL)
    assert "192.0.2.77 is not allowed to send for s.example: SPF fail (matched -all)" in ip.message
    assert ip.fix == 'publish: s.example. IN TXT "v=spf1 mx ip4:192.0.2.77 -all"'
    v6 = one(
        check("s.example", resolver(spf_zone("v=spf1 mx -all")), ip="2001:db8::5").findings,
        "spf.ip",
    )
    assert v6.fix == 'publish: s.example. IN TXT "v=spf1 mx ip6:2001:db8::5 -all"'


def test_spf_void_lookups_over_two() -> None:
    record = "v=spf1 a:n1.s.example a:n2.s.example a:n3.s.example -all"
    findings = check("s.example", resolver(spf_zone(record))).findings
    assert any(
        "void lookups" in f.message or "do not exist" in f.message
        for f in by_check(findings, "spf.lookups")
    )


def test_spf_helo_fail_is_a_warning() -> None:
    dns = resolver({**spf_zone("v=spf1 a -all"), **zone("h.example", '@ IN TXT "v=spf1 -all"\n')})
    helo = one(check("s.example", dns, ip=GOOD_IP, helo="h.example").findings, "spf.helo")
    assert (
        helo.status is WARN
        and helo.fix == 'publish: h.example. IN TXT "v=spf1 ip4:192.0.2.10 -all"'
    )


def dkim_zone(records: dict[str, str]) -> dict[str, str]:
    body = "".join(f"{sel}._domainkey IN TXT {txt(rec)}\n" for sel, rec in records.items())
    return zone("k.example", '@ IN TXT "v=spf1 -all"\n' + body)


def dkim(records: dict[str, str], selectors: tuple[Selector, ...] = ()) -> list:  # type: ignore[type-arg]
    report = check("k.example", resolver(dkim_zone(records)), selectors=selectors)
    return [f for f in report.findings if f.check.startswith("dkim.")]


def test_dkim_no_common_selector_found() -> None:
    findings = dkim({})
    sel = one(findings, "dkim.selectors", WARN)
    assert all(s in sel.message for s in COMMON_SELECTORS)
    assert sel.fix and "mailseal setup -d k.example" in sel.fix


def test_dkim_given_selector_missing() -> None:
    finding = one(dkim({}, (Selector("mine"),)), "dkim.key", FAIL)
    assert "no DKIM key at mine._domainkey.k.example (no such name)" in finding.message
    assert finding.fix and "mailseal genkey -d k.example -s mine" in finding.fix


def test_dkim_revoked_given_fails_revoked_guess_is_fine() -> None:
    revoked = "v=DKIM1; k=rsa; p="
    assert one(dkim({"old": revoked}, (Selector("old"),)), "dkim.key").status is FAIL
    assert one(dkim({"mail": revoked}), "dkim.key").status is OK


def test_dkim_sizes() -> None:
    small = dkim({"mail": key_record(768)})
    assert one(small, "dkim.size", FAIL).fix and "genkey -b 2048" in (
        one(small, "dkim.size").fix or ""
    )
    assert one(dkim({"mail": key_record(1024)}), "dkim.size").status is WARN
    assert by_check(dkim({"mail": key_record(2048)}), "dkim.size") == []


def test_dkim_syntax_and_unusable_records() -> None:
    bad = one(dkim({"mail": "v=DKIM1; k=rsa; p=!!!"}), "dkim.key", FAIL)
    assert "does not parse" in bad.message
    sha1 = one(dkim({"mail": key_record(2048).replace("h=sha256", "h=sha1")}), "dkim.key", FAIL)
    assert "does not allow sha256" in sha1.message


def test_dkim_ed25519_only() -> None:
    pub = ed25519.Ed25519PrivateKey.generate().public_key()
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    findings = dkim(
        {"ed": f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"}, (Selector("ed"),)
    )
    assert one(findings, "dkim.key").status is OK
    assert one(findings, "dkim.rsa", WARN).fix


def test_dkim_keytable_key_that_is_not_published() -> None:
    key = SigningKey(rsa_key(2048), KeyType.RSA, 2048)
    other = key_record(1024)
    finding = one(dkim({"mail": other}, (Selector("mail", Source.CONFIG, key),)), "dkim.key", FAIL)
    assert "not this private key" in finding.message
    missing = one(dkim({}, (Selector("mail", Source.CONFIG, key),)), "dkim.key", FAIL)
    assert missing.fix and missing.fix.startswith("publish: mail._domainkey.k.example. IN TXT (")


def test_without_testing() -> None:
    assert without_testing("v=DKIM1; t=y; p=abc") == "v=DKIM1; p=abc"
    assert without_testing("v=DKIM1; t=y:s; p=abc") == "v=DKIM1; t=s; p=abc"
    assert without_testing("v=DKIM1;t = s:y;p=abc") == "v=DKIM1; t=s; p=abc"


def dmarc_zone(record: str | None, origin: str = "d.example", extra: str = "") -> dict[str, str]:
    body = f'@ IN TXT "v=spf1 ip4:{GOOD_IP} -all"\n'
    if record is not None:
        body += f'_dmarc IN TXT "{record}"\n'
    return zone(origin, body + extra)


def dmarc(record: str | None, domain: str = "d.example", extra: str = "") -> list:  # type: ignore[type-arg]
    report = check(domain, resolver(dmarc_zone(record, extra=extra)), selectors=(Selector("mail"),))
    return [f for f in report.findings if f.check.startswith("dmarc.")]


def test_dmarc_monitor_only() -> None:
    policy = one(dmarc("v=DMARC1; p=none; rua=mailto:d@d.example"), "dmarc.policy", WARN)
    assert policy.fix and policy.fix.endswith(
        'publish: _dmarc.d.example. IN TXT "v=DMARC1; p=quarantine; rua=mailto:d@d.example"'
    )
    testing = one(dmarc("v=DMARC1; p=quarantine; t=y; rua=mailto:d@d.example"), "dmarc.policy")
    assert testing.status is WARN and "t=y: applied as none" in testing.message


def test_dmarc_subdomain_uses_the_organizational_record() -> None:
    findings = dmarc(
        "v=DMARC1; p=reject; rua=mailto:d@d.example",
        domain="sub.d.example",
        extra="sub IN MX 10 mail\n",
    )
    record = one(findings, "dmarc.record", OK)
    assert "d.example's applies" in record.message


def test_dmarc_rua_and_syntax() -> None:
    unauthorized = one(
        dmarc("v=DMARC1; p=reject; rua=mailto:agg@elsewhere.example"), "dmarc.rua", FAIL
    )
    assert "d.example._report._dmarc.elsewhere.example" in (unauthorized.fix or "")
    missing = one(dmarc("v=DMARC1; p=reject"), "dmarc.rua", WARN)
    assert missing.fix and missing.fix.startswith("add rua= with an address you read")
    syntax = by_check(dmarc("v=DMARC1; p=rejct; rua=mailto:d@d.example"), "dmarc.syntax")
    assert syntax and syntax[0].status is FAIL and "p=reject" in (syntax[0].fix or "")
    two = zone(
        "d.example", '_dmarc IN TXT "v=DMARC1; p=none"\n_dmarc IN TXT "v=DMARC1; p=reject"\n'
    )
    record = one(check("d.example", resolver(two)).findings, "dmarc.record")
    assert record.status is FAIL and "2 DMARC records" in record.message


def test_dmarc_alignment_needs_dkim_or_spf() -> None:
    # no DKIM key at the given selector, SPF fine: only SPF aligns
    warned = one(dmarc("v=DMARC1; p=reject; rua=mailto:d@d.example"), "dmarc.alignment")
    assert warned.status is WARN and "only SPF" in warned.message
    nothing = zone("n.example", '_dmarc IN TXT "v=DMARC1; p=reject; rua=mailto:d@n.example"\n')
    failed = one(
        check("n.example", resolver(nothing), selectors=(Selector("mail"),)).findings,
        "dmarc.alignment",
    )
    assert failed.status is FAIL and failed.fix


def test_mx_cases() -> None:
    null = one(check("m.example", resolver(zone("m.example", "@ IN MX 0 .\n"))).findings, "mx")
    assert null.status is FAIL and "null MX" in null.message
    implicit = one(
        check("m.example", resolver(zone("m.example", "@ IN A 192.0.2.1\n"))).findings, "mx"
    )
    assert (
        implicit.status is WARN and implicit.fix == "publish: m.example. IN MX 10 mail.m.example."
    )
    nothing = one(
        check("m.example", resolver(zone("m.example", "www IN A 192.0.2.1\n"))).findings, "mx"
    )
    assert nothing.status is FAIL
    absent = one(check("nowhere.example").findings, "mx")
    assert absent.status is FAIL and "does not exist" in absent.message
    hostless = check(
        "m.example", resolver(zone("m.example", "@ IN MX 10 mx.m.example.\n")), ip=GOOD_IP
    )
    assert one(hostless.findings, "mx.address").fix == "publish: mx.m.example. IN A 192.0.2.10"


def test_mta_sts_and_tls_rpt_faults() -> None:
    body = '_mta-sts IN TXT "v=STSv1; id=not-valid!"\n_smtp._tls IN TXT "v=TLSRPTv1;"\n'
    findings = check("t.example", resolver(zone("t.example", body))).findings
    assert one(findings, "mta-sts").status is FAIL
    assert one(findings, "tls-rpt").status is FAIL


def test_rdns_no_ptr_and_helo_mismatch() -> None:
    no_ptr = one(check(GOOD, ip="192.0.2.99").findings, "rdns.ptr")
    assert no_ptr.status is FAIL
    assert no_ptr.fix and "99.2.0.192.in-addr.arpa. IN PTR mail.good.example." in no_ptr.fix
    helo = one(check(GOOD, ip=GOOD_IP, helo="other.good.example").findings, "rdns.helo")
    assert helo.status is WARN
    assert helo.fix and helo.fix.startswith("postconf -e 'smtp_helo_name = mail.good.example'")


class FailingZone:
    """Zone answers, except SERVFAIL for names under one domain."""

    def __init__(self, failing: str) -> None:
        self.inner = resolver()
        self.failing = failing

    async def ask(self, question: Question) -> Answer:
        if question.name.endswith(self.failing):
            return Answer(question, DnsStatus.SERVFAIL, detail="test failure")
        return self.inner.ask_sync(question)


def test_dns_failures_are_errors_that_cost_nothing() -> None:
    report = check(GOOD, FailingZone(GOOD), ip=GOOD_IP, helo=GOOD_HELO)
    errors = [f for f in report.findings if f.status is ERROR]
    assert {f.check for f in errors} >= {"mx", "spf.record", "dmarc.record", "mta-sts", "tls-rpt"}
    assert all(f.deduction == 0 for f in errors)
    assert not any(f.status is FAIL for f in report.findings)
