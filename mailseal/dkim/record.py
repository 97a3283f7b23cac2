"""DKIM key records published in DNS (RFC 6376 §3.6.1, RFC 8463 §4.2)."""

from __future__ import annotations

from dataclasses import dataclass

from mailseal.dkim.keys import KeyType, PublicKey, load_public_key
from mailseal.dkim.tags import TagListError, decode_base64, parse_tag_list


class KeyRecordError(ValueError):
    """A key record that cannot be used; the message says why (for permerror reasons)."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A parsed key record. ``key`` is None for a revoked key (empty ``p=``)."""

    key_type: KeyType
    key: PublicKey | None
    public_bytes: bytes  # decoded p=
    hashes: tuple[str, ...] | None  # h=, None when absent (all allowed)
    services: tuple[str, ...]  # s=, default ("*",)
    testing: bool  # t=y
    strict: bool  # t=s: i= domain must equal d=
    notes: str | None = None  # n=

    @property
    def revoked(self) -> bool:
        return self.key is None

    @property
    def bits(self) -> int:
        if self.key is None:
            return 0
        if self.key_type is KeyType.ED25519:
            return 256
        return self.key.key_size  # type: ignore[union-attr]


def parse_key_record(text: str) -> KeyRecord:
    """Parse a key record's text (TXT strings already joined); raise KeyRecordError if unusable.

    RFC 6376 §3.6.1: v= "MUST be the first tag in the record" when present and
    equal to "DKIM1"; "Unrecognized key types MUST be ignored" (an unknown k=
    makes the record unusable); p= is required and empty means revoked.
    """
    try:
        tags = parse_tag_list(text)
    except TagListError as exc:
        raise KeyRecordError(f"key record syntax error: {exc}") from None
    if "v" in tags:
        if next(iter(tags)) != "v":
            raise KeyRecordError("key record has v= but not as its first tag")
        if tags["v"] != "DKIM1":
            raise KeyRecordError(f"key record version v={tags['v']!r} is not DKIM1")
    k = tags.get("k", "rsa").strip().lower()
    try:
        key_type = KeyType(k)
    except ValueError:
        raise KeyRecordError(f"key record has unknown key type k={k!r}") from None
    if "p" not in tags:
        raise KeyRecordError("key record has no p= tag")
    hashes = None
    if "h" in tags:
        hashes = tuple(h.strip().lower() for h in tags["h"].split(":") if h.strip())
    services = tuple(s.strip().lower() for s in tags.get("s", "*").split(":") if s.strip())
    flags = {f.strip().lower() for f in tags.get("t", "").split(":")}
    try:
        raw = decode_base64(tags["p"], "p=")
    except TagListError as exc:
        raise KeyRecordError(f"key record {exc}") from None
    key: PublicKey | None = None
    if raw:
        try:
            key = load_public_key(raw, key_type)
        except ValueError as exc:
            raise KeyRecordError(f"key record {exc}") from None
    return KeyRecord(
        key_type=key_type,
        key=key,
        public_bytes=raw,
        hashes=hashes,
        services=services or ("*",),
        testing="y" in flags,
        strict="s" in flags,
        notes=tags.get("n"),
    )
