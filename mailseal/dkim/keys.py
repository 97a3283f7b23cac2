"""DKIM keys: load private keys in the formats admins have, parse and render public keys.

Private keys: RSA PEM (PKCS#1 ``BEGIN RSA PRIVATE KEY`` and PKCS#8), Ed25519 PEM
(PKCS#8), dkimpy's raw base64 Ed25519 seed (32 bytes), and base64 DER (PKCS#1
or PKCS#8, as some KeyTables inline it). Public keys as published in ``p=``:
RSA SubjectPublicKeyInfo (what every signer publishes) or a bare PKCS#1
RSAPublicKey; Ed25519 as the raw 32-byte key (RFC 8463 §4.2).
"""

from __future__ import annotations

import base64
import binascii
import enum
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailseal.errors import KeyFileError


class KeyType(enum.Enum):
    """The k= key types (RFC 6376 §3.6.1, RFC 8463)."""

    RSA = "rsa"
    ED25519 = "ed25519"

    @property
    def default_algorithm(self) -> str:
        return "rsa-sha256" if self is KeyType.RSA else "ed25519-sha256"


PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key ready to sign, with its type and size."""

    key: PrivateKey
    type: KeyType
    bits: int  # RSA modulus size; 256 for Ed25519

    def public_der(self) -> bytes:
        """The public half as it goes in ``p=``: SPKI DER for RSA, raw 32 bytes for Ed25519."""
        pub = self.key.public_key()
        if isinstance(pub, ed25519.Ed25519PublicKey):
            return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return pub.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def public_record(self, *, testing: bool = False) -> str:
        """The key record to publish at ``SELECTOR._domainkey.DOMAIN`` (RFC 6376 §3.6.1)."""
        p = base64.b64encode(self.public_der()).decode("ascii")
        head = "v=DKIM1; h=sha256; k=rsa" if self.type is KeyType.RSA else "v=DKIM1; k=ed25519"
        return f"{head};{' t=y;' if testing else ''} p={p}"


def _wrap(key: object, source: str) -> SigningKey:
    if isinstance(key, rsa.RSAPrivateKey):
        return SigningKey(key, KeyType.RSA, key.key_size)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return SigningKey(key, KeyType.ED25519, 256)
    raise KeyFileError(
        f"{source}: unsupported key type {type(key).__name__}; DKIM uses RSA or Ed25519 keys"
    )


def load_private_key(data: bytes, source: str = "key") -> SigningKey:
    """Load a private key from any supported format; ``source`` names it in errors."""
    text = data.strip()
    if not text:
        raise KeyFileError(f"{source}: the key file is empty")
    if b"-----BEGIN" in text:
        if b"ENCRYPTED" in text:
            raise KeyFileError(
                f"{source}: the private key is encrypted; DKIM keys must be stored unencrypted "
                "(openssl pkey -in KEY -out KEY.plain)"
            )
        try:
            return _wrap(serialization.load_pem_private_key(text, password=None), source)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise KeyFileError(f"{source}: not a readable PEM private key ({exc})") from None
    try:
        raw = base64.b64decode(b"".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(
            f"{source}: not a private key (expected PEM, base64 DER, or a base64 Ed25519 seed)"
        ) from None
    if len(raw) == 32:
        # dkimpy's Ed25519 format: the 32-byte private seed, base64 encoded.
        return SigningKey(ed25519.Ed25519PrivateKey.from_private_bytes(raw), KeyType.ED25519, 256)
    try:
        return _wrap(serialization.load_der_private_key(raw, password=None), source)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"{source}: base64 data is not a DER private key ({exc})") from None


def load_public_key(raw: bytes, key_type: KeyType) -> PublicKey:
    """Parse a decoded ``p=`` value; raise ValueError with a reason when it is not a key."""
    if key_type is KeyType.ED25519:
        if len(raw) != 32:
            raise ValueError(f"ed25519 key is {len(raw)} bytes, not 32")
        return ed25519.Ed25519PublicKey.from_public_bytes(raw)
    try:
        key = serialization.load_der_public_key(raw)
    except (ValueError, UnsupportedAlgorithm):
        try:
            # A bare PKCS#1 RSAPublicKey, as a few signers publish.
            key = serialization.load_der_public_key(_pkcs1_to_spki(raw))
        except (ValueError, UnsupportedAlgorithm):
            raise ValueError("p= is not an RSA public key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError(f"p= holds a {type(key).__name__}, not an RSA key")
    return key


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def _pkcs1_to_spki(pkcs1: bytes) -> bytes:
    """Wrap a PKCS#1 RSAPublicKey in a SubjectPublicKeyInfo (rsaEncryption, NULL params)."""
    alg = bytes.fromhex("300d06092a864886f70d0101010500")
    bitstring = b"\x03" + _der_len(len(pkcs1) + 1) + b"\x00" + pkcs1
    body = alg + bitstring
    return b"\x30" + _der_len(len(body)) + body


def generate_key(key_type: KeyType, bits: int = 2048) -> SigningKey:
    """Make a new private key (randomness from the OS, through OpenSSL)."""
    if key_type is KeyType.ED25519:
        return SigningKey(ed25519.Ed25519PrivateKey.generate(), KeyType.ED25519, 256)
    return SigningKey(rsa.generate_private_key(65537, bits), KeyType.RSA, bits)


def private_pem(key: SigningKey) -> bytes:
    """The private key as unencrypted PKCS#8 PEM (what ``openssl genpkey`` writes)."""
    return key.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
