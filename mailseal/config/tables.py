"""Which keys sign a message: KeyTable + SigningTable, or Domain + Selector + KeyFile.

KeyTable values are ``domain:selector:key[:algorithm]`` (the fourth field is
OpenDKIM pull request #202, not yet in a release): a domain of ``%`` means the
sender's domain; the key is a file when it starts with ``/``, ``./`` or ``../``
(a ``%`` in it is the domain) and key data otherwise. KeyTable names are
case-sensitive. SigningTable values are ``keyname[:signer]``; ``%`` as the key
name, and any ``%`` in the signer, is the sender's domain.

SigningTable lookup (``opendkim.c``, ``dkimf_apply_signtable``): a ``refile:``
table tries its patterns in file order against ``user@domain``; any other
table tries ``user@domain``, ``domain``, then for each parent
``user@.parent`` and ``.parent``, then ``user@*`` and ``*``. The first match
wins, or every match with MultipleSignatures. Domain mode signs when the
sender's domain (or ``*``) is in Domain, or with SubDomains a parent domain
is, which then becomes d=.

All keys are read when the config loads; a key file whose path holds ``%``
is found by globbing, one key per domain present then.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final, Protocol

from mailseal.config.datasets import Dataset, DatasetKind, Entry
from mailseal.config.keyfiles import KeyReader, key_from_bytes, load_key_file
from mailseal.config.model import SigningChoice, Warnings
from mailseal.dkim.keys import KeyType, SigningKey
from mailseal.errors import ConfigError, Where

ALGORITHMS: Final[dict[str, KeyType]] = {
    "rsa-sha256": KeyType.RSA,
    "ed25519-sha256": KeyType.ED25519,
}
_LABEL: Final = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?")


class SigningPolicy(Protocol):
    def choices(self, user: str, domain: str) -> list[SigningChoice]: ...


class NoSigning:
    """No KeyTable and no Domain: every message is verified."""

    def choices(self, user: str, domain: str) -> list[SigningChoice]:
        return []


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One KeyTable line with its key(s) loaded."""

    name: str
    domain: str  # lower case; "%" = the sender's domain
    selector: str
    algorithm: str | None  # the fourth field
    where: Where
    key: SigningKey | None  # None when the path holds "%": see by_domain
    by_domain: Mapping[str, SigningKey] = field(default_factory=dict)

    def key_for(self, domain: str) -> SigningKey | None:
        return self.key if self.key is not None else self.by_domain.get(domain)


@dataclass(frozen=True, slots=True)
class Options:
    """What loading keys needs to know."""

    reader: KeyReader
    require_safe: bool
    base_dir: Path | None  # BaseDirectory
    rsa_algorithm: str  # SignatureAlgorithm when it names an RSA algorithm
    warnings: Warnings


def algorithm_for(key: SigningKey, wanted: str | None, rsa_algorithm: str) -> str:
    """a= for a key: the KeyTable's fourth field, else by key type (RSA: SignatureAlgorithm)."""
    if wanted is not None:
        return wanted
    return "ed25519-sha256" if key.type is KeyType.ED25519 else rsa_algorithm


def identity_within(signer: str | None, domain: str) -> str | None:
    """An i= value, or None when it is empty or lies outside d= (RFC 6376 §3.5 "i=")."""
    if not signer:
        return None
    at = signer.rfind("@")
    idomain = signer[at + 1 :].lower().rstrip(".")
    if at < 0 or not (idomain == domain or idomain.endswith("." + domain)):
        return None
    return signer


# --- KeyTable ---------------------------------------------------------------------


def load_key_table(table: Dataset, opts: Options) -> dict[Where, KeyRecord]:
    """Parse every KeyTable line and read its key; records by the line they came from."""
    return {e.where: _key_record(e, table, opts) for e in table.entries}


