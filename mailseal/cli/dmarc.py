"""``mailseal dmarc record`` and ``mailseal dmarc lint``: build and check DMARC records."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Final

import click

from mailseal.cli.common import Failure, dns_options, make_resolver
from mailseal.cli.genkey import domain_option
from mailseal.dkim.publish import txt_json, zone_txt_line
from mailseal.dmarc.lint import LintReport, Severity, lint_domain, lint_record
from mailseal.dmarc.psl import org_domain
from mailseal.dmarc.record import DmarcError, build_record
from mailseal.dns.drive import drive
from mailseal.dns.types import Answer

POLICIES: Final = click.Choice(["none", "quarantine", "reject"], case_sensitive=False)
MODES: Final = click.Choice(["r", "s"], case_sensitive=False)

RECORD_EXAMPLE: Final = """\b
Examples:
  mailseal dmarc record example.com --rua dmarc@example.com
  mailseal dmarc record example.com -p quarantine -t --rua dmarc@example.com
  mailseal dmarc record -p reject --adkim s --aspf s --rua dmarc@example.com --json
"""
LINT_EXAMPLE: Final = """\b
Examples:
  mailseal dmarc lint example.com
  mailseal dmarc lint --record "v=DMARC1; p=quarantine; pct=50; rua=dmarc@example.com"
  mailseal dmarc lint example.com --json --dns-server 192.0.2.53
"""


@click.group(
    "dmarc",
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=RECORD_EXAMPLE.replace("Examples:", "Examples:\n  mailseal dmarc lint example.com"),
)
def dmarc_group() -> None:
    """Build DMARC records (RFC 9989) and check published ones."""


@dmarc_group.command("record", epilog=RECORD_EXAMPLE)
@click.argument("domain", required=False)
@click.option(
    "-p", "--policy", type=POLICIES, default="none", show_default=True, help="p=: the policy."
)
@click.option("--sp", type=POLICIES, help="sp=: the policy for subdomains (default: p).")
@click.option("--np", type=POLICIES, help="np=: the policy for subdomains that do not exist.")
@click.option("--adkim", type=MODES, help="adkim=: DKIM alignment, r (relaxed) or s (strict).")
@click.option("--aspf", type=MODES, help="aspf=: SPF alignment, r (relaxed) or s (strict).")
@click.option(
    "--rua", multiple=True, metavar="ADDRESS", help="rua=: aggregate reports to (repeatable)."
)
@click.option("--ruf", multiple=True, metavar="ADDRESS", help="ruf=: failure reports to.")
@click.option("--fo", metavar="OPTIONS", help="fo=: when to send failure reports (0, 1, d, s).")
@click.option("-t", "--testing", is_flag=True, help="t=y: test mode, one level less strict.")
@click.option("--psd", type=click.Choice(["y", "n", "u"]), help="psd=: Public Suffix Domain.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: name, type, value, strings.")
def record_command(
    domain: str | None,
    policy: str,
    sp: str | None,
    np: str | None,
    adkim: str | None,
    aspf: str | None,
    rua: tuple[str, ...],
    ruf: tuple[str, ...],
    fo: str | None,
    testing: bool,
    psd: str | None,
    as_json: bool,
) -> None:
    """Build a DMARC record from options: RFC 9989 tags only (no pct, rf, ri).

    Addresses may be given with or without mailto:. With DOMAIN the record's
    name (_dmarc.DOMAIN) is printed too, and report addresses outside DOMAIN
    are reminded of the authorization record they need. Remarks go to
    standard error. Exit status: 0, or 2 on usage errors.
    """
    name = domain_option(domain, "DOMAIN") if domain is not None else None
    try:
        record = build_record(
            p=policy,
            sp=sp,
            np=np,
            adkim=adkim,
            aspf=aspf,
            rua=rua,
            ruf=ruf,
            fo=fo,
            t=True if testing else None,
            psd=psd,
        )
    except DmarcError as exc:
        raise click.BadParameter(str(exc)) from None
    value = record.render()
    report = lint_record(value, name, org_domain=org_domain)
    for finding in report.findings:
        if finding.severity is not Severity.NOTE or finding.code == "external-unchecked":
            click.echo(f"mailseal dmarc: {finding.severity.value}: {finding.message}", err=True)
    if as_json:
        shape = txt_json(f"_dmarc.{name}" if name else "", value)
        shape["name"] = shape["name"] or None
        click.echo(json.dumps(shape))
    elif name:
        click.echo(zone_txt_line(f"_dmarc.{name}.", value))
    else:
        click.echo(value)


def render_report(report: LintReport) -> list[str]:
    """The report as text: the record, each finding with its fix, the corrected record."""
    where = f"_dmarc.{report.domain}" if report.domain else "record"
    lines = [f"{where}: {report.record}" if report.record is not None else f"{where}: (none)"]
    for f in report.findings:
        lines.append(f"  {f.severity.value}: {f.message} [{f.code}]")
        if f.fix:
            lines.append(f"    fix: {f.fix}")
    for name in report.authorization_records:
        lines.append(f'  to publish at the destination: {name} TXT "v=DMARC1"')
    if not report.problems:
        lines.append("  no problems found")
    if report.corrected != report.record:
        lines.append(f"corrected: {report.corrected}")
    return lines


@dmarc_group.command("lint", epilog=LINT_EXAMPLE)
@click.argument("domain", required=False)
@click.option("--record", "record_text", metavar="TEXT", help="Check this record, not DNS.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@dns_options
def lint_command(
    domain: str | None,
    record_text: str | None,
    as_json: bool,
    zones: tuple[Path, ...],
    dns_servers: tuple[str, ...],
    dns_timeout: float,
) -> None:
    """Check the DMARC record of DOMAIN (from DNS) or the one given with --record.

    Finds syntax errors, unknown tags (with the likely typo), RFC 7489 tags
    that RFC 9989 removed (pct, rf, ri; t=y is the gradual start now), bad
    report URIs, a missing rua=, and report addresses outside the domain
    whose owner has not published DOMAIN._report._dmarc.HOST. Prints the
    corrected record. With both DOMAIN and --record, DOMAIN names where the
    record will be published (for the report-address checks; no DNS asked).

    Exit status: 0 no problems (notes only); 1 problems found; 2 usage
    errors or a failed DNS lookup.
    """
    if domain is None and record_text is None:
        raise click.UsageError("give a DOMAIN to look up, or --record TEXT")
    name = domain_option(domain, "DOMAIN") if domain is not None else None
    if record_text is not None:
        report = lint_record(record_text, name, org_domain=org_domain)
    else:
        assert name is not None
        resolver = make_resolver(zones, dns_servers, dns_timeout)
        result = asyncio.run(drive(lint_domain(name, org_domain), resolver))
        if isinstance(result, Answer):
            raise Failure(
                f"cannot look up _dmarc.{name}: {result.status.value} ({result.detail}); "
                "try again later or ask another server (--dns-server)"
            )
        report = result
    if as_json:
        click.echo(json.dumps(report.as_json()))
    else:
        for line in render_report(report):
            click.echo(line)
    raise SystemExit(1 if report.problems else 0)
