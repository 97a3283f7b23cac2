"""``mailseal testkey``: does DNS publish each signing key? opendkim-testkey's job, done fully."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import click

from mailseal.cli.common import dns_options, make_resolver
from mailseal.cli.genkey import domain_option, selector_option
from mailseal.config.keyfiles import KeyReader, key_file_problems
from mailseal.config.keylist import KeyEntry, list_keys
from mailseal.dkim.keycheck import KeyCheck, KeyStatus, check_key
from mailseal.dkim.keys import SigningKey, load_private_key
from mailseal.dns.drive import drive
from mailseal.errors import ConfigError, KeyFileError

# sysexits.h, as opendkim-testkey uses them.
EX_OK: Final = 0
EX_USAGE: Final = 64
EX_DATAERR: Final = 65  # a mismatch or an invalid record
EX_UNAVAILABLE: Final = 69  # not found, or DNS failed
EX_CONFIG: Final = 78  # the configuration or a key file cannot be read
DEFAULT_CONFIG: Final = Path("/etc/opendkim.conf")
CONFIG_NOTE: Final = "config: "

EXAMPLE: Final = """\b
Examples:
  mailseal testkey                       # every key of /etc/opendkim.conf
  mailseal testkey -x /etc/opendkim.conf -d example.com -v
  mailseal testkey -d example.com -s mail -k /etc/opendkim/keys/example.com/mail.private
  mailseal testkey --dns-server 192.0.2.53 --json
"""


class UsageExit64(click.Command):
    """Usage errors exit 64 (EX_USAGE), as opendkim-testkey's do, not click's 2."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _Usage(exc.format_message(), exc.ctx) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise _Usage(exc.format_message(), exc.ctx) from None


class _Usage(click.UsageError):
    exit_code = EX_USAGE


class ConfigExit(click.ClickException):
    """A configuration that cannot be used: one line, exit 78 (EX_CONFIG)."""

    exit_code = EX_CONFIG

    def show(self, file: Any = None) -> None:
        click.echo(f"mailseal testkey: error: {self.format_message()}", err=True)


class UsageExit(ConfigExit):
    """Not enough said to know which key to check: exit 64 (EX_USAGE)."""

    exit_code = EX_USAGE


@dataclass(frozen=True, slots=True)
class Target:
    """One key to check: where it is published and, when known, the private key."""

    selector: str
    domain: str
    label: str  # the KeyTable name or the key path, for messages
    key_source: str | None  # a path, inline data, or None (check the record only)
    is_file: bool = True


@dataclass(frozen=True, slots=True)
class Outcome:
    target: Target
    check: KeyCheck | None  # None: not checked (see problem)
    problem: str = ""  # a local problem: unreadable key, % without -d
    warnings: tuple[str, ...] = ()

    def code(self) -> int:
        if self.check is None:
            return EX_CONFIG
        if self.check.status in (KeyStatus.MISMATCH, KeyStatus.INVALID):
            return EX_DATAERR
        if self.check.status in (KeyStatus.NOT_FOUND, KeyStatus.DNS_FAILURE):
            return EX_UNAVAILABLE
        return EX_CONFIG if self.problem else EX_OK


def exit_code(outcomes: list[Outcome]) -> int:
    """65 beats 69 beats 78 beats 0: the worst problem decides."""
    codes = {o.code() for o in outcomes}
    for code in (EX_DATAERR, EX_UNAVAILABLE, EX_CONFIG):
        if code in codes:
            return code
    return EX_OK


