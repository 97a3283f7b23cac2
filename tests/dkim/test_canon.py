"""Canonicalization examples from RFC 6376 §3.4.5 and edge cases."""

import pytest

from mailseal.dkim.canon import (
    BodyHasher,
    Canon,
    CanonError,
    canon_header,
    canonicalize_body,
    parse_canon,
)

# RFC 6376 §3.4.5 example: "A: <SP> X <CRLF>",
# "B <SP> : <SP> Y <HTAB><CRLF> <HTAB> Z <SP><SP><CRLF>"
RFC_HEADERS = [b"A: X", b"B : Y\t\r\n\tZ  "]
RFC_BODY = b" C \r\nD \t E\r\n\r\n\r\n"


def test_rfc6376_example_relaxed() -> None:
    assert b"".join(canon_header(h, Canon.RELAXED) for h in RFC_HEADERS) == b"a:X\r\nb:Y Z\r\n"
    assert canonicalize_body(RFC_BODY, Canon.RELAXED) == b" C\r\nD E\r\n"


def test_rfc6376_example_simple() -> None:
    assert b"".join(canon_header(h, Canon.SIMPLE) for h in RFC_HEADERS) == (
        b"A: X\r\nB : Y\t\r\n\tZ  \r\n"
    )
    assert canonicalize_body(RFC_BODY, Canon.SIMPLE) == b" C \r\nD \t E\r\n"


@pytest.mark.parametrize(
    ("body", "simple", "relaxed"),
    [
        (b"", b"\r\n", b""),
        (b"\r\n", b"\r\n", b""),
        (b"\r\n\r\n\r\n", b"\r\n", b""),
        (b"abc", b"abc\r\n", b"abc\r\n"),
        (b"abc  ", b"abc  \r\n", b"abc\r\n"),
        (b"a\r\n\r\nb\r\n\r\n", b"a\r\n\r\nb\r\n", b"a\r\n\r\nb\r\n"),
        (b"  \r\n", b"  \r\n", b""),
        (b"a\rb\r\n", b"a\rb\r\n", b"a\rb\r\n"),
        (b"a\r\r\n\r\n", b"a\r\r\n", b"a\r\r\n"),
        (b"x\t\ty \t\r\n", b"x\t\ty \t\r\n", b"x y\r\n"),
    ],
)
def test_body_edges(body: bytes, simple: bytes, relaxed: bytes) -> None:
    assert canonicalize_body(body, Canon.SIMPLE) == simple
    assert canonicalize_body(body, Canon.RELAXED) == relaxed


def test_relaxed_header_lowercases_name_and_unfolds() -> None:
    assert (
        canon_header(b"SubJect :\r\n  Hello \t World\t", Canon.RELAXED)
        == b"subject:Hello World\r\n"
    )


def test_body_hash_with_limit_counts_canonical_bytes() -> None:
    whole = BodyHasher(Canon.SIMPLE)
    whole.update(b"hello\r\n")
    limited = BodyHasher(Canon.SIMPLE, limit=7)
    limited.update(b"hello\r\nappended later\r\n")
    assert limited.digest() == whole.digest()
    assert limited.length == len(b"hello\r\nappended later\r\n")


def test_split_crlf_and_whitespace_across_chunks() -> None:
    body = b"a  \r\n\r\n b\t\r\n\r\n"
    for cut in range(len(body) + 1):
        out: list[bytes] = []
        from mailseal.dkim.canon import BodyCanonicalizer

        c = BodyCanonicalizer(Canon.RELAXED, out.append)
        c.update(body[:cut])
        c.update(body[cut:])
        c.finish()
        assert b"".join(out) == b"a\r\n\r\n b\r\n", cut


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("relaxed", (Canon.RELAXED, Canon.SIMPLE)),
        ("simple/relaxed", (Canon.SIMPLE, Canon.RELAXED)),
        (" Relaxed/Relaxed ", (Canon.RELAXED, Canon.RELAXED)),
    ],
)
def test_parse_canon(text: str, expected: tuple[Canon, Canon]) -> None:
    assert parse_canon(text) == expected


def test_parse_canon_rejects_unknown() -> None:
    with pytest.raises(CanonError, match="nofws"):
        parse_canon("nofws")
