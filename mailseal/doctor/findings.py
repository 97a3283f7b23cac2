"""What the doctor says: findings as values, and how a batch of checks is laid out.

A :class:`Finding` is one line of the report: a stable check id
(``spf.lookups``), a status, a message for people and, for anything to
change, the exact record or command that fixes it. Deductions are not decided
here but in :mod:`mailseal.doctor.score`, from a table.

A :class:`Part` is one check area as DNS work: independent question
generators (*probes*) that a shell may run concurrently, and a pure function
that turns their findings into the area's findings (for example "no DKIM key
at any common selector" needs every selector's answer).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass

from mailseal.dns.types import Answer, Question


class Status(enum.Enum):
    """How one check came out."""

    OK = "ok"  # nothing to change
    WARN = "warn"  # works, but worth fixing
    FAIL = "fail"  # receivers will hold it against the domain
    ERROR = "error"  # the check could not run (DNS failure): not the domain's fault

    @property
    def rank(self) -> int:
        """Severity order for sorting and summaries: fail, warn, error, ok."""
        return _RANK[self]


_RANK = {Status.FAIL: 0, Status.WARN: 1, Status.ERROR: 2, Status.OK: 3}


@dataclass(frozen=True, slots=True)
class Finding:
    """One result: ``check`` is a stable id such as ``dmarc.record``."""

    check: str
    status: Status
    message: str
    fix: str | None = None  # the exact record or command that fixes it; None when ok
    deduction: float = 0.0  # set by score(); 0 until then
    #: Facts for other checks to build on ("dkim:ed25519", "spf:usable"), never printed.
    facts: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, object]:
        """The shape ``--json`` prints for one finding."""
        return {
            "check": self.check,
            "status": self.status.value,
            "message": self.message,
            "fix": self.fix,
            "deduction": self.deduction,
        }


def ok(check: str, message: str, *facts: str) -> Finding:
    return Finding(check, Status.OK, message, facts=frozenset(facts))


def warn(check: str, message: str, fix: str | None, *facts: str) -> Finding:
    return Finding(check, Status.WARN, message, fix, facts=frozenset(facts))


def fail(check: str, message: str, fix: str | None, *facts: str) -> Finding:
    return Finding(check, Status.FAIL, message, fix, facts=frozenset(facts))


def error(check: str, message: str, fix: str | None = None) -> Finding:
    return Finding(check, Status.ERROR, message, fix)


Findings = list[Finding]
#: A line of DNS questions that ends in findings.
Probe = Generator[Question, Answer, Findings]
Combine = Callable[[Sequence[Findings]], Findings]


def flatten(results: Sequence[Findings]) -> Findings:
    """The default way to combine probes: their findings in probe order."""
    return [f for findings in results for f in findings]


@dataclass(frozen=True, slots=True)
class Part:
    """One check area: probes that may run at the same time, then ``combine``."""

    name: str
    probes: tuple[Probe, ...]
    combine: Combine = flatten


#: Longest character-string in a TXT record (RFC 1035 §3.3: a length octet).
TXT_STRING_MAX = 255


def publish_txt(name: str, text: str) -> str:
    """``publish: NAME. IN TXT "..."``, split into strings of at most 255 characters."""
    if len(text) <= TXT_STRING_MAX:
        return f'publish: {name}. IN TXT "{text}"'
    chunks = [text[i : i + TXT_STRING_MAX] for i in range(0, len(text), TXT_STRING_MAX)]
    return f"publish: {name}. IN TXT ( " + " ".join(f'"{c}"' for c in chunks) + " )"


def has_fact(findings: Sequence[Finding], fact: str) -> bool:
    return any(fact in f.facts for f in findings)


def dns_failure(answer: Answer) -> str:
    """``TXT _dmarc.example.com: timeout (no answer from ...)``, for error findings."""
    q = answer.question
    detail = f" ({answer.detail})" if answer.detail else ""
    return f"{q.rdtype.value} {q.name}: {answer.status.value}{detail}"


__all__ = [
    "Combine",
    "Finding",
    "Findings",
    "Part",
    "Probe",
    "Status",
    "dns_failure",
    "error",
    "fail",
    "flatten",
    "has_fact",
    "ok",
    "publish_txt",
    "warn",
]
