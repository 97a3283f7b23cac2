"""Key loading and key records: every private key format admins have, the errors for the
ones we cannot use, public keys as published in p=, and public_record() round trips."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from mailseal.dkim.keys import (
    KeyType,
    SigningKey,
    generate_key,
    load_private_key,
    load_public_key,
    private_pem,
)
from mailseal.dkim.record import parse_key_record
from mailseal.errors import KeyFileError

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "dkim"
OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")

PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER
NO_PASSWORD = serialization.NoEncryption()


@pytest.fixture(scope="module")
def rsa_private() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 1024)


@pytest.fixture(scope="module")
def ed_private() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def same_public(
    loaded: SigningKey, original: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
) -> bool:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return loaded.key.public_key().public_bytes(DER, spki) == original.public_key().public_bytes(
        DER, spki
    )


def signs_for(loaded: SigningKey, original: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> None:
    """The loaded key makes signatures the original's public key accepts."""
    data = b"DKIM test data"
    pub = original.public_key()
    if isinstance(loaded.key, ed25519.Ed25519PrivateKey):
        assert isinstance(pub, ed25519.Ed25519PublicKey)
        pub.verify(loaded.key.sign(data), data)
    else:
        assert isinstance(pub, rsa.RSAPublicKey)
        pub.verify(
            loaded.key.sign(data, padding.PKCS1v15(), hashes.SHA256()),
            data,
            padding.PKCS1v15(),
            hashes.SHA256(),
        )


# --- private keys: formats that load ----------------------------------------------------------

RSA_FORMATS: dict[str, Callable[[rsa.RSAPrivateKey], bytes]] = {
    "pkcs1-pem": lambda k: k.private_bytes(
        PEM, serialization.PrivateFormat.TraditionalOpenSSL, NO_PASSWORD
    ),
    "pkcs8-pem": lambda k: k.private_bytes(PEM, serialization.PrivateFormat.PKCS8, NO_PASSWORD),
    "pkcs1-der-base64": lambda k: base64.b64encode(
        k.private_bytes(DER, serialization.PrivateFormat.TraditionalOpenSSL, NO_PASSWORD)
    ),
    "pkcs8-der-base64": lambda k: base64.b64encode(
        k.private_bytes(DER, serialization.PrivateFormat.PKCS8, NO_PASSWORD)
    ),
    "der-base64-folded": lambda k: base64.encodebytes(
        k.private_bytes(DER, serialization.PrivateFormat.PKCS8, NO_PASSWORD)
    ),  # 76-character lines, as base64(1) writes
    "pkcs1-pem-crlf": lambda k: k.private_bytes(
        PEM, serialization.PrivateFormat.TraditionalOpenSSL, NO_PASSWORD
    ).replace(b"\n", b"\r\n"),
    "pkcs8-pem-indented": lambda k: (
        b"\n\n  " + k.private_bytes(PEM, serialization.PrivateFormat.PKCS8, NO_PASSWORD) + b"  \n\n"
    ),
}

ED25519_FORMATS: dict[str, Callable[[ed25519.Ed25519PrivateKey], bytes]] = {
    "pkcs8-pem": lambda k: k.private_bytes(PEM, serialization.PrivateFormat.PKCS8, NO_PASSWORD),
    "pkcs8-der-base64": lambda k: base64.b64encode(
        k.private_bytes(DER, serialization.PrivateFormat.PKCS8, NO_PASSWORD)
    ),
    "dkimpy-seed-base64": lambda k: (
        base64.b64encode(
            k.private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, NO_PASSWORD
            )
        )
        + b"\n"
    ),
}


@pytest.mark.parametrize("fmt", list(RSA_FORMATS))
def test_rsa_private_key_formats_load(fmt: str, rsa_private: rsa.RSAPrivateKey) -> None:
    loaded = load_private_key(RSA_FORMATS[fmt](rsa_private), f"{fmt}.key")
    assert (loaded.type, loaded.bits) == (KeyType.RSA, 1024)
    assert same_public(loaded, rsa_private)
    signs_for(loaded, rsa_private)


@pytest.mark.parametrize("fmt", list(ED25519_FORMATS))
def test_ed25519_private_key_formats_load(fmt: str, ed_private: ed25519.Ed25519PrivateKey) -> None:
    loaded = load_private_key(ED25519_FORMATS[fmt](ed_private), f"{fmt}.key")
    assert (loaded.type, loaded.bits) == (KeyType.ED25519, 256)
    assert same_public(loaded, ed_private)
    signs_for(loaded, ed_private)


