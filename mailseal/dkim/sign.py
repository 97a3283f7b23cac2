"""DKIM signing (RFC 6376 §5, RFC 8463), streaming over the body.

:class:`MessageSigner` takes the header fields, then body chunks, then makes
one DKIM-Signature field per :class:`SignerSpec` (for RSA + Ed25519 dual
signing). :func:`sign_message` does the whole thing for a message in memory.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from mailseal.dkim.canon import BodyHasher, Canon, canon_header
from mailseal.dkim.keys import KeyType, SigningKey
from mailseal.errors import SigningError
from mailseal.message.headers import HeaderField, MessageSplitter, split_fields

#: RFC 6376 §5.4.1's list of fields that SHOULD be signed, which is also
#: OpenDKIM's default (libopendkim ``dkim_should_signhdrs``).
DEFAULT_SIGN_HEADERS: Final[tuple[str, ...]] = (
    "from",
    "reply-to",
    "subject",
    "date",
    "to",
    "cc",
    "resent-date",
    "resent-from",
    "resent-sender",
    "resent-to",
    "resent-cc",
    "in-reply-to",
    "references",
    "list-id",
    "list-help",
    "list-unsubscribe",
    "list-subscribe",
    "list-post",
    "list-owner",
    "list-archive",
)

#: Lines of the added field stay under this many characters (RFC 5322 §2.1.1 SHOULD 78).
FOLD_WIDTH: Final = 76
SIGNATURE_FIELD: Final = b"DKIM-Signature"

# Characters SignerSpec.check refuses (a set: check runs for every message signed).
_NOT_IN_TAG_VALUE: Final = frozenset("; \t\r\n")
_NOT_IN_FIELD_NAME: Final = frozenset(": \t\r\n")


@dataclass(frozen=True, slots=True)
class SignerSpec:
    """How to make one signature."""

    key: SigningKey
    domain: str
    selector: str
    algorithm: str = ""  # "" = from the key type
    header_canon: Canon = Canon.RELAXED
    body_canon: Canon = Canon.RELAXED
    headers: tuple[str, ...] = DEFAULT_SIGN_HEADERS  # lower-case field names to sign
    oversign: tuple[str, ...] = ("from",)  # names signed once more than present
    identity: str | None = None  # i=
    timestamp: bool = True  # write t=
    expire_after: int | None = None  # write x= = t + this many seconds
    body_length: int | None = None  # sign only this many canonical body bytes, with l=
    extra_tags: tuple[tuple[str, str], ...] = field(default=())

    def check(self) -> str:
        """Check the spec; return the a= value. Raise SigningError naming what is wrong."""
        algorithm = self.resolved_algorithm()
        for what, text in (
            ("domain (d=)", self.domain),
            ("selector (s=)", self.selector),
            ("identity (i=)", self.identity or ""),
        ):
            if not text.isascii() or not _NOT_IN_TAG_VALUE.isdisjoint(text):
                raise SigningError(
                    f"{what} {text!r} must be ASCII without spaces or ';' "
                    "(write internationalized domains as A-labels, xn--...)"
                )
        if not self.domain or not self.selector:
            raise SigningError("a signature needs a domain (d=) and a selector (s=)")
        for name in (*self.headers, *self.oversign):
            if not name or not name.isascii() or not _NOT_IN_FIELD_NAME.isdisjoint(name):
                raise SigningError(f"{name!r} is not a header field name")
        # RFC 6376 §3.5: x= "MUST be greater than the value in the t= tag".
        if self.body_length is not None and self.body_length < 0:
            raise SigningError(f"the body length limit must not be negative: {self.body_length}")
        if self.expire_after is not None and self.expire_after <= 0:
            raise SigningError(
                f"the expiry must be a positive number of seconds, not {self.expire_after}"
            )
        return algorithm

    def resolved_algorithm(self) -> str:
        algorithm = (self.algorithm or self.key.type.default_algorithm).lower()
        wanted = {"rsa-sha256": KeyType.RSA, "ed25519-sha256": KeyType.ED25519}
        if algorithm == "rsa-sha1":
            raise SigningError(
                "rsa-sha1 signing is not offered: RFC 8301 forbids it; use rsa-sha256"
            )
        if algorithm not in wanted:
            raise SigningError(f"unknown signing algorithm {algorithm!r}")
        if wanted[algorithm] is not self.key.type:
            raise SigningError(
                f"algorithm {algorithm} needs an {wanted[algorithm].value} key, "
                f"but the key is {self.key.type.value}"
            )
        return algorithm


def select_headers(fields: Sequence[HeaderField], spec: SignerSpec) -> list[str]:
    """The h= list: every present instance of each configured name, plus oversigning.

    Each name appears as many times as the message has it (so every instance is
    signed, bottom-up, RFC 6376 §5.4.2), and an oversigned name once more, so
    that adding another instance later breaks the signature.
    """
    counts = Counter(f.lname for f in fields)
    if not counts.get("from"):
        raise SigningError("the message has no From header field, which DKIM requires to sign")
    names: list[str] = []
    seen: set[str] = set()
    for name in (*spec.headers, *(n for n in spec.oversign if n not in spec.headers)):
        name = name.lower()
        if name in seen:
            continue
        seen.add(name)
        n = counts.get(name, 0) + (1 if name in spec.oversign else 0)
        names.extend([name] * n)
    return names


def hash_input_headers(
    fields: Sequence[HeaderField], names: Sequence[str], canon: Canon
) -> list[bytes]:
    """Canonicalized fields in h= order, each name's instances taken bottom-up (RFC 6376 §5.4.2).

    A name with no instance left contributes nothing (the "null string").
    """
    by_name: dict[str, list[HeaderField]] = {}
    for f in fields:
        by_name.setdefault(f.lname, []).append(f)
    out: list[bytes] = []
    for name in names:
        stack = by_name.get(name)
        if stack:
            out.append(canon_header(stack.pop().raw, canon))
    return out


def _fold(head: bytes, tokens: Sequence[tuple[str, str]]) -> str:
    """Lay out ``Name: tag=value; ... b=`` in lines under FOLD_WIDTH, ending with an empty b=.

    Long values break where FWS is allowed: after ':' in h=, anywhere in base64.
    The b= value is added by :func:`_append_b`, so the bytes before it are the
    same when hashing (b= empty) and in the field written out.
    """
    lines: list[str] = []
    line = head.decode("ascii") + ":"
    for name, value in tokens:
        text = f"{name}={value};"
        if len(line) + 1 + len(text) <= FOLD_WIDTH:
            line += " " + text
        elif name in ("h", "bh", "z") and value:
            line, lines = _place(line, lines, _breakable(name, value))
        else:
            lines.append(line)
            line = "\t" + text
    if len(line) + 3 <= FOLD_WIDTH:
        line += " b="
    else:
        lines.append(line)
        line = "\tb="
    lines.append(line)
    return "\r\n".join(lines)


def _append_b(unsigned: str, value: str) -> bytes:
    """Write the b= value after the trailing ``b=``, folding it in base64-safe places."""
    last = unsigned.rsplit("\n", 1)[-1]
    room = max(FOLD_WIDTH - len(last), 0)
    out = [unsigned + value[:room]]
    for i in range(room, len(value), FOLD_WIDTH - 1):
        out.append("\t" + value[i : i + FOLD_WIDTH - 1])
    return "\r\n".join(out).encode("ascii")


def _breakable(name: str, value: str) -> list[str]:
    if name == "h":
        parts = value.split(":")
        pieces = [p + ":" for p in parts[:-1]] + [parts[-1] + ";"]
        pieces[0] = f"{name}={pieces[0]}"
        return pieces
    text = f"{name}={value};"
    return [text[i : i + 64] for i in range(0, len(text), 64)]


def _place(line: str, lines: list[str], pieces: Sequence[str]) -> tuple[str, list[str]]:
    """Append pieces (no space between them unless folded) to the running line."""
    first = True
    for piece in pieces:
        sep = " " if first else ""
        if len(line) + len(sep) + len(piece) <= FOLD_WIDTH:
            line += sep + piece
        else:
            lines.append(line)
            line = "\t" + piece
        first = False
    return line, lines


def _sign_bytes(key: SigningKey, algorithm: str, data: bytes) -> bytes:
    if algorithm == "ed25519-sha256":
        assert isinstance(key.key, ed25519.Ed25519PrivateKey)
        # RFC 8463 §3: Ed25519 signs the SHA-256 hash of the canonicalized data.
        return key.key.sign(hashlib.sha256(data).digest())
    assert isinstance(key.key, rsa.RSAPrivateKey)
    return key.key.sign(data, padding.PKCS1v15(), hashes.SHA256())


class MessageSigner:
    """Sign one message streamed as header fields, then body chunks."""

    __slots__ = ("specs", "_hashers", "_algorithms")

    def __init__(self, specs: Sequence[SignerSpec]) -> None:
        if not specs:
            raise SigningError("no signing key given")
        self.specs = tuple(specs)
        self._algorithms = [s.check() for s in self.specs]
        self._hashers: dict[tuple[Canon, int | None], BodyHasher] = {}
        for s in self.specs:
            key = (s.body_canon, s.body_length)
            if key not in self._hashers:
                self._hashers[key] = BodyHasher(s.body_canon, limit=s.body_length)

    def update(self, chunk: bytes) -> None:
        """Feed a body chunk (CRLF line ends)."""
        for h in self._hashers.values():
            h.update(chunk)

    def finish(self, fields: Sequence[HeaderField], now: int) -> list[bytes]:
        """Return the DKIM-Signature fields (CRLF folding, no final CRLF), first spec first."""
        out: list[bytes] = []
        for spec, algorithm in zip(self.specs, self._algorithms, strict=True):
            hasher = self._hashers[(spec.body_canon, spec.body_length)]
            bh = base64.b64encode(hasher.digest()).decode("ascii")
            names = select_headers(fields, spec)
            tags: list[tuple[str, str]] = [
                ("v", "1"),
                ("a", algorithm),
                ("c", f"{spec.header_canon.value}/{spec.body_canon.value}"),
                ("d", spec.domain),
                ("s", spec.selector),
            ]
            if spec.identity:
                tags.append(("i", spec.identity))
            if spec.timestamp or spec.expire_after is not None:
                tags.append(("t", str(now)))
            if spec.expire_after is not None:
                tags.append(("x", str(now + spec.expire_after)))
            if spec.body_length is not None:
                # RFC 6376 §3.5: l= counts the canonicalized body bytes that were hashed.
                tags.append(("l", str(min(spec.body_length, hasher.length))))
            tags.extend(spec.extra_tags)
            tags += [("h", ":".join(names)), ("bh", bh)]
            unsigned = _fold(SIGNATURE_FIELD, tags)
            data = b"".join(hash_input_headers(fields, names, spec.header_canon))
            data += canon_header(unsigned.encode("ascii"), spec.header_canon)[:-2]
            b = base64.b64encode(_sign_bytes(spec.key, algorithm, data)).decode("ascii")
            out.append(_append_b(unsigned, b))
        return out


def sign_message(message: bytes, specs: Sequence[SignerSpec], now: int) -> list[bytes]:
    """Sign a whole message in CRLF form; return the DKIM-Signature fields to prepend."""
    splitter = MessageSplitter(max_header_bytes=len(message) + 1)
    signer = MessageSigner(specs)
    signer.update(splitter.feed(message))
    fields = splitter.finish()
    return signer.finish(fields, now)


__all__ = [
    "DEFAULT_SIGN_HEADERS",
    "MessageSigner",
    "SignerSpec",
    "hash_input_headers",
    "select_headers",
    "sign_message",
    "split_fields",
]
