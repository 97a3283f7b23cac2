"""Running the doctor against the test zones (or any zone text) without a network."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from mailseal.dmarc.psl import org_domain
from mailseal.dns.drive import AsyncResolver
from mailseal.dns.zone import ZoneResolver
from mailseal.doctor.checks import CheckOptions, conclude, plan
from mailseal.doctor.dkimcheck import Selector
from mailseal.doctor.findings import Finding, Findings, Part, Status
from mailseal.doctor.runner import run_parts
from mailseal.doctor.score import Report, score
from mailseal.spf.lookup import client_address
from tests.doctor.domains import zones


def resolver(extra: Mapping[str, str] | None = None) -> ZoneResolver:
    """The test zones, plus ``extra`` (origin -> zone text) in zones of their own."""
    r = ZoneResolver()
    for origin, text in {**zones(), **(extra or {})}.items():
        r.add_text(text, origin, source=origin)
    return r


def zone(origin: str, body: str) -> dict[str, str]:
    """A whole zone: SOA and NS, then ``body`` (relative names)."""
    head = (
        f"$ORIGIN {origin}.\n$TTL 300\n"
        f"@ IN SOA ns.{origin}. h.{origin}. ( 1 3600 600 86400 300 )\n@ IN NS ns.{origin}.\n"
    )
    return {origin: head + body}


def run_parts_sync(parts: Sequence[Part], dns: AsyncResolver) -> Findings:
    return asyncio.run(run_parts(parts, dns, 5.0)).findings


def check(
    domain: str,
    dns: AsyncResolver | None = None,
    *,
    ip: str | None = None,
    helo: str | None = None,
    selectors: Sequence[Selector] = (),
    dnsbls: Sequence[str] = ("dnsbl.example",),
) -> Report:
    options = CheckOptions(
        domain,
        client_address(ip) if ip else None,
        helo,
        tuple(selectors),
        tuple(dnsbls),
    )
    findings = run_parts_sync(plan(options, org_domain), dns or resolver())
    return score(domain, conclude(domain, findings))


def by_check(findings: Sequence[Finding], check_id: str) -> list[Finding]:
    return [f for f in findings if f.check == check_id]


def one(findings: Sequence[Finding], check_id: str, status: Status | None = None) -> Finding:
    found = [f for f in by_check(findings, check_id) if status is None or f.status is status]
    assert len(found) == 1, (check_id, status, findings)
    return found[0]
