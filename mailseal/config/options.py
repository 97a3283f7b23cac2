"""Every option name opendkim.conf may hold, its value type, and whether mailseal uses it.

The names and types are those of OpenDKIM 2.11's ``opendkim/opendkim-config.h``
(develop branch, every ``_FFR_`` and library-dependent entry included, since a
config written for any build must load) plus ``ReplaceHeaders`` from
opendkim.conf(5). OpenDKIM checks a boolean's or integer's syntax even for an
option it will not use, and so do we. mailseal's own options start with
``Mailseal`` so that OpenDKIM never uses them.
"""

from __future__ import annotations

import difflib
import enum
from dataclasses import dataclass
from typing import Final


class Kind(enum.Enum):
    """How the grammar reads a value (OpenDKIM's CONFIG_TYPE_*)."""

    BOOL = "boolean"
    INT = "integer"
    STR = "string"
    INCLUDE = "include"


@dataclass(frozen=True, slots=True)
class Option:
    name: str  # canonical spelling, as the man page writes it
    kind: Kind
    supported: bool
    note: str = ""  # for an ignored option: what to do instead


_B, _I, _S = Kind.BOOL, Kind.INT, Kind.STR

_SUPPORTED: Final[tuple[tuple[str, Kind], ...]] = (
    ("AlwaysAddARHeader", _B),
    ("AuthservID", _S),
    ("AutoRestart", _B),
    ("AutoRestartCount", _I),
    ("AutoRestartRate", _S),
    ("Background", _B),
    ("BaseDirectory", _S),
    ("Canonicalization", _S),
    ("ClockDrift", _I),
    ("DNSTimeout", _I),
    ("Domain", _S),
    ("ExternalIgnoreList", _S),
    ("FixCRLF", _B),
    ("Include", Kind.INCLUDE),
    ("InternalHosts", _S),
    ("KeepAuthResults", _B),
    ("KeyFile", _S),
    ("KeyTable", _S),
    ("LogResults", _B),
    ("LogWhy", _B),
    ("MacroList", _S),
    ("MaximumHeaders", _I),
    ("MaximumSignaturesToVerify", _I),
    ("MaximumSignedBytes", _I),
    ("MinimumKeyBits", _I),
    ("Mode", _S),
    ("MTA", _S),
    ("MultipleSignatures", _B),
    ("Nameservers", _S),
    ("OmitHeaders", _S),
    ("On-BadSignature", _S),
    ("On-Default", _S),
    ("On-DNSError", _S),
    ("On-InternalError", _S),
    ("On-KeyNotFound", _S),
    ("On-NoSignature", _S),
    ("On-Security", _S),
    ("On-SignatureError", _S),
    ("OversignHeaders", _S),
    ("PeerList", _S),
    ("PidFile", _S),
    ("RemoveARAll", _B),
    ("RemoveARFrom", _S),
    ("RemoveOldSignatures", _B),
    ("RequireSafeKeys", _B),
    ("Selector", _S),
    ("SenderHeaders", _S),
    ("SignatureAlgorithm", _S),
    ("SignatureTTL", _I),
    ("SignHeaders", _S),
    ("SigningTable", _S),
    ("Socket", _S),
    ("SoftwareHeader", _B),
    ("SubDomains", _B),
    ("Syslog", _B),
    ("SyslogFacility", _S),
    ("SyslogName", _S),
    ("SyslogSuccess", _B),
    ("UMask", _I),
    ("UserID", _S),
    ("X-Header", _B),  # OpenDKIM's deprecated spelling of SoftwareHeader
)

#: mailseal's own options.
_MAILSEAL: Final[tuple[tuple[str, Kind], ...]] = (("MailsealWorkers", _I),)

# Advice for ignored options where a plain "ignored" would leave the admin guessing.
_NOTES: Final[dict[str, str]] = {
    "TrustAnchorFile": "DNSSEC validation is the system resolver's job",
    "ResolverConfiguration": "name DNS servers with Nameservers",
    "ChangeRootDirectory": "mailseal does not chroot; run it under systemd's RootDirectory=",
    "QueryCache": "mailseal always caches DNS answers for their TTL",
    "Quarantine": "use On-BadSignature quarantine",
    "DomainKeysCompat": "DomainKeys (RFC 4870) keys are not accepted",
    "AllowSHA1Only": "rsa-sha1 signatures never verify (RFC 8301)",
    "MilterDebug": "run with -v for more logging",
}

