"""Authentication-Results header fields (RFC 8601): write ours, recognise forged ones."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from mailseal.dkim.results import DkimResult, SignatureVerdict

AR_FIELD: Final = b"Authentication-Results"
# A header.d / header.s value that may go unquoted: an RFC 2045 token's common subset.
_TOKEN: Final = re.compile(r"[A-Za-z0-9._@+=/-]+\Z")
# RFC 5322 CFWS before the authserv-id: comments "(...)" (not nested here) and white space.
_LEADING_CFWS: Final = re.compile(rb"\A(?:[ \t\r\n]+|\([^()]*\))*")


def _value(text: str) -> str:
    return text if text and _TOKEN.match(text) else '"' + text.replace('"', "") + '"'


def dkim_resinfo(v: SignatureVerdict) -> str:
    """One ``dkim=`` result with its properties, as OpenDKIM writes them (RFC 8601 §2.7.1)."""
    parts = [f"dkim={v.result.value}"]
    comment: list[str] = []
    if v.key_bits:
        comment.append(f"{v.key_bits}-bit key")
    if v.result is not DkimResult.PASS or v.testing:
        comment.append(v.reason)
    if comment:
        parts.append("(" + "; ".join(c.replace("(", "[").replace(")", "]") for c in comment) + ")")
    if v.domain:
        parts.append(f"header.d={_value(v.domain)}")
    if v.identity:
        parts.append(f"header.i={_value(v.identity)}")
    if v.algorithm:
        parts.append(f"header.a={_value(v.algorithm)}")
    if v.selector:
        parts.append(f"header.s={_value(v.selector)}")
    if v.b_prefix:
        parts.append(f"header.b={_value(v.b_prefix)}")
    return " ".join(parts)


def authentication_results(authserv_id: str, verdicts: Sequence[SignatureVerdict]) -> bytes:
    """The value (after the colon, with a leading space) of our Authentication-Results field.

    One ``dkim=`` result per signature, folded one per line; ``dkim=none`` when
    the message has no signature (RFC 8601 §2.7.1).
    """
    results = [dkim_resinfo(v) for v in verdicts] or ["dkim=none (no signatures)"]
    return (" " + authserv_id + ";\r\n\t" + ";\r\n\t".join(results)).encode("utf-8")


def authserv_id_of(value: bytes) -> str:
    """The authserv-id of an Authentication-Results value, lower-cased ('' if unreadable)."""
    rest = value[_LEADING_CFWS.match(value).end() :]  # type: ignore[union-attr]
    end = len(rest)
    for stop in (b";", b" ", b"\t", b"\r", b"\n", b"("):
        i = rest.find(stop)
        if 0 <= i < end:
            end = i
    return rest[:end].decode("latin-1").strip('"').lower()


def is_ours_or_listed(value: bytes, ours: str, remove_from: Sequence[str]) -> bool:
    """True when a field claims our authserv-id, or one of RemoveARFrom's hosts or domains.

    RFC 8601 §5: an MTA "MUST ... delete any previously present
    Authentication-Results header field that claims to have been added within
    its trust boundary". A name in ``remove_from`` also matches its subdomains.
    """
    sid = authserv_id_of(value)
    if not sid:
        return False
    if sid == ours.lower():
        return True
    return any(sid == d.lower() or sid.endswith("." + d.lower().lstrip(".")) for d in remove_from)
