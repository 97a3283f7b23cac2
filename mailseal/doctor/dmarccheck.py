"""DMARC checks of a domain (RFC 9989): record, policy, reports, on top of ``dmarc.lint``.

:func:`check_dmarc` fetches ``_dmarc.DOMAIN`` (and, for a subdomain without a
record, its Organizational Domain's, whose ``sp=`` then applies) through
:func:`mailseal.dmarc.lint.lint_domain`, which also asks whether external
report destinations authorized the domain. The linter's findings become
doctor findings:

- ``dmarc.record``: present, one record, ``v=DMARC1`` first;
- ``dmarc.syntax``: tags and values receivers would ignore;
- ``dmarc.policy``: ``p=none`` (or a policy that ``t=y`` lowers to none) only
  monitors;
- ``dmarc.rua``: no aggregate reports asked for, or a destination that has
  not published ``DOMAIN._report._dmarc.HOST``.

Whether mail can actually align is decided across areas, in ``checks.py``.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
from typing import Final

from mailseal.dmarc.lint import Finding as LintFinding
from mailseal.dmarc.lint import LintReport, OrgDomain, Severity, lint_domain
from mailseal.dmarc.record import (
    Alignment,
    DmarcError,
    DmarcRecord,
    Policy,
    ReportUri,
    parse_alignment,
    parse_fo,
    parse_policy,
    parse_psd,
    parse_uri,
    parse_uri_list,
    parse_yn,
    split_tags,
)
from mailseal.dns.types import Answer, Question
from mailseal.doctor.findings import (
    Finding,
    Findings,
    Status,
    dns_failure,
    error,
    fail,
    ok,
    publish_txt,
    warn,
)

_RECORD_CODES: Final = frozenset({"no-record", "multiple-records", "not-dmarc", "bad-version"})
_RUA_STATUS: Final = {
    "missing-rua": Status.WARN,
    "external-unauthorized": Status.FAIL,
    "external-unchecked": Status.ERROR,
}
_SKIPPED: Final = frozenset({"testing", "monitor-only", "fo-without-ruf"})


def check_dmarc(domain: str, org_domain: OrgDomain) -> Generator[Question, Answer, Findings]:
    """dmarc.record, dmarc.syntax, dmarc.policy, dmarc.rua for ``domain``."""
    result = yield from lint_domain(domain, org_domain)
    if isinstance(result, Answer):
        return [error("dmarc.record", f"could not look up DMARC: {dns_failure(result)}")]
    where = domain
    org = org_domain(domain)
    if result.record is None and org != domain:
        parent = yield from lint_domain(org, org_domain)
        if isinstance(parent, Answer):
            return [error("dmarc.record", f"could not look up DMARC: {dns_failure(parent)}")]
        if parent.record is not None:
            result, where = parent, org
    return _findings(domain, where, result)


def _findings(domain: str, where: str, report: LintReport) -> Findings:
    name = f"_dmarc.{where}"
    publish = publish_txt(name, report.corrected)
    findings: Findings = []
    record_problem = [f for f in report.findings if f.code in _RECORD_CODES]
    if report.record is None or record_problem:
        first = record_problem[0] if record_problem else None
        message = first.message if first else f"no DMARC record at {name}"
        findings.append(
            fail(
                "dmarc.record",
                f"{message}: receivers apply no DMARC policy, so anyone can forge "
                f"From: addresses at {domain}",
                publish,
            )
        )
        if report.record is None:
            return findings
    else:
        inherited = f" (no record at _dmarc.{domain}; {where}'s applies)" if where != domain else ""
        findings.append(ok("dmarc.record", f"DMARC: {report.record}{inherited}", "dmarc:present"))
    for lint in report.findings:
        if lint.code in _RECORD_CODES or lint.code in _SKIPPED:
            continue
        findings.append(_converted(lint, publish))
    record = parse_corrected(report.corrected)
    findings.append(_policy(domain, where, record))
    if record.rua and not any(f.check == "dmarc.rua" for f in findings):
        to = ", ".join(str(u) for u in record.rua)
        findings.append(ok("dmarc.rua", f"aggregate reports go to {to}"))
    return findings


def _converted(lint: LintFinding, publish: str) -> Finding:
    if lint.code in _RUA_STATUS:
        status = _RUA_STATUS[lint.code]
        check = "dmarc.rua"
        fix = lint.fix or None
        if lint.code == "missing-rua":
            fix = f"{lint.fix}: {publish}"
    else:
        status = Status.FAIL if lint.severity is Severity.ERROR else Status.WARN
        check = "dmarc.syntax"
        fix = f"{lint.fix}: {publish}" if lint.fix else publish
    if status is Status.ERROR:
        fix = None
    return Finding(check, status, lint.message, fix)


def _policy(domain: str, where: str, record: DmarcRecord) -> Finding:
    name = f"_dmarc.{where}"
    written = (record.sp or record.p) if where != domain else record.p
    written = written or Policy.NONE
    applied = written.one_level_lower() if record.t else written
    align = (
        f"adkim={(record.adkim.value if record.adkim else 'r')}, "
        f"aspf={(record.aspf.value if record.aspf else 'r')}"
    )
    tag = "sp" if where != domain and record.sp else "p"
    testing = f" (t=y: applied as {applied.value})" if record.t else ""
    if applied is not Policy.NONE:
        return ok("dmarc.policy", f"{tag}={written.value}{testing}; alignment {align}")
    stricter = replace(record, p=Policy.QUARANTINE, t=None)
    if where != domain and record.sp is not None:
        stricter = replace(stricter, sp=Policy.QUARANTINE)
    return warn(
        "dmarc.policy",
        f"{tag}={written.value}{testing} only monitors: receivers still deliver mail that "
        f"fails DMARC, so forgers can use {domain}",
        "once the aggregate reports show all your mail passing: "
        + publish_txt(name, stricter.render()),
    )


def parse_corrected(text: str) -> DmarcRecord:
    """The meaning of a record the linter wrote (``LintReport.corrected``: every tag valid)."""
    tags = {t.key: t.value for t in split_tags(text)[0]}

    def policy(key: str) -> Policy | None:
        return parse_policy(tags[key]) if key in tags else None

    def alignment(key: str) -> Alignment | None:
        return parse_alignment(tags[key]) if key in tags else None

    def uris(key: str) -> tuple[ReportUri, ...]:
        return tuple(parse_uri(i)[0] for i in parse_uri_list(tags[key])) if key in tags else ()

    try:
        return DmarcRecord(
            p=policy("p"),
            sp=policy("sp"),
            np=policy("np"),
            adkim=alignment("adkim"),
            aspf=alignment("aspf"),
            rua=uris("rua"),
            ruf=uris("ruf"),
            fo=parse_fo(tags["fo"]) if "fo" in tags else (),
            t=parse_yn(tags["t"], "t") if "t" in tags else None,
            psd=parse_psd(tags["psd"]) if "psd" in tags else None,
        )
    except DmarcError:
        return DmarcRecord(p=policy("p") if "p" in tags else None)


__all__ = ["check_dmarc", "parse_corrected"]