def _key_record(entry: Entry, table: Dataset, opts: Options) -> KeyRecord:
    where = entry.where
    hint = "write NAME DOMAIN:SELECTOR:/path/to/key[:ALGORITHM]"
    parts = (entry.value or "").split(":", 3)
    if len(parts) < 3 or not all(p.strip() for p in parts[:3]):
        raise ConfigError(where, "KeyTable", f"key {entry.key!r} needs domain:selector:key", hint)
    domain, selector, keydata = (p.strip() for p in parts[:3])
    domain = domain.lower()
    if domain != "%" and not _is_domain(domain):
        raise ConfigError(where, "KeyTable", f"{domain!r} is not a domain name", hint)
    if not _is_domain(selector):
        raise ConfigError(where, "KeyTable", f"{selector!r} is not a valid selector", hint)
    algorithm = parts[3].strip().lower() if len(parts) == 4 and parts[3].strip() else None
    if algorithm is not None and algorithm not in ALGORITHMS:
        raise ConfigError(
            where,
            "KeyTable",
            f"unknown signing algorithm {algorithm!r} in the fourth field",
            "use rsa-sha256 or ed25519-sha256",
        )
    record = KeyRecord(entry.key, domain, selector, algorithm, where, None)
    if not keydata.startswith(("/", "./", "../")):
        # OpenDKIM compat: anything else is the key itself (PEM or base64 DER).
        key = key_from_bytes(keydata.encode(), f"key data of {entry.key!r}", where, "KeyTable")
        return _checked(replace(record, key=key))
    path = _key_path(keydata, table, opts)
    if "%" not in keydata:
        return _checked(replace(record, key=_load(path, where, opts)))
    if domain != "%":
        return _checked(
            replace(record, key=_load(Path(str(path).replace("%", domain)), where, opts))
        )
    return _checked(replace(record, by_domain=_templated_keys(path, where, opts)))


def _is_domain(text: str) -> bool:
    labels = text.rstrip(".").split(".")
    return len(text) <= 253 and all(_LABEL.fullmatch(label) for label in labels)


def _key_path(keydata: str, table: Dataset, opts: Options) -> Path:
    path = Path(keydata)
    if path.is_absolute():
        return path
    # OpenDKIM difference: relative to BaseDirectory, else to the KeyTable's folder.
    base = opts.base_dir or (table.path.parent if table.path else table.where.path.parent)
    return base / path


def _load(path: Path, where: Where, opts: Options) -> SigningKey:
    return load_key_file(path, where, "KeyTable", opts.reader, opts.require_safe, opts.warnings)


def _templated_keys(path: Path, where: Where, opts: Options) -> dict[str, SigningKey]:
    """Load every file a ``%`` path names now, by the domain that ``%`` stood for."""
    text = str(path)
    pieces = text.split("%")
    pattern = re.compile("(.+?)".join(re.escape(p) for p in pieces))
    keys: dict[str, SigningKey] = {}
    for name in sorted(glob.glob("*".join(glob.escape(p) for p in pieces))):
        match = pattern.fullmatch(name)
        if match is None or len(set(match.groups())) != 1:
            continue
        domain = match.group(1).lower()
        if _is_domain(domain):
            keys[domain] = _load(Path(name), where, opts)
    if not keys:
        opts.warnings.add(
            where, f"no key file matches {text} yet; the domains it covers are not signed"
        )
    return keys


def _checked(record: KeyRecord) -> KeyRecord:
    keys = [record.key] if record.key is not None else list(record.by_domain.values())
    for key in keys:
        wanted = ALGORITHMS.get(record.algorithm or "")
        if wanted is not None and wanted is not key.type:
            raise ConfigError(
                record.where,
                "KeyTable",
                f"key {record.name!r} is an {key.type.value} key but the line asks for "
                f"{record.algorithm}",
                f"use {key.type.default_algorithm} or leave the fourth field out",
            )
    return record


