"""Configs people have: the seed tutorial's four files and Debian's stock opendkim.conf."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mailseal.config.keyfiles import KeyReader
from mailseal.config.opendkim import OnAction, load_config
from mailseal.dkim.canon import Canon
from mailseal.dkim.keys import SigningKey, private_pem
from mailseal.errors import ConfigError, Where
from tests.config.conftest import VECTORS, ConfDir

TUTORIAL = VECTORS / "tutorial"


def install_tutorial(root: Path, key: SigningKey) -> Path:
    """Write the tutorial's files as its reader would, under ``root`` instead of /etc."""
    etc = root / "opendkim"
    keys = etc / "keys" / "example.com"
    keys.mkdir(parents=True, mode=0o700)
    for directory in (etc, etc / "keys"):
        directory.chmod(0o700)

    def place(name: str, target: Path) -> Path:
        text = (TUTORIAL / name).read_text()
        target.write_text(
            text.replace("yourdomain.com", "example.com").replace("/etc/opendkim/", f"{etc}/")
        )
        return target

    for name in ("TrustedHosts", "KeyTable", "SigningTable"):
        place(name, etc / name)
    key_path = keys / "mail.private"  # what `opendkim-genkey -s mail -d example.com` writes, 0600
    key_path.write_bytes(private_pem(key))
    key_path.chmod(0o600)
    return place("opendkim.conf", root / "opendkim.conf")


def test_tutorial_files_load_unchanged(conf: ConfDir, rsa_key: SigningKey) -> None:
    config = install_tutorial(conf.root, rsa_key)
    cfg = load_config(config, key_reader=KeyReader.current())  # UserID opendkim may not exist here

    assert cfg.syslog and cfg.umask == 0o002
    assert (cfg.header_canon, cfg.body_canon) == (Canon.RELAXED, Canon.SIMPLE)
    assert (cfg.mode_sign, cfg.mode_verify) == (True, True)
    assert cfg.pid_file == Path("/var/run/opendkim/opendkim.pid")
    assert cfg.signature_algorithm == "rsa-sha256"
    assert cfg.auto_restart and cfg.auto_restart_rate == (10, 3600)
    assert cfg.user_id == "opendkim:opendkim"
    assert cfg.socket == "inet:12145@localhost"
    assert cfg.on_dns_error is OnAction.TEMPFAIL

    (choice,) = cfg.signing_for("alice@example.com")
    assert (choice.domain, choice.selector, choice.algorithm) == (
        "example.com",
        "mail",
        "rsa-sha256",
    )
    assert choice.keyname == "mail._domainkey.example.com" and choice.identity is None
    assert choice.key.public_der() == rsa_key.public_der()
    assert cfg.signing_for("alice@example.org") == []

    for peers in (cfg.internal_hosts, cfg.external_ignore):
        assert peers.matches("127.0.0.1", None)
        assert peers.matches(None, "localhost")
        assert peers.matches("192.168.0.42", "unknown")  # trap 1, matched as meant
        assert peers.matches("203.0.113.7", "mail.example.com")  # trap 2, matched as meant
        assert not peers.matches("192.168.1.1", "mail.example.org")

    hosts = conf.root / "opendkim" / "TrustedHosts"
    assert [w.where for w in cfg.warnings] == [Where(hosts, 3), Where(hosts, 4)]
    first, second = (str(w) for w in cfg.warnings)
    assert first.startswith(f"{hosts}:3: OpenDKIM never matches '192.168.0.1/24'")
    assert "mailseal reads it as 192.168.0.0/24" in first
    assert second.startswith(f"{hosts}:4: OpenDKIM never matches '*.example.com'")
    assert "mailseal matches any host name ending in '.example.com'" in second


def test_tutorial_with_a_world_readable_key(conf: ConfDir, rsa_key: SigningKey) -> None:
    config = install_tutorial(conf.root, rsa_key)
    key = conf.root / "opendkim/keys/example.com/mail.private"
    key.chmod(0o644)
    with pytest.raises(ConfigError) as info:
        load_config(config, key_reader=KeyReader.current())
    assert str(info.value).startswith(
        f"{conf.root}/opendkim/KeyTable:1: key file {key} is not safe"
    )
    assert f"chmod 600 {key}" in str(info.value)


def test_debian_stock_config(tmp_path: Path) -> None:
    config = tmp_path / "opendkim.conf"
    shutil.copy(VECTORS / "debian-opendkim.conf", config)
    cfg = load_config(config)

    assert cfg.syslog and cfg.syslog_success and not cfg.log_why
    assert (cfg.header_canon, cfg.body_canon) == (Canon.RELAXED, Canon.SIMPLE)
    assert (cfg.mode_sign, cfg.mode_verify) == (True, True)
    assert cfg.oversign_headers == ("from",)
    assert cfg.user_id == "opendkim" and cfg.umask == 0o007
    assert cfg.socket == "local:/run/opendkim/opendkim.sock"
    assert cfg.pid_file == Path("/run/opendkim/opendkim.pid")
    assert cfg.internal_hosts.matches("127.0.0.1", None) and cfg.internal_hosts.matches("::1", None)
    assert cfg.signing_for("a@example.com") == []  # no key configured yet
    assert [str(w) for w in cfg.warnings] == [
        f"{config}:50: option TrustAnchorFile is not supported by mailseal and is ignored "
        "(DNSSEC validation is the system resolver's job)"
    ]


def test_debian_config_with_its_commented_examples_enabled(
    conf: ConfDir, rsa_key: SigningKey
) -> None:
    text = (VECTORS / "debian-opendkim.conf").read_text()
    key = conf.key("dkimkeys/example.private", rsa_key)
    for line in (
        "#Domain\t\t\texample.com",
        "#Selector\t\t2020",
        "#KeyFile\t\t/etc/dkimkeys/example.private",
        "#InternalHosts\t\t192.168.0.0/16, 10.0.0.0/8, 172.16.0.0/12",
        "#Nameservers\t\t127.0.0.1",
    ):
        assert line in text, line
        text = text.replace(line, line[1:])
    text = text.replace("/etc/dkimkeys/example.private", str(key))
    cfg = conf.load(text)
    (choice,) = cfg.signing_for("a@example.com")
    assert (choice.domain, choice.selector) == ("example.com", "2020")
    assert cfg.internal_hosts.matches("172.20.1.1", None)
    assert not cfg.internal_hosts.matches("127.0.0.1", None)
    assert cfg.nameservers == ("127.0.0.1",)
