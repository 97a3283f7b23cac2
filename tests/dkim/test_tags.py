import pytest

from mailseal.dkim.tags import TagListError, decode_base64, parse_tag_list


def test_parses_with_fws_and_trailing_semicolon() -> None:
    tags = parse_tag_list(" v = 1 ;\r\n\ta=rsa-sha256; d=example.com ;")
    assert tags == {"v": "1", "a": "rsa-sha256", "d": "example.com"}


def test_keeps_inner_whitespace_of_values() -> None:
    assert parse_tag_list("n=two words; p=ab\r\n cd")["p"] == "ab\r\n cd"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a=1; a=2", "duplicate tag 'a'"),
        ("a=1;; b=2", "empty tag"),
        ("a=1; junk", "has no '='"),
        ("1a=2", "invalid tag name"),
        ("a b=2", "invalid tag name"),
    ],
)
def test_rejects_broken_lists(text: str, reason: str) -> None:
    with pytest.raises(TagListError, match=reason):
        parse_tag_list(text)


def test_empty_list_is_empty_but_a_lone_semicolon_is_not_a_tag() -> None:
    assert parse_tag_list("") == {}
    with pytest.raises(TagListError, match="empty tag"):
        parse_tag_list(" ; ; ")


def test_unknown_tags_are_kept_for_the_caller_to_ignore() -> None:
    assert parse_tag_list("zz_top=1; v=1")["zz_top"] == "1"


def test_base64_with_folding() -> None:
    assert decode_base64("aGVs\r\n bG8=", "p=") == b"hello"
    with pytest.raises(TagListError, match="p= is not valid base64"):
        decode_base64("not*base64", "p=")
