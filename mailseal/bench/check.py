"""Offline checks of what a milter answered, so that a fast wrong answer never counts.

Sign mode: the message is put back together as Postfix would deliver it (the fields
the milter inserted, added or changed, value spacing as negotiated) and every
DKIM-Signature with our d= and s= must verify against the public half of ``--key``,
with the DNS question answered from that key (no network). Verify mode: an
Authentication-Results field must say ``dkim=pass`` for our domain.

Each check returns None when the message is fine, or a short error kind for the report.
"""

from __future__ import annotations

import re
from typing import Final

from mailseal.bench.corpus import BenchMessage
from mailseal.dkim.keys import SigningKey
from mailseal.dkim.results import DkimResult
from mailseal.dkim.verify import VerifyOptions, verify_message
from mailseal.dns.drive import drive_sync
from mailseal.dns.types import Answer, Question, RdType, Status
from mailseal.milter.client import MessageResult
from mailseal.milter.codec import message_header_value
from mailseal.milter.messages import (
    Accept,
    AddHeader,
    ChangeHeader,
    Continue,
    Discard,
    InsertHeader,
    Reject,
    ReplyCode,
    Tempfail,
)

_COMMENT: Final = re.compile(r"\([^()]*\)")


class KeyResolver:
    """Answers the one TXT question for ``selector._domainkey.domain`` with the key record."""

    def __init__(self, key: SigningKey, domain: str, selector: str) -> None:
        self.name = f"{selector}._domainkey.{domain}".lower()
        self.record = key.public_record()

    def ask_sync(self, question: Question) -> Answer:
        if question.name.lower().rstrip(".") == self.name and question.rdtype is RdType.TXT:
            return Answer(question, Status.OK, (self.record,), ttl=300)
        return Answer(question, Status.NXDOMAIN)


def reply_error(result: MessageResult) -> str | None:
    """An error kind for a final reply that does not let the message through."""
    reply = result.reply
    if isinstance(reply, Continue | Accept):
        return None
    if isinstance(reply, ReplyCode):
        return f"reply {reply.text[:3].decode('ascii', 'replace')}"
    if isinstance(reply, Tempfail | Reject | Discard):
        return type(reply).__name__.lower()
    return f"unexpected {type(reply).__name__}"


def delivered(msg: BenchMessage, result: MessageResult, leading_space: bool) -> bytes:
    """The message with the milter's header changes applied, as Postfix would write it."""
    fields = [n + b":" + v for n, v in msg.headers]
    for mod in result.modifications:
        if isinstance(mod, InsertHeader | AddHeader):
            raw = mod.name + b":" + message_header_value(mod.value, leading_space=leading_space)
            if isinstance(mod, InsertHeader):
                fields.insert(min(mod.index, len(fields)), raw)
            else:
                fields.append(raw)
        elif isinstance(mod, ChangeHeader):
            _change(fields, mod, leading_space)
    return b"".join(f + b"\r\n" for f in fields) + b"\r\n" + msg.body


def _change(fields: list[bytes], mod: ChangeHeader, leading_space: bool) -> None:
    """Change (or, with an empty value, delete) the index-th field of that name, from 1."""
    seen = 0
    lname = mod.name.lower()
    for i, f in enumerate(fields):
        if f.partition(b":")[0].rstrip(b" \t").lower() == lname:
            seen += 1
            if seen == mod.index:
                if mod.value:
                    value = message_header_value(mod.value, leading_space=leading_space)
                    fields[i] = mod.name + b":" + value
                else:
                    del fields[i]
                return


def _added(result: MessageResult, name: bytes) -> list[bytes]:
    """Values (as the milter sent them) of the fields named ``name`` it inserted or added."""
    lname = name.lower()
    return [
        m.value
        for m in result.modifications
        if isinstance(m, InsertHeader | AddHeader) and m.name.lower() == lname
    ]


class SignatureCheck:
    """Sign mode: our signature is there and verifies against the public key."""

    def __init__(
        self, key: SigningKey | None, domain: str, selector: str, options: VerifyOptions
    ) -> None:
        self.key = key
        self.domain = domain.lower()
        self.selector = selector.lower()
        self.options = options
        self.resolver = KeyResolver(key, domain, selector) if key is not None else None

    def __call__(
        self, msg: BenchMessage, result: MessageResult, leading_space: bool, now: int
    ) -> str | None:
        error = reply_error(result)
        if error is not None:
            return error
        if not _added(result, b"DKIM-Signature"):
            return "no DKIM-Signature added"
        if self.resolver is None:
            return None  # nothing to check against (no --key): the summary says so
        raw = delivered(msg, result, leading_space)
        verdict = drive_sync(verify_message(raw, self.options, now), self.resolver)
        ours = [
            s
            for s in verdict.signatures
            if s.domain == self.domain and s.selector.lower() == self.selector
        ]
        if not ours:
            return f"no signature with d={self.domain} s={self.selector}"
        bad = [s for s in ours if s.result is not DkimResult.PASS]
        if bad:
            return f"signature {bad[0].result.value}: {bad[0].reason}"
        return None


def dkim_results(value: bytes) -> list[tuple[str, str]]:
    """(result, header.d) of each dkim= result in an Authentication-Results value."""
    text = value.decode("latin-1").replace("\r\n", " ").replace("\n", " ")
    while True:  # comments can nest; drop the innermost until none is left
        stripped = _COMMENT.sub(" ", text)
        if stripped == text:
            break
        text = stripped
    out: list[tuple[str, str]] = []
    for resinfo in text.split(";")[1:]:
        words = resinfo.split()
        if not words or not words[0].lower().startswith("dkim="):
            continue
        result = words[0].partition("=")[2].lower()
        domain = ""
        for w in words[1:]:
            prop, _, val = w.partition("=")
            if prop.lower() == "header.d":
                domain = val.strip('"').lower()
        out.append((result, domain))
    return out


class ResultCheck:
    """Verify mode: an Authentication-Results field says dkim=pass for our domain."""

    def __init__(self, domain: str) -> None:
        self.domain = domain.lower()

    def __call__(
        self, msg: BenchMessage, result: MessageResult, leading_space: bool, now: int
    ) -> str | None:
        error = reply_error(result)
        if error is not None:
            return error
        values = _added(result, b"Authentication-Results")
        if not values:
            return "no Authentication-Results added"
        results = [r for v in values for r in dkim_results(v)]
        if any(r == "pass" and d == self.domain for r, d in results):
            return None
        ours = [r for r, d in results if d == self.domain]
        return f"dkim={ours[0]}" if ours else "no dkim= result for our domain"


__all__ = [
    "KeyResolver",
    "ResultCheck",
    "SignatureCheck",
    "delivered",
    "dkim_results",
    "reply_error",
]
