"""``mailseal spf``: evaluate a domain's SPF policy for a client IP (RFC 7208)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import click

from mailseal.cli.common import Failure, dns_options, make_resolver
from mailseal.dns.drive import AsyncResolver, drive
from mailseal.dns.types import Answer, Question, Status
from mailseal.spf.eval import DEFAULT_LIMITS, SpfCheck, check_helo, check_mailfrom
from mailseal.spf.lookup import client_address
from mailseal.spf.results import Identity, SpfVerdict

#: RFC 7208 §4.6.4: "MTAs or other processors SHOULD impose a limit on the maximum
#: amount of elapsed time to evaluate check_host(). Such a limit SHOULD allow at
#: least 20 seconds. If such a limit is exceeded, the result of authorization
#: SHOULD be "temperror"."
MIN_CHECK_SECONDS = 20.0


class _Deadline:
    """Answer TIMEOUT to every question once the check has run out of time.

    The engine then ends in temperror by its own rules (and the ptr
    mechanism, %{p} and exp= give up as they do on any DNS failure), with
    its counts intact.
    """

    def __init__(self, resolver: AsyncResolver, seconds: float) -> None:
        self.resolver = resolver
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    async def ask(self, question: Question) -> Answer:
        left = self.deadline - time.monotonic()
        if left > 0:
            try:
                async with asyncio.timeout(left):
                    return await self.resolver.ask(question)
            except TimeoutError:
                pass
        detail = f"the SPF check ran out of time ({self.seconds:g} s)"
        return Answer(question, Status.TIMEOUT, detail=detail)


def _text_lines(verdict: SpfVerdict, identity: Identity) -> list[str]:
    lines = [f"{verdict.result.value} ({identity.value} {verdict.domain or '-'})"]
    if verdict.mechanism is not None:
        lines.append(f"mechanism: {verdict.mechanism}")
    if verdict.explanation is not None:
        lines.append(f"explanation: {verdict.explanation}")
    lines.append(f"reason: {verdict.reason}")
    lines.append(
        f"lookups: {verdict.lookups} of {DEFAULT_LIMITS.lookups}, "
        f"void: {verdict.void_lookups} of {DEFAULT_LIMITS.void_lookups}"
    )
    if verdict.record is not None:
        lines.append(f"record: {verdict.record}")
    return lines


@click.command("spf")
@click.option("--ip", "ip", required=True, metavar="IP", help="The SMTP client's address.")
@click.option(
    "--sender",
    metavar="ADDR",
    help="The MAIL FROM address; '' is the null sender, checked as postmaster@HELO.",
)
@click.option("--helo", metavar="NAME", help="The HELO/EHLO name the client gave.")
@click.option(
    "--identity",
    type=click.Choice([i.value for i in Identity]),
    default=Identity.MAILFROM.value,
    show_default=True,
    help="Check the MAIL FROM address or the HELO name (RFC 7208 §2.3, §2.4).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@dns_options
def spf_command(
    ip: str,
    sender: str | None,
    helo: str | None,
    identity: str,
    as_json: bool,
    zones: tuple[Any, ...],
    dns_servers: tuple[str, ...],
    dns_timeout: float,
) -> None:
    """Check whether IP may send mail for a sender's domain (RFC 7208 SPF).

    Prints the result (pass, fail, softfail, neutral, none, temperror,
    permerror), the mechanism that decided it, the domain's explanation on
    fail, and how many DNS-querying terms it took (at most 10 are allowed).

    Exit status: 0 whatever the result, 2 on usage errors.
    """
    try:
        address = client_address(ip)
    except ValueError:
        raise Failure(f"--ip {ip!r} is not an IPv4 or IPv6 address") from None
    which = Identity(identity)
    if which is Identity.HELO:
        if not helo:
            raise Failure("--identity helo needs --helo NAME")
    elif sender is None:
        raise Failure("--sender ADDR is required (use --sender '' for the null sender)")
    elif sender == "" and not helo:
        raise Failure("the null sender is checked as postmaster@HELO: give --helo NAME")
    resolver = make_resolver(zones, dns_servers, dns_timeout)
    receiver = socket.gethostname() or "unknown"  # %{r} in explanations
    now = int(time.time())  # %{t} in explanations
    check: SpfCheck
    if which is Identity.HELO:
        assert helo is not None
        check = check_helo(address, helo, receiver=receiver, now=now)
    else:
        assert sender is not None
        check = check_mailfrom(address, sender, helo, receiver=receiver, now=now)
    budget = max(MIN_CHECK_SECONDS, 4 * dns_timeout)
    verdict = asyncio.run(drive(check, _Deadline(resolver, budget)))
    if as_json:
        click.echo(json.dumps(verdict.to_json()))
    else:
        for line in _text_lines(verdict, which):
            click.echo(line)
