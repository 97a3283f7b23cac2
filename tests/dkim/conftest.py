"""Fixtures for the DKIM engine tests: a static in-memory resolver and keys made once.

The resolver answers from a dict (name -> TXT records) with no network and no
zone-file parsing, so a failing DKIM test points at the DKIM code. Absent names
are NXDOMAIN, names with an empty list are NODATA, chosen names can be made to
fail with SERVFAIL or TIMEOUT, and every question is recorded so tests can check
which keys were (and were not) fetched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from mailseal.dkim.keys import KeyType, SigningKey, generate_key
from mailseal.dkim.results import DkimResult, MessageVerdict
from mailseal.dkim.sign import SignerSpec, sign_message
from mailseal.dkim.verify import VerifyOptions, verify_message
from mailseal.dns.drive import drive_sync
from mailseal.dns.types import Answer, Question, RdType, Status

#: A TXT record: one string, or its character-strings (joined with no separator,
#: RFC 6376 §3.6.2.2, as the DNS layer does before core code sees them).
TxtRecord = str | Sequence[str]


@dataclass
class StaticResolver:
    """Answer questions from ``records`` (name -> TXT records); record every question."""

    records: dict[str, list[TxtRecord]] = field(default_factory=dict)
    failures: dict[str, Status] = field(default_factory=dict)
    questions: list[Question] = field(default_factory=list)

    def ask_sync(self, question: Question) -> Answer:
        self.questions.append(question)
        name = question.name.rstrip(".").lower()
        if name in self.failures:
            status = self.failures[name]
            return Answer(question, status, detail=f"{status.value} (test resolver)")
        if name not in self.records:
            return Answer(question, Status.NXDOMAIN, ttl=300)
        txt = self.records[name] if question.rdtype is RdType.TXT else []
        if not txt:
            return Answer(question, Status.NODATA, ttl=300)
        joined = tuple(r if isinstance(r, str) else "".join(r) for r in txt)
        return Answer(question, Status.OK, joined, ttl=300)

    @property
    def asked(self) -> list[str]:
        """The names asked, in order."""
        return [q.name for q in self.questions]


ZoneFactory = Callable[..., StaticResolver]


@pytest.fixture(scope="session")
def zone() -> ZoneFactory:
    """Make a resolver: ``zone({name: [txt, ...]}, fail={name: Status.SERVFAIL})``."""

    def make(
        records: Mapping[str, Iterable[TxtRecord]] | None = None,
        *,
        fail: Mapping[str, Status] | None = None,
    ) -> StaticResolver:
        for status in (fail or {}).values():
            assert status.is_temporary, (
                "fail= is for SERVFAIL and TIMEOUT; leave a name out for NXDOMAIN"
            )
        return StaticResolver(
            records={k.rstrip(".").lower(): list(v) for k, v in (records or {}).items()},
            failures={k.rstrip(".").lower(): v for k, v in (fail or {}).items()},
        )

    return make


def key_name(spec: SignerSpec) -> str:
    """Where the key record for ``spec`` is published (RFC 6376 §3.6.2.1)."""
    return f"{spec.selector}._domainkey.{spec.domain}"


def publish(*specs: SignerSpec) -> dict[str, list[TxtRecord]]:
    """Key records for ``specs``, as the signer's key would publish them."""
    return {key_name(s): [s.key.public_record()] for s in specs}


def sign(message: bytes, specs: Sequence[SignerSpec], now: int) -> bytes:
    """Return ``message`` (CRLF form) with the DKIM-Signature fields for ``specs`` prepended."""
    fields = sign_message(message, list(specs), now)
    return b"".join(f + b"\r\n" for f in fields) + message


def verify(
    message: bytes,
    resolver: StaticResolver,
    now: int,
    options: VerifyOptions | None = None,
) -> MessageVerdict:
    """Verify a whole message (CRLF form) against ``resolver``."""
    return drive_sync(verify_message(message, options or VerifyOptions(), now), resolver)


def assert_verdicts(verdict: MessageVerdict, expected: Sequence[tuple[DkimResult, str]]) -> None:
    """Each signature's result, and a substring of its reason ("" to accept any reason)."""
    got = [(s.result, s.reason) for s in verdict.signatures]
    assert len(got) == len(expected), got
    for (result, reason), (want, part) in zip(got, expected, strict=True):
        assert result is want and part in reason, (got, expected)


@pytest.fixture(scope="session")
def rsa_key() -> SigningKey:
    """An RSA-1024 key: the smallest size the default policy accepts, and quick to make."""
    return generate_key(KeyType.RSA, 1024)


@pytest.fixture(scope="session")
def ed25519_key() -> SigningKey:
    return generate_key(KeyType.ED25519)
