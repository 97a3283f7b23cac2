"""SPF verdicts as values: the result words of RFC 7208 §2.6 (RFC 8601 §2.7.2)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SpfResult(enum.Enum):
    """What ``check_host()`` concludes (RFC 7208 §2.6), as Authentication-Results writes it."""

    NONE = "none"  # no SPF record, or no domain to check (§2.6.1)
    NEUTRAL = "neutral"  # the domain makes no assertion about the IP (§2.6.2)
    PASS = "pass"  # the IP is authorized (§2.6.3)
    FAIL = "fail"  # the IP is explicitly not authorized (§2.6.4)
    SOFTFAIL = "softfail"  # probably not authorized (§2.6.5)
    TEMPERROR = "temperror"  # a DNS failure that may go away (§2.6.6)
    PERMERROR = "permerror"  # the record cannot be interpreted (§2.6.7)


class Identity(enum.Enum):
    """Which identity a check authorizes (RFC 7208 §2.3, §2.4)."""

    MAILFROM = "mailfrom"
    HELO = "helo"


@dataclass(frozen=True, slots=True)
class SpfVerdict:
    """The outcome of one SPF check.

    ``lookups`` is the RFC 7208 §4.6.4 count of DNS-querying terms evaluated
    (``include``, ``a``, ``mx``, ``ptr``, ``exists`` and ``redirect=``, across
    every included and redirected record); the check stops with permerror when
    it would pass the limit, so a value over 10 means that happened.
    ``void_lookups`` counts the terms whose query found nothing (NXDOMAIN or no
    records). ``mechanism`` is the term that decided the result, as written in
    the record (``-all``, ``include:_spf.example.net``, ``ip4:192.0.2.0/24``);
    after a ``redirect=`` it is the term matched in the record redirected to.
    ``explanation`` is the expanded ``exp=`` text, only ever for ``fail``, and
    None when the domain publishes none or it could not be used (§6.2).
    """

    result: SpfResult
    domain: str  # the domain whose policy was checked, lower-case, no trailing dot
    reason: str  # for people and logs: "matched ip4:192.0.2.0/24", "no SPF record at example.com"
    mechanism: str | None = None
    explanation: str | None = None
    lookups: int = 0
    void_lookups: int = 0
    record: str | None = None  # the SPF record found at ``domain``, if one was

    def to_json(self) -> dict[str, str | int | None]:
        """The shape ``mailseal spf --json`` prints."""
        return {
            "result": self.result.value,
            "explanation": self.explanation,
            "mechanism": self.mechanism,
            "lookups": self.lookups,
        }
