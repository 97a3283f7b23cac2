"""Check a DMARC record's syntax and meaning, and write the record it should be.

Each finding has a severity (``error``: receivers ignore the record or a tag,
or reports go nowhere; ``warning``: legacy or obsolete syntax, no reports
asked for; ``note``: worth knowing, nothing to fix), a stable code, the tag
it is about, and the fix. The corrected record keeps everything that was
right and repairs the rest.

:func:`lint_record` is pure (an Organizational Domain function and the
answers about external report destinations are passed in);
:func:`lint_domain` fetches ``_dmarc.DOMAIN`` and the ``_report._dmarc``
authorizations as DNS questions (the Domain Owner's record is at ``_dmarc``;
an external destination must publish ``DOMAIN._report._dmarc.DESTINATION``).
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field, replace
from typing import Final

from mailseal.dmarc.record import (
    REMOVED_TAGS,
    TAGS,
    VERSION,
    DmarcError,
    DmarcRecord,
    Policy,
    ReportUri,
    Tag,
    is_dmarc,
    parse_alignment,
    parse_fo,
    parse_policy,
    parse_psd,
    parse_uri,
    parse_uri_list,
    parse_yn,
    split_tags,
    start_record,
)
from mailseal.dns.types import Answer, Question, RdType, Status

OrgDomain = Callable[[str], str]

_KNOWN: Final = frozenset(TAGS) | frozenset(REMOVED_TAGS)
_POLICY_WORDS: Final = tuple(p.value for p in Policy)
_ALLOWED: Final = {
    "adkim": "r, s",
    "aspf": "r, s",
    "fo": "0, 1, d, s (joined by ':')",
    "t": "y, n",
    "psd": "y, n, u",
}


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing the linter has to say about a record."""

    severity: Severity
    code: str
    message: str
    fix: str = ""
    tag: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "severity": self.severity.value,
            "code": self.code,
            "tag": self.tag,
            "message": self.message,
            "fix": self.fix,
        }


@dataclass(frozen=True, slots=True)
class LintReport:
    """The verdict on one record (or on a domain without one)."""

    domain: str | None
    record: str | None  # as given or published; None when there is none
    findings: tuple[Finding, ...]
    corrected: str  # the record to publish
    authorization_records: tuple[str, ...] = ()  # _report._dmarc names still to publish

    @property
    def problems(self) -> bool:
        """Errors or warnings: anything to change (notes do not count)."""
        return any(f.severity is not Severity.NOTE for f in self.findings)

    def as_json(self) -> dict[str, object]:
        return {
            "domain": self.domain,
            "name": f"_dmarc.{self.domain}" if self.domain else None,
            "record": self.record,
            "ok": not self.problems,
            "findings": [f.as_json() for f in self.findings],
            "corrected": self.corrected,
            "authorization_records": list(self.authorization_records),
        }


@dataclass
class _State:
    """What the linter has gathered so far while reading the tags."""

    findings: list[Finding] = field(default_factory=list)
    record: DmarcRecord = DmarcRecord()
    seen: set[str] = field(default_factory=set)
    pct: int | None = None
    version_ok: bool = False

    def add(
        self, severity: Severity, code: str, message: str, fix: str = "", tag: str = ""
    ) -> None:
        self.findings.append(Finding(severity, code, message, fix, tag or None))


def lint_record(
    text: str,
    domain: str | None = None,
    *,
    org_domain: OrgDomain | None = None,
    authorized: Mapping[str, bool] | None = None,
) -> LintReport:
    """Judge one DMARC record.

    ``domain`` is where it is published (needed for the external-destination
    check); ``org_domain`` maps a name to its Organizational Domain;
    ``authorized`` says, per destination host, whether
    ``DOMAIN._report._dmarc.HOST`` publishes ``v=DMARC1`` (hosts missing from
    it were not checked).
    """
    state = _State()
    tags, junk = split_tags(text)
    for piece in junk:
        state.add(
            Severity.ERROR,
            "syntax",
            f"{piece!r} is not a tag=value pair; receivers may discard the whole record",
            "write tags as name=value, separated by ';'",
        )
    _version(tags, state)
    for tag in tags[1:] if tags and tags[0].key == "v" else tags:
        _tag(tag, state)
    _meaning(state, domain)
    auth_names = _destinations(state, domain, org_domain, authorized)
    corrected = state.record
    if corrected.p is None:
        corrected = replace(corrected, p=Policy.NONE)
    if state.pct is not None and state.pct < 100 and corrected.t is None:
        if corrected.p is not Policy.NONE:
            corrected = replace(corrected, t=True)
    return LintReport(domain, text, tuple(state.findings), corrected.render(), auth_names)


