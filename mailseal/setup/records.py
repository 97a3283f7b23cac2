"""The DNS records setup asks the admin to publish: DKIM, SPF, DMARC, and the PTR to request.

:func:`discover` asks what DNS says now (MX, A/AAAA, SPF and DMARC records,
the PTR of each server address, the mail host's addresses) as a question
generator; a failed lookup is noted and treated as unknown, so setup works
offline. :func:`advice` turns that and the keys into :class:`Publish` items.

SPF (RFC 7208): ``v=spf1 mx a ip4:... -all``: ``mx`` when the domain has
mail exchangers, ``a`` when it has addresses, then every ``--ip``. DMARC
(RFC 9989): start at ``p=none`` with aggregate reports, then ``t=y``, then
quarantine, then reject. Reverse DNS: the server address should name the mail
host (the Postfix ``myhostname``), and that name should point back to it
(forward-confirmed reverse DNS), which only the address's owner (the hosting
provider) can set up.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field

from mailseal.dkim.keys import KeyType
from mailseal.dkim.publish import KeyTxtRecord
from mailseal.dmarc.record import DmarcRecord, enforcement_path, is_dmarc, start_record
from mailseal.dns.types import Answer, Question, RdType, Status


@dataclass(frozen=True, slots=True)
class Discovery:
    """What DNS said about the domain before setup's records are published."""

    hostname: str  # the mail host named in PTR advice
    mx: tuple[str, ...] = ()  # exchanges, lowest preference first; a null MX left out
    addresses: tuple[str, ...] = ()  # the domain's own A/AAAA
    spf: tuple[str, ...] = ()  # published v=spf1 records
    dmarc: tuple[str, ...] = ()  # published v=DMARC1 records
    ptr: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # address -> names
    host_addresses: tuple[str, ...] = ()  # the mail host's A/AAAA
    failures: tuple[str, ...] = ()  # lookups that failed: the facts are unknown


@dataclass(frozen=True, slots=True)
class Publish:
    """One record to publish (or, for PTR, to ask for)."""

    kind: str  # DKIM, SPF, DMARC, PTR
    name: str  # owner name, no trailing dot
    rdtype: str  # TXT or PTR
    value: str
    notes: tuple[str, ...] = ()
    zone_text: str = ""  # DKIM: the .txt file's layout

    def as_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "name": self.name,
            "type": self.rdtype,
            "value": self.value,
            "notes": list(self.notes),
        }


def reverse_name(ip: str) -> str:
    """``192.0.2.10`` -> ``10.2.0.192.in-addr.arpa`` (RFC 1035 §3.5, RFC 3596 §2.5)."""
    return ipaddress.ip_address(ip).reverse_pointer


def _records(answer: Answer, failures: list[str]) -> tuple[str, ...]:
    if answer.status.is_temporary:
        failures.append(
            f"{answer.question.rdtype.value} {answer.question.name}: {answer.status.value}"
        )
        return ()
    return answer.records if answer.status is Status.OK else ()


def discover(
    domain: str, ips: tuple[str, ...], hostname: str | None
) -> Generator[Question, Answer, Discovery]:
    """Ask DNS what is there now; temporary failures are listed, not fatal."""
    failures: list[str] = []
    mx_answer = yield Question(domain, RdType.MX)
    mx_records = _records(mx_answer, failures)
    pairs = []
    for text in mx_records:
        pref, _, host = text.partition(" ")
        if host and host != "." and pref.isdigit():
            pairs.append((int(pref), host))
    mx = tuple(host for _, host in sorted(pairs))
    addresses: list[str] = []
    for rdtype in (RdType.A, RdType.AAAA):
        addresses += _records((yield Question(domain, rdtype)), failures)
    txt = _records((yield Question(domain, RdType.TXT)), failures)
    spf = tuple(t for t in txt if t.lower().startswith("v=spf1") and t[6:7] in ("", " "))
    dmarc_txt = _records((yield Question(f"_dmarc.{domain}", RdType.TXT)), failures)
    dmarc = tuple(t for t in dmarc_txt if is_dmarc(t))
    host = hostname or (mx[0] if mx else f"mail.{domain}")
    ptr: dict[str, tuple[str, ...]] = {}
    for ip in ips:
        ptr[ip] = _records((yield Question(reverse_name(ip), RdType.PTR)), failures)
    host_addresses: list[str] = []
    if ips:
        for rdtype in (RdType.A, RdType.AAAA):
            host_addresses += _records((yield Question(host, rdtype)), failures)
    return Discovery(
        host,
        mx,
        tuple(addresses),
        spf,
        dmarc,
        ptr,
        tuple(host_addresses),
        tuple(failures),
    )


