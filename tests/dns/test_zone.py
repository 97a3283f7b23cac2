"""ZoneResolver: answers from master files only, as a recursive resolver would give them."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailseal.dns.drive import drive_sync
from mailseal.dns.types import Answer, Question, RdType, Status
from mailseal.dns.zone import MAX_CNAME_CHAIN, ZoneResolver
from mailseal.dns.zonefile import DEFAULT_TTL
from mailseal.errors import DnsError

ZONE = """\
$TTL 3600
example.com.  IN SOA ns1.example.com. hostmaster.example.com. ( 1 3600 600 86400 300 )
@             IN NS  ns1
@             IN MX  10 Mail.Example.com.
@             IN MX  0 .
@       600   IN TXT "v=spf1 " "ip4:192.0.2.1 " "-all"
ns1           IN A   192.0.2.53
mail          IN A   192.0.2.1
mail          IN AAAA 2001:db8::1
a.b.c         IN TXT "deep"
alias         IN CNAME mail
alias2  60    IN CNAME alias
dangling      IN CNAME gone
loop1         IN CNAME loop2
loop2         IN CNAME loop1
*.wild        IN TXT "wildcard"
exact.wild    IN TXT "exact"
bin           IN TXT "\\255\\000caf\\195\\169"
"""
REVERSE = "1.2.0.192.in-addr.arpa. 300 IN PTR mail.example.com.\n"


@pytest.fixture(scope="module")
def zone() -> ZoneResolver:
    resolver = ZoneResolver.from_text(ZONE)
    resolver.add_text(REVERSE)
    return resolver


def ask(resolver: ZoneResolver, name: str, rdtype: RdType) -> Answer:
    return resolver.ask_sync(Question(name, rdtype))


def test_records_in_the_documented_shapes(zone: ZoneResolver) -> None:
    assert ask(zone, "example.com", RdType.MX).records == ("10 mail.example.com", "0 .")
    assert ask(zone, "mail.example.com", RdType.A).records == ("192.0.2.1",)
    assert ask(zone, "mail.example.com", RdType.AAAA).records == ("2001:db8::1",)
    assert ask(zone, "example.com", RdType.NS).records == ("ns1.example.com",)
    assert ask(zone, "1.2.0.192.in-addr.arpa", RdType.PTR).records == ("mail.example.com",)
    soa = ask(zone, "example.com", RdType.SOA)
    assert soa.records == ("ns1.example.com hostmaster.example.com 1 3600 600 86400 300",)


def test_txt_strings_are_joined_without_separators(zone: ZoneResolver) -> None:
    answer = ask(zone, "example.com", RdType.TXT)
    assert answer.status is Status.OK
    assert answer.records == ("v=spf1 ip4:192.0.2.1 -all",)
    assert answer.ttl == 600


def test_txt_keeps_every_byte_as_latin1(zone: ZoneResolver) -> None:
    (text,) = ask(zone, "bin.example.com", RdType.TXT).records
    assert text.encode("latin-1") == b"\xff\x00caf\xc3\xa9"


def test_absent_name_is_nxdomain_with_the_soa_negative_ttl(zone: ZoneResolver) -> None:
    answer = ask(zone, "nope.example.com", RdType.TXT)
    assert answer.status is Status.NXDOMAIN
    assert answer.records == ()
    assert answer.ttl == 300  # min(SOA TTL 3600, MINIMUM 300), RFC 2308 §5
    assert "nope.example.com" in answer.detail


def test_name_without_that_type_is_nodata(zone: ZoneResolver) -> None:
    answer = ask(zone, "mail.example.com", RdType.TXT)
    assert answer.status is Status.NODATA
    assert answer.ttl == 300


def test_empty_non_terminal_is_nodata_not_nxdomain(zone: ZoneResolver) -> None:
    # b.c.example.com and c.example.com own nothing, but a.b.c.example.com exists (RFC 8020).
    assert ask(zone, "b.c.example.com", RdType.TXT).status is Status.NODATA
    assert ask(zone, "c.example.com", RdType.A).status is Status.NODATA
    assert ask(zone, "x.a.b.c.example.com", RdType.TXT).status is Status.NXDOMAIN


def test_names_are_case_insensitive_and_the_root_dot_optional(zone: ZoneResolver) -> None:
    for name in ("MAIL.Example.COM", "mail.example.com.", "mAiL.eXaMpLe.CoM."):
        assert ask(zone, name, RdType.A).records == ("192.0.2.1",)


def test_answer_keeps_the_question_as_asked(zone: ZoneResolver) -> None:
    question = Question("MAIL.Example.COM.", RdType.A)
    assert zone.ask_sync(question).question == question


def test_cname_chain_is_followed_to_the_target(zone: ZoneResolver) -> None:
    answer = ask(zone, "alias2.example.com", RdType.A)
    assert answer.status is Status.OK
    assert answer.records == ("192.0.2.1",)
    assert answer.ttl == 60  # the smallest TTL along the chain


def test_cname_question_gets_the_cname_itself(zone: ZoneResolver) -> None:
    assert ask(zone, "alias2.example.com", RdType.CNAME).records == ("alias.example.com",)


def test_cname_to_missing_name_is_nxdomain_and_to_missing_type_nodata(
    zone: ZoneResolver,
) -> None:
    assert ask(zone, "dangling.example.com", RdType.A).status is Status.NXDOMAIN
    answer = ask(zone, "alias.example.com", RdType.TXT)
    assert answer.status is Status.NODATA
    assert "via CNAME" in answer.detail


def test_cname_loop_is_servfail(zone: ZoneResolver) -> None:
    answer = ask(zone, "loop1.example.com", RdType.TXT)
    assert answer.status is Status.SERVFAIL
    assert "loop" in answer.detail


def test_overlong_cname_chain_is_servfail() -> None:
    lines = [f"c{i}.example.org. 60 IN CNAME c{i + 1}.example.org." for i in range(40)]
    resolver = ZoneResolver.from_text("\n".join(lines) + "\n")
    answer = ask(resolver, "c0.example.org", RdType.A)
    assert answer.status is Status.SERVFAIL
    assert str(MAX_CNAME_CHAIN) in answer.detail


def test_wildcard_answers_names_that_do_not_exist(zone: ZoneResolver) -> None:
    assert ask(zone, "anything.wild.example.com", RdType.TXT).records == ("wildcard",)
    assert ask(zone, "a.b.wild.example.com", RdType.TXT).records == ("wildcard",)
    assert ask(zone, "exact.wild.example.com", RdType.TXT).records == ("exact",)
    assert ask(zone, "anything.wild.example.com", RdType.A).status is Status.NODATA
    # RFC 4592 §2.2.1: the wildcard does not cover names below an existing name.
    assert ask(zone, "x.exact.wild.example.com", RdType.TXT).status is Status.NXDOMAIN


def test_invalid_name_is_nxdomain_not_an_exception(zone: ZoneResolver) -> None:
    for name in ("a..example.com", "x" * 64 + ".example.com"):
        answer = ask(zone, name, RdType.TXT)
        assert answer.status is Status.NXDOMAIN
        assert "not a valid domain name" in answer.detail


def test_zone_data_is_never_secure(zone: ZoneResolver) -> None:
    assert ask(zone, "example.com", RdType.TXT).secure is False


def test_async_ask_and_drive_sync(zone: ZoneResolver) -> None:
    question = Question("mail.example.com", RdType.A)
    assert asyncio.run(zone.ask(question)) == zone.ask_sync(question)

    def lookup() -> Generator[Question, Answer, tuple[str, ...]]:
        answer = yield question
        return answer.records

    assert drive_sync(lookup(), zone) == ("192.0.2.1",)


# -- origins ---------------------------------------------------------------


def test_origin_from_the_first_soa_when_no_origin_line() -> None:
    resolver = ZoneResolver.from_text(
        "example.net. 300 IN SOA ns hostmaster 1 2 3 4 60\n"
        "@ 300 IN TXT apex\n"
        "www 300 IN A 192.0.2.7\n"
    )
    assert ask(resolver, "example.net", RdType.TXT).records == ("apex",)
    assert ask(resolver, "www.example.net", RdType.A).records == ("192.0.2.7",)
    (soa,) = ask(resolver, "example.net", RdType.SOA).records
    assert soa.startswith("ns.example.net hostmaster.example.net")


def test_absolute_names_need_no_origin_soa_or_ttl() -> None:
    # RFC 8463 Appendix A publishes its keys like this; so do DNS panels.
    resolver = ZoneResolver.from_text(
        'sel._domainkey.example.org. IN TXT ( "v=DKIM1; k=ed25519; "\n  "p=abc" )\n'
        'example.net. IN TXT "other zone"\n'
    )
    answer = ask(resolver, "sel._domainkey.example.org", RdType.TXT)
    assert answer.records == ("v=DKIM1; k=ed25519; p=abc",)
    assert answer.ttl == DEFAULT_TTL
    assert ask(resolver, "example.net", RdType.TXT).records == ("other zone",)


def test_explicit_origin_and_origin_lines() -> None:
    text = "$TTL 60\n@ IN TXT one\n$ORIGIN sub.example.com.\nx IN TXT two\n"
    resolver = ZoneResolver.from_text(text, origin="example.com")
    assert ask(resolver, "example.com", RdType.TXT).records == ("one",)
    assert ask(resolver, "x.sub.example.com", RdType.TXT).records == ("two",)


def test_records_without_ttl_follow_the_stated_ttls() -> None:
    resolver = ZoneResolver.from_text("$ORIGIN example.com.\n$TTL 120\na IN TXT x\nb 30 IN TXT y\n")
    assert ask(resolver, "a.example.com", RdType.TXT).ttl == 120
    assert ask(resolver, "b.example.com", RdType.TXT).ttl == 30


def test_several_files_hold_several_zones(tmp_path: Path) -> None:
    com = tmp_path / "example.com.zone"
    com.write_text(ZONE)
    org = tmp_path / "example.org.zone"
    org.write_text(
        "$ORIGIN example.org.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 2 3 4 5\n"
        '_dmarc IN TXT "v=DMARC1; p=reject"\n'
    )
    extra = tmp_path / "keys.zone"  # more records for a zone another file starts
    extra.write_text('mail._domainkey.example.com. 300 IN TXT "v=DKIM1; p=xyz"\n')
    resolver = ZoneResolver([com, str(org), extra])
    assert ask(resolver, "_dmarc.example.org", RdType.TXT).records == ("v=DMARC1; p=reject",)
    assert ask(resolver, "mail._domainkey.example.com", RdType.TXT).records == ("v=DKIM1; p=xyz",)
    assert ask(resolver, "mail.example.com", RdType.A).records == ("192.0.2.1",)
    # _domainkey.example.com is now an empty non-terminal, its negative TTL the SOA's.
    answer = ask(resolver, "_domainkey.example.com", RdType.TXT)
    assert (answer.status, answer.ttl) == (Status.NODATA, 300)
    assert ask(resolver, "www.example.org", RdType.A).ttl == 5


def test_same_rrset_in_two_files_is_merged() -> None:
    resolver = ZoneResolver.from_text("a.example.com. 300 IN TXT one\n")
    resolver.add_text("a.example.com. 60 IN TXT two\n")
    answer = ask(resolver, "a.example.com", RdType.TXT)
    assert sorted(answer.records) == ["one", "two"]
    assert answer.ttl == 60


# -- errors ----------------------------------------------------------------


def bad_zone(tmp_path: Path, text: str) -> str:
    path = tmp_path / "example.zone"
    path.write_text(text)
    with pytest.raises(DnsError) as caught:
        ZoneResolver([path])
    message = str(caught.value)
    assert message.startswith(f"{path}:"), message
    return message.removeprefix(f"{path}:")


HEADER = "$ORIGIN example.com.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 2 3 4 5\n@ IN NS ns1\n\n\n"


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ('@ IN TXT "unterminated\n', "7: bad TXT record (newline in quoted string)"),
        ('@ IN TXT "' + "a" * 256 + '"\n', "7: bad TXT record (string too long)"),
        ("www IN A 192.0.2\n", "7: bad A record ("),
        ("@ IN MX mail\n", "7: bad MX record ("),
        ("www IN BOGUS 1\n", "7: unknown rdatatype 'BOGUS'"),
        ('www IN CNAME x\nwww IN TXT "y"\n', "8: CNAME and other records at www.example.com"),
        ('@ IN TXT ( "a"\n  "\\999" )\n', "8: bad TXT record ("),
        ("www IN A 192.0.2.1\nexample.net. IN A 192.0.2.2\n", "8: a record for example.net,"),
    ],
    ids=["quote", "long-string", "address", "mx", "type", "cname", "escape", "out-of-zone"],
)
def test_parse_errors_name_file_and_line(tmp_path: Path, record: str, expected: str) -> None:
    message = bad_zone(tmp_path, HEADER + record + "ok IN TXT fine\n")
    assert message.startswith(expected), message


def test_relative_name_without_origin_is_an_error(tmp_path: Path) -> None:
    message = bad_zone(tmp_path, 'a.example.com. 60 IN TXT "x"\nmail 60 IN A 192.0.2.1\n')
    assert message.startswith("2: relative name 'mail'"), message
    assert "$ORIGIN" in message


def test_relative_rdata_name_without_origin_is_an_error(tmp_path: Path) -> None:
    message = bad_zone(tmp_path, "example.com. 60 IN MX 10 mail\n")
    assert message.startswith("1: relative name 'mail'"), message


def test_relative_soa_owner_without_origin_is_an_error(tmp_path: Path) -> None:
    message = bad_zone(tmp_path, "$TTL 60\n@ IN SOA ns1 hostmaster 1 2 3 4 5\n")
    assert message.startswith("2: the SOA owner '@' is relative"), message


def test_two_zones_in_one_file_is_an_error(tmp_path: Path) -> None:
    text = "$TTL 60\na.example. IN SOA ns h 1 2 3 4 5\nb.example. IN SOA ns h 1 2 3 4 5\n"
    assert bad_zone(tmp_path, text).startswith("3: a second SOA for b.example")


def test_cname_conflict_across_files_is_an_error() -> None:
    resolver = ZoneResolver.from_text("www.example.com. 60 IN A 192.0.2.1\n", source="one")
    with pytest.raises(DnsError, match=r"^two: www.example.com: CNAME and other records"):
        resolver.add_text("www.example.com. 60 IN CNAME example.com.\n", source="two")


def test_unreadable_file_is_a_dns_error(tmp_path: Path) -> None:
    with pytest.raises(DnsError, match="cannot read zone file"):
        ZoneResolver([tmp_path / "missing.zone"])
    latin = tmp_path / "latin.zone"
    latin.write_bytes(b'a.example. 60 IN TXT "caf\xe9"\n')
    with pytest.raises(DnsError, match="not UTF-8"):
        ZoneResolver([latin])


def test_text_source_name_appears_in_errors() -> None:
    with pytest.raises(DnsError, match=r"^<zone text>:1: bad A record"):
        ZoneResolver.from_text("a.example. 60 IN A nonsense\n")


# -- properties ------------------------------------------------------------

labels = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=20)


@given(owner=labels, flips=st.lists(st.booleans(), min_size=1, max_size=60))
def test_any_casing_of_a_name_gets_the_same_answer(owner: str, flips: list[bool]) -> None:
    resolver = ZoneResolver.from_text(f"{owner}.example.com. 60 IN TXT value\n")
    name = f"{owner}.example.com"
    mixed = "".join(c.upper() if flips[i % len(flips)] else c for i, c in enumerate(name))
    assert ask(resolver, mixed, RdType.TXT).records == ("value",)


@given(strings=st.lists(st.binary(max_size=255), min_size=1, max_size=5))
def test_txt_bytes_survive_escaping_and_joining(strings: list[bytes]) -> None:
    # Every byte written as \DDD (RFC 1035 §5.1), several strings in one record.
    quoted = " ".join('"' + "".join(f"\\{b:03d}" for b in s) + '"' for s in strings)
    resolver = ZoneResolver.from_text(f"t.example.com. 60 IN TXT {quoted}\n")
    (text,) = ask(resolver, "t.example.com", RdType.TXT).records
    assert text.encode("latin-1") == b"".join(strings)


def test_opendkim_genkey_txt_file_is_a_zone(tmp_path: Path) -> None:
    # The layout opendkim-genkey (Debian 2.11) writes: relative owner, no origin,
    # no TTL; the trailing comment names the domain.
    path = tmp_path / "mail.txt"
    path.write_text(
        'mail._domainkey\tIN\tTXT\t( "v=DKIM1; h=sha256; k=rsa; "\n'
        '\t  "p=MIIBIjANBgkq" )  ; ----- DKIM key mail for example.com\n'
    )
    answer = ask(ZoneResolver([path]), "mail._domainkey.example.com", RdType.TXT)
    assert answer.records == ("v=DKIM1; h=sha256; k=rsa; p=MIIBIjANBgkq",)
