"""testkey's judgement of a published key record (mailseal.dkim.keycheck), with static DNS."""

from __future__ import annotations

import pytest

from mailseal.dkim.keycheck import KeyStatus, check_key
from mailseal.dkim.keys import KeyType, SigningKey, generate_key
from mailseal.dkim.publish import KeyTxtRecord, RecordFlags
from mailseal.dns.drive import drive_sync
from mailseal.dns.types import Answer, Question, RdType, Status

NAME = "mail._domainkey.example.com"


class Dns:
    def __init__(self, answer: Answer | None = None, **records: list[str]) -> None:
        self.answer = answer
        self.records = records

    def ask_sync(self, question: Question) -> Answer:
        if self.answer is not None:
            return Answer(
                question, self.answer.status, self.answer.records, secure=self.answer.secure
            )
        found = self.records.get("txt")
        if found is None:
            return Answer(question, Status.NXDOMAIN)
        return Answer(question, Status.OK if found else Status.NODATA, tuple(found))


@pytest.fixture(scope="module")
def rsa() -> SigningKey:
    return generate_key(KeyType.RSA, 1024)


@pytest.fixture(scope="module")
def ed() -> SigningKey:
    return generate_key(KeyType.ED25519)


def value(key: SigningKey, flags: RecordFlags | None = None) -> str:
    return KeyTxtRecord.for_key(key, "mail", "example.com", flags or RecordFlags()).value


def test_ok_and_not_secure(rsa: SigningKey) -> None:
    result = drive_sync(check_key("mail", "example.com", rsa), Dns(txt=[value(rsa)]))
    assert result.status is KeyStatus.OK
    assert result.name == NAME and not result.secure and not result.notes


def test_secure_answer(ed: SigningKey) -> None:
    answer = Answer(Question(NAME, RdType.TXT), Status.OK, (value(ed),), secure=True)
    result = drive_sync(check_key("mail", "example.com", ed), Dns(answer))
    assert result.status is KeyStatus.OK and result.secure


@pytest.mark.parametrize(
    ("dns", "status"),
    [
        (Dns(), KeyStatus.NOT_FOUND),
        (Dns(txt=[]), KeyStatus.NOT_FOUND),
        (Dns(Answer(Question(NAME, RdType.TXT), Status.TIMEOUT)), KeyStatus.DNS_FAILURE),
        (Dns(Answer(Question(NAME, RdType.TXT), Status.SERVFAIL)), KeyStatus.DNS_FAILURE),
        (Dns(txt=["v=DKIM1; k=rsa; p=!!!"]), KeyStatus.INVALID),
        (Dns(txt=["v=spf1 -all"]), KeyStatus.INVALID),
        (Dns(txt=["v=DKIM1; k=rsa; p="]), KeyStatus.INVALID),
    ],
    ids=["nxdomain", "nodata", "timeout", "servfail", "bad-base64", "not-dkim", "revoked"],
)
def test_failures_say_what_to_publish(dns: Dns, status: KeyStatus, rsa: SigningKey) -> None:
    result = drive_sync(check_key("mail", "example.com", rsa), dns)
    assert result.status is status
    assert result.reason and result.fix
    assert result.expected == value(rsa)
    if status is not KeyStatus.DNS_FAILURE:
        assert value(rsa) in result.fix


def test_mismatch_other_key_and_other_type(rsa: SigningKey, ed: SigningKey) -> None:
    other = generate_key(KeyType.RSA, 1024)
    result = drive_sync(check_key("mail", "example.com", rsa), Dns(txt=[value(other)]))
    assert result.status is KeyStatus.MISMATCH
    assert "not this private key" in result.reason
    result = drive_sync(check_key("mail", "example.com", rsa), Dns(txt=[value(ed)]))
    assert result.status is KeyStatus.MISMATCH and "ed25519" in result.reason


def test_pkcs1_published_key_matches(rsa: SigningKey) -> None:
    import base64

    from cryptography.hazmat.primitives import serialization

    pkcs1 = rsa.key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.PKCS1
    )
    txt = "v=DKIM1; k=rsa; p=" + base64.b64encode(pkcs1).decode()
    assert drive_sync(check_key("mail", "example.com", rsa), Dns(txt=[txt])).ok


@pytest.mark.parametrize(
    ("flags", "status", "words"),
    [
        (RecordFlags(hashes="sha1"), KeyStatus.INVALID, "sha256"),
        (RecordFlags(testing=True), KeyStatus.OK, "t=y"),
        (RecordFlags(email_only=True), KeyStatus.OK, ""),
    ],
)
def test_record_flags(rsa: SigningKey, flags: RecordFlags, status: KeyStatus, words: str) -> None:
    result = drive_sync(check_key("mail", "example.com", rsa), Dns(txt=[value(rsa, flags)]))
    assert result.status is status
    assert words in result.reason + " ".join(result.notes)


def test_service_other_than_email(rsa: SigningKey) -> None:
    txt = value(rsa).replace("k=rsa;", "k=rsa; s=other;")
    result = drive_sync(check_key("mail", "example.com", rsa), Dns(txt=[txt]))
    assert result.status is KeyStatus.INVALID and "s=other" in result.reason


def test_several_records_one_matching(rsa: SigningKey) -> None:
    other = generate_key(KeyType.ED25519)
    result = drive_sync(check_key("mail", "example.com", rsa), Dns(txt=[value(other), value(rsa)]))
    assert result.ok and "keep only one" in result.notes[0]


def test_without_private_key_only_syntax(rsa: SigningKey) -> None:
    assert drive_sync(check_key("mail", "example.com", None), Dns(txt=[value(rsa)])).ok
    bad = drive_sync(check_key("mail", "example.com", None), Dns(txt=["v=DKIM1; p=="]))
    assert bad.status is KeyStatus.INVALID
