"""What a received message's header fields say: author, envelope, sending server, verdicts.

:func:`read_facts` reads the From domain, the envelope sender (Return-Path,
else what Received-SPF or Authentication-Results say), the sending server's
address and HELO name (Received-SPF, else the first Received field from
outside the receiving site: loopback, link-local and private addresses are
the site's own hops), the receiver's topmost Authentication-Results and
Received-SPF, and the DKIM selectors the message was signed with.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import getaddresses
from typing import Final

from mailseal.dkim.signature import read_labels
from mailseal.doctor.checks import domain_to_check
from mailseal.doctor.received import (
    AuthResults,
    ReceivedSpf,
    field_text,
    parse_authres,
    parse_received_spf,
    received_client,
)
from mailseal.message.headers import HeaderField
from mailseal.spf.lookup import IPAddress, client_address

#: Addresses of the receiving site itself (its internal hops), skipped when
#: looking for the server that handed the message over.
_INSIDE: Final = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """What a message's header fields say about how it was sent and received."""

    from_domains: tuple[str, ...]  # the From addresses' domains (A-labels)
    from_addresses: tuple[str, ...]  # the From addresses as written
    from_fields: int
    mail_from: str | None  # the envelope sender; "" is the null sender; None unknown
    client_ip: IPAddress | None
    helo: str | None
    where: str  # which field gave the address: "Received-SPF", "Received", ""
    authres: AuthResults | None
    received_spf: ReceivedSpf | None
    missing: tuple[str, ...]  # Date, Message-ID when absent
    signers: tuple[tuple[str, str], ...]  # (d=, s=) of each DKIM-Signature

    @property
    def from_domain(self) -> str | None:
        return self.from_domains[0] if len(self.from_domains) == 1 else None


def _first(fields: Sequence[HeaderField], name: str) -> str | None:
    return next((field_text(f) for f in fields if f.lname == name), None)


def _address(text: str | None) -> IPAddress | None:
    if not text:
        return None
    try:
        return client_address(text)
    except ValueError:
        return None


def domain_of(address: str) -> str | None:
    """The domain of ``address`` as an A-label; None for none, a literal, a single label."""
    domain = address.rpartition("@")[2].strip().rstrip(">")
    try:
        return domain_to_check(domain)
    except ValueError:
        return None


def read_facts(fields: Sequence[HeaderField]) -> MessageFacts:
    """Read the header fields the checks need (see the module docstring)."""
    froms = [field_text(f) for f in fields if f.lname == "from"]
    addresses = tuple(addr for _, addr in getaddresses(froms) if addr)
    domains = tuple(d for addr in addresses if (d := domain_of(addr)) is not None)
    received_spf = next(
        (
            r
            for f in fields
            if f.lname == "received-spf"
            if (r := parse_received_spf(field_text(f)))
        ),
        None,
    )
    authres = next(
        (
            a
            for f in fields
            if f.lname == "authentication-results"
            if (a := parse_authres(field_text(f)))
        ),
        None,
    )
    ip, helo, where = _client(fields, received_spf)
    return MessageFacts(
        from_domains=domains,
        from_addresses=addresses,
        from_fields=len(froms),
        mail_from=_mail_from(fields, received_spf, authres),
        client_ip=ip,
        helo=helo,
        where=where,
        authres=authres,
        received_spf=received_spf,
        missing=tuple(n for n in ("Date", "Message-ID") if _first(fields, n.lower()) is None),
        signers=tuple(
            (labels.domain, labels.selector)
            for f in fields
            if f.lname == "dkim-signature"
            for labels in (read_labels(f.value),)
        ),
    )


def _mail_from(
    fields: Sequence[HeaderField], spf: ReceivedSpf | None, authres: AuthResults | None
) -> str | None:
    path = _first(fields, "return-path")
    if path is not None:
        return path.strip().strip("<>").strip()
    if spf is not None and spf.envelope_from is not None:
        return spf.envelope_from.strip("<>")
    for result in authres.of("spf") if authres else ():
        sender = result.prop("smtp.mailfrom")
        if sender is not None:
            return sender
    return None


def _client(
    fields: Sequence[HeaderField], spf: ReceivedSpf | None
) -> tuple[IPAddress | None, str | None, str]:
    if spf is not None and (ip := _address(spf.client_ip)) is not None:
        return ip, spf.helo.rstrip(".") if spf.helo else None, "Received-SPF"
    for f in fields:
        if f.lname != "received":
            continue
        helo, text = received_client(field_text(f))
        ip = _address(text)
        if ip is None or ip.is_loopback or ip.is_link_local or any(ip in n for n in _INSIDE):
            continue
        return ip, helo, "Received"
    return None, None, ""


__all__ = ["MessageFacts", "domain_of", "read_facts"]
