"""The setup shell: read the files into a snapshot, then carry out a plan's actions.

Writes go through :func:`mailseal.keys.files.write_file` (a temporary file,
fsync, then a link into place), so a crash never leaves half a file; an
existing file that is changed is kept first as ``NAME.YYYYMMDD-HHMMSS``.
Before anything is changed every directory to be written is checked, so an
unwritable place stops setup with nothing done.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from mailseal.keys.files import WriteError, write_file
from mailseal.setup.plan import Action, Existing, Kind, Request, SetupError

#: Files larger than this are not what setup writes (keys, tables, configs are a few KB).
MAX_READ = 4 * 1024 * 1024


def paths_of(request: Request) -> list[Path]:
    """Every path whose state the plan needs."""
    layout = request.layout
    paths = [layout.root, layout.keys, layout.key_dir(request.domain)]
    for spec in request.specs():
        paths += [spec.private, spec.txt]
    paths += [layout.trusted_hosts, layout.key_table, layout.signing_table, layout.config]
    return paths


def snapshot(paths: Iterable[Path]) -> dict[Path, Existing]:
    """The current state of each path that exists (files with their contents)."""
    found: dict[Path, Existing] = {}
    for path in paths:
        try:
            info = os.stat(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise SetupError(
                f"cannot look at {path}: {(exc.strerror or str(exc)).lower()}"
            ) from None
        mode = stat.S_IMODE(info.st_mode)
        if stat.S_ISDIR(info.st_mode):
            found[path] = Existing(True, mode, info.st_uid, info.st_gid)
            continue
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_READ:
            raise SetupError(f"{path} is not a regular file setup can use; move it away")
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise SetupError(f"cannot read {path}: {(exc.strerror or str(exc)).lower()}") from None
        found[path] = Existing(False, mode, info.st_uid, info.st_gid, content)
    return found


def preflight(actions: Iterable[Action]) -> None:
    """Refuse before changing anything when a directory cannot be written."""
    planned = {a.path for a in actions if a.kind is Kind.MKDIR}
    for action in actions:
        if action.kind is not Kind.WRITE and action.kind is not Kind.MKDIR:
            continue
        parent = action.path.parent
        if parent in planned:
            continue
        if not parent.is_dir():
            raise SetupError(f"no directory {parent} to write {action.path} in (mkdir -p {parent})")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise SetupError(
                f"cannot write in {parent}: permission denied (run setup as root, "
                "or give --root DIR for a directory you can write)"
            )


def apply(actions: Iterable[Action], now: datetime) -> list[Path]:
    """Carry out the actions in order; return the backups made of changed files."""
    backups: list[Path] = []
    for action in actions:
        try:
            backup = _do(action, now)
        except WriteError as exc:
            raise SetupError(f"{exc}; what was done so far stays, re-run setup to finish") from None
        except OSError as exc:
            why = (exc.strerror or str(exc)).lower()
            raise SetupError(
                f"cannot {action.kind.value} {action.path}: {why}; what was done so far stays, "
                "re-run setup to finish"
            ) from None
        if backup is not None:
            backups.append(backup)
    return backups


def _do(action: Action, now: datetime) -> Path | None:
    if action.kind is Kind.MKDIR:
        os.mkdir(action.path, action.mode)
        os.chmod(action.path, action.mode)  # the umask may have taken bits away
        if action.owner is not None:
            os.chown(action.path, *action.owner)
        return None
    if action.kind is Kind.CHMOD:
        os.chmod(action.path, action.mode)
        return None
    if action.kind is Kind.CHOWN:
        assert action.owner is not None
        os.chown(action.path, *action.owner)
        return None
    assert action.content is not None
    exists = action.path.exists()
    return write_file(
        action.path,
        action.content,
        mode=action.mode,
        replace=exists,
        backup_time=now,
        owner=action.owner,
    )


__all__ = ["apply", "paths_of", "preflight", "snapshot"]