@needs_openssl
@pytest.mark.parametrize(
    ("command", "key_type", "first_line"),
    [
        (
            ["genrsa", "-traditional", "-out", "{out}", "1024"],
            KeyType.RSA,
            b"-----BEGIN RSA PRIVATE KEY-----",
        ),
        (["genrsa", "-out", "{out}", "1024"], KeyType.RSA, b"-----BEGIN PRIVATE KEY-----"),
        (
            ["genpkey", "-algorithm", "ed25519", "-out", "{out}"],
            KeyType.ED25519,
            b"-----BEGIN PRIVATE KEY-----",
        ),
    ],
    ids=["genrsa-traditional", "genrsa", "genpkey-ed25519"],
)
def test_keys_written_by_openssl_load(
    command: list[str], key_type: KeyType, first_line: bytes, tmp_path: Path
) -> None:
    assert OPENSSL is not None
    out = tmp_path / "key.pem"
    argv = [OPENSSL, *(str(out) if a == "{out}" else a for a in command)]
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    data = out.read_bytes()
    if not data.startswith(first_line):  # OpenSSL 1.1 wrote PKCS#1 for plain genrsa
        pytest.skip(f"this openssl writes {data.splitlines()[0]!r}")
    loaded = load_private_key(data, str(out))
    assert loaded.type is key_type
    pubout = [OPENSSL, "pkey", "-in", str(out), "-pubout", "-outform", "DER"]
    expected = subprocess.run(pubout, check=True, capture_output=True, timeout=60).stdout
    spki = loaded.key.public_key().public_bytes(
        DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert spki == expected


@pytest.mark.parametrize(
    ("path", "key_type", "bits"),
    [
        ("rfc8463/ed25519.seed", KeyType.ED25519, 256),
        ("rfc8463/rsa.pem", KeyType.RSA, 1024),
        ("rfc6376/c-private.pem", KeyType.RSA, 1024),
        ("dkimpy/ed25519test.key", KeyType.ED25519, 256),
        ("dkimpy/sample-512.pem", KeyType.RSA, 512),
        ("generated/rsa-768.pem", KeyType.RSA, 768),
    ],
)
def test_vector_key_files_load(path: str, key_type: KeyType, bits: int) -> None:
    loaded = load_private_key((VECTORS / path).read_bytes(), path)
    assert (loaded.type, loaded.bits) == (key_type, bits)


def test_dkimpy_ed25519_key_matches_its_record() -> None:
    loaded = load_private_key((VECTORS / "dkimpy/ed25519test.key").read_bytes(), "ed25519test.key")
    record = parse_key_record((VECTORS / "dkimpy/ed25519test.dns").read_text().strip())
    assert record.public_bytes == loaded.public_der()


def test_private_pem_round_trips(
    rsa_private: rsa.RSAPrivateKey, ed_private: ed25519.Ed25519PrivateKey
) -> None:
    for pem in (
        RSA_FORMATS["pkcs1-pem"](rsa_private),
        ED25519_FORMATS["dkimpy-seed-base64"](ed_private),
    ):
        key = load_private_key(pem, "key")
        written = private_pem(key)
        assert written.startswith(b"-----BEGIN PRIVATE KEY-----\n")
        again = load_private_key(written, "again.pem")
        assert (again.type, again.bits, again.public_der()) == (
            key.type,
            key.bits,
            key.public_der(),
        )


@pytest.mark.parametrize(
    ("key_type", "bits"), [(KeyType.RSA, 1024), (KeyType.RSA, 2048), (KeyType.ED25519, 256)]
)
def test_generate_key(key_type: KeyType, bits: int) -> None:
    key = generate_key(key_type, bits) if key_type is KeyType.RSA else generate_key(key_type)
    assert (key.type, key.bits) == (key_type, bits)
    assert key.type.default_algorithm == (
        "rsa-sha256" if key_type is KeyType.RSA else "ed25519-sha256"
    )


# --- private keys: what we refuse, and how we say it ----------------------------------------------


def encrypted_pkcs8(k: rsa.RSAPrivateKey) -> bytes:
    return k.private_bytes(
        PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"secret")
    )


def encrypted_traditional(k: rsa.RSAPrivateKey) -> bytes:
    return k.private_bytes(
        PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(b"secret"),
    )


@pytest.mark.parametrize(
    "make", [encrypted_pkcs8, encrypted_traditional], ids=["pkcs8", "traditional"]
)
def test_encrypted_pem_is_refused(
    make: Callable[[rsa.RSAPrivateKey], bytes], rsa_private: rsa.RSAPrivateKey
) -> None:
    with pytest.raises(KeyFileError) as info:
        load_private_key(make(rsa_private), "/etc/dkim/example.key")
    message = str(info.value)
    assert message.startswith("/etc/dkim/example.key: ")
    assert "encrypted" in message and "unencrypted" in message  # says what to do


