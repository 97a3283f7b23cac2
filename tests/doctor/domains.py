"""Test domains for the doctor: a good one, a broken one, their reverse zone and blocklists.

Shared by the unit tests (answered by ``ZoneResolver`` from this text) and the
integration test (the same zones served by a real nsd). Addresses are from
TEST-NET-1 (RFC 5737), names under ``.example`` (RFC 2606).

- ``good.example``: MX with an address, SPF ``mx ip4 -all`` (1 lookup), an
  RSA-2048 key at ``mail._domainkey``, DMARC ``p=reject`` with one internal and
  one external report address (authorized by ``reports.example``), MTA-STS
  and TLS-RPT; its server 192.0.2.10 has a forward-confirmed PTR
  ``mail.good.example``. Scores 10/10.
- ``broken.example``: no DMARC record; SPF with 11 includes (over the limit of
  10); a 1024-bit key left in testing (``t=y``) at ``default._domainkey``; no
  MTA-STS or TLS-RPT; its server 192.0.2.20 has PTR ``mail.broken.example``,
  which resolves to 192.0.2.99 (not forward-confirmed), and is listed in the
  test blocklist ``dnsbl.example``.
- ``refusing.example``: a blocklist answering 127.255.255.254 to everything,
  as Spamhaus answers queries from public resolvers.
"""

from __future__ import annotations

import base64
import functools
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

GOOD = "good.example"
BROKEN = "broken.example"
GOOD_IP = "192.0.2.10"
BROKEN_IP = "192.0.2.20"
GOOD_HELO = "mail.good.example"
BROKEN_HELO = "mail.broken.example"
BLOCKLIST = "dnsbl.example"
REFUSING = "refusing.example"


VECTORS = Path(__file__).resolve().parent.parent / "vectors"


@functools.cache
def rsa_key(bits: int) -> rsa.RSAPrivateKey:
    """A key of ``bits`` bits made for this run; 768 bits is the vendored one (cannot be made)."""
    if bits == 768:
        pem = (VECTORS / "dkim" / "generated" / "rsa-768.pem").read_bytes()
        key = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def key_record(bits: int, testing: bool = False) -> str:
    spki = (
        rsa_key(bits)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    flags = " t=y;" if testing else ""
    return f"v=DKIM1; h=sha256; k=rsa;{flags} p={base64.b64encode(spki).decode()}"


def txt(text: str) -> str:
    """A TXT rdata in zone-file syntax, split into 250-character strings."""
    chunks = [text[i : i + 250] for i in range(0, len(text), 250)]
    return "( " + " ".join(f'"{c}"' for c in chunks) + " )"


def _head(origin: str) -> str:
    return (
        f"$ORIGIN {origin}.\n$TTL 300\n"
        f"@ IN SOA ns.{origin}. hostmaster.{origin}. ( 1 3600 600 86400 300 )\n"
        f"@ IN NS ns.{origin}.\nns IN A 127.0.0.1\n"
    )


def zones() -> dict[str, str]:
    """Origin -> master-file text for every test zone."""
    includes = " ".join(f"include:s{i}.{BROKEN}" for i in range(1, 12))
    broken_includes = "".join(
        f's{i} IN TXT "v=spf1 ip4:198.51.100.{i} -all"\n' for i in range(1, 12)
    )
    return {
        GOOD: _head(GOOD)
        + f"@ IN MX 10 mail.{GOOD}.\n"
        + f"@ IN A {GOOD_IP}\n"
        + f"mail IN A {GOOD_IP}\n"
        + f'@ IN TXT "v=spf1 mx ip4:{GOOD_IP} -all"\n'
        + f"mail._domainkey IN TXT {txt(key_record(2048))}\n"
        + f'_dmarc IN TXT "v=DMARC1; p=reject; rua=mailto:dmarc@{GOOD},'
        + 'mailto:agg@reports.example"\n'
        + '_mta-sts IN TXT "v=STSv1; id=20240101"\n'
        + f'_smtp._tls IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@{GOOD}"\n',
        "reports.example": _head("reports.example") + f'{GOOD}._report._dmarc IN TXT "v=DMARC1"\n',
        BROKEN: _head(BROKEN)
        + f"@ IN MX 10 mail.{BROKEN}.\n"
        + "mail IN A 192.0.2.99\n"
        + f"@ IN TXT {txt(f'v=spf1 {includes} -all')}\n"
        + broken_includes
        + f"default._domainkey IN TXT {txt(key_record(1024, testing=True))}\n",
        "2.0.192.in-addr.arpa": _head("2.0.192.in-addr.arpa")
        + f"10 IN PTR mail.{GOOD}.\n"
        + f"20 IN PTR mail.{BROKEN}.\n",
        BLOCKLIST: _head(BLOCKLIST)
        + "20.2.0.192 IN A 127.0.0.2\n"
        + '20.2.0.192 IN TXT "listed for the mailseal test: spam trap hits"\n'
        + "2.0.0.127 IN A 127.0.0.2\n",
        REFUSING: _head(REFUSING) + "* IN A 127.255.255.254\n",
    }
