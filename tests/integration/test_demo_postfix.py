"""``mailseal demo`` end to end: the private Postfix path, and ``--no-postfix``.

The demo runs as a user would run it (``python -m mailseal demo --dir DIR
--seconds 0``). With Postfix installed and root, the sample goes through a
private Postfix whose smtpd_milters is the demo's milter; the delivered message
(kept in DIR/postfix/delivered.eml) must carry two signatures that pass, checked
here by mailseal and independently by dkimpy against the demo's zone file.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mailseal.demo.postfix import unavailable_reason

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEMO_TIMEOUT = 60  # it takes ~5 s with Postfix (2 s of that is `postfix start`)


def run_demo(directory: Path, *extra: str) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "mailseal", "demo", "--dir", str(directory), "--seconds", "0",
         *extra],
        capture_output=True, timeout=DEMO_TIMEOUT, cwd=ROOT, stdin=subprocess.DEVNULL,
    )
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), \
        proc.stderr.decode("utf-8", "replace")


def zone_txt(zone: Path) -> dict[str, bytes]:
    """TXT records of the demo's zone file: FQDN -> the strings joined."""
    origin, out = "", {}
    for line in zone.read_text().splitlines():
        if line.startswith("$ORIGIN"):
            origin = line.split()[1]
        m = re.match(r"(\S+) IN TXT \( (.*) \)$", line)
        if m:
            value = "".join(re.findall(r'"([^"]*)"', m.group(2)))
            out[f"{m.group(1)}.{origin}"] = value.encode()
    return out


def dkimpy_verdicts(message: bytes, zone: Path) -> list[bool]:
    """Each DKIM-Signature of ``message`` as dkimpy sees it (public keys from the zone file)."""
    dkim = pytest.importorskip("dkim", reason="dkimpy is not installed: pip install -e '.[test]'")
    pytest.importorskip("nacl.signing", reason="dkimpy needs PyNaCl for Ed25519")
    records = zone_txt(zone)

    def dnsfunc(name: bytes | str, timeout: int = 5) -> bytes:
        key = name.decode() if isinstance(name, bytes) else name
        return records.get(key if key.endswith(".") else key + ".", b"")

    d = dkim.DKIM(message)
    count = message.split(b"\r\n\r\n", 1)[0].lower().count(b"\ndkim-signature:") + \
        message.lower().startswith(b"dkim-signature:")
    return [bool(d.verify(idx=i, dnsfunc=dnsfunc)) for i in range(count)]


def test_demo_runs_the_message_through_a_private_postfix(tmp_path: Path) -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"the demo's Postfix path cannot run here: {reason}")
    code, out, err = run_demo(tmp_path)
    assert code == 0, out + err
    print(out[out.index("Starting the milter"):])
    assert "Starting a private Postfix on loopback" in out, out
    assert "Not using Postfix" not in out and "built-in milter client" not in out, out
    # offline round (2) + the message Postfix delivered (2)
    assert out.count("dkim=pass") == 4, out
    tail = out[out.index("Its signatures, verified against the zone file:"):]
    assert re.search(r"dkim=pass d=example.com s=mail a=rsa-sha256\n"
                     r"\s+dkim=pass d=example.com s=ed a=ed25519-sha256\n", tail), tail
    assert "Stopped the private Postfix" in out

    kept = tmp_path / "postfix"
    delivered = (kept / "delivered.eml").read_bytes()
    head = delivered.split(b"\r\n\r\n", 1)[0]
    assert b"by mx.example.com (Postfix) with ESMTP" in head  # it went through smtpd
    assert head.count(b"DKIM-Signature:") == 2, head
    maillog = (kept / "maillog").read_text()
    assert "status=sent (250 2.0.0 caught)" in maillog, maillog
    main_cf = (kept / "main.cf").read_text()
    for line in ("non_smtpd_milters = $smtpd_milters", "milter_protocol = 6",
                 "milter_default_action = tempfail", "inet_interfaces = loopback-only"):
        assert line in main_cf, main_cf
    assert re.search(r"^smtpd_milters = inet:127\.0\.0\.1:\d+$", main_cf, re.M), main_cf

    # verified by mailseal's command line and, independently, by dkimpy
    zone = tmp_path / "example.com.zone"
    cp = subprocess.run([sys.executable, "-m", "mailseal", "verify", "--zone", str(zone),
                         str(kept / "delivered.eml")], capture_output=True, timeout=60, cwd=ROOT)
    assert cp.returncode == 0 and cp.stdout.decode().count(": pass ") == 2, cp
    assert dkimpy_verdicts(delivered, zone) == [True, True]

    # the private instance is gone: its directory removed, its master stopped
    base = re.search(r"queue, maillog\s+under (\S+)", out)
    assert base and not os.path.exists(base.group(1)), out


def test_demo_no_postfix_takes_the_client_path(tmp_path: Path) -> None:
    code, out, err = run_demo(tmp_path, "--no-postfix")
    assert code == 0, out + err
    assert "Not using Postfix: --no-postfix was given." in out, out
    assert "built-in milter client" in out
    assert "Starting a private Postfix" not in out
    assert out.count("dkim=pass") == 4, out
    assert not (tmp_path / "postfix").exists()
