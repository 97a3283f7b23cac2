"""DNS names and the questions SPF asks: name checks, reverse names, PTR validation.

Shared by the evaluator (``ptr`` mechanism, address matching) and the macro
expander (``%{p}``). Everything here is sans-IO: functions that need DNS are
generators yielding :class:`~mailseal.dns.types.Question` values.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Generator, Sequence
from typing import Final

from mailseal.dns.types import Answer, Question, RdType, Status

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: RFC 1035 §2.3.4: 63 octets a label; 255 octets on the wire is 253 in text.
MAX_LABEL: Final = 63
MAX_NAME: Final = 253
# Characters that cannot appear in a host or mail domain name at all: an
# address literal ("[192.0.2.1]"), a second "@", white space.
_NOT_IN_DOMAIN: Final = frozenset("[]@ \t\r\n")


def client_address(ip: str | IPAddress) -> IPAddress:
    """Parse the client IP; an IPv4-mapped IPv6 address becomes IPv4 (RFC 7208 §5).

    "IPv4-mapped IPv6 ... MUST still be considered an IPv4 address" (§5,
    point 9 of the suite's numbering). Raises ValueError for text that is not an
    address, or one with an IPv6 zone index.
    """
    address = ipaddress.ip_address(ip.strip() if isinstance(ip, str) else ip)
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            raise ValueError(f"{ip!r}: an address with a zone index is not a client address")
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
    return address


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be asked about in DNS (RFC 1035 §2.3.4), or None.

    A trailing dot is allowed; empty labels elsewhere, labels over 63
    characters and names over 253 are not (RFC 7208 §4.3, §4.8).
    """
    text = name[:-1] if name.endswith(".") else name
    if not text:
        return "empty name"
    if len(text) > MAX_NAME:
        return f"name longer than {MAX_NAME} characters"
    for label in text.split("."):
        if not label:
            return "empty label"
        if len(label) > MAX_LABEL:
            return f"label longer than {MAX_LABEL} characters ({label[:20]}...)"
    return None


def domain_problem(domain: str) -> str | None:
    """Why ``domain`` cannot have an SPF policy (RFC 7208 §4.3), or None.

    "If the <domain> is malformed (e.g., label longer than 63 characters,
    zero-length label not at the end, etc.) or is not a multi-label domain
    name ... check_host() immediately returns the result "none"." Address
    literals such as ``[192.0.2.1]`` are not domain names either.
    """
    if any(c in _NOT_IN_DOMAIN or not c.isprintable() for c in domain):
        return "not a domain name"
    problem = name_problem(domain)
    if problem is not None:
        return problem
    if "." not in domain.rstrip("."):
        return "not a multi-label domain name"
    return None


def to_ascii(domain: str) -> str:
    """Lower-case A-label form of ``domain`` (IDNA for U-labels); ValueError if impossible."""
    domain = domain.rstrip(".") if domain != "." else domain
    if domain.isascii():
        return domain.lower()
    try:
        return domain.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise ValueError(f"{domain!r} cannot be written as an A-label ({exc})") from None


def question(name: str, rdtype: RdType) -> Question:
    """A question for ``name`` taken literally: a backslash is a character, not an escape.

    Question names are presentation text, where ``\\`` starts an escape; macro
    expansion can put any visible character in a name (RFC 7208 §7.1).
    """
    text = name.rstrip(".").replace("\\", "\\\\")
    # "@" alone means the origin in presentation text; here it is a label.
    return Question("\\@" if text == "@" else text, rdtype)


def address_type(ip: IPAddress) -> RdType:
    """A for an IPv4 client, AAAA for IPv6 (RFC 7208 §5)."""
    return RdType.A if ip.version == 4 else RdType.AAAA


def addresses(answer: Answer) -> list[IPAddress]:
    """The addresses an A or AAAA answer holds (records that do not parse are skipped)."""
    found: list[IPAddress] = []
    for text in answer.records if answer.status is Status.OK else ():
        try:
            found.append(ipaddress.ip_address(text))
        except ValueError:
            continue
    return found


def reverse_name(ip: IPAddress) -> str:
    """The PTR name for ``ip``: ``d.c.b.a.in-addr.arpa`` or the ip6.arpa nibbles (RFC 3596)."""
    return ip.reverse_pointer


def is_subdomain(name: str, parent: str) -> bool:
    """True when ``name`` is ``parent`` or below it, ignoring case and trailing dots."""
    name, parent = name.rstrip(".").lower(), parent.rstrip(".").lower()
    return name == parent or name.endswith("." + parent)


def ptr_names(ip: IPAddress, limit: int) -> Generator[Question, Answer, tuple[Answer, list[str]]]:
    """Ask for the PTR names of ``ip``; return the answer and its first ``limit`` names.

    RFC 7208 §4.6.4: "the evaluation of each "PTR" record MUST NOT result in
    querying more than 10 address records ... all records other than the
    first 10 MUST be ignored."
    """
    answer = yield question(reverse_name(ip), RdType.PTR)
    names = list(answer.records[:limit]) if answer.status is Status.OK else []
    return answer, names


def validates(name: str, ip: IPAddress) -> Generator[Question, Answer, bool]:
    """Whether a forward lookup of ``name`` gives ``ip`` back (RFC 7208 §5.5).

    "If a DNS error occurs while doing an A RR lookup, then that domain name
    is skipped": any failure is just "does not validate".
    """
    answer = yield question(name, address_type(ip))
    return ip in addresses(answer)


def validated_name(ip: IPAddress, domain: str, limit: int) -> Generator[Question, Answer, str]:
    """The validated domain name of ``ip`` for the ``%{p}`` macro (RFC 7208 §7.3).

    "If the <domain> is present in the list of validated domains, it SHOULD
    be used. Otherwise, if a subdomain of the <domain> is present, it SHOULD
    be used. Otherwise, any name from the list can be used. If there are no
    validated domain names or if a DNS error occurs, the string "unknown" is
    used." Names are tried in that order of preference, so the first one
    that validates is the answer and later ones cost no query.
    """
    _, names = yield from ptr_names(ip, limit)
    for name in _by_preference(names, domain):
        if (yield from validates(name, ip)):
            return name
    return "unknown"


def _by_preference(names: Sequence[str], domain: str) -> list[str]:
    domain = domain.rstrip(".").lower()
    exact = [n for n in names if n.rstrip(".").lower() == domain]
    below = [n for n in names if n not in exact and is_subdomain(n, domain)]
    rest = [n for n in names if n not in exact and n not in below]
    return exact + below + rest
