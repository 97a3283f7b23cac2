"""``mailseal genkey`` and ``mailseal testkey`` command-line contracts (in process, zone files)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailseal.cli.main import cli
from mailseal.dkim.keys import KeyType, generate_key, load_private_key, private_pem
from mailseal.dkim.publish import KeyTxtRecord


def run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def zone(path: Path, *records: str) -> Path:
    head = "$ORIGIN example.com.\n$TTL 300\n@ IN SOA ns. hostmaster. 1 3600 600 86400 300\n"
    path.write_text(head + "".join(r if r.endswith("\n") else r + "\n" for r in records))
    return path


# --- genkey --------------------------------------------------------------------------


def test_genkey_writes_both_files_0600_and_prints_the_zone_text(tmp_path: Path) -> None:
    rc, out, err = run("genkey", "-b", "1024", "-s", "mail", "-d", "example.com", "-D", tmp_path)
    assert rc == 0, err
    private, txt = tmp_path / "mail.private", tmp_path / "mail.txt"
    for f in (private, txt):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    key = load_private_key(private.read_bytes())
    assert key.type is KeyType.RSA and key.bits == 1024
    assert out == txt.read_text()
    assert txt.read_text() == KeyTxtRecord.for_key(key, "mail", "example.com").zone_text()


@pytest.mark.parametrize("fmt", ["flat", "json"])
def test_genkey_formats(tmp_path: Path, fmt: str) -> None:
    rc, out, _ = run(
        "genkey", "--ed25519", "-s", "ed", "-d", "example.com", "-D", tmp_path, "--format", fmt
    )
    assert rc == 0
    key = load_private_key((tmp_path / "ed.private").read_bytes())
    record = KeyTxtRecord.for_key(key, "ed", "example.com")
    if fmt == "flat":
        assert out == record.value + "\n"
        assert out.startswith("v=DKIM1; h=sha256; k=ed25519; p=")
    else:
        data = json.loads(out)
        assert data == {
            "name": "ed._domainkey.example.com",
            "type": "TXT",
            "value": record.value,
            "strings": list(record.strings),
        }


def test_genkey_options_like_opendkim_genkey(tmp_path: Path) -> None:
    args: list[str | Path] = ["-b", "1024", "-s", "x", "-d", "example.org", "-D", tmp_path]
    args += ["-t", "-S", "-r", "-a"]
    rc, out, _ = run("genkey", *args, "-n", "note", "-h", "sha256")
    assert rc == 0
    head = '"v=DKIM1; n=\\"note\\"; h=sha256; k=rsa; t=y:s; s=email; "'
    assert out.startswith("x._domainkey.example.org.\tIN\tTXT\t( " + head)


def test_genkey_never_overwrites_without_force(tmp_path: Path) -> None:
    assert run("genkey", "-b", "1024", "-s", "mail", "-d", "example.com", "-D", tmp_path)[0] == 0
    before = (tmp_path / "mail.private").read_bytes()
    rc, out, err = run("genkey", "-b", "1024", "-s", "mail", "-d", "example.com", "-D", tmp_path)
    assert rc == 1 and out == ""
    assert "already exists" in err and "--force" in err and "Traceback" not in err
    assert (tmp_path / "mail.private").read_bytes() == before
    rc, _, _ = run(
        "genkey", "-b", "1024", "-s", "mail", "-d", "example.com", "-D", tmp_path, "--force"
    )
    assert rc == 0
    backups = sorted(
        p.name for p in tmp_path.iterdir() if ".private." in p.name or ".txt." in p.name
    )
    assert len(backups) == 2
    kept = next(p for p in tmp_path.iterdir() if p.name.startswith("mail.private."))
    assert kept.read_bytes() == before and stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert (tmp_path / "mail.private").read_bytes() != before


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["-d", "not a domain"], "not a domain name"),
        (["-d", "example..com"], "not a domain name"),
        (["-s", "bad selector"], "not a valid selector"),
        (["-h", "md5"], "unknown hash"),
        (["-D", "/nonexistent/dir"], "mkdir -p /nonexistent/dir"),
        (["-b", "512"], "1024"),
    ],
)
def test_genkey_clear_errors(tmp_path: Path, args: list[str], words: str) -> None:
    rc, out, err = run("genkey", "-D", tmp_path, *args)
    assert rc == 2, (out, err)
    assert words in err and "Traceback" not in err


def test_genkey_unwritable_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    real_open = os.open

    def refuse(path: object, flags: int, mode: int = 0o777) -> int:
        if str(path).startswith(str(tmp_path)) and flags & os.O_CREAT:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, mode)  # type: ignore[arg-type]

    # root may write anywhere: make the directory refuse as it would for another user
    monkeypatch.setattr(os, "open", refuse)
    rc, _, err = run("genkey", "-b", "1024", "-D", tmp_path)
    assert rc == 2 and "Traceback" not in err
    assert f"cannot write {tmp_path}/default.private: permission denied" in err
    assert "run as root" in err
    assert list(tmp_path.iterdir()) == []


def test_genkey_help_has_an_example() -> None:
    rc, out, _ = run("genkey", "--help")
    assert rc == 0 and "mailseal genkey -s mail -d example.com" in out


# --- testkey -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("testkey")
    d.chmod(0o700)
    out = {"dir": d}
    for name, kind in (("rsa", KeyType.RSA), ("ed", KeyType.ED25519), ("other", KeyType.RSA)):
        key = generate_key(kind, 1024)
        path = d / f"{name}.private"
        path.write_bytes(private_pem(key))
        path.chmod(0o600)
        out[name] = path
        (d / f"{name}.value").write_text(KeyTxtRecord.for_key(key, name, "example.com").zone_text())
    return out


def config(d: Path, lines: list[str], kind: str = "refile") -> Path:
    (d / "KeyTable").write_text("".join(line + "\n" for line in lines))
    conf = d / f"{kind}.conf"
    conf.write_text(f"KeyTable {kind}:{d}/KeyTable\nSigningTable refile:{d}/KeyTable\n")
    return conf


def test_testkey_refile_keytable_with_ed25519_all_ok(keys: dict[str, Path]) -> None:
    d = keys["dir"]
    conf = config(
        d,
        [
            f"rsa._domainkey.example.com example.com:rsa:{keys['rsa']}",
            f"ed._domainkey.example.com example.com:ed:{keys['ed']}:ed25519-sha256",
        ],
    )
    z = zone(d / "ok.zone", (d / "rsa.value").read_text(), (d / "ed.value").read_text())
    rc, out, err = run("testkey", "-x", conf, "--zone", z, "-v")
    assert rc == 0, out + err
    assert "rsa._domainkey.example.com: key OK; key not secure" in out
    assert "ed._domainkey.example.com: key OK" in out
    assert "2 keys checked; 2 pass, 0 fail" in out


@pytest.mark.parametrize(
    ("published", "code", "word"),
    [
        ("", 69, "key not found"),
        ("other", 65, "key mismatch"),
        ('rsa._domainkey IN TXT "v=DKIM1; k=rsa; p=@@@"', 65, "record invalid"),
    ],
)
def test_testkey_exit_codes(keys: dict[str, Path], published: str, code: int, word: str) -> None:
    d = keys["dir"]
    conf = config(d, [f"rsa._domainkey.example.com example.com:rsa:{keys['rsa']}"], "file")
    record = published
    if published == "other":
        record = (d / "other.value").read_text().replace("other._domainkey", "rsa._domainkey")
    z = zone(d / f"{code}.zone", record)
    rc, out, err = run("testkey", "-x", conf, "--zone", z)
    assert rc == code, out + err
    assert f"rsa._domainkey.example.com: {word}" in out
    assert "fix:" in out


def test_testkey_command_line_key_and_json(keys: dict[str, Path]) -> None:
    d = keys["dir"]
    z = zone(d / "cl.zone", (d / "ed.value").read_text())
    rc, out, _ = run(
        "testkey", "-d", "example.com", "-s", "ed", "-k", keys["ed"], "--zone", z, "--json"
    )
    assert rc == 0
    data = json.loads(out)
    assert data["exit"] == 0 and data["keys"][0]["result"] == "key OK"
    assert data["keys"][0]["secure"] is False


def test_testkey_usage_and_config_errors(keys: dict[str, Path], tmp_path: Path) -> None:
    assert run("testkey", "--bogus")[0] == 64
    rc, _, err = run("testkey", "-d", "no such", "-s", "x")
    assert rc == 64 and "not a domain name" in err
    rc, _, err = run("testkey", "-x", tmp_path / "missing.conf")
    assert rc == 78 and "cannot read" in err and "Traceback" not in err
    bad = tmp_path / "bad.conf"
    bad.write_text("Canonicalisation relaxed\n")
    rc, _, err = run("testkey", "-x", bad)
    assert rc == 78 and "did you mean 'Canonicalization'" in err


def test_testkey_unreadable_key_file(keys: dict[str, Path]) -> None:
    d = keys["dir"]
    conf = config(d, [f"rsa._domainkey.example.com example.com:rsa:{d}/gone.private"], "file")
    z = zone(d / "gone.zone", (d / "rsa.value").read_text())
    rc, out, _ = run("testkey", "-x", conf, "--zone", z)
    assert rc == 78 and "cannot read" in out


def test_testkey_help_has_an_example() -> None:
    rc, out, _ = run("testkey", "--help")
    assert rc == 0 and "mailseal testkey -x /etc/opendkim.conf" in out
