"""Parse SPF records into terms (RFC 7208 §4.5, §4.6.1, §5, §6, §12 ABNF).

:func:`parse_record` reads the whole record before anything is evaluated, so
"syntax errors anywhere in the record" give permerror even after a mechanism
that would have matched (§4.6). Every problem raises :class:`SpfSyntaxError`
naming the term and what is wrong with it.

Grammar (RFC 7208 §4.5, §4.6.1, §5, §6)::

    record           = version terms *SP
    version          = "v=spf1"
    terms            = *( 1*SP ( directive / modifier ) )
    directive        = [ qualifier ] mechanism
    qualifier        = "+" / "-" / "?" / "~"
    mechanism        = ( all / include / a / mx / ptr / ip4 / ip6 / exists )
    modifier         = redirect / explanation / unknown-modifier
    unknown-modifier = name "=" macro-string
    name             = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )
    a                = "a"   [ ":" domain-spec ] [ dual-cidr-length ]
    ip4              = "ip4" ":" ip4-network [ ip4-cidr-length ]
    dual-cidr-length = [ ip4-cidr-length ] [ "/" ip6-cidr-length ]
    ip4-cidr-length  = "/" ("0" / %x31-39 0*1DIGIT)   ; 0-32
    ip6-cidr-length  = "/" ("0" / %x31-39 0*2DIGIT)   ; 0-128
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from mailseal.errors import MailsealError
from mailseal.spf.macros import MacroString, MacroSyntaxError, parse_domain_spec, parse_macro_string
from mailseal.spf.results import SpfResult

VERSION: Final = "v=spf1"
_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9._-]*")
_MODIFIER: Final = re.compile(r"([A-Za-z][A-Za-z0-9._-]*)=(.*)", re.DOTALL)
# A trailing dual-cidr-length; searched leftmost so "foo.example.com/24//64" splits right.
_DUAL_CIDR: Final = re.compile(r"(?:/([0-9]+))?(?://([0-9]+))?\Z")
_IP4: Final = re.compile(r":([0-9.]*)(?:/([0-9]*))?", re.DOTALL)
_IP6: Final = re.compile(r":([0-9A-Fa-f:.]*)(?:/([0-9]*))?", re.DOTALL)
_QNUM: Final = re.compile(r"0|[1-9][0-9]{0,2}")


class SpfSyntaxError(MailsealError):
    """An SPF record that RFC 7208 does not allow: evaluation ends in permerror."""

    def __init__(self, problem: str, term: str | None = None) -> None:
        self.problem, self.term = problem, term
        super().__init__(f"{printable(term)}: {problem}" if term is not None else problem)


def printable(text: str) -> str:
    """``text`` with control and non-ASCII characters written as ``\\xNN`` (for messages)."""
    return "".join(c if " " <= c <= "~" else f"\\x{ord(c):02x}" for c in text)


class Qualifier(enum.Enum):
    """The result a mechanism gives when it matches (RFC 7208 §4.6.2)."""

    PASS = "+"
    FAIL = "-"
    SOFTFAIL = "~"
    NEUTRAL = "?"

    @property
    def result(self) -> SpfResult:
        return _QUALIFIER_RESULTS[self]


_QUALIFIER_RESULTS: Final = {
    Qualifier.PASS: SpfResult.PASS,
    Qualifier.FAIL: SpfResult.FAIL,
    Qualifier.SOFTFAIL: SpfResult.SOFTFAIL,
    Qualifier.NEUTRAL: SpfResult.NEUTRAL,
}


class Kind(enum.Enum):
    """The eight mechanisms (RFC 7208 §5)."""

    ALL = "all"
    INCLUDE = "include"
    A = "a"
    MX = "mx"
    PTR = "ptr"
    IP4 = "ip4"
    IP6 = "ip6"
    EXISTS = "exists"

    @property
    def queries_dns(self) -> bool:
        """True for the mechanisms counted against the 10-lookup limit (RFC 7208 §4.6.4)."""
        return self in _DNS_KINDS


_DNS_KINDS: Final = frozenset({Kind.INCLUDE, Kind.A, Kind.MX, Kind.PTR, Kind.EXISTS})
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Mechanism:
    """One directive: a qualifier and a mechanism with its arguments."""

    text: str  # as written in the record, qualifier included if it was written
    qualifier: Qualifier
    kind: Kind
    target: MacroString | None = None  # domain-spec; None: the current domain
    network: IPNetwork | None = None  # ip4 / ip6
    cidr4: int = 32  # a / mx: prefix length for IPv4 clients
    cidr6: int = 128  # a / mx: prefix length for IPv6 clients


@dataclass(frozen=True, slots=True)
class Modifier:
    """One name=value modifier (RFC 7208 §6); the value is a macro string."""

    text: str
    name: str  # lower-case
    value: MacroString


@dataclass(frozen=True, slots=True)
class SpfRecord:
    """A parsed SPF record: the mechanisms in order and the modifiers."""

    text: str
    mechanisms: tuple[Mechanism, ...]
    redirect: Modifier | None = None
    explanation: Modifier | None = None
    unknown: tuple[Modifier, ...] = ()  # modifiers SPF ignores (§6), kept for linting

    @property
    def has_all(self) -> bool:
        """True when an ``all`` mechanism is present: then redirect= is ignored (§6.1)."""
        return any(m.kind is Kind.ALL for m in self.mechanisms)

    @property
    def effective_redirect(self) -> Modifier | None:
        """The redirect= that applies: "MUST be ignored if there is an "all" mechanism"."""
        return None if self.has_all else self.redirect

    @property
    def dns_terms(self) -> int:
        """Terms of this record alone that count against the lookup limit (§4.6.4)."""
        count = sum(1 for m in self.mechanisms if m.kind.queries_dns)
        return count + (1 if self.effective_redirect is not None else 0)


def is_spf_record(text: str) -> bool:
    """True when a TXT record is an SPF record (RFC 7208 §4.5).

    "discard records that do not begin with a version section of exactly
    "v=spf1". Note that the version section is terminated by either an SP
    character or the end of the record." The version is case-insensitive
    (ABNF strings are).
    """
    return text[: len(VERSION)].lower() == VERSION and text[len(VERSION) : len(VERSION) + 1] in (
        "",
        " ",
    )


def spf_records(texts: Iterable[str]) -> list[str]:
    """The SPF records among a name's TXT records, in order (RFC 7208 §4.5)."""
    return [text for text in texts if is_spf_record(text)]


