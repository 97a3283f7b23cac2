"""genkey, testkey, setup and rotate against the real tools: opendkim-genkey, opendkim-testkey,
OpenDKIM, the mailseal milter, dkimpy, and the session's nsd on loopback.

Records are published by appending them to the zone file the session nsd
serves and sending it SIGHUP (nsd re-reads a zone file whose mtime changed);
each test uses selectors of its own, so the other tests' records are untouched.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailseal.milter.client import MilterClient

try:  # tests/ as packages, or (the default) rootdir-relative imports
    from . import interop_harness as h
    from . import postfix_harness as ph
except ImportError:
    import interop_harness as h  # type: ignore[no-redef]
    import postfix_harness as ph  # type: ignore[no-redef]

pytestmark = pytest.mark.integration

DOMAIN = h.DOMAIN
Publish = Callable[[str, str], None]
HEADERS = [
    ("From", " Alice <alice@example.com>"),
    ("To", " Bob <bob@example.net>"),
    ("Subject", " setup test"),
    ("Date", " Thu, 26 Nov 2026 10:00:00 +0000"),
    ("Message-ID", " <setup-test@example.com>"),
]
BODY = b"Hello Bob,\r\n\r\nsigned by a milter that mailseal setup configured.\r\n"


def tool(name: str) -> str:
    path = shutil.which(name) or (
        f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None
    )
    if path is None:
        pytest.skip(f"{name} is not installed: {h.APT_HINT['opendkim']}")
    return path


@pytest.fixture(scope="module")
def publish(dns_server: h.DnsServer, it_dir: Path) -> Publish:
    """Add zone text to the session nsd and wait until ``name`` is served."""
    zone = it_dir / "nsd" / f"{DOMAIN}.zone"
    lock = threading.Lock()
    stamp = [zone.stat().st_mtime]

    def add(text: str, name: str) -> None:
        with lock:
            with zone.open("a") as f:
                f.write("\n" + text.rstrip("\n") + "\n")
            stamp[0] = max(stamp[0] + 1, time.time() + 1)  # a changed mtime, even within a second
            os.utime(zone, (stamp[0], stamp[0]))
            dns_server.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if dns_server.txt(name, timeout=1) is not None:
                    return
                time.sleep(0.1)
        raise AssertionError(
            f"nsd did not serve {name} after a reload:\n{dns_server.log.read_text()[-2000:]}"
        )

    return add


@pytest.fixture(scope="module")
def workdir(it_dir: Path) -> Path:
    d = it_dir / "genkey-setup"
    d.mkdir(mode=0o700)
    return d


def mask(text: str) -> str:
    """A .txt file with the key material replaced, the layout kept."""
    head, sep, rest = text.partition('"p=')
    assert sep, text
    body, tail = rest.split('" )', 1)
    return head + sep + re.sub(r"[A-Za-z0-9+/=]", "K", body) + '" )' + tail


GENKEY_CASES = [
    ["-s", "{s}", "-d", DOMAIN],
    ["-s", "{s}", "-d", DOMAIN, "-b", "1024", "-t", "-S", "-r", "-n", "rotated 2026", "-a"],
    ["-s", "{s}", "-d", "example.org", "-b", "1536", "-h", "sha1:sha256", "-t"],
    # 2696 bits: a 500-character key, where opendkim-genkey leaves a trailing "" string.
    ["-s", "{s}", "-d", DOMAIN, "-b", "2696"],
]


@pytest.mark.parametrize("case", range(len(GENKEY_CASES)))
def test_genkey_layout_is_opendkim_genkeys(case: int, workdir: Path, mailseal: h.Mailseal) -> None:
    """Same options, same bytes apart from the key: opendkim-genkey run beside mailseal genkey."""
    genkey = tool("opendkim-genkey")
    theirs, ours = workdir / f"layout-odk-{case}", workdir / f"layout-ms-{case}"
    theirs.mkdir()
    ours.mkdir()
    args = [a.replace("{s}", f"lay{case}") for a in GENKEY_CASES[case]]
    cp = h.run([genkey, *args, "-D", theirs])
    assert cp.returncode == 0, cp.stderr
    res = mailseal("genkey", *args, "-D", ours)
    assert res.rc == 0, res.describe()
    for name in (f"lay{case}.txt", f"lay{case}.private"):
        for d in (theirs, ours):
            assert (d / name).stat().st_mode & 0o777 == 0o600, d / name
    a, b = (theirs / f"lay{case}.txt").read_text(), (ours / f"lay{case}.txt").read_text()
    assert mask(b) == mask(a), f"opendkim-genkey:\n{a}\nmailseal genkey:\n{b}"
    assert res.stdout.decode() == b
    if "2696" in args:
        assert '\t  "" )  ;' in a and '\t  "" )  ;' in b
    pa, pb = (theirs / f"lay{case}.private").read_text(), (ours / f"lay{case}.private").read_text()
    assert pa.splitlines()[0] == pb.splitlines()[0] == "-----BEGIN PRIVATE KEY-----"
    assert [len(x) for x in pa.splitlines()[:-2]] == [len(x) for x in pb.splitlines()[:-2]]


@pytest.fixture(scope="module")
def genkeys(workdir: Path, mailseal: h.Mailseal, publish: Publish) -> dict[str, Path]:
    """mailseal genkey keys (RSA and Ed25519), their .txt published in nsd verbatim."""
    d = workdir / "keys"
    d.mkdir(mode=0o700)
    out = {}
    for sel, extra in (("gk-rsa", []), ("gk-ed", ["--ed25519"])):
        res = mailseal("genkey", "-s", sel, "-d", DOMAIN, "-D", d, *extra)
        assert res.rc == 0, res.describe()
        publish((d / f"{sel}.txt").read_text(), f"{sel}._domainkey.{DOMAIN}")
        out[sel] = d / f"{sel}.private"
    return out


def test_genkey_keys_pass_opendkim_testkey_and_mailseal_testkey(
    genkeys: dict[str, Path], workdir: Path, dns_server: h.DnsServer, mailseal: h.Mailseal
) -> None:
    testkey = tool("opendkim-testkey")
    conf = workdir / "testkey.conf"
    # Debian's opendkim-testkey reads Nameservers (its libunbound then asks the session nsd).
    conf.write_text(f"Nameservers {dns_server.addr}\n")
    cp = h.run([testkey, "-x", conf, "-d", DOMAIN, "-s", "gk-rsa", "-k", genkeys["gk-rsa"], "-vvv"])
    out = (cp.stdout + cp.stderr).decode()
    assert cp.returncode == 0 and "key OK" in out, out
    # OpenDKIM 2.11's opendkim-testkey cannot compare Ed25519 keys; mailseal's can.
    cp = h.run([testkey, "-x", conf, "-d", DOMAIN, "-s", "gk-ed", "-k", genkeys["gk-ed"], "-vvv"])
    print("opendkim-testkey on the Ed25519 key:", cp.returncode, (cp.stdout + cp.stderr).decode())
    for sel in ("gk-rsa", "gk-ed"):
        res = mailseal(
            "testkey", "-d", DOMAIN, "-s", sel, "-k", genkeys[sel], "--dns-server", dns_server.spec
        )
        assert res.rc == 0, res.describe()
        assert f"{sel}._domainkey.{DOMAIN}: key OK; key not secure" in res.stdout.decode()


def test_testkey_refile_keytable_where_opendkim_testkey_cannot(
    genkeys: dict[str, Path], workdir: Path, dns_server: h.DnsServer, mailseal: h.Mailseal
) -> None:
    table = workdir / "KeyTable.refile"
    table.write_text(
        f"gk-rsa._domainkey.{DOMAIN} {DOMAIN}:gk-rsa:{genkeys['gk-rsa']}\n"
        f"gk-ed._domainkey.{DOMAIN} {DOMAIN}:gk-ed:{genkeys['gk-ed']}:ed25519-sha256\n"
        f"gk-rsa._domainkey.{DOMAIN}-bad {DOMAIN}:gk-ed:{genkeys['gk-rsa']}\n"
    )
    conf = workdir / "refile.conf"
    conf.write_text(
        f"KeyTable refile:{table}\nSigningTable refile:{table}\nNameservers {dns_server.addr}\n"
    )
    cp = h.run([tool("opendkim-testkey"), "-x", conf, "-vvv"])
    assert b"invalid data set type" in cp.stderr  # OpenDKIM 2.11 refuses refile: KeyTables
    res = mailseal("testkey", "-x", conf, "--dns-server", dns_server.spec, "-v")
    out = res.stdout.decode()
    assert res.rc == 65, res.describe()  # the third line pairs the RSA key with gk-ed's record
    assert f"gk-rsa._domainkey.{DOMAIN}: key OK" in out
    assert f"gk-ed._domainkey.{DOMAIN}: key OK" in out
    assert f"gk-ed._domainkey.{DOMAIN}: key mismatch" in out and "fix:" in out
    res = mailseal("testkey", "-d", DOMAIN, "-s", "gk-none", "--dns-server", dns_server.spec)
    assert res.rc == 69 and "key not found" in res.stdout.decode()


def test_nsd_serves_genkey_txt_verbatim_and_dkimpy_and_opendkim_verify(
    genkeys: dict[str, Path],
    workdir: Path,
    mailseal: h.Mailseal,
    dkimpy: h.DkimPy,
    opendkim: h.OpenDKIM,
) -> None:
    """Signed with the genkey keys; the .txt files served verbatim verify in dkimpy and OpenDKIM
    (OpenDKIM 2.11 verifies Ed25519 even though its tools cannot make or test such keys)."""
    msg = workdir / "plain.eml"
    msg.write_bytes(ph.crlf("\n".join(f"{k}:{v}" for k, v in HEADERS) + "\n\n") + BODY)
    for sel, alg in (("gk-rsa", h.RSA), ("gk-ed", h.ED25519)):
        key = h.Key(sel, alg, 0, genkeys[sel], "")
        res = mailseal.sign(msg, [key])
        assert res.rc == 0, res.describe()
        if alg == h.RSA or dkimpy.ed25519:
            verdict = dkimpy.verify(res.stdout)
            assert verdict.by_selector(sel).result == "pass", str(verdict)
        verdict = opendkim.verify(res.stdout)
        assert verdict.by_selector(sel).result == "pass", str(verdict)


def test_opendkim_signs_with_genkey_key_and_tables(
    genkeys: dict[str, Path], workdir: Path, dns_server: h.DnsServer, dkimpy: h.DkimPy
) -> None:
    """OpenDKIM (test mode) signs with a file: KeyTable naming the genkey key; dkimpy verifies."""
    binary = tool("opendkim")
    table = workdir / "KeyTable.file"
    table.write_text(f"gk-rsa._domainkey.{DOMAIN}\t{DOMAIN}:gk-rsa:{genkeys['gk-rsa']}\n")
    signing = workdir / "SigningTable.gk"
    signing.write_text(f"*@{DOMAIN} gk-rsa._domainkey.{DOMAIN}\n")
    conf = workdir / "opendkim-gk.conf"
    safe = "" if h._world_writable_ancestor(workdir) is None else "RequireSafeKeys no\n"
    conf.write_text(
        f"Mode s\nSyslog no\nKeyTable file:{table}\nSigningTable refile:{signing}\n"
        f"Canonicalization relaxed/relaxed\nNameservers {dns_server.addr}\n{safe}"
    )
    msg = workdir / "to-sign.eml"
    msg.write_bytes(ph.crlf("\n".join(f"{k}:{v}" for k, v in HEADERS) + "\n\n") + BODY)
    cp = h.run([binary, "-x", conf, "-t", msg])
    out = cp.stdout.decode("latin-1")
    found = re.search(r"^(DKIM-Signature:.*?)\Z", out, re.S | re.M)
    assert cp.returncode == 0 and found, out + cp.stderr.decode()
    field = "\r\n".join(found.group(1).rstrip("\r\n").splitlines()).encode("latin-1") + b"\r\n"
    verdict = dkimpy.verify(field + msg.read_bytes())
    assert verdict.by_selector("gk-rsa").result == "pass", str(verdict)


# --- setup: the written configuration runs OpenDKIM and mailseal ----------------------


class Running:
    """A milter process started here, stopped by its process group."""

    def __init__(self, cmd: list[str], port: int, log: Path) -> None:
        self.port, self.log = port, log
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            env=h.Mailseal(None).env,
            cwd=h.REPO_ROOT,
            start_new_session=True,
        )
        if not ph.wait_port("127.0.0.1", port, 30, lambda: self.proc.poll() is None):
            self.stop()
            raise AssertionError(
                f"{cmd[0]} did not listen (exit {self.proc.poll()}):\n{log.read_text()}"
            )

    def stop(self) -> None:
        h.stop_process(self.proc, grace=2.0)


async def _push(port: int) -> list[bytes]:
    client = MilterClient(timeout=30)
    await client.connect(f"inet:{port}@127.0.0.1")
    await client.negotiate(version=6)
    result = await client.send_message(mail_from="<alice@example.com>", headers=HEADERS, body=BODY)
    await client.quit()
    assert result.accepted, result
    fields = [m for m in (*result.inserted_headers, *result.added_headers)]
    out = []
    for f in fields:
        if f.name.lower() == b"dkim-signature":
            value = f.value.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            out.append(b"DKIM-Signature:" + (value if value[:1] in (b" ", b"\t") else b" " + value))
    return out


def signed_by(port: int) -> tuple[list[bytes], bytes]:
    fields = asyncio.run(_push(port))
    message = ph.crlf("\n".join(f"{k}:{v}" for k, v in HEADERS) + "\n\n") + BODY
    return fields, b"".join(f + b"\r\n" for f in fields) + message


def tree(root: Path) -> dict[str, tuple[int, int, int, bytes]]:
    out = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        out[str(path)] = (
            info.st_mode,
            info.st_uid,
            info.st_gid,
            path.read_bytes() if path.is_file() else b"",
        )
    return out


@pytest.fixture(scope="module")
def setup_root(mailseal: h.Mailseal, dns_server: h.DnsServer, publish: Publish) -> Iterator[Path]:
    """``mailseal setup`` (RSA, selector st1) on a fresh root with no writable parent."""
    base = ph.safe_base("mailseal-setup-")
    root = base / "etc"
    res = mailseal(
        "setup",
        DOMAIN,
        "--root",
        root,
        "--selector",
        "st1",
        "--ip",
        "192.0.2.10",
        "--dns-server",
        dns_server.spec,
        "--dns-timeout",
        "3",
    )
    assert res.rc == 0, res.describe()
    publish((root / "keys" / DOMAIN / "st1.txt").read_text(), f"st1._domainkey.{DOMAIN}")
    yield root
    shutil.rmtree(base, ignore_errors=True)


def test_setup_config_runs_opendkim_and_it_signs(
    setup_root: Path, dkimpy: h.DkimPy, mailseal: h.Mailseal, dns_server: h.DnsServer
) -> None:
    binary = tool("opendkim")
    res = mailseal("testkey", "-x", setup_root / "opendkim.conf", "--dns-server", dns_server.spec)
    assert res.rc == 0 and "key OK" in res.stdout.decode(), res.describe()
    port = ph.free_port()
    pid = setup_root.parent / "opendkim.pid"
    log = setup_root.parent / "opendkim.log"
    cmd = [
        binary,
        "-f",
        "-x",
        str(setup_root / "opendkim.conf"),
        "-p",
        f"inet:{port}@127.0.0.1",
        "-P",
        str(pid),
    ]
    milter = Running(cmd, port, log)
    try:
        fields, signed = signed_by(port)
    finally:
        milter.stop()
    assert len(fields) == 1, f"OpenDKIM added {fields} (it logs to syslog: Syslog yes)"
    assert b"s=st1" in fields[0] and b"d=example.com" in fields[0]
    verdict = dkimpy.verify(signed)
    assert verdict.by_selector("st1").result == "pass", str(verdict)


def test_setup_config_runs_mailseal_milter_and_it_signs(setup_root: Path, dkimpy: h.DkimPy) -> None:
    port = ph.free_port()
    log = setup_root.parent / "mailseal.log"
    cmd = [
        sys.executable,
        "-m",
        "mailseal",
        "milter",
        "-f",
        "-x",
        str(setup_root / "opendkim.conf"),
        "-p",
        f"inet:{port}@127.0.0.1",
        "-P",
        str(setup_root.parent / "mailseal.pid"),
    ]
    milter = Running(cmd, port, log)
    try:
        fields, signed = signed_by(port)
    finally:
        milter.stop()
    assert len(fields) == 1, log.read_text()
    verdict = dkimpy.verify(signed)
    assert verdict.by_selector("st1").result == "pass", str(verdict)


def test_setup_twice_leaves_every_file_identical(
    setup_root: Path, mailseal: h.Mailseal, dns_server: h.DnsServer
) -> None:
    before = tree(setup_root)
    res = mailseal(
        "setup",
        DOMAIN,
        "--root",
        setup_root,
        "--selector",
        "st1",
        "--ip",
        "192.0.2.10",
        "--dns-server",
        dns_server.spec,
        "--dns-timeout",
        "3",
    )
    assert res.rc == 0 and b"nothing to change" in res.stdout, res.describe()
    assert tree(setup_root) == before


def test_setup_ed25519_dual_signatures_from_mailseal_milter(
    mailseal: h.Mailseal, dns_server: h.DnsServer, publish: Publish, dkimpy: h.DkimPy
) -> None:
    if not dkimpy.ed25519:
        pytest.skip("dkimpy needs PyNaCl for Ed25519")
    base = ph.safe_base("mailseal-setup-ed-")
    root = base / "etc"
    try:
        res = mailseal(
            "setup",
            DOMAIN,
            "--root",
            root,
            "--selector",
            "st2",
            "--ed25519",
            "--dns-server",
            dns_server.spec,
            "--dns-timeout",
            "3",
        )
        assert res.rc == 0, res.describe()
        assert b"OpenDKIM 2.11" in res.stdout
        for sel in ("st2", "st2-ed25519"):
            publish(
                (root / "keys" / DOMAIN / f"{sel}.txt").read_text(), f"{sel}._domainkey.{DOMAIN}"
            )
        port = ph.free_port()
        cmd = [
            sys.executable,
            "-m",
            "mailseal",
            "milter",
            "-f",
            "-x",
            str(root / "opendkim.conf"),
            "-p",
            f"inet:{port}@127.0.0.1",
            "-P",
            str(base / "mailseal.pid"),
        ]
        milter = Running(cmd, port, base / "mailseal.log")
        try:
            fields, signed = signed_by(port)
        finally:
            milter.stop()
        assert len(fields) == 2, (base / "mailseal.log").read_text()
        verdict = dkimpy.verify(signed)
        assert verdict.by_selector("st2").result == "pass", str(verdict)
        assert verdict.by_selector("st2-ed25519").result == "pass", str(verdict)
        res = mailseal("testkey", "-x", root / "opendkim.conf", "--dns-server", dns_server.spec)
        assert res.rc == 0, res.describe()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_rotate_with_a_running_milter(
    mailseal: h.Mailseal, dns_server: h.DnsServer, publish: Publish, dkimpy: h.DkimPy
) -> None:
    """prepare, publish, activate (the running milter reloads on SIGUSR1): the new key signs."""
    base = ph.safe_base("mailseal-rotate-")
    root = base / "etc"
    try:
        res = mailseal(
            "setup",
            DOMAIN,
            "--root",
            root,
            "--selector",
            "rot1",
            "--dns-server",
            dns_server.spec,
            "--dns-timeout",
            "3",
        )
        assert res.rc == 0, res.describe()
        publish((root / "keys" / DOMAIN / "rot1.txt").read_text(), f"rot1._domainkey.{DOMAIN}")
        port = ph.free_port()
        pid = base / "mailseal.pid"
        cmd = [
            sys.executable,
            "-m",
            "mailseal",
            "milter",
            "-f",
            "-x",
            str(root / "opendkim.conf"),
            "-p",
            f"inet:{port}@127.0.0.1",
            "-P",
            str(pid),
        ]
        milter = Running(cmd, port, base / "mailseal.log")
        try:
            assert b"s=rot1;" in signed_by(port)[0][0]
            res = mailseal("rotate", DOMAIN, "--root", root, "--selector", "rot2")
            assert res.rc == 0, res.describe()
            rot = ["rotate", DOMAIN, "--root", root, "--activate", "--pid-file", pid]
            res = mailseal(*rot, "--dns-server", dns_server.spec)
            assert res.rc == 1 and "key not found" in res.stderr, res.describe()
            publish((root / "keys" / DOMAIN / "rot2.txt").read_text(), f"rot2._domainkey.{DOMAIN}")
            res = mailseal(*rot, "--dns-server", dns_server.spec)
            assert res.rc == 0 and b"sent SIGUSR1" in res.stdout, res.describe()
            deadline = time.monotonic() + 20
            while True:
                fields, signed = signed_by(port)
                if b"s=rot2;" in fields[0] or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert b"s=rot2;" in fields[0], (base / "mailseal.log").read_text()
            assert dkimpy.verify(signed).by_selector("rot2").result == "pass"
        finally:
            milter.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
