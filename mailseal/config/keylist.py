"""List the signing keys an opendkim.conf names, without loading them: for testkey and rotate.

``load_config`` reads every key and refuses the whole file when one key is
unsafe or unreadable, which is right for the milter. A key checker wants the
opposite: every KeyTable line (or the Domain/Selector/KeyFile trio), each
judged on its own, so one bad key does not hide the others. The grammar,
datasets and path rules are the milter's (``grammar``, ``datasets``,
``tables``), so both see the same keys at the same paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mailseal.config.datasets import Dataset, DatasetKind, Entry, open_dataset
from mailseal.config.grammar import Setting, read_config
from mailseal.config.model import ConfigWarning, Warnings
from mailseal.config.tables import ALGORITHMS
from mailseal.errors import ConfigError, Where


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One signing key as the configuration names it."""

    name: str  # the KeyTable key name, or the KeyFile value
    domain: str  # lower case; "%" = the sender's domain
    selector: str
    key: str  # a path (resolved as the milter resolves it) or inline key data
    is_file: bool
    algorithm: str | None  # the KeyTable's fourth field
    where: Where  # the KeyTable line (or KeyFile setting)


@dataclass(frozen=True, slots=True)
class KeyListing:
    """The keys of a configuration and the settings around them."""

    entries: tuple[KeyEntry, ...]
    key_table: Path | None  # the KeyTable file, when KeyTable is a file: or refile: dataset
    key_table_kind: DatasetKind | None
    signing_table: Path | None
    signing_table_kind: DatasetKind | None
    user_id: str | None
    pid_file: Path | None
    nameservers: tuple[str, ...]
    warnings: tuple[ConfigWarning, ...]


def list_keys(path: Path) -> KeyListing:
    """Read ``path`` (and its Includes) and list its signing keys; ConfigError if unreadable."""
    warnings = Warnings()
    settings = read_config(Path(path), warnings)
    base_dir = _base_dir(settings)
    entries: list[KeyEntry] = []
    key_table = signing_table = None
    if "KeyTable" in settings:
        key_table = _dataset(settings["KeyTable"], "KeyTable", base_dir, warnings, icase=False)
        entries = [_entry(e, key_table, base_dir) for e in key_table.entries]
    elif "KeyFile" in settings and "Selector" in settings:
        keyfile = settings["KeyFile"]
        keypath = Path(keyfile.value)
        if not keypath.is_absolute():
            keypath = (base_dir or keyfile.where.path.parent) / keypath
        domains = _domains(settings, base_dir, warnings)
        entries = [
            KeyEntry(keyfile.value, d, settings["Selector"].value, str(keypath), True, None, w)
            for d, w in domains
        ]
    if "SigningTable" in settings:
        signing_table = _dataset(settings["SigningTable"], "SigningTable", base_dir, warnings)
    nameservers = settings.get("Nameservers")
    return KeyListing(
        entries=tuple(entries),
        key_table=key_table.path if key_table else None,
        key_table_kind=key_table.kind if key_table else None,
        signing_table=signing_table.path if signing_table else None,
        signing_table_kind=signing_table.kind if signing_table else None,
        user_id=settings["UserID"].value if "UserID" in settings else None,
        pid_file=Path(settings["PidFile"].value) if "PidFile" in settings else None,
        nameservers=tuple(
            n.strip() for n in (nameservers.value if nameservers else "").split(",") if n.strip()
        ),
        warnings=warnings.freeze(),
    )


def _base_dir(settings: dict[str, Setting]) -> Path | None:
    base = settings.get("BaseDirectory")
    if base is None:
        return None
    path = Path(base.value)
    return path if path.is_absolute() else base.where.path.parent / path


def _dataset(
    setting: Setting, option: str, base_dir: Path | None, warnings: Warnings, *, icase: bool = True
) -> Dataset:
    return open_dataset(
        setting.value,
        setting.where,
        option,
        warnings,
        base_dir=base_dir or setting.where.path.parent,
        icase=icase,
    )


def _domains(
    settings: dict[str, Setting], base_dir: Path | None, warnings: Warnings
) -> list[tuple[str, Where]]:
    if "Domain" not in settings:
        return []
    dataset = _dataset(settings["Domain"], "Domain", base_dir, warnings)
    return [(e.key.lower(), e.where) for e in dataset.entries]


def _entry(entry: Entry, table: Dataset, base_dir: Path | None) -> KeyEntry:
    parts = (entry.value or "").split(":", 3)
    if len(parts) < 3 or not all(p.strip() for p in parts[:3]):
        raise ConfigError(
            entry.where,
            "KeyTable",
            f"key {entry.key!r} needs domain:selector:key",
            "write NAME DOMAIN:SELECTOR:/path/to/key[:ALGORITHM]",
        )
    domain, selector, keydata = (p.strip() for p in parts[:3])
    algorithm = parts[3].strip().lower() if len(parts) == 4 and parts[3].strip() else None
    if algorithm is not None and algorithm not in ALGORITHMS:
        raise ConfigError(
            entry.where,
            "KeyTable",
            f"unknown signing algorithm {algorithm!r} in the fourth field",
            "use rsa-sha256 or ed25519-sha256",
        )
    is_file = keydata.startswith(("/", "./", "../"))
    if is_file and not keydata.startswith("/"):
        # As the milter does (tables._key_path): relative to BaseDirectory, else the table's folder.
        base = base_dir or (table.path.parent if table.path else table.where.path.parent)
        keydata = str(base / keydata)
    return KeyEntry(entry.key, domain.lower(), selector, keydata, is_file, algorithm, entry.where)


__all__ = ["KeyEntry", "KeyListing", "list_keys"]
