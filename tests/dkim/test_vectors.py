"""Outside test vectors: RFC 8463 Appendix A, RFC 6376 §3.4.5 and Appendices A and C,
signed messages from dkimpy and go-msgauth, and signing both ways with dkimpy.

The files live in tests/vectors/dkim/; its README.md names each one's source and
licence. Messages are stored with LF line ends and read through ``to_crlf``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any

import dkim as dkimpy
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from mailseal.dkim.canon import BodyHasher, Canon, canon_header, canonicalize_body
from mailseal.dkim.keys import KeyType, SigningKey, load_private_key
from mailseal.dkim.record import parse_key_record
from mailseal.dkim.results import DkimResult
from mailseal.dkim.sign import SignerSpec, hash_input_headers
from mailseal.dkim.signature import parse_signature, without_b_value
from mailseal.message.headers import HeaderField, MessageSplitter, to_crlf
from tests.dkim.conftest import ZoneFactory, assert_verdicts, publish, sign, verify

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "dkim"

# RFC 8463 Appendix A: the message is signed at t=1528637909.
RFC8463_TIME = 1528637909
RFC8463_BODY_HASH = "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8="


def read(path: str) -> bytes:
    return (VECTORS / path).read_bytes()


def read_message(path: str) -> bytes:
    return to_crlf(read(path))


def read_zone_file(path: str) -> dict[str, list[str | list[str]]]:
    """Read the ``name. IN TXT ( "..." "..." )`` records the RFCs print (no other syntax)."""
    text = read(path).decode("ascii")
    zone: dict[str, list[str | list[str]]] = {}
    for m in re.finditer(r"^(\S+)\.\s+IN\s+TXT\s+\((.*?)\)", text, re.M | re.S):
        zone.setdefault(m.group(1).lower(), []).append(re.findall(r'"([^"]*)"', m.group(2)))
    assert zone, f"no TXT records in {path}"
    return zone


def split(message: bytes) -> tuple[list[HeaderField], bytes]:
    splitter = MessageSplitter()
    body = splitter.feed(message)
    return splitter.finish(), body


def signature_fields(message: bytes) -> list[HeaderField]:
    return [f for f in split(message)[0] if f.lname == "dkim-signature"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- verification vectors (cases.json) -------------------------------------------------

CASES: list[dict[str, Any]] = json.loads(read("cases.json"))


def case_zone(case: dict[str, Any]) -> dict[str, list[str | list[str]]]:
    if isinstance(case["zone"], str):
        return read_zone_file(case["zone"])
    return {name: [read(path).decode("ascii").strip()] for name, path in case["zone"].items()}


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_vector_verifies(case: dict[str, Any], zone: ZoneFactory) -> None:
    resolver = zone(case_zone(case))
    verdict = verify(read_message(case["message"]), resolver, case["now"])
    got = [(s.result.value, s.selector, s.key_bits) for s in verdict.signatures]
    assert got == [tuple(e) for e in case["expect"]]
    assert verdict.result is DkimResult.PASS
    # One key query per distinct selector, nothing else.
    assert sorted(set(resolver.asked)) == sorted(resolver.asked)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_vector_fails_once_the_body_changes(case: dict[str, Any], zone: ZoneFactory) -> None:
    message = read_message(case["message"]) + b"P.S. one more line\r\n"
    verdict = verify(message, zone(case_zone(case)), case["now"])
    assert_verdicts(verdict, [(DkimResult.FAIL, "body hash did not verify")] * len(case["expect"]))


# --- RFC 8463 Appendix A ---------------------------------------------------------------


def rfc8463_keys() -> dict[str, SigningKey]:
    """RFC 8463 Appendix A.1: the Ed25519 seed (dkimpy's format) and the RSA PKCS#1 PEM."""
    return {
        "brisbane": load_private_key(read("rfc8463/ed25519.seed"), "RFC 8463 A.1 Ed25519"),
        "test": load_private_key(read("rfc8463/rsa.pem"), "RFC 8463 A.1 RSA"),
    }


@pytest.mark.parametrize("selector", ["brisbane", "test"])
def test_rfc8463_private_keys_match_published_records(selector: str) -> None:
    key = rfc8463_keys()[selector]
    records = read_zone_file("rfc8463/zone.txt")[f"{selector}._domainkey.football.example.com"]
    (strings,) = records
    record = parse_key_record("".join(strings))
    assert record.key_type is key.type
    assert record.public_bytes == key.public_der()
    assert (record.bits, key.bits) == ((256, 256) if selector == "brisbane" else (1024, 1024))


def test_rfc8463_keys_are_the_ones_dkimpy_ships() -> None:
    """Provenance check: RFC 8463 A.1 reuses dkimpy's RSA test key and the RFC 8032 §7.1
    seed; dkimpy's test.txt publishes the same RSA key as A.2."""
    assert read("rfc8463/rsa.pem") == read("dkimpy/test.private")
    assert read("rfc8463/ed25519.seed").strip() == read("dkimpy/rfc8032_7_1.key").strip()
    (strings,) = read_zone_file("rfc8463/zone.txt")["test._domainkey.football.example.com"]
    a2 = parse_key_record("".join(strings))
    assert (
        parse_key_record(read("dkimpy/test.txt").decode().strip()).public_bytes == a2.public_bytes
    )


def test_rfc8463_signature_fields_parse() -> None:
    first, second = signature_fields(read_message("rfc8463/signed.eml"))
    for field, algorithm, selector in (
        (first, "ed25519-sha256", "brisbane"),
        (second, "rsa-sha256", "test"),
    ):
        sig = parse_signature(field.value)
        assert (sig.algorithm, sig.selector, sig.domain) == (
            algorithm,
            selector,
            "football.example.com",
        )
        assert (sig.header_canon, sig.body_canon) == (Canon.RELAXED, Canon.RELAXED)
        assert sig.identity == "@football.example.com"
        assert sig.timestamp == RFC8463_TIME and sig.expiration is None and sig.length is None
        assert sig.headers == (
            "from",
            "to",
            "subject",
            "date",
            "message-id",
            "from",
            "subject",
            "date",
        )
        assert b64(sig.body_hash) == RFC8463_BODY_HASH


def test_rfc8463_body_hash() -> None:
    """Relaxed body canonicalization of A.3's body gives the published bh= (in any chunking)."""
    _, body = split(read_message("rfc8463/signed.eml"))
    canonical = canonicalize_body(body, Canon.RELAXED)
    # The double space after "game." becomes one and the blank line after "Joe." goes.
    assert canonical == b"Hi.\r\n\r\nWe lost the game. Are you hungry yet?\r\n\r\nJoe.\r\n"
    hasher = BodyHasher(Canon.RELAXED)
    for i in range(len(body)):
        hasher.update(body[i : i + 1])
    assert b64(hasher.digest()) == RFC8463_BODY_HASH


@pytest.mark.parametrize("selector", ["brisbane", "test"])
def test_rfc8463_b_value_reproduced_from_the_engine_hash_input(selector: str) -> None:
    """Ed25519 (RFC 8032) and RSASSA-PKCS1-v1_5 are deterministic: the A.1 key over the
    header hash input the engine builds (RFC 6376 §3.7) must give A.3's b= exactly.

    The hash input comes from the engine (hash_input_headers, canon_header,
    without_b_value) and the key from load_private_key; the signing step is the
    one RFC 8463 §3 and RFC 8301 name. MessageSigner cannot be asked for A.3's
    exact field (it writes its tags in its own order, s= before i=, no q=, h=
    grouped by name), so its output is checked separately below.
    """
    message = read_message("rfc8463/signed.eml")
    fields, _ = split(message)
    field = next(
        f for f in signature_fields(message) if parse_signature(f.value).selector == selector
    )
    sig = parse_signature(field.value)
    data = b"".join(hash_input_headers(fields, sig.headers, sig.header_canon))
    data += canon_header(without_b_value(field.raw), sig.header_canon)[:-2]
    assert data.startswith(b"from:Joe SixPack <joe@football.example.com>\r\nto:Suzie Q")
    assert data.endswith(b" bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=; b=")
    key = rfc8463_keys()[selector].key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        made = key.sign(hashlib.sha256(data).digest())
    else:
        assert isinstance(key, rsa.RSAPrivateKey)
        made = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    assert b64(made) == b64(sig.signature)


def rfc8463_unsigned() -> bytes:
    """A.3 without its two DKIM-Signature fields."""
    message = read_message("rfc8463/signed.eml")
    return message[message.index(b"From: ") :]


def rfc8463_spec(selector: str, header_canon: Canon, body_canon: Canon) -> SignerSpec:
    return SignerSpec(
        key=rfc8463_keys()[selector],
        domain="football.example.com",
        selector=selector,
        header_canon=header_canon,
        body_canon=body_canon,
        headers=("from", "to", "subject", "date", "message-id"),
        oversign=("from", "subject", "date"),
        identity="@football.example.com",
    )


def reference_relaxed_field(raw: bytes) -> bytes:
    """RFC 6376 §3.4.2, for one field, written out separately from the engine."""
    name, _, value = re.sub(rb"\r\n(?=[ \t])", b"", raw).partition(b":")
    value = re.sub(rb"[ \t]+", b" ", value).strip(b" ")
    return name.rstrip(b" \t").lower() + b":" + value


@pytest.mark.parametrize("selector", ["brisbane", "test"])
def test_rfc8463_signer_output_recomputed_independently(selector: str) -> None:
    """Our signer with the A.1 key at A.3's time: its b= equals a recomputation made with
    a canonicalization written here and the cryptography library, and it is stable."""
    spec = rfc8463_spec(selector, Canon.RELAXED, Canon.RELAXED)
    message = rfc8463_unsigned()
    signed = sign(message, [spec], RFC8463_TIME)
    assert sign(message, [spec], RFC8463_TIME) == signed  # deterministic, both algorithms
    (field,) = signature_fields(signed)
    sig = parse_signature(field.value)
    assert b64(sig.body_hash) == RFC8463_BODY_HASH
    assert sig.timestamp == RFC8463_TIME
    # h= lists every instance (bottom-up) and each oversigned name once more.
    assert sig.headers == ("from", "from", "to", "subject", "subject", "date", "date", "message-id")
    fields, _ = split(message)
    by_name = {f.lname: f for f in fields}  # one instance of each here
    data = b"".join(
        reference_relaxed_field(by_name[n].raw) + b"\r\n" for n in dict.fromkeys(sig.headers)
    )
    data += reference_relaxed_field(re.sub(rb"b=[^;]*$", b"b=", field.raw))
    key = spec.key.key
    pub = key.public_key()
    if isinstance(pub, ed25519.Ed25519PublicKey):
        pub.verify(sig.signature, hashlib.sha256(data).digest())
    else:
        assert isinstance(pub, rsa.RSAPublicKey)
        pub.verify(sig.signature, data, padding.PKCS1v15(), hashes.SHA256())


# --- signing both ways with dkimpy (in process, RFC 8463 keys and records) -------------

CANONS = [(h, b) for h in Canon for b in Canon]
CANON_IDS = [f"{h.value}-{b.value}" for h, b in CANONS]


def dkimpy_dns(name: bytes, timeout: int = 5) -> bytes | None:
    records = read_zone_file("rfc8463/zone.txt")
    found = records.get(name.decode("ascii").rstrip(".").lower())
    return "".join(found[0]).encode("ascii") if found else None


@pytest.mark.parametrize("selector", ["brisbane", "test"])
@pytest.mark.parametrize(("header_canon", "body_canon"), CANONS, ids=CANON_IDS)
def test_dkimpy_verifies_our_signature(
    selector: str, header_canon: Canon, body_canon: Canon
) -> None:
    signed = sign(
        rfc8463_unsigned(), [rfc8463_spec(selector, header_canon, body_canon)], RFC8463_TIME
    )
    assert dkimpy.verify(signed, dnsfunc=dkimpy_dns) is True
    assert dkimpy.verify(signed.replace(b"Joe.", b"Joe!"), dnsfunc=dkimpy_dns) is False


@pytest.mark.parametrize("selector", ["brisbane", "test"])
@pytest.mark.parametrize(("header_canon", "body_canon"), CANONS, ids=CANON_IDS)
def test_we_verify_dkimpy_signature(
    selector: str, header_canon: Canon, body_canon: Canon, zone: ZoneFactory
) -> None:
    message = rfc8463_unsigned()
    key = read("rfc8463/ed25519.seed" if selector == "brisbane" else "rfc8463/rsa.pem")
    field = dkimpy.sign(
        message,
        selector.encode(),
        b"football.example.com",
        key,
        canonicalize=(header_canon.value.encode(), body_canon.value.encode()),
        signature_algorithm=b"ed25519-sha256" if selector == "brisbane" else b"rsa-sha256",
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
    )
    now = int(time.time())  # dkimpy writes t= from the wall clock
    verdict = verify(field + message, zone(read_zone_file("rfc8463/zone.txt")), now)
    assert_verdicts(verdict, [(DkimResult.PASS, "")])
    assert verdict.signatures[0].selector == selector


# --- RFC 6376 ----------------------------------------------------------------------------


def rfc_notation(text: str) -> bytes:
    """Decode RFC 6376 §3.4.5's notation: literal whitespace is for clarity only."""
    compact = re.sub(r"\s+", "", text)
    return compact.replace("<SP>", " ").replace("<HTAB>", "\t").replace("<CRLF>", "\r\n").encode()


def canon_examples() -> dict[str, bytes]:
    sections: dict[str, bytes] = {}
    text = read("rfc6376/canon-examples.txt").decode("utf-8")
    for part in re.split(r"^== ", text, flags=re.M)[1:]:
        name, _, body = part.partition("\n")
        sections[name.strip()] = rfc_notation(body)
    return sections


@pytest.mark.parametrize("canon", list(Canon), ids=[c.value for c in Canon])
def test_rfc6376_canonicalization_examples(canon: Canon) -> None:
    """RFC 6376 §3.4.5, Examples 1 (relaxed) and 2 (simple)."""
    ex = canon_examples()
    assert ex["message"] == (
        b"A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n"
    )  # the notation decoded as the RFC means it
    fields, body = split(ex["message"])
    assert b"".join(canon_header(f.raw, canon) for f in fields) == ex[f"{canon.value} header"]
    assert canonicalize_body(body, canon) == ex[f"{canon.value} body"]


def test_rfc6376_a1_body_hash_matches_a2() -> None:
    """RFC 6376 A.1's body, simple-canonicalized, hashes to A.2's bh=; relaxed gives the same
    here, and so does RFC 8463's copy of the body, which has two spaces after "game."."""
    _, body = split(read_message("rfc6376/a1-unsigned.eml"))
    assert b64(hashlib.sha256(canonicalize_body(body, Canon.SIMPLE)).digest()) == RFC8463_BODY_HASH
    assert b64(hashlib.sha256(canonicalize_body(body, Canon.RELAXED)).digest()) == RFC8463_BODY_HASH
    (field,) = signature_fields(read_message("rfc6376/a2-signed.eml"))
    assert b64(parse_signature(field.value).body_hash) == RFC8463_BODY_HASH


def test_rfc6376_a2_signature_parses() -> None:
    """RFC 6376 Appendix A.2's field. Its published signature is commonly reported not to
    verify against the RFC text as printed, so the RFC text itself is used here only for
    parsing and canonicalization; go-msgauth's layout of it is verified in cases.json."""
    (field,) = signature_fields(read_message("rfc6376/a2-signed.eml"))
    sig = parse_signature(field.value)
    assert (sig.algorithm, sig.key_type, sig.hash_name) == ("rsa-sha256", "rsa", "sha256")
    assert (sig.domain, sig.selector, sig.identity) == (
        "example.com",
        "brisbane",
        "joe@football.example.com",
    )
    assert (sig.header_canon, sig.body_canon) == (Canon.SIMPLE, Canon.SIMPLE)
    assert sig.headers == ("received", "from", "to", "subject", "date", "message-id")
    assert (sig.timestamp, sig.expiration, sig.length) == (None, None, None)
    assert len(sig.signature) == 128  # a 1024-bit RSA signature
    # Removing b= keeps everything else byte for byte (simple header canonicalization).
    b_tag = field.raw.rindex(b"b=AuUo")
    assert without_b_value(field.raw) == field.raw[: b_tag + 2] + b";"


def test_rfc6376_appendix_c_key_matches_record() -> None:
    key = load_private_key(read("rfc6376/c-private.pem"), "RFC 6376 Appendix C")
    (strings,) = read_zone_file("rfc6376/c-zone.txt")["brisbane._domainkey.example.com"]
    record = parse_key_record("".join(strings))
    assert (record.key_type, record.bits, record.hashes, record.services) == (
        KeyType.RSA,
        1024,
        None,
        ("*",),
    )
    assert record.public_bytes == key.public_der()
    spki = serialization.load_der_public_key(record.public_bytes)
    assert isinstance(spki, rsa.RSAPublicKey)


@pytest.mark.parametrize(
    ("canon", "expected"),
    [(Canon.SIMPLE, b"\r\n"), (Canon.RELAXED, b"")],
    ids=["simple", "relaxed"],
)
def test_rfc6376_empty_body(canon: Canon, expected: bytes) -> None:
    """§3.4.3: "a completely empty or missing body is canonicalized as a single CRLF";
    §3.4.4: relaxed adds a CRLF only to a non-empty body."""
    for body in (b"", b"\r\n", b"\r\n" * 5):
        assert canonicalize_body(body, canon) == expected
        hasher = BodyHasher(canon)
        hasher.update(body)
        assert hasher.digest() == hashlib.sha256(expected).digest()
    # The two well-known empty-body hashes.
    known = {
        b"\r\n": "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=",
        b"": "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
    }
    assert b64(hashlib.sha256(expected).digest()) == known[expected]


# --- the messages of these vectors, re-signed by us: every canonicalization, both keys --


@pytest.mark.parametrize("selector", ["brisbane", "test"])
@pytest.mark.parametrize(("header_canon", "body_canon"), CANONS, ids=CANON_IDS)
def test_we_verify_our_own_signature_of_rfc_message(
    selector: str, header_canon: Canon, body_canon: Canon, zone: ZoneFactory
) -> None:
    spec = rfc8463_spec(selector, header_canon, body_canon)
    signed = sign(rfc8463_unsigned(), [spec], RFC8463_TIME)
    resolver = zone(publish(spec))
    verdict = verify(signed, resolver, RFC8463_TIME)
    assert_verdicts(verdict, [(DkimResult.PASS, "")])
    assert resolver.asked == [f"{selector}._domainkey.football.example.com"]
