"""The opendkim.conf grammar: ``Name value`` lines, comments, Include, typed values.

As OpenDKIM's ``config.c`` reads it: a line is cut at the first ``#`` or
carriage return; the name runs to the first space or tab and is matched without
regard to case; the value is the rest with surrounding spaces and tabs removed
and must not be empty; booleans are read by their first letter; integers as C's
``strtol(s, &end, 0)`` reads them (``0x1f`` hex, ``017`` octal) with nothing
left over; the last of several settings of one name wins, an included file's
settings counting where its Include line stands. Unlike OpenDKIM, an unknown
name's error says which known name is closest, and Include paths are relative
to the including file.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from mailseal.config.model import Warnings
from mailseal.config.options import Kind, Option, closest_option, find_option
from mailseal.errors import ConfigError, Where

#: OpenDKIM's MAXLEVEL: the top file is level 0, so five nested Includes are allowed.
MAX_INCLUDE_DEPTH: Final = 5
#: Config files, datasets and keys larger than this are refused (they are a few KB).
MAX_FILE_BYTES: Final = 16 * 1024 * 1024

_TRUE: Final = frozenset("tTyY1")
_FALSE: Final = frozenset("fFnN0")
# strtol(s, &end, 0) accepting the whole string: optional sign, then hex, octal or decimal.
_C_INTEGER: Final = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
_INT_MAX: Final = 2**31 - 1
# The name is the first run of characters other than space and tab (strtok(" \t")).
_NAME_AND_REST: Final = re.compile(r"[ \t]*([^ \t]+)(.*)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Setting:
    """One ``Name value`` line, checked against its option's type."""

    option: Option
    value: str  # as written, trimmed
    where: Where
    flag: bool | None = None  # for a boolean option
    number: int | None = None  # for an integer option


def read_bytes(path: Path, named_at: Where, option: str, what: str) -> bytes:
    """Read a whole regular file, or raise a ConfigError at the line that named it."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ConfigError(named_at, option, f"{what} {path} is not a regular file")
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(named_at, option, f"cannot read {what} {path}: {reason}") from None
    except ValueError as exc:  # e.g. a NUL byte in the path
        raise ConfigError(named_at, option, f"cannot read {what} {path!s}: {exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(named_at, option, f"{what} {path} is larger than {MAX_FILE_BYTES} bytes")
    return data


def text_lines(data: bytes, path: Path, option: str) -> list[tuple[Where, str]]:
    """Split file contents into numbered text lines (``\\n`` ends a line, as fgets does)."""
    lines: list[tuple[Where, str]] = []
    for number, raw in enumerate(data.split(b"\n"), 1):
        where = Where(path, number)
        if b"\0" in raw:
            raise ConfigError(where, option, "the line holds a NUL byte", "remove it")
        try:
            lines.append((where, raw.decode("utf-8")))
        except UnicodeDecodeError:
            raise ConfigError(
                where, option, "the line is not UTF-8 text", "save the file as UTF-8"
            ) from None
    return lines


def parse_bool(text: str) -> bool | None:
    """A boolean by its first letter (``tTyY1`` true, ``fFnN0`` false), else None."""
    if text[:1] in _TRUE:
        return True
    if text[:1] in _FALSE:
        return False
    return None


def parse_c_integer(text: str) -> int | None:
    """An integer as ``strtol(text, &end, 0)`` reads it with nothing left over, else None."""
    if not _C_INTEGER.fullmatch(text):
        return None
    sign = -1 if text[0] == "-" else 1
    digits = text.lstrip("+-")
    if digits[:2] in ("0x", "0X"):
        return sign * int(digits[2:], 16)
    if digits.startswith("0"):
        return sign * int(digits, 8)
    return sign * int(digits, 10)


def read_config(path: Path, warnings: Warnings) -> dict[str, Setting]:
    """Read a config file and its Includes; return the last setting of each option.

    Keys are the options' canonical names. Ignored (unsupported) options are
    checked, warned about and left out.
    """
    settings: dict[str, Setting] = {}
    data = read_bytes(path, Where(path, 0), "", "configuration file")
    _read_into(path, data, settings, warnings, stack=(_identity(path),))
    return settings


def _identity(path: Path) -> str:
    try:
        return str(path.resolve())
    except (OSError, RuntimeError, ValueError):
        return os.path.abspath(path)


def _read_into(
    path: Path,
    data: bytes,
    settings: dict[str, Setting],
    warnings: Warnings,
    stack: tuple[str, ...],
) -> None:
    for where, line in text_lines(data, path, ""):
        setting = _parse_line(where, line)
        if setting is None:
            continue
        option = setting.option
        if option.kind is Kind.INCLUDE:
            _include(setting, settings, warnings, stack)
        elif option.supported:
            settings[option.name] = setting
        else:
            text = f"option {option.name} is not supported by mailseal and is ignored"
            warnings.add(where, text + (f" ({option.note})" if option.note else ""))


def _include(
    setting: Setting, settings: dict[str, Setting], warnings: Warnings, stack: tuple[str, ...]
) -> None:
    where = setting.where
    target = Path(setting.value)
    if not target.is_absolute():
        # OpenDKIM difference: relative to the including file, not the working directory.
        target = where.path.parent / target
    key = _identity(target)
    if key in stack:
        chain = " -> ".join([*stack[stack.index(key) :], key])
        raise ConfigError(where, "Include", f"Include loop: {chain}", "remove one of the Includes")
    if len(stack) > MAX_INCLUDE_DEPTH:
        raise ConfigError(
            where,
            "Include",
            f"Include nested more than {MAX_INCLUDE_DEPTH} levels deep",
            "flatten the included files",
        )
    data = read_bytes(target, where, "Include", "included file")
    _read_into(target, data, settings, warnings, (*stack, key))


def _parse_line(where: Where, line: str) -> Setting | None:
    cut = len(line)
    for stop in ("#", "\r"):
        at = line.find(stop)
        if at >= 0:
            cut = min(cut, at)
    match = _NAME_AND_REST.match(line[:cut])
    if match is None:
        return None  # blank or comment
    name, rest = match.group(1), match.group(2)
    option = find_option(name)
    if option is None:
        close = closest_option(name)
        hint = f"did you mean {close!r}?" if close else "see docs/configuration.md for the names"
        raise ConfigError(where, name, f"unknown option {name!r}", hint)
    value = rest.strip(" \t")
    if not value:
        raise ConfigError(where, option.name, f"{option.name} needs a value", _example(option))
    if option.kind is Kind.BOOL:
        flag = parse_bool(value)
        if flag is None:
            raise ConfigError(
                where, option.name, f"{option.name} takes yes or no, not {value!r}", "use yes or no"
            )
        return Setting(option, value, where, flag=flag)
    if option.kind is Kind.INT:
        number = parse_c_integer(value)
        if number is None or abs(number) > _INT_MAX:
            raise ConfigError(
                where,
                option.name,
                f"{option.name} takes a whole number, not {value!r}",
                "write digits only, e.g. 5 (0x1f is hex and a leading 0 means octal)",
            )
        return Setting(option, value, where, number=number)
    return Setting(option, value, where)


def _example(option: Option) -> str:
    if option.kind is Kind.BOOL:
        return f"e.g. {option.name} yes"
    if option.kind is Kind.INT:
        return f"e.g. {option.name} 5"
    return f"write {option.name} and its value on one line, or delete the line"


__all__ = [
    "MAX_FILE_BYTES",
    "MAX_INCLUDE_DEPTH",
    "Setting",
    "parse_bool",
    "parse_c_integer",
    "read_bytes",
    "read_config",
    "text_lines",
]
