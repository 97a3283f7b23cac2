"""Key rotation without downtime, as values: the state, the table edits, the deadlines.

Three steps (RFC 6376 §3.1 and M3AAWG's key-rotation advice: publish the new
selector first, switch, keep the old record until mail signed with it has
been delivered):

1. **prepare**: a new key per current key of the domain (same type, new
   selector, by default ``YYYYMM``); its record is printed for publishing.
2. **activate**: once DNS serves the new records (checked like testkey), the
   SigningTable lines naming the old keys name the new ones, the KeyTable
   gains the new keys, and the running milter is told to reload.
3. **retire**: after the grace period (default 7 days: mail in queues and
   verifiers re-checking) the old keys leave the KeyTable and the disk, and the
   old records can be deleted from DNS.

The state lives in ``rotation.json`` beside the keys, with times in UTC ISO
8601. Everything here is pure: the caller passes the time and the file texts.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from mailseal.dkim.keys import KeyType
from mailseal.errors import MailsealError
from mailseal.setup.layout import ED25519_SUFFIX
from mailseal.setup.merge import table_entries

STATE_FILE: Final = "rotation.json"
STATE_VERSION: Final = 1
DEFAULT_GRACE_DAYS: Final = 7


class RotationError(MailsealError):
    """The rotation cannot take this step now; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class RotKey:
    """One key in a rotation."""

    keyname: str  # the KeyTable name
    selector: str
    path: str  # the private key file
    key_type: str  # "rsa" or "ed25519"
    algorithm: str | None = None  # the KeyTable's fourth field
    replaces: str = ""  # for a new key: the keyname it takes over from

    @property
    def type(self) -> KeyType:
        return KeyType(self.key_type)

    def key_table_line(self, domain: str) -> str:
        value = f"{domain}:{self.selector}:{self.path}"
        if self.algorithm:
            value += f":{self.algorithm}"
        return f"{self.keyname}\t{value}"


@dataclass(frozen=True, slots=True)
class RotationState:
    """Where a domain's rotation stands."""

    domain: str
    grace_days: int = DEFAULT_GRACE_DAYS
    pending: tuple[RotKey, ...] = ()  # prepared, not active yet
    current: tuple[RotKey, ...] = ()  # the keys the pending ones replace
    prepared: str | None = None
    retiring: tuple[RotKey, ...] = ()  # replaced, kept for the grace period
    activated: str | None = None
    retire_after: str | None = None
    history: tuple[str, ...] = field(default=())

    @property
    def phase(self) -> str:
        if self.pending:
            return "prepared"
        if self.retiring:
            return "activated"
        return "idle"

    def to_json(self) -> str:
        data = asdict(self)
        data["version"] = STATE_VERSION
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str) -> RotationState:
        try:
            data = json.loads(text)
            if data.pop("version", None) != STATE_VERSION:
                raise ValueError("unknown version")
            data["pending"] = tuple(RotKey(**k) for k in data.get("pending", ()))
            data["current"] = tuple(RotKey(**k) for k in data.get("current", ()))
            data["retiring"] = tuple(RotKey(**k) for k in data.get("retiring", ()))
            data["history"] = tuple(data.get("history", ()))
            return cls(**data)
        except (ValueError, TypeError, AttributeError) as exc:
            raise RotationError(
                f"{source} is not a rotation state file ({exc}); move it away to start over"
            ) from None


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


def default_selector(now: datetime) -> str:
    """``YYYYMM``: a new selector each month, sorted by age."""
    return f"{now:%Y%m}"


def current_keys(domain: str, key_table: str, signing_table: str, base_dir: Path) -> list[RotKey]:
    """The keys the SigningTable uses for ``domain``'s mail (``*@DOMAIN`` and ``DOMAIN`` lines)."""
    names: list[str] = []
    for pattern, value in table_entries(signing_table):
        target = pattern.lower()
        if target in (f"*@{domain}", domain, f"@{domain}"):
            keyname = value.split(":", 1)[0].strip()
            if keyname and keyname not in names:
                names.append(keyname)
    if not names:
        raise RotationError(
            f"the SigningTable has no line for *@{domain}; set the domain up first "
            f"(mailseal setup {domain})"
        )
    entries = dict(table_entries(key_table))
    keys = []
    for name in names:
        found = entries.get(name)
        if found is None:
            raise RotationError(
                f"the SigningTable names key {name!r}, which is not in the KeyTable"
            )
        value = found
        parts = value.split(":", 3)
        if len(parts) < 3 or "%" in value:
            raise RotationError(
                f"KeyTable line {name!r} ({value!r}) is not DOMAIN:SELECTOR:/path; "
                "rotate handles one key file per selector"
            )
        path = Path(parts[2])
        if not path.is_absolute():
            path = base_dir / path
        algorithm = parts[3] if len(parts) == 4 else None
        key_type = "ed25519" if algorithm == "ed25519-sha256" else "rsa"
        keys.append(RotKey(name, parts[1], str(path), key_type, algorithm))
    return keys


