"""``mailseal rotate``: replace a domain's DKIM keys without a moment of unsigned mail."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import click

from mailseal.cli.common import Failure, dns_options, make_resolver
from mailseal.cli.genkey import domain_option, selector_option
from mailseal.config.keylist import KeyListing, list_keys
from mailseal.dkim.keycheck import KeyCheck, check_key
from mailseal.dkim.keys import KeyType, SigningKey, generate_key, load_private_key, private_pem
from mailseal.dkim.publish import KeyTxtRecord
from mailseal.dns.drive import drive
from mailseal.errors import ConfigError, KeyFileError
from mailseal.keys.files import KeyFileExists, WriteError, write_file
from mailseal.keys.rotation import (
    DEFAULT_GRACE_DAYS,
    STATE_FILE,
    RotationError,
    RotationState,
    RotKey,
    activate,
    current_keys,
    default_selector,
    prepare,
    retire,
)
from mailseal.setup.layout import DEFAULT_CONFIG

EXAMPLE: Final = """\b
Examples:
  mailseal rotate example.com                 # 1. new key, prints the record to publish
  mailseal rotate example.com --activate      # 2. once DNS serves it: switch and reload
  mailseal rotate example.com --retire        # 3. after the grace period: remove the old key
  mailseal rotate example.com --status
"""


class NotYet(Failure):
    """The step cannot be taken yet (record not published, grace period running): exit 1."""

    exit_code = 1


def _config(config: Path | None, root: Path | None) -> Path:
    if config is not None:
        return config
    return root / "opendkim.conf" if root is not None else DEFAULT_CONFIG


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise Failure(f"cannot read {path}: {(exc.strerror or str(exc)).lower()}") from None


def _write(
    path: Path, text: str, now: datetime, *, mode: int | None = None, backup: bool = True
) -> None:
    """Rewrite a file in place, keeping its mode and owner (and a dated backup of it)."""
    try:
        info = os.stat(path) if path.exists() else None
        write_file(
            path,
            text.encode("utf-8"),
            mode=mode if mode is not None else (info.st_mode & 0o7777 if info else 0o644),
            replace=info is not None,
            backup_time=now,
            owner=(info.st_uid, info.st_gid) if info else None,
            keep_backup=backup,
        )
    except WriteError as exc:
        raise Failure(str(exc)) from None


def _load_key(path: str) -> SigningKey:
    try:
        return load_private_key(Path(path).read_bytes(), path)
    except OSError as exc:
        raise Failure(f"cannot read key {path}: {(exc.strerror or str(exc)).lower()}") from None
    except KeyFileError as exc:
        raise Failure(str(exc)) from None


class Rotation:
    """The files of one domain's rotation."""

    def __init__(self, domain: str, config: Path) -> None:
        self.domain = domain
        self.config = config
        try:
            self.listing: KeyListing = list_keys(config)
        except ConfigError as exc:
            raise Failure(str(exc)) from None
        if self.listing.key_table is None or self.listing.signing_table is None:
            raise Failure(
                f"{config} needs a KeyTable and a SigningTable in files to rotate keys "
                f"(mailseal setup {domain} writes them)"
            )
        self.key_table: Path = self.listing.key_table
        self.signing_table: Path = self.listing.signing_table

    def tables(self) -> tuple[str, str]:
        return _read(self.key_table), _read(self.signing_table)

    def current(self) -> list[RotKey]:
        key_table, signing_table = self.tables()
        try:
            return current_keys(self.domain, key_table, signing_table, self.key_table.parent)
        except RotationError as exc:
            raise Failure(str(exc)) from None

    def state_path(self, keys: list[RotKey] | None = None) -> Path:
        if keys is None:
            found = self._find_state()
            if found is not None:
                return found
            keys = self.current()
        return Path(keys[0].path).parent / STATE_FILE

    def _find_state(self) -> Path | None:
        key_table, signing_table = self.tables()
        try:
            keys = current_keys(self.domain, key_table, signing_table, self.key_table.parent)
        except RotationError:
            return None
        path = Path(keys[0].path).parent / STATE_FILE
        return path if path.exists() else None

    def load_state(self) -> RotationState:
        path = self.state_path()
        if not path.exists():
            return RotationState(self.domain)
        try:
            return RotationState.from_json(_read(path), str(path))
        except RotationError as exc:
            raise Failure(str(exc)) from None

    def save_state(self, state: RotationState, now: datetime, path: Path | None = None) -> None:
        _write(path or self.state_path(), state.to_json(), now, mode=0o600, backup=False)


