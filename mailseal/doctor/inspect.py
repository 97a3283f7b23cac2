"""Score a received message as an online mail tester does: ``mailseal inspect``.

What the header fields say is read by :func:`mailseal.doctor.facts.read_facts`;
:func:`message_part` is the message's own checks, one probe:

- ``msg.headers``: one From, a Date and a Message-ID (RFC 5322 §3.6);
- ``msg.dkim``: every DKIM signature verified here (keys from DNS);
- ``msg.spf``: the receiver's SPF result (Received-SPF, else its
  Authentication-Results), or SPF evaluated here for the sending address;
- ``msg.authres``: what the receiver's Authentication-Results says of DKIM,
  DMARC and ARC;
- ``msg.dmarc``: DMARC alignment (RFC 9989) of the From domain with the
  ``d=`` of each passing signature and with the SPF-authenticated domain,
  strict or relaxed as the From domain's record says.

The sending domain's own checks (:func:`mailseal.doctor.checks.plan` for
the From domain, the sending address and HELO name) run beside it.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Final

from mailseal.dkim.results import DkimResult, SignatureVerdict
from mailseal.dkim.verify import VerifyOptions, verify_message
from mailseal.dmarc.lint import OrgDomain
from mailseal.dmarc.record import Alignment, Policy, is_dmarc
from mailseal.dns.types import Answer, Question, RdType
from mailseal.doctor.checks import CheckOptions, plan
from mailseal.doctor.dkimcheck import Selector
from mailseal.doctor.dmarccheck import parse_corrected
from mailseal.doctor.facts import MessageFacts, domain_of, read_facts
from mailseal.doctor.findings import (
    Finding,
    Findings,
    Part,
    Status,
    dns_failure,
    error,
    fail,
    ok,
    warn,
)
from mailseal.spf import check_mailfrom

_RESULT_STATUS: Final = {
    "pass": Status.OK,
    "none": Status.WARN,
    "neutral": Status.WARN,
    "policy": Status.WARN,
    "softfail": Status.FAIL,
    "fail": Status.FAIL,
    "permerror": Status.FAIL,
    "temperror": Status.ERROR,
}


def message_part(message: bytes, facts: MessageFacts, now: int, org_domain: OrgDomain) -> Part:
    """The message's own checks, as one probe (``message`` in CRLF form)."""
    return Part("message", (check_message(message, facts, now, org_domain),))


def domain_parts(facts: MessageFacts, org_domain: OrgDomain, dnsbls: tuple[str, ...]) -> list[Part]:
    """``mailseal check`` for the From domain, with the message's address, HELO and selectors."""
    domain = facts.from_domain
    if domain is None:
        return []
    selectors = tuple(dict.fromkeys(s for d, s in facts.signers if d == domain and s))
    options = CheckOptions(
        domain, facts.client_ip, facts.helo, tuple(Selector(s) for s in selectors), dnsbls
    )
    return plan(options, org_domain)


def check_message(
    message: bytes, facts: MessageFacts, now: int, org_domain: OrgDomain
) -> Generator[Question, Answer, Findings]:
    """msg.headers, msg.dkim, msg.spf, msg.authres, msg.dmarc."""
    findings = _headers(facts)
    verdict = yield from verify_message(message, VerifyOptions(), now)
    findings += _dkim(facts, verdict.signatures)
    spf_result, spf_domain, spf_finding, used_authres = yield from _spf(facts)
    findings.append(spf_finding)
    findings += _receiver(facts, used_authres)
    passing = [s.domain for s in verdict.signatures if s.result is DkimResult.PASS]
    findings += yield from _dmarc(facts, passing, spf_result, spf_domain, org_domain)
    return findings


