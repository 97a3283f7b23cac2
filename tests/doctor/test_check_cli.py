"""``mailseal check`` as a user runs it: output, exit codes, no-DNS cases, --send-test."""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization

from mailseal.cli.main import cli
from mailseal.dkim.results import DkimResult
from mailseal.dkim.verify import VerifyOptions, verify_message
from mailseal.dns.drive import drive_sync
from mailseal.message.headers import to_crlf
from tests.doctor.domains import (
    BLOCKLIST,
    BROKEN,
    BROKEN_HELO,
    BROKEN_IP,
    GOOD,
    GOOD_HELO,
    GOOD_IP,
    rsa_key,
    zones,
)
from tests.doctor.helpers import resolver
from tests.support.dnsserver import DnsTestServer, Mode


@pytest.fixture(scope="module")
def zone_args(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    d = tmp_path_factory.mktemp("zones")
    args: list[str] = []
    for origin, text in zones().items():
        path = d / f"{origin}.zone"
        path.write_text(text)
        args += ["--zone", str(path)]
    return args


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["check", "--config", "/nonexistent", *args])
    assert "Traceback" not in result.stderr, result.stderr
    return result.exit_code, result.stdout, result.stderr


def test_good_domain_text_and_json(zone_args: list[str]) -> None:
    common = [GOOD, "--ip", GOOD_IP, "--helo", GOOD_HELO, "--dnsbl", BLOCKLIST, *zone_args]
    rc, out, _ = run(*common)
    assert rc == 0, out
    assert "Score: 10/10" in out and "Deductions" not in out
    rc, out, _ = run(*common, "--json")
    doc = json.loads(out)
    assert rc == 0 and doc["domain"] == GOOD and doc["score"] == 10.0
    assert {f["status"] for f in doc["findings"]} == {"ok"}


def test_broken_domain_lists_every_deduction_with_its_fix(zone_args: list[str]) -> None:
    common = [BROKEN, "--ip", BROKEN_IP, "--helo", BROKEN_HELO, "--dnsbl", BLOCKLIST, *zone_args]
    rc, out, _ = run(*common)
    assert rc == 1
    assert "Deductions, and how to fix each:" in out
    assert 'fix: publish: _dmarc.broken.example. IN TXT "v=DMARC1; p=none;' in out
    assert "fix: publish: mail.broken.example. IN A 192.0.2.20" in out
    rc, out, _ = run(*common, "--json")
    doc = json.loads(out)
    assert rc == 1 and doc["score"] < 10
    failed = {f["check"] for f in doc["findings"] if f["status"] == "fail"}
    assert {"spf.lookups", "dmarc.record", "rdns.fcrdns", "dnsbl"} <= failed
    assert all(f["fix"] for f in doc["findings"] if f["deduction"] > 0)


def test_without_ip_says_what_is_not_checked(zone_args: list[str]) -> None:
    rc, out, _ = run(GOOD, *zone_args)
    assert rc == 0 and "note: give --ip" in out and "rdns" not in out


