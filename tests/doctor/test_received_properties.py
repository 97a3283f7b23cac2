"""Whatever a message's header fields hold, reading them never raises."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from mailseal.dmarc.psl import org_domain
from mailseal.dns.types import Answer, Question, RdType, Status
from mailseal.doctor.checks import CheckOptions, plan
from mailseal.doctor.facts import read_facts
from mailseal.doctor.inspect import domain_parts, message_part
from mailseal.doctor.received import (
    parse_authres,
    parse_received_spf,
    received_client,
    strip_comments,
)
from mailseal.doctor.runner import run_parts
from mailseal.message.headers import HeaderField, MessageSplitter, to_crlf
from mailseal.spf.lookup import client_address
from tests.doctor.helpers import resolver

_ZONES = resolver()

# Text made of the characters these fields are built from, and anything else.
pieces = st.sampled_from(
    [
        "(",
        ")",
        '"',
        "\\",
        ";",
        "=",
        " ",
        "\t",
        "@",
        "<",
        ">",
        "[",
        "]",
        ":",
        ".",
        "from ",
        " by ",
        "helo=",
        "pass",
        "dkim",
        "spf",
        "IPv6:",
        "192.0.2.1",
        "::1",
        "é",
        "\x00",
    ]
)
text = st.one_of(st.text(max_size=200), st.lists(pieces, max_size=40).map("".join))
names = st.sampled_from(
    [
        "From",
        "Return-Path",
        "Received",
        "Received-SPF",
        "Authentication-Results",
        "DKIM-Signature",
        "Date",
        "Message-ID",
        "X-Other",
    ]
)


@settings(max_examples=300, deadline=None)
@given(text)
def test_parsers_take_any_text(value: str) -> None:
    strip_comments(value)
    parse_authres(value)
    parse_received_spf(value)
    received_client(value)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(names, text), max_size=8))
def test_read_facts_takes_any_fields(fields: list[tuple[str, str]]) -> None:
    raw = [HeaderField(f"{n}: {v}".encode("utf-8", "surrogatepass")) for n, v in fields]
    facts = read_facts(raw)
    assert facts.from_fields == sum(1 for n, _ in fields if n == "From")


addresses = st.sampled_from(
    [
        "a@good.example",
        "x@[192.0.2.1]",
        "root@localhost",
        "j@bücher.example",
        "<>",
        "@",
        "a@b@c.example",
        '"q;x"@good.example',
        "a@-bad-.example",
        "a@" + "l" * 70 + ".example",
    ]
)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(names, st.one_of(text, addresses)), max_size=6),
    st.lists(addresses, min_size=1, max_size=2),
)
def test_inspect_takes_any_message(fields: list[tuple[str, str]], froms: list[str]) -> None:
    """The whole inspect run (message checks and the From domain's) ends in findings."""
    head = "".join(f"From: {a}\n" for a in froms) + "".join(f"{n}: {v}\n" for n, v in fields)
    message = to_crlf((head + "\nbody\n").encode("utf-8", "surrogatepass"))
    splitter = MessageSplitter()
    splitter.feed(message)
    facts = read_facts(splitter.finish())
    parts = [message_part(message, facts, 1_750_000_000, org_domain)]
    parts += domain_parts(facts, org_domain, ("dnsbl.example",))
    result = asyncio.run(run_parts(parts, _ZONES, 5.0))
    assert result.findings


spf_bits = st.sampled_from(
    [
        "v=spf1",
        " ",
        "include:",
        "a",
        "mx",
        "ptr",
        "ip4:",
        "192.0.2.0/24",
        "-all",
        "+all",
        "?all",
        "redirect=",
        "exp=",
        "x.example",
        "%{i}",
        "exists:",
        "/",
        ":",
        "a:",
        "v=spf1 ",
    ]
)
dmarc_bits = st.sampled_from(
    [
        "v=DMARC1",
        ";",
        " ",
        "p=",
        "reject",
        "none",
        "quarantine",
        "rua=",
        "mailto:",
        "a@x.example",
        "t=y",
        "sp=",
        "adkim=s",
        "pct=",
        "50",
        ",",
        "=",
        "ruf=",
    ]
)
dkim_bits = st.sampled_from(
    [
        "v=DKIM1",
        ";",
        " ",
        "k=rsa",
        "k=ed25519",
        "p=",
        "MCowBQYDK2VwAyEA",
        "t=y",
        "t=s",
        "h=sha1",
        "s=email",
        "==",
        "AAAA",
    ]
)


class _Records:
    """An async resolver answering TXT from a dict (anything else: no such name)."""

    def __init__(self, txt: dict[str, list[str]]) -> None:
        self.txt = txt

    async def ask(self, question: Question) -> Answer:
        records = self.txt.get(question.name.lower()) if question.rdtype is RdType.TXT else None
        if records is None:
            return Answer(question, Status.NXDOMAIN)
        return Answer(question, Status.OK, tuple(records))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.lists(spf_bits, max_size=12).map("".join), max_size=2),
    st.lists(st.lists(dmarc_bits, max_size=12).map("".join), max_size=2),
    st.lists(st.lists(dkim_bits, max_size=8).map("".join), max_size=2),
)
def test_check_takes_any_records(spf: list[str], dmarc: list[str], dkim: list[str]) -> None:
    dns = _Records({"r.example": spf, "_dmarc.r.example": dmarc, "mail._domainkey.r.example": dkim})
    options = CheckOptions("r.example", client_address("192.0.2.1"), "h.example")
    findings = asyncio.run(run_parts(plan(options, org_domain), dns, 5.0)).findings
    assert findings
