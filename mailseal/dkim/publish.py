"""The DKIM key record to publish: opendkim-genkey's zone-file layout, the flat value, JSON.

``opendkim-genkey`` (Debian 2.11, a Perl script) writes ``SELECTOR.txt`` as::

    mail._domainkey<TAB>IN<TAB>TXT<TAB>( "v=DKIM1; h=sha256; k=rsa; "
    <TAB>  "p=MIIBIjANBg...(250 characters)"
    <TAB>  "...rest of the key" )  ; ----- DKIM key mail for example.com

The first string holds ``v=DKIM1;``, `` n="NOTE";`` with ``-n``, `` h=ALGS;``, ``
k=rsa;`` and the flags (``t=y;``, ``t=s;``, ``t=y:s;``, ``s=email;``), each
followed by one space. The key follows in strings of 250 characters, the
first prefixed ``p=``. Its loop closes a full 250-character piece with a
separator even after the last one, so a key whose base64 length is a multiple
of 250 ends with an empty ``""`` string: kept here, byte for byte. ``-a``
appends ``.DOMAIN.`` to the owner name; without a domain there is no comment.

Every string stays under the 255-octet limit of a DNS character-string
(RFC 1035 §3.3); verifiers join them without separators (RFC 6376 §3.6.2.2).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Final

from mailseal.dkim.keys import KeyType, SigningKey

#: RFC 1035 §3.3: a <character-string> holds at most 255 octets.
TXT_STRING_MAX: Final = 255
#: opendkim-genkey's piece size for the base64 key.
GENKEY_CHUNK: Final = 250
#: The owner-name suffix of every key record (RFC 6376 §3.6.2.1).
DOMAINKEY: Final = "_domainkey"

# RFC 6376 §2.11 dkim-quoted-printable: these characters stand for themselves in n=.
_QP_PLAIN: Final = frozenset(
    [chr(c) for c in range(0x21, 0x3B)] + ["<"] + [chr(c) for c in range(0x3E, 0x7F)] + [" "]
)


@dataclass(frozen=True, slots=True)
class RecordFlags:
    """What opendkim-genkey's options put in the record besides the key."""

    hashes: str | None = "sha256"  # -h: h= (Debian's default); None leaves h= out
    note: str | None = None  # -n: n=
    testing: bool = False  # -t: t=y
    no_subdomains: bool = False  # -S: t=s (i= must be d= exactly)
    email_only: bool = False  # -r: s=email


