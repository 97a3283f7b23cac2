"""Merging wanted settings and table lines into existing files (mailseal.setup.merge)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailseal.setup.merge import MARK, merge_lines, merge_settings, table_entries

WANTED = [("Mode", "sv"), ("KeyTable", "file:/etc/opendkim/KeyTable"), ("UMask", "002")]

DEBIAN = """# This is a basic configuration for signing and verifying.
Syslog\t\t\tyes
SyslogSuccess\t\tyes
#Mode\t\t\tv
UMask\t\t\t007
Socket\t\t\tlocal:/run/opendkim/opendkim.sock
"""


def test_new_file_has_the_header_and_every_setting() -> None:
    merged = merge_settings(None, WANTED, "# head\n")
    assert merged.text == "# head\nMode\tsv\nKeyTable\tfile:/etc/opendkim/KeyTable\nUMask\t002\n"
    assert len(merged.changes) == 3


def test_existing_lines_are_rewritten_in_place_others_appended() -> None:
    merged = merge_settings(DEBIAN, WANTED, "# head\n")
    lines = merged.text.splitlines()
    assert lines[:4] == DEBIAN.splitlines()[:4]  # comments and other options kept
    assert lines[4] == "UMask\t002"  # replaced where it was
    assert lines[5] == "Socket\t\t\tlocal:/run/opendkim/opendkim.sock"
    assert lines[-3:] == [MARK, "Mode\tsv", "KeyTable\tfile:/etc/opendkim/KeyTable"]
    assert "UMask 002 (was 007)" in merged.changes
    assert merge_settings(merged.text, WANTED, "# head\n").changes == ()


def test_the_last_duplicate_is_the_one_changed() -> None:
    text = "Mode v\nMode s # later wins\n"
    merged = merge_settings(text, [("Mode", "sv")], "")
    assert merged.text == "Mode v\nMode\tsv\n"


def test_names_are_case_insensitive() -> None:
    assert merge_settings("mode\tsv\n", [("Mode", "sv")], "").changes == ()


def test_lines_are_appended_once() -> None:
    merged = merge_lines("127.0.0.1\n# comment\nlocalhost", ["127.0.0.1", "::1", "localhost"])
    assert merged.text == "127.0.0.1\n# comment\nlocalhost\n::1\n"
    assert merge_lines(merged.text, ["127.0.0.1", "::1"]).changes == ()
    assert merge_lines("a  b\n", ["a\tb"]).changes == ()  # compared word by word


def test_table_entries() -> None:
    text = "# c\nk1 d:s:/p # note\n\nk2\td2:s2:/q:ed25519-sha256\n"
    assert table_entries(text) == [("k1", "d:s:/p"), ("k2", "d2:s2:/q:ed25519-sha256")]


@given(st.lists(st.sampled_from(["Mode v", "UMask 007", "# x", "", "KeyTable refile:/x"])))
def test_merging_twice_changes_nothing(lines: list[str]) -> None:
    text = "\n".join(lines) + "\n"
    once = merge_settings(text, WANTED, "")
    assert merge_settings(once.text, WANTED, "").text == once.text
