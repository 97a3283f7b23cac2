"""``mailseal setup`` on a temporary root: files, idempotence, second domain, errors."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailseal.cli.main import cli
from mailseal.config import load_config
from mailseal.config.keyfiles import KeyReader
from mailseal.keys.files import user_ids

ZONE = """$ORIGIN example.com.
$TTL 300
@ IN SOA ns.example.com. hostmaster.example.com. 1 3600 600 86400 300
@ IN MX 10 mx.example.com.
mx IN A 192.0.2.10
"""


def run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def tree(root: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Every file and directory under root: mode, owner, group and contents."""
    out = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        data = path.read_bytes() if path.is_file() else b""
        out[str(path.relative_to(root))] = (info.st_mode, info.st_uid, info.st_gid, data)
    return out


def reader() -> KeyReader:
    """Whose view key safety is judged from: the UserID user when setup could chown to it."""
    if os.geteuid() == 0 and user_ids("opendkim"):
        return KeyReader.for_user("opendkim")
    return KeyReader.current()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    tmp_path.chmod(0o700)
    (tmp_path / "zone").write_text(ZONE)
    return tmp_path / "etc"


def setup(root: Path, *args: str) -> tuple[int, str, str]:
    return run("setup", "--root", root, "--zone", root.parent / "zone", *args)


def test_setup_writes_the_tutorial_layout(root: Path) -> None:
    rc, out, err = setup(root, "example.com", "--ip", "192.0.2.10")
    assert rc == 0, out + err
    assert "made 9 change(s)" in out
    for name in ("opendkim.conf", "KeyTable", "SigningTable", "TrustedHosts"):
        assert stat.S_IMODE((root / name).stat().st_mode) == 0o644
    keydir = root / "keys" / "example.com"
    assert stat.S_IMODE(keydir.stat().st_mode) == 0o700
    for name in ("mail.private", "mail.txt"):
        info = (keydir / name).stat()
        assert stat.S_IMODE(info.st_mode) == 0o600
        if os.geteuid() == 0 and user_ids("opendkim"):
            assert (info.st_uid, info.st_gid) == user_ids("opendkim")
    conf = (root / "opendkim.conf").read_text()
    assert f"KeyTable\tfile:{root}/KeyTable" in conf
    assert f"SigningTable\trefile:{root}/SigningTable" in conf
    assert f"InternalHosts\trefile:{root}/TrustedHosts" in conf
    assert "Socket\tinet:12145@localhost" in conf and "UserID\topendkim:opendkim" in conf
    hosts = (root / "TrustedHosts").read_text()
    assert "192.168.0.1/24" not in hosts and "*." not in hosts
    # What mailseal milter -n checks: the config loads and signs for example.com.
    config = load_config(root / "opendkim.conf", key_reader=reader())
    [choice] = config.signing_for("alice@example.com")
    assert (choice.domain, choice.selector, choice.algorithm) == (
        "example.com",
        "mail",
        "rsa-sha256",
    )
    # Postfix lines and records.
    assert "milter_protocol = 6" in out and "the tutorial's 2 works too" in out
    assert "smtpd_milters = inet:localhost:12145" in out
    assert 'SPF    example.com TXT "v=spf1 mx ip4:192.0.2.10 -all"' in out
    assert (
        'DMARC  _dmarc.example.com TXT "v=DMARC1; p=none; rua=mailto:postmaster@example.com"' in out
    )
    assert "p=quarantine; rua=mailto:postmaster@example.com; t=y" in out
    assert "PTR    ask your hosting provider: 10.2.0.192.in-addr.arpa PTR mx.example.com." in out
    assert (keydir / "mail.txt").read_text() in out.replace("           ", "")


def test_second_run_changes_nothing(root: Path) -> None:
    assert setup(root, "example.com", "--ip", "192.0.2.10", "--ed25519")[0] == 0
    before = tree(root)
    rc, out, _ = setup(root, "example.com", "--ip", "192.0.2.10", "--ed25519")
    assert rc == 0 and "nothing to change" in out
    assert tree(root) == before


def test_second_domain_is_appended(root: Path) -> None:
    assert setup(root, "example.com")[0] == 0
    rc, out, _ = setup(root, "example.org", "--json")
    data = json.loads(out)
    assert rc == 0 and data["changed"] is True
    assert (root / "SigningTable").read_text().splitlines() == [
        "*@example.com mail._domainkey.example.com",
        "*@example.org mail._domainkey.example.org",
    ]
    assert [r["kind"] for r in data["records"]] == ["DKIM", "SPF", "DMARC"]
    config = load_config(root / "opendkim.conf", key_reader=reader())
    assert config.signing_for("a@example.org")[0].domain == "example.org"
    assert config.signing_for("a@example.com")[0].domain == "example.com"
    backups = [p.name for p in root.iterdir() if p.name.startswith("KeyTable.")]
    assert len(backups) == 1  # the changed table's old version is kept


def test_ed25519_dual_keys_sign_together(root: Path) -> None:
    rc, out, _ = setup(root, "example.com", "--ed25519")
    assert rc == 0 and "OpenDKIM 2.11" in out
    config = load_config(root / "opendkim.conf", key_reader=reader())
    algorithms = [c.algorithm for c in config.signing_for("a@example.com")]
    assert algorithms == ["rsa-sha256", "ed25519-sha256"]


def test_dry_run_changes_nothing(root: Path) -> None:
    rc, out, _ = setup(root, "example.com", "--dry-run")
    assert rc == 0 and "would make 9 change(s)" in out
    assert not root.exists()


def test_existing_debian_config_is_merged_and_kept(root: Path) -> None:
    root.mkdir()
    conf = root / "opendkim.conf"
    conf.write_text("Syslog yes\nOversignHeaders From\nSocket local:/run/opendkim/opendkim.sock\n")
    assert setup(root, "example.com")[0] == 0
    text = conf.read_text()
    assert "OversignHeaders From" in text and "Socket\tinet:12145@localhost" in text
    kept = [p for p in root.iterdir() if p.name.startswith("opendkim.conf.")]
    assert len(kept) == 1 and "local:/run/opendkim" in kept[0].read_text()


def test_domain_set_up_with_another_key_is_refused(root: Path) -> None:
    assert setup(root, "example.com")[0] == 0
    before = tree(root)
    rc, _, err = setup(root, "example.com", "--selector", "other")
    assert rc == 1 and "mailseal rotate example.com" in err and "Traceback" not in err
    assert tree(root) == before


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["exa mple.com"], "not a domain name"),
        (["example.com", "--ip", "300.1.1.1"], "not an IP address"),
        (["example.com", "--selector", "a b"], "not a valid selector"),
        (["example.com", "--rua", "https://x.example"], "email only"),
        (["example.com", "--socket", "12145"], "not a milter socket"),
        (["example.com", "--hostname", "no such host"], "not a domain name"),
    ],
)
def test_usage_errors(root: Path, args: list[str], words: str) -> None:
    rc, _, err = setup(root, *args)
    assert rc == 2 and words in err and "Traceback" not in err
    assert not root.exists()


def test_unwritable_place(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.access
    monkeypatch.setattr(
        os, "access", lambda p, m: False if str(p) == str(root.parent) else real(p, m)
    )
    rc, _, err = setup(root, "example.com")
    assert rc == 2 and f"cannot write in {root.parent}" in err and "Traceback" not in err
    assert not root.exists()


def test_help_has_an_example() -> None:
    rc, out, _ = run("setup", "--help")
    assert rc == 0 and "mailseal setup example.com --ip 192.0.2.10" in out
