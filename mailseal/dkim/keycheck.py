"""Does DNS publish the right key? The logic of ``mailseal testkey`` (and ``rotate --activate``).

For one selector and domain: fetch ``SELECTOR._domainkey.DOMAIN`` TXT, parse
each record (RFC 6376 §3.6.1) and compare its ``p=`` with the private key's
public half. The outcome is one of opendkim-testkey's words, with the reason
and the fix: ``key OK``, ``key not found``, ``key mismatch``, ``record
invalid``; a DNS failure (SERVFAIL, timeout) is ``DNS failure``. ``secure``
says whether a validating resolver vouched for the answer (the AD bit); as in
opendkim-testkey, an insecure answer is a note beside ``key OK``, not a fault.
"""

from __future__ import annotations

import enum
from collections.abc import Generator
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailseal.dkim.keys import KeyType, PublicKey, SigningKey
from mailseal.dkim.publish import KeyTxtRecord, RecordFlags
from mailseal.dkim.record import KeyRecord, KeyRecordError, parse_key_record
from mailseal.dns.types import Answer, Question, RdType, Status

#: RFC 8301 §3.2: "Verifiers MUST NOT consider signatures using RSA keys of less
#: than 1024 bits as valid signatures."
MIN_RSA_BITS: Final = 1024


class KeyStatus(enum.Enum):
    """opendkim-testkey's verdicts, plus DNS failure kept apart from "not found"."""

    OK = "key OK"
    NOT_FOUND = "key not found"
    MISMATCH = "key mismatch"
    INVALID = "record invalid"
    DNS_FAILURE = "DNS failure"


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """The verdict on one key, with what to do about it."""

    name: str  # SELECTOR._domainkey.DOMAIN
    status: KeyStatus
    reason: str = ""
    fix: str = ""
    secure: bool = False  # the answer was DNSSEC-validated (AD bit)
    notes: tuple[str, ...] = ()
    published: tuple[str, ...] = ()  # the TXT records found there
    expected: str = ""  # the record that would be right, when the private key is known

    @property
    def ok(self) -> bool:
        return self.status is KeyStatus.OK

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "result": self.status.value,
            "reason": self.reason,
            "fix": self.fix,
            "secure": self.secure,
            "notes": list(self.notes),
            "published": list(self.published),
            "expected": self.expected,
        }


def expected_record(key: SigningKey, selector: str, domain: str) -> KeyTxtRecord:
    """The record genkey would write for ``key`` (Debian's defaults)."""
    return KeyTxtRecord.for_key(key, selector, domain, RecordFlags())


def check_key(
    selector: str, domain: str, key: SigningKey | None
) -> Generator[Question, Answer, KeyCheck]:
    """Fetch and judge the key record at ``SELECTOR._domainkey.DOMAIN`` (RFC 6376 §3.6.2)."""
    name = f"{selector}._domainkey.{domain}"
    want = expected_record(key, selector, domain).value if key is not None else ""
    publish = f"publish TXT {name} with: {want}" if want else f"publish the key record at {name}"
    answer = yield Question(name, RdType.TXT)
    if answer.status.is_temporary:
        return KeyCheck(
            name,
            KeyStatus.DNS_FAILURE,
            f"the query for {name} failed ({answer.status.value}: {answer.detail})",
            "check the DNS servers (--dns-server) and try again",
            expected=want,
        )
    records = answer.records if answer.status is Status.OK else ()
    if not records:
        why = "no such name" if answer.status is Status.NXDOMAIN else "no TXT record at that name"
        return KeyCheck(
            name,
            KeyStatus.NOT_FOUND,
            why,
            publish + " (new records can take the zone's negative TTL to appear)",
            expected=want,
        )
    return judge(name, records, key, answer.secure, want)


def judge(
    name: str, records: tuple[str, ...], key: SigningKey | None, secure: bool, want: str
) -> KeyCheck:
    """Compare the published records with the private key (None: check the syntax only)."""
    parsed: list[tuple[str, KeyRecord]] = []
    errors: list[str] = []
    for text in records:
        try:
            parsed.append((text, parse_key_record(text)))
        except KeyRecordError as exc:
            errors.append(str(exc))
    base = KeyCheck(name, KeyStatus.OK, secure=secure, published=records, expected=want)
    replace_with = f"replace the record at {name} with: {want}" if want else "fix the record"
    if not parsed:
        return _with(base, KeyStatus.INVALID, "; ".join(errors), replace_with)
    notes = [f"{len(records)} TXT records at {name}; keep only one"] if len(records) > 1 else []
    if key is None:
        text, record = parsed[0]
        problem = _usable(record, None)
        if problem:
            return _with(base, KeyStatus.INVALID, problem, replace_with, notes)
        return _with(
            base, KeyStatus.OK, "record parses (no private key given to compare)", "", notes
        )
    ours = key.key.public_key()
    matching = [(t, r) for t, r in parsed if r.key is not None and _same_key(r.key, ours)]
    if not matching:
        text, record = parsed[0]
        if record.revoked:
            why = "the published key is revoked (empty p=)"
            return _with(base, KeyStatus.INVALID, why, replace_with, notes)
        if record.key_type is not key.type:
            why = (
                f"the record holds an {record.key_type.value} key, "
                f"the private key is {key.type.value}"
            )
        else:
            why = "the published p= is not this private key's public key"
        fix = (
            f"publish the record for this key ({want}), or point the KeyTable at the private key "
            "that matches the published one"
        )
        return _with(base, KeyStatus.MISMATCH, why, fix, notes)
    text, record = matching[0]
    problem = _usable(record, key)
    if problem:
        return _with(base, KeyStatus.INVALID, problem, replace_with, notes)
    if record.testing:
        notes.append("t=y: the domain says it is testing DKIM; remove t=y once mail verifies")
    return _with(base, KeyStatus.OK, "the published key matches the private key", "", notes)


def _usable(record: KeyRecord, key: SigningKey | None) -> str:
    """Why verifiers cannot use the record for our signatures; empty when they can."""
    if record.revoked:
        return "the published key is revoked (empty p=)"
    if record.hashes is not None and "sha256" not in record.hashes:
        return f"h={':'.join(record.hashes)} does not allow sha256, which every signature uses"
    if not ({"*", "email"} & set(record.services)):
        return f"s={':'.join(record.services)} does not allow email"
    if record.key_type is KeyType.RSA and record.bits < MIN_RSA_BITS:
        return (
            f"the {record.bits}-bit RSA key is too small: receivers ignore signatures with "
            "keys under 1024 bits (RFC 8301); make a 2048-bit key"
        )
    return ""


def _same_key(published: PublicKey, ours: PublicKey) -> bool:
    if isinstance(published, rsa.RSAPublicKey) and isinstance(ours, rsa.RSAPublicKey):
        return published.public_numbers() == ours.public_numbers()
    if isinstance(published, ed25519.Ed25519PublicKey) and isinstance(
        ours, ed25519.Ed25519PublicKey
    ):
        raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
        return published.public_bytes(*raw) == ours.public_bytes(*raw)
    return False


def _with(
    base: KeyCheck, status: KeyStatus, reason: str, fix: str, notes: list[str] | None = None
) -> KeyCheck:
    return KeyCheck(
        base.name,
        status,
        reason,
        fix,
        base.secure,
        tuple(notes or ()),
        base.published,
        base.expected,
    )


__all__ = ["KeyCheck", "KeyStatus", "MIN_RSA_BITS", "check_key", "expected_record", "judge"]
