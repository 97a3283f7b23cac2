"""Reverse DNS of the sending address: PTR, forward confirmation, HELO name.

Big receivers refuse or spam-folder mail from an address without a PTR, and
look for forward-confirmed reverse DNS (FCrDNS, "iprev" in RFC 8601 §3): a
PTR name whose A/AAAA records give the address back. The HELO/EHLO name
should be that name too (RFC 5321 §4.1.1.1: "the domain name given in the
EHLO command MUST be either a primary host name ... or, if the host has no
name, an address literal"). Only the owner of the address block (the hosting
provider) can set a PTR, so the fix for a missing one is a request to them.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Final

from mailseal.dns.types import Answer, Question, RdType
from mailseal.doctor.findings import Finding, Findings, dns_failure, error, fail, ok, warn
from mailseal.spf.lookup import IPAddress, address_type, addresses, reverse_name

#: PTR names followed forward (RFC 7208 §4.6.4 uses the same cap for ptr).
MAX_PTR_NAMES: Final = 10


def check_rdns(
    ip: IPAddress, helo: str | None, domain: str
) -> Generator[Question, Answer, Findings]:
    """rdns.ptr, rdns.fcrdns and (with a HELO name) rdns.helo for ``ip``."""
    want = (helo or f"mail.{domain}").lower().rstrip(".")
    rev = reverse_name(ip)
    answer = yield Question(rev, RdType.PTR)
    if answer.status.is_temporary:
        return [error("rdns.ptr", f"could not look up the PTR of {ip}: {dns_failure(answer)}")]
    names = [n.lower().rstrip(".") for n in answer.records[:MAX_PTR_NAMES]] if answer.ok else []
    rdtype = address_type(ip).value
    if not names:
        return [
            fail(
                "rdns.ptr",
                f"{ip} has no PTR record: many receivers (Gmail, Outlook, most spam filters) "
                "refuse or spam-folder mail from an address without reverse DNS",
                f"ask the owner of {ip} (your hosting provider's control panel or support) "
                f"to set: {rev}. IN PTR {want}. (and publish {want}. IN {rdtype} {ip})",
            )
        ]
    findings: Findings = [ok("rdns.ptr", f"{ip} has PTR {', '.join(names)}")]
    confirmed: list[str] = []
    seen: dict[str, list[str]] = {}
    failures: list[Answer] = []
    for name in names:
        forward = yield Question(name, address_type(ip))
        if forward.status.is_temporary:
            failures.append(forward)
            continue
        found = addresses(forward)
        seen[name] = [str(a) for a in found]
        if ip in found:
            confirmed.append(name)
    if confirmed:
        findings.append(
            ok("rdns.fcrdns", f"forward-confirmed: {confirmed[0]} resolves back to {ip}")
        )
    elif failures:
        findings.append(error("rdns.fcrdns", f"could not confirm: {dns_failure(failures[0])}"))
    else:
        name = names[0]
        now = ", ".join(seen.get(name, [])) or "nothing"
        findings.append(
            fail(
                "rdns.fcrdns",
                f"reverse DNS is not forward-confirmed: {ip} has PTR {name}, but {name} "
                f"resolves to {now}, not {ip}; receivers treat the name as unverified",
                f"publish: {name}. IN {rdtype} {ip} (or ask the owner of {ip} to set its PTR to "
                "a name of yours that resolves to it)",
            )
        )
    if helo is not None:
        findings.append(_helo(helo, ip, names, confirmed))
    return findings


def _helo(helo: str, ip: IPAddress, names: list[str], confirmed: list[str]) -> Finding:
    name = helo.lower().rstrip(".")
    if name in confirmed:
        return ok("rdns.helo", f"HELO {helo} is the forward-confirmed PTR name of {ip}")
    target = (confirmed or names)[0]
    if name in names:
        return ok(
            "rdns.helo",
            f"HELO {helo} is the PTR name of {ip} (not forward-confirmed: see rdns.fcrdns)",
        )
    return warn(
        "rdns.helo",
        f"HELO {helo} is not the PTR name of {ip} ({', '.join(names)}): receivers see a "
        "server that does not say who it is",
        f"postconf -e 'smtp_helo_name = {target}' && postfix reload (or set the PTR of {ip} "
        f"to {name})",
    )


__all__ = ["MAX_PTR_NAMES", "check_rdns"]
