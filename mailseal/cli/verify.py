"""``mailseal verify``: check the DKIM signatures of messages."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import click

from mailseal.cli.common import (
    dns_options,
    make_resolver,
    open_input,
    read_chunks,
)
from mailseal.dkim.results import MessageVerdict
from mailseal.dkim.verify import MessageVerifier, VerifyOptions
from mailseal.dns.drive import drive
from mailseal.errors import MessageError
from mailseal.message.headers import CrlfNormalizer, MessageSplitter


async def verify_stream(
    name: str, options: VerifyOptions, now: int, resolver: Any
) -> MessageVerdict:
    """Read one input in chunks and verify it; OSError and MessageError propagate."""
    stream = open_input(name)
    try:
        norm = CrlfNormalizer()
        splitter = MessageSplitter()
        verifier: MessageVerifier | None = None
        for raw in read_chunks(stream):
            body = splitter.feed(norm.feed(raw))
            if verifier is None and splitter.fields is not None:
                verifier = MessageVerifier(splitter.fields, options, now)
            if verifier is not None and body:
                verifier.update(body)
        tail = splitter.feed(norm.finish())
        if verifier is None:
            verifier = MessageVerifier(splitter.finish(), options, now)
        if tail:
            verifier.update(tail)
    finally:
        if name != "-":
            stream.close()
    return await drive(verifier.finish(), resolver)


def _text_lines(name: str, verdict: MessageVerdict) -> list[str]:
    if not verdict.signatures:
        return [f"{name}: none (no DKIM-Signature)"]
    lines = []
    for s in verdict.signatures:
        reason = f" ({s.reason})" if s.result.value != "pass" or s.testing else ""
        lines.append(
            f"{name}: {s.result.value} d={s.domain or '?'} s={s.selector or '?'} "
            f"a={s.algorithm or '?'}{reason}"
        )
    return lines


@click.command("verify")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per input, one per line.")
@click.option(
    "--min-key-bits",
    type=click.IntRange(min=0),
    default=1024,
    show_default=True,
    help="RSA keys smaller than this give result 'policy' (RFC 8301).",
)
@click.option("--allow-sha1", is_flag=True, help="Let rsa-sha1 signatures pass (RFC 8301 forbids).")
@click.option(
    "--max-signatures",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Evaluate at most this many signatures per message.",
)
@click.option("--now", type=int, metavar="EPOCH", help="Check t= and x= against this time.")
@click.option(
    "--clock-drift",
    type=click.IntRange(min=0),
    default=300,
    show_default=True,
    metavar="SECONDS",
    help="Slack allowed for t= in the future and x= in the past.",
)
@dns_options
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
def verify_command(
    as_json: bool,
    min_key_bits: int,
    allow_sha1: bool,
    max_signatures: int,
    now: int | None,
    clock_drift: int,
    zones: tuple[Any, ...],
    dns_servers: tuple[str, ...],
    dns_timeout: float,
    files: tuple[str, ...],
) -> None:
    """Verify the DKIM signatures of each message FILE ('-' reads standard input).

    Exit status: 0 when every message has a passing signature, 1 when some
    message has none, 2 when an input could not be read or on usage errors.
    """
    resolver = make_resolver(zones, dns_servers, dns_timeout)
    options = VerifyOptions(
        min_key_bits=min_key_bits,
        allow_sha1=allow_sha1,
        max_signatures=max_signatures,
        clock_drift=clock_drift,
    )
    when = int(time.time()) if now is None else now
    status = asyncio.run(_run(files, options, when, resolver, as_json))
    raise SystemExit(status)


async def _run(
    files: tuple[str, ...], options: VerifyOptions, now: int, resolver: Any, as_json: bool
) -> int:
    unreadable = unpassed = False
    for name in files:
        try:
            verdict = await verify_stream(name, options, now, resolver)
        except (OSError, MessageError) as exc:
            unreadable = True
            text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            if as_json:
                click.echo(json.dumps({"file": name, "error": text}))
            else:
                click.echo(f"{name}: error: {text}", err=True)
            continue
        if verdict.result.value != "pass":
            unpassed = True
        if as_json:
            doc = {
                "file": name,
                "result": verdict.result.value,
                "signatures": [s.to_json() for s in verdict.signatures],
            }
            click.echo(json.dumps(doc))
        else:
            for line in _text_lines(name, verdict):
                click.echo(line)
    return 2 if unreadable else 1 if unpassed else 0
