"""The key record in opendkim-genkey's layout, flat and as JSON (mailseal.dkim.publish).

The expected texts are opendkim-genkey 2.11's output (Debian 12) with the key
replaced by a fixed base64 string; tests/integration/test_genkey_setup.py
compares against the real program's files.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailseal.dkim.keys import KeyType, generate_key
from mailseal.dkim.publish import (
    KeyTxtRecord,
    RecordFlags,
    qp_note,
    split_txt,
    txt_json,
    zone_txt_line,
)
from mailseal.dkim.record import parse_key_record

KEY392 = "A" * 392  # the base64 length of an RSA-2048 SubjectPublicKeyInfo


def rec(flags: RecordFlags | None = None, key: str = KEY392, **kw: str) -> KeyTxtRecord:
    selector = kw.get("selector", "mail")
    domain = kw.get("domain", "example.com")
    return KeyTxtRecord(selector, domain, KeyType.RSA, key, flags or RecordFlags())


def test_default_layout_is_opendkim_genkeys() -> None:
    assert rec().zone_text() == (
        'mail._domainkey\tIN\tTXT\t( "v=DKIM1; h=sha256; k=rsa; "\n'
        f'\t  "p={"A" * 250}"\n'
        f'\t  "{"A" * 142}" )  ; ----- DKIM key mail for example.com\n'
    )


@pytest.mark.parametrize(
    ("flags", "head"),
    [
        (RecordFlags(testing=True), "v=DKIM1; h=sha256; k=rsa; t=y; "),
        (RecordFlags(no_subdomains=True), "v=DKIM1; h=sha256; k=rsa; t=s; "),
        (RecordFlags(testing=True, no_subdomains=True), "v=DKIM1; h=sha256; k=rsa; t=y:s; "),
        (RecordFlags(email_only=True), "v=DKIM1; h=sha256; k=rsa; s=email; "),
        (
            RecordFlags(testing=True, email_only=True, no_subdomains=True),
            "v=DKIM1; h=sha256; k=rsa; t=y:s; s=email; ",
        ),
        (RecordFlags(note="hello"), 'v=DKIM1; n="hello"; h=sha256; k=rsa; '),
        (RecordFlags(hashes="sha1:sha256"), "v=DKIM1; h=sha1:sha256; k=rsa; "),
        (RecordFlags(hashes=None), "v=DKIM1; k=rsa; "),
    ],
    ids=["t", "S", "tS", "r", "trS", "n", "h", "no-h"],
)
def test_flags_go_in_the_first_string(flags: RecordFlags, head: str) -> None:
    assert rec(flags).head == head
    assert rec(flags).strings[0] == head


def test_note_is_escaped_in_the_zone_file_as_opendkim_genkey_writes_it() -> None:
    text = rec(RecordFlags(note="hello")).zone_text()
    assert text.startswith('mail._domainkey\tIN\tTXT\t( "v=DKIM1; n=\\"hello\\"; h=sha256;')


def test_note_with_a_semicolon_is_quoted_printable() -> None:
    assert qp_note("a;b=c") == "a=3Bb=3Dc"
    record = parse_key_record(rec(RecordFlags(note="a;b"), key="").value)
    assert record.notes == '"a=3Bb"'


def test_append_domain_and_no_domain() -> None:
    assert rec().zone_text(append_domain=True).startswith("mail._domainkey.example.com.\tIN")
    assert rec(domain="").zone_text().endswith('" ) \n')


@pytest.mark.parametrize("length", [216, 250, 392, 500, 736])
def test_pieces_of_250_and_opendkim_genkeys_trailing_empty_string(length: int) -> None:
    key = "B" * length
    text = rec(key=key).zone_text()
    pieces = [line.split('"')[1] for line in text.splitlines()[1:]]
    assert "".join(pieces) == "p=" + key
    assert all(len(p) <= 252 for p in pieces)
    # opendkim-genkey's loop writes a separator after every full piece, the last included.
    assert (pieces[-1] == "") == (length % 250 == 0)
    assert "" not in rec(key=key).strings


def test_flat_value_and_json() -> None:
    r = rec()
    assert r.value == "v=DKIM1; h=sha256; k=rsa; p=" + KEY392
    assert r.as_json() == {
        "name": "mail._domainkey.example.com",
        "type": "TXT",
        "value": r.value,
        "strings": ["v=DKIM1; h=sha256; k=rsa; ", "p=" + "A" * 250, "A" * 142],
    }
    assert all(len(s.encode()) <= 255 for s in r.strings)


@pytest.mark.parametrize("key_type", [KeyType.RSA, KeyType.ED25519])
def test_the_record_parses_back_to_the_key(key_type: KeyType) -> None:
    key = generate_key(key_type, 1024)
    record = KeyTxtRecord.for_key(key, "s1", "example.org")
    parsed = parse_key_record(record.value)
    assert parsed.key_type is key_type
    assert parsed.public_bytes == key.public_der()
    assert parsed.hashes == ("sha256",)
    assert record.public_b64 == base64.b64encode(key.public_der()).decode()


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=1200))
def test_split_txt_keeps_the_value_and_the_limit(value: str) -> None:
    pieces = split_txt(value)
    assert "".join(pieces) == value
    assert all(len(p.encode()) <= 255 for p in pieces)


def test_generic_txt_helpers() -> None:
    value = "v=spf1 " + "ip4:192.0.2.1 " * 30 + "-all"
    line = zone_txt_line("example.com.", value)
    assert line.startswith('example.com.\tIN\tTXT\t"v=spf1 ')
    assert line.count('" "') == 1
    assert txt_json("x.example", "a")["strings"] == ["a"]
