"""Tag=value lists (RFC 6376 §3.2), used by DKIM-Signature fields and key records."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

from mailseal.errors import MailsealError

# tag-name = ALPHA *ALNUMPUNC ; ALNUMPUNC = ALPHA / DIGIT / "_"
_TAG_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
# FWS as it may appear around and inside values: SP, HTAB, CR, LF.
_FWS_CHARS: Final = " \t\r\n"
_STRIP_WS: Final = str.maketrans("", "", _FWS_CHARS)


class TagListError(MailsealError):
    """A tag list that breaks RFC 6376 §3.2; the message says how."""


def parse_tag_list(text: str) -> dict[str, str]:
    """Parse ``tag=value; tag=value`` into a dict, values stripped of surrounding FWS.

    RFC 6376 §3.2: "Tags with duplicate names MUST NOT occur within a single
    tag-list; if a tag name does occur more than once, the entire tag-list is
    invalid." Unknown tags are kept; the caller ignores what it does not know.
    A trailing ``;`` is allowed.
    """
    tags: dict[str, str] = {}
    parts = text.split(";")
    if parts and parts[-1].strip(_FWS_CHARS) == "":
        parts.pop()
    for part in parts:
        name, eq, value = part.partition("=")
        name = name.strip(_FWS_CHARS)
        if not eq:
            if not name:
                raise TagListError("empty tag (two ';' in a row)")
            raise TagListError(f"tag {name[:40]!r} has no '='")
        if not _TAG_NAME.match(name):
            raise TagListError(f"invalid tag name {name[:40]!r}")
        if name in tags:
            raise TagListError(f"duplicate tag {name!r}")
        tags[name] = value.strip(_FWS_CHARS)
    return tags


def strip_fws(value: str) -> str:
    """Remove all folding white space from a value (base64 values may be folded anywhere)."""
    return value.translate(_STRIP_WS)


def decode_base64(value: str, what: str) -> bytes:
    """Decode a base64 tag value that may hold FWS; raise TagListError naming ``what``."""
    compact = strip_fws(value)
    try:
        return base64.b64decode(compact.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise TagListError(f"{what} is not valid base64") from None
