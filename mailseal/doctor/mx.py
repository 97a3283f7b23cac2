"""Can the domain receive mail? MX records and the addresses of its mail exchangers.

Receivers check the sender's domain before accepting its mail: Postfix's
``reject_unknown_sender_domain`` refuses a MAIL FROM domain with no MX and no
address, and a null MX (RFC 7505 §4.2: "0 .") says the domain takes no mail at
all, so bounces and replies could never come back. A domain without MX but
with an address record still gets mail (the implicit MX of RFC 5321 §5.1).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Final

from mailseal.dns.types import Answer, Question, RdType, Status
from mailseal.doctor.findings import Findings, dns_failure, error, fail, ok, warn

#: Mail exchangers whose addresses are looked up (the rest are only listed).
MAX_EXCHANGES: Final = 5


def parse_mx(records: tuple[str, ...]) -> list[tuple[int, str]]:
    """``"10 mail.example.com"`` records as (preference, host), lowest preference first."""
    out: list[tuple[int, str]] = []
    for text in records:
        pref, _, host = text.partition(" ")
        try:
            out.append((int(pref), host.strip().rstrip(".").lower() or "."))
        except ValueError:
            continue
    return sorted(out)


def check_mx(
    domain: str, host_hint: str | None = None, ip: str | None = None
) -> Generator[Question, Answer, Findings]:
    """MX present (or an implicit MX), not null, every exchanger with an address."""
    host = host_hint or f"mail.{domain}"
    publish_mx = f"publish: {domain}. IN MX 10 {host}."
    answer = yield Question(domain, RdType.MX)
    if answer.status.is_temporary:
        return [error("mx", f"could not look up the MX records: {dns_failure(answer)}")]
    if answer.status is Status.NXDOMAIN:
        return [
            fail(
                "mx",
                f"{domain} does not exist in DNS (NXDOMAIN): receivers reject mail from it",
                f"check the spelling, or register {domain} and publish its records ({publish_mx})",
            )
        ]
    exchanges = parse_mx(answer.records if answer.status is Status.OK else ())
    if not exchanges:
        return (yield from _implicit(domain, publish_mx))
    hosts = [h for _, h in exchanges if h != "."]
    if not hosts:
        return [
            fail(
                "mx",
                f"{domain} has a null MX (RFC 7505): it says it accepts no mail, so receivers "
                "reject mail from it (bounces and replies could not come back)",
                f"remove the null MX record ({domain}. IN MX 0 .) and {publish_mx}",
            )
        ]
    listed = ", ".join(f"{p} {h}" for p, h in exchanges)
    findings: Findings = [ok("mx", f"MX: {listed}")]
    findings += yield from _addresses(hosts[:MAX_EXCHANGES], ip)
    return findings


def _implicit(domain: str, publish_mx: str) -> Generator[Question, Answer, Findings]:
    found: list[str] = []
    failed: list[Answer] = []
    for rdtype in (RdType.A, RdType.AAAA):
        answer = yield Question(domain, rdtype)
        if answer.status.is_temporary:
            failed.append(answer)
        elif answer.status is Status.OK:
            found.extend(answer.records)
    if found:
        return [
            warn(
                "mx",
                f"no MX record: mail to {domain} goes to its address {', '.join(found)} "
                "(implicit MX, RFC 5321 §5.1); say which host takes mail",
                publish_mx,
            )
        ]
    if failed:
        return [error("mx", f"no MX record, and {dns_failure(failed[0])}")]
    return [
        fail(
            "mx",
            f"{domain} has no MX and no A/AAAA record: it cannot receive mail, and receivers "
            "reject mail from domains that cannot (e.g. Postfix reject_unknown_sender_domain)",
            publish_mx,
        )
    ]


def _addresses(hosts: list[str], ip: str | None) -> Generator[Question, Answer, Findings]:
    findings: Findings = []
    good: list[str] = []
    for host in hosts:
        addresses: list[str] = []
        failure: Answer | None = None
        for rdtype in (RdType.A, RdType.AAAA):
            answer = yield Question(host, rdtype)
            if answer.status is Status.OK:
                addresses.extend(answer.records)
            elif answer.status.is_temporary:
                failure = answer
        if addresses:
            good.append(f"{host} {', '.join(addresses)}")
        elif failure is not None:
            findings.append(error("mx.address", f"MX host {host}: {dns_failure(failure)}"))
        else:
            address = ip or "ADDRESS-OF-THE-MAIL-SERVER"
            kind = "AAAA" if ":" in address else "A"
            findings.append(
                fail(
                    "mx.address",
                    f"MX host {host} has no A or AAAA record: mail to the domain cannot be "
                    "delivered there",
                    f"publish: {host}. IN {kind} {address}",
                )
            )
    if good:
        findings.insert(0, ok("mx.address", "MX hosts resolve: " + "; ".join(good)))
    return findings


__all__ = ["MAX_EXCHANGES", "check_mx", "parse_mx"]