def prepare(
    state: RotationState,
    current: list[RotKey],
    selector: str,
    now: datetime,
    grace_days: int,
    key_types: dict[str, str],
) -> RotationState:
    """Plan new keys replacing ``current``; ``key_types`` maps key paths to their real types."""
    if state.pending:
        raise RotationError(
            f"a rotation to {state.pending[0].selector} is already prepared: publish its record "
            f"and run: mailseal rotate {state.domain} --activate"
        )
    if state.retiring:
        raise RotationError(
            f"the last rotation's old key {state.retiring[0].selector} is not retired yet: "
            f"mailseal rotate {state.domain} --retire (after {state.retire_after})"
        )
    pending = []
    used = {k.selector for k in current}
    for old in current:
        kind = key_types.get(old.path, old.key_type)
        new_selector = selector + (ED25519_SUFFIX if kind == "ed25519" and len(current) > 1 else "")
        if new_selector in used:
            raise RotationError(
                f"selector {new_selector} is already in use for {state.domain}; "
                f"choose another with --selector (e.g. {now:%Y%m%d})"
            )
        used.add(new_selector)
        path = Path(old.path).parent / f"{new_selector}.private"
        pending.append(
            RotKey(
                f"{new_selector}._domainkey.{state.domain}",
                new_selector,
                str(path),
                kind,
                old.algorithm,
                replaces=old.keyname,
            )
        )
    return replace(
        state,
        grace_days=grace_days,
        pending=tuple(pending),
        current=tuple(current),
        prepared=_iso(now),
        history=(*state.history, f"{_iso(now)} prepared {', '.join(k.selector for k in pending)}"),
    )


def activate(
    state: RotationState, key_table: str, signing_table: str, now: datetime
) -> tuple[RotationState, str, str]:
    """Switch the tables to the pending keys: (new state, new KeyTable, new SigningTable)."""
    if not state.pending:
        raise RotationError(
            f"nothing to activate: prepare a new key first (mailseal rotate {state.domain})"
        )
    have = {name for name, _ in table_entries(key_table)}
    lines = [k.key_table_line(state.domain) for k in state.pending if k.keyname not in have]
    new_key_table = _append(key_table, lines)
    swap = {k.replaces: k.keyname for k in state.pending}
    new_signing = "".join(
        _swap_line(line, swap) for line in signing_table.splitlines(keepends=True)
    )
    after = now + timedelta(days=state.grace_days)
    return (
        replace(
            state,
            pending=(),
            current=(),
            retiring=state.current,
            activated=_iso(now),
            retire_after=_iso(after),
            history=(
                *state.history,
                f"{_iso(now)} activated {', '.join(k.selector for k in state.pending)}",
            ),
        ),
        new_key_table,
        new_signing,
    )


def retire(
    state: RotationState, key_table: str, signing_table: str, now: datetime
) -> tuple[RotationState, str]:
    """Drop the old keys from the KeyTable once the grace period is over."""
    if not state.retiring:
        raise RotationError(f"no old key to retire for {state.domain}")
    assert state.retire_after is not None
    due = datetime.fromisoformat(state.retire_after)
    if now < due:
        left = due - now
        raise RotationError(
            f"the grace period ends {state.retire_after} ({_days(left)} from now): mail signed "
            "with the old key may still be on its way; run --retire then"
        )
    still = {v.split(":", 1)[0].strip() for _, v in table_entries(signing_table)}
    names = {k.keyname for k in state.retiring}
    used = names & still
    if used:
        raise RotationError(
            f"the SigningTable still names {sorted(used)[0]}; it was edited since activation: "
            "fix it first"
        )
    kept = "".join(
        line
        for line in key_table.splitlines(keepends=True)
        if not (line.split() and line.split()[0] in names)
    )
    done = ", ".join(k.selector or k.keyname for k in state.retiring)
    return (
        replace(state, retiring=(), history=(*state.history, f"{_iso(now)} retired {done}")),
        kept,
    )


def _days(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    return f"{hours // 24} days {hours % 24} hours" if hours >= 24 else f"{hours} hours"


def _append(text: str, lines: list[str]) -> str:
    if not lines:
        return text
    sep = "" if not text or text.endswith("\n") else "\n"
    return text + sep + "".join(line + "\n" for line in lines)


def _swap_line(line: str, swap: dict[str, str]) -> str:
    """Replace the key name in a SigningTable line (``PATTERN KEYNAME[:SIGNER]``)."""
    body, hash_, comment = line.partition("#")
    tokens = body.split()
    if len(tokens) < 2:
        return line
    keyname, colon, signer = tokens[1].partition(":")
    if keyname not in swap:
        return line
    start = body.index(tokens[1], len(tokens[0]))
    new_value = swap[keyname] + colon + signer
    return body[:start] + new_value + body[start + len(tokens[1]) :] + hash_ + comment


__all__ = [
    "DEFAULT_GRACE_DAYS",
    "RotKey",
    "RotationError",
    "RotationState",
    "STATE_FILE",
    "activate",
    "current_keys",
    "default_selector",
    "prepare",
    "retire",
]