def parse_record(text: str) -> SpfRecord:
    """Parse an SPF record (RFC 7208 §4.6); raise :class:`SpfSyntaxError` for any fault."""
    if not is_spf_record(text):
        raise SpfSyntaxError(f"not an SPF record (it must start with {VERSION!r})")
    for index, char in enumerate(text):
        if not " " <= char <= "~":
            # The ABNF allows only SP between terms and visible ASCII within
            # them (§12): no tabs, line breaks, control or 8-bit characters.
            term = _term_at(text, index)
            what = "control character" if ord(char) < 0x20 or char == "\x7f" else "non-ASCII byte"
            problem = f"{what} 0x{ord(char):02x} (an SPF record is printable ASCII, RFC 7208 §3.1)"
            raise SpfSyntaxError(problem, term)
    mechanisms: list[Mechanism] = []
    modifiers: dict[str, Modifier] = {}
    unknown: list[Modifier] = []
    for term in text[len(VERSION) :].split(" "):
        if not term:
            continue  # 1*SP between terms, *SP at the end
        if (found := _MODIFIER.fullmatch(term)) is not None:
            modifier = _modifier(term, found.group(1).lower(), found.group(2))
            if modifier.name in ("redirect", "exp"):
                if modifier.name in modifiers:
                    # "These two modifiers MUST NOT appear in a record more
                    # than once each. If they do, then check_host() exits with
                    # a result of "permerror"." (§6)
                    raise SpfSyntaxError(f"{modifier.name}= appears more than once", term)
                modifiers[modifier.name] = modifier
            else:
                unknown.append(modifier)
            continue
        mechanisms.append(parse_mechanism(term))
    return SpfRecord(
        text,
        tuple(mechanisms),
        redirect=modifiers.get("redirect"),
        explanation=modifiers.get("exp"),
        unknown=tuple(unknown),
    )


def _term_at(text: str, index: int) -> str:
    start = text.rfind(" ", 0, index) + 1
    end = text.find(" ", index)
    return text[start : end if end >= 0 else len(text)]


def _modifier(term: str, name: str, value: str) -> Modifier:
    try:
        if name in ("redirect", "exp"):
            # Known modifiers take a domain-spec; a bad one is an error, not an
            # unknown modifier in disguise (suite: redirect-syntax-error).
            spec = parse_domain_spec(value)
        else:
            # Ignored whole (§6), so only the macro syntax is checked; every
            # letter is allowed (a term holds no space, so that is all the
            # explanation grammar adds).
            spec = parse_macro_string(value, explanation=True)
    except MacroSyntaxError as exc:
        raise SpfSyntaxError(str(exc), term) from None
    return Modifier(term, name, spec)


def parse_mechanism(term: str) -> Mechanism:
    """Parse one directive such as ``-ip4:192.0.2.0/24`` or ``include:_spf.example.net``."""
    qualifier = Qualifier.PASS
    rest = term
    if term[0] in "+-~?":
        qualifier, rest = Qualifier(term[0]), term[1:]
    found = _NAME.match(rest)
    name = found.group(0).lower() if found else ""
    try:
        kind = Kind(name)
    except ValueError:
        if rest is not term and _MODIFIER.fullmatch(rest):
            raise SpfSyntaxError("a modifier takes no qualifier", term) from None
        raise SpfSyntaxError(_unknown(name or rest or term), term) from None
    args = rest[len(name) :]
    try:
        return _PARSERS[kind](term, qualifier, kind, args)
    except MacroSyntaxError as exc:
        raise SpfSyntaxError(str(exc), term) from None


