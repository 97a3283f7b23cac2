"""Datasets: how a value names one, how each kind reads, and where errors point."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailseal.config.datasets import Dataset, DatasetKind, glob_to_regex, open_dataset
from mailseal.config.model import Warnings
from mailseal.errors import ConfigError, Where
from tests.config.conftest import ConfDir

HERE = Where(Path("/etc/opendkim.conf"), 7)


def opened(spec: str, base: Path, *, icase: bool = True) -> tuple[Dataset, Warnings]:
    warnings = Warnings()
    return open_dataset(spec, HERE, "InternalHosts", warnings, base_dir=base, icase=icase), warnings


def error(spec: str, base: Path) -> str:
    with pytest.raises(ConfigError) as info:
        opened(spec, base)
    return str(info.value)


# --- naming a dataset ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ("csl:a,b", DatasetKind.CSL),
        ("CSL:a", DatasetKind.CSL),
        ("a,b", DatasetKind.CSL),
        ("127.0.0.1,::1", DatasetKind.CSL),  # comma before the first colon
        ("::1,127.0.0.1", DatasetKind.CSL),  # OpenDKIM: unknown type ""
        ("2001:db8::/32", DatasetKind.CSL),
        ("From", DatasetKind.CSL),
        ("192.168.0.0/16", DatasetKind.CSL),
    ],
)
def test_lists(spec: str, kind: DatasetKind, tmp_path: Path) -> None:
    assert opened(spec, tmp_path)[0].kind is kind


def test_csl_items_and_values(tmp_path: Path) -> None:
    ds, _ = opened("csl: a , b=x|y ,, c= ,", tmp_path)
    assert [(e.key, e.value) for e in ds.entries] == [("a", None), ("b", "x|y"), ("c", "")]
    assert all(e.where == HERE for e in ds.entries)


@pytest.mark.parametrize("prefix", ["", "file:", "FILE:"])
def test_file(conf: ConfDir, prefix: str) -> None:
    path = conf.write("hosts", "# comment\n\n  alpha   one two  \nbeta\t# c\ngamma#x\n")
    ds, _ = opened(f"{prefix}{path}", conf.root)
    assert ds.kind is DatasetKind.FILE and ds.path == path
    assert [(e.key, e.value, e.where.line) for e in ds.entries] == [
        ("alpha", "one two", 3),
        ("beta", None, 4),
        ("gamma", None, 5),
    ]
    assert ds.entries[0].where == Where(path, 3)


def test_relative_file_is_relative_to_base(conf: ConfDir) -> None:
    conf.write("sub/hosts", "x\n")
    ds, warnings = opened("file:sub/hosts", conf.root)
    assert ds.path == conf.root / "sub/hosts" and not warnings.freeze()


def test_dot_slash_is_a_file_with_a_warning(conf: ConfDir) -> None:
    conf.write("hosts", "x\n")
    ds, warnings = opened("./hosts", conf.root)
    assert ds.kind is DatasetKind.FILE and ds.keys() == ("x",)
    (w,) = warnings.freeze()
    assert w.where == HERE and "OpenDKIM reads a value without a leading '/'" in w.text


def test_refile(conf: ConfDir) -> None:
    path = conf.write(
        "re", "*@example.com  key1:alice@example.com\nfoo+bar@x.org key2\n  *.net k3\n"
    )
    ds, warnings = opened(f"refile:{path}", conf.root)
    assert ds.kind is DatasetKind.REFILE
    first = ds.find("Bob@EXAMPLE.com")
    assert first is not None and first.value == "key1:alice@example.com"
    assert ds.find("bob@example.com.evil") is None  # anchored
    assert ds.find("bob@exampleXcom") is None  # "." is literal
    assert ds.find("foo+bar@x.org") is not None and ds.find("foooobar@x.org") is None
    # The indented line: OpenDKIM skips it, mailseal reads it and says so.
    assert ds.find("a@b.net") is not None
    (w,) = warnings.freeze()
    assert w.where == Where(path, 3) and "starts with white space" in w.text


def test_refile_case_sensitive_when_asked(conf: ConfDir) -> None:
    path = conf.write("kt", "Key.One x\n")
    ds, _ = opened(f"refile:{path}", conf.root, icase=False)
    assert ds.find("Key.One") is not None and ds.find("key.one") is None


def test_refile_keeps_other_regex_syntax(conf: ConfDir) -> None:
    path = conf.write("re", "[ab]*@example.com k\n")
    ds, _ = opened(f"refile:{path}", conf.root)
    assert ds.find("a@example.com") and ds.find("bzz@example.com")
    assert ds.find("c@example.com") is None


def test_refile_first_match_in_file_order(conf: ConfDir) -> None:
    path = conf.write("re", "*@example.com first\nalice@example.com second\n")
    ds, _ = opened(f"refile:{path}", conf.root)
    assert [e.value for e in ds.find_all("alice@example.com")] == ["first", "second"]
    found = ds.find("alice@example.com")
    assert found is not None and found.value == "first"


def test_bad_refile_pattern_names_its_line(conf: ConfDir) -> None:
    path = conf.write("re", "ok k\n(unclosed k\n")
    assert error(f"refile:{path}", conf.root).startswith(
        f"{path}:2: '(unclosed' is not a usable pattern"
    )


def test_glob_to_regex() -> None:
    assert glob_to_regex("*.example+x.com") == r".*\.example\+x\.com"


def test_file_lookup_ignores_case_unless_told(conf: ConfDir) -> None:
    path = conf.write("f", "Example.COM v\n")
    assert opened(str(path), conf.root)[0].find("example.com") is not None
    assert opened(str(path), conf.root, icase=False)[0].find("example.com") is None


# --- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "what"), [("dsn", "SQL"), ("ldap", "LDAP"), ("db", "Berkeley DB")]
)
def test_unsupported_back_ends(tmp_path: Path, kind: str, what: str) -> None:
    assert error(f"{kind}:mysql://u:p@h/db/table=t", tmp_path) == (
        f"/etc/opendkim.conf:7: {kind}: datasets ({what}) are not supported yet "
        "(export the data to a file: or refile: dataset)"
    )


def test_unknown_type_did_you_mean(tmp_path: Path) -> None:
    assert error("refiel:/etc/x", tmp_path) == (
        "/etc/opendkim.conf:7: unknown dataset type 'refiel:' (did you mean 'refile:'?)"
    )


def test_missing_file_names_the_config_line(tmp_path: Path) -> None:
    assert error(f"refile:{tmp_path}/TrustedHosts", tmp_path) == (
        f"/etc/opendkim.conf:7: cannot read InternalHosts file {tmp_path}/TrustedHosts: "
        "No such file or directory"
    )


def test_empty_path(tmp_path: Path) -> None:
    assert error("file:", tmp_path).startswith("/etc/opendkim.conf:7: 'file:' names no file")


def test_non_utf8_dataset_line(conf: ConfDir) -> None:
    path = conf.root / "f"
    path.write_bytes(b"a\nb\xff\n")
    assert error(str(path), conf.root).startswith(f"{path}:2: the line is not UTF-8 text")


def test_dataset_errors_through_load_config(conf: ConfDir) -> None:
    assert conf.error("Mode v\nPeerList dsn:pgsql://x\n").startswith(
        f"{conf.root}/opendkim.conf:2: dsn: datasets (SQL) are not supported yet"
    )
