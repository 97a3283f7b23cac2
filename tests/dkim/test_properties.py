"""Hypothesis properties of the DKIM engine.

Canonicalization is checked against a plain reference written here line by line
from RFC 6376 §3.4, on arbitrary bytes (CR, LF, SP, HTAB, NUL and high bytes
included). One reading is fixed by the project (canon.py): in relaxed body
canonicalization, WSP at the very end of a body that lacks its final CRLF is
line-end WSP (the CRLF is added, so it ends a line) and is dropped.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence

import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

from mailseal.dkim.canon import (
    BodyCanonicalizer,
    BodyHasher,
    Canon,
    canon_header,
    canonicalize_body,
)
from mailseal.dkim.keys import SigningKey
from mailseal.dkim.record import KeyRecordError, parse_key_record
from mailseal.dkim.results import DkimResult
from mailseal.dkim.sign import SignerSpec
from mailseal.dkim.signature import SignatureError, parse_signature
from mailseal.dkim.tags import TagListError, parse_tag_list
from mailseal.message.headers import (
    CrlfNormalizer,
    HeaderField,
    MessageSplitter,
    split_fields,
    to_crlf,
)
from tests.dkim.conftest import ZoneFactory, assert_verdicts, publish, sign, verify

NOW = 1_700_000_000

# --- the reference: RFC 6376 §3.4, one rule per line -------------------------------------

WSP_RUN = re.compile(rb"[ \t]+")  # WSP = SP / HTAB (RFC 5234)


def body_lines(body: bytes) -> list[bytes]:
    """The body's lines without their CRLF. Only CRLF ends a line; bare CR and LF are text.
    A last line with no CRLF counts as a line (it is given its CRLF, §3.4.3 / §3.4.4)."""
    lines = body.split(b"\r\n")
    if lines[-1] == b"":  # the body ends with CRLF (or is empty): nothing after it
        lines.pop()
    return lines


def ref_simple_body(body: bytes) -> bytes:
    """§3.4.3: ignore empty lines at the end; add a CRLF if missing; an empty body is CRLF."""
    lines = body_lines(body)
    while lines and lines[-1] == b"":  # "ignores all empty lines at the end"
        lines.pop()
    if not lines:  # "a completely empty or missing body is canonicalized as a single CRLF"
        return b"\r\n"
    return b"".join(line + b"\r\n" for line in lines)


def ref_relaxed_body(body: bytes) -> bytes:
    """§3.4.4 a: ignore WSP at the end of lines, reduce WSP runs within a line to one SP;
    b: ignore empty lines at the end; a non-empty body gets its final CRLF."""
    lines = [WSP_RUN.sub(b" ", line).rstrip(b" ") for line in body_lines(body)]
    while lines and lines[-1] == b"":
        lines.pop()
    return b"".join(line + b"\r\n" for line in lines)


def ref_simple_header(raw: bytes) -> bytes:
    """§3.4.1: the field exactly as it is, with its CRLF."""
    return raw + b"\r\n"


def ref_relaxed_header(raw: bytes) -> bytes:
    """§3.4.2, for one field (name, colon, value, folding; no final CRLF)."""
    unfolded = re.sub(rb"\r\n(?=[ \t])", b"", raw)  # "Unfold all header field continuation lines"
    name, colon, value = unfolded.partition(b":")
    name = name.lower()  # "Convert all header field names (not the ... values) to lowercase"
    value = WSP_RUN.sub(
        b" ", value
    )  # "Convert all sequences of one or more WSP ... to a single SP"
    value = value.rstrip(b" ")  # "Delete all WSP characters at the end of each unfolded ... value"
    name, value = (
        name.rstrip(b" \t"),
        value.lstrip(b" "),
    )  # "Delete any WSP ... before and after the colon"
    return name + colon + value + b"\r\n"


REFERENCE_BODY = {Canon.SIMPLE: ref_simple_body, Canon.RELAXED: ref_relaxed_body}
REFERENCE_HEADER = {Canon.SIMPLE: ref_simple_header, Canon.RELAXED: ref_relaxed_header}

# --- strategies -----------------------------------------------------------------------------

# Bytes that matter to canonicalization, plus NUL, a high byte, a colon and plain text.
TRICKY = b"\r\n \t\x00\xff:aZ"
canons = st.sampled_from(list(Canon))
bodies = st.one_of(
    st.binary(max_size=300),
    st.lists(
        st.sampled_from([bytes([c]) for c in TRICKY] + [b"\r\n", b"  ", b"word"]), max_size=80
    ).map(b"".join),
)


def split_at(data: bytes, cuts: Sequence[int]) -> Iterator[bytes]:
    """``data`` in pieces, cut at the given offsets (any order, duplicates, out of range)."""
    start = 0
    for cut in sorted(min(max(c, 0), len(data)) for c in cuts):
        yield data[start:cut]
        start = cut
    yield data[start:]


def no_crlf(text: bytes) -> bool:
    return b"\r\n" not in text


# A field name: no colon, no WSP, no CR or LF (RFC 5322 ftext, plus NUL and high bytes).
names = st.binary(min_size=1, max_size=12).filter(lambda n: not set(n) & set(b": \t\r\n"))
wsp = st.text(alphabet=" \t", min_size=1, max_size=3).map(str.encode)
value_text = (
    st.lists(
        st.sampled_from([bytes([c]) for c in TRICKY if c != ord("\n")] + [b"\n", b"x"]), max_size=20
    )
    .map(b"".join)
    .filter(no_crlf)
)


@st.composite
def fields(draw: st.DrawFn, name: st.SearchStrategy[bytes] = names) -> bytes:
    """A header field as it stands in a message: name, optional WSP, colon, and a value
    folded at CRLF + WSP (the only CRLFs a field can hold), with no final CRLF."""
    head = draw(name) + draw(st.sampled_from([b"", b" ", b"\t ", b"  "])) + b":"
    parts = [draw(value_text)]
    for _ in range(draw(st.integers(0, 3))):
        parts.append(draw(wsp) + draw(value_text))
    return head + b"\r\n".join(parts)


# --- canonicalization against the reference -------------------------------------------------


@given(body=bodies, canon=canons)
@example(body=b" ", canon=Canon.RELAXED)
@example(body=b"a \t", canon=Canon.RELAXED)
@example(body=b"a\r\n \r\n\t\r\n", canon=Canon.RELAXED)
@example(body=b"a \r", canon=Canon.RELAXED)
@example(body=b"a\r", canon=Canon.SIMPLE)
@example(body=b"\r\n\r", canon=Canon.SIMPLE)
@example(body=b"a\n\r\n\r\n", canon=Canon.SIMPLE)
def test_body_canonicalization_matches_rfc_reference(body: bytes, canon: Canon) -> None:
    assert canonicalize_body(body, canon) == REFERENCE_BODY[canon](body)


@given(raw=fields(), canon=canons)
@example(raw=b"Subject:", canon=Canon.RELAXED)
@example(raw=b"SubJect \t:\t  a \t b\r\n\t c \t", canon=Canon.RELAXED)
@example(raw=b"X:a\r\r\n b", canon=Canon.RELAXED)
@example(raw=b"X:\r\n \r\n\t", canon=Canon.RELAXED)
def test_header_canonicalization_matches_rfc_reference(raw: bytes, canon: Canon) -> None:
    (field,) = split_fields(raw + b"\r\n")  # the field survives the header split unchanged
    assert field.raw == raw
    assert canon_header(raw, canon) == REFERENCE_HEADER[canon](raw)


@given(block=st.lists(fields(), min_size=1, max_size=6), canon=canons)
def test_header_block_canonicalization_matches_reference(block: list[bytes], canon: Canon) -> None:
    """A whole header block, split by the engine, then each field canonicalized."""
    parsed = split_fields(b"".join(f + b"\r\n" for f in block))
    assert [f.raw for f in parsed] == block
    assert [canon_header(f.raw, canon) for f in parsed] == [
        REFERENCE_HEADER[canon](f) for f in block
    ]


@given(body=bodies, canon=canons, cuts=st.lists(st.integers(0, 300), max_size=10))
@example(body=b"a \r\n", canon=Canon.RELAXED, cuts=[1, 2, 3])
@example(body=b"a\r\n\r\nb", canon=Canon.SIMPLE, cuts=[2, 3, 4])
def test_any_chunking_gives_the_same_output_and_hash(
    body: bytes, canon: Canon, cuts: list[int]
) -> None:
    out: list[bytes] = []
    canonicalizer = BodyCanonicalizer(canon, out.append)
    hasher = BodyHasher(canon)
    for piece in split_at(body, cuts):
        canonicalizer.update(piece)
        hasher.update(piece)
    canonicalizer.finish()
    expected = REFERENCE_BODY[canon](body)
    assert b"".join(out) == expected
    assert hasher.digest() == hashlib.sha256(expected).digest()
    assert hasher.length == len(expected)


@given(body=bodies, canon=canons)
def test_byte_at_a_time_gives_the_same_hash(body: bytes, canon: Canon) -> None:
    whole, pieces = BodyHasher(canon), BodyHasher(canon)
    whole.update(body)
    for i in range(len(body)):
        pieces.update(body[i : i + 1])
    assert pieces.digest() == whole.digest()


@given(
    body=bodies,
    canon=canons,
    limit=st.integers(0, 400),
    cuts=st.lists(st.integers(0, 300), max_size=6),
)
def test_length_limit_hashes_a_prefix_of_the_canonical_body(
    body: bytes, canon: Canon, limit: int, cuts: list[int]
) -> None:
    hasher = BodyHasher(canon, "sha256", limit)
    for piece in split_at(body, cuts):
        hasher.update(piece)
    expected = REFERENCE_BODY[canon](body)
    assert hasher.digest() == hashlib.sha256(expected[:limit]).digest()
    assert hasher.length == len(expected)


@given(body=bodies, canon=canons)
def test_canonicalizing_twice_changes_nothing(body: bytes, canon: Canon) -> None:
    once = canonicalize_body(body, canon)
    assert canonicalize_body(once, canon) == once


@given(raw=fields())
def test_relaxed_header_twice_changes_nothing(raw: bytes) -> None:
    once = canon_header(raw, Canon.RELAXED)[:-2]
    assert canon_header(once, Canon.RELAXED)[:-2] == once


# --- the message layer: line ends and the header/body split, in any chunking ---------------


@given(data=bodies, cuts=st.lists(st.integers(0, 300), max_size=10))
@example(data=b"a\r", cuts=[1])
@example(data=b"\r\n\n\r", cuts=[1, 2, 3])
def test_crlf_normalizer_any_chunking(data: bytes, cuts: list[int]) -> None:
    """Every LF not after a CR becomes CRLF; nothing else changes; twice changes nothing."""
    normalizer = CrlfNormalizer()
    out = b"".join(normalizer.feed(p) for p in split_at(data, cuts)) + normalizer.finish()
    assert out == re.sub(rb"(?<!\r)\n", b"\r\n", data)
    assert out == to_crlf(data)
    assert to_crlf(out) == out
    assert normalizer.saw_bare_lf == bool(re.search(rb"(?<!\r)\n", data))


@given(message=st.binary(max_size=200).map(to_crlf), cuts=st.lists(st.integers(0, 200), max_size=8))
@example(message=b"A: b\r\n\r\nbody", cuts=[5, 6, 7, 8])
@example(message=b"\r\nbody", cuts=[1])
def test_message_splitter_any_chunking(message: bytes, cuts: list[int]) -> None:
    """Fields and body do not depend on the chunking; the header block ends at the first
    empty line, and a message with none is all header."""
    splitter = MessageSplitter()
    body = b"".join(splitter.feed(p) for p in split_at(message, cuts))
    fields_ = splitter.finish()
    if message.startswith(b"\r\n"):
        head, expected_body = b"", message[2:]
    elif b"\r\n\r\n" in message:
        end = message.index(b"\r\n\r\n")
        head, expected_body = message[: end + 2], message[end + 4 :]
    else:
        head, expected_body = message, b""
    assert body == expected_body
    assert [f.raw for f in fields_] == [f.raw for f in split_fields(head)]
    assert b"".join(f.raw + b"\r\n" for f in fields_) in (head, head + b"\r\n")


# --- parsers raise only their own error -----------------------------------------------------

tag_text = st.one_of(
    st.text(max_size=200),
    st.lists(
        st.sampled_from(
            ["v", "a", "b", "=", ";", " ", "\t", "\r\n", "1", "_", "h", "p", "é", "\x00", "DKIM1"]
        ),
        max_size=40,
    ).map("".join),
)


@given(text=tag_text)
@example(text=";")
@example(text="a=1;;b=2")
@example(text="=")
@example(text="a=1; a=2")
def test_parse_tag_list_raises_only_tag_list_error(text: str) -> None:
    try:
        tags = parse_tag_list(text)
    except TagListError:
        return
    for name, value in tags.items():
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name)
        assert value == value.strip(" \t\r\n")


@given(text=tag_text)
def test_parse_key_record_raises_only_key_record_error(text: str) -> None:
    try:
        parse_key_record(text)
    except KeyRecordError:
        pass


signature_values = st.one_of(
    st.binary(max_size=300),
    st.lists(
        st.sampled_from(
            [
                b"v=1;",
                b"a=rsa-sha256;",
                b"a=ed25519-sha256;",
                b"b=AAAA;",
                b"bh=AAAA;",
                b"d=example.com;",
                b"s=sel;",
                b"h=from;",
                b"h=to;",
                b"i=@example.com;",
                b"l=5;",
                b"t=9;",
                b"x=1;",
                b"c=relaxed;",
                b"q=dns/txt;",
                b" ",
                b"\r\n ",
                b"=",
                b";",
                b"\xff",
                b"z=;",
            ]
        ),
        max_size=14,
    ).map(b"".join),
)


@given(value=signature_values)
def test_parse_signature_raises_only_signature_error(value: bytes) -> None:
    try:
        sig = parse_signature(value)
    except SignatureError:
        return
    assert "from" in sig.headers
    assert sig.identity.rpartition("@")[2].rstrip(".").lower().endswith(sig.domain)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=signature_values.filter(lambda v: b"\r\n\r\n" not in v and not v.endswith(b"\r")))
def test_any_signature_field_gets_a_verdict(value: bytes, zone: ZoneFactory) -> None:
    """Whatever a DKIM-Signature holds, verification returns a verdict and raises nothing.
    No key exists anywhere, so nothing can pass."""
    value = value.replace(b"\r\n", b"\r\n ")  # keep it one field
    message = b"DKIM-Signature: " + value + b"\r\nFrom: a@example.com\r\n\r\nbody\r\n"
    (only,) = verify(message, zone(), NOW).signatures
    assert only.result is DkimResult.PERMERROR
    assert only.reason


# --- sign, then verify ------------------------------------------------------------------------

header_names = st.sampled_from(
    [b"From", b"To", b"Subject", b"Cc", b"Reply-To", b"X-Thing", b"Date"]
)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """A message in CRLF form with a From field, arbitrary field values and an arbitrary body.
    The empty line is the first CRLF CRLF, so neither fields nor body can move it."""
    block = draw(st.lists(fields(header_names), max_size=6))
    block.insert(draw(st.integers(0, len(block))), draw(fields(st.just(b"From"))))
    return b"".join(f + b"\r\n" for f in block) + b"\r\n" + draw(bodies)


def spec_for(key: SigningKey, header_canon: Canon, body_canon: Canon) -> SignerSpec:
    return SignerSpec(
        key=key,
        domain="example.org",
        selector="prop",
        header_canon=header_canon,
        body_canon=body_canon,
        headers=("from", "to", "subject", "cc", "reply-to", "date"),
    )


def split(message: bytes) -> tuple[list[HeaderField], bytes]:
    splitter = MessageSplitter()
    body = splitter.feed(message)
    return splitter.finish(), body


sign_settings = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(params=["rsa", "ed25519"])
def key(request: pytest.FixtureRequest, rsa_key: SigningKey, ed25519_key: SigningKey) -> SigningKey:
    return rsa_key if request.param == "rsa" else ed25519_key


@sign_settings
@given(message=messages(), header_canon=canons, body_canon=canons)
def test_sign_then_verify_passes(
    message: bytes, header_canon: Canon, body_canon: Canon, key: SigningKey, zone: ZoneFactory
) -> None:
    spec = spec_for(key, header_canon, body_canon)
    verdict = verify(sign(message, [spec], NOW), zone(publish(spec)), NOW)
    assert_verdicts(verdict, [(DkimResult.PASS, "")])


@sign_settings
@given(message=messages(), body_canon=canons, data=st.data())
def test_changing_a_body_byte_fails_unless_canonicalization_ignores_it(
    message: bytes, body_canon: Canon, data: st.DataObject, key: SigningKey, zone: ZoneFactory
) -> None:
    spec = spec_for(key, Canon.RELAXED, body_canon)
    signed = sign(message, [spec], NOW)
    fields_, body = split(signed)
    assume(body)
    # Half the time, change whitespace: that is where relaxed canonicalization forgives.
    spaces = [k for k, c in enumerate(body) if c in b" \t"]
    in_space = bool(spaces) and data.draw(st.booleans(), label="in whitespace")
    i = data.draw(st.sampled_from(spaces if in_space else range(len(body))), label="index")
    alphabet = b" \ta" if in_space else b" \t\r\n\x00\xffaZ"
    new = data.draw(st.sampled_from([c for c in alphabet if c != body[i]]), label="byte")
    changed = body[:i] + bytes([new]) + body[i + 1 :]
    head = signed[: len(signed) - len(body)]
    verdict = verify(head + changed, zone(publish(spec)), NOW)
    reference = REFERENCE_BODY[body_canon]
    event(
        "change ignored by canonicalization"
        if reference(changed) == reference(body)
        else "change seen"
    )
    if reference(changed) == reference(body):
        assert_verdicts(verdict, [(DkimResult.PASS, "")])
    else:
        assert_verdicts(verdict, [(DkimResult.FAIL, "body hash did not verify")])


@sign_settings
@given(message=messages(), header_canon=canons, data=st.data())
def test_changing_a_signed_header_value_fails_unless_canonicalization_ignores_it(
    message: bytes, header_canon: Canon, data: st.DataObject, key: SigningKey, zone: ZoneFactory
) -> None:
    spec = spec_for(key, header_canon, Canon.SIMPLE)
    signed = sign(message, [spec], NOW)
    fields_, body = split(signed)
    n = data.draw(st.sampled_from([k for k, f in enumerate(fields_) if f.lname in spec.headers]))
    raw = fields_[n].raw
    # Value bytes that are not CR or LF; the new byte is not CR or LF either, so no line
    # end appears or goes. A fold's WSP (after CRLF) may only become the other WSP.
    positions = [i for i in range(raw.index(b":") + 1, len(raw)) if raw[i] not in b"\r\n"]
    assume(positions)
    i = data.draw(st.sampled_from(positions), label="index")
    allowed = b" \t" if raw[i - 2 : i] == b"\r\n" else b" \t\x00\xffaZ:"
    new = data.draw(st.sampled_from([c for c in allowed if c != raw[i]]), label="byte")
    changed = raw[:i] + bytes([new]) + raw[i + 1 :]
    tampered = [f.raw for f in fields_]
    tampered[n] = changed
    message2 = b"".join(f + b"\r\n" for f in tampered) + b"\r\n" + body
    assert [f.raw for f in split(message2)[0]] == tampered  # still the same fields
    verdict = verify(message2, zone(publish(spec)), NOW)
    reference = REFERENCE_HEADER[header_canon]
    event(
        "change ignored by canonicalization"
        if reference(changed) == reference(raw)
        else "change seen"
    )
    if reference(changed) == reference(raw):
        assert_verdicts(verdict, [(DkimResult.PASS, "")])
    else:
        assert_verdicts(verdict, [(DkimResult.FAIL, "signature did not verify")])