def _unknown(name: str) -> str:
    if name.lower() in ("redirect", "exp"):
        return f"unknown mechanism {name!r} ({name.lower()} is a modifier: write {name}=domain)"
    if "=" in name:
        return (
            f"{name!r} is neither a mechanism nor a modifier (modifier names start with a letter)"
        )
    return f"unknown mechanism {name!r}"


def _all(term: str, qualifier: Qualifier, kind: Kind, args: str) -> Mechanism:
    if args:
        raise SpfSyntaxError("'all' takes no argument", term)
    return Mechanism(term, qualifier, kind)


def _domain_only(term: str, qualifier: Qualifier, kind: Kind, args: str) -> Mechanism:
    """include and exists: a required ':' domain-spec, nothing else (§5.2, §5.7)."""
    if not args.startswith(":"):
        raise SpfSyntaxError(f"'{kind.value}' needs ':' and a domain", term)
    return Mechanism(term, qualifier, kind, target=parse_domain_spec(args[1:]))


def _ptr(term: str, qualifier: Qualifier, kind: Kind, args: str) -> Mechanism:
    """ptr: an optional ':' domain-spec, no CIDR (§5.5)."""
    if not args:
        return Mechanism(term, qualifier, kind)
    if not args.startswith(":"):
        raise SpfSyntaxError("'ptr' takes only ':' and a domain (no prefix length)", term)
    return Mechanism(term, qualifier, kind, target=parse_domain_spec(args[1:]))


def _a_or_mx(term: str, qualifier: Qualifier, kind: Kind, args: str) -> Mechanism:
    """a and mx: optional ':' domain-spec, optional dual-cidr-length (§5.3, §5.4)."""
    target: MacroString | None = None
    cidr_text = args
    if args.startswith(":"):
        # The domain-spec may itself hold "/" (any visible character), so the
        # CIDR is only a trailing "/N", "//N" or "/N//M" (leftmost such tail).
        found = _DUAL_CIDR.search(args, 1)
        assert found is not None  # the pattern matches the empty tail at least
        target = parse_domain_spec(args[1 : found.start()])
        cidr_text = args[found.start() :]
    found = _DUAL_CIDR.fullmatch(cidr_text)
    if found is None:
        raise SpfSyntaxError(
            f"bad prefix length {cidr_text!r} (write /N for IPv4, //N for IPv6, or /N//M)",
            term,
        )
    cidr4 = _prefix(found.group(1), 32, term)
    cidr6 = _prefix(found.group(2), 128, term)
    return Mechanism(term, qualifier, kind, target=target, cidr4=cidr4, cidr6=cidr6)


def _ip4(term: str, qualifier: Qualifier, kind: Kind, args: str) -> Mechanism:
    """ip4: a full dotted quad and an optional /0-32 (§5.6)."""
    found = _IP4.fullmatch(args)
    if found is None:
        raise SpfSyntaxError("'ip4' needs ':' and an IPv4 address, e.g. ip4:192.0.2.0/24", term)
    address, length = found.groups()
    quads = address.split(".")
    # "It is not permitted to omit parts of the IP address instead of using
    # CIDR notations." qnum allows no leading zeros and nothing over 255.
    if len(quads) != 4 or not all(_QNUM.fullmatch(q) and int(q) <= 255 for q in quads):
        raise SpfSyntaxError(f"{address!r} is not a full IPv4 address (a.b.c.d)", term)
    prefix = _prefix(length, 32, term)
    network = ipaddress.IPv4Network(f"{address}/{prefix}", strict=False)
    return Mechanism(term, qualifier, kind, network=network)


def _ip6(term: str, qualifier: Qualifier, kind: Kind, args: str) -> Mechanism:
    """ip6: an RFC 4291 address and an optional /0-128 (§5.6)."""
    found = _IP6.fullmatch(args)
    if found is None:
        raise SpfSyntaxError("'ip6' needs ':' and an IPv6 address, e.g. ip6:2001:db8::/32", term)
    address, length = found.groups()
    try:
        parsed = ipaddress.IPv6Address(address)
    except ValueError:
        raise SpfSyntaxError(f"{address!r} is not an IPv6 address", term) from None
    prefix = _prefix(length, 128, term)
    network = ipaddress.IPv6Network(f"{parsed}/{prefix}", strict=False)
    return Mechanism(term, qualifier, kind, network=network)


def _prefix(text: str | None, maximum: int, term: str) -> int:
    """A CIDR prefix length: no leading zeros, 0..maximum (§5.6 "MUST be enforced")."""
    if text is None:
        return maximum
    if not text or (len(text) > 1 and text[0] == "0") or int(text) > maximum:
        raise SpfSyntaxError(f"prefix length /{text} is not 0 to {maximum}", term)
    return int(text)


_PARSERS: Final = {
    Kind.ALL: _all,
    Kind.INCLUDE: _domain_only,
    Kind.EXISTS: _domain_only,
    Kind.A: _a_or_mx,
    Kind.MX: _a_or_mx,
    Kind.PTR: _ptr,
    Kind.IP4: _ip4,
    Kind.IP6: _ip6,
}