def _version(tags: list[Tag], state: _State) -> None:
    """RFC 9989 §4.7: v= "MUST be the first tag in the record" and be exactly DMARC1."""
    first = tags[0] if tags else None
    if first is not None and first.key == "v":
        state.version_ok = True
        if first.value != VERSION:
            state.add(
                Severity.ERROR,
                "bad-version",
                f"v={first.value!r}: receivers only know v=DMARC1 (in capitals) and ignore this "
                "record",
                "start the record with v=DMARC1",
                "v",
            )
        return
    where = "is missing" if not any(t.key == "v" for t in tags) else "is not the first tag"
    state.add(
        Severity.ERROR,
        "not-dmarc",
        f"v=DMARC1 {where}: receivers do not see a DMARC record here",
        "start the record with v=DMARC1",
        "v",
    )


def _tag(tag: Tag, state: _State) -> None:
    key = tag.key
    if key == "v":
        if state.version_ok:
            state.add(Severity.ERROR, "duplicate-tag", "v= appears again", "keep one v=", "v")
        return  # a misplaced v= was reported by _version
    if key in state.seen and key in _KNOWN:
        state.add(
            Severity.ERROR,
            "duplicate-tag",
            f"{key}= appears more than once; receivers may use either",
            f"keep one {key}=",
            key,
        )
        return
    state.seen.add(key)
    if key in REMOVED_TAGS:
        _removed(tag, state)
        return
    if key not in TAGS:
        close = _closest(key, TAGS[1:])
        if close and close[0] not in state.seen and _fits(close[0], tag.value):
            state.add(
                Severity.WARNING,
                "unknown-tag",
                f"unknown tag {tag.name}=; receivers ignore it (did you mean {close[0]}=?)",
                f"write {close[0]}={tag.value}",
                tag.name,
            )
            _tag(Tag(close[0], tag.value, tag.index), state)
        else:
            state.add(
                Severity.WARNING,
                "unknown-tag",
                f"unknown tag {tag.name}=; receivers ignore it (RFC 9989: unknown tags MUST be "
                "ignored)",
                f"remove {tag.name}=",
                tag.name,
            )
        return
    try:
        state.record = _apply(tag, state)
    except DmarcError as exc:
        _bad_value(tag, str(exc), state)


def _closest(word: str, candidates: tuple[str, ...]) -> list[str]:
    """The most similar candidate (ties go to the earlier, more common, tag), if close."""
    scored = [
        (difflib.SequenceMatcher(None, word, c).ratio(), -i, c) for i, c in enumerate(candidates)
    ]
    best = max(scored)
    return [best[2]] if best[0] >= 0.6 else []


def _fits(key: str, value: str) -> bool:
    """Would ``value`` be valid for tag ``key``? (Is a misspelt tag name likely that tag?)"""
    try:
        record = _apply(Tag(key, value, 0), _State())
    except DmarcError:
        return False
    return bool(record.rua or record.ruf) if key in ("rua", "ruf") else True


def _apply(tag: Tag, state: _State) -> DmarcRecord:
    r, key, value = state.record, tag.key, tag.value
    if key in ("p", "sp", "np"):
        return _set_policy(r, key, parse_policy(value))
    if key == "adkim":
        return replace(r, adkim=parse_alignment(value))
    if key == "aspf":
        return replace(r, aspf=parse_alignment(value))
    if key == "fo":
        return replace(r, fo=parse_fo(value))
    if key == "t":
        return replace(r, t=parse_yn(value, "t"))
    if key == "psd":
        return replace(r, psd=parse_psd(value))
    uris = _uris(tag, state)
    return replace(r, rua=uris) if key == "rua" else replace(r, ruf=uris)


def _set_policy(r: DmarcRecord, key: str, policy: Policy | None) -> DmarcRecord:
    if key == "p":
        return replace(r, p=policy)
    return replace(r, sp=policy) if key == "sp" else replace(r, np=policy)


