"""``mailseal inspect``: reading receivers' fields, and scoring received messages."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailseal.cli.main import cli
from mailseal.dkim.keys import KeyType, SigningKey
from mailseal.dkim.sign import SignerSpec, sign_message
from mailseal.doctor.facts import read_facts
from mailseal.doctor.received import (
    parse_authres,
    parse_received_spf,
    received_client,
    strip_comments,
)
from mailseal.message.headers import MessageSplitter, to_crlf
from tests.doctor.domains import BLOCKLIST, BROKEN_IP, GOOD, GOOD_HELO, GOOD_IP, rsa_key, zones

NOW = 1_750_000_000
BODY = "Hello,\n\nthis is a test.\n"


def test_strip_comments() -> None:
    assert strip_comments('a (b (c) d) "e (f)" g') == 'a   "e (f)" g'
    assert strip_comments("x \\( y") == "x \\( y"


def test_parse_authres() -> None:
    ar = parse_authres(
        'mx.google.com;\r\n dkim=pass header.i=@good.example header.s=mail header.b="AbC";'
        " spf=softfail (google.com: domain of transitioning a@good.example does not designate"
        " 192.0.2.9 as permitted sender) smtp.mailfrom=a@good.example;\r\n"
        " dmarc = fail (p=REJECT sp=REJECT dis=REJECT) header.from=good.example"
    )
    assert ar is not None and ar.authserv_id == "mx.google.com"
    assert [(r.method, r.result) for r in ar.results] == [
        ("dkim", "pass"),
        ("spf", "softfail"),
        ("dmarc", "fail"),
    ]
    assert ar.of("dkim")[0].prop("header.b") == "AbC"
    assert ar.of("spf")[0].prop("smtp.mailfrom") == "a@good.example"
    assert ar.of("dmarc")[0].prop("header.from") == "good.example"
    assert parse_authres("example.org 1; none") == parse_authres("example.org; none")
    assert parse_authres("   ") is None


def test_parse_received_spf() -> None:
    spf = parse_received_spf(
        "pass (mybox.example.org: domain of myname@example.com designates 192.0.2.1 as "
        "permitted sender) receiver=mybox.example.org; client-ip=192.0.2.1; "
        'envelope-from="myname@example.com"; helo=foo.example.com;'
    )
    assert spf is not None
    assert (spf.result, spf.client_ip, spf.envelope_from, spf.helo) == (
        "pass",
        "192.0.2.1",
        "myname@example.com",
        "foo.example.com",
    )
    assert parse_received_spf("(no result) x=y") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "from mail.good.example (mail.good.example [192.0.2.10]) by mx.example (Postfix) "
            "with ESMTPS id 4F; Thu, 1 Jan 2026 00:00:00 +0000",
            ("mail.good.example", "192.0.2.10"),
        ),
        (
            "from mail.good.example (mail.good.example. [2001:db8::10]) by mx.google.com",
            ("mail.good.example", "2001:db8::10"),
        ),
        ("from [192.0.2.7] (unknown [192.0.2.7]) by mx.example", (None, "192.0.2.7")),
        (
            "from host.example ([192.0.2.8] helo=real.example) by exim.example",
            ("real.example", "192.0.2.8"),
        ),
        ("from localhost (localhost [IPv6:::1]) by mx.example", ("localhost", "::1")),
        ("by mx.example with LMTP", (None, None)),
    ],
)
def test_received_client(text: str, expected: tuple[str | None, str | None]) -> None:
    assert received_client(text) == expected


def sign(message: str) -> bytes:
    raw = to_crlf(message.encode())
    key = SigningKey(rsa_key(2048), KeyType.RSA, 2048)
    fields = sign_message(raw, [SignerSpec(key, GOOD, "mail")], NOW)
    return b"".join(f + b"\r\n" for f in fields) + raw


def sent(frm: str = f"Alice <alice@{GOOD}>", extra: str = "") -> str:
    return (
        f"From: {frm}\nTo: <t@receiver.example>\nSubject: hello\n"
        f"Date: Fri, 20 Jun 2025 15:06:40 +0000\nMessage-ID: <1@{GOOD}>\n{extra}\n{BODY}"
    )


def received(ip: str, helo: str, spf: str = "pass", authres: str = "") -> bytes:
    head = f"Return-Path: <alice@{GOOD}>\r\n"
    if authres:
        head += f"Authentication-Results: mx.receiver.example;\r\n\t{authres}\r\n"
    if spf:
        head += (
            f"Received-SPF: {spf} (mx.receiver.example: domain of alice@{GOOD}) "
            f"client-ip={ip}; envelope-from=<alice@{GOOD}>; helo={helo};\r\n"
        )
    head += (
        "Received: from localhost (localhost [127.0.0.1]) by mx.receiver.example (amavis)\r\n"
        f"Received: from {helo} ({helo} [{ip}])\r\n\tby mx.receiver.example (Postfix) with ESMTPS;"
        " Fri, 20 Jun 2025 15:06:41 +0000\r\n"
    )
    return head.encode()


def facts_of(message: bytes):  # type: ignore[no-untyped-def]
    splitter = MessageSplitter()
    splitter.feed(message)
    return read_facts(splitter.finish())


def test_read_facts() -> None:
    msg = received(GOOD_IP, GOOD_HELO, spf="") + sign(sent())
    facts = facts_of(msg)
    assert facts.from_domain == GOOD and facts.mail_from == f"alice@{GOOD}"
    assert str(facts.client_ip) == GOOD_IP and facts.helo == GOOD_HELO and facts.where == "Received"
    assert facts.signers == ((GOOD, "mail"),) and facts.missing == ()
    with_spf = facts_of(received("192.0.2.55", "x.example") + sign(sent()))
    assert str(with_spf.client_ip) == "192.0.2.55" and with_spf.where == "Received-SPF"


@pytest.fixture(scope="module")
def zone_args(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    d = tmp_path_factory.mktemp("zones")
    args: list[str] = []
    for origin, text in zones().items():
        (d / f"{origin}.zone").write_text(text)
        args += ["--zone", str(d / f"{origin}.zone")]
    return args


def inspect(path: Path, zone_args: list[str], *args: str) -> tuple[int, dict[str, object], str]:
    result = CliRunner().invoke(
        cli,
        [
            "inspect",
            str(path),
            "--now",
            str(NOW + 60),
            "--dnsbl",
            BLOCKLIST,
            "--json",
            *zone_args,
            *args,
        ],
    )
    assert "Traceback" not in result.stderr, result.stderr
    doc = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.exit_code, doc, result.stderr


def by(doc: dict[str, object], check: str) -> list[dict[str, object]]:
    return [f for f in doc["findings"] if f["check"] == check]  # type: ignore[attr-defined,index]


def test_a_good_message_scores_10(tmp_path: Path, zone_args: list[str]) -> None:
    authres = (
        f"dkim=pass header.d={GOOD} header.s=mail; spf=pass smtp.mailfrom={GOOD};"
        f"\r\n\tdmarc=pass header.from={GOOD}"
    )
    path = tmp_path / "good.eml"
    path.write_bytes(received(GOOD_IP, GOOD_HELO, authres=authres) + sign(sent()))
    rc, doc, err = inspect(path, zone_args)
    assert rc == 0, doc
    assert doc["domain"] == GOOD and doc["score"] == 10.0, doc
    assert {f["status"] for f in doc["findings"]} == {"ok"}  # type: ignore[attr-defined]
    assert "verified, 2048-bit key" in str(by(doc, "msg.dkim")[0]["message"])
    assert "aligned DKIM d=good.example and SPF good.example" in str(
        by(doc, "msg.dmarc")[0]["message"]
    )
    assert len(by(doc, "msg.authres")) == 2  # dkim and dmarc; spf came from Received-SPF
    assert by(doc, "rdns.helo") and by(doc, "dkim.key")  # the domain checks ran for 192.0.2.10
    text = CliRunner().invoke(
        cli, ["inspect", str(path), "--now", str(NOW + 60), "--dnsbl", BLOCKLIST, *zone_args]
    )
    assert text.exit_code == 0 and "Score: 10/10" in text.stdout
    assert (
        "note: sent from 192.0.2.10, HELO mail.good.example (from its Received-SPF field)"
        in text.stdout
    )


def test_an_unsigned_message_from_the_wrong_server(tmp_path: Path, zone_args: list[str]) -> None:
    path = tmp_path / "bad.eml"
    authres = "spf=fail smtp.mailfrom=good.example; dmarc=fail header.from=good.example"
    path.write_bytes(
        received(BROKEN_IP, "mail.broken.example", spf="fail", authres=authres)
        + to_crlf(sent().encode())
    )
    rc, doc, _ = inspect(path, zone_args)
    assert rc == 1
    assert by(doc, "msg.dkim")[0]["status"] == "fail"
    assert by(doc, "msg.spf")[0]["status"] == "fail"
    dmarc = by(doc, "msg.dmarc")[0]
    assert dmarc["status"] == "fail" and "receivers apply p=reject" in str(dmarc["message"])
    assert (
        by(doc, "msg.authres")[0]["message"]
        == "mx.receiver.example: dmarc=fail (header.from=good.example)"
    )
    assert any(f["status"] == "fail" for f in by(doc, "spf.ip"))
    assert any(f["status"] == "fail" for f in by(doc, "dnsbl"))
    assert float(doc["score"]) < 5  # type: ignore[arg-type]
    for f in doc["findings"]:  # type: ignore[attr-defined]
        if f["deduction"]:
            assert f["fix"], f


def test_spf_evaluated_here_when_the_receiver_wrote_none(
    tmp_path: Path, zone_args: list[str]
) -> None:
    path = tmp_path / "plain.eml"
    path.write_bytes(received(GOOD_IP, GOOD_HELO, spf="") + sign(sent()))
    rc, doc, _ = inspect(path, zone_args)
    assert rc == 0
    assert (
        by(doc, "msg.spf")[0]["message"]
        == "evaluated here for 192.0.2.10: spf=pass for good.example"
    )


def test_a_tampered_message_fails_dkim(tmp_path: Path, zone_args: list[str]) -> None:
    path = tmp_path / "tampered.eml"
    path.write_bytes(received(GOOD_IP, GOOD_HELO) + sign(sent()).replace(b"a test", b"a TEST"))
    rc, doc, _ = inspect(path, zone_args)
    assert rc == 1
    dkim = by(doc, "msg.dkim")[0]
    assert dkim["status"] == "fail" and "body hash did not verify" in str(dkim["message"])
    # SPF still aligns, so DMARC passes
    assert by(doc, "msg.dmarc")[0]["status"] == "ok"


def test_headers_missing(tmp_path: Path, zone_args: list[str]) -> None:
    path = tmp_path / "nofrom.eml"
    path.write_bytes(b"To: x@example.net\r\nSubject: hi\r\n\r\nbody\r\n")
    rc, doc, _ = inspect(path, zone_args)
    assert rc == 1 and doc["domain"] == "unknown"
    assert by(doc, "msg.headers")[0]["status"] == "fail"
    nodate = tmp_path / "nodate.eml"
    nodate.write_bytes(received(GOOD_IP, GOOD_HELO) + sign(sent()).replace(b"Date:", b"X-Date:"))
    rc, doc, _ = inspect(nodate, zone_args)
    assert [f["status"] for f in by(doc, "msg.headers")] == ["warn"]


def test_inspect_usage_errors(tmp_path: Path) -> None:
    for args in (["inspect", str(tmp_path / "missing.eml")], ["inspect"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2 and "Traceback" not in result.stderr
    empty = tmp_path / "empty.eml"
    empty.write_bytes(b"\r\nno headers\r\n")
    result = CliRunner().invoke(cli, ["inspect", str(empty)])
    assert result.exit_code == 2 and "no header fields" in result.stderr


def test_inspect_cannot_reach_dns(tmp_path: Path) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "m.eml"
    path.write_bytes(sign(sent()))
    start = time.monotonic()
    result = CliRunner().invoke(
        cli, ["inspect", str(path), "--dns-server", f"127.0.0.1:{port}", "--dns-timeout", "0.5"]
    )
    assert result.exit_code == 2 and "cannot reach DNS" in result.stderr
    assert time.monotonic() - start < 5