def _records(state: RotationState, keys: list[RotKey]) -> list[KeyTxtRecord]:
    return [KeyTxtRecord.for_key(_load_key(k.path), k.selector, state.domain) for k in keys]


def _do_prepare(
    rot: Rotation, selector: str | None, grace: int, now: datetime
) -> tuple[RotationState, list[str]]:
    state = rot.load_state()
    if state.pending and (selector is None or selector == state.pending[0].selector):
        lines = [f"a rotation to {state.pending[0].selector} is prepared already; publish:"]
        return state, lines + _publish_lines(state, list(state.pending))
    current = rot.current()
    types = {k.path: _load_key(k.path).type.value for k in current}
    try:
        state = prepare(state, current, selector or default_selector(now), now, grace, types)
    except RotationError as exc:
        raise NotYet(str(exc)) from None
    state_path = rot.state_path(current)
    for key in state.pending:
        new = generate_key(key.type, 2048)
        old = os.stat(next(c.path for c in current if c.keyname == key.replaces))
        txt = KeyTxtRecord.for_key(new, key.selector, state.domain).zone_text().encode()
        try:
            owner = (old.st_uid, old.st_gid)
            write_file(Path(key.path), private_pem(new), owner=owner)
            write_file(Path(key.path).with_suffix(".txt"), txt, owner=owner)
        except WriteError as exc:
            raise Failure(str(exc)) from None
        except KeyFileExists as exc:
            raise Failure(
                f"{exc}: a key for the new selector is already there; choose another "
                "with --selector"
            ) from None
    rot.save_state(state, now, state_path)
    lines = [
        f"prepared {', '.join(k.selector for k in state.pending)} for {state.domain}; publish:"
    ]
    lines += _publish_lines(state, list(state.pending))
    lines.append(f"then: mailseal rotate {state.domain} --activate")
    return state, lines


def _publish_lines(state: RotationState, keys: list[RotKey]) -> list[str]:
    lines = []
    for record in _records(state, keys):
        lines.append(f'  {record.name} TXT "{record.value}"')
        lines += [f"    {z}" for z in record.zone_text().rstrip("\n").split("\n")]
    return lines


async def _checks(state: RotationState, resolver: Any) -> list[KeyCheck]:
    out = []
    for key in state.pending:
        gen = check_key(key.selector, state.domain, _load_key(key.path))
        out.append(await drive(gen, resolver))
    return out


def _reload(pid_file: Path | None) -> str:
    """Tell a running milter (mailseal or OpenDKIM) to re-read its keys: SIGUSR1."""
    if pid_file is None:
        return "no PidFile configured: reload the milter yourself (systemctl reload ...)"
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGUSR1)
    except (OSError, ValueError, IndexError):
        return f"no running milter found through {pid_file}: the new keys are used when it starts"
    return f"sent SIGUSR1 to the milter (pid {pid}, from {pid_file}): it re-reads the keys"


def _do_activate(
    rot: Rotation, now: datetime, resolver: Any, pid_file: Path | None
) -> tuple[RotationState, list[str]]:
    state = rot.load_state()
    if not state.pending:
        raise NotYet(f"nothing prepared for {rot.domain}: run mailseal rotate {rot.domain} first")
    checks = asyncio.run(_checks(state, resolver))
    bad = [c for c in checks if not c.ok]
    if bad:
        detail = "; ".join(f"{c.name}: {c.status.value} ({c.reason})" for c in bad)
        raise NotYet(
            f"not switching: the new record is not served yet: {detail}. Publish it and "
            "wait for the old answer's TTL, then run --activate again"
        )
    key_table, signing_table = rot.tables()
    state_path = rot.state_path()
    try:
        state, new_kt, new_st = activate(state, key_table, signing_table, now)
    except RotationError as exc:
        raise NotYet(str(exc)) from None
    _write(rot.key_table, new_kt, now)
    _write(rot.signing_table, new_st, now)
    rot.save_state(state, now, state_path)
    names = ", ".join(k.selector for k in state.retiring)
    lines = [
        f"{rot.domain} now signs with the new key(s); {names} stay in DNS until "
        f"{state.retire_after} (grace period {state.grace_days} days)",
        _reload(pid_file or rot.listing.pid_file),
        f"after {state.retire_after}: mailseal rotate {rot.domain} --retire",
    ]
    return state, lines


