import pytest

from mailseal.errors import MessageError
from mailseal.message.headers import (
    CrlfNormalizer,
    HeaderField,
    MessageSplitter,
    split_fields,
    to_crlf,
)

MESSAGE = b"From: a@example.com\r\nSubject: one\r\n two\r\nTo: b@example.org\r\n\r\nbody\r\n"


def test_split_fields_keeps_folding() -> None:
    fields = split_fields(b"From: a\r\nSubject: one\r\n\ttwo\r\n")
    assert [f.raw for f in fields] == [b"From: a", b"Subject: one\r\n\ttwo"]
    assert fields[1].lname == "subject"
    assert fields[1].value == b" one\r\n\ttwo"


def test_name_without_colon_and_space_before_colon() -> None:
    assert HeaderField(b"garbage line").name == b"garbage line"
    assert HeaderField(b"Subject : x").lname == "subject"


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64])
def test_splitter_any_chunking(size: int) -> None:
    s = MessageSplitter()
    body = b""
    for i in range(0, len(MESSAGE), size):
        body += s.feed(MESSAGE[i : i + size])
    fields = s.finish()
    assert [f.lname for f in fields] == ["from", "subject", "to"]
    assert body == b"body\r\n"


def test_message_without_body_separator_is_all_header() -> None:
    s = MessageSplitter()
    assert s.feed(b"From: a\r\nTo: b\r\n") == b""
    assert [f.lname for f in s.finish()] == ["from", "to"]


def test_message_with_no_headers() -> None:
    s = MessageSplitter()
    assert s.feed(b"\r\nbody") == b"body"
    assert s.finish() == []


def test_header_cap() -> None:
    s = MessageSplitter(max_header_bytes=100)
    with pytest.raises(MessageError, match="larger than 100 bytes"):
        for _ in range(10):
            s.feed(b"X-Junk: " + b"a" * 20 + b"\r\n")


def test_crlf_normalizer_across_chunks() -> None:
    data = b"a\nb\r\nc\rd\n"
    for cut in range(len(data) + 1):
        n = CrlfNormalizer()
        out = n.feed(data[:cut]) + n.feed(data[cut:]) + n.finish()
        assert out == b"a\r\nb\r\nc\rd\r\n", cut
    assert to_crlf(b"x\r") == b"x\r"
