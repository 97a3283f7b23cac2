"""The milter session's policy, driven with decoded commands and a static zone (no sockets)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from mailseal.config.keyfiles import KeyReader
from mailseal.config.opendkim import MilterConfig, load_config
from mailseal.dkim.keys import KeyType, SigningKey, generate_key, private_pem
from mailseal.dkim.sign import SignerSpec, sign_message
from mailseal.dkim.verify import VerifyOptions, verify_message
from mailseal.dns.drive import drive_sync
from mailseal.dns.types import Answer, Question, Status
from mailseal.message.headers import HeaderField, split_fields
from mailseal.milter import codec
from mailseal.milter.protocol import ActionFlag, ProtocolFlag
from mailseal.milter.session import MilterSession

NOW = 1_700_000_000
MESSAGE = (
    b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: hi there\r\n"
    b"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n\r\nHello Bob,\r\nbye.\r\n"
)


class Zone:
    def __init__(self, records: dict[str, str], fail: Status | None = None) -> None:
        self.records, self.fail = records, fail

    def ask_sync(self, q: Question) -> Answer:
        if self.fail is not None:
            return Answer(q, self.fail)
        if q.name in self.records:
            return Answer(q, Status.OK, (self.records[q.name],))
        return Answer(q, Status.NXDOMAIN)


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {"rsa": generate_key(KeyType.RSA, 2048), "ed": generate_key(KeyType.ED25519)}


def make_config(tmp_path: Path, keys: dict[str, SigningKey], extra: str = "") -> MilterConfig:
    """The seed tutorial's layout: refile: tables, TrustedHosts, relaxed/simple."""
    root = tmp_path / "opendkim"
    (root / "keys" / "example.com").mkdir(parents=True, mode=0o700)
    for name, key in keys.items():
        p = root / "keys" / "example.com" / f"{name}.private"
        p.write_bytes(private_pem(key))
        p.chmod(0o600)
    (root / "TrustedHosts").write_text("127.0.0.1\nlocalhost\n192.168.0.1/24\n*.example.com\n")
    (root / "KeyTable").write_text(
        f"mail._domainkey.example.com example.com:mail:{root}/keys/example.com/rsa.private\n"
    )
    (root / "SigningTable").write_text("*@example.com mail._domainkey.example.com\n")
    conf = root / "opendkim.conf"
    conf.write_text(
        "Syslog yes\nUMask 002\nCanonicalization relaxed/simple\nMode sv\n"
        "SignatureAlgorithm rsa-sha256\nAutoRestart yes\nAutoRestartRate 10/1h\n"
        "Socket inet:12145@localhost\nAuthservID mx.example.net\n"
        f"ExternalIgnoreList refile:{root}/TrustedHosts\n"
        f"InternalHosts refile:{root}/TrustedHosts\n"
        f"KeyTable refile:{root}/KeyTable\nSigningTable refile:{root}/SigningTable\n" + extra
    )
    return load_config(conf, key_reader=KeyReader.current())


def zone_for(keys: dict[str, SigningKey]) -> Zone:
    return Zone(
        {
            f"{n if n != 'rsa' else 'mail'}._domainkey.example.com": k.public_record()
            for n, k in keys.items()
        }
    )


def run_message(
    session: MilterSession,
    message: bytes,
    zone: Zone,
    *,
    address: str = "127.0.0.1",
    version: int = 6,
    macros: dict[str, str] | None = None,
    connect: bool = True,
) -> list[codec.Reply]:
    """Feed one message as Postfix would; return every reply from EOH on."""
    protocol = ProtocolFlag(0x1FFFFF) if version == 6 else ProtocolFlag(0x7F)
    if session.negotiated is None:
        drive_sync(session.handle(codec.OptNeg(version, ActionFlag(0x1FF), protocol), NOW), zone)
    if connect:
        session.handle_now(codec.Connect("client.example.net", b"4", 4321, address))
    session.handle_now(codec.DefineMacros(b"M", {"i": "ABC123", **(macros or {})}))
    session.handle_now(codec.MailFrom(("<alice@example.com>",)))
    head, _, body = message.partition(b"\r\n\r\n")
    leading = session.leading_space
    for f in split_fields(head + b"\r\n"):
        value = f.value.replace(b"\r\n", b"\n")
        if not leading and value.startswith(b" "):
            value = value[1:]
        session.handle_now(codec.Header(f.name, value))
    out = list(session.handle_now(codec.EndOfHeaders()))
    if out and isinstance(out[-1], (codec.Accept, codec.ReplyCode)):
        return out
    for i in range(0, len(body), 7):
        out += session.handle_now(codec.Body(body[i : i + 7]))
    out += drive_sync(session.handle(codec.EndOfMessage(b""), NOW), zone)
    return out


