"""DMARC record model and builder (mailseal.dmarc.record): RFC 9989 tags only."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailseal.dmarc.record import (
    DmarcError,
    DmarcRecord,
    Policy,
    build_record,
    enforcement_path,
    is_dmarc,
    parse_uri,
    split_tags,
    start_record,
)


def test_build_renders_in_rfc_9989_order() -> None:
    record = build_record(
        p="reject",
        sp="quarantine",
        np="reject",
        adkim="s",
        aspf="r",
        rua=("dmarc@example.com", "mailto:agg@example.net"),
        ruf=("f@example.com",),
        fo="1:d",
        t=True,
        psd="n",
    )
    assert record.render() == (
        "v=DMARC1; p=reject; sp=quarantine; np=reject; adkim=s; aspf=r; "
        "rua=mailto:dmarc@example.com,mailto:agg@example.net; ruf=mailto:f@example.com; "
        "fo=1:d; t=y; psd=n"
    )


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"p": "block"}, "not a policy"),
        ({"adkim": "strict"}, "alignment"),
        ({"fo": "2"}, "fo="),
        ({"psd": "yes"}, "psd="),
        ({"rua": ("https://example.com/r",)}, "email only"),
        ({"rua": ("dmarc@example.com!10m",)}, "obsolete"),
        ({"rua": ("nobody",)}, "not a mailto"),
        ({"rua": ("a@bad domain",)}, "no spaces"),
        ({"rua": ("a@-bad.example",)}, "not a domain"),
    ],
)
def test_build_refuses_bad_values(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(DmarcError, match=words):
        build_record(**kwargs)  # type: ignore[arg-type]


def test_policy_applied_with_testing_is_one_level_lower() -> None:
    assert DmarcRecord(p=Policy.REJECT, t=True).policy is Policy.QUARANTINE
    assert DmarcRecord(p=Policy.QUARANTINE, t=True).policy is Policy.NONE
    assert DmarcRecord(p=Policy.NONE, t=True).policy is Policy.NONE
    assert DmarcRecord().policy is Policy.NONE
    assert DmarcRecord(p=Policy.REJECT, t=False).policy is Policy.REJECT


def test_start_and_the_path_to_enforcement() -> None:
    start = start_record("example.com")
    assert start.render() == "v=DMARC1; p=none; rua=mailto:postmaster@example.com"
    steps = [r.render() for _, r in enforcement_path(start)]
    rua = "rua=mailto:postmaster@example.com"
    assert steps == [
        f"v=DMARC1; p=none; {rua}",
        f"v=DMARC1; p=quarantine; {rua}; t=y",
        f"v=DMARC1; p=quarantine; {rua}",
        f"v=DMARC1; p=reject; {rua}",
    ]


def test_uri_parsing_is_lenient_and_says_what_was_wrong() -> None:
    assert parse_uri("mailto:A@Example.COM")[0].address == "A@example.com"
    uri, faults = parse_uri("dmarc@example.com!10m")
    assert str(uri) == "mailto:dmarc@example.com" and set(faults) == {"scheme", "size"}
    assert parse_uri("MAILTO:x%40example.com")[0].address == "x@example.com"


def test_is_dmarc() -> None:
    assert is_dmarc("v=DMARC1; p=none")
    assert is_dmarc("v = DMARC1 ;p=none")
    assert not is_dmarc("v=spf1 -all")
    assert not is_dmarc("p=none; v=DMARC1")


@given(st.text(max_size=300))
def test_split_tags_never_fails(text: str) -> None:
    tags, junk = split_tags(text)
    assert all(t.name and "=" not in t.name for t in tags)
    assert all(isinstance(j, str) for j in junk)
