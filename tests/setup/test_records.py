"""The DNS records setup prints (mailseal.setup.records), with DNS from zone text."""

from __future__ import annotations

from mailseal.dkim.keys import KeyType, generate_key
from mailseal.dkim.publish import KeyTxtRecord
from mailseal.dns.drive import drive_sync
from mailseal.dns.types import Answer, Question, RdType, Status
from mailseal.dns.zone import ZoneResolver
from mailseal.setup.layout import postfix_milter
from mailseal.setup.records import (
    Discovery,
    advice,
    discover,
    postfix_lines,
    reverse_name,
    spf_value,
)

ZONE = """$ORIGIN example.com.
$TTL 300
@ IN SOA ns.example.com. hostmaster.example.com. 1 3600 600 86400 300
@ IN MX 20 backup.example.com.
@ IN MX 10 mx.example.com.
@ IN A 192.0.2.1
@ IN TXT "v=spf1 a -all"
_dmarc IN TXT "v=DMARC1; p=quarantine; rua=mailto:d@example.com"
mx IN A 192.0.2.10
$ORIGIN 2.0.192.in-addr.arpa.
10 IN PTR mx.example.com.
"""


def resolver() -> ZoneResolver:
    r = ZoneResolver.from_text(ZONE.split("$ORIGIN 2.0")[0])
    r.add_text(
        "@ 300 IN SOA ns.example.com. h.example.com. 1 2 3 4 5\n10 IN PTR mx.example.com.\n",
        "2.0.192.in-addr.arpa",
    )
    r.add_text("@ 300 IN SOA ns. h. 1 2 3 4 5\n@ IN MX 0 .\n", "null.example")
    return r


def test_discover_reads_mx_a_spf_dmarc_ptr() -> None:
    found = drive_sync(discover("example.com", ("192.0.2.10",), None), resolver())
    assert found.mx == ("mx.example.com", "backup.example.com")
    assert found.hostname == "mx.example.com"
    assert found.addresses == ("192.0.2.1",)
    assert found.spf == ("v=spf1 a -all",)
    assert found.dmarc[0].startswith("v=DMARC1; p=quarantine")
    assert found.ptr == {"192.0.2.10": ("mx.example.com",)}
    assert found.host_addresses == ("192.0.2.10",)
    assert found.failures == ()


def test_spf_from_mx_a_and_ips() -> None:
    found = drive_sync(discover("example.com", (), None), resolver())
    assert spf_value(found, ("192.0.2.10", "2001:db8::10")) == (
        "v=spf1 mx a ip4:192.0.2.10 ip6:2001:db8::10 -all"
    )
    null = drive_sync(discover("null.example", (), None), resolver())
    assert null.mx == () and null.hostname == "mail.null.example"
    assert spf_value(null, ("192.0.2.10",)) == "v=spf1 ip4:192.0.2.10 -all"
    assert spf_value(null, ()) is None


def test_advice_items_and_notes() -> None:
    found = drive_sync(discover("example.com", ("192.0.2.10",), None), resolver())
    key = KeyTxtRecord.for_key(generate_key(KeyType.ED25519), "mail", "example.com")
    items = advice("example.com", [key], found, ("192.0.2.10",))
    assert [(i.kind, i.name, i.rdtype) for i in items] == [
        ("DKIM", "mail._domainkey.example.com", "TXT"),
        ("SPF", "example.com", "TXT"),
        ("DMARC", "_dmarc.example.com", "TXT"),
        ("PTR", "10.2.0.192.in-addr.arpa", "PTR"),
    ]
    dkim, spf, dmarc, ptr = items
    assert dkim.value == key.value and dkim.zone_text == key.zone_text()
    assert spf.value == "v=spf1 mx a ip4:192.0.2.10 -all"
    assert any("only one SPF record" in n for n in spf.notes)
    assert dmarc.value == "v=DMARC1; p=none; rua=mailto:postmaster@example.com"
    steps = [n for n in dmarc.notes if n.startswith("step")]
    assert [s.rsplit(": ", 1)[1] for s in steps] == [
        "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.com; t=y",
        "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.com",
        "v=DMARC1; p=reject; rua=mailto:postmaster@example.com",
    ]
    assert any("now published" in n for n in dmarc.notes)
    assert ptr.value == "mx.example.com" and "already set" in ptr.notes


def test_offline_lookups_are_noted_not_fatal() -> None:
    class Down:
        def ask_sync(self, question: Question) -> Answer:
            return Answer(question, Status.TIMEOUT)

    found = drive_sync(discover("example.com", ("192.0.2.10",), "mail.example.com"), Down())
    assert found == Discovery("mail.example.com", failures=found.failures, ptr={"192.0.2.10": ()})
    assert len(found.failures) == 8
    spf = advice("example.com", [], found, ("192.0.2.10",))[0]
    assert spf.value == "v=spf1 ip4:192.0.2.10 -all"


def test_reverse_names_and_postfix() -> None:
    assert reverse_name("2001:db8::1").endswith(".8.b.d.0.1.0.0.2.ip6.arpa")
    assert postfix_milter("inet:12145@localhost") == "inet:localhost:12145"
    assert postfix_milter("local:/run/opendkim/opendkim.sock") == "unix:/run/opendkim/opendkim.sock"
    assert postfix_lines("inet:localhost:12145")[0] == "milter_protocol = 6"
    assert RdType.PTR.value == "PTR"
