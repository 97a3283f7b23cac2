"""SPF checks of a domain (RFC 7208): the record, its lookup cost, its ``all``, an IP.

Three probes that can run side by side:

- :func:`check_record`: one SPF record that parses, its ``all`` term, and the
  whole policy's cost. The cost is measured by evaluating the policy, includes
  and redirects included, for :data:`PROBE_IP`, an address no policy lists, so
  every term is reached; the limits are lifted for that run so the true count
  is known ("needs 14 lookups", not just "over 10"), then compared with RFC
  7208 §4.6.4's 10 DNS-querying terms and 2 void lookups.
- :func:`check_ip`: whether ``--ip`` may send for the domain (MAIL FROM
  ``postmaster@DOMAIN``), with the record that would let it.
- :func:`check_helo_name`: the HELO identity's SPF, which is optional.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Final

from mailseal.dns.types import Answer, Question, RdType, Status
from mailseal.doctor.findings import Findings, dns_failure, error, fail, ok, publish_txt, warn
from mailseal.spf import (
    DEFAULT_LIMITS,
    Kind,
    Qualifier,
    SpfLimits,
    SpfRecord,
    SpfResult,
    SpfSyntaxError,
    SpfVerdict,
    check_helo,
    check_host,
    parse_record,
    spf_records,
)
from mailseal.spf.lookup import IPAddress

#: An address in 240.0.0.0/4 (reserved, RFC 1112 §4): no policy lists it, so
#: evaluating for it reaches every term, as for a forger's address.
PROBE_IP: Final = "240.0.0.1"
#: Limits lifted to count what the policy really needs (the MX limit is a rule
#: about one term, not a count, and stays).
COUNTING: Final = SpfLimits(lookups=1000, void_lookups=1000)


def check_record(domain: str, ip: IPAddress | None = None) -> Generator[Question, Answer, Findings]:
    """spf.record (present, one, parses, evaluates), spf.all, spf.lookups."""
    answer = yield Question(domain, RdType.TXT)
    if answer.status.is_temporary:
        return [error("spf.record", f"could not look up SPF: {dns_failure(answer)}")]
    records = spf_records(answer.records if answer.status is Status.OK else ())
    suggested = f"v=spf1 mx{' ' + _ip_term(ip) if ip else ''} -all"
    if not records:
        return [
            fail(
                "spf.record",
                f"no SPF record at {domain}: receivers cannot tell your servers from forgers "
                "(SPF none), and DMARC cannot pass through SPF",
                publish_txt(domain, suggested),
            )
        ]
    if len(records) > 1:
        return [
            fail(
                "spf.record",
                f"{len(records)} SPF records at {domain}: receivers return permerror "
                "(RFC 7208 §4.5), as if you had a broken one",
                "keep exactly one, e.g. the records merged: "
                + publish_txt(domain, _merge(records)),
            )
        ]
    text = records[0]
    try:
        record = parse_record(text)
    except SpfSyntaxError as exc:
        return _syntax(domain, text, exc)
    findings: Findings = []
    cost = yield from check_host(PROBE_IP, domain, f"postmaster@{domain}", limits=COUNTING)
    if cost.result is SpfResult.PERMERROR:
        findings.append(
            fail(
                "spf.record",
                f"SPF record {text!r} ends in permerror: {cost.reason}",
                "correct or remove the term the reason names (an include of a domain "
                "without SPF, a syntax error in an included record), then check again",
            )
        )
    else:
        findings.append(ok("spf.record", f"SPF: {text}"))
    findings.extend(_all(domain, record))
    findings.extend(_cost(domain, record, cost))
    return findings


def _syntax(domain: str, text: str, exc: SpfSyntaxError) -> Findings:
    fix = "correct the record"
    if exc.term:
        kept = " ".join(t for t in text.split(" ") if t and t != exc.term)
        fix = (
            f"correct {exc.term!r}, or drop it: " + publish_txt(domain, kept)
            if kept != text
            else fix
        )
    return [
        fail(
            "spf.record",
            f"SPF record {text!r} has a syntax error: {exc}; receivers return permerror",
            fix,
        )
    ]


def _all(domain: str, record: SpfRecord) -> Findings:
    first_all = next((m for m in record.mechanisms if m.kind is Kind.ALL), None)
    if first_all is None:
        if record.redirect is not None:
            return [ok("spf.all", f"the policy ends in {record.redirect.text}")]
        fixed = f"{record.text.rstrip()} -all"
        return [
            warn(
                "spf.all",
                "the record has no 'all' term: hosts it does not list get neutral, the same "
                "as no SPF at all",
                publish_txt(domain, fixed),
            )
        ]
    if first_all.qualifier is Qualifier.PASS:
        return [
            fail(
                "spf.all",
                f"'{first_all.text}' lets every host on the Internet send as {domain}",
                publish_txt(domain, _replace(record.text, first_all.text, "-all")),
            )
        ]
    if first_all.qualifier is Qualifier.NEUTRAL:
        return [
            warn(
                "spf.all",
                "'?all' makes no claim about other hosts: receivers treat forged mail as unchecked",
                publish_txt(domain, _replace(record.text, first_all.text, "-all")) + " (or ~all)",
            )
        ]
    word = "fail" if first_all.qualifier is Qualifier.FAIL else "softfail"
    return [ok("spf.all", f"'{first_all.text}': other hosts get {word}")]


def _cost(domain: str, record: SpfRecord, cost: SpfVerdict) -> Findings:
    if cost.result is SpfResult.TEMPERROR:
        return [error("spf.lookups", f"could not count the SPF lookups: {cost.reason}")]
    limit, voids = DEFAULT_LIMITS.lookups, DEFAULT_LIMITS.void_lookups
    own = [m.text for m in record.mechanisms if m.kind.queries_dns]
    if record.effective_redirect is not None:
        own.append(record.effective_redirect.text)
    findings: Findings = []
    if cost.lookups > limit:
        findings.append(
            fail(
                "spf.lookups",
                f"the SPF policy needs {cost.lookups} DNS lookups; the limit is {limit} "
                "(RFC 7208 §4.6.4), so receivers stop with permerror and SPF fails for "
                "all your mail",
                f"cut it to {limit} or fewer: replace include:/a/mx terms by the ip4:/ip6: "
                "ranges they stand for, or remove includes of services you no longer use "
                f"(this record's own DNS terms: {' '.join(own)})",
            )
        )
    else:
        near = (
            " (near the limit: adding one more include may break it)" if cost.lookups >= 9 else ""
        )
        findings.append(ok("spf.lookups", f"{cost.lookups} of {limit} DNS lookups{near}"))
    if cost.void_lookups > voids:
        findings.append(
            fail(
                "spf.lookups",
                f"{cost.void_lookups} SPF terms look up names that do not exist or have no "
                f"records; more than {voids} is a permerror (RFC 7208 §4.6.4)",
                "remove the a:/mx:/include: terms that point at names without records",
            )
        )
    return findings


def check_ip(
    domain: str, ip: IPAddress, helo: str | None = None
) -> Generator[Question, Answer, Findings]:
    """spf.ip: may ``ip`` send mail with MAIL FROM ``postmaster@DOMAIN``?"""
    verdict = yield from check_host(ip, domain, f"postmaster@{domain}", helo)
    result = verdict.result
    if result is SpfResult.NONE:
        return []  # spf.record says it
    if result is SpfResult.PASS:
        return [ok("spf.ip", f"{ip} may send for {domain} (matched {verdict.mechanism})")]
    if result is SpfResult.TEMPERROR:
        return [error("spf.ip", f"could not check {ip}: {verdict.reason}")]
    if result is SpfResult.PERMERROR:
        return [
            fail(
                "spf.ip",
                f"mail from {ip} cannot pass SPF: the policy ends in permerror ({verdict.reason})",
                "fix the SPF record first (see spf.record and spf.lookups)",
            )
        ]
    record = verdict.record or "v=spf1 -all"
    how = f"matched {verdict.mechanism}" if verdict.mechanism else "no term matched"
    return [
        fail(
            "spf.ip",
            f"{ip} is not allowed to send for {domain}: SPF {result.value} ({how})",
            publish_txt(domain, _with_ip(record, ip)),
        )
    ]


def check_helo_name(ip: IPAddress, helo: str) -> Generator[Question, Answer, Findings]:
    """spf.helo: the HELO name's own SPF (RFC 7208 §2.3; optional, so none is fine)."""
    verdict = yield from check_helo(ip, helo)
    result = verdict.result
    if result is SpfResult.PASS:
        return [ok("spf.helo", f"HELO {helo}: SPF pass for {ip}")]
    if result is SpfResult.NONE:
        return [ok("spf.helo", f"HELO {helo} has no SPF record (optional)")]
    if result is SpfResult.TEMPERROR:
        return [error("spf.helo", f"could not check HELO {helo}: {verdict.reason}")]
    fix_record = _with_ip(verdict.record, ip) if verdict.record else f"v=spf1 {_ip_term(ip)} -all"
    return [
        warn(
            "spf.helo",
            f"HELO {helo}: SPF {result.value} for {ip} ({verdict.reason}); receivers that "
            "check the HELO identity see a forger",
            publish_txt(helo, fix_record),
        )
    ]


def _ip_term(ip: IPAddress) -> str:
    return f"ip{ip.version}:{ip}"


def _replace(record: str, old: str, new: str) -> str:
    return " ".join(new if t == old else t for t in record.split(" ") if t)


def _with_ip(record: str, ip: IPAddress) -> str:
    """``record`` with ``ipN:IP`` added before its all/redirect (at the end otherwise)."""
    terms = [t for t in record.split(" ") if t]
    term = _ip_term(ip)
    for i, t in enumerate(terms):
        if i and (t.lstrip("+-~?").lower() == "all" or t.lower().startswith("redirect=")):
            return " ".join([*terms[:i], term, *terms[i:]])
    return " ".join([*terms, term])


def _merge(records: list[str]) -> str:
    terms: list[str] = []
    last = "-all"
    for text in records:
        for t in text.split(" ")[1:]:
            if not t:
                continue
            if t.lstrip("+-~?").lower() == "all":
                last = t
            elif t not in terms:
                terms.append(t)
    return " ".join(["v=spf1", *terms, last])


__all__ = ["COUNTING", "PROBE_IP", "check_helo_name", "check_ip", "check_record"]