def apply(message: bytes, replies: Sequence[codec.Reply]) -> bytes:
    """What the MTA would deliver: inserted fields on top (index 1 = below nothing here)."""
    head, _, body = message.partition(b"\r\n\r\n")
    fields = [f.raw for f in split_fields(head + b"\r\n")]
    added: list[bytes] = []
    for r in replies:
        if isinstance(r, codec.InsertHeader):
            value = r.value.replace(b"\n", b"\r\n")
            added.insert(0, r.name + b":" + value)
    return b"\r\n".join(added + fields) + b"\r\n\r\n" + body


@pytest.mark.parametrize("version", [2, 6])
def test_internal_client_gets_a_signature_that_verifies(
    tmp_path: Path, keys: dict[str, SigningKey], version: int
) -> None:
    cfg = make_config(tmp_path, {"rsa": keys["rsa"]})
    session = MilterSession(cfg, "mx.example.net")
    replies = run_message(session, MESSAGE, zone_for(keys), version=version)
    inserts = [r for r in replies if isinstance(r, codec.InsertHeader)]
    assert [r.name for r in inserts] == [b"DKIM-Signature"]
    assert isinstance(replies[-1], codec.Continue)
    assert inserts[0].value.startswith(b" v=1;" if version == 6 else b"v=1;")
    assert b"\r" not in inserts[0].value  # folded with LF for Postfix
    delivered = apply(MESSAGE, replies)
    if version == 2:  # Postfix puts the one space back
        delivered = delivered.replace(b"DKIM-Signature:v=1", b"DKIM-Signature: v=1")
    verdict = drive_sync(verify_message(delivered, VerifyOptions(), NOW), zone_for(keys))
    assert [s.result.value for s in verdict.signatures] == ["pass"]
    events = session.drain_events()
    assert any(
        e.text == "ABC123: DKIM-Signature field added (s=mail, d=example.com)" for e in events
    )


