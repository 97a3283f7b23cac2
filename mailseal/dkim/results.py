"""DKIM verdicts as values (RFC 8601 §2.7.1 result words)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class DkimResult(enum.Enum):
    """dkim= result words of RFC 8601 §2.7.1."""

    NONE = "none"
    PASS = "pass"
    FAIL = "fail"
    POLICY = "policy"
    NEUTRAL = "neutral"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


@dataclass(frozen=True, slots=True)
class SignatureVerdict:
    """The outcome for one DKIM-Signature field."""

    result: DkimResult
    domain: str  # d= (SDID) as written, lower-cased; "" when the field had none
    selector: str  # s=
    algorithm: str  # a=, as written in the signature
    reason: str  # for people and logs: "body hash did not verify", "signature verified"
    identity: str | None = None  # i= (AUID), defaulting to "@" + d=
    testing: bool = False  # the key record has t=y
    key_bits: int | None = None  # RSA modulus size or 256 for Ed25519, once the key was read
    b_prefix: str = ""  # the first 8 characters of b=, for header.b (RFC 6008)
    key_missing: bool = False  # permerror because no key record exists (On-KeyNotFound)

    def to_json(self) -> dict[str, str]:
        """The shape ``mailseal verify --json`` prints for one signature."""
        return {
            "result": self.result.value,
            "domain": self.domain,
            "selector": self.selector,
            "algorithm": self.algorithm,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class MessageVerdict:
    """The outcome for a whole message: each signature, in header order (top first)."""

    signatures: tuple[SignatureVerdict, ...]

    @property
    def result(self) -> DkimResult:
        """PASS if any signature passes, NONE if there are none, else the first one's result."""
        if not self.signatures:
            return DkimResult.NONE
        if any(s.result is DkimResult.PASS for s in self.signatures):
            return DkimResult.PASS
        return self.signatures[0].result
