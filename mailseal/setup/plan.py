"""What setup must do, worked out from a snapshot of the files before anything is touched.

The shell reads every path setup cares about into a :class:`Existing` (type,
mode, owner, contents) and generates a key for each key file that is missing;
:func:`make_plan` returns the actions that bring the files to the wanted
state. Files already right produce no action, so a second run plans nothing.
Nothing is ever removed or overwritten in a way that loses data: existing
keys are kept, settings and table lines are merged in (see ``merge``).

Ownership follows the tutorial (``chown -R opendkim:opendkim keys/DOMAIN``)
with permissions OpenDKIM accepts: key directories 0700 and key files 0600,
owned by the ``UserID`` user when it exists; tables and opendkim.conf 0644.
"""

from __future__ import annotations

import enum
import stat
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from mailseal.dkim.keys import KeyType, SigningKey, load_private_key, private_pem
from mailseal.dkim.publish import KeyTxtRecord
from mailseal.errors import KeyFileError, MailsealError
from mailseal.setup.layout import TRUSTED_HOSTS, KeySpec, Layout
from mailseal.setup.merge import Merged, merge_lines, merge_settings, table_entries

KEY_DIR_MODE: Final = 0o700
KEY_MODE: Final = 0o600
PUBLIC_MODE: Final = 0o644
DIR_MODE: Final = 0o755
CONF_HEADER: Final = (
    "# OpenDKIM / mailseal milter configuration, written by `mailseal setup`\n"
    "# (the settings of the Postfix + OpenDKIM tutorial; see docs/setup.md).\n"
)


class SetupError(MailsealError):
    """Setup cannot go on without losing or contradicting something; nothing was changed."""


class Kind(enum.Enum):
    MKDIR = "create directory"
    WRITE = "write"
    CHMOD = "chmod"
    CHOWN = "chown"


@dataclass(frozen=True, slots=True)
class Existing:
    """A path as it is now."""

    is_dir: bool
    mode: int  # permission bits only
    uid: int
    gid: int
    content: bytes | None = None  # files only


@dataclass(frozen=True, slots=True)
class Action:
    """One change to the file system."""

    kind: Kind
    path: Path
    mode: int = 0
    owner: tuple[int, int] | None = None  # (uid, gid); None: leave as created
    content: bytes | None = None
    note: str = ""

    def describe(self) -> str:
        if self.kind is Kind.MKDIR:
            return f"created {self.path}/ (mode {self.mode:04o})"
        if self.kind is Kind.CHMOD:
            return f"chmod {self.mode:04o} {self.path}" + (f" ({self.note})" if self.note else "")
        if self.kind is Kind.CHOWN:
            return f"chown {self.path}" + (f" ({self.note})" if self.note else "")
        return f"wrote {self.path}" + (f": {self.note}" if self.note else "")


@dataclass(frozen=True, slots=True)
class Request:
    """What the admin asked for."""

    domain: str
    selector: str
    layout: Layout
    ips: tuple[str, ...] = ()
    ed25519: bool = False
    socket: str = "inet:12145@localhost"
    owner: tuple[int, int] | None = None  # the UserID user's (uid, gid), when it can be set

    def specs(self) -> list[KeySpec]:
        return self.layout.key_specs(self.domain, self.selector, self.ed25519)


@dataclass(frozen=True, slots=True)
class Plan:
    actions: tuple[Action, ...]
    keys: tuple[tuple[KeySpec, SigningKey], ...]  # every key of the domain, new or kept

    @property
    def changes(self) -> bool:
        return bool(self.actions)


def effective(request: Request, snapshot: Mapping[Path, Existing]) -> Request:
    """The request, with ``ed25519`` on when an earlier ``--ed25519`` run set the domain up so.

    Re-running setup without the flag must keep (not refuse) the Ed25519 key it made.
    """
    if request.ed25519:
        return request
    ed = replace(request, ed25519=True)
    name = ed.specs()[-1].key_name(request.domain)
    text = _text(snapshot.get(request.layout.signing_table), request.layout.signing_table)
    pattern = f"*@{request.domain}"
    found = any(k.lower() == pattern and v == name for k, v in table_entries(text))
    return ed if found else request


