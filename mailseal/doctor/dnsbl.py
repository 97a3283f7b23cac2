"""DNS blocklists (RFC 5782): is the sending address listed?

An address is looked up as ``REVERSED-ADDRESS.ZONE`` A (IPv4 octets reversed,
IPv6 nibbles reversed, §2.1, §2.4). No such name: not listed. An address in
127.0.0.0/8 is a listing code, except two kinds of answer that are not
listings at all and are reported as errors of the check, never as "listed":

- 127.255.255.0/24: the list refusing the query. Spamhaus answers
  127.255.255.254 to queries that come through a public or open resolver
  (8.8.8.8, 1.1.1.1...), 127.255.255.255 to too many queries, 127.255.255.252
  to a misspelt zone; other lists use the same block;
- 127.0.0.1, which RFC 5782 §5 says a list MUST NOT list (it is the test
  entry that must be absent), and anything outside 127.0.0.0/8 (a retired
  zone whose domain now has a wildcard).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Generator
from typing import Final

from mailseal.dns.types import Answer, Question, RdType
from mailseal.doctor.findings import Findings, dns_failure, error, fail, ok
from mailseal.spf.lookup import IPAddress, addresses, reverse_name

#: Checked when no --dnsbl is given: widely used, free for low volumes, and
#: answering for IPv4 (zen.spamhaus.org for IPv6 too).
DEFAULT_DNSBLS: Final = (
    "zen.spamhaus.org",
    "bl.spamcop.net",
    "b.barracudacentral.org",
    "psbl.surriel.com",
    "bl.mailspike.net",
    "ix.dnsbl.manitu.net",
)
#: Where each default list takes removal requests.
DELISTING: Final = {
    "zen.spamhaus.org": "https://check.spamhaus.org/",
    "bl.spamcop.net": "https://www.spamcop.net/bl.shtml",
    "b.barracudacentral.org": "https://www.barracudacentral.org/rbl/removal-request",
    "psbl.surriel.com": "https://psbl.org/",
    "bl.mailspike.net": "https://mailspike.org/iplookup.html",
    "ix.dnsbl.manitu.net": "https://www.nixspam.net/",
}
#: Answers in 127.255.255.0/24 and what they mean (Spamhaus's codes; others follow them).
REFUSALS: Final = {
    "127.255.255.252": "typing error in the blocklist's name",
    "127.255.255.254": "query through a public or open resolver refused",
    "127.255.255.255": "excessive number of queries",
}
_REFUSED: Final = ipaddress.ip_network("127.255.255.0/24")
_LOOPBACK: Final = ipaddress.ip_network("127.0.0.0/8")
_TEST_ENTRY: Final = ipaddress.ip_address("127.0.0.1")


def query_name(ip: IPAddress, zone: str) -> str:
    """``1.2.0.192.zone`` for 192.0.2.1; IPv6 as reversed nibbles (RFC 5782 §2.1, §2.4)."""
    rev = reverse_name(ip)
    rev = rev.removesuffix(".in-addr.arpa").removesuffix(".ip6.arpa")
    return f"{rev}.{zone.lower().rstrip('.')}"


def check_dnsbl(ip: IPAddress, zone: str) -> Generator[Question, Answer, Findings]:
    """One finding for one blocklist: not listed, listed (with its reason), or error."""
    name = query_name(ip, zone)
    answer = yield Question(name, RdType.A)
    if answer.status.is_temporary:
        return [error("dnsbl", f"{zone}: could not ask ({dns_failure(answer)})")]
    if not answer.ok:
        return [ok("dnsbl", f"{ip} is not listed in {zone}")]
    codes = addresses(answer)
    refusals = [a for a in codes if a in _REFUSED]
    if refusals:
        code = str(refusals[0])
        meaning = REFUSALS.get(code, "the blocklist refused the query")
        return [
            error(
                "dnsbl",
                f"{zone} answered {code}: {meaning}; this is a blocklist error, not a listing, "
                f"so it is unknown whether {zone} lists {ip}",
                "ask through your own resolver, not a public one such as 8.8.8.8 or 1.1.1.1: "
                "--dns-server ADDRESS (or the list's registered data service)",
            )
        ]
    listed = [a for a in codes if a in _LOOPBACK and a != _TEST_ENTRY]
    if not listed:
        shown = ", ".join(str(a) for a in codes) or ", ".join(answer.records)
        return [
            error(
                "dnsbl",
                f"{zone} answered {shown}, which is no listing code (RFC 5782 §2.1): the "
                "zone may be retired or wildcarded; drop it from --dnsbl",
            )
        ]
    reason_answer = yield Question(name, RdType.TXT)
    reason = "; ".join(reason_answer.records) if reason_answer.ok else ""
    where = DELISTING.get(zone.lower().rstrip("."), f"the delisting procedure of {zone}")
    return [
        fail(
            "dnsbl",
            f"{ip} is listed in {zone} ({', '.join(str(a) for a in listed)})"
            + (f": {reason}" if reason else "")
            + "; receivers using it refuse or spam-folder your mail",
            f"stop what got it listed (an open relay, a compromised account, a spam-trap "
            f"address on your lists), then request removal: {where}",
        )
    ]


__all__ = ["DEFAULT_DNSBLS", "DELISTING", "REFUSALS", "check_dnsbl", "query_name"]