# --- SigningTable --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TableSigning:
    """KeyTable + SigningTable."""

    signing_table: Dataset
    key_table: Dataset
    records: Mapping[Where, KeyRecord]
    multiple: bool
    rsa_algorithm: str

    def record(self, keyname: str) -> KeyRecord | None:
        entry = self.key_table.find(keyname)
        return self.records.get(entry.where) if entry is not None else None

    def choices(self, user: str, domain: str) -> list[SigningChoice]:
        made: list[SigningChoice] = []
        for entry in self._matches(user, domain):
            choice = self._choice(entry, domain)
            if choice is None or choice in made:
                continue
            made.append(choice)
            if not self.multiple:
                break
        return made

    def _matches(self, user: str, domain: str) -> Iterator[Entry]:
        table = self.signing_table
        if table.kind is DatasetKind.REFILE:
            yield from table.find_all(f"{user}@{domain}")
            return
        keys = [f"{user}@{domain}", domain]
        at = domain.find(".")
        while at >= 0:
            keys += [f"{user}@{domain[at:]}", domain[at:]]
            at = domain.find(".", at + 1)
        keys += [f"{user}@*", "*"]
        for key in keys:
            yield from table.find_all(key)

    def _choice(self, entry: Entry, domain: str) -> SigningChoice | None:
        keyname, _, signer = (entry.value or "").partition(":")
        keyname = domain if keyname.strip() == "%" else keyname.strip()
        record = self.record(keyname)
        if record is None:
            return None  # only a "%" key name can miss: the others were checked at load
        d = domain if record.domain == "%" else record.domain
        key = record.key_for(d)
        if key is None:
            return None
        return SigningChoice(
            key=key,
            domain=d,
            selector=record.selector,
            identity=identity_within(signer.strip().replace("%", domain), d),
            algorithm=algorithm_for(key, record.algorithm, self.rsa_algorithm),
            keyname=keyname,
        )


def build_table_signing(
    signing_table: Dataset, key_table: Dataset, multiple: bool, opts: Options
) -> TableSigning:
    """Load the KeyTable's keys and check that every SigningTable line names a key."""
    records = load_key_table(key_table, opts)
    if signing_table.kind is not DatasetKind.REFILE:
        signing_table = _literal_wildcards(signing_table, opts.warnings)
    policy = TableSigning(signing_table, key_table, records, multiple, opts.rsa_algorithm)
    for entry in signing_table.entries:
        keyname = (entry.value or "").partition(":")[0].strip()
        if not keyname:
            raise ConfigError(
                entry.where,
                "SigningTable",
                f"{entry.key!r} names no key",
                "write PATTERN KEYNAME[:SIGNER], KEYNAME being a KeyTable name",
            )
        # OpenDKIM difference: OpenDKIM means to check this at start-up, but its check
        # skips refile: tables and lines without a signer, so the mistake shows up as a
        # tempfail for every message that matches the line.
        if keyname != "%" and policy.record(keyname) is None:
            raise ConfigError(
                entry.where,
                "SigningTable",
                f"key {keyname!r} is not in the KeyTable ({key_table.path or key_table.spec})",
                "KeyTable names are case-sensitive; add the key there or fix the name",
            )
    return policy


def _literal_wildcards(table: Dataset, warnings: Warnings) -> Dataset:
    """Read ``*@example.com`` and ``*.example.com`` in a file: table as meant, with a warning."""
    entries = []
    for entry in table.entries:
        key = entry.key
        meant = None
        if key.startswith("*@") and "*" not in key[2:] and len(key) > 2:
            meant = key[2:]
        elif key.startswith("*.") and "*" not in key[1:] and len(key) > 2:
            meant = key[1:]
        if meant is not None:
            # OpenDKIM compat: in a file: table keys are literal, so OpenDKIM never matches
            # these; match what they obviously mean.
            warnings.add(
                entry.where,
                f"OpenDKIM never matches {key!r} in a {table.kind.value}: SigningTable "
                f"(wildcards work only in refile:); mailseal reads it as {meant!r}",
            )
            entry = replace(entry, key=meant)
        entries.append(entry)
    return replace(table, entries=tuple(entries))


# --- Domain + Selector + KeyFile -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DomainSigning:
    """One key for the domains in ``Domain`` (OpenDKIM's original mode)."""

    domains: Dataset
    selector: str
    key: SigningKey
    keyname: str
    subdomains: bool
    algorithm: str

    def choices(self, user: str, domain: str) -> list[SigningChoice]:
        d: str | None = None
        if self.domains.find(domain) is not None or self.domains.find("*") is not None:
            d = domain
        elif self.subdomains:
            parts = domain.split(".")
            for i in range(1, len(parts)):
                parent = ".".join(parts[i:])
                if self.domains.find(parent) is not None:
                    d = parent
                    break
        if d is None:
            return []
        return [SigningChoice(self.key, d, self.selector, None, self.algorithm, self.keyname)]


__all__ = [
    "ALGORITHMS",
    "DomainSigning",
    "KeyRecord",
    "NoSigning",
    "Options",
    "SigningPolicy",
    "TableSigning",
    "algorithm_for",
    "build_table_signing",
    "identity_within",
    "load_key_table",
]
