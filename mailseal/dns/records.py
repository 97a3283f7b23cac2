"""Turn dnspython names and rdata into the text shapes :class:`~mailseal.dns.types.Answer` promises.

Shared by the zone-file resolver and the network resolver so both hand core
code exactly the same strings for the same records.
"""

from __future__ import annotations

from typing import Final

import dns.exception
import dns.name
import dns.rdata
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.rdtypes.ANY.TXT
import dns.rdtypes.mxbase
import dns.rdtypes.nsbase

from mailseal.dns.types import RdType

# RdType values are the standard mnemonics, so dnspython's table gives the codes.
RDATATYPES: Final[dict[RdType, dns.rdatatype.RdataType]] = {
    rdtype: dns.rdatatype.from_text(rdtype.value) for rdtype in RdType
}


def question_name(text: str) -> dns.name.Name:
    """Parse a question name (``example.com`` or ``example.com.``) into an absolute name.

    Unicode names become A-labels (IDNA), as on the wire. Raises
    :class:`ValueError` for text that cannot be a domain name (an empty label,
    a label over 63 octets or a name over 255, RFC 1035 §2.3.4).
    """
    try:
        return dns.name.from_text(text, origin=dns.name.root)
    except (dns.exception.DNSException, UnicodeError) as exc:
        raise ValueError(f"{text!r} is not a valid domain name ({exc})") from exc


def name_text(name: dns.name.Name) -> str:
    """Render a name lower-case without the trailing dot; the root stays ``.``."""
    return name.to_text(omit_final_dot=True).lower()


def record_text(rdata: dns.rdata.Rdata) -> str:
    """Render one record in the shape documented on :class:`~mailseal.dns.types.Answer`.

    TXT character-strings are joined with no separator, as RFC 6376 §3.6.2.2
    and RFC 7208 §3.3 require, and decoded as Latin-1 so every byte survives.
    SOA (not covered by the Answer docstring) is ``mname rname serial refresh
    retry expire minimum`` with lower-case names.
    """
    if isinstance(rdata, dns.rdtypes.ANY.TXT.TXT):
        return b"".join(rdata.strings).decode("latin-1")
    if isinstance(rdata, dns.rdtypes.mxbase.MXBase):
        # A null MX (RFC 7505) has the root as exchange: rendered "0 .".
        return f"{rdata.preference} {name_text(rdata.exchange)}"
    if isinstance(rdata, dns.rdtypes.nsbase.NSBase):  # NS, CNAME, PTR, DNAME
        return name_text(rdata.target)
    if isinstance(rdata, dns.rdtypes.ANY.SOA.SOA):
        return (
            f"{name_text(rdata.mname)} {name_text(rdata.rname)} {rdata.serial} "
            f"{rdata.refresh} {rdata.retry} {rdata.expire} {rdata.minimum}"
        )
    # A and AAAA to_text() is the usual address form; anything else is
    # dnspython's presentation format, which is the best we can offer.
    return str(rdata.to_text())