def _headers(facts: MessageFacts) -> Findings:
    if facts.from_fields == 0:
        return [
            fail(
                "msg.headers",
                "no From: field: receivers reject or spam-folder it (RFC 5322 §3.6: exactly one)",
                "send with a From: field naming your address",
            )
        ]
    findings: Findings = []
    if facts.from_fields > 1 or len(facts.from_addresses) != 1:
        findings.append(
            fail(
                "msg.headers",
                f"{facts.from_fields} From: field(s) with {len(facts.from_addresses)} "
                "address(es): DMARC needs exactly one author address, so receivers reject it",
                "send with one From: field holding one address",
            )
        )
    elif not facts.from_domains:
        findings.append(
            fail(
                "msg.headers",
                f"From: {facts.from_addresses[0]} has no domain name receivers can check "
                "(an address literal or a single label): DMARC and the domain checks cannot run",
                "send with a From: address at your domain (user@example.com)",
            )
        )
    for name in facts.missing:
        findings.append(
            warn(
                "msg.headers",
                f"no {name}: field: spam filters score that down",
                f"let the MTA add it: postconf -e 'always_add_missing_headers = yes' "
                f"&& postfix reload (or set {name} in the sending program)",
            )
        )
    if not findings:
        findings.append(ok("msg.headers", "one From:, a Date: and a Message-ID: field"))
    return findings


def _dkim(facts: MessageFacts, signatures: Sequence[SignatureVerdict]) -> Findings:
    domain = facts.from_domain or "YOUR-DOMAIN"
    if not signatures:
        return [
            fail(
                "msg.dkim",
                "the message is not DKIM-signed: receivers cannot tell it from a forgery",
                f"sign outgoing mail: mailseal setup -d {domain}, then reload Postfix",
            )
        ]
    return [_one_signature(s) for s in signatures]


def _one_signature(s: SignatureVerdict) -> Finding:
    label = f"d={s.domain or '?'} s={s.selector or '?'} ({s.algorithm or '?'})"
    if s.result is DkimResult.PASS:
        bits = f", {s.key_bits}-bit key" if s.key_bits else ""
        return ok("msg.dkim", f"signature {label} verified{bits}")
    if s.result is DkimResult.TEMPERROR:
        return error("msg.dkim", f"signature {label}: {s.reason}")
    name = f"{s.selector}._domainkey.{s.domain}"
    if s.key_missing:
        fix = (
            f"publish the key for s={s.selector} at {name} "
            f"(mailseal testkey -d {s.domain} -s {s.selector} shows the record)"
        )
    elif s.result is DkimResult.FAIL:
        fix = (
            f"check that the published key is the signing key: mailseal testkey -d {s.domain} "
            f"-s {s.selector}; if it is, something changed the message after signing (a "
            "footer, a content filter after the milter)"
        )
    else:
        fix = f"see dkim.* below, and mailseal testkey -d {s.domain} -s {s.selector}"
    status = Status.WARN if s.result is DkimResult.NEUTRAL else Status.FAIL
    return Finding("msg.dkim", status, f"signature {label}: {s.result.value} ({s.reason})", fix)


def _spf(
    facts: MessageFacts,
) -> Generator[Question, Answer, tuple[str, str | None, Finding, bool]]:
    """The SPF result and domain: the receiver's, else evaluated here."""
    result: str | None = None
    domain: str | None = None
    source = ""
    used_authres = False
    if facts.received_spf is not None:
        result, source = facts.received_spf.result, "Received-SPF"
        sender = facts.received_spf.envelope_from or facts.mail_from
        domain = domain_of(sender) if sender else None
        if domain is None and facts.received_spf.helo:
            domain = facts.received_spf.helo.lower().rstrip(".")
    elif facts.authres is not None and facts.authres.of("spf"):
        spf = facts.authres.of("spf")[0]
        result, source, used_authres = spf.result, f"{facts.authres.authserv_id} said", True
        sender = spf.prop("smtp.mailfrom") or spf.prop("smtp.helo")
        domain = domain_of(sender) if sender else None
    elif facts.client_ip is not None and facts.mail_from is not None:
        verdict = yield from check_mailfrom(facts.client_ip, facts.mail_from, facts.helo)
        result, domain = verdict.result.value, verdict.domain or None
        source = f"evaluated here for {facts.client_ip}"
    if result is None:
        message = "no SPF result in the message, and no sending address to evaluate it for"
        return "none", None, error("msg.spf", message), used_authres
    where = f"{source}: spf={result}" + (f" for {domain}" if domain else "")
    status = _RESULT_STATUS.get(result, Status.WARN)
    if status is Status.OK:
        return result, domain, ok("msg.spf", where), used_authres
    if status is Status.ERROR:
        return result, domain, error("msg.spf", where), used_authres
    ip = facts.client_ip or "the sending address"
    fix = f"let {ip} send for {domain or 'the envelope domain'}: see spf.ip below"
    return (
        result,
        domain,
        Finding("msg.spf", status, f"{where}: SPF does not pass", fix),
        used_authres,
    )


