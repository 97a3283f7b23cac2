"""Read what receivers wrote into a message: Authentication-Results, Received-SPF, Received.

Lenient readers for the fields an online tester looks at, pure functions over
text (unfolded field values):

- :func:`parse_authres`: RFC 8601 ``authserv-id; method=result ptype.prop=value...``,
  comments removed, quoted values kept whole;
- :func:`parse_received_spf`: RFC 7208 §9.1 ``result (comment) key=value; ...``;
- :func:`received_client`: the HELO name and address in a Received field's
  ``from`` clause (``from HELO (rdns [IP])``, Postfix, Gmail, Exim's ``helo=``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from mailseal.message.headers import HeaderField

_IP_LITERAL: Final = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]")
_FROM_CLAUSE: Final = re.compile(r"^\s*from\s+(\S+)", re.IGNORECASE)
_EXIM_HELO: Final = re.compile(r"\bhelo=([^\s)]+)", re.IGNORECASE)


def field_text(field: HeaderField) -> str:
    """A field's value unfolded (RFC 5322 §2.2.3) and trimmed, as text."""
    raw = field.value.decode("utf-8", "replace")
    return re.sub(r"\r?\n(?=[ \t])", "", raw).strip()


def strip_comments(text: str) -> str:
    """``text`` without RFC 5322 comments (nested parentheses); quoted strings untouched."""
    out: list[str] = []
    depth = 0
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(char)
            continue
        if char == "\\":
            escaped = True
            if depth == 0:
                out.append(char)
            continue
        if quoted:
            quoted = char != '"'
            out.append(char)
            continue
        if char == '"' and depth == 0:
            quoted = True
            out.append(char)
        elif char == "(":
            depth += 1
            if depth == 1:
                out.append(" ")
        elif char == ")" and depth:
            depth -= 1
        elif depth == 0:
            out.append(char)
    return "".join(out)


def _split(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _pairs(text: str) -> list[tuple[str, str]]:
    """``a=b c = "d e"`` as [(a, b), (c, d e)]; keys lower-case."""
    text = re.sub(r"\s*=\s*", "=", text)
    pairs: list[tuple[str, str]] = []
    for token in _split(text.strip(), " "):
        key, eq, value = token.partition("=")
        if eq and key:
            pairs.append((key.lower(), value.strip('"')))
    return pairs


@dataclass(frozen=True, slots=True)
class MethodResult:
    """One ``method=result`` of an Authentication-Results field, with its properties."""

    method: str  # dkim, spf, dmarc, arc, iprev...
    result: str  # pass, fail, none...
    props: tuple[tuple[str, str], ...] = ()  # ("header.d", "example.com"), ("reason", "...")

    def prop(self, name: str) -> str | None:
        return next((v for k, v in self.props if k == name), None)


@dataclass(frozen=True, slots=True)
class AuthResults:
    """An Authentication-Results field (RFC 8601 §2.2)."""

    authserv_id: str
    results: tuple[MethodResult, ...]

    def of(self, method: str) -> tuple[MethodResult, ...]:
        return tuple(r for r in self.results if r.method == method)


def parse_authres(text: str) -> AuthResults | None:
    """Read an Authentication-Results value; None if it has no authserv-id."""
    segments = _split(strip_comments(text), ";")
    head = segments[0].split()
    if not head:
        return None
    results: list[MethodResult] = []
    for segment in segments[1:]:
        pairs = _pairs(segment)
        if not pairs:
            continue  # "none", or nothing
        (method, result), props = pairs[0], tuple(pairs[1:])
        results.append(MethodResult(method.partition("/")[0], result.lower(), props))
    return AuthResults(head[0].strip('"').lower(), tuple(results))


@dataclass(frozen=True, slots=True)
class ReceivedSpf:
    """A Received-SPF field (RFC 7208 §9.1)."""

    result: str
    client_ip: str | None = None
    envelope_from: str | None = None
    helo: str | None = None
    identity: str | None = None


def parse_received_spf(text: str) -> ReceivedSpf | None:
    """Read a Received-SPF value; None if it does not start with a result word."""
    plain = strip_comments(text).strip()
    result, _, rest = plain.partition(" ")
    if not result.isalpha():
        return None
    pairs = dict(p for part in _split(rest, ";") for p in _pairs(part))
    return ReceivedSpf(
        result.lower(),
        pairs.get("client-ip"),
        pairs.get("envelope-from"),
        pairs.get("helo"),
        pairs.get("identity"),
    )


def received_client(text: str) -> tuple[str | None, str | None]:
    """(HELO name, client address) from a Received field's ``from`` clause, as far as given.

    The first word after ``from`` is the HELO name (Postfix, Gmail, sendmail);
    Exim writes it as ``helo=`` inside the parentheses. An address literal
    given as HELO is no name: None.
    """
    found = _FROM_CLAUSE.match(text)
    if found is None:
        return None, None
    clause = re.split(r"\s+by\s+", text, maxsplit=1, flags=re.IGNORECASE)[0]
    exim = _EXIM_HELO.search(clause)
    helo = (exim.group(1) if exim else found.group(1)).rstrip(".")
    if helo.startswith("[") or _looks_like_ip(helo):
        helo = ""
    literal = _IP_LITERAL.search(clause)
    return helo or None, literal.group(1) if literal else None


def _looks_like_ip(text: str) -> bool:
    return bool(re.fullmatch(r"[0-9.]+|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*", text))


__all__ = [
    "AuthResults",
    "MethodResult",
    "ReceivedSpf",
    "field_text",
    "parse_authres",
    "parse_received_spf",
    "received_client",
    "strip_comments",
]
