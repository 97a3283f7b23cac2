"""``mailseal demo``: a throwaway domain, signed and verified end to end, offline."""

from __future__ import annotations

import asyncio
import email.utils
import os
import tempfile
import time
from pathlib import Path

import click

from mailseal.cli.common import Failure, make_resolver
from mailseal.dkim.keys import KeyType, generate_key, private_pem
from mailseal.dkim.sign import SignerSpec, sign_message
from mailseal.dkim.verify import VerifyOptions, verify_message
from mailseal.dns.drive import drive
from mailseal.message.headers import to_crlf

DOMAIN = "example.com"


def zone_text(domain: str, records: list[tuple[str, str]]) -> str:
    """A small master file for ``domain`` with TXT records split into <=255-byte strings."""
    lines = [
        f"$ORIGIN {domain}.",
        "$TTL 300",
        f"@ IN SOA ns1.{domain}. hostmaster.{domain}. 1 3600 600 86400 300",
        f"@ IN NS ns1.{domain}.",
        "ns1 IN A 192.0.2.53",
    ]
    for owner, value in records:
        strings = " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))
        lines.append(f"{owner} IN TXT ( {strings} )")
    return "\n".join(lines) + "\n"


def sample_message(domain: str, now: int) -> bytes:
    text = f"""From: Demo Sender <sender@{domain}>
To: Someone <someone@example.net>
Subject: mailseal demo: a signed message
Date: {email.utils.formatdate(now)}
Message-ID: <demo.{now}@{domain}>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Hello!

This message was signed by mailseal with an RSA-2048 key and an Ed25519 key,
then verified against a zone file holding the published public keys.
"""
    return to_crlf(text.encode("utf-8"))


@click.command("demo")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the demo's files here (default: a new directory under the temp dir).",
)
def demo_command(directory: Path | None) -> None:
    """Sign and verify a message for a throwaway domain, with no network needed.

    Makes an RSA-2048 and an Ed25519 key, a zone file publishing both, a
    sample message signed with both keys, and verifies it against the zone.
    The files stay in the directory printed, ready for `mailseal verify --zone`.
    """
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="mailseal-demo-"))
    try:
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
    except OSError as exc:
        raise Failure(f"cannot use {directory}: {exc.strerror or exc}") from None
    now = int(time.time())
    rsa_key, ed_key = generate_key(KeyType.RSA, 2048), generate_key(KeyType.ED25519)
    keys = [("rsa", rsa_key), ("ed", ed_key)]
    for sel, key in keys:
        path = directory / f"{sel}.private"
        path.write_bytes(private_pem(key))
        path.chmod(0o600)
    zone = directory / f"{DOMAIN}.zone"
    zone.write_text(
        zone_text(DOMAIN, [(f"{sel}._domainkey", key.public_record()) for sel, key in keys])
    )
    message = sample_message(DOMAIN, now)
    specs = [SignerSpec(key, DOMAIN, sel) for sel, key in keys]
    signed = b"".join(f + b"\r\n" for f in sign_message(message, specs, now)) + message
    signed_path = directory / "signed.eml"
    signed_path.write_bytes(signed)

    click.secho(f"Demo domain {DOMAIN}, files in {directory}", bold=True)
    click.echo(f"  keys:           {directory}/rsa.private, {directory}/ed.private (mode 0600)")
    click.echo(f"  zone file:      {zone}")
    click.echo(f"  signed message: {signed_path}\n")
    click.secho("Zone file (the DNS records to publish):", bold=True)
    click.echo(zone.read_text())
    click.secho("Signed message:", bold=True)
    click.echo(signed.decode("utf-8").replace("\r\n", "\n"))

    resolver = make_resolver((zone,), (), 5.0)
    verdict = asyncio.run(drive(verify_message(signed, VerifyOptions(), now), resolver))
    click.secho("Verification against the zone file:", bold=True)
    for s in verdict.signatures:
        colour = "green" if s.result.value == "pass" else "red"
        reason = f" ({s.reason})" if s.result.value != "pass" or s.testing else ""
        click.echo(
            f"  dkim={click.style(s.result.value, fg=colour)} d={s.domain} s={s.selector} "
            f"a={s.algorithm}{reason}"
        )
    click.echo(
        f"\nTry it yourself:\n  mailseal verify --zone {zone} {signed_path}\n"
        f"  sed 's/Hello/Jello/' {signed_path} | mailseal verify --zone {zone} -"
    )
    raise SystemExit(0 if verdict.result.value == "pass" else 1)