_IGNORED: Final[tuple[tuple[str, Kind], ...]] = (
    ("AllowSHA1Only", _B),
    ("ATPSDomains", _S),
    ("ATPSHashAlgorithm", _S),
    ("AuthservIDWithJobID", _B),
    ("BodyLengthDB", _S),
    ("BogusKey", _S),
    ("CaptureUnknownErrors", _B),
    ("ChangeRootDirectory", _S),
    ("ConditionalSignatures", _S),
    ("DefaultSender", _S),
    ("DiagnosticDirectory", _S),
    ("Diagnostics", _B),
    ("DisableCryptoInit", _B),
    ("DNSConnect", _B),
    ("DomainKeysCompat", _B),
    ("DontSignMailTo", _S),
    ("EnableCoredumps", _B),
    ("ExemptDomains", _S),
    ("FinalPolicyScript", _S),
    ("FlowData", _S),
    ("FlowDataFactor", _I),
    ("FlowDataTTL", _I),
    ("IdentityHeader", _S),
    ("IdentityHeaderRemove", _B),
    ("IgnoreMalformedMail", _B),
    ("KeepTemporaryFiles", _B),
    ("LDAPAuthMechanism", _S),
    ("LDAPAuthName", _S),
    ("LDAPAuthRealm", _S),
    ("LDAPAuthUser", _S),
    ("LDAPBindPassword", _S),
    ("LDAPBindUser", _S),
    ("LDAPDisableCache", _B),
    ("LDAPKeepaliveIdle", _S),
    ("LDAPKeepaliveInterval", _S),
    ("LDAPKeepaliveProbes", _S),
    ("LDAPTimeout", _S),
    ("LDAPUseTLS", _B),
    ("LuaOnlySigning", _B),
    ("MilterDebug", _I),
    ("Minimum", _S),
    ("MTACommand", _S),
    ("MustBeSigned", _S),
    ("NoHeaderB", _B),
    ("On-ReputationError", _S),
    ("POPDBFile", _S),
    ("Quarantine", _B),
    ("QueryCache", _B),
    ("RateLimits", _S),
    ("RedirectFailuresTo", _S),
    ("ReplaceHeaders", _S),
    ("ReplaceRules", _S),
    ("ReportAddress", _S),
    ("ReportBccAddress", _S),
    ("ReputationCache", _S),
    ("ReputationCacheTTL", _I),
    ("ReputationDuplicates", _S),
    ("ReputationLimitModifiers", _S),
    ("ReputationLimits", _S),
    ("ReputationLowTime", _S),
    ("ReputationMinimum", _I),
    ("ReputationRatios", _S),
    ("ReputationRRDHashDepth", _I),
    ("ReputationRRDRoot", _S),
    ("ReputationSpamCheck", _S),
    ("ReputationTest", _B),
    ("ReputationTimeFactor", _I),
    ("ReputationTimeout", _I),
    ("ReputationVerbose", _B),
    ("RequestReports", _B),
    ("RequiredHeaders", _B),
    ("ResignAll", _B),
    ("ResignMailTo", _S),
    ("ResolverConfiguration", _S),
    ("ResolverTracing", _B),
    ("ScreenPolicyScript", _S),
    ("SelectCanonicalizationHeader", _S),
    ("SenderMacro", _S),
    ("SendReports", _B),
    ("SetupPolicyScript", _S),
    ("SMTPURI", _S),
    ("SoftStart", _B),
    ("Statistics", _S),
    ("StatisticsName", _S),
    ("StatisticsPolicyScript", _S),
    ("StatisticsPrefix", _S),
    ("StrictHeaders", _B),
    ("StrictTestMode", _B),
    ("TemporaryDirectory", _S),
    ("TestDNSData", _S),
    ("TestPublicKeys", _S),
    ("TrustAnchorFile", _S),
    ("TrustSignaturesFrom", _S),
    ("UnprotectedKey", _S),
    ("VBR-Certifiers", _S),
    ("VBR-PurgeFields", _B),
    ("VBR-TrustedCertifiers", _S),
    ("VBR-TrustedCertifiersOnly", _B),
    ("VBR-Type", _S),
    ("WeakSyntaxChecks", _B),
)


def _table() -> dict[str, Option]:
    table: dict[str, Option] = {}
    for name, kind in _SUPPORTED + _MAILSEAL:
        table[name.lower()] = Option(name, kind, True)
    for name, kind in _IGNORED:
        table[name.lower()] = Option(name, kind, False, _NOTES.get(name, ""))
    return table


#: Lower-case name -> option.
OPTIONS: Final[dict[str, Option]] = _table()

#: Options whose names are mailseal's own.
MAILSEAL_OPTIONS: Final[tuple[str, ...]] = tuple(name for name, _ in _MAILSEAL)


def find_option(name: str) -> Option | None:
    """The option a name means (names are case-insensitive, as in OpenDKIM)."""
    return OPTIONS.get(name.lower())


def closest_option(name: str) -> str | None:
    """The known name closest to a misspelt one, for "did you mean" hints."""
    lowered = [key for key in OPTIONS]
    match = difflib.get_close_matches(name.lower(), lowered, n=1, cutoff=0.6)
    return OPTIONS[match[0]].name if match else None


__all__ = ["MAILSEAL_OPTIONS", "OPTIONS", "Kind", "Option", "closest_option", "find_option"]
