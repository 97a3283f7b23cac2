"""``dmarc lint``: a table of good and bad records with the findings each must produce.

Sources of the records: RFC 7489 Appendix B.2 (the examples as printed there,
legacy ``pct`` and ``!10m`` included), the tutorial
(/work/shared/seed/000_59e536441a1971f5.txt §3b), and common mistakes seen in
published records (self-made, marked ``mistake``). Expected findings follow
RFC 9989: pct/rf/ri are removed tags, t=y replaces pct for a gradual start,
the ``!size`` suffix is ignored by reporters, unknown tags are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from mailseal.dmarc.lint import LintReport, Severity, lint_domain, lint_record
from mailseal.dmarc.psl import org_domain
from mailseal.dns.drive import drive_sync
from mailseal.dns.zone import ZoneResolver


@dataclass(frozen=True)
class Case:
    id: str
    record: str
    codes: set[str]  # errors and warnings expected (notes listed in `notes`)
    corrected: str
    notes: set[str] = field(default_factory=set)
    domain: str | None = "example.com"
    authorized: dict[str, bool] | None = None


CASES = [
    # RFC 7489 Appendix B.2.1: "Entire Domain, Monitoring Only"
    Case(
        "rfc7489-b21-monitor",
        "v=DMARC1; p=none; rua=mailto:dmarc-feedback@example.com",
        set(),
        "v=DMARC1; p=none; rua=mailto:dmarc-feedback@example.com",
        {"monitor-only"},
    ),
    # RFC 7489 Appendix B.2.2: failure reports to a third party that authorizes them
    Case(
        "rfc7489-b22-third-party-ok",
        "v=DMARC1; p=none; rua=mailto:dmarc-feedback@example.com; "
        "ruf=mailto:auth-reports@thirdparty.example.net",
        set(),
        "v=DMARC1; p=none; rua=mailto:dmarc-feedback@example.com; "
        "ruf=mailto:auth-reports@thirdparty.example.net",
        {"monitor-only"},
        authorized={"thirdparty.example.net": True},
    ),
    Case(
        "rfc7489-b22-third-party-missing",
        "v=DMARC1; p=none; rua=mailto:dmarc-feedback@example.com; "
        "ruf=mailto:auth-reports@thirdparty.example.net",
        {"external-unauthorized"},
        "v=DMARC1; p=none; rua=mailto:dmarc-feedback@example.com; "
        "ruf=mailto:auth-reports@thirdparty.example.net",
        {"monitor-only"},
        authorized={"thirdparty.example.net": False},
    ),
    # RFC 7489 Appendix B.2.3: "Per-Message Failure Reports Directed to Third Party", with pct
    Case(
        "rfc7489-b23-pct-and-size",
        "v=DMARC1; p=quarantine; rua=mailto:dmarc-feedback@example.com,"
        "mailto:tld-test@thirdparty.example.net!10m; pct=25",
        {"removed-tag", "uri-size"},
        "v=DMARC1; p=quarantine; rua=mailto:dmarc-feedback@example.com,"
        "mailto:tld-test@thirdparty.example.net; t=y",
        {"external-unchecked"},
    ),
    # The tutorial's records.
    Case(
        "tutorial-basic",
        "v=DMARC1; p=none; adkim=r; aspf=r",
        {"missing-rua"},
        "v=DMARC1; p=none; adkim=r; aspf=r",
        {"monitor-only"},
    ),
    Case(
        "tutorial-reject",
        "v=DMARC1; p=reject; adkim=r; aspf=r; rua=mailto:yourname@example.com",
        set(),
        "v=DMARC1; p=reject; adkim=r; aspf=r; rua=mailto:yourname@example.com",
    ),
    # RFC 9989 style: test mode instead of pct, np and psd.
    Case(
        "rfc9989-testing",
        "v=DMARC1; p=quarantine; t=y; np=reject; rua=mailto:dmarc@example.com",
        set(),
        "v=DMARC1; p=quarantine; np=reject; rua=mailto:dmarc@example.com; t=y",
        {"testing"},
    ),
    Case(
        "rfc9989-all-tags",
        "v=DMARC1;p=reject;sp=quarantine;np=reject;adkim=s;aspf=s;"
        "rua=mailto:a@example.com;ruf=mailto:f@example.com;fo=1:d;t=n;psd=n",
        set(),
        "v=DMARC1; p=reject; sp=quarantine; np=reject; adkim=s; aspf=s; "
        "rua=mailto:a@example.com; ruf=mailto:f@example.com; fo=1:d; t=n; psd=n",
    ),
    # Common mistakes.
    Case(
        "mistake-no-mailto",
        "v=DMARC1; p=none; rua=dmarc@example.com",
        {"missing-mailto"},
        "v=DMARC1; p=none; rua=mailto:dmarc@example.com",
        {"monitor-only"},
    ),
    Case(
        "mistake-policy-typo",
        "v=DMARC1; p=rejct; rua=mailto:d@example.com",
        {"bad-value"},
        "v=DMARC1; p=reject; rua=mailto:d@example.com",
    ),
    Case(
        "mistake-tag-typo",
        "v=DMARC1; p=none; rue=mailto:d@example.com",
        {"unknown-tag"},
        "v=DMARC1; p=none; rua=mailto:d@example.com",
        {"monitor-only"},
    ),
    Case(
        "mistake-unknown-tag",
        "v=DMARC1; p=none; rua=mailto:d@example.com; foo=bar",
        {"unknown-tag"},
        "v=DMARC1; p=none; rua=mailto:d@example.com",
        {"monitor-only"},
    ),
    Case(
        "mistake-version-second",
        "p=none; v=DMARC1; rua=mailto:d@example.com",
        {"not-dmarc"},
        "v=DMARC1; p=none; rua=mailto:d@example.com",
        {"monitor-only"},
    ),
    Case(
        "mistake-version-lowercase",
        "v=dmarc1; p=none; rua=mailto:d@example.com",
        {"bad-version"},
        "v=DMARC1; p=none; rua=mailto:d@example.com",
        {"monitor-only"},
    ),
    Case(
        "mistake-no-policy",
        "v=DMARC1; rua=mailto:d@example.com",
        {"missing-p"},
        "v=DMARC1; p=none; rua=mailto:d@example.com",
    ),
    Case(
        "mistake-legacy-tags",
        "v=DMARC1; p=reject; pct=100; rf=afrf; ri=86400; rua=mailto:d@example.com",
        {"removed-tag"},
        "v=DMARC1; p=reject; rua=mailto:d@example.com",
    ),
    Case(
        "mistake-pct-zero-none",
        "v=DMARC1; p=none; pct=0; rua=mailto:d@example.com",
        {"removed-tag"},
        "v=DMARC1; p=none; rua=mailto:d@example.com",
        {"monitor-only"},
    ),
    Case(
        "mistake-http-uri",
        "v=DMARC1; p=none; rua=https://reports.example.com/dmarc",
        {"bad-uri"},
        "v=DMARC1; p=none",
        {"monitor-only"},
    ),
    Case(
        "mistake-bad-address",
        "v=DMARC1; p=none; rua=mailto:not an address",
        {"bad-uri"},
        "v=DMARC1; p=none",
        {"monitor-only"},
    ),
    Case(
        "mistake-duplicate-p",
        "v=DMARC1; p=none; p=reject; rua=mailto:d@example.com",
        {"duplicate-tag"},
        "v=DMARC1; p=none; rua=mailto:d@example.com",
        {"monitor-only"},
    ),
    Case(
        "mistake-bad-alignment-and-fo",
        "v=DMARC1; p=none; adkim=strict; fo=2; rua=mailto:d@example.com",
        {"bad-value"},
        "v=DMARC1; p=none; adkim=s; rua=mailto:d@example.com",
        {"monitor-only"},
    ),
    Case(
        "mistake-junk",
        "v=DMARC1; p=none; rua=mailto:d@example.com; reject",
        {"syntax"},
        "v=DMARC1; p=none; rua=mailto:d@example.com",
        {"monitor-only"},
    ),
    Case(
        "fo-without-ruf",
        "v=DMARC1; p=reject; fo=1; rua=mailto:d@example.com",
        set(),
        "v=DMARC1; p=reject; rua=mailto:d@example.com; fo=1",
        {"fo-without-ruf"},
    ),
    Case(
        "no-domain-no-external-check",
        "v=DMARC1; p=reject; rua=mailto:d@reports.example.net",
        set(),
        "v=DMARC1; p=reject; rua=mailto:d@reports.example.net",
        domain=None,
    ),
    Case(
        "same-org-domain-needs-no-authorization",
        "v=DMARC1; p=reject; rua=mailto:d@reports.example.com",
        set(),
        "v=DMARC1; p=reject; rua=mailto:d@reports.example.com",
        domain="mail.example.com",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_lint_table(case: Case) -> None:
    report = lint_record(
        case.record, case.domain, org_domain=org_domain, authorized=case.authorized
    )
    problems = {f.code for f in report.findings if f.severity is not Severity.NOTE}
    notes = {f.code for f in report.findings if f.severity is Severity.NOTE}
    assert problems == case.codes, report.findings
    assert notes == case.notes, report.findings
    assert report.corrected == case.corrected
    assert report.problems == bool(case.codes)
    assert all(f.message for f in report.findings)
    assert all(f.fix for f in report.findings if f.severity is not Severity.NOTE)
    # The corrected record is itself clean (notes aside).
    again = lint_record(
        report.corrected, case.domain, org_domain=org_domain, authorized=case.authorized
    )
    assert {f.code for f in again.findings if f.severity is not Severity.NOTE} <= {
        "missing-rua",
        "external-unauthorized",
    }


ZONES = {
    "example.com": '_dmarc IN TXT "v=DMARC1; p=none; '
    'rua=mailto:d@example.com,mailto:r@reports.example.net"',
    "example.net": 'example.com._report._dmarc.reports IN TXT "v=DMARC1"',
    "example.org": '_dmarc IN TXT "v=spf1 -all"',
    "twice.example": '_dmarc IN TXT "v=DMARC1; p=none; rua=mailto:a@twice.example"\n'
    '_dmarc IN TXT "v=DMARC1; p=reject; rua=mailto:a@twice.example"',
}


def lint_dns(domain: str) -> LintReport:
    resolver = ZoneResolver()
    for origin, text in ZONES.items():
        soa = f"@ 300 IN SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 300\n"
        resolver.add_text(soa + text + "\n", origin)
    report = drive_sync(lint_domain(domain, org_domain), resolver)
    assert isinstance(report, LintReport)
    return report


def test_lint_domain_checks_the_authorization_record() -> None:
    report = lint_dns("example.com")
    codes = {f.code for f in report.findings}
    assert "external-unauthorized" not in codes and "external-unchecked" not in codes
    assert not report.problems


def test_lint_domain_without_a_record_suggests_one() -> None:
    report = lint_dns("example.org")
    assert [f.code for f in report.findings] == ["no-record"]
    assert "none starts with v=DMARC1" in report.findings[0].message
    assert report.corrected == "v=DMARC1; p=none; rua=mailto:postmaster@example.org"
    nx = lint_dns("nothing.example")
    assert "no such name" in nx.findings[0].message


def test_lint_domain_two_records() -> None:
    report = lint_dns("twice.example")
    assert report.findings[0].code == "multiple-records"
