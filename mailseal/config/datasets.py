"""OpenDKIM datasets: ``file:``, ``refile:``, ``csl:``, a bare path or a comma list.

How OpenDKIM 2.11 reads a dataset name (``opendkim-db.c``, ``dkimf_db_open``):
the text before the first colon names the type, unless a comma comes first;
with no type, a value starting with ``/`` is a file and anything else a
comma-separated list. A ``file:`` line is a key, white space, then an optional
value (the rest of the line); ``#`` starts a comment. A ``refile:`` line is a
wildcard pattern and an optional value; the pattern becomes an anchored
POSIX regular expression where only ``*`` (any run), ``.`` and ``+`` (literal)
are rewritten, and lookups try the patterns in file order. A list item may be
``key=value``.

mailseal also reads ``./x`` and ``../x`` as files (OpenDKIM: a one-item list),
a list whose first item holds a colon (``::1,127.0.0.1``; OpenDKIM: an unknown
type), and an indented ``refile:`` line (OpenDKIM skips it); each with a warning
where OpenDKIM behaves otherwise. ``dsn:``, ``ldap:`` and the other back ends
are refused with a clear error.
"""

from __future__ import annotations

import difflib
import enum
import re
import warnings as warnings_module
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from mailseal.config.grammar import read_bytes, text_lines
from mailseal.config.model import Warnings
from mailseal.errors import ConfigError, Where


class DatasetKind(enum.Enum):
    FILE = "file"
    REFILE = "refile"
    CSL = "csl"


