"""The DKIM-Signature header field: parse and check it (RFC 6376 §3.5, §6.1.1)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from mailseal.dkim.canon import Canon, CanonError, parse_canon
from mailseal.dkim.tags import TagListError, decode_base64, parse_tag_list, strip_fws

#: a= values and what they need: (key type, hash name).
ALGORITHMS: Final = {
    "rsa-sha256": ("rsa", "sha256"),
    "rsa-sha1": ("rsa", "sha1"),
    "ed25519-sha256": ("ed25519", "sha256"),
}
_REQUIRED: Final = ("v", "a", "b", "bh", "d", "h", "s")
_DIGITS: Final = re.compile(r"[0-9]{1,40}\Z")
# A selector or domain: dot-separated labels of letters, digits, '-' and '_'.
_NAME: Final = re.compile(
    r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?)*\Z"
)


class SignatureError(ValueError):
    """A DKIM-Signature field that cannot be evaluated; the message is the permerror reason."""


@dataclass(frozen=True, slots=True)
class Signature:
    """A parsed, syntactically valid DKIM-Signature."""

    algorithm: str  # a=, lower-case
    key_type: str  # "rsa" or "ed25519"
    hash_name: str  # "sha256" or "sha1"
    signature: bytes  # b=, decoded
    body_hash: bytes  # bh=, decoded
    header_canon: Canon
    body_canon: Canon
    domain: str  # d=, lower-case
    selector: str  # s=
    headers: tuple[str, ...]  # h=, lower-case, in order
    identity: str  # i=, default "@" + d
    length: int | None  # l=
    timestamp: int | None  # t=
    expiration: int | None  # x=


@dataclass(frozen=True, slots=True)
class SignatureLabels:
    """What can be read from a field even when it is broken, for reporting."""

    domain: str
    selector: str
    algorithm: str
    b_prefix: str  # first 8 characters of b=


def read_labels(value: bytes) -> SignatureLabels:
    """Best-effort d=, s=, a= of a field, for the report of a field that does not parse."""
    found: dict[str, str] = {}
    for part in value.decode("latin-1").split(";"):
        name, eq, v = part.partition("=")
        name = name.strip(" \t\r\n")
        if eq and name in ("d", "s", "a", "b") and name not in found:
            found[name] = strip_fws(v)
    return SignatureLabels(
        found.get("d", "").lower(),
        found.get("s", ""),
        found.get("a", "").lower(),
        found.get("b", "")[:8],
    )


def _int_tag(tags: dict[str, str], name: str) -> int | None:
    if name not in tags:
        return None
    v = strip_fws(tags[name])
    if not _DIGITS.match(v):
        raise SignatureError(f"{name}= is not a number")
    return int(v)


def parse_signature(value: bytes) -> Signature:
    """Parse and check a DKIM-Signature field value; raise SignatureError with the reason."""
    try:
        tags = parse_tag_list(value.decode("latin-1"))
    except TagListError as exc:
        raise SignatureError(f"signature syntax error: {exc}") from None
    for name in _REQUIRED:
        if name not in tags:
            raise SignatureError(f"signature has no {name}= tag")
    if tags["v"] != "1":
        raise SignatureError(f"signature version v={tags['v']!r} is not 1")
    algorithm = tags["a"].lower()
    if algorithm not in ALGORITHMS:
        raise SignatureError(f"unsupported signing algorithm a={tags['a']!r}")
    key_type, hash_name = ALGORITHMS[algorithm]
    try:
        header_canon, body_canon = parse_canon(tags.get("c", "simple/simple"))
    except CanonError as exc:
        raise SignatureError(str(exc)) from None
    domain = strip_fws(tags["d"]).rstrip(".").lower()
    if not _NAME.match(domain) or "." not in domain:
        raise SignatureError(f"d={domain[:80]!r} is not a domain name")
    selector = strip_fws(tags["s"])
    if not _NAME.match(selector):
        raise SignatureError(f"s={selector[:80]!r} is not a valid selector")
    headers = tuple(h.strip(" \t\r\n").lower() for h in tags["h"].split(":"))
    if any(not h for h in headers):
        raise SignatureError("h= has an empty header name")
    # RFC 6376 §6.1.1: "the From header field MUST be signed"; without it, the verifier
    # "MUST ... return PERMFAIL (From field not signed)".
    if "from" not in headers:
        raise SignatureError("From field not signed (h= lacks from)")
    identity = strip_fws(tags.get("i", "")) or f"@{domain}"
    local, at, idomain = identity.rpartition("@")
    idomain = idomain.rstrip(".").lower()
    if not at or not (idomain == domain or idomain.endswith("." + domain)):
        raise SignatureError(f"i={identity[:80]!r} is not within d={domain}")
    if "q" in tags:
        methods = [m.strip(" \t\r\n").lower() for m in tags["q"].split(":")]
        if "dns/txt" not in methods:
            raise SignatureError(f"unsupported query method q={tags['q']!r}")
    length = _int_tag(tags, "l")
    timestamp = _int_tag(tags, "t")
    expiration = _int_tag(tags, "x")
    if timestamp is not None and expiration is not None and expiration < timestamp:
        raise SignatureError("x= is earlier than t=")
    try:
        signature = decode_base64(tags["b"], "b=")
        body_hash = decode_base64(tags["bh"], "bh=")
    except TagListError as exc:
        raise SignatureError(str(exc)) from None
    if not signature:
        raise SignatureError("b= is empty")
    if not body_hash:
        raise SignatureError("bh= is empty")
    return Signature(
        algorithm=algorithm,
        key_type=key_type,
        hash_name=hash_name,
        signature=signature,
        body_hash=body_hash,
        header_canon=header_canon,
        body_canon=body_canon,
        domain=domain,
        selector=selector,
        headers=headers,
        identity=identity,
        length=length,
        timestamp=timestamp,
        expiration=expiration,
    )


def without_b_value(raw: bytes) -> bytes:
    """Return the field with the b= tag's value (and its surrounding FWS) deleted (RFC 6376 §3.5).

    Works on the exact bytes, so simple header canonicalization still sees
    everything else unchanged. ``bh=`` and other tags are left alone.
    """
    colon = raw.find(b":")
    pos = colon + 1
    while pos <= len(raw):
        semi = raw.find(b";", pos)
        end = len(raw) if semi < 0 else semi
        eq = raw.find(b"=", pos, end)
        if eq >= 0 and raw[pos:eq].strip(b" \t\r\n") == b"b":
            return raw[: eq + 1] + raw[end:]
        if semi < 0:
            break
        pos = semi + 1
    return raw