def _targets(
    config: Path | None, domain: str | None, selector: str | None, keypath: Path | None
) -> tuple[list[Target], list[str], tuple[str, ...], str | None]:
    """What to check, warnings, the config's Nameservers and its UserID."""
    warnings: list[str] = []
    entries: tuple[KeyEntry, ...] = ()
    nameservers: tuple[str, ...] = ()
    user_id = None
    if config is not None:
        try:
            listing = list_keys(config)
        except ConfigError as exc:
            raise ConfigExit(str(exc)) from None
        # Config warnings (options mailseal ignores...) are the milter's business: -v shows them.
        warnings += [CONFIG_NOTE + str(w) for w in listing.warnings]
        entries, nameservers, user_id = listing.entries, listing.nameservers, listing.user_id
    if keypath is not None or (not entries and (domain or selector)):
        # One key from the command line; what is missing comes from Domain/Selector/KeyFile.
        first = entries[0] if entries else None
        d = domain or (first.domain if first and first.domain != "%" else None)
        s = selector or (first.selector if first else None)
        if not d or not s:
            raise UsageExit("say which key: -d DOMAIN and -s SELECTOR (or -x CONF)")
        source = str(keypath) if keypath is not None else (first.key if first else None)
        is_file = keypath is not None or (first.is_file if first else True)
        label = source if source and is_file else f"{s}._domainkey.{d}"
        return [Target(s, d, label, source, is_file)], warnings, nameservers, user_id
    if config is None:
        raise UsageExit(
            f"no configuration ({DEFAULT_CONFIG} is not there): give -x CONF, "
            "or -d DOMAIN -s SELECTOR [-k KEYFILE]"
        )
    if not entries:
        raise ConfigExit(f"{config} names no signing keys (no KeyTable, no KeyFile)")
    targets = []
    for e in entries:
        if selector and e.selector != selector:
            continue
        d = e.domain
        if d == "%":
            if not domain:
                warnings.append(f"{e.where}: key {e.name!r} is for any domain ('%'): add -d DOMAIN")
                continue
            d = domain
        elif domain and d != domain.lower():
            continue
        source = e.key.replace("%", d) if e.is_file else e.key
        targets.append(Target(e.selector, d, e.name, source, e.is_file))
    if not targets:
        raise ConfigExit(f"no key in {config} matches the -d/-s given")
    return targets, warnings, nameservers, user_id


def _load(target: Target, reader: KeyReader) -> tuple[SigningKey | None, str, list[str]]:
    """The private key, a problem reading it, and safety warnings (as opendkim-testkey's)."""
    if target.key_source is None:
        return None, "", []
    warnings: list[str] = []
    try:
        if target.is_file:
            path = Path(target.key_source)
            data = path.read_bytes()
            for problem, fix in key_file_problems(path, os.stat(path), reader):
                warnings.append(f"{path}: WARNING: unsafe: {problem} (fix: {fix})")
        else:
            data = target.key_source.encode()
        return load_private_key(data, target.label), "", warnings
    except OSError as exc:
        return None, f"cannot read {target.key_source}: {exc.strerror or exc}", warnings
    except KeyFileError as exc:
        return None, str(exc), warnings


async def _run(targets: list[Target], reader: KeyReader, resolver: Any) -> list[Outcome]:
    outcomes = []
    for target in targets:
        key, problem, warnings = _load(target, reader)
        if problem and target.key_source is not None:
            # Still worth knowing whether the record is there and sound.
            check = await drive(check_key(target.selector, target.domain, None), resolver)
            outcomes.append(Outcome(target, check, problem, tuple(warnings)))
            continue
        check = await drive(check_key(target.selector, target.domain, key), resolver)
        outcomes.append(Outcome(target, check, "", tuple(warnings)))
    return outcomes


def _text(outcome: Outcome, verbose: int) -> list[str]:
    lines = list(outcome.warnings)
    check = outcome.check
    if outcome.problem:
        lines.append(f"{outcome.target.label}: {outcome.problem}")
    if check is None:
        return lines
    if check.ok:
        line = f"{check.name}: {check.status.value}"
        if not check.secure:
            line += "; key not secure (the answer was not DNSSEC-validated)"
        lines.append(line)
        if verbose:
            lines.append(f"  {check.reason}")
    else:
        lines.append(f"{check.name}: {check.status.value}: {check.reason}")
        if check.fix:
            lines.append(f"  fix: {check.fix}")
    lines += [f"  note: {n}" for n in check.notes]
    if verbose > 1 and check.published:
        lines += [f"  published: {p}" for p in check.published]
    return lines


