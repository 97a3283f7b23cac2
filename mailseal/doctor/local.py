"""What this machine's OpenDKIM configuration says about a domain (reads files: a shell).

The KeyTable names the selectors a domain signs with, so ``mailseal check``
need not guess them; with the private key readable (as root), the DKIM check
also sees a published key that is not the one signing, and ``--send-test``
can sign its message. The keys are listed without loading the whole
configuration (``config.keylist``), so one unreadable key hides nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from mailseal.config.keylist import KeyEntry, list_keys
from mailseal.dkim.keys import SigningKey, load_private_key
from mailseal.doctor.dkimcheck import Selector, Source
from mailseal.errors import ConfigError, KeyFileError

DEFAULT_CONFIG: Final = Path("/etc/opendkim.conf")


@dataclass(frozen=True, slots=True)
class LocalKeys:
    """The KeyTable's selectors for one domain, and what could not be read."""

    selectors: tuple[Selector, ...]
    notes: tuple[str, ...]


def configured_selectors(path: Path, domain: str) -> LocalKeys:
    """The selectors ``path``'s KeyTable lists for ``domain`` (or for every domain, ``%``)."""
    if not path.is_file():
        return LocalKeys((), ())
    try:
        listing = list_keys(path)
    except (ConfigError, OSError) as exc:
        return LocalKeys((), (f"{path}: {exc} (its KeyTable is not used)",))
    found: dict[str, Selector] = {}
    notes: list[str] = []
    for entry in listing.entries:
        if entry.domain not in (domain, "%") or entry.selector in found:
            continue
        key, problem = _load(entry)
        if problem:
            notes.append(problem)
        found[entry.selector] = Selector(entry.selector, Source.CONFIG, key)
    return LocalKeys(tuple(found.values()), tuple(notes))


def _load(entry: KeyEntry) -> tuple[SigningKey | None, str]:
    source = entry.key if entry.is_file else f"KeyTable {entry.name}"
    try:
        data = Path(entry.key).read_bytes() if entry.is_file else entry.key.encode("latin-1")
        return load_private_key(data, source), ""
    except OSError as exc:
        why = exc.strerror or str(exc)
        return None, f"{source}: {why} (the published key is checked, not compared with it)"
    except KeyFileError as exc:
        return None, str(exc)


__all__ = ["DEFAULT_CONFIG", "LocalKeys", "configured_selectors"]
