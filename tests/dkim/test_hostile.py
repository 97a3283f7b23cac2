"""Hostile and broken input: huge bodies, odd bytes, broken signatures and key records,
policy limits and DNS failures. Each test checks the result and a piece of the reason.

Memory is measured with tracemalloc (Python allocations, which is where a body
would pile up); nothing here measures time (the benchmark shows linearity).
"""

from __future__ import annotations

import base64
import hashlib
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from mailseal.dkim.canon import BodyHasher, Canon, canonicalize_body
from mailseal.dkim.keys import SigningKey, load_private_key
from mailseal.dkim.results import DkimResult
from mailseal.dkim.sign import MessageSigner, SignerSpec
from mailseal.dkim.verify import MessageVerifier, VerifyOptions
from mailseal.dns.drive import drive_sync
from mailseal.dns.types import Status
from mailseal.message.headers import HeaderField, MessageSplitter, split_fields, to_crlf
from tests.dkim.conftest import (
    StaticResolver,
    ZoneFactory,
    assert_verdicts,
    key_name,
    publish,
    sign,
    verify,
)

NOW = 1_700_000_000
CHUNK = 64 * 1024
MB = 1024 * 1024
VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "dkim"

MESSAGE = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: Bob <bob@example.net>\r\n"
    b"Subject: hostile input\r\n"
    b"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
    b"\r\n"
    b"Hello Bob,\r\n"
    b"see you at  the  match.\r\n"
)


def spec(key: SigningKey, selector: str = "s1", **kw: object) -> SignerSpec:
    return SignerSpec(key=key, domain="example.org", selector=selector, **kw)  # type: ignore[arg-type]


def chunks(data: bytes, size: int = CHUNK) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def split(message: bytes) -> tuple[list[HeaderField], bytes]:
    splitter = MessageSplitter(max_header_bytes=len(message) + 1)
    body = splitter.feed(message)
    return splitter.finish(), body


