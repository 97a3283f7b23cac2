"""TLS for mail to the domain: MTA-STS (RFC 8461) and TLS reporting (RFC 8460) records.

Only the DNS side is checked. MTA-STS also needs its policy file served over
HTTPS at ``https://mta-sts.DOMAIN/.well-known/mta-sts.txt``; fetching it is
left to a web check, so an ``ok`` here means "the record is right".
"""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import Final

from mailseal.dns.types import Answer, Question, RdType, Status
from mailseal.doctor.findings import Findings, dns_failure, error, fail, ok, publish_txt, warn

# RFC 8461 §3.1: sts-id = 1*32(ALPHA / DIGIT)
_STS_ID: Final = re.compile(r"[A-Za-z0-9]{1,32}\Z")


def _fields(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(";"):
        key, eq, value = part.strip().partition("=")
        if eq:
            out.setdefault(key.strip().lower(), value.strip())
    return out


def check_mta_sts(domain: str, mx_host: str | None = None) -> Generator[Question, Answer, Findings]:
    """``_mta-sts.DOMAIN`` TXT: one ``v=STSv1; id=...;`` record (RFC 8461 §3.1)."""
    name = f"_mta-sts.{domain}"
    host = mx_host or f"mail.{domain}"
    publish = (
        publish_txt(name, "v=STSv1; id=1") + " and serve "
        f"https://mta-sts.{domain}/.well-known/mta-sts.txt containing: "
        f"version: STSv1 / mode: testing / mx: {host} / max_age: 604800 (one per line)"
    )
    answer = yield Question(name, RdType.TXT)
    if answer.status.is_temporary:
        return [error("mta-sts", f"could not look up MTA-STS: {dns_failure(answer)}")]
    records = [t for t in _texts(answer) if t.startswith("v=STSv1")]
    if not records:
        return [
            warn(
                "mta-sts",
                f"no MTA-STS record at {name}: senders cannot insist on TLS to your MX, so a "
                "network attacker can downgrade mail to you to plain text (RFC 8461)",
                publish,
            )
        ]
    if len(records) > 1:
        return [
            fail(
                "mta-sts",
                f"{len(records)} MTA-STS records at {name}: senders then ignore MTA-STS "
                "(RFC 8461 §3.1)",
                "keep one: " + publish,
            )
        ]
    sts_id = _fields(records[0]).get("id", "")
    if not _STS_ID.match(sts_id):
        return [
            fail(
                "mta-sts",
                f"MTA-STS record {records[0]!r} has no valid id= (1 to 32 letters and digits, "
                "RFC 8461 §3.1): senders ignore it",
                publish_txt(name, "v=STSv1; id=1") + " (change id= whenever the policy changes)",
            )
        ]
    return [ok("mta-sts", f"MTA-STS: {records[0]} (the HTTPS policy file is not checked here)")]


def check_tls_rpt(domain: str) -> Generator[Question, Answer, Findings]:
    """``_smtp._tls.DOMAIN`` TXT: one ``v=TLSRPTv1; rua=...`` record (RFC 8460 §3)."""
    name = f"_smtp._tls.{domain}"
    publish = publish_txt(name, f"v=TLSRPTv1; rua=mailto:tlsrpt@{domain}")
    answer = yield Question(name, RdType.TXT)
    if answer.status.is_temporary:
        return [error("tls-rpt", f"could not look up TLS-RPT: {dns_failure(answer)}")]
    records = [t for t in _texts(answer) if t.startswith("v=TLSRPTv1")]
    if not records:
        return [
            warn(
                "tls-rpt",
                f"no TLS-RPT record at {name}: nobody tells you when senders fail to reach "
                "your MX over TLS (RFC 8460)",
                publish,
            )
        ]
    if len(records) > 1:
        return [
            fail(
                "tls-rpt",
                f"{len(records)} TLS-RPT records at {name}: senders then send no reports "
                "(RFC 8460 §3)",
                "keep one: " + publish,
            )
        ]
    rua = _fields(records[0]).get("rua", "")
    uris = [u.strip() for u in rua.split(",") if u.strip()]
    if not uris or not all(u.startswith(("mailto:", "https:")) for u in uris):
        return [
            fail(
                "tls-rpt",
                f"TLS-RPT record {records[0]!r} needs rua= with mailto: or https: URIs "
                "(RFC 8460 §3): no reports are sent",
                publish,
            )
        ]
    return [ok("tls-rpt", f"TLS-RPT: {records[0]}")]


def _texts(answer: Answer) -> tuple[str, ...]:
    return answer.records if answer.status is Status.OK else ()


__all__ = ["check_mta_sts", "check_tls_rpt"]
