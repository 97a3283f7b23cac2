"""DMARC policy records: the tags of RFC 9989 §4.7, parsed leniently, built strictly.

A record is ``v=DMARC1`` then ``tag=value`` pairs separated by ``;`` with
optional spaces around it (``dmarc-sep = *WSP ";" *WSP``). RFC 9989 tags: ``p sp np``
(none, quarantine, reject), ``adkim aspf`` (r, s), ``rua ruf`` (comma-separated
URIs), ``fo`` (colon-separated 0, 1, d, s), ``t`` (y, n) and ``psd`` (y, n, u).
RFC 7489's ``pct``, ``rf`` and ``ri`` are gone ("Unknown tags MUST be
ignored" now covers them); ``t=y`` replaces ``pct`` for a gradual start.

:func:`split_tags` keeps every tag as written, for the linter to judge;
:class:`DmarcRecord` holds the meaning and renders it in one canonical order.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final

from mailseal.keys.names import domain_name


class DmarcError(ValueError):
    """A value that cannot go into a DMARC record; the message says what would."""


class Policy(enum.Enum):
    """p=, sp=, np=: what the Domain Owner asks receivers to do with failing mail."""

    NONE = "none"
    QUARANTINE = "quarantine"
    REJECT = "reject"

    def one_level_lower(self) -> Policy:
        """RFC 9989 ``t=y``: reject is applied as quarantine, quarantine as none."""
        return {Policy.REJECT: Policy.QUARANTINE}.get(self, Policy.NONE)


class Alignment(enum.Enum):
    """adkim=, aspf=: relaxed (the default) or strict identifier alignment."""

    RELAXED = "r"
    STRICT = "s"


class Psd(enum.Enum):
    """psd=: is this the record of a Public Suffix Domain (y), not one (n), unknown (u)."""

    YES = "y"
    NO = "n"
    UNKNOWN = "u"


VERSION: Final = "DMARC1"
#: RFC 9989 §4.7 tags, in the order :meth:`DmarcRecord.render` writes them.
TAGS: Final = ("v", "p", "sp", "np", "adkim", "aspf", "rua", "ruf", "fo", "t", "psd")
#: RFC 7489 tags that RFC 9989 removed, and what to do instead.
REMOVED_TAGS: Final[dict[str, str]] = {
    "pct": "use t=y while testing a stricter policy, then drop it",
    "rf": "failure reports are always in the RFC 6591 format now",
    "ri": "receivers send aggregate reports daily whatever it says",
}
FAILURE_OPTIONS: Final = ("0", "1", "d", "s")
# A legacy RFC 7489 size limit after a report URI: "!10m".
_SIZE_SUFFIX: Final = re.compile(r"!\s*[0-9]+\s*[kmgtKMGT]?\s*$")
_LOCAL_PART: Final = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")


@dataclass(frozen=True, slots=True)
class Tag:
    """One ``name=value`` as written (both trimmed), and its place in the record."""

    name: str
    value: str
    index: int

    @property
    def key(self) -> str:
        return self.name.lower()


def split_tags(text: str) -> tuple[list[Tag], list[str]]:
    """Cut a record into its tags; return them and the pieces that are not ``name=value``."""
    tags: list[Tag] = []
    junk: list[str] = []
    for piece in text.split(";"):
        piece = piece.strip(" \t\r\n")
        if not piece:
            continue  # "v=DMARC1; p=none;" ends with an empty piece, which is allowed
        name, eq, value = piece.partition("=")
        if not eq or not name.strip():
            junk.append(piece)
            continue
        tags.append(Tag(name.strip(" \t"), value.strip(" \t"), len(tags)))
    return tags, junk


def is_dmarc(text: str) -> bool:
    """Does a TXT record at ``_dmarc`` claim to be DMARC (starts with ``v=DMARC1``)?"""
    tags, _ = split_tags(text)
    return bool(tags) and tags[0].key == "v" and tags[0].value == VERSION


@dataclass(frozen=True, slots=True)
class ReportUri:
    """A report destination: a ``mailto:`` address (the only scheme reports go to)."""

    address: str  # local@domain, domain lower-cased

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    def __str__(self) -> str:
        return f"mailto:{self.address}"


def parse_uri(text: str) -> tuple[ReportUri, list[str]]:
    """Read one rua/ruf item leniently: the URI and what was wrong with how it was written.

    Raises DmarcError when no usable mailto address can be got from it. The
    list names fixable faults: no ``mailto:``, a ``!size`` suffix (RFC 9989:
    reporters ignore it), spaces.
    """
    faults: list[str] = []
    item = text.strip()
    if _SIZE_SUFFIX.search(item):
        item = _SIZE_SUFFIX.sub("", item).strip()
        faults.append("size")
    scheme, colon, rest = item.partition(":")
    if colon and scheme.lower() == "mailto":
        address = rest
    elif colon and "@" not in scheme:
        raise DmarcError(
            f"{text.strip()!r}: reports are sent by email only (RFC 9990): use mailto:ADDRESS"
        )
    else:
        address = item
        faults.append("scheme")
    address = address.replace("%40", "@")
    if address != address.strip() or " " in address:
        faults.append("space")
        address = address.replace(" ", "")
    local, at, dom = address.rpartition("@")
    if not at or not local or not _LOCAL_PART.fullmatch(local) or "," in local:
        raise DmarcError(f"{text.strip()!r} is not a mailto: URI with an email address")
    try:
        dom = domain_name(dom)
    except ValueError:
        raise DmarcError(f"{text.strip()!r}: {dom!r} is not a domain name") from None
    return ReportUri(f"{local}@{dom}"), faults


def parse_uri_list(text: str) -> list[str]:
    """The items of a rua/ruf value (RFC 9989 ``dmarc-uri *(*WSP "," *WSP dmarc-uri)``)."""
    return [item for item in (i.strip() for i in text.split(",")) if item]


def report_uri(text: str) -> ReportUri:
    """A report destination given on the command line: ``ADDRESS`` or ``mailto:ADDRESS``."""
    uri, faults = parse_uri(text)
    if "size" in faults:
        raise DmarcError(f"{text!r}: the !size suffix is obsolete (RFC 9989); leave it out")
    if "space" in faults:
        raise DmarcError(f"{text!r}: an address has no spaces")
    return uri


@dataclass(frozen=True, slots=True)
class DmarcRecord:
    """What a record says. None means the tag is absent (the RFC default applies)."""

    p: Policy | None = None
    sp: Policy | None = None
    np: Policy | None = None
    adkim: Alignment | None = None
    aspf: Alignment | None = None
    rua: tuple[ReportUri, ...] = ()
    ruf: tuple[ReportUri, ...] = ()
    fo: tuple[str, ...] = ()
    t: bool | None = None
    psd: Psd | None = None

    def render(self) -> str:
        """``v=DMARC1; p=...; ...``: the tags present, in RFC 9989 §4.7 order."""
        parts = [f"v={VERSION}"]
        for name in ("p", "sp", "np"):
            policy = getattr(self, name)
            if policy is not None:
                parts.append(f"{name}={policy.value}")
        for name in ("adkim", "aspf"):
            mode = getattr(self, name)
            if mode is not None:
                parts.append(f"{name}={mode.value}")
        if self.rua:
            parts.append("rua=" + ",".join(str(u) for u in self.rua))
        if self.ruf:
            parts.append("ruf=" + ",".join(str(u) for u in self.ruf))
        if self.fo:
            parts.append("fo=" + ":".join(self.fo))
        if self.t is not None:
            parts.append(f"t={'y' if self.t else 'n'}")
        if self.psd is not None:
            parts.append(f"psd={self.psd.value}")
        return "; ".join(parts)

    @property
    def policy(self) -> Policy:
        """p=, as receivers apply it: none when absent, one level lower with t=y (RFC 9989)."""
        p = self.p or Policy.NONE
        return p.one_level_lower() if self.t else p


def parse_policy(text: str) -> Policy:
    try:
        return Policy(text.strip().lower())
    except ValueError:
        raise DmarcError(f"{text!r} is not a policy (use none, quarantine or reject)") from None


def parse_alignment(text: str) -> Alignment:
    try:
        return Alignment(text.strip().lower())
    except ValueError:
        raise DmarcError(f"{text!r} is not an alignment mode (use r or s)") from None


def parse_fo(text: str) -> tuple[str, ...]:
    items = tuple(i.strip().lower() for i in text.split(":") if i.strip())
    bad = [i for i in items if i not in FAILURE_OPTIONS]
    if not items or bad:
        raise DmarcError(f"fo={text!r}: use 0, 1, d or s, joined by ':' (e.g. fo=1)")
    return tuple(dict.fromkeys(items))


def parse_yn(text: str, tag: str) -> bool:
    word = text.strip().lower()
    if word not in ("y", "n"):
        raise DmarcError(f"{tag}={text!r}: use y or n")
    return word == "y"


def parse_psd(text: str) -> Psd:
    try:
        return Psd(text.strip().lower())
    except ValueError:
        raise DmarcError(f"psd={text!r}: use y, n or u") from None


def build_record(
    *,
    p: str = "none",
    sp: str | None = None,
    np: str | None = None,
    adkim: str | None = None,
    aspf: str | None = None,
    rua: tuple[str, ...] = (),
    ruf: tuple[str, ...] = (),
    fo: str | None = None,
    t: bool | None = None,
    psd: str | None = None,
) -> DmarcRecord:
    """Build a record from option values (RFC 9989 tags only); DmarcError names a bad value."""
    return DmarcRecord(
        p=parse_policy(p),
        sp=parse_policy(sp) if sp is not None else None,
        np=parse_policy(np) if np is not None else None,
        adkim=parse_alignment(adkim) if adkim is not None else None,
        aspf=parse_alignment(aspf) if aspf is not None else None,
        rua=tuple(report_uri(u) for u in rua),
        ruf=tuple(report_uri(u) for u in ruf),
        fo=parse_fo(fo) if fo is not None else (),
        t=t,
        psd=parse_psd(psd) if psd is not None else None,
    )


def start_record(domain: str, rua: str | None = None) -> DmarcRecord:
    """Where every domain starts: ``p=none`` with aggregate reports (postmaster@ by default)."""
    return build_record(p="none", rua=(rua or f"postmaster@{domain}",))


def enforcement_path(start: DmarcRecord) -> list[tuple[str, DmarcRecord]]:
    """The steps from p=none to p=reject (RFC 9989: t=y, then quarantine, then reject)."""
    base = DmarcRecord(
        sp=start.sp, np=start.np, adkim=start.adkim, aspf=start.aspf, rua=start.rua, ruf=start.ruf
    )

    def step(policy: Policy, testing: bool) -> DmarcRecord:
        return DmarcRecord(
            p=policy,
            sp=base.sp,
            np=base.np,
            adkim=base.adkim,
            aspf=base.aspf,
            rua=base.rua,
            ruf=base.ruf,
            t=True if testing else None,
        )

    return [
        ("now: monitor only, read the aggregate reports for 2-4 weeks", step(Policy.NONE, False)),
        (
            "when every legitimate source passes: quarantine in test mode (RFC 9989 receivers "
            "still treat failures as p=none, mailing lists start adapting)",
            step(Policy.QUARANTINE, True),
        ),
        ("after a few more weeks of clean reports: quarantine", step(Policy.QUARANTINE, False)),
        ("finally: reject", step(Policy.REJECT, False)),
    ]


__all__ = [
    "Alignment",
    "DmarcError",
    "DmarcRecord",
    "FAILURE_OPTIONS",
    "Policy",
    "Psd",
    "REMOVED_TAGS",
    "ReportUri",
    "TAGS",
    "Tag",
    "VERSION",
    "build_record",
    "enforcement_path",
    "is_dmarc",
    "parse_alignment",
    "parse_fo",
    "parse_policy",
    "parse_psd",
    "parse_uri",
    "parse_uri_list",
    "parse_yn",
    "report_uri",
    "split_tags",
    "start_record",
]