def peak_memory(work: Callable[[], object]) -> int:
    """Peak bytes allocated by Python while ``work`` runs."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --- a signer written here, independent of the engine, for fields our signer will not make --


def handmade(
    message: bytes,
    key: SigningKey,
    tags: Sequence[tuple[str, str]],
    *,
    headers: Sequence[str] = ("from", "to", "subject"),
    hash_name: str = "sha256",
    body_length: int | None = None,
) -> bytes:
    """Prepend a DKIM-Signature made from ``tags`` (then h=, bh=, b=), simple/simple.

    The message must be unfolded and its body must already be in simple canonical
    form (ending in exactly one CRLF), so both canonicalizations are the identity
    here and the hash input can be built by hand (RFC 6376 §3.7). ``tags`` are
    written as given (latin-1), so they can be anything, broken included.
    """
    head, sep, body = message.partition(b"\r\n\r\n")
    assert sep and body.endswith(b"\r\n") and not body.endswith(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert not any(line[:1] in (b" ", b"\t") for line in lines)
    signed = body if body_length is None else body[:body_length]
    bh = base64.b64encode(hashlib.new(hash_name, signed).digest()).decode()
    every = [*tags, ("h", ":".join(headers)), ("bh", bh)]
    field = ("DKIM-Signature: " + "; ".join(f"{k}={v}" for k, v in every) + "; b=").encode(
        "latin-1"
    )
    stacks: dict[bytes, list[bytes]] = {}
    for line in lines:
        stacks.setdefault(line.partition(b":")[0].strip().lower(), []).append(line)
    data = b""
    for name in headers:
        stack = stacks.get(name.encode("latin-1"))
        if stack:  # bottom-up; a name with no instance left adds nothing
            data += stack.pop() + b"\r\n"
    data += field
    if isinstance(key.key, ed25519.Ed25519PrivateKey):
        signature = key.key.sign(hashlib.sha256(data).digest())
    else:
        assert isinstance(key.key, rsa.RSAPrivateKey)
        algorithm = hashes.SHA1() if hash_name == "sha1" else hashes.SHA256()
        signature = key.key.sign(data, padding.PKCS1v15(), algorithm)
    return field + base64.b64encode(signature) + b"\r\n" + message


def base_tags(algorithm: str = "rsa-sha256", selector: str = "s1") -> list[tuple[str, str]]:
    return [
        ("v", "1"),
        ("a", algorithm),
        ("c", "simple/simple"),
        ("d", "example.org"),
        ("s", selector),
    ]


def hand_zone(zone: ZoneFactory, key: SigningKey, record: str | None = None) -> StaticResolver:
    p = base64.b64encode(key.public_der()).decode()
    kind = "rsa" if key.type.value == "rsa" else "ed25519"
    return zone({"s1._domainkey.example.org": [record or f"v=DKIM1; k={kind}; p={p}"]})


def test_handmade_signer_agrees_with_the_engine(
    rsa_key: SigningKey, ed25519_key: SigningKey, zone: ZoneFactory
) -> None:
    """The helper above is right: its signatures pass (so failures below are the engine's)."""
    for key in (rsa_key, ed25519_key):
        algorithm = "rsa-sha256" if key is rsa_key else "ed25519-sha256"
        signed = handmade(MESSAGE, key, base_tags(algorithm))
        assert_verdicts(verify(signed, hand_zone(zone, key), NOW), [(DkimResult.PASS, "verified")])


# --- size and odd bytes ------------------------------------------------------------------------

# 64 KB of ordinary text with the whitespace relaxed canonicalization works on.
_LINE = b"The quick  brown fox\tjumps over the lazy dog;   trailing space \r\n"
BLOCK = (_LINE * (CHUNK // len(_LINE) + 1))[:CHUNK]


def test_50_mb_body_streams_through_signer_and_verifier_in_bounded_memory(
    rsa_key: SigningKey, ed25519_key: SigningKey, zone: ZoneFactory
) -> None:
    total = 50 * MB
    n_chunks = total // CHUNK
    specs = [
        spec(rsa_key, "relaxed", header_canon=Canon.RELAXED, body_canon=Canon.RELAXED),
        spec(ed25519_key, "simple", header_canon=Canon.SIMPLE, body_canon=Canon.SIMPLE),
    ]
    head = MESSAGE[: MESSAGE.index(b"\r\n\r\n") + 2]
    fields = split_fields(head)
    made: list[bytes] = []

    def run_signer() -> None:
        signer = MessageSigner(specs)
        for _ in range(n_chunks):
            signer.update(BLOCK)
        made.extend(signer.finish(fields, NOW))

    assert peak_memory(run_signer) < 10 * MB
    signed_fields = [HeaderField(f) for f in made] + fields
    resolver = zone(publish(*specs))
    verdicts = []

    def run_verifier() -> None:
        verifier = MessageVerifier(signed_fields, VerifyOptions(), NOW)
        for _ in range(n_chunks):
            verifier.update(BLOCK)
        verdicts.append(drive_sync(verifier.finish(), resolver))

    assert peak_memory(run_verifier) < 10 * MB
    assert_verdicts(verdicts[0], [(DkimResult.PASS, "verified")] * 2)


def test_a_line_of_a_million_spaces(rsa_key: SigningKey, zone: ZoneFactory) -> None:
    spaces = b" " * 1_000_000
    assert canonicalize_body(b"x" + spaces + b"y\r\n", Canon.RELAXED) == b"x y\r\n"
    assert canonicalize_body(spaces + b"\r\n", Canon.RELAXED) == b""  # an empty line at the end
    assert canonicalize_body(spaces + b"\r\n", Canon.SIMPLE) == spaces + b"\r\n"
    for canon in Canon:
        streamed = BodyHasher(canon)
        for piece in chunks(b"x" + spaces + b"y\r\n"):
            streamed.update(piece)
        assert (
            streamed.digest()
            == hashlib.sha256(canonicalize_body(b"x" + spaces + b"y\r\n", canon)).digest()
        )
        s = spec(rsa_key, body_canon=canon)
        message = MESSAGE + b"x" + spaces + b"y\r\n" + spaces
        assert_verdicts(
            verify(sign(message, [s], NOW), zone(publish(s)), NOW), [(DkimResult.PASS, "")]
        )


def test_a_million_empty_lines_cost_no_memory() -> None:
    crlfs = b"\r\n" * (CHUNK // 2)  # 32,768 empty lines in one 64 KB chunk
    n_chunks = 31  # 1,015,808 empty lines, 1.9 MB
    for canon in Canon:
        hasher = BodyHasher(canon)

        def trailing(h: BodyHasher = hasher) -> None:
            h.update(b"a\r\n")
            for _ in range(n_chunks):
                h.update(crlfs)
            h.digest()

        # Held back as a count, then dropped: they are empty lines at the end.
        assert peak_memory(trailing) < 1 * MB
        assert hasher.digest() == hashlib.sha256(b"a\r\n").digest()
        assert canonicalize_body(crlfs * n_chunks, canon) == (
            b"\r\n" if canon is Canon.SIMPLE else b""
        )
        # In the middle of a body they are kept, all of them, still without piling up.
        middle_hasher = BodyHasher(canon)

        def middle(h: BodyHasher = middle_hasher) -> None:
            h.update(b"a\r\n")
            for _ in range(n_chunks):
                h.update(crlfs)
            h.update(b"b\r\n")
            h.digest()

        assert peak_memory(middle) < 1 * MB
        assert (
            middle_hasher.digest()
            == hashlib.sha256(b"a\r\n" + crlfs * n_chunks + b"b\r\n").digest()
        )
        assert middle_hasher.length == 6 + len(crlfs) * n_chunks


@pytest.mark.parametrize("canon", list(Canon), ids=[c.value for c in Canon])
def test_nul_bytes(canon: Canon, rsa_key: SigningKey, zone: ZoneFactory) -> None:
    assert canonicalize_body(b"a\x00b\r\n\x00\r\n", canon) == b"a\x00b\r\n\x00\r\n"
    message = MESSAGE.replace(b"hostile input", b"nul\x00here") + b"\x00\x00\r\n\x00"
    s = spec(rsa_key, header_canon=canon, body_canon=canon)
    signed = sign(message, [s], NOW)
    assert_verdicts(verify(signed, zone(publish(s)), NOW), [(DkimResult.PASS, "")])
    tampered = signed.replace(b"nul\x00here", b"nul\x01here")
    assert_verdicts(
        verify(tampered, zone(publish(s)), NOW), [(DkimResult.FAIL, "signature did not verify")]
    )


def test_bare_cr_and_bare_lf_are_text_not_line_ends() -> None:
    assert canonicalize_body(b"a\nb", Canon.SIMPLE) == b"a\nb\r\n"
    assert canonicalize_body(b"a \n b \r", Canon.RELAXED) == b"a \n b \r\r\n"
    assert canonicalize_body(b"a\r\n\n\r\n", Canon.SIMPLE) == b"a\r\n\n\r\n"
    assert canonicalize_body(b"a\r\n\r\r\n", Canon.RELAXED) == b"a\r\n\r\r\n"
    assert to_crlf(b"a\nb\r\nc\rd\n") == b"a\r\nb\r\nc\rd\r\n"


@pytest.mark.parametrize("canon", list(Canon), ids=[c.value for c in Canon])
def test_bare_cr_and_bare_lf_sign_and_verify(
    canon: Canon, ed25519_key: SigningKey, zone: ZoneFactory
) -> None:
    message = MESSAGE.replace(b"hostile input", b"bare\rcr and\nlf") + b"one\rline\n still\r\n\n"
    s = spec(ed25519_key, header_canon=canon, body_canon=canon)
    assert_verdicts(verify(sign(message, [s], NOW), zone(publish(s)), NOW), [(DkimResult.PASS, "")])
    # A message with LF line ends is signed and verified in its CRLF form.
    lf_message = MESSAGE.replace(b"\r\n", b"\n")
    signed = sign(to_crlf(lf_message), [s], NOW)
    assert_verdicts(
        verify(to_crlf(signed.replace(b"\r\n", b"\n")), zone(publish(s)), NOW),
        [(DkimResult.PASS, "")],
    )


@pytest.mark.parametrize("canon", list(Canon), ids=[c.value for c in Canon])
def test_non_utf8_headers(canon: Canon, rsa_key: SigningKey, zone: ZoneFactory) -> None:
    message = b"X-\xe9t\xe9: latin-1 name\r\n" + MESSAGE.replace(
        b"hostile input", b"\xff\xfe \x80\xc3(\xa0"
    )
    s = spec(rsa_key, header_canon=canon, body_canon=canon)
    signed = sign(message, [s], NOW)
    assert_verdicts(verify(signed, zone(publish(s)), NOW), [(DkimResult.PASS, "")])
    tampered = signed.replace(b"\xff\xfe", b"\xff\xff")
    assert_verdicts(
        verify(tampered, zone(publish(s)), NOW), [(DkimResult.FAIL, "signature did not verify")]
    )


def test_non_utf8_bytes_inside_the_signature_field(rsa_key: SigningKey, zone: ZoneFactory) -> None:
    """Unknown tags are ignored (RFC 6376 §3.2), whatever bytes they hold; and the name of a
    signed field may be any ftext, even latin-1 (h= is read as latin-1)."""
    message = b"X-\xe9t\xe9: v\r\n" + MESSAGE
    tags = [*base_tags(), ("zz", "\xff\xfe\x80")]
    signed = handmade(message, rsa_key, tags, headers=("from", "x-\xe9t\xe9"))
    assert_verdicts(verify(signed, hand_zone(zone, rsa_key), NOW), [(DkimResult.PASS, "")])
    tampered = signed.replace(b"X-\xe9t\xe9: v", b"X-\xe9t\xe9: w")
    assert_verdicts(
        verify(tampered, hand_zone(zone, rsa_key), NOW),
        [(DkimResult.FAIL, "signature did not verify")],
    )


def test_ten_thousand_header_fields(rsa_key: SigningKey, zone: ZoneFactory) -> None:
    received = b"".join(
        b"Received: from hop%d.example by hop%d.example\r\n" % (i, i + 1) for i in range(10_000)
    )
    message = received + MESSAGE
    s = spec(rsa_key, headers=("from", "subject", "received"))
    signed = sign(message, [s], NOW)
    fields, _ = split(signed)
    assert len(fields) == 10_005
    assert_verdicts(verify(signed, zone(publish(s)), NOW), [(DkimResult.PASS, "")])
    # Every instance is signed: changing the very first (bottom-up, the last one hashed) fails.
    tampered = signed.replace(b"hop0.example by", b"hop0.example  by", 1)
    assert_verdicts(
        verify(tampered, zone(publish(s)), NOW), [(DkimResult.PASS, "")]
    )  # relaxed: same
    tampered = signed.replace(b"hop0.example by", b"hop0.exampl by", 1)
    assert_verdicts(
        verify(tampered, zone(publish(s)), NOW), [(DkimResult.FAIL, "signature did not verify")]
    )


# --- broken DKIM-Signature fields --------------------------------------------------------------


def test_huge_unknown_tag_is_ignored(rsa_key: SigningKey, zone: ZoneFactory) -> None:
    tags = [*base_tags(), ("zz", "x" * 1_000_000), ("z", "From:a|To:b" * 10_000)]
    signed = handmade(MESSAGE, rsa_key, tags)
    assert_verdicts(verify(signed, hand_zone(zone, rsa_key), NOW), [(DkimResult.PASS, "")])


def test_huge_h_list(rsa_key: SigningKey, zone: ZoneFactory) -> None:
    """h= naming 100,000 absent fields: each is a null string (RFC 6376 §5.4.2)."""
    headers = ("from", *(f"x-missing-{i}" for i in range(100_000)))
    signed = handmade(MESSAGE, rsa_key, base_tags(), headers=headers)
    assert_verdicts(verify(signed, hand_zone(zone, rsa_key), NOW), [(DkimResult.PASS, "")])


BROKEN_FIELDS = {
    "duplicate-tag": (
        b"v=1; a=rsa-sha256; d=example.org; d=example.org; s=s1; h=from; bh=AAAA; b=AAAA",
        "duplicate tag",
    ),
    "garbage-tag": (
        b"v=1; a=rsa-sha256; ===; d=example.org; s=s1; h=from; bh=AAAA; b=AAAA",
        "syntax error",
    ),
    "bad-tag-name": (
        b"v=1; 1a=2; a=rsa-sha256; d=example.org; s=s1; h=from; bh=AAAA; b=AAAA",
        "invalid tag name",
    ),
    "empty-tag": (b"v=1;; a=rsa-sha256; d=example.org; s=s1; h=from; bh=AAAA; b=AAAA", "empty tag"),
    "no-equals": (
        b"v=1; a=rsa-sha256; hello; d=example.org; s=s1; h=from; bh=AAAA; b=AAAA",
        "has no '='",
    ),
    "pure-garbage": (b"\x00\xff;;==;;", "syntax error"),
    "empty-value": (b"", "has no v= tag"),
    "b-not-base64": (
        b"v=1; a=rsa-sha256; d=example.org; s=s1; h=from; bh=AAAA; b=AA$A",
        "b= is not valid base64",
    ),
    "b-bad-padding": (
        b"v=1; a=rsa-sha256; d=example.org; s=s1; h=from; bh=AAAA; b=AAA",
        "b= is not valid base64",
    ),
    "bh-not-base64": (
        b"v=1; a=rsa-sha256; d=example.org; s=s1; h=from; bh=*; b=AAAA",
        "bh= is not valid base64",
    ),
    "b-empty": (b"v=1; a=rsa-sha256; d=example.org; s=s1; h=from; bh=AAAA; b=", "b= is empty"),
    "unknown-algorithm": (
        b"v=1; a=rsa-sha512; d=example.org; s=s1; h=from; bh=AAAA; b=AAAA",
        "unsupported signing algorithm",
    ),
    "unknown-version": (
        b"v=2; a=rsa-sha256; d=example.org; s=s1; h=from; bh=AAAA; b=AAAA",
        "version",
    ),
    "unknown-canon": (
        b"v=1; a=rsa-sha256; c=loose; d=example.org; s=s1; h=from; bh=AAAA; b=AAAA",
        "canonicalization",
    ),
    "h-without-from": (
        b"v=1; a=rsa-sha256; d=example.org; s=s1; h=to:subject; bh=AAAA; b=AAAA",
        "From field not signed",
    ),
    "h-empty-name": (
        b"v=1; a=rsa-sha256; d=example.org; s=s1; h=from::to; bh=AAAA; b=AAAA",
        "empty header name",
    ),
    "i-outside-d": (
        b"v=1; a=rsa-sha256; d=example.org; i=a@example.com; s=s1; h=from; bh=AAAA; b=AAAA",
        "not within d=",
    ),
    "i-parent-of-d": (
        b"v=1; a=rsa-sha256; d=mail.example.org; i=@example.org; s=s1; h=from; bh=AAAA; b=AAAA",
        "not within d=",
    ),
    "i-lookalike": (
        b"v=1; a=rsa-sha256; d=example.org; i=@badexample.org; s=s1; h=from; bh=AAAA; b=AAAA",
        "not within d=",
    ),
    "x-before-t": (
        b"v=1; a=rsa-sha256; d=example.org; s=s1; t=1700000000; x=1699999999; h=from;"
        b" bh=AAAA; b=AAAA",
        "x= is earlier than t=",
    ),
    "t-not-number": (
        b"v=1; a=rsa-sha256; d=example.org; s=s1; t=soon; h=from; bh=AAAA; b=AAAA",
        "t= is not a number",
    ),
    "l-negative": (
        b"v=1; a=rsa-sha256; d=example.org; s=s1; l=-1; h=from; bh=AAAA; b=AAAA",
        "l= is not a number",
    ),
    "d-not-a-domain": (
        b"v=1; a=rsa-sha256; d=exa mple..org; s=s1; h=from; bh=AAAA; b=AAAA",
        "is not a domain name",
    ),
    "s-with-slash": (
        b"v=1; a=rsa-sha256; d=example.org; s=../x; h=from; bh=AAAA; b=AAAA",
        "not a valid selector",
    ),
    "q-unknown": (
        b"v=1; a=rsa-sha256; d=example.org; s=s1; q=http/wellknown; h=from; bh=AAAA; b=AAAA",
        "query method",
    ),
}
REQUIRED = ["v", "a", "b", "bh", "d", "h", "s"]


@pytest.mark.parametrize("name", list(BROKEN_FIELDS))
def test_broken_signature_field_is_permerror(name: str, zone: ZoneFactory) -> None:
    value, reason = BROKEN_FIELDS[name]
    resolver = zone()
    verdict = verify(b"DKIM-Signature: " + value + b"\r\n" + MESSAGE, resolver, NOW)
    assert_verdicts(verdict, [(DkimResult.PERMERROR, reason)])
    assert resolver.questions == []  # no key is fetched for a field that does not parse


@pytest.mark.parametrize("missing", REQUIRED)
def test_missing_required_tag_is_permerror(missing: str, zone: ZoneFactory) -> None:
    tags = {
        "v": "1",
        "a": "rsa-sha256",
        "b": "AAAA",
        "bh": "AAAA",
        "d": "example.org",
        "h": "from",
        "s": "s1",
    }
    del tags[missing]
    value = "; ".join(f"{k}={v}" for k, v in tags.items()).encode()
    verdict = verify(b"DKIM-Signature: " + value + b"\r\n" + MESSAGE, zone(), NOW)
    assert_verdicts(verdict, [(DkimResult.PERMERROR, f"signature has no {missing}= tag")])


def test_broken_base64_in_a_real_signature(rsa_key: SigningKey, zone: ZoneFactory) -> None:
    s = spec(rsa_key)
    signed = sign(MESSAGE, [s], NOW)
    b_at = signed.index(b" b=") + 3
    broken = signed[:b_at] + b"!" + signed[b_at + 1 :]
    assert_verdicts(
        verify(broken, zone(publish(s)), NOW), [(DkimResult.PERMERROR, "b= is not valid base64")]
    )
    flipped = (
        signed[:b_at] + (b"B" if signed[b_at : b_at + 1] != b"B" else b"C") + signed[b_at + 1 :]
    )
    assert_verdicts(
        verify(flipped, zone(publish(s)), NOW), [(DkimResult.FAIL, "signature did not verify")]
    )


# --- time: t= and x= ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "drift", "result", "reason"),
    [
        (3600, 300, DkimResult.PASS, ""),
        (3600 + 300, 300, DkimResult.PASS, ""),
        (3600 + 301, 300, DkimResult.PERMERROR, "signature expired (x=)"),
        (3600, 0, DkimResult.PASS, ""),
        (3601, 0, DkimResult.PERMERROR, "signature expired (x=)"),
        (10**9, 300, DkimResult.PERMERROR, "signature expired (x=)"),
    ],
    ids=["at-x", "x-plus-drift", "past-drift", "at-x-no-drift", "past-x-no-drift", "long-gone"],
)
def test_expired_signature(
    offset: int, drift: int, result: DkimResult, reason: str, rsa_key: SigningKey, zone: ZoneFactory
) -> None:
    s = spec(rsa_key, expire_after=3600)
    signed = sign(MESSAGE, [s], NOW)
    assert b"x=%d;" % (NOW + 3600) in signed
    verdict = verify(signed, zone(publish(s)), NOW + offset, VerifyOptions(clock_drift=drift))
    assert_verdicts(verdict, [(result, reason)])


def test_streaming_verifier_takes_the_time_at_finish(
    rsa_key: SigningKey, zone: ZoneFactory
) -> None:
    """A verifier can start before the clock is read; t= and x= are judged at finish(now)."""
    s = spec(rsa_key, expire_after=3600)
    fields, body = split(sign(MESSAGE, [s], NOW))
    for now, expected in (
        (NOW + 60, (DkimResult.PASS, "")),
        (NOW + 7200, (DkimResult.PERMERROR, "expired")),
    ):
        verifier = MessageVerifier(fields, VerifyOptions())
        verifier.update(body)
        assert_verdicts(drive_sync(verifier.finish(now), zone(publish(s))), [expected])
    verifier = MessageVerifier(fields, VerifyOptions())
    with pytest.raises(ValueError, match="needs the time"):
        next(verifier.finish())


@pytest.mark.parametrize(
    ("offset", "drift", "result", "reason"),
    [
        (-300, 300, DkimResult.PASS, ""),
        (-301, 300, DkimResult.PERMERROR, "timestamp is in the future"),
        (-1, 0, DkimResult.PERMERROR, "timestamp is in the future"),
        (0, 0, DkimResult.PASS, ""),
    ],
    ids=["within-drift", "past-drift", "one-second-no-drift", "same-second"],
)
def test_future_timestamp(
    offset: int, drift: int, result: DkimResult, reason: str, rsa_key: SigningKey, zone: ZoneFactory
) -> None:
    s = spec(rsa_key)
    signed = sign(MESSAGE, [s], NOW)
    verdict = verify(signed, zone(publish(s)), NOW + offset, VerifyOptions(clock_drift=drift))
    assert_verdicts(verdict, [(result, reason)])


# --- l= -------------------------------------------------------------------------------------------

BODY = MESSAGE[MESSAGE.index(b"\r\n\r\n") + 4 :]


def test_l_longer_than_the_body_fails(rsa_key: SigningKey, zone: ZoneFactory) -> None:
    signed = handmade(MESSAGE, rsa_key, [*base_tags(), ("l", str(len(BODY) + 10))])
    assert_verdicts(
        verify(signed, hand_zone(zone, rsa_key), NOW),
        [(DkimResult.FAIL, "l= is longer than the body")],
    )


def test_l_equal_to_the_body_passes(rsa_key: SigningKey, zone: ZoneFactory) -> None:
    signed = handmade(MESSAGE, rsa_key, [*base_tags(), ("l", str(len(BODY)))])
    assert_verdicts(verify(signed, hand_zone(zone, rsa_key), NOW), [(DkimResult.PASS, "")])


def test_l_truncation_is_honoured(rsa_key: SigningKey, zone: ZoneFactory) -> None:
    """Only the first l= octets of the canonical body are signed (RFC 6376 §3.5): text
    appended after them still passes; a change inside them fails."""
    length = BODY.index(b"see")  # "Hello Bob,\r\n"
    signed = handmade(MESSAGE, rsa_key, [*base_tags(), ("l", str(length))], body_length=length)
    resolver = hand_zone(zone, rsa_key)
    assert_verdicts(verify(signed, resolver, NOW), [(DkimResult.PASS, "")])
    appended = signed + b"\r\nBuy cheap watches at https://example.com/\r\n"
    assert_verdicts(verify(appended, resolver, NOW), [(DkimResult.PASS, "")])
    changed_after = signed.replace(b"see you", b"pay me")
    assert_verdicts(verify(changed_after, resolver, NOW), [(DkimResult.PASS, "")])
    changed_inside = signed.replace(b"Hello Bob", b"Hello Eve")
    assert_verdicts(
        verify(changed_inside, resolver, NOW), [(DkimResult.FAIL, "body hash did not verify")]
    )


def test_l_zero_signs_no_body(rsa_key: SigningKey, zone: ZoneFactory) -> None:
    signed = handmade(MESSAGE, rsa_key, [*base_tags(), ("l", "0")], body_length=0)
    other = signed.replace(b"Hello Bob", b"Anything at all")
    assert_verdicts(verify(other, hand_zone(zone, rsa_key), NOW), [(DkimResult.PASS, "")])


# --- h= naming an absent field, several signatures, signature limits ---------------------------


def test_absent_field_in_h_is_a_null_string(rsa_key: SigningKey, zone: ZoneFactory) -> None:
    """h= may name a field that is not there (RFC 6376 §5.4): adding it later must fail."""
    s = spec(rsa_key, headers=("from", "subject", "reply-to"), oversign=("from", "reply-to"))
    signed = sign(MESSAGE, [s], NOW)
    assert b"reply-to" in signed.split(b"\r\n\r\n")[0]
    resolver = zone(publish(s))
    assert_verdicts(verify(signed, resolver, NOW), [(DkimResult.PASS, "")])
    added_bottom = signed.replace(b"\r\n\r\n", b"\r\nReply-To: evil@example.com\r\n\r\n", 1)
    assert_verdicts(
        verify(added_bottom, resolver, NOW), [(DkimResult.FAIL, "signature did not verify")]
    )
    added_top = b"Reply-To: evil@example.com\r\n" + signed
    assert_verdicts(
        verify(added_top, resolver, NOW), [(DkimResult.FAIL, "signature did not verify")]
    )
    # From is oversigned too: a second From anywhere fails.
    second_from = b"From: Mallory <m@example.com>\r\n" + signed
    assert_verdicts(
        verify(second_from, resolver, NOW), [(DkimResult.FAIL, "signature did not verify")]
    )


def test_absent_field_handmade(rsa_key: SigningKey, zone: ZoneFactory) -> None:
    signed = handmade(MESSAGE, rsa_key, base_tags(), headers=("from", "x-absent", "to"))
    resolver = hand_zone(zone, rsa_key)
    assert_verdicts(verify(signed, resolver, NOW), [(DkimResult.PASS, "")])
    added = signed.replace(b"\r\n\r\n", b"\r\nX-Absent: now here\r\n\r\n", 1)
    assert_verdicts(verify(added, resolver, NOW), [(DkimResult.FAIL, "signature did not verify")])


def test_one_signature_passes_one_fails(
    rsa_key: SigningKey, ed25519_key: SigningKey, zone: ZoneFactory
) -> None:
    specs = [spec(rsa_key, "rsa"), spec(ed25519_key, "ed")]
    signed = sign(MESSAGE, specs, NOW)
    # Break the second field's b= (keep it valid base64).
    second = signed.index(b"DKIM-Signature", 1)
    b_at = signed.index(b" b=", second) + 3
    broken = (
        signed[:b_at] + (b"A" if signed[b_at : b_at + 1] != b"A" else b"B") + signed[b_at + 1 :]
    )
    verdict = verify(broken, zone(publish(*specs)), NOW)
    assert_verdicts(verdict, [(DkimResult.PASS, ""), (DkimResult.FAIL, "signature did not verify")])
    assert [s.selector for s in verdict.signatures] == ["rsa", "ed"]
    assert verdict.result is DkimResult.PASS


def test_signatures_past_the_limit_are_not_evaluated(
    rsa_key: SigningKey, zone: ZoneFactory
) -> None:
    specs = [spec(rsa_key, f"k{i}") for i in range(5)]
    signed = sign(MESSAGE, specs, NOW)
    resolver = zone(publish(*specs))
    verdict = verify(signed, resolver, NOW, VerifyOptions(max_signatures=2))
    assert_verdicts(
        verdict,
        [(DkimResult.PASS, "")] * 2 + [(DkimResult.NEUTRAL, "not evaluated")] * 3,
    )
    assert resolver.asked == ["k0._domainkey.example.org", "k1._domainkey.example.org"]


def test_broken_fields_count_towards_the_limit(rsa_key: SigningKey, zone: ZoneFactory) -> None:
    s = spec(rsa_key)
    signed = b"DKIM-Signature: garbage\r\n" + sign(MESSAGE, [s], NOW)
    verdict = verify(signed, zone(publish(s)), NOW, VerifyOptions(max_signatures=1))
    assert_verdicts(
        verdict, [(DkimResult.PERMERROR, "syntax error"), (DkimResult.NEUTRAL, "not evaluated")]
    )


# --- key records ---------------------------------------------------------------------------------


def p_of(key: SigningKey) -> str:
    return base64.b64encode(key.public_der()).decode()


KEY_RECORDS: dict[str, tuple[Callable[[SigningKey, SigningKey], str], DkimResult, str]] = {
    "revoked": (lambda r, e: "v=DKIM1; k=rsa; p=", DkimResult.PERMERROR, "revoked"),
    "revoked-no-k": (lambda r, e: "v=DKIM1; p=", DkimResult.PERMERROR, "revoked"),
    "k-mismatch": (
        lambda r, e: f"v=DKIM1; k=ed25519; p={p_of(e)}",
        DkimResult.PERMERROR,
        "does not match",
    ),
    "k-unknown": (
        lambda r, e: f"v=DKIM1; k=dsa; p={p_of(r)}",
        DkimResult.PERMERROR,
        "unknown key type",
    ),
    "k-ed25519-rsa-bytes": (lambda r, e: f"k=ed25519; p={p_of(r)}", DkimResult.PERMERROR, "not 32"),
    "h-sha1-only": (
        lambda r, e: f"v=DKIM1; h=sha1; p={p_of(r)}",
        DkimResult.PERMERROR,
        "does not allow sha256",
    ),
    "h-unknown-only": (
        lambda r, e: f"v=DKIM1; h=sha512; p={p_of(r)}",
        DkimResult.PERMERROR,
        "does not allow sha256",
    ),
    "h-list": (lambda r, e: f"v=DKIM1; h=sha1:sha256; p={p_of(r)}", DkimResult.PASS, ""),
    "s-without-email": (
        lambda r, e: f"v=DKIM1; s=tlsrpt; p={p_of(r)}",
        DkimResult.PERMERROR,
        "s= does not include email",
    ),
    "s-with-email": (lambda r, e: f"v=DKIM1; s=tlsrpt:email; p={p_of(r)}", DkimResult.PASS, ""),
    "s-star": (lambda r, e: f"v=DKIM1; s=*; p={p_of(r)}", DkimResult.PASS, ""),
    "t-y": (lambda r, e: f"v=DKIM1; t=y; p={p_of(r)}", DkimResult.PASS, "t=y"),
    "t-s-same-domain": (lambda r, e: f"v=DKIM1; t=s; p={p_of(r)}", DkimResult.PASS, ""),
    "p-bad-base64": (lambda r, e: "v=DKIM1; p=MIGf$$$", DkimResult.PERMERROR, "not valid base64"),
    "p-not-a-key": (
        lambda r, e: "v=DKIM1; p=AAAAAAAA",
        DkimResult.PERMERROR,
        "not an RSA public key",
    ),
    "p-missing": (lambda r, e: "v=DKIM1; k=rsa", DkimResult.PERMERROR, "no p= tag"),
    "v-not-first": (
        lambda r, e: f"k=rsa; v=DKIM1; p={p_of(r)}",
        DkimResult.PERMERROR,
        "not as its first tag",
    ),
    "v-wrong": (lambda r, e: f"v=DKIM2; p={p_of(r)}", DkimResult.PERMERROR, "is not DKIM1"),
    "syntax": (lambda r, e: f"v=DKIM1; p={p_of(r)}; p=", DkimResult.PERMERROR, "duplicate tag"),
    "p-folded": (lambda r, e: f"v=DKIM1; p={p_of(r)[:40]} \t{p_of(r)[40:]}", DkimResult.PASS, ""),
}


@pytest.mark.parametrize("name", list(KEY_RECORDS))
def test_key_record(
    name: str, rsa_key: SigningKey, ed25519_key: SigningKey, zone: ZoneFactory
) -> None:
    make, result, reason = KEY_RECORDS[name]
    s = spec(rsa_key)
    verdict = verify(
        sign(MESSAGE, [s], NOW), zone({key_name(s): [make(rsa_key, ed25519_key)]}), NOW
    )
    assert_verdicts(verdict, [(result, reason)])
    assert verdict.signatures[0].testing is (name == "t-y")


def test_t_s_rejects_an_i_subdomain(rsa_key: SigningKey, zone: ZoneFactory) -> None:
    """RFC 6376 §3.6.1 t=s: the i= domain must equal d=, not be a subdomain of it."""
    s = spec(rsa_key, identity="alice@mail.example.org")
    signed = sign(MESSAGE, [s], NOW)
    strict = zone({key_name(s): [f"v=DKIM1; t=s; p={p_of(rsa_key)}"]})
    assert_verdicts(verify(signed, strict, NOW), [(DkimResult.PERMERROR, "t=s")])
    loose = zone({key_name(s): [f"v=DKIM1; p={p_of(rsa_key)}"]})
    assert_verdicts(verify(signed, loose, NOW), [(DkimResult.PASS, "")])


def test_multiple_txt_records_first_garbage(rsa_key: SigningKey, zone: ZoneFactory) -> None:
    """RFC 6376 §3.6.2.2 leaves several records undefined; the first usable one is taken."""
    s = spec(rsa_key)
    signed = sign(MESSAGE, [s], NOW)
    records = ["v=spf1 -all", "not;a;record", s.key.public_record()]
    assert_verdicts(verify(signed, zone({key_name(s): records}), NOW), [(DkimResult.PASS, "")])
    all_bad = ["v=DKIM1; p=AAAA$", "k=dsa; p=AAAA"]
    assert_verdicts(
        verify(signed, zone({key_name(s): all_bad}), NOW),
        [(DkimResult.PERMERROR, "not valid base64")],
    )


# --- policy: small keys, rsa-sha1 ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "bits"), [("dkimpy/sample-512.pem", 512), ("generated/rsa-768.pem", 768)]
)
def test_small_rsa_key_is_policy(path: str, bits: int, zone: ZoneFactory) -> None:
    key = load_private_key((VECTORS / path).read_bytes(), path)
    assert key.bits == bits
    s = spec(key)
    signed = sign(MESSAGE, [s], NOW)
    verdict = verify(signed, zone(publish(s)), NOW)
    assert_verdicts(
        verdict, [(DkimResult.POLICY, f"RSA key of {bits} bits is below the minimum of 1024")]
    )
    assert verdict.signatures[0].key_bits == bits
    lenient = verify(signed, zone(publish(s)), NOW, VerifyOptions(min_key_bits=512))
    assert_verdicts(lenient, [(DkimResult.PASS, "")])
    # A bad signature with a small key is a failure, not a policy matter.
    assert_verdicts(
        verify(signed.replace(b"Hello", b"Jello"), zone(publish(s)), NOW),
        [(DkimResult.FAIL, "body hash")],
    )


def test_rsa_sha1_is_policy_unless_allowed(rsa_key: SigningKey, zone: ZoneFactory) -> None:
    """RFC 8301 §3.1: rsa-sha1 "MUST NOT be considered valid" by default."""
    signed = handmade(MESSAGE, rsa_key, base_tags("rsa-sha1"), hash_name="sha1")
    resolver = hand_zone(zone, rsa_key)
    assert_verdicts(verify(signed, resolver, NOW), [(DkimResult.POLICY, "rsa-sha1")])
    assert_verdicts(
        verify(signed, resolver, NOW, VerifyOptions(allow_sha1=True)), [(DkimResult.PASS, "")]
    )
    tampered = signed.replace(b"Hello", b"Jello")
    assert_verdicts(
        verify(tampered, resolver, NOW, VerifyOptions(allow_sha1=True)),
        [(DkimResult.FAIL, "body hash did not verify")],
    )
    sha256_only = hand_zone(zone, rsa_key, f"v=DKIM1; h=sha256; p={p_of(rsa_key)}")
    assert_verdicts(
        verify(signed, sha256_only, NOW, VerifyOptions(allow_sha1=True)),
        [(DkimResult.PERMERROR, "sha1")],
    )


def test_rsa_sha1_is_not_signed(rsa_key: SigningKey) -> None:
    from mailseal.errors import SigningError

    with pytest.raises(SigningError, match="rsa-sha1"):
        sign(MESSAGE, [spec(rsa_key, algorithm="rsa-sha1")], NOW)


# --- DNS failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [(Status.SERVFAIL, "servfail"), (Status.TIMEOUT, "timeout")],
    ids=["servfail", "timeout"],
)
def test_temporary_dns_failure_is_temperror(
    status: Status, reason: str, rsa_key: SigningKey, zone: ZoneFactory
) -> None:
    s = spec(rsa_key)
    resolver = zone(publish(s), fail={key_name(s): status})
    verdict = verify(sign(MESSAGE, [s], NOW), resolver, NOW)
    assert_verdicts(verdict, [(DkimResult.TEMPERROR, reason)])
    assert verdict.signatures[0].key_missing is False


@pytest.mark.parametrize("kind", ["nxdomain", "nodata"])
def test_missing_key_is_permerror(kind: str, rsa_key: SigningKey, zone: ZoneFactory) -> None:
    s = spec(rsa_key)
    resolver = zone({} if kind == "nxdomain" else {key_name(s): []})
    verdict = verify(sign(MESSAGE, [s], NOW), resolver, NOW)
    assert_verdicts(verdict, [(DkimResult.PERMERROR, "no key record at s1._domainkey.example.org")])
    assert verdict.signatures[0].key_missing is True
    assert resolver.asked == ["s1._domainkey.example.org"]


def test_one_key_query_per_selector(rsa_key: SigningKey, zone: ZoneFactory) -> None:
    """Two signatures with the same d= and s= share one query."""
    s = spec(rsa_key)
    signed = sign(MESSAGE, [s, spec(rsa_key, body_canon=Canon.SIMPLE)], NOW)
    resolver = zone(publish(s))
    assert_verdicts(verify(signed, resolver, NOW), [(DkimResult.PASS, "")] * 2)
    assert resolver.asked == ["s1._domainkey.example.org"]


# --- signer parameters that cannot make a valid field ------------------------------------------


@pytest.mark.parametrize("expire_after", [0, -5])
def test_signer_never_writes_x_at_or_before_t(
    expire_after: int, rsa_key: SigningKey, zone: ZoneFactory
) -> None:
    """RFC 6376 §3.5: "the value of the "x=" tag MUST be greater than the value of the
    "t=" tag if both are present". The signer must refuse such an expiry (SigningError)
    rather than write a field that breaks the rule (x=t) or that its own verifier rejects
    (x<t: permerror "x= is earlier than t=")."""
    from mailseal.errors import SigningError

    s = spec(rsa_key, expire_after=expire_after)
    try:
        signed = sign(MESSAGE, [s], NOW)
    except SigningError:
        return
    (field, *_) = split(signed)[0]
    assert b"x=%d;" % (NOW + expire_after) not in field.raw, field.raw


@pytest.mark.parametrize(
    "params",
    [
        {"domain": "ex\u00e4mple.org"},
        {"selector": "s\u00e9l"},
        {"headers": ("from", "x-\u00e9t\u00e9")},
    ],
    ids=["u-label-domain", "non-ascii-selector", "non-ascii-header-name"],
)
def test_signer_parameters_outside_ascii_raise_signing_error(
    params: dict[str, object], rsa_key: SigningKey
) -> None:
    """Broken parameters are a SigningError naming the problem (errors.py), not a
    UnicodeEncodeError from deep inside the field folding."""
    from mailseal.errors import SigningError

    args: dict[str, object] = {"key": rsa_key, "domain": "example.org", "selector": "s1", **params}
    message = b"X-\xe9t\xe9: 1\r\n" + MESSAGE
    with pytest.raises(SigningError):
        sign(message, [SignerSpec(**args)], NOW)  # type: ignore[arg-type]