def _receiver(facts: MessageFacts, used_spf: bool) -> Findings:
    if facts.authres is None:
        return []
    findings: Findings = []
    said = facts.authres.authserv_id
    for r in facts.authres.results:
        if r.method not in ("dkim", "dmarc", "arc", "spf") or (r.method == "spf" and used_spf):
            continue
        if r.method == "spf" and facts.received_spf is not None:
            continue
        detail = " ".join(f"{k}={v}" for k, v in r.props if k.startswith(("header.", "smtp.")))
        text = f"{said}: {r.method}={r.result}" + (f" ({detail})" if detail else "")
        status = _RESULT_STATUS.get(r.result, Status.WARN)
        fix = (
            None
            if status in (Status.OK, Status.ERROR)
            else f"see msg.{r.method if r.method != 'arc' else 'dkim'}"
        )
        findings.append(Finding("msg.authres", status, text, fix))
    return findings


def _dmarc(
    facts: MessageFacts,
    passing: list[str],
    spf_result: str,
    spf_domain: str | None,
    org_domain: OrgDomain,
) -> Generator[Question, Answer, Findings]:
    domain = facts.from_domain
    if domain is None:
        return []
    record_text = None
    for name in dict.fromkeys((f"_dmarc.{domain}", f"_dmarc.{org_domain(domain)}")):
        answer = yield Question(name, RdType.TXT)
        if answer.status.is_temporary:
            return [error("msg.dmarc", f"could not look up DMARC: {dns_failure(answer)}")]
        records = [t for t in answer.records if is_dmarc(t)] if answer.ok else []
        if records:
            record_text = records[0]
            break
    record = parse_corrected(record_text) if record_text else None
    adkim = record.adkim if record and record.adkim else Alignment.RELAXED
    aspf = record.aspf if record and record.aspf else Alignment.RELAXED

    def aligned(other: str, mode: Alignment) -> bool:
        other = other.lower().rstrip(".")
        if mode is Alignment.STRICT:
            return other == domain
        return org_domain(other) == org_domain(domain)

    dkim_ok = [d for d in passing if aligned(d, adkim)]
    spf_ok = spf_result == "pass" and spf_domain is not None and aligned(spf_domain, aspf)
    modes = f"adkim={adkim.value}, aspf={aspf.value}"
    how = []
    if dkim_ok:
        how.append(f"DKIM d={dkim_ok[0]}")
    if spf_ok:
        how.append(f"SPF {spf_domain}")
    if how:
        tail = "" if record else f" ({domain} publishes no DMARC record: see dmarc.record)"
        return [
            ok(
                "msg.dmarc",
                f"DMARC pass for From {domain}: aligned {' and '.join(how)} ({modes}){tail}",
            )
        ]
    seen = ", ".join(f"d={d}" for d in passing) or "none"
    why = (
        f"From {domain} aligns with no passing DKIM signature (passing: {seen}) and not with "
        f"the SPF domain ({spf_domain or 'unknown'}, spf={spf_result}; {modes})"
    )
    fix = (
        f"sign with d={domain} (mailseal setup -d {domain}), or send with MAIL FROM at "
        f"{domain} from an address its SPF allows"
    )
    if record is None:
        return [warn("msg.dmarc", f"DMARC would fail: {why}", fix)]
    policy = (record.p or Policy.NONE).value
    return [fail("msg.dmarc", f"DMARC fail: {why}; receivers apply p={policy}", fix)]


__all__ = ["MessageFacts", "check_message", "domain_parts", "message_part", "read_facts"]
