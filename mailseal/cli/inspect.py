"""``mailseal inspect``: score a received message as an online mail tester does."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from mailseal.cli.check import blocklists, render, run_report
from mailseal.cli.common import Failure, dns_options, make_resolver, open_input
from mailseal.dmarc.psl import org_domain
from mailseal.doctor.inspect import MessageFacts, domain_parts, message_part, read_facts
from mailseal.errors import MessageError
from mailseal.message.headers import MessageSplitter, to_crlf


def _read(name: str) -> bytes:
    try:
        stream = open_input(name)
        try:
            return stream.read()
        finally:
            if name != "-":
                stream.close()
    except OSError as exc:
        raise Failure(f"{name}: {exc.strerror or exc}") from None


def _notes(facts: MessageFacts) -> list[str]:
    notes: list[str] = []
    if facts.client_ip is not None:
        helo = f", HELO {facts.helo}" if facts.helo else ""
        notes.append(f"sent from {facts.client_ip}{helo} (from its {facts.where} field)")
    else:
        notes.append(
            "the message names no sending address (no Received-SPF or outside Received "
            "field): its reverse DNS, blocklists and SPF are not checked"
        )
    if facts.authres is not None:
        notes.append(f"the receiver's Authentication-Results: {facts.authres.authserv_id}")
    return notes


@click.command("inspect")
@click.argument("file", metavar="FILE")
@click.option(
    "--dnsbl",
    "dnsbls",
    multiple=True,
    metavar="ZONE",
    help="A DNS blocklist to ask about the sending address (repeatable).",
)
@click.option("--now", type=int, metavar="EPOCH", help="Check DKIM t= and x= against this time.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@dns_options
def inspect_command(
    file: str,
    dnsbls: tuple[str, ...],
    now: int | None,
    as_json: bool,
    zones: tuple[Path, ...],
    dns_servers: tuple[str, ...],
    dns_timeout: float,
) -> None:
    """Score a received message FILE ('-' reads standard input) out of 10.

    Save the message with all its header fields ("Show original" in most
    mail programs). Verifies its DKIM signatures, reads the receiver's
    Authentication-Results and Received-SPF, checks DMARC alignment of the
    From domain with the DKIM d= and the SPF domain, then runs the checks
    of `mailseal check` for the From domain and the address it came from.

    Exit status: 0 when no check fails, 1 when some do, 2 on usage errors, an
    unreadable FILE, or when DNS cannot be reached at all.
    """
    notes: list[str] = []
    zones_checked = blocklists(dnsbls, zones, notes)
    message = to_crlf(_read(file))
    splitter = MessageSplitter(max_header_bytes=max(len(message) + 1, 1))
    try:
        splitter.feed(message)
        fields = splitter.finish()
    except MessageError as exc:
        raise Failure(f"{file}: {exc}") from None
    if not fields:
        raise Failure(f"{file}: no header fields: save the message with its headers")
    facts = read_facts(fields)
    when = int(time.time()) if now is None else now
    resolver: Any = make_resolver(zones, dns_servers, dns_timeout)
    parts = [message_part(message, facts, when, org_domain)]
    parts += domain_parts(facts, org_domain, zones_checked)
    domain = facts.from_domain or "unknown"
    report = run_report(domain, parts, resolver, dns_timeout)
    notes = _notes(facts) + (notes if facts.client_ip is not None else [])
    render(report, f"mailseal inspect {file} (From: {domain})", notes, as_json)
    raise SystemExit(1 if report.failed else 0)


__all__ = ["inspect_command"]
