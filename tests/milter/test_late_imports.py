"""A worker imports nothing after it drops privileges.

Workers are forked from the root parent and switch to ``UserID`` at once; if the
Python installation is not readable by that user (a pyenv under /root, say), any
module imported later fails, and with it the message. dnspython imports its asyncio
backend and its record classes on first use: the DNS shell names them up front. This
runs, in a fresh interpreter, what the parent imports, then a verification that asks
a real DNS server on loopback for the key, and checks that nothing more was imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mailseal.dkim.keys import KeyType, generate_key, private_pem
from tests.support.dnsserver import DnsTestServer

SCRIPT = r"""
import asyncio, json, sys
from pathlib import Path
import mailseal.milter.server  # what the parent imports before it forks
import mailseal.milter.worker
from mailseal.dkim.keys import load_private_key
from mailseal.dkim.sign import SignerSpec, sign_message
from mailseal.dkim.verify import MessageVerifier, VerifyOptions
from mailseal.dns.resolver import Resolver
from mailseal.message.headers import HeaderField

key = load_private_key(Path(sys.argv[2]).read_bytes())
msg = b"From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n"
spec = SignerSpec(key=key, domain="example.com", selector="mail")
fields = [HeaderField(f) for f in sign_message(msg, [spec], 1_800_000_000)]
fields += [HeaderField(b"From: a@example.com"), HeaderField(b"Subject: hi")]
before = set(sys.modules)

async def verify():
    resolver = Resolver([sys.argv[1]], timeout=5)
    verifier = MessageVerifier(fields, VerifyOptions())
    verifier.update(b"body\r\n")
    steps = verifier.finish(1_800_000_000)
    question = next(steps)
    try:
        while True:
            question = steps.send(await resolver.ask(question))
    except StopIteration as stop:
        return stop.value

verdict = asyncio.run(verify())
late = sorted(set(sys.modules) - before)
print(json.dumps({"late": late, "results": [s.result.value for s in verdict.signatures]}))
"""


def test_a_verification_imports_nothing_new(tmp_path: Path) -> None:
    key = generate_key(KeyType.RSA, 1024)
    pem = tmp_path / "mail.private"
    pem.write_bytes(private_pem(key))
    record = key.public_record()
    txt = " ".join(f'"{record[i : i + 250]}"' for i in range(0, len(record), 250))
    zone = (
        "$TTL 300\n@ IN SOA ns hostmaster 1 3600 600 86400 60\n@ IN NS ns\n"
        f"mail._domainkey IN TXT {txt}\n"
    )
    with DnsTestServer({"example.com": zone}, max_lifetime=120) as dns:
        proc = subprocess.run(
            [sys.executable, "-c", SCRIPT, dns.spec, str(pem)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["results"] == ["pass"]  # the key really came over DNS
    assert out["late"] == []
