"""DNS questions and answers as plain values, shared by the core and the DNS shell.

Core code that needs DNS is a generator: it yields a :class:`Question` and is
sent an :class:`Answer`. The statuses keep apart what RFC 6376 §6.1.2, RFC 7208
§5 and RFC 9989 need apart: a name that does not exist (NXDOMAIN), a name with
no record of the asked type (NODATA), and the failures that are worth retrying
(SERVFAIL, TIMEOUT).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class RdType(enum.Enum):
    """Record types mailseal asks for."""

    A = "A"
    AAAA = "AAAA"
    MX = "MX"
    TXT = "TXT"
    PTR = "PTR"
    CNAME = "CNAME"
    NS = "NS"
    SOA = "SOA"


class Status(enum.Enum):
    """What became of a question."""

    OK = "ok"  # one or more records of the asked type
    NXDOMAIN = "nxdomain"  # the name does not exist (rcode 3)
    NODATA = "nodata"  # the name exists, no record of this type
    SERVFAIL = "servfail"  # the server said it failed, or refused (rcode 2, 5, ...)
    TIMEOUT = "timeout"  # no answer in time from any server

    @property
    def is_temporary(self) -> bool:
        """True for failures worth retrying later (temperror), False for definite answers."""
        return self in (Status.SERVFAIL, Status.TIMEOUT)


@dataclass(frozen=True, slots=True)
class Question:
    """One DNS question: an absolute name without the trailing dot, and a type."""

    name: str
    rdtype: RdType


@dataclass(frozen=True, slots=True)
class Answer:
    """The answer to a :class:`Question`.

    ``records`` holds one entry per resource record, as text in the shape each
    type needs:

    - TXT: the record's character-strings joined *without* separators
      (RFC 6376 §3.6.2.2, RFC 7208 §3.3), decoded as Latin-1 so no byte is lost;
    - A / AAAA: the address in its usual text form (``192.0.2.1``, ``2001:db8::1``);
    - MX: ``"PREFERENCE EXCHANGE"`` with the exchange lower-case, no trailing dot;
    - PTR / CNAME / NS: the target name, lower-case, no trailing dot.

    ``ttl`` is the smallest TTL of the answer (or of the SOA minimum for a
    negative answer) in seconds; ``secure`` is True only when a validating
    resolver set the AD bit. ``detail`` is a human explanation of a failure.
    """

    question: Question
    status: Status
    records: tuple[str, ...] = ()
    ttl: int = 0
    secure: bool = False
    detail: str = field(default="", compare=False)

    @property
    def ok(self) -> bool:
        return self.status is Status.OK and bool(self.records)
