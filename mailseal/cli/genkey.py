"""``mailseal genkey``: opendkim-genkey's command line, and the record in three shapes."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Final

import click

from mailseal.cli.common import Failure
from mailseal.dkim.keys import KeyType, SigningKey, generate_key, private_pem
from mailseal.dkim.publish import KeyTxtRecord, RecordFlags
from mailseal.keys import names
from mailseal.keys.files import KeyFileExists, KeyPaths, WriteError, write_file

#: Hash algorithms a key record's h= may list (RFC 6376 §3.6.1; sha1 is obsolete, RFC 8301).
HASHES: Final = ("sha1", "sha256")

EXAMPLE: Final = """\b
Examples:
  mailseal genkey -s mail -d example.com -D /etc/opendkim/keys/example.com
  mailseal genkey -s mail -d example.com --format json
  mailseal genkey -s ed -d example.com --ed25519 --format flat
"""


class KeyExists(Failure):
    """An existing key would be overwritten: exit 1, as the issue's contract says."""

    exit_code = 1


def domain_option(text: str, option: str) -> str:
    """A lower-case A-label domain, or a usage error naming the option."""
    try:
        return names.domain_name(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def selector_option(text: str, option: str) -> str:
    """A valid selector, or a usage error naming the option."""
    try:
        return names.selector_name(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def hash_list(text: str, key_type: KeyType) -> str:
    names = [h.strip().lower() for h in text.split(":") if h.strip()]
    bad = [h for h in names if h not in HASHES]
    if not names or bad:
        raise click.BadParameter(
            f"unknown hash algorithm {bad[0] if bad else text!r} (use sha256)", param_hint="-h"
        )
    if key_type is KeyType.ED25519 and "sha256" not in names:
        raise click.BadParameter("Ed25519 keys sign with sha256: include it", param_hint="-h")
    return ":".join(names)


def render(record: KeyTxtRecord, fmt: str, *, append_domain: bool = False) -> str:
    """The record as ``zone`` (the .txt file), ``flat`` (one line) or ``json``."""
    if fmt == "flat":
        return record.value + "\n"
    if fmt == "json":
        return json.dumps(record.as_json()) + "\n"
    return record.zone_text(append_domain=append_domain)


def write_key_pair(
    paths: KeyPaths,
    key: SigningKey,
    txt: str,
    *,
    force: bool,
    now: datetime,
    owner: tuple[int, int] | None = None,
) -> list[Path]:
    """Write SELECTOR.private and SELECTOR.txt; return the backups made (only with force).

    Raises KeyExists (exit 1) when a file is there and ``force`` is off, and
    Failure (exit 2) when the directory cannot be written.
    """
    if not force:
        there = paths.existing()
        if there:
            raise KeyExists(
                f"{there[0]} already exists; nothing was written "
                "(use --force to replace the key; the old files are kept as dated backups)"
            )
    backups: list[Path] = []
    try:
        for path, data in ((paths.private, private_pem(key)), (paths.txt, txt.encode("utf-8"))):
            made = write_file(path, data, replace=force, backup_time=now, owner=owner)
            if made is not None:
                backups.append(made)
    except KeyFileExists as exc:
        raise KeyExists(f"{exc.path} already exists; nothing was replaced (use --force)") from None
    except WriteError as exc:
        raise Failure(str(exc)) from None
    return backups


@click.command(
    "genkey",
    context_settings={"help_option_names": ["--help"]},
    epilog=EXAMPLE,
)
@click.option(
    "-a",
    "--append-domain",
    "append_domain",
    is_flag=True,
    help="Write the owner name as SELECTOR._domainkey.DOMAIN. (absolute) in the .txt file.",
)
@click.option(
    "-b",
    "--bits",
    type=click.IntRange(1024, 16384),
    default=2048,
    show_default=True,
    help="RSA key size (ignored with --ed25519).",
)
@click.option(
    "-D",
    "--directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Write the files here.",
)
@click.option(
    "-d",
    "--domain",
    default="localhost",
    show_default=True,
    help="The signing domain (d=), named in the .txt file's comment.",
)
@click.option(
    "-h",
    "--hash-algorithms",
    "hashes",
    default="sha256",
    show_default=True,
    metavar="LIST",
    help="h= of the record, colon-separated (Debian's default: sha256).",
)
@click.option("-n", "--note", help='Add n="NOTE" to the record.')
@click.option("-r", "--restrict", is_flag=True, help="Restrict the key to email (s=email).")
@click.option(
    "-s", "--selector", default="default", show_default=True, help="Selector (s=): file names."
)
@click.option(
    "-S",
    "--nosubdomains",
    "no_subdomains",
    is_flag=True,
    help="Forbid signing subdomains' mail with i= (t=s).",
)
@click.option("-t", "--testmode", is_flag=True, help="Mark the key as in test mode (t=y).")
@click.option("-v", "--verbose", count=True, help="Say what is done, on standard error.")
@click.option("--ed25519", is_flag=True, help="Make an Ed25519 key (RFC 8463) instead of RSA.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["zone", "flat", "json"]),
    default="zone",
    show_default=True,
    help="How to print the record: the .txt file, one line for web forms, or JSON.",
)
@click.option(
    "--force", is_flag=True, help="Replace existing files, keeping them as dated backups."
)
def genkey_command(
    append_domain: bool,
    bits: int,
    directory: Path,
    domain: str,
    hashes: str,
    note: str | None,
    restrict: bool,
    selector: str,
    no_subdomains: bool,
    testmode: bool,
    verbose: int,
    ed25519: bool,
    fmt: str,
    force: bool,
) -> None:
    """Make a DKIM key pair: SELECTOR.private (PKCS#8 PEM) and SELECTOR.txt.

    The options are opendkim-genkey's, with Debian's defaults (2048-bit RSA,
    h=sha256), and SELECTOR.txt is laid out byte for byte as opendkim-genkey
    writes it, so existing habits and scripts keep working. Both files are
    mode 0600. The record is also printed in the --format asked for.

    An existing key is never overwritten without --force, which keeps the old
    files as SELECTOR.private.YYYYMMDD-HHMMSS. Exit status: 0 written; 1 a key
    was already there (nothing written); 2 usage errors or an unwritable
    directory.
    """
    key_type = KeyType.ED25519 if ed25519 else KeyType.RSA
    domain_a = domain_option(domain, "'-d'")
    selector = selector_option(selector, "'-s'")
    flags = RecordFlags(
        hashes=hash_list(hashes, key_type),
        note=note,
        testing=testmode,
        no_subdomains=no_subdomains,
        email_only=restrict,
    )
    if not directory.is_dir():
        raise Failure(f"no directory {directory} (create it first: mkdir -p {directory})")
    paths = KeyPaths(directory, selector)
    if not force and paths.existing():
        raise KeyExists(
            f"{paths.existing()[0]} already exists; nothing was written "
            "(use --force to replace the key; the old files are kept as dated backups)"
        )
    if domain == "localhost" and verbose:
        click.echo("mailseal genkey: no -d given: the record is for 'localhost'", err=True)
    if "sha1" in (flags.hashes or "").split(":"):
        click.echo(
            "mailseal genkey: warning: rsa-sha1 is obsolete (RFC 8301); receivers ignore it",
            err=True,
        )
    if ed25519 and bits != 2048:
        click.echo("mailseal genkey: warning: -b is ignored for Ed25519 keys", err=True)
    if verbose:
        what = "an Ed25519" if ed25519 else f"a {bits}-bit RSA"
        click.echo(f"mailseal genkey: generating {what} private key", err=True)
    key = generate_key(key_type, bits)
    record = KeyTxtRecord.for_key(key, selector, domain_a, flags)
    now = datetime.now()
    backups = write_key_pair(
        paths, key, record.zone_text(append_domain=append_domain), force=force, now=now
    )
    if verbose:
        for backup in backups:
            click.echo(f"mailseal genkey: old file kept as {backup}", err=True)
        click.echo(f"mailseal genkey: private key written to {paths.private}", err=True)
        click.echo(f"mailseal genkey: DNS TXT record written to {paths.txt}", err=True)
    click.echo(render(record, fmt, append_domain=append_domain), nl=False)
