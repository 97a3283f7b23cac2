"""``mailseal check``: the domain doctor, a local Mail Tester with the fix for every deduction."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import secrets
import time
from pathlib import Path
from typing import Any

import click

from mailseal.cli.common import Failure, dns_options, make_resolver
from mailseal.dkim.sign import SignerSpec, sign_message
from mailseal.dmarc.psl import org_domain
from mailseal.doctor.checks import CheckOptions, conclude, domain_to_check, plan
from mailseal.doctor.dkimcheck import Selector, Source
from mailseal.doctor.dnsbl import DEFAULT_DNSBLS
from mailseal.doctor.findings import Part, Status
from mailseal.doctor.local import DEFAULT_CONFIG, configured_selectors
from mailseal.doctor.runner import BUDGET_FACTOR, run_parts
from mailseal.doctor.score import MAX_SCORE, Report, score
from mailseal.doctor.send import SENDMAIL, SendError, send_sendmail, send_smtp
from mailseal.doctor.testmail import build_test_message
from mailseal.errors import SigningError
from mailseal.keys.names import selector_name
from mailseal.spf.lookup import IPAddress, client_address, name_problem, to_ascii

_STYLES = {
    Status.OK: "green",
    Status.WARN: "yellow",
    Status.FAIL: "bold red",
    Status.ERROR: "magenta",
}
SMTP_PORT = 25


# -- parsing the arguments -------------------------------------------------


def parse_domain(text: str, what: str = "DOMAIN") -> str:
    """A domain argument as a lower-case A-label; a clean exit 2 if it is none."""
    if "@" in text:
        raise Failure(f"{what} {text!r} is an address: give its domain ({text.rpartition('@')[2]})")
    try:
        return domain_to_check(text)
    except ValueError as exc:
        raise Failure(f"{what}: {exc}") from None


def parse_ip(text: str | None) -> IPAddress | None:
    if text is None:
        return None
    try:
        return client_address(text)
    except ValueError:
        raise Failure(f"--ip {text!r} is not an IPv4 or IPv6 address") from None


def parse_name(text: str | None, option: str) -> str | None:
    if text is None:
        return None
    try:
        name = to_ascii(text.strip())
    except ValueError as exc:
        raise Failure(f"{option} {text!r}: {exc}") from None
    problem = name_problem(name) or (None if "." in name else "not a fully qualified name")
    if problem:
        raise Failure(f"{option} {text!r} is not a host name ({problem})")
    return name


def parse_selectors(texts: tuple[str, ...], domain: str) -> tuple[Selector, ...]:
    out: list[Selector] = []
    for text in texts:
        try:
            sel = selector_name(text.strip()).lower()
        except ValueError as exc:
            raise Failure(f"--selector: {exc}") from None
        if name_problem(f"{sel}._domainkey.{domain}"):
            raise Failure(f"--selector {text!r} is too long for {domain}")
        if sel not in [s.name for s in out]:
            out.append(Selector(sel))
    return tuple(out)


def parse_address(text: str, option: str) -> str:
    local, at, dom = text.strip().rpartition("@")
    if not at or not local or " " in text.strip():
        raise Failure(f"{option} {text!r} is not a mail address (user@example.com)")
    return f"{local}@{parse_domain(dom, option)}"


def blocklists(
    dnsbls: tuple[str, ...], zones: tuple[Path, ...], notes: list[str]
) -> tuple[str, ...]:
    """The --dnsbl zones; else the default lists, except offline (--zone), where none."""
    if dnsbls:
        return tuple(parse_name(z, "--dnsbl") or "" for z in dnsbls)
    if zones:
        notes.append("blocklists are not asked with --zone (name one in the zone files: --dnsbl)")
        return ()
    return DEFAULT_DNSBLS


def parse_smtp(text: str) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT``, ``[IPv6]:PORT`` or a bare IPv6 address; port 25 by default."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if not host:
        raise Failure(f"--smtp {text!r}: give HOST or HOST:PORT")
    if not port:
        return host, SMTP_PORT
    if not (port.isdigit() and 0 < int(port) < 65536):
        raise Failure(f"--smtp {text!r}: the port must be a number 1-65535")
    return host, int(port)


# -- running ---------------------------------------------------------------


def run_report(domain: str, parts: list[Part], resolver: Any, dns_timeout: float) -> Report:
    """Run the parts; exit 2 (Failure) when DNS could not be reached at all."""
    result = asyncio.run(run_parts(parts, resolver, BUDGET_FACTOR * dns_timeout))
    if not result.reached:
        raise Failure(
            f"cannot reach DNS: {_why(result.failure)} (check the "
            "network and /etc/resolv.conf, or name a server with --dns-server HOST[:PORT])"
        )
    return score(domain, conclude(domain, result.findings))


def _why(failure: str) -> str:
    return failure.removeprefix("no DNS server reachable: ") or "no answer from any server"


# -- output ----------------------------------------------------------------


def render(report: Report, title: str, notes: list[str], as_json: bool) -> None:
    """Print the report: one JSON object, or a table, the score and every fix."""
    if as_json:
        click.echo(json.dumps(report.to_json()))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False, soft_wrap=False)
    table = Table(title=title, title_justify="left", show_lines=False, expand=False)
    table.add_column("status", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("finding", overflow="fold")
    table.add_column("points", justify="right", no_wrap=True)
    for f in report.findings:
        points = f"-{f.deduction:g}" if f.deduction else ""
        table.add_row(
            Text(f.status.value, style=_STYLES[f.status]), f.check, Text(f.message), points
        )
    console.print(table)
    for note in notes:
        click.echo(f"note: {note}")
    click.echo(f"\nScore: {report.score:g}/{MAX_SCORE:g}")
    _fixes(report)


def _fixes(report: Report) -> None:
    """Each deduction, its reason and its fix, as plain lines a record can be copied from."""
    costly = [f for f in report.findings if f.deduction > 0]
    free = [f for f in report.findings if f.deduction == 0 and f.fix and f.status is not Status.OK]
    if costly:
        click.echo("\nDeductions, and how to fix each:")
        for f in costly:
            click.echo(f"  -{f.deduction:g}  {f.check} ({f.status.value}): {f.message}")
            click.echo(f"        fix: {f.fix}")
    if free:
        click.echo("\nNot counted, but worth doing:")
        for f in free:
            click.echo(f"  {f.check} ({f.status.value}): {f.message}")
            click.echo(f"        fix: {f.fix}")
    errors = [f for f in report.findings if f.status is Status.ERROR and not f.fix]
    if errors:
        click.echo("\nCould not check (not counted):")
        for f in errors:
            click.echo(f"  {f.check}: {f.message}")


# -- the command -------------------------------------------------------------


@click.command("check")
@click.argument("domain")
@click.option(
    "--ip", metavar="IP", help="The sending server's address: SPF, reverse DNS, blocklists."
)
@click.option("--helo", metavar="NAME", help="The name the server gives in HELO/EHLO.")
@click.option(
    "--selector",
    "selectors",
    multiple=True,
    metavar="S",
    help="A DKIM selector to check (repeatable); default: the KeyTable's, else common ones.",
)
@click.option(
    "--dnsbl",
    "dnsbls",
    multiple=True,
    metavar="ZONE",
    help=f"A DNS blocklist to ask about --ip (repeatable); default: {', '.join(DEFAULT_DNSBLS)}.",
)
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_CONFIG,
    show_default=True,
    metavar="FILE",
    help="opendkim.conf whose KeyTable names the selectors (and keys for --send-test).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--send-test", metavar="ADDR", help="Also send a signed test message to ADDR.")
@click.option(
    "--from", "sender", metavar="ADDR", help="The test message's sender (postmaster@DOMAIN)."
)
@click.option(
    "--smtp",
    metavar="HOST[:PORT]",
    help="Send the test message by SMTP to this server instead of through sendmail.",
)
@click.option(
    "--sendmail",
    type=click.Path(dir_okay=False, path_type=Path),
    default=SENDMAIL,
    show_default=True,
    help="The sendmail program the test message goes through.",
)
@dns_options
def check_command(
    domain: str,
    ip: str | None,
    helo: str | None,
    selectors: tuple[str, ...],
    dnsbls: tuple[str, ...],
    config: Path,
    as_json: bool,
    send_test: str | None,
    sender: str | None,
    smtp: str | None,
    sendmail: Path,
    zones: tuple[Path, ...],
    dns_servers: tuple[str, ...],
    dns_timeout: float,
) -> None:
    """Check DOMAIN's mail setup as receivers see it, and score it out of 10.

    MX and addresses; SPF (one record, syntax, lookups used of 10, +all/?all,
    whether --ip may send); DKIM keys (size, t=y, revoked, syntax); DMARC
    (policy, alignment, report authorization); with --ip, reverse DNS (PTR,
    forward-confirmed, HELO name) and DNS blocklists; MTA-STS and TLS-RPT.
    Every deduction comes with the record or command that fixes it.

    Exit status: 0 when no check fails, 1 when some do, 2 on usage errors or
    when DNS cannot be reached at all.
    """
    name = parse_domain(domain)
    address = parse_ip(ip)
    helo_name = parse_name(helo, "--helo")
    wanted = parse_selectors(selectors, name)
    recipient = parse_address(send_test, "--send-test") if send_test else None
    mail_from = parse_address(sender, "--from") if sender else f"postmaster@{name}"
    relay = parse_smtp(smtp) if smtp else None
    local = configured_selectors(config, name)
    # A given selector the KeyTable also names is checked against its private key.
    chosen = tuple(_with_keys(wanted, local.selectors)) if wanted else local.selectors
    notes = list(local.notes) if not wanted else []
    if not wanted and local.selectors:
        notes.append(f"DKIM selectors from {config}: {', '.join(s.name for s in chosen)}")
    zones_checked = blocklists(dnsbls, zones, notes if address is not None else [])
    if address is not None and not address.is_global and not _documentation(address):
        notes.append(
            f"--ip {address} is not a public address: receivers see the address your mail "
            "leaves from (the one your provider's PTR is for)"
        )
    if address is None:
        notes.append(
            "give --ip (and --helo) to check SPF for your server, reverse DNS and blocklists"
        )
    resolver = make_resolver(zones, dns_servers, dns_timeout)
    options = CheckOptions(name, address, helo_name, chosen, zones_checked)
    report = run_report(name, plan(options, org_domain), resolver, dns_timeout)
    render(report, f"mailseal check {name}", notes, as_json)
    if recipient is not None:
        keys = list(chosen)
        said = _send(name, mail_from, recipient, keys, relay, sendmail)
        click.echo(said, err=as_json)
    raise SystemExit(1 if report.failed else 0)


#: Documentation addresses (RFC 5737, RFC 3849): examples, not private networks.
_EXAMPLES = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)


def _documentation(address: IPAddress) -> bool:
    return any(address.version == n.version and address in n for n in _EXAMPLES)


def _with_keys(wanted: tuple[Selector, ...], known: tuple[Selector, ...]) -> list[Selector]:
    keys = {s.name: s for s in known}
    return [keys.get(s.name, s) for s in wanted]


def _send(
    domain: str,
    sender: str,
    recipient: str,
    selectors: list[Selector],
    relay: tuple[str, int] | None,
    sendmail: Path,
) -> str:
    now = int(time.time())
    message = build_test_message(domain, sender, recipient, now, secrets.token_hex(8))
    specs = [
        SignerSpec(key=s.key, domain=domain, selector=s.name)
        for s in selectors
        if s.key is not None and s.source is Source.CONFIG
    ]
    try:
        fields = sign_message(message, specs, now) if specs else []
    except SigningError as exc:
        raise Failure(f"cannot sign the test message: {exc}") from None
    signed = b"".join(f + b"\r\n" for f in fields) + message
    try:
        if relay is not None:
            how = send_smtp(signed, sender, recipient, *relay)
        else:
            how = send_sendmail(signed, sender, sendmail)
    except SendError as exc:
        raise Failure(f"the test message was not sent: {exc}") from None
    if specs:
        signed_by = "signed here with " + ", ".join(f"d={domain} s={s.selector}" for s in specs)
    else:
        signed_by = (
            "not signed here (no readable KeyTable key for the domain): the MTA's DKIM "
            "milter is expected to sign it"
        )
    return (
        f"\nTest message from {sender} to {recipient} {how}; {signed_by}.\n"
        "When it arrives, save it with its header fields and run: mailseal inspect FILE"
    )


__all__ = ["check_command", "parse_domain", "render", "run_report"]