def _ec_pem() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        PEM, serialization.PrivateFormat.PKCS8, NO_PASSWORD
    )


def _ec_der_b64() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return base64.b64encode(key.private_bytes(DER, serialization.PrivateFormat.PKCS8, NO_PASSWORD))


def _public_pem() -> bytes:
    key = rsa.generate_private_key(65537, 1024).public_key()
    return key.public_bytes(PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


GARBAGE: dict[str, tuple[Callable[[], bytes], str]] = {
    "empty": (lambda: b"", "empty"),
    "whitespace": (lambda: b" \n\t\r\n", "empty"),
    "text": (lambda: b"this is not a key\n", "not a private key"),
    "binary": (lambda: bytes(range(256)), "not a private key"),
    "short-base64": (lambda: base64.b64encode(b"\x00" * 31), "not a DER private key"),
    "long-base64": (lambda: base64.b64encode(b"\x30" * 100), "not a DER private key"),
    "pem-broken-body": (
        lambda: b"-----BEGIN PRIVATE KEY-----\nAAAAAAAA\n-----END PRIVATE KEY-----\n",
        "not a readable PEM private key",
    ),
    "pem-truncated": (
        lambda: b"-----BEGIN RSA PRIVATE KEY-----\nMIIC",
        "not a readable PEM private key",
    ),
    "public-key-pem": (_public_pem, "not a readable PEM private key"),
    "openssh": (
        lambda: (
            b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\n"
            b"-----END OPENSSH PRIVATE KEY-----\n"
        ),
        "not a readable PEM private key",
    ),
    "ec-pem": (_ec_pem, "unsupported key type"),
    "ec-der-base64": (_ec_der_b64, "unsupported key type"),
    "dkim-record": (
        lambda: b"v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQ",
        "not a private key",
    ),
}


@pytest.mark.parametrize("name", list(GARBAGE))
def test_unusable_key_file_names_its_source(name: str) -> None:
    make, problem = GARBAGE[name]
    with pytest.raises(KeyFileError) as info:
        load_private_key(make(), "keys/example.org/mail.private")
    message = str(info.value)
    assert message.startswith("keys/example.org/mail.private: ")
    assert problem in message


# --- public keys as published in p= ---------------------------------------------------------------


def test_rsa_spki_and_bare_pkcs1_give_the_same_key(rsa_private: rsa.RSAPrivateKey) -> None:
    pub = rsa_private.public_key()
    spki = pub.public_bytes(DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pkcs1 = pub.public_bytes(DER, serialization.PublicFormat.PKCS1)
    from_spki, from_pkcs1 = load_public_key(spki, KeyType.RSA), load_public_key(pkcs1, KeyType.RSA)
    assert isinstance(from_spki, rsa.RSAPublicKey) and isinstance(from_pkcs1, rsa.RSAPublicKey)
    assert from_spki.public_numbers() == from_pkcs1.public_numbers() == pub.public_numbers()


@pytest.mark.parametrize("bits", [512, 1024, 2048, 4096])
def test_bare_pkcs1_of_every_size(bits: int) -> None:
    """The DER length bytes differ by size (short form, 0x81, 0x82): the SPKI wrapper
    built around a bare key must get them right."""
    if bits == 512:
        key = load_private_key((VECTORS / "dkimpy/sample-512.pem").read_bytes()).key
    else:
        key = generate_key(KeyType.RSA, bits).key
    assert isinstance(key, rsa.RSAPrivateKey)
    pkcs1 = key.public_key().public_bytes(DER, serialization.PublicFormat.PKCS1)
    loaded = load_public_key(pkcs1, KeyType.RSA)
    assert isinstance(loaded, rsa.RSAPublicKey)
    assert loaded.public_numbers() == key.public_key().public_numbers()


def test_bare_pkcs1_record_from_go_msgauth() -> None:
    """A real published bare RSAPublicKey (go-msgauth's test record): it parses, 1024 bits."""
    record = parse_key_record((VECTORS / "go-msgauth/newengland.dns").read_text().strip())
    assert record.public_bytes.startswith(b"\x30\x81\x89\x02\x81\x81")  # SEQUENCE { INTEGER n ...
    assert (record.key_type, record.bits) == (KeyType.RSA, 1024)


def test_ed25519_raw_public_key(ed_private: ed25519.Ed25519PrivateKey) -> None:
    raw = ed_private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    loaded = load_public_key(raw, KeyType.ED25519)
    assert isinstance(loaded, ed25519.Ed25519PublicKey)
    data = hashlib.sha256(b"x").digest()
    loaded.verify(ed_private.sign(data), data)


@pytest.mark.parametrize(
    ("make", "key_type", "problem"),
    [
        (lambda e, r: b"\x01" * 31, KeyType.ED25519, "ed25519 key is 31 bytes, not 32"),
        (lambda e, r: b"\x01" * 33, KeyType.ED25519, "ed25519 key is 33 bytes, not 32"),
        (  # RFC 8463 §4.2: p= is the raw key, not an SPKI
            lambda e, r: e.public_key().public_bytes(
                DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            KeyType.ED25519,
            "not 32",
        ),
        (lambda e, r: b"", KeyType.RSA, "not an RSA public key"),
        (lambda e, r: b"\x30\x03\x02\x01\x01", KeyType.RSA, "not an RSA public key"),
        (lambda e, r: bytes(range(200)), KeyType.RSA, "not an RSA public key"),
        (
            lambda e, r: e.public_key().public_bytes(
                DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            KeyType.RSA,
            "not an RSA key",
        ),
        (
            lambda e, r: (
                ec.generate_private_key(ec.SECP256R1())
                .public_key()
                .public_bytes(DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            ),
            KeyType.RSA,
            "not an RSA key",
        ),
        (
            lambda e, r: r.private_bytes(DER, serialization.PrivateFormat.PKCS8, NO_PASSWORD),
            KeyType.RSA,
            "not an RSA public key",
        ),
    ],
    ids=[
        "ed-31",
        "ed-33",
        "ed-spki",
        "rsa-empty",
        "rsa-tiny-der",
        "rsa-noise",
        "rsa-given-ed25519",
        "rsa-given-ec",
        "rsa-given-private",
    ],
)
def test_unusable_public_key(
    make: Callable[[ed25519.Ed25519PrivateKey, rsa.RSAPrivateKey], bytes],
    key_type: KeyType,
    problem: str,
    ed_private: ed25519.Ed25519PrivateKey,
    rsa_private: rsa.RSAPrivateKey,
) -> None:
    with pytest.raises(ValueError, match=problem):
        load_public_key(make(ed_private, rsa_private), key_type)


# --- public_record() and parse_key_record() -------------------------------------------------------


@pytest.mark.parametrize("testing", [False, True], ids=["live", "testing"])
@pytest.mark.parametrize(
    ("key_type", "bits"), [(KeyType.RSA, 1024), (KeyType.RSA, 2048), (KeyType.ED25519, 256)]
)
def test_public_record_round_trips(key_type: KeyType, bits: int, testing: bool) -> None:
    key = generate_key(key_type, bits) if key_type is KeyType.RSA else generate_key(key_type)
    text = key.public_record(testing=testing)
    assert text.startswith("v=DKIM1;")  # RFC 6376 §3.6.1: v= first when present
    record = parse_key_record(text)
    assert record.key_type is key_type
    assert record.public_bytes == key.public_der()
    assert record.bits == bits and not record.revoked
    assert record.testing is testing and record.strict is False
    assert record.services == ("*",)
    assert record.hashes == (("sha256",) if key_type is KeyType.RSA else None)
    # The parsed key verifies what the private key signs.
    data = b"round trip"
    if isinstance(key.key, ed25519.Ed25519PrivateKey):
        assert isinstance(record.key, ed25519.Ed25519PublicKey)
        record.key.verify(key.key.sign(data), data)
    else:
        assert isinstance(record.key, rsa.RSAPublicKey)
        record.key.verify(
            key.key.sign(data, padding.PKCS1v15(), hashes.SHA256()),
            data,
            padding.PKCS1v15(),
            hashes.SHA256(),
        )


def test_public_record_survives_dns_string_splitting() -> None:
    """A 2048-bit record is longer than one 255-octet TXT string; split anywhere and
    joined with no separator (RFC 6376 §3.6.2.2), it parses to the same key."""
    key = generate_key(KeyType.RSA, 2048)
    text = key.public_record()
    assert len(text) > 255
    joined = "".join(text[i : i + 255] for i in range(0, len(text), 255))
    assert parse_key_record(joined).public_bytes == key.public_der()
    # Some DNS front ends put a space between the strings: FWS inside p= is allowed.
    spaced = " ".join(text[i : i + 255] for i in range(0, len(text), 255))
    assert parse_key_record(spaced).public_bytes == key.public_der()