def missing_keys(request: Request, snapshot: Mapping[Path, Existing]) -> list[KeySpec]:
    """The keys the shell must generate before planning (their private file is absent)."""
    request = effective(request, snapshot)
    return [spec for spec in request.specs() if spec.private not in snapshot]


def make_plan(
    request: Request, snapshot: Mapping[Path, Existing], new_keys: Mapping[Path, SigningKey]
) -> Plan:
    """The actions that make the files right; SetupError when that would lose something."""
    request = effective(request, snapshot)
    layout = request.layout
    _conflicts(request, snapshot)
    actions: list[Action] = []
    for directory in (layout.root, layout.keys):
        actions += _directory(directory, snapshot, DIR_MODE, None)
    actions += _directory(layout.key_dir(request.domain), snapshot, KEY_DIR_MODE, request.owner)
    keys = []
    for spec in request.specs():
        key, key_actions = _key(spec, request, snapshot, new_keys)
        keys.append((spec, key))
        actions += key_actions
    actions += _tables(request, snapshot)
    multiple = request.ed25519 or _has_multiple(snapshot.get(layout.config))
    conf = merge_settings(
        _text(snapshot.get(layout.config), layout.config),
        layout.settings(socket=request.socket, multiple=multiple),
        CONF_HEADER,
    )
    actions += _write(layout.config, conf, snapshot, PUBLIC_MODE)
    return Plan(tuple(actions), tuple(keys))


def _text(existing: Existing | None, path: Path) -> str | None:
    if existing is None:
        return None
    if existing.is_dir or existing.content is None:
        raise SetupError(f"{path} is a directory, not a file; move it away")
    try:
        return existing.content.decode("utf-8")
    except UnicodeDecodeError:
        raise SetupError(f"{path} is not UTF-8 text; fix or move it") from None


def _has_multiple(existing: Existing | None) -> bool:
    return existing is not None and b"multiplesignatures" in (existing.content or b"").lower()


def _directory(
    path: Path, snapshot: Mapping[Path, Existing], mode: int, owner: tuple[int, int] | None
) -> list[Action]:
    have = snapshot.get(path)
    if have is None:
        return [Action(Kind.MKDIR, path, mode, owner)]
    if not have.is_dir:
        raise SetupError(f"{path} is a file, not a directory; move it away")
    actions = []
    # Key directories must be exactly 0700; others only lose write access for group/other.
    wrong = have.mode != mode if mode == KEY_DIR_MODE else bool(have.mode & 0o022)
    if wrong:
        fixed = mode if mode == KEY_DIR_MODE else have.mode & ~0o022
        actions.append(Action(Kind.CHMOD, path, fixed, note=f"was {have.mode:04o}"))
    if owner is not None and (have.uid, have.gid) != owner:
        actions.append(Action(Kind.CHOWN, path, owner=owner, note="for UserID"))
    return actions


def _key(
    spec: KeySpec,
    request: Request,
    snapshot: Mapping[Path, Existing],
    new_keys: Mapping[Path, SigningKey],
) -> tuple[SigningKey, list[Action]]:
    have = snapshot.get(spec.private)
    actions: list[Action] = []
    if have is None:
        if spec.txt in snapshot:
            raise SetupError(
                f"{spec.txt} exists but {spec.private} does not: remove the stray .txt "
                "or choose another selector (--selector)"
            )
        key = new_keys[spec.private]
        if key.type is not spec.key_type:
            raise SetupError(f"internal: a {key.type.value} key for {spec.private}")
        actions.append(
            Action(Kind.WRITE, spec.private, KEY_MODE, request.owner, private_pem(key), "new key")
        )
    else:
        key = _load(spec, have)
        actions += _file_metadata(spec.private, have, KEY_MODE, request.owner)
    txt = KeyTxtRecord.for_key(key, spec.selector, request.domain).zone_text().encode()
    have_txt = snapshot.get(spec.txt)
    if have_txt is None:
        actions.append(Action(Kind.WRITE, spec.txt, KEY_MODE, request.owner, txt, "DNS record"))
    else:
        # An existing .txt is the admin's (opendkim-genkey's, say): kept as it is.
        actions += _file_metadata(spec.txt, have_txt, KEY_MODE, request.owner)
    return key, actions