def test_tutorial_trap_networks_count_as_internal(
    tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    cfg = make_config(tmp_path, {"rsa": keys["rsa"]})
    replies = run_message(MilterSession(cfg, "mx"), MESSAGE, zone_for(keys), address="192.168.0.77")
    assert any(isinstance(r, codec.InsertHeader) and r.name == b"DKIM-Signature" for r in replies)


def test_authenticated_client_is_signed(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    cfg = make_config(tmp_path, {"rsa": keys["rsa"]})
    replies = run_message(
        MilterSession(cfg, "mx"),
        MESSAGE,
        zone_for(keys),
        address="203.0.113.9",
        macros={"{auth_type}": "PLAIN"},
    )
    assert any(isinstance(r, codec.InsertHeader) and r.name == b"DKIM-Signature" for r in replies)


def signed_elsewhere(keys: dict[str, SigningKey], message: bytes = MESSAGE) -> bytes:
    fields = sign_message(message, [SignerSpec(keys["rsa"], "example.com", "mail")], NOW)
    return b"".join(f + b"\r\n" for f in fields) + message


def test_external_signed_message_gets_authentication_results(
    tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    cfg = make_config(tmp_path, {"rsa": keys["rsa"]})
    forged = b"Authentication-Results: mx.example.net; dkim=pass header.d=evil.example\r\n"
    msg = forged + signed_elsewhere(keys)
    replies = run_message(
        MilterSession(cfg, "mx.example.net"), msg, zone_for(keys), address="203.0.113.9"
    )
    ar = [r for r in replies if isinstance(r, codec.InsertHeader)]
    assert len(ar) == 1 and ar[0].name == b"Authentication-Results"
    text = ar[0].value.decode()
    assert text.startswith(" mx.example.net;")
    assert "dkim=pass (2048-bit key) header.d=example.com header.i=@example.com" in text
    deleted = [r for r in replies if isinstance(r, codec.ChangeHeader)]
    assert deleted == [codec.ChangeHeader(1, b"Authentication-Results", b"")]
    assert isinstance(replies[-1], codec.Continue)


def test_tampered_external_message_fails_but_is_accepted_by_default(
    tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    cfg = make_config(tmp_path, {"rsa": keys["rsa"]})
    msg = signed_elsewhere(keys).replace(b"Hello Bob", b"Hello Eve")
    replies = run_message(MilterSession(cfg, "mx"), msg, zone_for(keys), address="203.0.113.9")
    ar = next(r for r in replies if isinstance(r, codec.InsertHeader))
    assert b"dkim=fail (2048-bit key; body hash did not verify)" in ar.value
    assert isinstance(replies[-1], codec.Continue)


def test_on_bad_signature_reject(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    cfg = make_config(tmp_path, {"rsa": keys["rsa"]}, "On-BadSignature reject\n")
    msg = signed_elsewhere(keys).replace(b"Hello Bob", b"Hello Eve")
    replies = run_message(MilterSession(cfg, "mx"), msg, zone_for(keys), address="203.0.113.9")
    assert isinstance(replies[-1], codec.ReplyCode)
    assert replies[-1].text.startswith(b"550 5.7.1")


def test_dns_error_tempfails_by_default(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    cfg = make_config(tmp_path, {"rsa": keys["rsa"]})
    replies = run_message(
        MilterSession(cfg, "mx"),
        signed_elsewhere(keys),
        Zone({}, fail=Status.TIMEOUT),
        address="203.0.113.9",
    )
    assert isinstance(replies[-1], codec.ReplyCode)
    assert replies[-1].text.startswith(b"451 4.7.1")


def test_peer_list_client_is_accepted_at_connect(
    tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    peers = tmp_path / "peers"
    peers.write_text("203.0.113.0/24\n")
    cfg = make_config(tmp_path, {"rsa": keys["rsa"]}, f"PeerList {peers}\n")
    session = MilterSession(cfg, "mx")
    drive_sync(
        session.handle(codec.OptNeg(6, ActionFlag(0x1FF), ProtocolFlag(0x1FFFFF)), NOW), Zone({})
    )
    assert session.handle_now(codec.Connect("h", b"4", 1, "203.0.113.5")) == [codec.Accept()]


def test_several_messages_and_abort_on_one_connection(
    tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    cfg = make_config(tmp_path, {"rsa": keys["rsa"]})
    session = MilterSession(cfg, "mx")
    zone = zone_for(keys)
    first = run_message(session, MESSAGE, zone)
    session.handle_now(codec.MailFrom(("<x@example.com>",)))
    session.handle_now(codec.Header(b"From", b"x@example.com"))
    session.handle_now(codec.Abort())
    second = run_message(session, MESSAGE.replace(b"hi there", b"second"), zone, connect=False)
    for replies in (first, second):
        assert sum(isinstance(r, codec.InsertHeader) for r in replies) == 1
    assert not session.in_message


def test_no_sender_gets_a_permerror_result_and_is_accepted(
    tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    """OpenDKIM compat: no usable From address: nothing signed or verified, AR says why."""
    cfg = make_config(tmp_path, {"rsa": keys["rsa"]})
    session = MilterSession(cfg, "mx.example.net")
    replies = run_message(session, b"To: x@example.org\r\n\r\nhi\r\n", zone_for(keys))
    ar = [r for r in replies if isinstance(r, codec.InsertHeader)]
    assert [r.name for r in ar] == [b"Authentication-Results"]
    assert ar[0].value == b" mx.example.net; dkim=permerror (bad message/signature format)"
    assert isinstance(replies[-1], codec.Continue)
    assert "can't determine message sender; accepting" in session.drain_events()[-1].text


def test_header_block_over_maximum_follows_on_security(
    tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    cfg = make_config(tmp_path, {"rsa": keys["rsa"]}, "MaximumHeaders 200\n")
    big = b"X-Junk: " + b"a" * 300 + b"\r\n" + MESSAGE
    replies = run_message(MilterSession(cfg, "mx"), big, zone_for(keys))
    assert isinstance(replies[-1], codec.ReplyCode) and replies[-1].text.startswith(b"451")


def test_internal_error_is_answered_with_on_internal_error(
    tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    cfg = make_config(tmp_path, {"rsa": keys["rsa"]})
    session = MilterSession(cfg, "mx")
    drive_sync(
        session.handle(codec.OptNeg(6, ActionFlag(0x1FF), ProtocolFlag(0x1FFFFF)), NOW), Zone({})
    )
    # A body chunk needs no reply (NR_BODY): the failure comes at end of message.
    assert session.fail_message(codec.Body(b"x"), cfg.on_internal_error, "internal error") == []
    final = drive_sync(session.handle(codec.EndOfMessage(b""), NOW), Zone({}))
    assert isinstance(final[-1], codec.ReplyCode) and final[-1].text.startswith(b"451 4.7.1")


def test_dual_signing_rsa_and_ed25519(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    root = tmp_path / "opendkim"
    cfg = make_config(tmp_path, keys, "MultipleSignatures yes\n")
    (root / "KeyTable").write_text(
        f"rsa example.com:mail:{root}/keys/example.com/rsa.private\n"
        f"ed example.com:ed:{root}/keys/example.com/ed.private:ed25519-sha256\n"
    )
    (root / "SigningTable").write_text("*@example.com rsa\n*@example.com ed\n")
    cfg = load_config(root / "opendkim.conf", key_reader=KeyReader.current())
    replies = run_message(MilterSession(cfg, "mx"), MESSAGE, zone_for(keys))
    delivered = apply(MESSAGE, replies)
    verdict = drive_sync(verify_message(delivered, VerifyOptions(), NOW), zone_for(keys))
    assert [(s.algorithm, s.result.value) for s in verdict.signatures] == [
        ("rsa-sha256", "pass"),
        ("ed25519-sha256", "pass"),
    ]
    first = HeaderField(delivered.split(b"\r\n")[0] + b"")
    assert first.lname == "dkim-signature"


def test_maximum_signed_bytes_writes_l_and_verifies_with_appended_text(
    tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    cfg = make_config(tmp_path, {"rsa": keys["rsa"]}, "MaximumSignedBytes 5\n")
    replies = run_message(MilterSession(cfg, "mx"), MESSAGE, zone_for(keys))
    field = next(r for r in replies if isinstance(r, codec.InsertHeader))
    assert b" l=5;" in field.value.replace(b"\n\t", b" ")
    delivered = apply(MESSAGE, replies) + b"appended by a list\r\n"
    verdict = drive_sync(verify_message(delivered, VerifyOptions(), NOW), zone_for(keys))
    assert verdict.result.value == "pass"


def test_keep_auth_results_leaves_claimed_fields(
    tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    cfg = make_config(tmp_path, {"rsa": keys["rsa"]}, "KeepAuthResults yes\n")
    msg = b"Authentication-Results: mx; dkim=pass\r\n" + signed_elsewhere(keys)
    replies = run_message(MilterSession(cfg, "mx"), msg, zone_for(keys), address="203.0.113.9")
    assert not [r for r in replies if isinstance(r, codec.ChangeHeader)]


def test_fix_crlf_makes_bare_lf_body_verify_like_crlf(
    tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    cfg = make_config(tmp_path, {"rsa": keys["rsa"]}, "FixCRLF yes\n")
    bare = MESSAGE.replace(b"Hello Bob,\r\nbye.\r\n", b"Hello Bob,\nbye.\n")
    replies = run_message(MilterSession(cfg, "mx"), bare, zone_for(keys))
    verdict = drive_sync(
        verify_message(apply(MESSAGE, replies), VerifyOptions(), NOW), zone_for(keys)
    )
    assert verdict.result.value == "pass"


def test_ten_thousand_headers_with_no_header_limit(
    tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    cfg = make_config(tmp_path, {"rsa": keys["rsa"]}, "MaximumHeaders 0\n")
    many = b"".join(b"X-Trace-%d: hop\r\n" % i for i in range(10_000)) + MESSAGE
    replies = run_message(MilterSession(cfg, "mx"), many, zone_for(keys))
    assert sum(isinstance(r, codec.InsertHeader) for r in replies) == 1
    verdict = drive_sync(verify_message(apply(many, replies), VerifyOptions(), NOW), zone_for(keys))
    assert verdict.result.value == "pass"


def test_malformed_signature_from_outside_is_a_permerror_not_a_crash(
    tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    cfg = make_config(tmp_path, {"rsa": keys["rsa"]})
    msg = b"DKIM-Signature: v=1; a=rsa-sha256; b=!!!; bh=; d=; h=\r\n" + MESSAGE
    replies = run_message(MilterSession(cfg, "mx"), msg, zone_for(keys), address="203.0.113.9")
    ar = next(r for r in replies if isinstance(r, codec.InsertHeader))
    assert b"dkim=permerror" in ar.value
    assert isinstance(replies[-1], codec.Continue)


@pytest.mark.parametrize(
    ("extra", "macros", "signed"),
    [
        ("MTA submission\n", {"{daemon_name}": "submission"}, True),
        ("MTA submission\n", {"{daemon_name}": "smtpd"}, False),
        ("MacroList {auth_authen}\n", {"{auth_authen}": "alice"}, True),
        ("MacroList daemon_name=ORIGINATING|MSA\n", {"{daemon_name}": "MSA"}, True),
        ("MacroList daemon_name=ORIGINATING|MSA\n", {"{daemon_name}": "MX"}, False),
    ],
)
def test_mta_names_and_macro_list_make_a_client_internal(
    tmp_path: Path,
    keys: dict[str, SigningKey],
    extra: str,
    macros: dict[str, str],
    signed: bool,
) -> None:
    cfg = make_config(tmp_path, {"rsa": keys["rsa"]}, extra)
    session = MilterSession(cfg, "mx")
    replies = run_message(session, MESSAGE, zone_for(keys), address="203.0.113.9", macros=macros)
    names = [r.name for r in replies if isinstance(r, codec.InsertHeader)]
    assert names == ([b"DKIM-Signature"] if signed else [])  # unsigned mail: no AR by default
