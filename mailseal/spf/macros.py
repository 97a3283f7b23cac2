"""The SPF macro language (RFC 7208 §7): parse macro strings, expand them.

A macro string is literal text with ``%{...}`` expansions and the escapes
``%%``, ``%_`` and ``%-``. It is parsed once, with the record, so a syntax
error anywhere in a record is a permerror before any mechanism runs
(RFC 7208 §4.6). Expansion is pure: the caller passes every value in a
:class:`MacroContext`, including the validated name for ``%{p}`` (see
:func:`mailseal.spf.lookup.validated_name`) and the time for ``%{t}``.

Grammar (RFC 7208 §7.1)::

    domain-spec      = macro-string domain-end
    domain-end       = ( "." toplabel [ "." ] ) / macro-expand
    toplabel         = ( *alphanum ALPHA *alphanum ) /
                       ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
    explain-string   = *( macro-string / SP )
    macro-string     = *( macro-expand / macro-literal )
    macro-expand     = ( "%{" macro-letter transformers *delimiter "}" )
                       / "%%" / "%_" / "%-"
    macro-literal    = %x21-24 / %x26-7E
    macro-letter     = "s" / "l" / "o" / "d" / "i" / "p" / "h" / "c" / "r" / "t" / "v"
    transformers     = *DIGIT [ "r" ]
    delimiter        = "." / "-" / "+" / "," / "/" / "_" / "="
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass
from typing import Final

from mailseal.errors import MailsealError
from mailseal.spf.lookup import MAX_NAME, IPAddress

#: Letters allowed in domain-specs and modifiers (RFC 7208 §7.2).
LETTERS: Final = frozenset("slodiphv")
#: "The following macro letters are allowed only in "exp" text: c, r, t."
EXP_ONLY_LETTERS: Final = frozenset("crt")
DELIMITERS: Final = ".-+,/_="
_EXPAND: Final = re.compile(r"%\{([A-Za-z])([0-9]*)([rR]?)([.\-+,/_=]*)\}")
_ESCAPES: Final = {"%": "%", "_": " ", "-": "%20"}
_TOPLABEL: Final = re.compile(
    r"[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*|[A-Za-z0-9]+-[A-Za-z0-9-]*[A-Za-z0-9]"
)


class MacroSyntaxError(MailsealError):
    """A macro string or domain-spec that RFC 7208 §7.1 does not allow."""


@dataclass(frozen=True, slots=True)
class Macro:
    """One ``%{...}`` expansion (RFC 7208 §7.1)."""

    letter: str  # lower-case macro letter
    digits: int | None = None  # keep this many right-hand parts
    reverse: bool = False  # "r": reverse the parts first
    delimiters: str = ""  # split on these; "" means "."
    escape: bool = False  # written upper-case: URL-escape the value (§7.3)


Piece = str | Macro


@dataclass(frozen=True, slots=True)
class MacroString:
    """A parsed macro string: literal pieces and :class:`Macro` pieces, in order."""

    text: str  # as written
    pieces: tuple[Piece, ...]

    def uses(self, letter: str) -> bool:
        """True when the string expands the macro ``letter`` (``p`` needs DNS first)."""
        return any(isinstance(p, Macro) and p.letter == letter for p in self.pieces)

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class MacroContext:
    """What each macro letter expands to (RFC 7208 §7.2)."""

    sender: str  # s: <sender>, "postmaster@domain" when it had no local-part (§4.3)
    domain: str  # d: <domain>, the domain whose record is being evaluated
    ip: IPAddress  # i, c, v
    helo: str  # h: the HELO/EHLO name as given
    validated: str = "unknown"  # p: the validated domain name of <ip>
    receiver: str = "unknown"  # r: the checking host's domain (exp only)
    now: int = 0  # t: seconds since the epoch (exp only)

    def value(self, letter: str) -> str:
        """The raw value of one macro letter, before transformers."""
        local, _, sender_domain = self.sender.rpartition("@")
        if letter == "s":
            return self.sender
        if letter == "l":
            return local
        if letter == "o":
            return sender_domain
        if letter == "d":
            return self.domain
        if letter == "i":
            return dotted(self.ip)
        if letter == "p":
            return self.validated
        if letter == "v":
            return "in-addr" if self.ip.version == 4 else "ip6"
        if letter == "h":
            return self.helo
        if letter == "c":
            return str(self.ip)  # RFC 4291 §2.2 text for IPv6, for people to read
        if letter == "r":
            return self.receiver
        if letter == "t":
            return str(self.now)
        raise ValueError(f"not a macro letter: {letter!r}")


def dotted(ip: IPAddress) -> str:
    """The ``%{i}`` form of an address: dotted quad, or dotted nibbles for IPv6 (§7.3).

    "For IPv6 addresses, the "i" macro expands to a dot-format address; it is
    intended for use in %{ir}." Nibbles are lower-case, as in the §7.4 example.
    """
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip)
    return ".".join(ip.exploded.replace(":", ""))


def parse_macro_string(text: str, *, explanation: bool = False) -> MacroString:
    """Parse a macro-string (RFC 7208 §7.1); raise :class:`MacroSyntaxError` if it is not one.

    ``explanation=True`` parses an explain-string: spaces allowed and the
    exp-only letters ``c``, ``r``, ``t`` too.
    """
    return _parse(text, explanation)[0]


def _parse(text: str, explanation: bool) -> tuple[MacroString, bool]:
    """The parsed string, and whether its last token is a macro-expand (escapes count)."""
    pieces: list[Piece] = []
    literal: list[str] = []
    letters = LETTERS | EXP_ONLY_LETTERS if explanation else LETTERS
    ends_in_macro = False
    i = 0
    while i < len(text):
        char = text[i]
        ends_in_macro = char == "%"
        if char != "%":
            if not ("!" <= char <= "~" or (explanation and char == " ")):
                raise MacroSyntaxError(f"character {char!r} is not allowed in {text!r}")
            literal.append(char)
            i += 1
            continue
        following = text[i + 1 : i + 2]
        if following in _ESCAPES:
            literal.append(_ESCAPES[following])
            i += 2
            continue
        found = _EXPAND.match(text, i) if following == "{" else None
        if found is None:
            # "A '%' character not followed by a '{', '%', '-', or '_' character
            # is a syntax error." (§7.1)
            shown = text[i : i + 2] if following else "%"
            raise MacroSyntaxError(
                f"{shown!r} in {text!r} is not a macro (write %% for a percent sign)"
            )
        pieces.extend(_flush(literal))
        pieces.append(_macro(found, letters, text))
        i = found.end()
    pieces.extend(_flush(literal))
    return MacroString(text, tuple(pieces)), ends_in_macro


def _flush(literal: list[str]) -> list[Piece]:
    if not literal:
        return []
    joined = "".join(literal)
    literal.clear()
    return [joined]


def _macro(found: re.Match[str], letters: frozenset[str], text: str) -> Macro:
    letter, digits, reverse, delimiters = found.groups()
    lower = letter.lower()
    if lower not in letters:
        if lower in EXP_ONLY_LETTERS:
            raise MacroSyntaxError(
                f"%{{{letter}}} in {text!r} is allowed only in explanation text (RFC 7208 §7.2)"
            )
        raise MacroSyntaxError(f"%{{{letter}}} in {text!r}: {letter!r} is not a macro letter")
    count = int(digits) if digits else None
    if count == 0:
        # "If a DIGIT is specified, the value MUST be nonzero." (§7.3)
        raise MacroSyntaxError(f"{found.group(0)!r} in {text!r}: the part count must not be 0")
    return Macro(lower, count, bool(reverse), delimiters, escape=letter.isupper())


def parse_domain_spec(text: str) -> MacroString:
    """Parse a domain-spec (RFC 7208 §7.1), checking its domain-end.

    The text must end in a macro, or in a dot and a top-level label (with an
    optional final dot): ``example.com``, ``%{d}``, ``_spf.%{d2}``; not
    ``museum``, ``foo-bar``, ``example.-com`` or ``123.45``.
    """
    if not text:
        raise MacroSyntaxError("empty domain-spec")
    spec, ends_in_macro = _parse(text, explanation=False)
    if ends_in_macro:
        return spec
    tail = spec.pieces[-1]
    assert isinstance(tail, str)  # the text ends in a literal
    body = tail[:-1] if tail.endswith(".") else tail
    _, dot, toplabel = body.rpartition(".")
    if not dot or not _TOPLABEL.fullmatch(toplabel):
        raise MacroSyntaxError(
            f"{text!r} is not a valid domain-spec (it must end in a macro, or in a dot "
            f"and a top-level label that is not all digits and does not start or end "
            f"with '-')"
        )
    return spec


def expand(spec: MacroString, ctx: MacroContext) -> str:
    """Expand every macro in ``spec`` (RFC 7208 §7.3)."""
    out: list[str] = []
    for piece in spec.pieces:
        out.append(piece if isinstance(piece, str) else _expand_one(piece, ctx))
    return "".join(out)


def _expand_one(macro: Macro, ctx: MacroContext) -> str:
    value = ctx.value(macro.letter)
    if macro.delimiters or macro.reverse or macro.digits is not None:
        # Split on the delimiters, reverse, keep the right-hand parts, join
        # with dots (§7.3); with none of these the value is left alone.
        pattern = "[" + re.escape(macro.delimiters or ".") + "]"
        parts = re.split(pattern, value)
        if macro.reverse:
            parts.reverse()
        if macro.digits is not None:
            parts = parts[-macro.digits :]
        value = ".".join(parts)
    if macro.escape:
        # "Uppercase macros expand exactly as their lowercase equivalents, and
        # are then URL escaped": everything outside RFC 3986 unreserved.
        value = urllib.parse.quote(value, safe="")
    return value


def expand_name(spec: MacroString, ctx: MacroContext) -> str:
    """Expand a domain-spec into the name to look up (RFC 7208 §7.3).

    A final dot is dropped. "If the expanded domain name exceeds 253
    characters ..., the left side is truncated to fit, by removing successive
    domain labels (and their following dots) until the total length does not
    exceed 253 characters."
    """
    name = expand(spec, ctx)
    if name.endswith("."):
        name = name[:-1]
    while len(name) > MAX_NAME and "." in name:
        name = name.split(".", 1)[1]
    return name
