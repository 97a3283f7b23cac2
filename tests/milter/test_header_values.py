"""Header values between the message (CRLF folds) and the MTA (LF folds, spacing)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailseal.milter.codec import message_header_value, milter_header_value

SIGNATURE = b" v=1; a=rsa-sha256; d=example.com; s=mail;\r\n\tbh=abc=;\r\n\tb=def"


def test_folds_go_out_as_lf_tab_like_opendkim() -> None:
    assert milter_header_value(SIGNATURE) == (
        b" v=1; a=rsa-sha256; d=example.com; s=mail;\n\tbh=abc=;\n\tb=def"
    )


def test_without_leadspc_the_one_space_is_left_to_the_mta() -> None:
    assert milter_header_value(SIGNATURE, leading_space=False).startswith(b"v=1;")
    assert milter_header_value(SIGNATURE, leading_space=True).startswith(b" v=1;")


def test_a_value_without_its_space_cannot_go_out_exactly_without_leadspc() -> None:
    with pytest.raises(ValueError, match="one space"):
        milter_header_value(b"\tv=1", leading_space=False)
    assert milter_header_value(b"\tv=1", leading_space=True) == b"\tv=1"


@pytest.mark.parametrize(
    "value",
    [
        b" a\r\nb",  # continuation without a blank: Postfix would add a TAB
        b" a\nb",  # bare LF
        b" a\r\tb",  # bare CR
        b" a\r\n",  # trailing line break
        b" a\0",
    ],
)
def test_values_postfix_would_alter_are_refused(value: bytes) -> None:
    with pytest.raises(ValueError):
        milter_header_value(value)


def test_received_value_back_to_message_bytes() -> None:
    # What Postfix sends without LEADSPC: one space gone, folds as bare LF.
    assert message_header_value(b"hello\n\tworld") == b" hello\r\n\tworld"
    assert message_header_value(b"\thello", leading_space=True) == b"\thello"
    assert message_header_value(b"a\r\n b", leading_space=True) == b"a\r\n b"


folded = st.lists(
    st.binary(max_size=20).map(lambda b: b.translate(None, b"\r\n\0")), min_size=1, max_size=4
).map(lambda lines: b" " + b"\r\n\t".join(lines))


@given(folded, st.booleans())
def test_there_and_back(value: bytes, leading_space: bool) -> None:
    sent = milter_header_value(value, leading_space=leading_space)
    assert b"\r" not in sent
    assert message_header_value(sent, leading_space=leading_space) == value
