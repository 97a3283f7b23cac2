"""Read signing keys at load time, refusing key files other users could read or replace.

The rule (RequireSafeKeys, on by default): the file belongs to root or to the
user the milter signs as; no permission bits for "other"; group bits only for
a group that user is in; no directory above it writable by other users (a
sticky directory such as /tmp is fine: nobody else can replace a file in it)
or by a group the user is not in. With ``RequireSafeKeys no`` the same findings
are warnings. Every finding names the file and the command that fixes it.

OpenDKIM differences (``opendkim.c``, ``dkimf_securefile``): OpenDKIM refuses
group access unless the group has no member but the milter user and root
(after the tutorial's ``gpasswd -a postfix opendkim``, a 0640 root:opendkim key
is refused); it refuses a key under any world-writable directory, /tmp
included; and it reads KeyTable keys per message, while mailseal reads them
all at load time so a broken key stops a reload instead of a message.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from mailseal.config.grammar import read_bytes
from mailseal.config.model import Warnings
from mailseal.dkim.keys import SigningKey, load_private_key
from mailseal.errors import ConfigError, KeyFileError, Where

_OTHER: Final = stat.S_IROTH | stat.S_IWOTH | stat.S_IXOTH
_GROUP: Final = stat.S_IRGRP | stat.S_IWGRP | stat.S_IXGRP


@dataclass(frozen=True, slots=True)
class KeyReader:
    """The identity key files are checked against: who signs."""

    uid: int
    gids: frozenset[int]
    name: str

    @classmethod
    def current(cls) -> KeyReader:
        """This process: its effective user and groups."""
        uid = os.geteuid()
        gids = frozenset({os.getegid(), *os.getgroups()})
        return cls(uid, gids, _user_name(uid))

    @classmethod
    def for_user(cls, spec: str) -> KeyReader:
        """The user of a ``UserID`` value (``user[:group]``); LookupError if unknown."""
        user, _, group = spec.partition(":")
        try:
            entry = pwd.getpwnam(user)
            gids = {entry.pw_gid, *os.getgrouplist(user, entry.pw_gid)}
            if group:
                gids.add(grp.getgrnam(group).gr_gid)
        except (KeyError, ValueError, OSError) as exc:
            raise LookupError(str(exc)) from None
        return cls(entry.pw_uid, frozenset(gids), user)


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def key_file_problems(path: Path, info: os.stat_result, reader: KeyReader) -> list[tuple[str, str]]:
    """What makes a key file unsafe, as (problem, fix command) pairs; empty when safe."""
    problems: list[tuple[str, str]] = []
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid not in (0, reader.uid):
        allowed = "root" if reader.uid == 0 else f"{reader.name} or root"
        problems.append(
            (
                f"it belongs to {_user_name(info.st_uid)}, not to {allowed}",
                f"chown {reader.name} {path}",
            )
        )
    if mode & _OTHER:
        problems.append((f"every user can read it (mode {mode:04o})", f"chmod 600 {path}"))
    elif mode & _GROUP and info.st_gid not in reader.gids:
        group = _group_name(info.st_gid)
        problems.append(
            (
                f"group {group} can read it (mode {mode:04o}) and {reader.name} is not in {group}",
                f"chmod 600 {path}",
            )
        )
    for directory in _parents(path):
        try:
            dinfo = os.stat(directory)
        except OSError:
            continue
        dmode = dinfo.st_mode
        if dmode & stat.S_ISVTX:
            continue  # sticky (like /tmp): only a file's owner can replace it
        if dmode & stat.S_IWOTH:
            problems.append(
                (f"every user can write to the directory {directory}", f"chmod o-w {directory}")
            )
        elif dmode & stat.S_IWGRP and dinfo.st_gid not in reader.gids:
            problems.append(
                (
                    f"group {_group_name(dinfo.st_gid)} can write to the directory {directory}",
                    f"chmod g-w {directory}",
                )
            )
    return problems


def _parents(path: Path) -> list[Path]:
    try:
        real = path.resolve()
    except (OSError, RuntimeError):
        real = path.absolute()
    return list(real.parents)


def load_key_file(
    path: Path,
    where: Where,
    option: str,
    reader: KeyReader,
    require_safe: bool,
    warnings: Warnings,
) -> SigningKey:
    """Read a private key file named at ``where``, checking that it is safe."""
    data = read_bytes(path, where, option, "key file")
    try:
        info = os.stat(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(where, option, f"cannot read key file {path}: {exc}") from None
    problems = key_file_problems(path, info, reader)
    if problems:
        why = "; ".join(problem for problem, _ in problems)
        fix = " && ".join(dict.fromkeys(fix for _, fix in problems))
        if require_safe:
            raise ConfigError(
                where,
                option,
                f"key file {path} is not safe: {why}",
                f"fix: {fix}; or set RequireSafeKeys no to use it anyway",
            )
        warnings.add(
            where, f"key file {path} is not safe: {why} (fix: {fix}); used as RequireSafeKeys is no"
        )
    return key_from_bytes(data, str(path), where, option)


def key_from_bytes(data: bytes, source: str, where: Where, option: str) -> SigningKey:
    """Parse key data, turning the engine's KeyFileError into a ConfigError at ``where``."""
    try:
        return load_private_key(data, source)
    except KeyFileError as exc:
        raise ConfigError(where, option, str(exc)) from None


__all__ = ["KeyReader", "key_file_problems", "key_from_bytes", "load_key_file"]
