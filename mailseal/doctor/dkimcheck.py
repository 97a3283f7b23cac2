"""DKIM key records of a domain (RFC 6376 §3.6.1, RFC 8301, RFC 8463).

Which selectors: the ones given (``--selector``), else the KeyTable's for the
domain (from a local opendkim.conf, with the private key when it is readable,
so a published key that is not ours shows), else :data:`COMMON_SELECTORS`.
Each selector is one probe. A given or configured selector without a record
is a failure; a guessed one is simply not there. For every key found: the
record parses, is not revoked, allows sha256 and email, RSA is at least 1024
bits (RFC 8301 §3.2: smaller keys "MUST NOT" verify) and better 2048, and
``t=y`` is not left on (RFC 6376 §3.6.1: "Verifiers MUST NOT treat messages
from Signers in testing mode differently from unsigned email").
"""

from __future__ import annotations

import enum
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Final

from mailseal.dkim.keycheck import KeyStatus, expected_record, judge
from mailseal.dkim.keys import KeyType, SigningKey
from mailseal.dkim.record import KeyRecord, KeyRecordError, parse_key_record
from mailseal.dns.types import Answer, Question, RdType
from mailseal.doctor.findings import (
    Findings,
    Part,
    Status,
    dns_failure,
    error,
    fail,
    flatten,
    has_fact,
    ok,
    publish_txt,
    warn,
)

#: Selectors tried when none is given or configured: the defaults of common
#: signers (opendkim-genkey and mailseal: default; many panels: mail, dkim;
#: Microsoft 365: selector1/2; Google Workspace: google; Mailchimp: k1...).
COMMON_SELECTORS: Final = (
    "default",
    "mail",
    "dkim",
    "selector1",
    "selector2",
    "google",
    "k1",
    "k2",
    "s1",
    "s2",
    "key1",
    "smtp",
)
#: RFC 8301 §3.2: signers "SHOULD use RSA keys of at least 2048 bits"; below
#: 1024 verifiers "MUST NOT consider signatures ... valid".
MIN_BITS: Final = 1024
GOOD_BITS: Final = 2048


class Source(enum.Enum):
    """Where a selector to check came from."""

    GIVEN = "given"  # --selector
    CONFIG = "config"  # the local opendkim.conf KeyTable
    COMMON = "common"  # a guess from COMMON_SELECTORS


@dataclass(frozen=True, slots=True)
class Selector:
    """A selector to check, with the private key when the KeyTable's could be read."""

    name: str
    source: Source = Source.GIVEN
    key: SigningKey | None = None


def dkim_part(domain: str, selectors: Sequence[Selector]) -> Part:
    """One probe per selector (COMMON_SELECTORS when none); then the summary."""
    chosen = list(selectors) or [Selector(s, Source.COMMON) for s in COMMON_SELECTORS]
    probes = tuple(check_selector(domain, s) for s in chosen)

    def combine(results: Sequence[Findings]) -> Findings:
        return _summary(domain, chosen, flatten(results))

    return Part("dkim", probes, combine)


def _summary(domain: str, chosen: list[Selector], findings: Findings) -> Findings:
    if has_fact(findings, "dkim:usable"):
        if not has_fact(findings, "dkim:rsa"):
            findings.append(
                warn(
                    "dkim.rsa",
                    "only Ed25519 keys found: many receivers verify only RSA (RFC 8463 asks "
                    "signers to sign with both), so your mail looks unsigned to them",
                    f"add an RSA key and sign with both: mailseal genkey -b 2048 -d {domain} "
                    "-s rsa (publish rsa.txt, add it to the KeyTable and SigningTable)",
                )
            )
        return findings
    if all(s.source is Source.COMMON for s in chosen) and not has_fact(findings, "dkim:found"):
        if any(f.status is Status.ERROR for f in findings):
            return findings
        findings.append(
            warn(
                "dkim.selectors",
                f"no DKIM key found at the common selectors ({', '.join(COMMON_SELECTORS)}); "
                "if you sign with another selector, name it with --selector",
                f"if you do not sign yet: mailseal setup -d {domain} (it makes the key, the "
                "milter configuration and the record to publish)",
            )
        )
    return findings


