"""DKIM verification (RFC 6376 §6, RFC 8463, RFC 8301), streaming over the body.

:class:`MessageVerifier` is built from the header fields, fed body chunks, and
finished by a generator that asks for key records (DNS questions) and returns
a :class:`MessageVerdict`. No I/O or clock inside: the caller passes ``now``
and answers the questions (see ``dns.drive``).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from mailseal.dkim.canon import BodyHasher, Canon, canon_header
from mailseal.dkim.keys import KeyType
from mailseal.dkim.record import KeyRecord, KeyRecordError, parse_key_record
from mailseal.dkim.results import DkimResult, MessageVerdict, SignatureVerdict
from mailseal.dkim.sign import hash_input_headers
from mailseal.dkim.signature import (
    Signature,
    SignatureError,
    SignatureLabels,
    parse_signature,
    read_labels,
    without_b_value,
)
from mailseal.dns.types import Answer, Question, RdType, Status
from mailseal.message.headers import HeaderField, MessageSplitter

_HASHES: Final = {"sha256": hashes.SHA256, "sha1": hashes.SHA1}


@dataclass(frozen=True, slots=True)
class VerifyOptions:
    """Verifier policy. Defaults follow RFC 8301 and OpenDKIM."""

    min_key_bits: int = 1024  # RFC 8301 §3.2: keys under 1024 bits MUST NOT be valid
    allow_sha1: bool = False  # RFC 8301 §3.1: rsa-sha1 MUST NOT be considered valid
    max_signatures: int = 10  # evaluate at most this many; later ones "not evaluated"
    clock_drift: int = 300  # seconds of slack for t= and x= (OpenDKIM ClockDrift)


KeyLookup = KeyRecord | tuple[DkimResult, str]
NO_KEY: Final = "no key record at "


@functools.lru_cache(maxsize=256)
def _parse_key_record(text: str) -> KeyRecord:
    """parse_key_record, remembered by record text: loading the public key is most of
    its cost, and one domain's key verifies many messages. Errors are not cached."""
    return parse_key_record(text)


def fetch_key(selector: str, domain: str) -> Generator[Question, Answer, KeyLookup]:
    """Get the key record for a signature (RFC 6376 §3.6.2.2; failures per §6.1.2).

    A failed query is temperror; no such name, no TXT record or no usable
    record is permerror. Several TXT records: the first that parses is used.
    """
    answer = yield Question(f"{selector}._domainkey.{domain}", RdType.TXT)
    if answer.status.is_temporary:
        detail = f": {answer.detail}" if answer.detail else ""
        return DkimResult.TEMPERROR, f"key query {answer.status.value}{detail}"
    if answer.status in (Status.NXDOMAIN, Status.NODATA) or not answer.records:
        return DkimResult.PERMERROR, f"{NO_KEY}{selector}._domainkey.{domain}"
    first_error = ""
    for text in answer.records:
        try:
            return _parse_key_record(text)
        except KeyRecordError as exc:
            first_error = first_error or str(exc)
    return DkimResult.PERMERROR, first_error


def _check_key(sig: Signature, rec: KeyRecord) -> str | None:
    """Why a key record cannot verify this signature (permerror), or None."""
    if rec.revoked:
        return "key revoked (empty p=)"
    if rec.key_type.value != sig.key_type:
        return f"key type {rec.key_type.value} does not match a={sig.algorithm}"
    if rec.hashes is not None and sig.hash_name not in rec.hashes:
        return f"key record h= does not allow {sig.hash_name}"
    if "*" not in rec.services and "email" not in rec.services:
        return "key record s= does not include email"
    if rec.strict and sig.identity.rpartition("@")[2].lower().rstrip(".") != sig.domain:
        return "key record t=s requires i= domain to equal d="
    return None


def _crypto_ok(sig: Signature, rec: KeyRecord, data: bytes) -> bool:
    key = rec.key
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(sig.signature, hashlib.sha256(data).digest())
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(sig.signature, data, padding.PKCS1v15(), _HASHES[sig.hash_name]())
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(slots=True)
class _Pending:
    """A signature being evaluated, or already decided (verdict set)."""

    field: HeaderField
    labels: SignatureLabels
    sig: Signature | None = None
    verdict: SignatureVerdict | None = None
    hasher_key: tuple[Canon, str, int | None] | None = None


