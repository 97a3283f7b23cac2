"""``mailseal check`` against a real authoritative DNS server (nsd) on loopback.

A second private nsd (beside the session's, on the next free 127.0.0.X:53)
serves the doctor's test zones (tests/doctor/domains.py): a good domain, a
broken one (no DMARC, SPF over 10 lookups, a PTR that is not forward-confirmed,
an address listed in a test blocklist), their reverse zone, the blocklist and a
blocklist that refuses queries the way Spamhaus refuses public resolvers.
mailseal runs only as its command line, asking that nsd.

Also tried as a new user would: ``mailseal check example.com`` with no network
at all (a fresh network namespace) and with a resolv.conf naming a server
that is not there (a private mount namespace): a clear "cannot reach DNS",
exit 2, no traceback.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

try:  # tests/ as packages, or (the default) rootdir-relative imports
    from . import interop_harness as h
except ImportError:
    import interop_harness as h  # type: ignore[no-redef]

from tests.doctor.domains import (
    BLOCKLIST,
    BROKEN,
    BROKEN_HELO,
    BROKEN_IP,
    GOOD,
    GOOD_HELO,
    GOOD_IP,
    REFUSING,
    zones,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def check_dns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[h.DnsServer]:
    base = tmp_path_factory.mktemp("check-nsd")
    plain = base / "example.com.zone"
    plain.write_text(
        "$ORIGIN example.com.\n$TTL 300\n"
        "@ IN SOA ns.example.com. h.example.com. ( 1 3600 600 86400 300 )\n"
        "@ IN NS ns.example.com.\nns IN A 127.0.0.1\n"
    )
    extra: list[tuple[str, Path]] = []
    for origin, text in zones().items():
        path = base / f"{origin}.zone"
        path.write_text(text)
        extra.append((origin, path))
    try:
        cm = h.run_nsd(base, plain, extra)
        server = cm.__enter__()
    except h.Unavailable as e:
        pytest.skip(str(e))
    try:
        yield server
    finally:
        cm.__exit__(None, None, None)


@pytest.fixture(scope="module")
def mailseal() -> h.Mailseal:
    return h.Mailseal(None)


def check(mailseal: h.Mailseal, dns: h.DnsServer, *args: str) -> h.MailsealResult:
    return mailseal("check", "--config", "/nonexistent", "--dns-server", dns.spec,
                    "--dns-timeout", "3", *args)


def findings(result: h.MailsealResult) -> dict[str, list[dict[str, Any]]]:
    doc = json.loads(result.stdout)
    out: dict[str, list[dict[str, Any]]] = {}
    for f in doc["findings"]:
        out.setdefault(f["check"], []).append(f)
    return out


def test_good_domain_scores_10(mailseal: h.Mailseal, check_dns: h.DnsServer) -> None:
    args = (GOOD, "--ip", GOOD_IP, "--helo", GOOD_HELO, "--dnsbl", BLOCKLIST)
    start = time.monotonic()
    res = check(mailseal, check_dns, *args, "--json")
    assert time.monotonic() - start < 10, res.describe()
    assert res.rc == 0, res.describe()
    doc = json.loads(res.stdout)
    assert doc["domain"] == GOOD and doc["score"] == 10.0, res.describe()
    assert {f["status"] for f in doc["findings"]} == {"ok"}, res.describe()
    seen = {f["check"] for f in doc["findings"]}
    assert {"mx", "spf.record", "spf.lookups", "spf.ip", "dkim.key", "dmarc.record", "dmarc.rua",
            "dmarc.alignment", "rdns.ptr", "rdns.fcrdns", "rdns.helo", "dnsbl", "mta-sts",
            "tls-rpt"} <= seen
    text = check(mailseal, check_dns, *args)
    assert text.rc == 0 and b"Score: 10/10" in text.stdout, text.describe()


def test_broken_domain_each_finding_with_its_fix(mailseal: h.Mailseal,
                                                 check_dns: h.DnsServer) -> None:
    res = check(mailseal, check_dns, BROKEN, "--ip", BROKEN_IP, "--helo", BROKEN_HELO,
                "--dnsbl", BLOCKLIST, "--dnsbl", REFUSING, "--json")
    assert res.rc == 1, res.describe()
    got = findings(res)
    dmarc = got["dmarc.record"][0]
    assert dmarc["status"] == "fail" and dmarc["fix"].startswith(
        f'publish: _dmarc.{BROKEN}. IN TXT "v=DMARC1; p=none;'), dmarc
    lookups = [f for f in got["spf.lookups"] if f["status"] == "fail"][0]
    assert "needs 11 DNS lookups; the limit is 10" in lookups["message"] and lookups["fix"]
    fcrdns = got["rdns.fcrdns"][0]
    assert fcrdns["status"] == "fail" and "192.0.2.99" in fcrdns["message"]
    assert fcrdns["fix"].startswith(f"publish: {BROKEN_HELO}. IN A {BROKEN_IP}")
    listed, refused = got["dnsbl"]
    assert listed["status"] == "fail" and "listed in dnsbl.example (127.0.0.2)" in listed["message"]
    assert "spam trap hits" in listed["message"] and listed["fix"]
    assert refused["status"] == "error" and refused["deduction"] == 0
    assert "127.255.255.254" in refused["message"] and "not a listing" in refused["message"]
    for f in json.loads(res.stdout)["findings"]:
        if f["deduction"]:
            assert f["fix"], f
    assert json.loads(res.stdout)["score"] < 5
    text = check(mailseal, check_dns, BROKEN, "--ip", BROKEN_IP, "--dnsbl", BLOCKLIST)
    out = text.stdout.decode()
    assert text.rc == 1 and "Deductions, and how to fix each:" in out, text.describe()
    assert f'fix: publish: _dmarc.{BROKEN}. IN TXT "v=DMARC1; p=none;' in out


def test_unknown_zones_through_an_authoritative_server_are_errors(
        mailseal: h.Mailseal, check_dns: h.DnsServer) -> None:
    # nsd refuses questions outside its zones: the default blocklists cannot be asked,
    # which is an error of the check (no deduction), never a listing.
    res = check(mailseal, check_dns, GOOD, "--ip", GOOD_IP, "--helo", GOOD_HELO, "--json")
    assert res.rc == 0, res.describe()
    lists = findings(res)["dnsbl"]
    assert len(lists) == 6 and {f["status"] for f in lists} == {"error"}
    assert json.loads(res.stdout)["score"] == 10.0


def test_no_dns_server_on_that_port(mailseal: h.Mailseal) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = mailseal("check", "example.com", "--config", "/nonexistent",
                   "--dns-server", f"127.0.0.1:{port}", "--dns-timeout", "1")
    assert res.rc == 2 and res.stdout == b"", res.describe()
    assert res.stderr.startswith("mailseal: error: cannot reach DNS: "), res.describe()
    assert "Traceback" not in res.stderr


def _unshare(*flags: str) -> str:
    tool = shutil.which("unshare")
    if tool is None:
        pytest.skip("unshare (util-linux) is not installed")
    probe = subprocess.run([tool, *flags, "true"], capture_output=True, timeout=10)
    if probe.returncode != 0:
        pytest.skip(f"unshare {' '.join(flags)} is not allowed here: {probe.stderr.decode()}")
    return tool


def _python_mailseal(*args: str) -> list[str]:
    return [sys.executable, "-m", "mailseal", *args]


def test_no_network_at_all(mailseal: h.Mailseal) -> None:
    """A new network namespace has no interface up: the system resolver cannot be reached."""
    tool = _unshare("--net")
    start = time.monotonic()
    cp = h.run([tool, "--net", *_python_mailseal("check", "example.com", "--config",
                                                  "/nonexistent", "--dns-timeout", "2")],
               env=mailseal.env, cwd=h.REPO_ROOT)
    err = cp.stderr.decode()
    assert cp.returncode == 2, err
    assert err.startswith("mailseal: error: cannot reach DNS: "), err
    assert "Traceback" not in err and time.monotonic() - start < 10


def test_resolv_conf_naming_a_dead_server(mailseal: h.Mailseal, tmp_path: Path) -> None:
    """The system-resolver path, with /etc/resolv.conf replaced only inside a mount namespace."""
    tool = _unshare("--mount")
    fake = tmp_path / "resolv.conf"
    fake.write_text("nameserver 127.0.0.9\n")  # nothing answers DNS there
    script = ('mount --bind "$1" /etc/resolv.conf && shift && exec "$@"')
    cp = h.run([tool, "--mount", "sh", "-c", script, "sh", str(fake),
                *_python_mailseal("check", "example.com", "--config", "/nonexistent",
                                  "--dns-timeout", "1")],
               env=mailseal.env, cwd=h.REPO_ROOT)
    err = cp.stderr.decode()
    assert cp.returncode == 2, err
    assert "cannot reach DNS" in err and "127.0.0.9:53" in err, err
    assert "Traceback" not in err


def test_inspect_a_received_message(mailseal: h.Mailseal, check_dns: h.DnsServer,
                                    tmp_path: Path) -> None:
    """A message signed by ``mailseal sign``, as a receiver saved it, scored through nsd."""
    from cryptography.hazmat.primitives import serialization

    from tests.doctor.domains import rsa_key

    pem = tmp_path / "mail.pem"
    pem.write_bytes(rsa_key(2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    msg = tmp_path / "msg.eml"
    msg.write_bytes(
        f"From: Alice <alice@{GOOD}>\nTo: <bob@receiver.example>\nSubject: round trip\n"
        f"Date: Fri, 20 Jun 2025 15:06:40 +0000\nMessage-ID: <rt@{GOOD}>\n\nHello Bob.\n"
        .encode())
    signed = mailseal("sign", "-d", GOOD, "-s", "mail", "--key", pem, msg)
    assert signed.rc == 0, signed.describe()
    saved = tmp_path / "saved.eml"
    saved.write_bytes(
        f"Return-Path: <alice@{GOOD}>\n"
        f"Authentication-Results: mx.receiver.example; dkim=pass header.d={GOOD};\n"
        f"\tspf=pass smtp.mailfrom={GOOD}; dmarc=pass header.from={GOOD}\n"
        f"Received: from {GOOD_HELO} ({GOOD_HELO} [{GOOD_IP}])\n\tby mx.receiver.example "
        "(Postfix) with ESMTPS; Fri, 20 Jun 2025 15:06:41 +0000\n".encode() + signed.stdout)
    res = mailseal("inspect", saved, "--dns-server", check_dns.spec, "--dnsbl", BLOCKLIST,
                   "--json")
    assert res.rc == 0, res.describe()
    doc = json.loads(res.stdout)
    assert doc["domain"] == GOOD and doc["score"] == 10.0, res.describe()
    got = findings(res)
    assert got["msg.dkim"][0]["status"] == "ok" and got["msg.dmarc"][0]["status"] == "ok"
    assert got["msg.spf"][0]["message"].startswith("mx.receiver.example said: spf=pass")
    assert got["rdns.fcrdns"][0]["status"] == "ok"