def spf_value(found: Discovery, ips: tuple[str, ...]) -> str | None:
    """``v=spf1 [mx] [a] ip4:.. ip6:.. -all``; None when nothing is known to send mail."""
    mechanisms = []
    if found.mx:
        mechanisms.append("mx")
    if found.addresses:
        mechanisms.append("a")
    for ip in ips:
        version = ipaddress.ip_address(ip).version
        mechanisms.append(f"ip{version}:{ip}")
    if not mechanisms:
        return None
    return "v=spf1 " + " ".join(mechanisms) + " -all"


def advice(
    domain: str,
    keys: list[KeyTxtRecord],
    found: Discovery,
    ips: tuple[str, ...],
    rua: str | None = None,
) -> list[Publish]:
    """Every record to publish, each with notes on what is there now."""
    items = [Publish("DKIM", k.name, "TXT", k.value, _dkim_notes(k), k.zone_text()) for k in keys]
    items.append(_spf(domain, found, ips))
    items.append(_dmarc(domain, found, rua))
    items += [_ptr(ip, found) for ip in ips]
    return items


def _dkim_notes(record: KeyTxtRecord) -> tuple[str, ...]:
    if record.key_type is KeyType.ED25519:
        return ("Ed25519: receivers that do not know it ignore this signature (RFC 8463)",)
    return ()


def _spf(domain: str, found: Discovery, ips: tuple[str, ...]) -> Publish:
    value = spf_value(found, ips)
    notes: list[str] = []
    if value is None:
        notes.append(
            f"{domain} has no MX or A record and no --ip was given: re-run with "
            "--ip YOUR.SERVER.ADDRESS to build the record"
        )
        value = "v=spf1 mx a -all"
    if found.spf:
        if value in found.spf:
            notes.append("already published")
        else:
            notes.append(
                f"now published: {found.spf[0]!r}; replace it (a domain must have only one "
                "SPF record, RFC 7208 §3.2) unless it already covers every server you send from"
            )
    return Publish("SPF", domain, "TXT", value, tuple(notes))


def _dmarc(domain: str, found: Discovery, rua: str | None) -> Publish:
    start = start_record(domain, rua)
    notes = [f"reports go to {start.rua[0]}: make sure that mailbox exists and is read"]
    if found.dmarc:
        notes.append(
            f"now published: {found.dmarc[0]!r}; keep it if it is further along the path "
            f"(check it: mailseal dmarc lint {domain})"
        )
    for number, (why, step) in enumerate(path_steps(start), 1):
        notes.append(f"step {number}, {why}: {step.render()}")
    return Publish("DMARC", f"_dmarc.{domain}", "TXT", start.render(), tuple(notes))


def path_steps(start: DmarcRecord) -> list[tuple[str, DmarcRecord]]:
    """The path to enforcement after the start record (t=y, quarantine, reject)."""
    return enforcement_path(start)[1:]


def _ptr(ip: str, found: Discovery) -> Publish:
    host = found.hostname
    notes = ["only the owner of the address (your hosting provider) can set this"]
    now = found.ptr.get(ip, ())
    if host in now:
        notes.append("already set")
    elif now:
        notes.append(f"now: {', '.join(now)}")
    else:
        notes.append("now: none")
    if ip not in found.host_addresses:
        notes.append(
            f"also publish {host} A/AAAA {ip}: the name must point back to the address "
            "(forward-confirmed reverse DNS), and Postfix's myhostname should be that name"
        )
    return Publish("PTR", reverse_name(ip), "PTR", host, tuple(notes))


def postfix_lines(milter: str) -> list[str]:
    """The main.cf lines that connect Postfix to the milter."""
    return [
        "milter_protocol = 6",
        "milter_default_action = tempfail",
        f"smtpd_milters = {milter}",
        f"non_smtpd_milters = {milter}",
    ]


POSTFIX_NOTES = (
    "milter_protocol = 6 is Postfix's default; the tutorial's 2 works too",
    "milter_default_action = tempfail keeps mail queued (and retried) while the milter is "
    "down; the tutorial's accept sends it on unsigned",
)


__all__ = [
    "Discovery",
    "POSTFIX_NOTES",
    "Publish",
    "advice",
    "discover",
    "path_steps",
    "postfix_lines",
    "reverse_name",
    "spf_value",
]