#: OpenDKIM's other dataset types, by what they need.
UNSUPPORTED_TYPES: Final[dict[str, str]] = {
    "db": "Berkeley DB",
    "dsn": "SQL",
    "ldap": "LDAP",
    "ldapi": "LDAP",
    "ldaps": "LDAP",
    "lua": "Lua",
    "memcache": "memcached",
    "mdb": "LMDB",
    "repute": "REPUTE",
    "socket": "socket",
    "erlang": "Erlang",
}
_KNOWN_TYPES: Final = tuple(kind.value for kind in DatasetKind) + tuple(UNSUPPORTED_TYPES)
_SPACE: Final = " \t\r\n\v\f"
_KEY_AND_VALUE: Final = re.compile(r"([^ \t\r\n\v\f]+)[ \t\r\n\v\f]*(.*)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Entry:
    """One record: a key (or pattern), an optional value, and where it was written."""

    key: str
    value: str | None
    where: Where
    regex: re.Pattern[str] | None = None  # refile: only


@dataclass(frozen=True, slots=True)
class Dataset:
    """A loaded dataset; lookups follow OpenDKIM's rules for its kind."""

    kind: DatasetKind
    spec: str  # as written in the config
    where: Where  # the config line that named it
    path: Path | None
    entries: tuple[Entry, ...]
    icase: bool = True  # keys compared without regard to case

    def find(self, key: str) -> Entry | None:
        """The first entry for ``key`` (a refile: pattern that matches it), or None."""
        return next(self.find_all(key), None)

    def find_all(self, key: str) -> Iterator[Entry]:
        """Every entry for ``key``, in file order."""
        if self.kind is DatasetKind.REFILE:
            return (e for e in self.entries if e.regex is not None and e.regex.fullmatch(key))
        if self.icase:
            folded = key.casefold()
            return (e for e in self.entries if e.key.casefold() == folded)
        return (e for e in self.entries if e.key == key)

    def keys(self) -> tuple[str, ...]:
        return tuple(e.key for e in self.entries)


def glob_to_regex(pattern: str) -> str:
    """OpenDKIM's ``dkimf_mkregexp``: ``*`` -> ``.*``, ``.`` and ``+`` literal, anchored."""
    return "".join({"*": ".*", ".": r"\.", "+": r"\+"}.get(c, c) for c in pattern)


def open_dataset(
    spec: str,
    where: Where,
    option: str,
    warnings: Warnings,
    *,
    base_dir: Path,
    icase: bool = True,
) -> Dataset:
    """Load the dataset a config value names; errors point at that line or the file's."""
    kind, rest = _kind_of(spec, where, option, warnings)
    if kind is DatasetKind.CSL:
        return Dataset(kind, spec, where, None, _csl_entries(rest, where), icase)
    path = Path(rest)
    if not rest:
        raise ConfigError(where, option, f"{spec!r} names no file", f"e.g. {kind.value}:/etc/x")
    if not path.is_absolute():
        # OpenDKIM difference: relative to BaseDirectory or the naming file, not the cwd.
        path = base_dir / path
    data = read_bytes(path, where, option, f"{option} file")
    lines = text_lines(data, path, option)
    if kind is DatasetKind.FILE:
        return Dataset(kind, spec, where, path, _file_entries(lines), icase)
    return Dataset(kind, spec, where, path, _refile_entries(lines, option, warnings, icase), icase)


def _kind_of(spec: str, where: Where, option: str, warnings: Warnings) -> tuple[DatasetKind, str]:
    colon, comma = spec.find(":"), spec.find(",")
    if colon < 0 or 0 <= comma < colon:
        if spec.startswith("/"):
            return DatasetKind.FILE, spec
        if spec.startswith(("./", "../")):
            warnings.add(
                where,
                f"{spec!r} is read as a file; OpenDKIM reads a value without a leading '/' as "
                "a list of names (write file:" + spec + " to be explicit)",
            )
            return DatasetKind.FILE, spec
        return DatasetKind.CSL, spec
    name, rest = spec[:colon], spec[colon + 1 :]
    lowered = name.lower()
    for kind in DatasetKind:
        if lowered == kind.value:
            return kind, rest
    if lowered in UNSUPPORTED_TYPES:
        raise ConfigError(
            where,
            option,
            f"{name}: datasets ({UNSUPPORTED_TYPES[lowered]}) are not supported yet",
            "export the data to a file: or refile: dataset",
        )
    if name.isalpha():
        close = difflib.get_close_matches(lowered, _KNOWN_TYPES, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}:'?" if close else "use file:, refile: or csl:"
        raise ConfigError(where, option, f"unknown dataset type {name + ':'!r}", hint)
    # OpenDKIM difference: "::1,127.0.0.1" is a list here; OpenDKIM calls "" an unknown type.
    return DatasetKind.CSL, spec


def _csl_entries(text: str, where: Where) -> tuple[Entry, ...]:
    entries = []
    for item in text.split(","):
        key, eq, value = item.partition("=")
        key = key.strip(_SPACE)
        if key:  # strtok skips empty items
            entries.append(Entry(key, value.strip(_SPACE) if eq else None, where))
    return tuple(entries)


def _file_entries(lines: list[tuple[Where, str]]) -> tuple[Entry, ...]:
    entries = []
    for where, line in lines:
        match = _KEY_AND_VALUE.match(line.split("#", 1)[0].strip(_SPACE))
        if match:
            entries.append(Entry(match.group(1), match.group(2).strip(_SPACE) or None, where))
    return tuple(entries)


def _refile_entries(
    lines: list[tuple[Where, str]], option: str, warnings: Warnings, icase: bool
) -> tuple[Entry, ...]:
    entries = []
    for where, line in lines:
        text = line.split("#", 1)[0]
        match = _KEY_AND_VALUE.match(text.strip(_SPACE))
        if not match:
            continue
        if text[:1] in (" ", "\t"):
            # OpenDKIM difference: it cuts the pattern at the first white space, here
            # the first character, and so skips the whole line without a word.
            warnings.add(where, "OpenDKIM ignores a refile: line that starts with white space")
        pattern = match.group(1)
        try:
            with warnings_module.catch_warnings():
                warnings_module.simplefilter("ignore")  # FutureWarning on "[[" and the like
                regex = re.compile(glob_to_regex(pattern), re.IGNORECASE if icase else 0)
        except (re.error, RecursionError, OverflowError, ValueError) as exc:
            raise ConfigError(
                where,
                option,
                f"{pattern!r} is not a usable pattern ({exc})",
                "only * is a wildcard; escape other regular-expression characters with \\",
            ) from None
        value = match.group(2).strip(_SPACE) or None
        entries.append(Entry(pattern, value, where, regex))
    return tuple(entries)


__all__ = ["Dataset", "DatasetKind", "Entry", "UNSUPPORTED_TYPES", "glob_to_regex", "open_dataset"]