def _bad_value(tag: Tag, message: str, state: _State) -> None:
    key = tag.key
    if key in ("p", "sp", "np"):
        close = difflib.get_close_matches(tag.value.lower(), _POLICY_WORDS, n=1, cutoff=0.5)
        guess = Policy(close[0]) if close else (Policy.NONE if key == "p" else None)
        state.record = _set_policy(state.record, key, guess)
        what = (
            "receivers apply p=none (RFC 9989) or ignore the record (RFC 7489)"
            if key == "p"
            else "receivers ignore the tag"
        )
        state.add(
            Severity.ERROR,
            "bad-value",
            f"{key}={tag.value!r}: {what}",
            f"write {key}={guess.value}" if guess else f"remove {key}=",
            key,
        )
        return
    # adkim=strict, t=yes, psd=no...: the first letter is what was meant.
    guessed = Tag(key, tag.value.strip()[:1], tag.index)
    try:
        state.record = _apply(guessed, state) if guessed.value else state.record
        fix = f"write {key}={guessed.value.lower()}"
    except DmarcError:
        fix = f"write {key}= with one of: {_ALLOWED[key]}, or remove it"
    state.add(Severity.ERROR, "bad-value", message + "; receivers ignore the tag", fix, key)


def _uris(tag: Tag, state: _State) -> tuple[ReportUri, ...]:
    """rua= / ruf=: every item a mailto: URI; fixable faults are findings, not losses."""
    out: list[ReportUri] = []
    for item in parse_uri_list(tag.value):
        try:
            uri, faults = parse_uri(item)
        except DmarcError as exc:
            state.add(
                Severity.ERROR,
                "bad-uri",
                f"{tag.key}=: {exc}; no reports go there",
                "use mailto:ADDRESS",
                tag.key,
            )
            continue
        if "scheme" in faults:
            state.add(
                Severity.ERROR,
                "missing-mailto",
                f"{tag.key}={item}: a report address needs the mailto: scheme; receivers skip it",
                f"write {tag.key}={uri}",
                tag.key,
            )
        if "size" in faults:
            state.add(
                Severity.WARNING,
                "uri-size",
                f"{tag.key}={item}: the !size suffix is obsolete; RFC 9989 reporters ignore it",
                f"write {uri}",
                tag.key,
            )
        if "space" in faults:
            state.add(
                Severity.ERROR, "bad-uri", f"{tag.key}= holds a space", f"write {uri}", tag.key
            )
        if uri not in out:
            out.append(uri)
    return tuple(out)


def _removed(tag: Tag, state: _State) -> None:
    key = tag.key
    fix = REMOVED_TAGS[key]
    if key == "pct":
        try:
            state.pct = max(0, min(100, int(tag.value)))
        except ValueError:
            state.pct = None
        if state.pct is not None and state.pct < 100:
            fix = f"remove pct=; for a gradual start publish t=y instead ({fix})"
        else:
            fix = "remove pct= (100 is what every receiver does anyway)"
    else:
        fix = f"remove {key}= ({fix})"
    state.add(
        Severity.WARNING,
        "removed-tag",
        f"{key}={tag.value} was removed by RFC 9989 (it was RFC 7489's); receivers now ignore it",
        fix,
        key,
    )


def _meaning(state: _State, domain: str | None) -> None:
    r = state.record
    if "p" not in state.seen:
        state.add(
            Severity.ERROR,
            "missing-p",
            "no p= tag: RFC 7489 receivers discard the record; RFC 9989 receivers read p=none "
            "only when rua= is valid",
            "add p=none (or quarantine/reject)",
            "p",
        )
    if "rua" not in state.seen:
        where = f" such as mailto:postmaster@{domain}" if domain else ""
        state.add(
            Severity.WARNING,
            "missing-rua",
            "no rua=: nobody sends you aggregate reports, so you cannot see what a stricter "
            "policy would block",
            f"add rua= with an address you read{where}",
            "rua",
        )
    if r.fo and not r.ruf:
        state.add(Severity.NOTE, "fo-without-ruf", "fo= only matters with ruf=", "", "fo")
    if r.t:
        state.add(
            Severity.NOTE,
            "testing",
            f"t=y: RFC 9989 receivers apply p={r.policy.value} for now (one level below p=); "
            "RFC 7489 receivers ignore t= and apply p= as written",
            "remove t=y when the reports are clean",
            "t",
        )
    if r.p is Policy.NONE and "p" in state.seen:
        state.add(
            Severity.NOTE,
            "monitor-only",
            "p=none only monitors: spoofed mail is still delivered",
            "when reports are clean: p=quarantine; t=y, then p=quarantine, then p=reject",
            "p",
        )