@click.command(
    "testkey",
    cls=UsageExit64,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=EXAMPLE,
)
@click.option(
    "-x",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Configuration file (default {DEFAULT_CONFIG}, when it exists).",
)
@click.option("-d", "domain", metavar="DOMAIN", help="Check only this domain's keys.")
@click.option("-s", "selector", metavar="SELECTOR", help="Check only this selector.")
@click.option(
    "-k",
    "keypath",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="KEYFILE",
    help="Compare the record with this private key (with -d and -s).",
)
@click.option("-v", "verbose", count=True, help="Say more (repeat for the records found).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@dns_options
def testkey_command(
    config: Path | None,
    domain: str | None,
    selector: str | None,
    keypath: Path | None,
    verbose: int,
    as_json: bool,
    zones: tuple[Path, ...],
    dns_servers: tuple[str, ...],
    dns_timeout: float,
) -> None:
    """Check that DNS publishes every signing key, and that it is the right key.

    With no -d/-s/-k, every key of the configuration's KeyTable (file: or
    refile:, RSA or Ed25519) or its Domain/Selector/KeyFile is checked: the
    record at SELECTOR._domainkey.DOMAIN is fetched and its p= compared with
    the private key. Each key gets "key OK", "key not found", "key mismatch"
    or "record invalid" (or "DNS failure"), with the fix. "key not secure"
    beside "key OK" only says the answer was not DNSSEC-validated.

    Exit status (opendkim-testkey's): 0 every key OK; 65 a mismatch or an
    invalid record; 69 a key not found or DNS failed; 64 usage errors; 78 an
    unreadable configuration or key file. Without DNS options the config's
    Nameservers are asked, else the system resolver.
    """
    domain = domain_option(domain, "'-d'") if domain is not None else None
    selector = selector_option(selector, "'-s'") if selector is not None else None
    if config is None and DEFAULT_CONFIG.exists() and not (domain and selector and keypath):
        config = DEFAULT_CONFIG if os.access(DEFAULT_CONFIG, os.R_OK) else None
    targets, warnings, nameservers, user_id = _targets(config, domain, selector, keypath)
    reader = KeyReader.current()
    if user_id:
        try:
            reader = KeyReader.for_user(user_id)
        except LookupError:
            warnings.append(f"UserID {user_id}: no such user; key safety judged for this user")
    servers = dns_servers or (nameservers if not zones else ())
    resolver = make_resolver(zones, servers, dns_timeout)
    outcomes = asyncio.run(_run(targets, reader, resolver))
    code = exit_code(outcomes)
    if as_json:
        keys = []
        for o in outcomes:
            entry: dict[str, object] = {"key": o.target.label}
            entry.update(o.check.as_json() if o.check else {})
            entry["problem"] = o.problem
            entry["warnings"] = list(o.warnings)
            keys.append(entry)
        shown = [w.removeprefix(CONFIG_NOTE) for w in warnings]
        click.echo(json.dumps({"keys": keys, "warnings": shown, "exit": code}))
    else:
        for warning in warnings:
            if verbose or not warning.startswith(CONFIG_NOTE):
                click.echo(
                    f"mailseal testkey: warning: {warning.removeprefix(CONFIG_NOTE)}", err=True
                )
        for outcome in outcomes:
            for line in _text(outcome, verbose):
                click.echo(line)
        if verbose:
            passed = sum(1 for o in outcomes if o.code() == EX_OK)
            n = len(outcomes)
            click.echo(f"{n} key{'s' if n != 1 else ''} checked; {passed} pass, {n - passed} fail")
    raise SystemExit(code)