class MessageVerifier:
    """Verify every DKIM-Signature of one message streamed as fields, then body chunks."""

    __slots__ = ("fields", "options", "_pending", "_hashers", "_now")

    def __init__(
        self, fields: Sequence[HeaderField], options: VerifyOptions, now: int | None = None
    ) -> None:
        self.fields = list(fields)
        self.options = options
        self._now = now
        self._hashers: dict[tuple[Canon, str, int | None], BodyHasher] = {}
        self._pending: list[_Pending] = []
        evaluated = 0
        for f in self.fields:
            if f.lname != "dkim-signature":
                continue
            if evaluated >= options.max_signatures:
                p = _Pending(f, read_labels(f.value))
                p.verdict = self._verdict(p, DkimResult.NEUTRAL, "not evaluated")
            else:
                evaluated += 1
                p = self._prepare(f)
            self._pending.append(p)

    def _verdict(
        self, p: _Pending, result: DkimResult, reason: str, rec: KeyRecord | None = None
    ) -> SignatureVerdict:
        return SignatureVerdict(
            result=result,
            domain=p.labels.domain,
            selector=p.labels.selector,
            algorithm=p.labels.algorithm,
            reason=reason,
            b_prefix=p.labels.b_prefix,
            identity=p.sig.identity if p.sig else None,
            testing=bool(rec and rec.testing),
            key_bits=rec.bits if rec and not rec.revoked else None,
        )

    def _prepare(self, f: HeaderField) -> _Pending:
        try:
            sig = parse_signature(f.value)
        except SignatureError as exc:
            # Best effort d=, s=, a= for the report of a field that does not parse.
            p = _Pending(f, read_labels(f.value))
            p.verdict = self._verdict(p, DkimResult.PERMERROR, str(exc))
            return p
        # The first 6 bytes of b= encode to its first 8 base64 characters (header.b).
        b_prefix = base64.b64encode(sig.signature[:6]).decode("ascii")
        p = _Pending(f, SignatureLabels(sig.domain, sig.selector, sig.algorithm, b_prefix), sig)
        p.hasher_key = (sig.body_canon, sig.hash_name, sig.length)
        if p.hasher_key not in self._hashers:
            self._hashers[p.hasher_key] = BodyHasher(sig.body_canon, sig.hash_name, sig.length)
        return p

    @property
    def signature_count(self) -> int:
        return len(self._pending)

    def update(self, chunk: bytes) -> None:
        """Feed a body chunk (CRLF line ends)."""
        for h in self._hashers.values():
            h.update(chunk)

    def _time_problem(self, sig: Signature, now: int) -> str | None:
        """Why t= or x= make the signature unusable at ``now`` (RFC 6376 §3.5), or None."""
        drift = self.options.clock_drift
        if sig.expiration is not None and now > sig.expiration + drift:
            return "signature expired (x=)"
        if sig.timestamp is not None and sig.timestamp > now + drift:
            return "signature timestamp is in the future"
        return None

    def finish(self, now: int | None = None) -> Generator[Question, Answer, MessageVerdict]:
        """Ask for keys and return the verdict for every signature, in header order.

        ``now`` (seconds since the epoch) checks t= and x=; it defaults to the
        time given to the constructor, and one of the two is required.
        """
        when = self._now if now is None else now
        if when is None:
            raise ValueError("MessageVerifier.finish() needs the time (now=)")
        keys: dict[tuple[str, str], KeyLookup] = {}
        verdicts: list[SignatureVerdict] = []
        for p in self._pending:
            if p.verdict is None:
                assert p.sig is not None
                late = self._time_problem(p.sig, when)
                if late:
                    p.verdict = self._verdict(p, DkimResult.PERMERROR, late)
                    verdicts.append(p.verdict)
                    continue
                where = (p.sig.selector, p.sig.domain)
                if where not in keys:
                    keys[where] = yield from fetch_key(*where)
                p.verdict = self._evaluate(p, p.sig, keys[where])
            verdicts.append(p.verdict)
        return MessageVerdict(tuple(verdicts))

    def _evaluate(self, p: _Pending, sig: Signature, lookup: KeyLookup) -> SignatureVerdict:
        if isinstance(lookup, tuple):
            verdict = self._verdict(p, lookup[0], lookup[1])
            if lookup[1].startswith(NO_KEY):
                verdict = dataclasses.replace(verdict, key_missing=True)
            return verdict
        rec = lookup
        problem = _check_key(sig, rec)
        if problem:
            return self._verdict(p, DkimResult.PERMERROR, problem, rec)
        assert p.hasher_key is not None
        hasher = self._hashers[p.hasher_key]
        if hasher.digest() != sig.body_hash:
            return self._verdict(p, DkimResult.FAIL, "body hash did not verify", rec)
        if sig.length is not None and sig.length > hasher.length:
            return self._verdict(p, DkimResult.FAIL, "l= is longer than the body", rec)
        data = b"".join(hash_input_headers(self.fields, sig.headers, sig.header_canon))
        unsigned = without_b_value(p.field.raw)
        data += canon_header(unsigned, sig.header_canon)[:-2]
        if not _crypto_ok(sig, rec, data):
            return self._verdict(p, DkimResult.FAIL, "signature did not verify", rec)
        if sig.algorithm == "rsa-sha1" and not self.options.allow_sha1:
            return self._verdict(
                p, DkimResult.POLICY, "rsa-sha1 is not accepted (RFC 8301); --allow-sha1", rec
            )
        if rec.key_type is KeyType.RSA and rec.bits < self.options.min_key_bits:
            return self._verdict(
                p,
                DkimResult.POLICY,
                f"RSA key of {rec.bits} bits is below the minimum of {self.options.min_key_bits}",
                rec,
            )
        reason = "signature verified"
        if rec.testing:
            reason += "; key is in testing mode (t=y)"
        return self._verdict(p, DkimResult.PASS, reason, rec)


def verify_message(
    message: bytes, options: VerifyOptions, now: int
) -> Generator[Question, Answer, MessageVerdict]:
    """Verify a whole message in CRLF form (for small inputs and tests)."""
    splitter = MessageSplitter(max_header_bytes=len(message) + 1)
    body = splitter.feed(message)
    verifier = MessageVerifier(splitter.finish(), options, now)
    verifier.update(body)
    return (yield from verifier.finish())