def external_hosts(record: DmarcRecord, domain: str, org_domain: OrgDomain) -> list[str]:
    """Report destinations outside the domain's Organizational Domain (RFC 7489 §7.1, kept
    by RFC 9989): each must authorize the domain before reports are sent there."""
    mine = org_domain(domain)
    hosts: list[str] = []
    for uri in (*record.rua, *record.ruf):
        host = uri.domain
        if org_domain(host) != mine and host not in hosts:
            hosts.append(host)
    return hosts


def authorization_name(domain: str, host: str) -> str:
    """Where ``host`` says it accepts ``domain``'s reports: ``DOMAIN._report._dmarc.HOST``."""
    return f"{domain}._report._dmarc.{host}"


def _destinations(
    state: _State,
    domain: str | None,
    org_domain: OrgDomain | None,
    authorized: Mapping[str, bool] | None,
) -> tuple[str, ...]:
    if domain is None or org_domain is None:
        return ()
    missing: list[str] = []
    for host in external_hosts(state.record, domain, org_domain):
        name = authorization_name(domain, host)
        if authorized is None or host not in authorized:
            state.add(
                Severity.NOTE,
                "external-unchecked",
                f"reports go to {host}, outside {org_domain(domain)}; it must publish TXT "
                f'{name} "v=DMARC1" (not checked)',
                "",
                "rua",
            )
        elif not authorized[host]:
            missing.append(name)
            state.add(
                Severity.ERROR,
                "external-unauthorized",
                f"reports to {host} are not sent: {host} has not published {name} "
                "(RFC 9989, verifying external destinations)",
                f'ask {host} to publish TXT {name} "v=DMARC1", or send reports to an address '
                f"in {org_domain(domain)}",
                "rua",
            )
    return tuple(missing)


def lint_domain(
    domain: str, org_domain: OrgDomain
) -> Generator[Question, Answer, LintReport | Answer]:
    """Fetch ``_dmarc.DOMAIN`` and lint it; a failed lookup is returned as the Answer itself."""
    answer = yield Question(f"_dmarc.{domain}", RdType.TXT)
    if answer.status.is_temporary:
        return answer
    texts = answer.records if answer.status is Status.OK else ()
    records = [t for t in texts if is_dmarc(t)]
    if not records:
        return _no_record(domain, texts, answer.status)
    if len(records) > 1:
        report = lint_record(records[0], domain, org_domain=org_domain)
        finding = Finding(
            Severity.ERROR,
            "multiple-records",
            f"_dmarc.{domain} has {len(records)} DMARC records; receivers then apply none of them",
            "keep exactly one",
        )
        return replace(report, findings=(finding, *report.findings))
    parsed = _record_only(records[0])
    authorized: dict[str, bool] = {}
    for host in external_hosts(parsed, domain, org_domain):
        reply = yield Question(authorization_name(domain, host), RdType.TXT)
        if reply.status.is_temporary:
            continue  # unknown: reported as not checked
        authorized[host] = reply.status is Status.OK and any(is_dmarc(t) for t in reply.records)
    return lint_record(records[0], domain, org_domain=org_domain, authorized=authorized)


def _record_only(text: str) -> DmarcRecord:
    state = _State()
    tags, _ = split_tags(text)
    for tag in tags[1:]:
        _tag(tag, state)
    return state.record


def _no_record(domain: str, texts: tuple[str, ...], status: Status) -> LintReport:
    suggestion = start_record(domain).render()
    if texts:
        message = f"_dmarc.{domain} has TXT records but none starts with v=DMARC1: " + "; ".join(
            repr(t[:60]) for t in texts
        )
    else:
        why = "no such name" if status is Status.NXDOMAIN else "no TXT record"
        message = f"no DMARC record at _dmarc.{domain} ({why})"
    finding = Finding(
        Severity.ERROR, "no-record", message, f"publish TXT _dmarc.{domain}: {suggestion}"
    )
    return LintReport(domain, None, (finding,), suggestion)


__all__ = [
    "Finding",
    "LintReport",
    "OrgDomain",
    "Severity",
    "authorization_name",
    "external_hosts",
    "lint_domain",
    "lint_record",
]
