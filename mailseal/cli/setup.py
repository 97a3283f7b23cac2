"""``mailseal setup``: the tutorial's DKIM setup in one idempotent command, and the DNS records."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import click

from mailseal.cli.common import Failure, dns_options, make_resolver
from mailseal.cli.genkey import domain_option, selector_option
from mailseal.dkim.keys import generate_key
from mailseal.dkim.publish import KeyTxtRecord
from mailseal.dmarc.record import DmarcError, report_uri
from mailseal.dns.drive import drive
from mailseal.keys.files import user_ids
from mailseal.setup.apply import apply, paths_of, preflight, snapshot
from mailseal.setup.layout import DEFAULT_SOCKET, USER, Layout, postfix_milter
from mailseal.setup.plan import Plan, Request, SetupError, make_plan, missing_keys
from mailseal.setup.records import (
    POSTFIX_NOTES,
    Discovery,
    Publish,
    advice,
    discover,
    postfix_lines,
)

EXAMPLE: Final = """\b
Examples:
  mailseal setup example.com --ip 192.0.2.10
  mailseal setup example.com --ip 192.0.2.10 --ip 2001:db8::10 --ed25519
  mailseal setup example.org            # a second domain: appended to the tables
  mailseal setup example.com --root /tmp/try --dry-run
