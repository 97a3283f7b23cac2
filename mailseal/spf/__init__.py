"""SPF (RFC 7208): parse records, expand macros, evaluate check_host() without I/O.

The engine is a generator that yields DNS questions and is sent the answers
(see :mod:`mailseal.dns.drive`); it returns an :class:`SpfVerdict`::

    from mailseal.dns.drive import drive
    from mailseal.spf import check_mailfrom

    check = check_mailfrom("192.0.2.1", "alice@example.com", helo="mx.example.com")
    verdict = await drive(check, resolver)
    verdict.result, verdict.mechanism, verdict.lookups
"""

from mailseal.spf.eval import (
    DEFAULT_LIMITS,
    SpfCheck,
    SpfLimits,
    check_helo,
    check_host,
    check_mailfrom,
)
from mailseal.spf.macros import MacroContext, MacroString, MacroSyntaxError
from mailseal.spf.record import (
    Kind,
    Mechanism,
    Modifier,
    Qualifier,
    SpfRecord,
    SpfSyntaxError,
    is_spf_record,
    parse_record,
    spf_records,
)
from mailseal.spf.results import Identity, SpfResult, SpfVerdict

__all__ = [
    "DEFAULT_LIMITS",
    "Identity",
    "Kind",
    "MacroContext",
    "MacroString",
    "MacroSyntaxError",
    "Mechanism",
    "Modifier",
    "Qualifier",
    "SpfCheck",
    "SpfLimits",
    "SpfRecord",
    "SpfResult",
    "SpfSyntaxError",
    "SpfVerdict",
    "check_helo",
    "check_host",
    "check_mailfrom",
    "is_spf_record",
    "parse_record",
    "spf_records",
]
