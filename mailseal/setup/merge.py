"""Merge wanted settings and table lines into existing files: text in, text out.

Everything already there stays, comments and unknown options included. A
setting that is present with another value has its (last, the one OpenDKIM
uses) line rewritten in place; a missing one is appended. Table lines are
appended when missing. Running a merge on its own output changes nothing,
which is what makes ``setup`` idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass

MARK = "# added by mailseal setup"


@dataclass(frozen=True, slots=True)
class Merged:
    """A file's new text and what changed in it, for people."""

    text: str
    changes: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def _setting(line: str) -> tuple[str, str] | None:
    """(lower-case name, value) of an opendkim.conf line, None for blanks and comments."""
    body = line.split("#", 1)[0].strip(" \t\r\n")
    if not body:
        return None
    name, _, value = body.replace("\t", " ").partition(" ")
    return name.lower(), value.strip(" \t")


def merge_settings(text: str | None, wanted: list[tuple[str, str]], header: str) -> Merged:
    """Set each ``(Name, value)`` in an opendkim.conf (OpenDKIM: the last line of a name wins)."""
    if text is None:
        body = "".join(f"{name}\t{value}\n" for name, value in wanted)
        return Merged(header + body, tuple(f"{name} {value}" for name, value in wanted))
    lines = text.splitlines(keepends=True)
    last: dict[str, int] = {}
    for i, line in enumerate(lines):
        parsed = _setting(line)
        if parsed is not None:
            last[parsed[0]] = i
    changes: list[str] = []
    appended: list[str] = []
    for name, value in wanted:
        at = last.get(name.lower())
        if at is None:
            appended.append(f"{name}\t{value}\n")
            changes.append(f"{name} {value} (added)")
            continue
        parsed = _setting(lines[at])
        assert parsed is not None
        if parsed[1] != value:
            changes.append(f"{name} {value} (was {parsed[1]})")
            lines[at] = f"{name}\t{value}\n"
    if appended:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines += ["\n", MARK + "\n", *appended]
    return Merged("".join(lines), tuple(changes))


def _tokens(line: str) -> tuple[str, ...]:
    return tuple(line.split("#", 1)[0].split())


def merge_lines(text: str | None, wanted: list[str], header: str = "") -> Merged:
    """Append each wanted line that is not there yet (compared word by word, comments aside)."""
    have = {_tokens(line) for line in (text or "").splitlines()}
    missing = [w for w in wanted if _tokens(w) not in have]
    if text is None:
        return Merged(header + "".join(w + "\n" for w in wanted), tuple(wanted))
    if not missing:
        return Merged(text, ())
    sep = "" if not text or text.endswith("\n") else "\n"
    return Merged(text + sep + "".join(w + "\n" for w in missing), tuple(missing))


def table_entries(text: str | None) -> list[tuple[str, str]]:
    """(key, value) of each line of a file: or refile: table, in order."""
    entries = []
    for line in (text or "").splitlines():
        tokens = _tokens(line)
        if tokens:
            entries.append((tokens[0], " ".join(tokens[1:])))
    return entries


__all__ = ["MARK", "Merged", "merge_lines", "merge_settings", "table_entries"]