def check_selector(domain: str, selector: Selector) -> Generator[Question, Answer, Findings]:
    """dkim.key, dkim.size, dkim.testing for one selector."""
    sel = selector.name
    name = f"{sel}._domainkey.{domain}"
    want = expected_record(selector.key, sel, domain).value if selector.key else ""
    publish = (
        publish_txt(name, want)
        if want
        else f"make a key: mailseal genkey -d {domain} -s {sel}, then publish the record it "
        f"writes to {sel}.txt at {name}"
    )
    answer = yield Question(name, RdType.TXT)
    if answer.status.is_temporary:
        return [error("dkim.key", f"could not look up {name}: {dns_failure(answer)}")]
    records = answer.records if answer.ok else ()
    if not records:
        if selector.source is Source.COMMON:
            return []
        why = "no such name" if answer.status.value == "nxdomain" else "no TXT record"
        return [
            fail(
                "dkim.key",
                f"no DKIM key at {name} ({why}): receivers cannot verify signatures with s={sel}",
                publish,
            )
        ]
    if selector.key is not None:
        checked = judge(name, records, selector.key, answer.secure, want)
        if checked.status in (KeyStatus.MISMATCH, KeyStatus.INVALID) and "revoked" not in (
            checked.reason
        ):
            return [fail("dkim.key", f"{name}: {checked.reason}", checked.fix or publish)]
    parsed: list[tuple[str, KeyRecord]] = []
    problems: list[str] = []
    for text in records:
        try:
            parsed.append((text, parse_key_record(text)))
        except KeyRecordError as exc:
            problems.append(str(exc))
    if not parsed:
        return [
            fail(
                "dkim.key",
                f"the record at {name} does not parse ({'; '.join(problems)}): receivers "
                f"cannot verify signatures with s={sel}",
                publish,
                "dkim:found",
            )
        ]
    return _judge_key(domain, selector, name, parsed[0][0], parsed[0][1], len(records), publish)


def _judge_key(
    domain: str,
    selector: Selector,
    name: str,
    text: str,
    record: KeyRecord,
    count: int,
    publish: str,
) -> Findings:
    sel = selector.name
    if record.revoked:
        if selector.source is Source.COMMON:
            return [ok("dkim.key", f"{name}: revoked key (empty p=), a retired selector")]
        return [
            fail(
                "dkim.key",
                f"{name}: the key is revoked (empty p=): signatures with s={sel} fail",
                publish if selector.key else f"sign with a current selector, or {publish}",
                "dkim:found",
            )
        ]
    unusable = _unusable(record)
    if unusable:
        return [fail("dkim.key", f"{name}: {unusable}", publish, "dkim:found")]
    kind = "RSA" if record.key_type is KeyType.RSA else "Ed25519"
    facts = ["dkim:found", "dkim:usable"]
    if record.key_type is KeyType.RSA and record.bits >= MIN_BITS:
        facts.append("dkim:rsa")
    findings: Findings = [ok("dkim.key", f"{name}: {kind} {record.bits}-bit key", *facts)]
    if count > 1:
        findings.append(
            warn(
                "dkim.key",
                f"{count} TXT records at {name}: verifiers may pick any of them",
                f"keep only one: {publish}" if selector.key else f"keep only: {text}",
            )
        )
    findings.extend(_size(domain, sel, name, record))
    if record.testing:
        findings.append(
            warn(
                "dkim.testing",
                f"{name} has t=y (testing): receivers treat signed mail as unsigned "
                "(RFC 6376 §3.6.1)",
                publish_txt(name, without_testing(text)),
            )
        )
    return findings


def _unusable(record: KeyRecord) -> str:
    if record.hashes is not None and "sha256" not in record.hashes:
        return f"h={':'.join(record.hashes)} does not allow sha256, which every signature uses"
    if not {"*", "email"} & set(record.services):
        return f"s={':'.join(record.services)} does not allow email"
    return ""


def _size(domain: str, sel: str, name: str, record: KeyRecord) -> Findings:
    if record.key_type is not KeyType.RSA or record.bits >= GOOD_BITS:
        return []
    new = f"{sel}{GOOD_BITS}"
    fix = (
        f"make a {GOOD_BITS}-bit key: mailseal genkey -b {GOOD_BITS} -d {domain} -s {new}, "
        f"publish {new}.txt, then sign with s={new} and remove {name}"
    )
    if record.bits < MIN_BITS:
        return [
            fail(
                "dkim.size",
                f"{name}: {record.bits}-bit RSA key: receivers ignore signatures with keys "
                f"under {MIN_BITS} bits (RFC 8301 §3.2)",
                fix,
            )
        ]
    return [
        warn(
            "dkim.size",
            f"{name}: {record.bits}-bit RSA key: RFC 8301 asks for {GOOD_BITS}, and some "
            "receivers already score shorter keys down",
            fix,
        )
    ]


def without_testing(text: str) -> str:
    """The key record ``text`` with the ``y`` flag taken out of ``t=``."""
    parts: list[str] = []
    for part in text.split(";"):
        key, eq, value = part.partition("=")
        if eq and key.strip().lower() == "t":
            flags = [f.strip() for f in value.split(":") if f.strip() and f.strip() != "y"]
            if not flags:
                continue
            part = f"{key.strip()}={':'.join(flags)}"
        if part.strip():
            parts.append(part.strip())
    return "; ".join(parts)


__all__ = [
    "COMMON_SELECTORS",
    "GOOD_BITS",
    "MIN_BITS",
    "Selector",
    "Source",
    "check_selector",
    "dkim_part",
    "without_testing",
]
