"""Write key files the way opendkim-genkey leaves them, without ever losing an old key.

``SELECTOR.private`` and ``SELECTOR.txt`` are both mode 0600 (opendkim-genkey
runs under ``umask 077``). A file is written to a temporary name in the same
directory, flushed to disk, then linked into place: a crash leaves either the
old file or the new one, never half a key. Without ``replace`` the link fails
when the name exists (no race with another writer); with it, the old file is
first hard-linked to a dated backup name, so nothing is ever deleted.
"""

from __future__ import annotations

import contextlib
import os
import pwd
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from mailseal.errors import MailsealError

KEY_MODE: Final = 0o600
KEY_DIR_MODE: Final = 0o700


class KeyFileExists(MailsealError):
    """A key file is already there and replacing it was not asked for."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(f"{path} already exists")


class WriteError(MailsealError):
    """A file or directory could not be written; the message names it and the fix."""


@dataclass(frozen=True, slots=True)
class KeyPaths:
    """Where a selector's files live: ``DIR/SELECTOR.private`` and ``DIR/SELECTOR.txt``."""

    directory: Path
    selector: str

    @property
    def private(self) -> Path:
        return self.directory / f"{self.selector}.private"

    @property
    def txt(self) -> Path:
        return self.directory / f"{self.selector}.txt"

    def existing(self) -> list[Path]:
        return [p for p in (self.private, self.txt) if p.exists() or p.is_symlink()]


def backup_path(path: Path, now: datetime) -> Path:
    """``NAME.YYYYMMDD-HHMMSS`` beside ``path``; ``-2``, ``-3``... if that is taken too."""
    stem = f"{path.name}.{now:%Y%m%d-%H%M%S}"
    candidate = path.with_name(stem)
    n = 2
    while candidate.exists() or candidate.is_symlink():
        candidate = path.with_name(f"{stem}-{n}")
        n += 1
    return candidate


def describe(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def _fix_for(exc: OSError, directory: Path) -> str:
    if isinstance(exc, PermissionError):
        return f"run as root, or give a directory you can write to ({directory} is not writable)"
    if isinstance(exc, FileNotFoundError):
        return f"create it first: mkdir -p {directory}"
    return "check the path"


def write_file(
    path: Path,
    data: bytes,
    *,
    mode: int = KEY_MODE,
    replace: bool = False,
    backup_time: datetime | None = None,
    owner: tuple[int, int] | None = None,
    keep_backup: bool = True,
) -> Path | None:
    """Write ``data`` to ``path`` atomically; return the backup made of an old file, if any.

    ``keep_backup`` false replaces an old file without a backup (for state files).

    Raises :class:`KeyFileExists` when ``path`` exists and ``replace`` is false,
    :class:`WriteError` when the directory cannot be written.
    """
    directory = path.parent
    if not directory.is_dir():
        raise WriteError(f"cannot write {path}: no directory {directory} (mkdir -p {directory})")
    if not replace and (path.exists() or path.is_symlink()):
        raise KeyFileExists(path)
    backup: Path | None = None
    try:
        with _temporary(directory, path.name, data, mode, owner) as tmp:
            if replace and (path.exists() or path.is_symlink()):
                if keep_backup:
                    backup = backup_path(path, backup_time or datetime.now())
                    os.link(path, backup, follow_symlinks=False)
                os.replace(tmp, path)
            else:
                try:
                    os.link(tmp, path)  # fails if someone created it meanwhile
                except FileExistsError:
                    raise KeyFileExists(path) from None
        _sync_dir(directory)
    except OSError as exc:
        fix = _fix_for(exc, directory)
        raise WriteError(f"cannot write {path}: {describe(exc)} ({fix})") from None
    return backup


@contextlib.contextmanager
def _temporary(
    directory: Path, name: str, data: bytes, mode: int, owner: tuple[int, int] | None
) -> Iterator[Path]:
    """A fully written, synced temporary file beside the target; removed on the way out."""
    for n in range(100):
        tmp = directory / f".{name}.mailseal-{os.getpid()}-{n}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - a hundred stale temporary files
        raise FileExistsError(f"temporary files for {name} in {directory}")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)  # the umask may have taken bits away
            if owner is not None:
                os.fchown(handle.fileno(), *owner)
            os.fsync(handle.fileno())
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _sync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def user_ids(name: str) -> tuple[int, int] | None:
    """(uid, gid) of a system user, or None when there is no such user."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


__all__ = [
    "KEY_DIR_MODE",
    "KEY_MODE",
    "KeyFileExists",
    "KeyPaths",
    "WriteError",
    "backup_path",
    "user_ids",
    "write_file",
]