def _do_retire(rot: Rotation, now: datetime) -> tuple[RotationState, list[str]]:
    state_path = rot.state_path()
    state = rot.load_state()
    key_table, signing_table = rot.tables()
    old = list(state.retiring)
    try:
        state, new_kt = retire(state, key_table, signing_table, now)
    except RotationError as exc:
        raise NotYet(str(exc)) from None
    _write(rot.key_table, new_kt, now)
    removed = []
    for key in old:
        for path in (Path(key.path), Path(key.path).with_suffix(".txt")):
            try:
                path.unlink()
                removed.append(str(path))
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise Failure(
                    f"cannot remove {path}: {(exc.strerror or str(exc)).lower()}"
                ) from None
    rot.save_state(state, now, state_path)
    lines = [f"removed the old key(s) of {rot.domain}: {', '.join(removed) or '(already gone)'}"]
    for key in old:
        name = f"{key.selector}._domainkey.{rot.domain}"
        kind = "ed25519" if key.type is KeyType.ED25519 else "rsa"
        lines.append(
            f'delete the DNS record {name} TXT (or publish "v=DKIM1; k={kind}; p=" there to '
            "say the key is revoked, RFC 6376 §3.6.1)"
        )
    return state, lines


def _now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO 8601 time", param_hint="'--now'"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@click.command("rotate", context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXAMPLE)
@click.argument("domain")
@click.option("--selector", help="The new selector (default: YYYYMM of today).")
@click.option(
    "--grace",
    type=click.IntRange(min=0),
    default=DEFAULT_GRACE_DAYS,
    show_default=True,
    metavar="DAYS",
    help="Keep the old key this long after --activate.",
)
@click.option("--activate", "step", flag_value="activate", help="Switch to the prepared key.")
@click.option("--retire", "step", flag_value="retire", help="Remove the old key (after grace).")
@click.option("--status", "step", flag_value="status", help="Show where the rotation stands.")
@click.option(
    "-x", "config", type=click.Path(dir_okay=False, path_type=Path), help="opendkim.conf to use."
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    help="As with setup: the configuration is ROOT/opendkim.conf.",
)
@click.option(
    "--pid-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The milter's PID file (default: the config's PidFile).",
)
@click.option("--now", "now_text", metavar="ISO8601", help="The time to act at (default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print the rotation state as JSON.")
@dns_options
def rotate_command(
    domain: str,
    selector: str | None,
    grace: int,
    step: str | None,
    config: Path | None,
    root: Path | None,
    pid_file: Path | None,
    now_text: str | None,
    as_json: bool,
    zones: tuple[Path, ...],
    dns_servers: tuple[str, ...],
    dns_timeout: float,
) -> None:
    """Rotate DOMAIN's DKIM keys in three steps, with no unsigned mail in between.

    Without a step option: make a new key per current key (same type, new
    selector) beside the old ones and print its record to publish. --activate:
    once DNS serves the new record (checked as testkey does), point the
    SigningTable at the new keys, add them to the KeyTable and send the
    running milter SIGUSR1 so it re-reads them (root reads the keys). --retire:
    after the grace period, remove the old keys from the KeyTable and the disk
    and print the DNS record to delete. The state is kept in rotation.json
    beside the keys; changed tables are kept as dated backups.

    Exit status: 0 done; 1 the step cannot be taken yet (record not
    published, grace period running, nothing prepared); 2 usage or
    configuration errors.
    """
    name = domain_option(domain, "DOMAIN")
    if selector is not None:
        selector = selector_option(selector, "'--selector'")
    now = _now(now_text)
    rot = Rotation(name, _config(config, root))
    if step == "activate":
        resolver = make_resolver(zones, dns_servers or rot.listing.nameservers, dns_timeout)
        state, lines = _do_activate(rot, now, resolver, pid_file)
    elif step == "retire":
        state, lines = _do_retire(rot, now)
    elif step == "status":
        state = rot.load_state()
        lines = [f"{name}: {state.phase}"] + [f"  {h}" for h in state.history]
        if state.retire_after and state.retiring:
            lines.append(f"  old key(s) can be retired after {state.retire_after}")
    else:
        state, lines = _do_prepare(rot, selector, grace, now)
    if as_json:
        data = json.loads(state.to_json())
        data["phase"] = state.phase
        data["messages"] = lines
        click.echo(json.dumps(data))
        return
    for line in lines:
        click.echo(line)
