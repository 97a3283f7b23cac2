"""The score out of 10, as online mail testers give it: start at 10, subtract deductions.

Every deduction comes from :data:`WEIGHTS`, keyed by check id: what a ``warn``
costs, what a ``fail`` costs, and the most that check may cost in all (three
blocklist listings cost 3 points; two selectors without a key still cost 2).
``ok`` and ``error`` findings cost nothing: an error means the check could not
run (a DNS failure on the way), which says nothing against the domain. The
score is clamped to 0..10 and rounded to one decimal, so a domain with no
problem scores exactly 10.

The weights follow what receivers do with the problem: anything that makes
SPF, DKIM or DMARC fail outright, or gets the address refused (no PTR, a
blocklist listing), costs 1.5 to 2 points; weaknesses that only some
receivers score down cost 0.25 to 1; the TLS records, which no receiver
requires, cost 0.25.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Final

from mailseal.doctor.findings import Finding, Status


@dataclass(frozen=True, slots=True)
class Weight:
    """What a check's findings cost: per warn, per fail, at most ``cap`` in all."""

    warn: float
    fail: float
    cap: float


MAX_SCORE: Final = 10.0
#: Checks missing from the table (none should be) cost this.
DEFAULT_WEIGHT: Final = Weight(warn=0.5, fail=1.0, cap=1.0)
WEIGHTS: Final[Mapping[str, Weight]] = MappingProxyType(
    {
        # the domain can receive mail (bounces, replies; reject_unknown_sender_domain)
        "mx": Weight(warn=0.5, fail=1.5, cap=1.5),
        "mx.address": Weight(warn=0.5, fail=1.0, cap=1.0),
        # SPF
        "spf.record": Weight(warn=0.5, fail=2.0, cap=2.0),
        "spf.lookups": Weight(warn=0.5, fail=2.0, cap=2.0),
        "spf.all": Weight(warn=0.5, fail=1.0, cap=1.0),
        "spf.ip": Weight(warn=1.0, fail=2.0, cap=2.0),
        "spf.helo": Weight(warn=0.25, fail=0.5, cap=0.5),
        # DKIM
        "dkim.key": Weight(warn=0.5, fail=2.0, cap=2.0),
        "dkim.selectors": Weight(warn=1.0, fail=2.0, cap=2.0),
        "dkim.size": Weight(warn=0.5, fail=1.5, cap=1.5),
        "dkim.testing": Weight(warn=0.5, fail=0.5, cap=0.5),
        "dkim.rsa": Weight(warn=0.5, fail=0.5, cap=0.5),
        # DMARC
        "dmarc.record": Weight(warn=0.5, fail=1.5, cap=1.5),
        "dmarc.syntax": Weight(warn=0.25, fail=0.5, cap=1.0),
        "dmarc.policy": Weight(warn=0.5, fail=0.5, cap=0.5),
        "dmarc.alignment": Weight(warn=0.5, fail=1.5, cap=1.5),
        "dmarc.rua": Weight(warn=0.25, fail=0.5, cap=0.5),
        # the sending address
        "rdns.ptr": Weight(warn=0.5, fail=1.5, cap=1.5),
        "rdns.fcrdns": Weight(warn=0.5, fail=1.0, cap=1.0),
        "rdns.helo": Weight(warn=0.5, fail=0.5, cap=0.5),
        "dnsbl": Weight(warn=0.5, fail=1.0, cap=3.0),
        # TLS to the domain's MX
        "mta-sts": Weight(warn=0.25, fail=0.25, cap=0.25),
        "tls-rpt": Weight(warn=0.25, fail=0.25, cap=0.25),
        # inspect: what a received message shows
        "msg.headers": Weight(warn=0.5, fail=1.0, cap=1.0),
        "msg.dkim": Weight(warn=1.0, fail=2.0, cap=2.0),
        "msg.spf": Weight(warn=1.0, fail=2.0, cap=2.0),
        "msg.dmarc": Weight(warn=1.0, fail=2.0, cap=2.0),
        "msg.authres": Weight(warn=0.5, fail=1.0, cap=1.0),
    }
)


@dataclass(frozen=True, slots=True)
class Report:
    """A scored set of findings: what ``--json`` prints."""

    domain: str
    score: float
    findings: tuple[Finding, ...]

    @property
    def failed(self) -> bool:
        """Some finding is ``fail`` (exit status 1)."""
        return any(f.status is Status.FAIL for f in self.findings)

    @property
    def deductions(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.deduction > 0)

    def to_json(self) -> dict[str, object]:
        return {
            "domain": self.domain,
            "score": self.score,
            "findings": [f.to_json() for f in self.findings],
        }


def weight(check: str) -> Weight:
    return WEIGHTS.get(check, DEFAULT_WEIGHT)


def score(domain: str, findings: Sequence[Finding]) -> Report:
    """Set each finding's deduction from :data:`WEIGHTS` and total the score."""
    spent: dict[str, float] = {}
    scored: list[Finding] = []
    for finding in findings:
        w = weight(finding.check)
        cost = {Status.WARN: w.warn, Status.FAIL: w.fail}.get(finding.status, 0.0)
        cost = max(0.0, min(cost, w.cap - spent.get(finding.check, 0.0)))
        spent[finding.check] = spent.get(finding.check, 0.0) + cost
        scored.append(replace(finding, deduction=round(cost, 2)))
    total = sum(f.deduction for f in scored)
    value = round(min(MAX_SCORE, max(0.0, MAX_SCORE - total)), 1)
    return Report(domain, value, tuple(scored))


__all__ = ["DEFAULT_WEIGHT", "MAX_SCORE", "Report", "WEIGHTS", "Weight", "score", "weight"]
