"""The domain doctor's plan: which check areas run for a domain, and what follows from them.

:func:`plan` lays the checks out as :class:`~mailseal.doctor.findings.Part`
values, every probe independent of the others so a shell can ask all their
questions at once (see :mod:`mailseal.doctor.runner`):

=========  ===============================================  ==========================
area       checks                                           module
=========  ===============================================  ==========================
mx         ``mx``, ``mx.address``                           :mod:`.mx`
spf        ``spf.record``, ``spf.all``, ``spf.lookups``,    :mod:`.spfcheck`
           ``spf.ip`` and ``spf.helo`` (with ``--ip``)
dkim       ``dkim.key``, ``dkim.size``, ``dkim.testing``,   :mod:`.dkimcheck`
           ``dkim.rsa``, ``dkim.selectors``
dmarc      ``dmarc.record``, ``dmarc.syntax``,              :mod:`.dmarccheck`
           ``dmarc.policy``, ``dmarc.rua``
rdns       ``rdns.ptr``, ``rdns.fcrdns``, ``rdns.helo``     :mod:`.rdns` (``--ip``)
dnsbl      ``dnsbl``, one per list                          :mod:`.dnsbl` (``--ip``)
mta-sts    ``mta-sts``                                      :mod:`.transport`
tls-rpt    ``tls-rpt``                                      :mod:`.transport`
=========  ===============================================  ==========================

:func:`conclude` then adds ``dmarc.alignment``: can mail from the domain pass
DMARC at all, through an aligned DKIM signature (a usable key at ``d=DOMAIN``)
or aligned SPF (MAIL FROM at the domain, its policy passing)?
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mailseal.dmarc.lint import OrgDomain
from mailseal.doctor.dkimcheck import Selector, dkim_part
from mailseal.doctor.dmarccheck import check_dmarc
from mailseal.doctor.dnsbl import DEFAULT_DNSBLS, check_dnsbl
from mailseal.doctor.findings import (
    Finding,
    Findings,
    Part,
    Probe,
    Status,
    error,
    fail,
    has_fact,
    ok,
    warn,
)
from mailseal.doctor.mx import check_mx
from mailseal.doctor.rdns import check_rdns
from mailseal.doctor.spfcheck import check_helo_name, check_ip, check_record
from mailseal.doctor.transport import check_mta_sts, check_tls_rpt
from mailseal.keys.names import domain_name
from mailseal.spf.lookup import IPAddress


def domain_to_check(text: str) -> str:
    """``text`` as a lower-case A-label host-name domain of two labels or more; ValueError if not.

    Stricter than DNS (RFC 1035 §2.3.1 letters, digits, hyphens; "_" allowed),
    as mail domains are, so every check (DMARC's report address, SPF) can use it.
    """
    name = domain_name(text)
    if "." not in name:
        raise ValueError(f"{text!r} is a single label, not a mail domain (e.g. example.com)")
    return name


@dataclass(frozen=True, slots=True)
class CheckOptions:
    """What ``mailseal check`` was asked: the domain (lower-case A-label) and its server."""

    domain: str
    ip: IPAddress | None = None  # the sending server's address
    helo: str | None = None  # the name it gives in HELO/EHLO
    selectors: tuple[Selector, ...] = ()  # none: the common ones
    dnsbls: tuple[str, ...] = DEFAULT_DNSBLS


def plan(options: CheckOptions, org_domain: OrgDomain) -> list[Part]:
    """Every check area for ``options.domain``, in report order."""
    d, ip, helo = options.domain, options.ip, options.helo
    spf: list[Probe] = [check_record(d, ip)]
    if ip is not None:
        spf.append(check_ip(d, ip, helo))
        if helo:
            spf.append(check_helo_name(ip, helo))
    parts = [
        Part("mx", (check_mx(d, helo, str(ip) if ip else None),)),
        Part("spf", tuple(spf)),
        dkim_part(d, options.selectors),
        Part("dmarc", (check_dmarc(d, org_domain),)),
    ]
    if ip is not None:
        parts.append(Part("rdns", (check_rdns(ip, helo, d),)))
        parts.append(Part("dnsbl", tuple(check_dnsbl(ip, zone) for zone in options.dnsbls)))
    parts.append(Part("mta-sts", (check_mta_sts(d, helo),)))
    parts.append(Part("tls-rpt", (check_tls_rpt(d),)))
    return parts


def conclude(domain: str, findings: Sequence[Finding]) -> Findings:
    """The findings with ``dmarc.alignment`` placed after the other DMARC ones."""
    out = list(findings)
    alignment = _alignment(domain, out)
    if alignment is None:
        return out
    last = max((i for i, f in enumerate(out) if f.check.startswith("dmarc.")), default=len(out) - 1)
    out.insert(last + 1, alignment)
    return out


def _alignment(domain: str, findings: list[Finding]) -> Finding | None:
    if not has_fact(findings, "dmarc:present"):
        return None
    dkim = has_fact(findings, "dkim:usable")
    spf_checks = ("spf.record", "spf.lookups", "spf.ip")
    spf = any(f.check == "spf.record" and f.status is Status.OK for f in findings) and not any(
        f.check in spf_checks and f.status is Status.FAIL for f in findings
    )
    if dkim and spf:
        return ok(
            "dmarc.alignment",
            f"mail signed with d={domain} and sent with MAIL FROM @{domain} passes DMARC "
            "either way",
        )
    if dkim:
        return ok(
            "dmarc.alignment",
            f"DMARC can pass through DKIM (d={domain}); SPF does not help (see spf.*)",
        )
    unknown = any(
        f.status is Status.ERROR and f.check.startswith(("dkim.", "spf.")) for f in findings
    )
    setup = f"mailseal setup -d {domain} (a key, the milter's tables, the record to publish)"
    if spf:
        if unknown:
            return None
        return warn(
            "dmarc.alignment",
            "only SPF can align: forwarded mail keeps your From but not your IP, so it fails "
            f"DMARC; sign with DKIM d={domain} (no usable key found)",
            f"sign outgoing mail with d={domain}: {setup}",
        )
    if unknown:
        return error("dmarc.alignment", "cannot tell whether mail can pass DMARC (DNS errors)")
    return fail(
        "dmarc.alignment",
        f"no mail from {domain} can pass DMARC: no usable DKIM key for d={domain} and SPF does "
        "not pass, so receivers apply the DMARC policy to all of it",
        f"sign with DKIM: {setup}; and fix SPF (see spf.*)",
    )


__all__ = ["CheckOptions", "conclude", "domain_to_check", "plan"]