"""


class Refused(Failure):
    """Setup would contradict or lose something that is there: exit 1, nothing changed."""

    exit_code = 1


def _ips(values: tuple[str, ...]) -> tuple[str, ...]:
    out = []
    for value in values:
        try:
            out.append(str(ipaddress.ip_address(value.strip())))
        except ValueError:
            raise click.BadParameter(
                f"{value!r} is not an IP address (e.g. 192.0.2.10 or 2001:db8::10)",
                param_hint="'--ip'",
            ) from None
    return tuple(dict.fromkeys(out))


_SOCKET: Final = re.compile(r"(?:(?:local|unix):)?/\S+|inet6?:[A-Za-z0-9-]+(?:@\S+)?", re.I)


def _socket(value: str) -> str:
    if not _SOCKET.fullmatch(value.strip()):
        raise click.BadParameter(
            f"{value!r} is not a milter socket (inet:PORT@HOST, inet6:PORT@HOST, local:/path)",
            param_hint="'--socket'",
        )
    return value.strip()


def _owner(warnings: list[str]) -> tuple[int, int] | None:
    if os.geteuid() != 0:
        warnings.append(
            "not running as root: files keep this user as owner (as root, setup gives the keys "
            f"to the {USER} user)"
        )
        return None
    ids = user_ids(USER)
    if ids is None:
        warnings.append(
            f"there is no {USER} user for UserID {USER}:{USER}: create it "
            f"(adduser --system --group {USER}) and run setup again to hand it the keys"
        )
    return ids


def _plan(request: Request) -> Plan:
    state = snapshot(paths_of(request))
    new_keys = {
        spec.private: generate_key(spec.key_type, 2048) for spec in missing_keys(request, state)
    }
    return make_plan(request, state, new_keys)


def _discover(request: Request, hostname: str | None, dns: tuple[Any, ...]) -> Discovery:
    zones, servers, timeout = dns
    resolver = make_resolver(zones, servers, timeout)
    return asyncio.run(drive(discover(request.domain, request.ips, hostname), resolver))


def _text_report(
    request: Request,
    plan: Plan,
    dry_run: bool,
    records: list[Publish],
    found: Discovery,
    warnings: list[str],
) -> list[str]:
    domain, layout = request.domain, request.layout
    lines = []
    verb = "would make" if dry_run else "made"
    if plan.changes:
        lines.append(f"mailseal setup {domain}: {verb} {len(plan.actions)} change(s)")
        lines += [f"  {a.describe()}" for a in plan.actions]
    else:
        lines.append(f"mailseal setup {domain}: nothing to change (every file is already right)")
    lines += [f"  warning: {w}" for w in warnings]
    lines += ["", f"Check the configuration: mailseal milter -n -x {layout.config}", ""]
    lines.append("Postfix: add to /etc/postfix/main.cf, then run `postfix reload`:")
    lines += [f"  {line}" for line in postfix_lines(postfix_milter(request.socket))]
    lines += [f"  # {note}" for note in POSTFIX_NOTES]
    lines += ["", f"DNS records to publish for {domain}:"]
    for record in records:
        if record.rdtype == "PTR":
            lines.append(f"  PTR    ask your hosting provider: {record.name} PTR {record.value}.")
        else:
            lines.append(f'  {record.kind:<6} {record.name} TXT "{record.value}"')
        if record.zone_text:
            lines.append("         in a zone file (as opendkim-genkey writes it):")
            lines += [f"           {z}" for z in record.zone_text.rstrip("\n").split("\n")]
        lines += [f"         {note}" for note in record.notes]
    if found.failures:
        lines.append(
            "  (DNS lookups that failed, facts unknown: " + "; ".join(found.failures) + ")"
        )
    lines += [
        "",
        f"When the records are published: mailseal testkey -x {layout.config}"
        f" && mailseal dmarc lint {domain}",
    ]
    return lines


@click.command("setup", context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXAMPLE)
@click.argument("domain")
@click.option("--selector", default="mail", show_default=True, help="The DKIM selector.")
@click.option(
    "--ip",
    "ips",
    multiple=True,
    metavar="IP",
    help="This server's public address (repeatable): SPF, TrustedHosts and PTR advice.",
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    help="Put everything here instead of /etc/opendkim (opendkim.conf too).",
)
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where opendkim.conf goes (default /etc/opendkim.conf, or ROOT/opendkim.conf).",
)
@click.option("--ed25519", is_flag=True, help="Also make an Ed25519 key (SELECTOR-ed25519).")
@click.option(
    "--socket",
    default=DEFAULT_SOCKET,
    show_default=True,
    help="The milter socket (opendkim.conf Socket).",
)
@click.option("--hostname", help="The mail host's name for PTR (default: the first MX).")
@click.option("--rua", metavar="ADDRESS", help="DMARC aggregate reports (default postmaster@).")
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the changes and records as JSON.")
@dns_options
def setup_command(
    domain: str,
    selector: str,
    ips: tuple[str, ...],
    root: Path | None,
    config: Path | None,
    ed25519: bool,
    socket: str,
    hostname: str | None,
    rua: str | None,
    dry_run: bool,
    as_json: bool,
    zones: tuple[Path, ...],
    dns_servers: tuple[str, ...],
    dns_timeout: float,
) -> None:
    """Set up DKIM signing for DOMAIN as the Postfix + OpenDKIM tutorial does, in one go.

    Writes (or completes) opendkim.conf with the tutorial's settings,
    TrustedHosts, KeyTable, SigningTable and the key(s) under
    /etc/opendkim/keys/DOMAIN (keys 0600 and their directory 0700, owned by
    the opendkim user); then prints the Postfix main.cf lines and the DNS
    records to publish: DKIM, SPF, DMARC (and its path to enforcement), and
    the PTR record to ask the hosting provider for.

    Safe to re-run: existing keys are kept, settings and table lines are
    merged in, changed files are kept as dated backups, and a second run
    changes nothing and says so. A second domain is appended to the tables.
    OpenDKIM 2.11 signs with the RSA key only (--ed25519 adds a KeyTable
    line it cannot read: use mailseal milter).

    Exit status: 0 done (or nothing to do); 1 setup would contradict what is
    there (nothing changed); 2 usage errors or an unwritable directory.
    """
    name = domain_option(domain, "DOMAIN")
    selector = selector_option(selector, "'--selector'")
    host = domain_option(hostname, "'--hostname'") if hostname else None
    if rua is not None:
        try:
            rua = report_uri(rua).address
        except DmarcError as exc:
            raise click.BadParameter(str(exc), param_hint="'--rua'") from None
    warnings: list[str] = []
    request = Request(
        domain=name,
        selector=selector,
        layout=Layout.at(root, config),
        ips=_ips(ips),
        ed25519=ed25519,
        socket=_socket(socket),
        owner=_owner(warnings),
    )
    if ed25519:
        warnings.append(
            "the Ed25519 KeyTable line has a fourth field (ed25519-sha256) that OpenDKIM 2.11 "
            "cannot read: sign with mailseal milter, or leave out --ed25519 for OpenDKIM"
        )
    try:
        plan = _plan(request)
        if not dry_run:
            preflight(plan.actions)
            apply(plan.actions, datetime.now())
    except SetupError as exc:
        if "cannot write" in str(exc) or "no directory" in str(exc):
            raise Failure(str(exc)) from None
        raise Refused(str(exc)) from None
    found = _discover(request, host, (zones, dns_servers, dns_timeout))
    keys = [KeyTxtRecord.for_key(key, spec.selector, name) for spec, key in plan.keys]
    records = advice(name, keys, found, request.ips, rua)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "domain": name,
                    "changed": plan.changes and not dry_run,
                    "changes": [a.describe() for a in plan.actions],
                    "warnings": warnings,
                    "postfix": postfix_lines(postfix_milter(request.socket)),
                    "records": [r.as_json() for r in records],
                    "dns_failures": list(found.failures),
                }
            )
        )
        return
    for line in _text_report(request, plan, dry_run, records, found, warnings):
        click.echo(line)


__all__ = ["setup_command"]