@pytest.mark.parametrize(
    "args",
    [
        ["bad domain!"],
        ["user@example.com"],
        ["localhost"],
        ["example.com", "--ip", "300.1.2.3"],
        ["example.com", "--helo", "a..b"],
        ["example.com", "--dnsbl", "bad..zone"],
        ["example.com", "--selector", "two words"],
        ["example.com", "--send-test", "nobody"],
        ["example.com", "--dns-server", "not-an-address"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    rc, _, err = run(*args)
    assert rc == 2 and err.startswith(("mailseal: error:", "Usage:")), err


def _closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_no_dns_server_listening_is_a_clear_error() -> None:
    start = time.monotonic()
    rc, out, err = run(
        "example.com", "--dns-server", f"127.0.0.1:{_closed_udp_port()}", "--dns-timeout", "1"
    )
    assert rc == 2 and out == ""
    assert err.startswith("mailseal: error: cannot reach DNS: ")
    assert time.monotonic() - start < 5


def test_a_silent_dns_server_ends_within_the_timeout_budget() -> None:
    with DnsTestServer({}) as server:
        server.set_mode(Mode.DROP)
        start = time.monotonic()
        rc, _, err = run(
            "example.com", "--ip", "192.0.2.1", "--dns-server", server.spec, "--dns-timeout", "0.5"
        )
        elapsed = time.monotonic() - start
    assert rc == 2 and "cannot reach DNS: no answer from" in err
    assert elapsed < 2.5, elapsed


def test_system_resolver_without_servers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from mailseal.cli import check as check_cli
    from mailseal.dns.resolver import Resolver

    missing = tmp_path / "resolv.conf"
    monkeypatch.setattr(
        check_cli, "make_resolver", lambda z, s, t: Resolver((), timeout=t, resolv_conf=missing)
    )
    rc, _, err = run("example.com")
    assert rc == 2 and f"cannot reach DNS: no DNS servers: cannot use {missing}" in err


def test_over_the_network_with_one_failing_name() -> None:
    with DnsTestServer(zones()) as server:
        server.set_mode(Mode.SERVFAIL, f"_dmarc.{GOOD}")
        rc, out, _ = run(
            GOOD,
            "--ip",
            GOOD_IP,
            "--helo",
            GOOD_HELO,
            "--dnsbl",
            BLOCKLIST,
            "--dns-server",
            server.spec,
            "--json",
        )
        asked = server.received
    doc = json.loads(out)
    assert rc == 0 and doc["score"] == 10.0
    dmarc = [f for f in doc["findings"] if f["check"] == "dmarc.record"]
    assert dmarc[0]["status"] == "error" and "servfail" in dmarc[0]["message"]
    names = [(r.name, r.rdtype) for r in asked if r.transport == "udp"]
    assert len(names) == len(set(names)), "a question was asked twice in one run"


# -- --send-test --------------------------------------------------------------


@pytest.fixture
def keytable_config(tmp_path: Path) -> Path:
    key = tmp_path / "mail.private"
    key.write_bytes(
        rsa_key(2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key.chmod(0o600)
    (tmp_path / "KeyTable").write_text(f"mail._domainkey.{GOOD} {GOOD}:mail:{key}\n")
    (tmp_path / "SigningTable").write_text(f"*@{GOOD} mail._domainkey.{GOOD}\n")
    conf = tmp_path / "opendkim.conf"
    conf.write_text(
        f"KeyTable refile:{tmp_path}/KeyTable\nSigningTable refile:{tmp_path}/SigningTable\n"
    )
    return conf


def _verified(message: bytes) -> list[DkimResult]:
    verdict = drive_sync(
        verify_message(to_crlf(message), VerifyOptions(), int(time.time())), resolver()
    )
    return [s.result for s in verdict.signatures]


def test_send_test_through_sendmail_signed_with_the_keytable_key(
    tmp_path: Path, keytable_config: Path, zone_args: list[str]
) -> None:
    fake = tmp_path / "sendmail"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/args\ncat > {tmp_path}/message\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    result = CliRunner().invoke(
        cli,
        [
            "check",
            GOOD,
            "--config",
            str(keytable_config),
            "--send-test",
            "tester@example.net",
            "--sendmail",
            str(fake),
            *zone_args,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "note: DKIM selectors from" in result.stdout
    assert (
        f"Test message from postmaster@{GOOD} to tester@example.net handed to {fake}"
        in result.stdout
    )
    assert f"signed here with d={GOOD} s=mail" in result.stdout
    assert (tmp_path / "args").read_text().split() == ["-t", "-oi", "-f", f"postmaster@{GOOD}"]
    sent = (tmp_path / "message").read_bytes()
    assert b"\r\n" not in sent and b"To: <tester@example.net>" in sent
    assert _verified(sent) == [DkimResult.PASS]


def test_send_test_failure_exits_2(tmp_path: Path, zone_args: list[str]) -> None:
    rc, _, err = run(
        GOOD, "--send-test", "t@example.net", "--sendmail", str(tmp_path / "none"), *zone_args
    )
    assert rc == 2 and "the test message was not sent" in err and "does not exist" in err


class _Keep:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 2.0.0 kept"


def test_send_test_over_smtp(keytable_config: Path, zone_args: list[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    keep = _Keep()
    controller = Controller(keep, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    try:
        result = CliRunner().invoke(
            cli,
            [
                "check",
                GOOD,
                "--config",
                str(keytable_config),
                "--send-test",
                "tester@example.net",
                "--from",
                f"alice@{GOOD}",
                "--smtp",
                f"127.0.0.1:{port}",
                "--json",
                *zone_args,
            ],
        )
    finally:
        controller.stop()
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)  # stdout stays one JSON object
    assert "accepted by the SMTP server" in result.stderr
    (envelope,) = keep.envelopes
    assert envelope.mail_from == f"alice@{GOOD}" and envelope.rcpt_tos == ["tester@example.net"]
    assert _verified(bytes(envelope.original_content or b"")) == [DkimResult.PASS]


def test_send_test_without_a_key_says_the_milter_should_sign(
    tmp_path: Path, zone_args: list[str]
) -> None:
    fake = tmp_path / "sendmail"
    fake.write_text(f"#!/bin/sh\ncat > {tmp_path}/message\n")
    fake.chmod(0o700)
    rc, out, _ = run(GOOD, "--send-test", "t@example.net", "--sendmail", str(fake), *zone_args)
    assert rc == 0 and "not signed here" in out
    assert os.path.getsize(tmp_path / "message") > 0


def test_zone_files_ask_no_default_blocklists(zone_args: list[str]) -> None:
    rc, out, _ = run(GOOD, "--ip", GOOD_IP, "--helo", GOOD_HELO, *zone_args, "--json")
    assert rc == 0 and not [f for f in json.loads(out)["findings"] if f["check"] == "dnsbl"]
    rc, out, _ = run(GOOD, "--ip", GOOD_IP, *zone_args)
    assert "note: blocklists are not asked with --zone" in out


def test_a_private_ip_gets_a_note(zone_args: list[str]) -> None:
    rc, out, _ = run(GOOD, "--ip", "10.1.2.3", *zone_args)
    assert "note: --ip 10.1.2.3 is not a public address" in out
    rc, out, _ = run(GOOD, "--ip", GOOD_IP, *zone_args)
    assert "not a public address" not in out


def test_parse_smtp() -> None:
    from mailseal.cli.check import parse_smtp

    assert parse_smtp("localhost") == ("localhost", 25)
    assert parse_smtp("127.0.0.1:2525") == ("127.0.0.1", 2525)
    assert parse_smtp("[::1]:26") == ("::1", 26)
    assert parse_smtp("::1") == ("::1", 25)
    rc, _, err = run("example.com", "--send-test", "a@example.net", "--smtp", "h:99999")
    assert rc == 2 and "port must be a number" in err