def _load(spec: KeySpec, have: Existing) -> SigningKey:
    if have.is_dir or have.content is None:
        raise SetupError(f"{spec.private} is a directory; move it away")
    try:
        key = load_private_key(have.content, str(spec.private))
    except KeyFileError as exc:
        raise SetupError(f"{exc}; move it away or choose another selector") from None
    if key.type is not spec.key_type:
        want = "RSA" if spec.key_type is KeyType.RSA else "Ed25519"
        raise SetupError(f"{spec.private} holds a {key.type.value} key, not {want}")
    return key


def _file_metadata(
    path: Path, have: Existing, mode: int, owner: tuple[int, int] | None
) -> list[Action]:
    actions = []
    if have.mode != mode:
        actions.append(Action(Kind.CHMOD, path, mode, note=f"was {have.mode:04o}"))
    if owner is not None and (have.uid, have.gid) != owner:
        actions.append(Action(Kind.CHOWN, path, owner=owner, note="for UserID"))
    return actions


def _conflicts(request: Request, snapshot: Mapping[Path, Existing]) -> None:
    """Refuse, before anything else, what would contradict the tables that are there."""
    layout, domain = request.layout, request.domain
    key_table = _text(snapshot.get(layout.key_table), layout.key_table)
    signing_table = _text(snapshot.get(layout.signing_table), layout.signing_table)
    ours = {s.key_name(domain): s.key_table_value(domain) for s in request.specs()}
    for name, value in table_entries(key_table):
        if name in ours and value != ours[name]:
            raise SetupError(
                f"{layout.key_table} already has {name} as {value!r}, not {ours[name]!r}; "
                "fix that line or choose another selector"
            )
    pattern = f"*@{domain}"
    others = [v for k, v in table_entries(signing_table) if k.lower() == pattern and v not in ours]
    if others:
        raise SetupError(
            f"{domain} is already set up with key {others[0]} in {layout.signing_table}; "
            f"to change keys use: mailseal rotate {domain}"
        )


def _tables(request: Request, snapshot: Mapping[Path, Existing]) -> list[Action]:
    layout, domain = request.layout, request.domain
    key_table = _text(snapshot.get(layout.key_table), layout.key_table)
    signing_table = _text(snapshot.get(layout.signing_table), layout.signing_table)
    ours = {s.key_name(domain): s.key_table_value(domain) for s in request.specs()}
    pattern = f"*@{domain}"
    hosts = merge_lines(
        _text(snapshot.get(layout.trusted_hosts), layout.trusted_hosts),
        [*TRUSTED_HOSTS, *request.ips],
        "# Hosts whose mail is signed, not verified (InternalHosts, ExternalIgnoreList)\n",
    )
    keys = merge_lines(key_table, [f"{n}\t{v}" for n, v in ours.items()])
    signing = merge_lines(signing_table, [f"{pattern} {n}" for n in ours])
    actions: list[Action] = []
    for path, merged in (
        (layout.trusted_hosts, hosts),
        (layout.key_table, keys),
        (layout.signing_table, signing),
    ):
        actions += _write(path, merged, snapshot, PUBLIC_MODE)
    return actions


def _write(
    path: Path, merged: Merged, snapshot: Mapping[Path, Existing], mode: int
) -> list[Action]:
    have = snapshot.get(path)
    actions = []
    if have is None:
        note = "new file"
        actions.append(Action(Kind.WRITE, path, mode, None, merged.text.encode(), note))
    elif merged.changed:
        note = "; ".join(merged.changes)
        keep = (have.uid, have.gid)
        actions.append(Action(Kind.WRITE, path, have.mode, keep, merged.text.encode(), note))
    if have is not None and have.mode & stat.S_IWOTH:
        actions.append(Action(Kind.CHMOD, path, have.mode & ~0o022, note="was world-writable"))
    return actions


__all__ = [
    "Action",
    "Existing",
    "Kind",
    "Plan",
    "Request",
    "SetupError",
    "make_plan",
    "missing_keys",
]
