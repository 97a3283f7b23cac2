"""Domain names and selectors as key records need them (RFC 6376 §3.1, RFC 1035 §2.3.4)."""

from __future__ import annotations

import re
from typing import Final

_LABEL: Final = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
MAX_NAME: Final = 253  # octets of a name in text form, without the final dot


def domain_name(text: str) -> str:
    """``text`` as a lower-case A-label domain without the final dot; ValueError if it is not one.

    Internationalized names become A-labels (IDNA), as they travel in DNS and d=.
    """
    name = text.strip().rstrip(".")
    try:
        ascii_name = name.encode("idna").decode("ascii").lower() if name else ""
    except UnicodeError:
        ascii_name = ""
    labels = ascii_name.split(".")
    if not ascii_name or len(ascii_name) > MAX_NAME or not all(_LABEL.fullmatch(x) for x in labels):
        raise ValueError(
            f"{text!r} is not a domain name (letters, digits and '-', labels joined by '.')"
        )
    return ascii_name


def selector_name(text: str) -> str:
    """A selector: one or more DNS labels (RFC 6376 §3.1 "selector"); ValueError if not."""
    labels = text.split(".")
    if not text or len(text) > 63 * 4 or not all(_LABEL.fullmatch(x) for x in labels):
        raise ValueError(
            f"{text!r} is not a valid selector (letters, digits, '-' and '_', e.g. mail or 202507)"
        )
    return text


__all__ = ["domain_name", "selector_name"]
