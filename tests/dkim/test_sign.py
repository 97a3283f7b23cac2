"""Signing details: header selection, oversigning, folding, errors, dual signatures."""

from collections.abc import Iterator

import pytest

from mailseal.dkim.canon import Canon
from mailseal.dkim.keys import KeyType, SigningKey, generate_key
from mailseal.dkim.sign import SignerSpec, sign_message
from mailseal.dkim.signature import parse_signature
from mailseal.dkim.verify import VerifyOptions, verify_message
from mailseal.dns.drive import drive_sync
from mailseal.dns.types import Answer, Question, Status
from mailseal.errors import SigningError
from mailseal.message.headers import HeaderField

MSG = (
    b"Received: from x\r\nFrom: Alice <alice@example.com>\r\nTo: bob@example.org\r\n"
    b"To: carol@example.org\r\nSubject: hi\r\nX-Unsigned: 1\r\n\r\nHello\r\n"
)
NOW = 1_700_000_000


class Zone:
    def __init__(self, records: dict[str, str]) -> None:
        self.records = records

    def ask_sync(self, q: Question) -> Answer:
        if q.name in self.records:
            return Answer(q, Status.OK, (self.records[q.name],))
        return Answer(q, Status.NXDOMAIN)


@pytest.fixture(scope="module")
def rsa() -> SigningKey:
    return generate_key(KeyType.RSA, 2048)


@pytest.fixture(scope="module")
def ed() -> SigningKey:
    return generate_key(KeyType.ED25519)


def tags_of(field: bytes) -> dict[str, str]:
    from mailseal.dkim.tags import parse_tag_list

    return parse_tag_list(HeaderField(field).value.decode())


def verify(signed: bytes, zone: Zone, now: int = NOW) -> list[tuple[str, str | None]]:
    verdict = drive_sync(verify_message(signed, VerifyOptions(), now), zone)
    return [(s.result.value, s.reason) for s in verdict.signatures]


def test_h_lists_every_instance_and_oversigns_from(rsa: SigningKey) -> None:
    [field] = sign_message(MSG, [SignerSpec(rsa, "example.com", "s1")], NOW)
    h = tags_of(field)["h"].replace("\r\n", "").replace("\t", "").replace(" ", "").split(":")
    assert sorted(h) == ["from", "from", "subject", "to", "to"]
    assert "received" not in h and "x-unsigned" not in h


def test_no_oversign_and_custom_headers(rsa: SigningKey) -> None:
    spec = SignerSpec(rsa, "example.com", "s1", headers=("from", "x-unsigned"), oversign=())
    [field] = sign_message(MSG, [spec], NOW)
    assert tags_of(field)["h"] == "from:x-unsigned"


def test_fields_are_folded_under_78(rsa: SigningKey) -> None:
    long_list = tuple(f"x-header-number-{i}" for i in range(30))
    spec = SignerSpec(
        rsa, "example.com", "a-rather-long-selector-name", headers=("from", *long_list)
    )
    [field] = sign_message(MSG, [spec], NOW)
    lines = field.split(b"\r\n")
    assert len(lines) > 3
    assert all(len(line) < 78 for line in lines), [len(x) for x in lines]
    assert all(line[:1] == b"\t" for line in lines[1:])


def test_tags_written(rsa: SigningKey) -> None:
    spec = SignerSpec(
        rsa, "example.com", "s1", identity="alice@mail.example.com", expire_after=3600
    )
    [field] = sign_message(MSG, [spec], NOW)
    sig = parse_signature(HeaderField(field).value)
    assert (sig.timestamp, sig.expiration) == (NOW, NOW + 3600)
    assert sig.identity == "alice@mail.example.com"
    assert (sig.header_canon, sig.body_canon) == (Canon.RELAXED, Canon.RELAXED)
    assert sig.algorithm == "rsa-sha256"


def test_dual_signature_rsa_first_both_verify(rsa: SigningKey, ed: SigningKey) -> None:
    specs = [SignerSpec(rsa, "example.com", "r"), SignerSpec(ed, "example.com", "e")]
    fields = sign_message(MSG, specs, NOW)
    assert [parse_signature(HeaderField(f).value).algorithm for f in fields] == [
        "rsa-sha256",
        "ed25519-sha256",
    ]
    zone = Zone(
        {
            "r._domainkey.example.com": rsa.public_record(),
            "e._domainkey.example.com": ed.public_record(),
        }
    )
    signed = b"".join(f + b"\r\n" for f in fields) + MSG
    assert verify(signed, zone) == [("pass", "signature verified"), ("pass", "signature verified")]


@pytest.mark.parametrize("hc", list(Canon))
@pytest.mark.parametrize("bc", list(Canon))
def test_each_canonicalization_verifies_and_detects_tampering(
    rsa: SigningKey, hc: Canon, bc: Canon
) -> None:
    spec = SignerSpec(rsa, "example.com", "s1", header_canon=hc, body_canon=bc)
    signed = b"".join(f + b"\r\n" for f in sign_message(MSG, [spec], NOW)) + MSG
    zone = Zone({"s1._domainkey.example.com": rsa.public_record()})
    assert verify(signed, zone) == [("pass", "signature verified")]
    assert verify(signed.replace(b"Hello", b"Jello"), zone) == [
        ("fail", "body hash did not verify")
    ]
    assert verify(signed.replace(b"Subject: hi", b"Subject: ho"), zone) == [
        ("fail", "signature did not verify")
    ]
    # An extra From added above the signed one breaks the oversigned signature.
    assert verify(b"From: mallory@example.net\r\n" + signed, zone)[0][0] == "fail"


def test_refuses_rsa_sha1_and_mismatched_algorithm(rsa: SigningKey, ed: SigningKey) -> None:
    with pytest.raises(SigningError, match="RFC 8301"):
        sign_message(MSG, [SignerSpec(rsa, "example.com", "s", algorithm="rsa-sha1")], NOW)
    with pytest.raises(SigningError, match="needs an ed25519 key"):
        sign_message(MSG, [SignerSpec(rsa, "example.com", "s", algorithm="ed25519-sha256")], NOW)


def test_message_without_from_cannot_be_signed(ed: SigningKey) -> None:
    with pytest.raises(SigningError, match="no From"):
        sign_message(b"To: x@example.org\r\n\r\nhi\r\n", [SignerSpec(ed, "example.com", "s")], NOW)


def chunkings(data: bytes) -> Iterator[list[bytes]]:
    yield [data]
    yield [data[i : i + 1] for i in range(len(data))]
    yield [data[i : i + 7] for i in range(0, len(data), 7)]


def test_streaming_signer_matches_whole_message(ed: SigningKey) -> None:
    from mailseal.dkim.sign import MessageSigner
    from mailseal.message.headers import MessageSplitter

    expected = sign_message(MSG, [SignerSpec(ed, "example.com", "s")], NOW)
    for pieces in chunkings(MSG):
        splitter, signer = MessageSplitter(), MessageSigner([SignerSpec(ed, "example.com", "s")])
        for p in pieces:
            signer.update(splitter.feed(p))
        assert signer.finish(splitter.finish(), NOW) == expected