@dataclass(frozen=True, slots=True)
class KeyTxtRecord:
    """A DKIM key record for ``SELECTOR._domainkey.DOMAIN`` (RFC 6376 §3.6.1)."""

    selector: str
    domain: str
    key_type: KeyType
    public_b64: str  # base64 of p= (SPKI DER for RSA, the raw key for Ed25519)
    flags: RecordFlags = RecordFlags()

    @classmethod
    def for_key(
        cls, key: SigningKey, selector: str, domain: str, flags: RecordFlags = RecordFlags()
    ) -> KeyTxtRecord:
        """The record publishing ``key``'s public half."""
        b64 = base64.b64encode(key.public_der()).decode("ascii")
        return cls(selector, domain, key.type, b64, flags)

    @property
    def name(self) -> str:
        """The owner name without a trailing dot: ``mail._domainkey.example.com``."""
        return f"{self.selector}.{DOMAINKEY}.{self.domain}" if self.domain else self.relative_name

    @property
    def relative_name(self) -> str:
        """The owner name relative to the domain's zone: ``mail._domainkey``."""
        return f"{self.selector}.{DOMAINKEY}"

    @property
    def head(self) -> str:
        """The first string: every tag but p=, in opendkim-genkey's order and spacing."""
        note = f' n="{qp_note(self.flags.note)}";' if self.flags.note is not None else ""
        hashes = f" h={self.flags.hashes};" if self.flags.hashes is not None else ""
        flags = []
        if self.flags.testing or self.flags.no_subdomains:
            wanted = (("y", self.flags.testing), ("s", self.flags.no_subdomains))
            flags.append("t=" + ":".join(f for f, on in wanted if on) + ";")
        if self.flags.email_only:
            flags.append("s=email;")
        tail = "".join(f + " " for f in flags)
        return f"v=DKIM1;{note}{hashes} k={self.key_type.value}; {tail}"

    def _zone_strings(self) -> list[str]:
        """The strings as opendkim-genkey writes them, a trailing empty one included."""
        key = self.public_b64
        pieces = [key[i : i + GENKEY_CHUNK] for i in range(0, len(key), GENKEY_CHUNK)] or [""]
        if key and len(key) % GENKEY_CHUNK == 0:
            pieces.append("")  # OpenDKIM compat: opendkim-genkey's loop leaves this "" behind
        pieces[0] = "p=" + pieces[0]
        return [self.head, *pieces]

    @property
    def strings(self) -> tuple[str, ...]:
        """The TXT record's character-strings (each at most 252 octets), empty ones left out."""
        return tuple(s for s in self._zone_strings() if s)

    @property
    def value(self) -> str:
        """The record as one line: what a DNS provider's web form wants (strings joined)."""
        return "".join(self.strings)

    def zone_text(self, *, append_domain: bool = False) -> str:
        """``SELECTOR.txt`` exactly as opendkim-genkey writes it (ends with a newline)."""
        owner = self.relative_name + (f".{self.domain}." if append_domain else "")
        strings = [zone_quote(s) for s in self._zone_strings()]
        comment = f" ; ----- DKIM key {self.selector} for {self.domain}" if self.domain else ""
        return (
            f"{owner}\tIN\tTXT\t( {strings[0]}\n\t  "
            + "\n\t  ".join(strings[1:])
            + (f" ) {comment}\n")
        )

    def as_json(self) -> dict[str, object]:
        """``{"name", "type", "value", "strings"}`` for DNS APIs and scripts."""
        return {
            "name": self.name,
            "type": "TXT",
            "value": self.value,
            "strings": list(self.strings),
        }


def qp_note(text: str) -> str:
    """Encode a note for n= as dkim-quoted-printable (RFC 6376 §2.11); plain text stays as is."""
    out = []
    for ch in text:
        if ch in _QP_PLAIN:
            out.append(ch)
        else:
            out.extend(f"={b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def zone_quote(text: str) -> str:
    """One <character-string> in master-file syntax (RFC 1035 §5.1), quoted and escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def split_txt(value: str, limit: int = TXT_STRING_MAX) -> tuple[str, ...]:
    """Cut a TXT value into character-strings of at most ``limit`` octets (RFC 7208 §3.3).

    The cuts fall between characters; verifiers join the strings without
    separators, so where they fall does not change the record.
    """
    data = value.encode("utf-8")
    if len(data) <= limit:
        return (value,)
    pieces: list[str] = []
    current = ""
    size = 0
    for ch in value:
        n = len(ch.encode("utf-8"))
        if size + n > limit:
            pieces.append(current)
            current, size = "", 0
        current += ch
        size += n
    pieces.append(current)
    return tuple(pieces)


def zone_txt_line(owner: str, value: str) -> str:
    """A master-file TXT line for any value: ``OWNER<TAB>IN<TAB>TXT<TAB>"..." "..."``."""
    strings = " ".join(zone_quote(s) for s in split_txt(value))
    return f"{owner}\tIN\tTXT\t{strings}"


def txt_json(name: str, value: str) -> dict[str, object]:
    """The JSON shape of any TXT record, as ``genkey --format json`` prints a key record."""
    return {"name": name, "type": "TXT", "value": value, "strings": list(split_txt(value))}


__all__ = [
    "DOMAINKEY",
    "GENKEY_CHUNK",
    "KeyTxtRecord",
    "RecordFlags",
    "TXT_STRING_MAX",
    "qp_note",
    "split_txt",
    "txt_json",
    "zone_quote",
    "zone_txt_line",
]
