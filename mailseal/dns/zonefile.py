"""Read RFC 1035 master files with dnspython, with errors that name ``file:line``.

dnspython's reader holds one zone per file, silently drops names outside it,
and often reports an error one line late. This module keeps its parser but
adds what a person editing a zone file needs: the origin taken from the first
SOA when the file has no ``$ORIGIN``, absolute names accepted in a file with
neither, a default TTL for a file that states none, out-of-zone records and
unanchored relative names rejected with their line, and messages such as
``zones/example.zone:7: bad TXT record (newline in quoted string)``.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import dns.exception
import dns.name
import dns.node
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.tokenizer
import dns.transaction
import dns.zone

from mailseal.dns.records import name_text
from mailseal.errors import DnsError

# Relative names in a file that gives no origin end up under this name, so the
# parse can reject them with a line number instead of silently rooting them.
_NO_ORIGIN: Final = dns.name.from_text("no-origin.mailseal.invalid.")
# Rdata fields that hold domain names, checked for unanchored relative names.
_NAME_FIELDS: Final = ("target", "exchange", "mname", "rname")
#: TTL for records when the file states none at all (no TTLs, no $TTL, no SOA).
DEFAULT_TTL: Final = 3600
_NO_TTL: Final = ": Missing default TTL value"
# OpenDKIM compat: opendkim-genkey's .txt has a relative owner and no origin,
# but its trailing comment names the domain ("; ----- DKIM key mail for example.com").
_GENKEY_COMMENT: Final = re.compile(r"; -{5} DKIM key \S+ for (\S+)")
# Parse errors that already say what is wrong, in full.
_OWN_WORDS: Final = ("relative name", "CNAME and other", "unknown rdatatype")

_Check = Callable[[dns.transaction.Transaction, dns.name.Name, dns.rdataset.Rdataset], None]
# dnspython's exception constructors are unannotated; this gives mypy a signature.
_SyntaxError: Callable[[str], dns.exception.SyntaxError] = dns.exception.SyntaxError


def read_zone_file(path: str | os.PathLike[str], origin: str | None = None) -> dns.zone.Zone:
    """Read one master file (RFC 1035 §5); raise :class:`DnsError` naming ``file:line``.

    ``$INCLUDE`` is allowed; as in dnspython, a relative path in it is
    relative to the working directory.
    """
    source = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DnsError(f"{source}: zone file is not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise DnsError(f"{source}: cannot read zone file ({exc.strerror})") from None
    return read_zone_text(text, origin, source=source, allow_include=True)


def read_zone_text(
    text: str,
    origin: str | None = None,
    *,
    source: str = "<zone text>",
    allow_include: bool = False,
) -> dns.zone.Zone:
    """Read master-file text into a zone with absolute names (``relativize=False``).

    Relative names start from ``origin`` if given, else from the owner of the
    first SOA record, else from the domain an opendkim-genkey comment names;
    ``$ORIGIN`` lines move them on as usual. With neither,
    only absolute names are accepted. The returned zone's origin is the SOA
    owner, or the root for a file without SOA. ``source`` names the text in
    errors.
    """
    explicit: dns.name.Name | None = None
    if origin is not None:
        try:
            explicit = dns.name.from_text(origin, dns.name.root)
        except dns.exception.DNSException as exc:
            raise DnsError(f"{source}: bad origin {origin!r} ({exc})") from None
    records = _scan(text, explicit or _NO_ORIGIN)
    if explicit is None and (guess := _genkey_origin(text, records)) is not None:
        explicit, records = guess, _scan(text, guess)
    apex = _zone_apex(records, source)
    start = explicit or apex or _NO_ORIGIN
    return _parse(_Source(text, source, records, allow_include), start, apex or dns.name.root)


class _CheckedZone(dns.zone.Zone):
    """A Zone whose write transactions run our checks while the file is read.

    Checks that raise ``dns.exception.SyntaxError`` there get dnspython's
    ``file:line`` prefix, which a check after loading could no longer give.
    """

    def __init__(
        self,
        origin: dns.name.Name | str | None,
        rdclass: dns.rdataclass.RdataClass = dns.rdataclass.IN,
        relativize: bool = True,
        *,
        checks: Sequence[_Check] = (),
    ) -> None:
        super().__init__(origin, rdclass, relativize)
        self.checks = tuple(checks)

    def writer(self, replacement: bool = False) -> dns.zone.Transaction:
        txn = super().writer(replacement)
        for check in self.checks:
            txn.check_put_rdataset(check)
        return txn


def _check_relative(
    txn: dns.transaction.Transaction, name: dns.name.Name, rdataset: dns.rdataset.Rdataset
) -> None:
    """Reject a relative name in a file that gave no origin to anchor it."""
    names = [name]
    for rdata in rdataset:
        for field in _NAME_FIELDS:
            value = getattr(rdata, field, None)
            if isinstance(value, dns.name.Name):
                names.append(value)
    for each in names:
        if each.is_subdomain(_NO_ORIGIN):
            relative = each.relativize(_NO_ORIGIN).to_text()
            raise _SyntaxError(
                f"relative name '{relative}' but the file sets no origin (start the file with "
                f"'$ORIGIN example.com.' or end the name with a dot)"
            )


def _check_cname(
    txn: dns.transaction.Transaction, name: dns.name.Name, rdataset: dns.rdataset.Rdataset
) -> None:
    """Reject CNAME plus other data at one name here, where the line is still known."""
    node = txn.get_node(name)
    if node is None:
        return
    kinds = {node.classify(), dns.node.NodeKind.classify_rdataset(rdataset)}
    if kinds == {dns.node.NodeKind.CNAME, dns.node.NodeKind.REGULAR}:
        raise _SyntaxError(
            f"CNAME and other records at {name_text(name)} (RFC 2181 §10.1 allows a CNAME "
            f"only alone)"
        )


@dataclass(frozen=True, slots=True)
class _Record:
    """Where a record starts in a file, as a light scan of the file sees it."""

    line: int
    owner: dns.name.Name
    rdtype: str | None


@dataclass(frozen=True, slots=True)
class _Source:
    text: str
    name: str  # the file name, or a label for text
    records: list[_Record]
    allow_include: bool


def _scan(text: str, origin: dns.name.Name) -> list[_Record]:
    """List each record's first line, owner and type, following ``$ORIGIN``.

    dnspython's reader drops names outside the zone without a word and never
    says which record a line belongs to; this scan, on dnspython's own
    tokenizer, gives both. It stops quietly at text it cannot read: the real
    parse reports that with its line.
    """
    tok = dns.tokenizer.Tokenizer(text)
    records: list[_Record] = []
    owner: dns.name.Name | None = None
    try:
        while not (token := tok.get(want_leading=True)).is_eof():
            if token.is_eol():
                continue
            line = tok.line_number
            if token.is_whitespace():
                following = tok.get()
                if following.is_eol_or_eof():
                    continue
                tok.unget(following)
            elif token.value.startswith("$"):
                if token.value.upper() == "$ORIGIN":
                    origin = tok.get_name(origin)
                _skip_line(tok)
                continue
            else:
                owner = tok.as_name(token, origin)
            # Note the record as soon as its type is known: the scan may stop
            # in its rdata (an unterminated quote), where the error is.
            rdtype = None
            while not (token := tok.get()).is_eol_or_eof():
                if token.is_identifier() and (rdtype := _type_name(token.value)):
                    break
            if owner is not None:
                records.append(_Record(line, owner, rdtype))
            if rdtype is not None:
                _skip_line(tok)
    except dns.exception.DNSException:
        pass
    return records


def _genkey_origin(text: str, records: list[_Record]) -> dns.name.Name | None:
    """The domain an opendkim-genkey .txt file names, if the file needs an origin."""
    if any(r.rdtype == "SOA" for r in records):
        return None
    if not any(r.owner.is_subdomain(_NO_ORIGIN) for r in records):
        return None
    found = _GENKEY_COMMENT.search(text)
    if found is None:
        return None
    try:
        return dns.name.from_text(found.group(1), dns.name.root)
    except dns.exception.DNSException:
        return None


def _skip_line(tok: dns.tokenizer.Tokenizer) -> None:
    while not tok.get().is_eol_or_eof():
        pass


def _type_name(token: str) -> str | None:
    """The record type a token names, or None (a TTL, a class, rdata)."""
    if token.upper() in ("IN", "CH", "HS", "CS"):
        return None
    try:
        return dns.rdatatype.to_text(dns.rdatatype.from_text(token))
    except dns.exception.DNSException:
        return None


def _zone_apex(records: list[_Record], source: str) -> dns.name.Name | None:
    """The owner of the file's SOA, after checking the file holds one zone only.

    dnspython reads one zone per file and would silently drop records outside
    it, so those are errors here, pointing at the line (BIND ignores them
    with a warning, which is easy to miss in a test zone).
    """
    soas = [r for r in records if r.rdtype == "SOA"]
    if not soas:
        return None
    first = soas[0]
    if first.owner.is_subdomain(_NO_ORIGIN):
        raise DnsError(
            f"{source}:{first.line}: the SOA owner "
            f"'{first.owner.relativize(_NO_ORIGIN)}' is relative but the file sets no origin "
            f"(end it with a dot, e.g. 'example.com.', or start with '$ORIGIN example.com.')"
        )
    for record in records:
        if record.owner.is_subdomain(first.owner) or record.owner.is_subdomain(_NO_ORIGIN):
            continue
        what = "a second SOA" if record.rdtype == "SOA" else "a record"
        raise DnsError(
            f"{source}:{record.line}: {what} for {name_text(record.owner)}, outside the zone "
            f"{name_text(first.owner)} whose SOA is on line {first.line} "
            f"(put each zone in a file of its own)"
        )
    return first.owner


@dataclass(frozen=True, slots=True)
class _Plan:
    """How to read a file: where relative names start, the zone apex, a default TTL."""

    start: dns.name.Name
    apex: dns.name.Name
    default_ttl: int | None = None

    def preamble(self) -> list[str]:
        # Directives put before the file's text. They may name what no record
        # in the file mentions (the sentinel, a caller's origin); _located()
        # undoes the shift in line numbers they cause.
        lines = [f"$ORIGIN {self.start.to_text()}"]
        if self.default_ttl is not None:
            lines.append(f"$TTL {self.default_ttl}")
        return lines


def _parse(src: _Source, start: dns.name.Name, apex: dns.name.Name) -> dns.zone.Zone:
    """Parse with dnspython (relative names from ``start``), or raise a located DnsError."""
    plan = _Plan(start, apex)
    result = _try_parse(src, src.text, plan)
    if isinstance(result, dns.exception.SyntaxError) and str(result).endswith(_NO_TTL):
        # Records pasted from an RFC or a DNS panel often carry no TTL and the
        # file no $TTL; RFC 1035 leaves that an error, but a default serves
        # the person better. Files that state TTLs keep RFC 1035/2308 rules.
        plan = _Plan(start, apex, DEFAULT_TTL)
        result = _try_parse(src, src.text, plan)
    if isinstance(result, dns.zone.Zone):
        return result
    raise _located(result, src, plan)


def _try_parse(src: _Source, text: str, plan: _Plan) -> dns.zone.Zone | Exception:
    checks = (_check_cname, _check_relative)
    try:
        return dns.zone.from_text(
            "\n".join([*plan.preamble(), text]),
            origin=plan.apex,
            relativize=False,
            zone_factory=functools.partial(_CheckedZone, checks=checks),
            filename=src.name,
            allow_include=src.allow_include,
            check_origin=False,
        )
    except (dns.exception.DNSException, OSError, ValueError) as exc:
        return exc


def _located(exc: Exception, src: _Source, plan: _Plan) -> DnsError:
    """Turn a dnspython parse error into ``file:line: problem (detail)``."""
    if isinstance(exc, OSError):  # an $INCLUDE file that cannot be opened
        return DnsError(f"{src.name}: cannot read included file {exc.filename!r} ({exc.strerror})")
    message = str(exc)
    prefix = f"{src.name}:"
    head, _, detail = message.removeprefix(prefix).partition(": ")
    if not isinstance(exc, dns.exception.SyntaxError):
        return DnsError(f"{prefix} {message}")
    if not head.isdigit():  # an error inside an $INCLUDEd file: dnspython's location
        return DnsError(message)
    line = int(head) - len(plan.preamble())
    lines = src.text.splitlines()
    # dnspython often reports the line after the bad record, because it has
    # already read the record's end of line. If the text up to the previous
    # line fails the same way, the error is there.
    if line > 1:
        again = _try_parse(src, "\n".join(lines[: line - 1]) + "\n", plan)
        if isinstance(again, dns.exception.SyntaxError) and str(again).endswith(f": {detail}"):
            line -= 1
    rdtype = next((r.rdtype for r in reversed(src.records) if r.line <= line), None)
    return DnsError(f"{src.name}:{line}: {_describe(detail, rdtype)}")


def _describe(detail: str, rdtype: str | None) -> str:
    """Say what was wrong in words a zone-file writer knows, keeping dnspython's detail."""
    if rdtype is None or detail.startswith(_OWN_WORDS):
        return detail
    return f"bad {rdtype} record ({detail})"
