"""Harness (no fixtures: see conftest.py) for mailseal's interoperability tests.

Everything here runs real outside programs on loopback:

- ``nsd``: a private authoritative DNS server on 127.0.0.X port 53 (port 53
  because OpenDKIM's resolver, libunbound, only talks to port 53) serving a
  zone this session writes, with RSA-2048, RSA-1024 and Ed25519 keys made for
  this session;
- OpenDKIM (``opendkim -t``, its test mode: the real filter code fed a file
  over a fake connection from 127.0.0.1) as signer and verifier;
- Mail::DKIM (perl, ``mail_dkim_helper.pl`` beside this file) as signer and
  verifier;
- dkimpy (in process; its DNS answered by the same nsd through dnspython);
- mailseal itself, only through its command line (``python -m mailseal``).

A missing tool skips the tests that need it and says which package to
install. Every process is started by this file, stopped by its PID, and
every wait is bounded.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
PERL_HELPER = HERE / "mail_dkim_helper.pl"

DOMAIN = "example.com"
# Addresses tried in turn for the private DNS server; the first whose port 53
# is free is used. Set MAILSEAL_IT_DNS_ADDR to force one.
DNS_CANDIDATES = ("127.0.0.153", "127.0.0.154", "127.0.0.155", "127.0.0.156", "127.0.0.157")
DNS_PORT = 53

RSA = "rsa-sha256"
ED25519 = "ed25519-sha256"

TOOL_TIMEOUT = 60  # seconds, for any one run of an outside program

APT_HINT = {
    "nsd": "apt-get install -y nsd",
    "opendkim": "apt-get install -y opendkim opendkim-tools",
    "perl": "apt-get install -y libmail-dkim-perl",
}


# --------------------------------------------------------------------------
# small helpers


def to_crlf(data: bytes) -> bytes:
    """Every line ending as CRLF (what SMTP carries)."""
    return re.sub(rb"\r?\n", b"\r\n", data)


def to_lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


def line_ending(data: bytes) -> bytes:
    nl = data.find(b"\n")
    return b"\r\n" if nl > 0 and data[nl - 1 : nl] == b"\r" else b"\n"


def split_message(msg: bytes) -> tuple[bytes, bytes]:
    """(header block including the blank line, body)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = msg.find(sep)
        if i >= 0:
            return msg[: i + len(sep)], msg[i + len(sep) :]
    return msg, b""


def field_unfolded(msg: bytes, name: str) -> list[str]:
    """Values of every header field called ``name``, unfolded, in order."""
    head, _ = split_message(msg)
    out: list[str] = []
    cur: list[str] | None = None
    for raw in re.split(r"\r?\n", head.decode("latin-1")):
        if raw[:1] in (" ", "\t") and cur is not None:
            cur.append(raw)
            continue
        if cur is not None:
            out.append("".join(cur))
            cur = None
        if raw.lower().startswith(name.lower() + ":"):
            cur = [raw[len(name) + 1 :]]
    if cur is not None:
        out.append("".join(cur))
    return out


def dkim_tags(value: str) -> dict[str, str]:
    tags = {}
    for part in value.split(";"):
        if "=" in part:
            k, v = part.split("=", 1)
            tags[k.strip()] = re.sub(r"\s+", "", v)
    return tags


def run(cmd: Sequence[str | os.PathLike[str]], *, input: bytes | None = None,
        timeout: float = TOOL_TIMEOUT, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run a program with a bounded wait; its process group is killed on timeout."""
    proc = subprocess.Popen(
        [str(c) for c in cmd], stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd, start_new_session=True,
    )
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
        raise AssertionError(
            f"{cmd[0]} did not finish within {timeout}s: {' '.join(map(str, cmd))}\n"
            f"stdout: {out[-2000:]!r}\nstderr: {err[-2000:]!r}"
        ) from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@dataclass
class SigResult:
    """One signature as a verifier saw it, in RFC 8601 words where possible."""

    result: str
    domain: str = ""
    selector: str = ""
    algorithm: str = ""
    detail: str = ""


@dataclass
class Verdict:
    tool: str
    sigs: list[SigResult]
    raw: str = ""

    def by_selector(self, selector: str) -> SigResult:
        found = [s for s in self.sigs if s.selector == selector]
        assert found, f"{self.tool} reported no signature with s={selector}:\n{self.raw}"
        return found[0]

    @property
    def passed(self) -> bool:
        return any(s.result == "pass" for s in self.sigs)

    def __str__(self) -> str:
        return f"{self.tool}: " + "; ".join(
            f"s={s.selector} a={s.algorithm} {s.result} ({s.detail})" for s in self.sigs
        ) + ("" if self.sigs else "no signatures") + f"\n--- raw output ---\n{self.raw}"


# --------------------------------------------------------------------------
# working directory, keys, zone


def _world_writable_ancestor(path: Path) -> Path | None:
    for p in [path, *path.parents]:
        try:
            if p.stat().st_mode & stat.S_IWOTH:
                return p
        except OSError:
            return p
    return None


@contextlib.contextmanager
def private_dir(base: Path) -> Iterator[Path]:
    """A 0700 directory for keys, configs and messages (``base`` or elsewhere).

    OpenDKIM refuses a key (or a config naming one) when any directory above it
    is world-writable, /tmp included. Prefer a place without such a parent
    (/run when we are root); otherwise the OpenDKIM configs say
    ``RequireSafeKeys no``.
    """
    made: Path | None = None
    if _world_writable_ancestor(base) is not None:
        for cand in (os.environ.get("MAILSEAL_IT_SAFE_DIR"), "/run"):
            if cand and os.path.isdir(cand) and os.access(cand, os.W_OK) \
                    and _world_writable_ancestor(Path(cand)) is None:
                made = Path(tempfile.mkdtemp(prefix="mailseal-it-", dir=cand))
                base = made
                break
    os.chmod(base, 0o700)
    try:
        yield base
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)


@dataclass(frozen=True)
class Key:
    selector: str
    algorithm: str  # rsa-sha256 | ed25519-sha256
    bits: int
    pem: Path  # PKCS#8 PEM (what `openssl genrsa` writes with OpenSSL 3)
    record: str  # the TXT record's text
    seed_b64: bytes = b""  # Ed25519 only: base64 of the 32-byte seed (dkimpy's format)
    verbatim: bool = False  # record is a whole zone-file entry (opendkim-genkey's .txt)


def make_keys(it_dir: Path) -> dict[str, Key]:
    """Keys made for this session: selectors rsa (2048), rsa1024, ed (Ed25519)."""
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    kdir = it_dir / "keys"
    kdir.mkdir(mode=0o700)
    out: dict[str, Key] = {}

    def write(name: str, data: bytes) -> Path:
        p = kdir / name
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return p

    for sel, bits in (("rsa", 2048), ("rsa1024", 1024)):
        k = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        pem = write(f"{sel}.pem", k.private_bytes(
            ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption()))
        spki = k.public_key().public_bytes(ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo)
        out[sel] = Key(sel, RSA, bits, pem,
                       "v=DKIM1; h=sha256; k=rsa; p=" + base64.b64encode(spki).decode())
    ek = ed25519.Ed25519PrivateKey.generate()
    pem = write("ed.pem", ek.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8,
                                           ser.NoEncryption()))
    seed = base64.b64encode(ek.private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw,
                                             ser.NoEncryption()))
    pub = ek.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
    out["ed"] = Key("ed", ED25519, 256, pem,
                    "v=DKIM1; k=ed25519; p=" + base64.b64encode(pub).decode(), seed)
    genkey = _opendkim_genkey(kdir)
    if genkey is not None:
        out[genkey.selector] = genkey
    return out


def _opendkim_genkey(kdir: Path) -> Key | None:
    """A key made by ``opendkim-genkey``; its .txt goes into the zone verbatim."""
    tool = shutil.which("opendkim-genkey") or (
        "/usr/sbin/opendkim-genkey" if os.path.exists("/usr/sbin/opendkim-genkey") else None)
    if tool is None:
        return None
    cp = run([tool, "-b", "2048", "-s", "genkey", "-d", DOMAIN, "-D", kdir])
    txt = kdir / "genkey.txt"
    if cp.returncode != 0 or not txt.exists():
        return None
    return Key("genkey", RSA, 2048, kdir / "genkey.private", txt.read_text(), verbatim=True)


def _txt_rdata(text: str) -> str:
    chunks = [text[i : i + 250] for i in range(0, len(text), 250)]
    return "( " + "\n\t".join(f'"{c}"' for c in chunks) + " )"


def write_zone(it_dir: Path, keys: dict[str, Key]) -> Path:
    """An RFC 1035 master file for example.com with every session key."""
    lines = [
        f"$ORIGIN {DOMAIN}.",
        "$TTL 300",
        "@\tIN\tSOA\tns.example.com. hostmaster.example.com. ( 1 3600 600 86400 300 )",
        "@\tIN\tNS\tns.example.com.",
        "ns\tIN\tA\t127.0.0.1",
        "@\tIN\tTXT\t\"v=spf1 -all\"",
    ]
    for k in keys.values():
        if k.verbatim:
            lines.append(k.record.rstrip("\n"))
        else:
            lines.append(f"{k.selector}._domainkey\tIN\tTXT\t{_txt_rdata(k.record)}")
    path = it_dir / f"{DOMAIN}.zone"
    path.write_text("\n".join(lines) + "\n")
    return path


# --------------------------------------------------------------------------
# the DNS server


@dataclass
class DnsServer:
    addr: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def spec(self) -> str:
        return f"{self.addr}:{self.port}"

    def txt(self, name: str, timeout: float = 5.0) -> bytes | None:
        """The TXT record at ``name`` as one byte string (strings joined), or None."""
        import dns.exception
        import dns.rdatatype
        import dns.resolver

        res = dns.resolver.Resolver(configure=False)
        res.nameservers = [self.addr]
        res.port = self.port
        res.lifetime = timeout
        try:
            ans = res.resolve(name, dns.rdatatype.TXT, raise_on_no_answer=False, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoNameservers, dns.exception.Timeout):
            return None
        if ans.rrset is None:
            return None
        return b"".join(next(iter(ans.rrset)).strings)


def _port_free(addr: str, port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            if kind == socket.SOCK_STREAM:  # a TIME_WAIT left by a past run is no clash
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def _answers(addr: str, port: int) -> bool:
    import dns.exception
    import dns.message
    import dns.query

    q = dns.message.make_query(f"{DOMAIN}.", "SOA")
    try:
        r = dns.query.udp(q, addr, port=port, timeout=0.5)
    except (OSError, dns.exception.DNSException):
        return False
    return r.rcode() == 0 and bool(r.answer)


def stop_process(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM this PID, wait, then SIGKILL the process group it leads."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # nsd's own children, if any are left
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass


class Unavailable(Exception):
    """A tool is missing; the message says what to install."""


@contextlib.contextmanager
def run_nsd(it_dir: Path, zone_file: Path,
            extra_zones: Sequence[tuple[str, Path]] = ()) -> Iterator[DnsServer]:
    """A private nsd serving ``zone_file`` on 127.0.0.X:53, stopped by PID on exit.

    ``extra_zones`` (origin, file) are served too (``mailseal check``'s test
    domains, their reverse zone and blocklists). ``it_dir / "nsd"`` must not
    exist yet: a second server needs its own ``it_dir``.
    """
    nsd = shutil.which("nsd") or ("/usr/sbin/nsd" if os.path.exists("/usr/sbin/nsd") else None)
    if nsd is None:
        raise Unavailable(f"nsd is not installed: {APT_HINT['nsd']}")
    if os.geteuid() != 0:
        raise Unavailable("the loopback DNS server needs port 53 (OpenDKIM's libunbound "
                          "uses only 53): run the integration tests as root")
    ddir = it_dir / "nsd"
    ddir.mkdir(mode=0o700)
    shutil.copy(zone_file, ddir / zone_file.name)
    for _, extra in extra_zones:
        shutil.copy(extra, ddir / extra.name)
    extra_conf = "".join(f'zone:\n    name: "{origin}"\n    zonefile: "{extra.name}"\n'
                         for origin, extra in extra_zones)
    forced = os.environ.get("MAILSEAL_IT_DNS_ADDR")
    candidates = (forced,) if forced else DNS_CANDIDATES
    tried = []
    for addr in candidates:
        if not _port_free(addr, DNS_PORT):
            tried.append(f"{addr}:{DNS_PORT} is in use")
            continue
        conf = ddir / "nsd.conf"
        log = ddir / "nsd.log"
        conf.write_text(f"""\
server:
    ip-address: {addr}
    port: {DNS_PORT}
    do-ip4: yes
    do-ip6: no
    username: ""
    chroot: ""
    database: ""
    zonesdir: "{ddir}"
    zonelistfile: "{ddir}/zone.list"
    xfrdfile: "{ddir}/xfrd.state"
    xfrdir: "{ddir}"
    pidfile: "{ddir}/nsd.pid"
    logfile: "{log}"
    server-count: 1
    verbosity: 1
    hide-version: yes
    minimal-responses: no
remote-control:
    control-enable: no
zone:
    name: "{DOMAIN}"
    zonefile: "{zone_file.name}"
{extra_conf}""")
        proc = subprocess.Popen([nsd, "-d", "-c", str(conf)], stdout=log.open("ab"),
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and proc.poll() is None:
            if _answers(addr, DNS_PORT):
                break
            time.sleep(0.05)
        if proc.poll() is None and _answers(addr, DNS_PORT):
            server = DnsServer(addr, DNS_PORT, proc, log)
            try:
                yield server
            finally:
                stop_process(proc)
            return
        stop_process(proc)
        tried.append(f"{addr}: nsd did not answer: {log.read_text()[-1500:]}")
    raise RuntimeError("could not start a private nsd (a system nsd bound to 0.0.0.0:53 would "
                "clash: `systemctl disable --now nsd`):\n" + "\n".join(tried))


# --------------------------------------------------------------------------
# OpenDKIM


@dataclass
class OpenDKIM:
    """``opendkim -t FILE`` (test mode) with private configs."""

    binary: str
    workdir: Path
    dns: DnsServer
    safe_keys: bool
    _n: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _tmp(self, suffix: str) -> Path:
        with self._lock:
            self._n += 1
            return self.workdir / f"{self._n:05d}{suffix}"

    def _conf(self, lines: list[str]) -> Path:
        base = [
            f"Nameservers {self.dns.addr}",  # no TrustAnchorFile: see DESIGN.md §3
            "Syslog no",
            "DNSTimeout 5",
        ]
        if not self.safe_keys:
            base.append("RequireSafeKeys no")
        p = self._tmp(".conf")
        p.write_text("\n".join(base + lines) + "\n")
        p.chmod(0o600)
        return p

    def verify_file(self, path: Path) -> Verdict:
        conf = self._conf(["Mode v"])
        # -vv prints the Authentication-Results field the filter would add,
        # which lists every signature (the summary line only shows one).
        cp = run([self.binary, "-x", conf, "-vv", "-t", path])
        out = cp.stdout.decode("utf-8", "replace")
        raw = out + cp.stderr.decode("utf-8", "replace")
        if cp.returncode != 0:
            return Verdict("OpenDKIM", [SigResult("error", detail=f"exit {cp.returncode}")], raw)
        m = re.search(r"hname='Authentication-Results' hvalue='(.*?)'\n", out, re.S)
        sigs: list[SigResult] = []
        if m:
            for part in re.finditer(
                r"\bdkim=(\w+)(.*?)header\.d=([^\s;]+)(.*?)header\.a=([^\s;]+)\s+header\.s=([^\s;]+)",
                m.group(1), re.S,
            ):
                reason = re.search(r'reason="([^"]*)"', part.group(2))
                sigs.append(SigResult(part.group(1), part.group(3), part.group(6), part.group(5),
                                      reason.group(1) if reason else part.group(2).strip()))
        if not sigs:
            summ = re.search(
                r"verification \(s=(\S+?),? d=(\S+?), .*?\) (succeeded|failed)(.*)", out)
            if summ:
                sigs.append(SigResult("pass" if summ.group(3) == "succeeded" else "fail",
                                      summ.group(2), summ.group(1), "", summ.group(4)))
        return Verdict("OpenDKIM", sigs, raw)

    def verify(self, msg: bytes) -> Verdict:
        p = self._tmp(".eml")
        p.write_bytes(msg)
        return self.verify_file(p)

    def verify_many(self, msgs: Sequence[bytes]) -> list[Verdict]:
        return [self.verify(m) for m in msgs]

    def sign(self, msg: bytes, key: Key, canon: str, extra: Sequence[str] = ()) -> bytes:
        conf = self._conf([
            "Mode s",
            f"Domain {DOMAIN}",
            f"Selector {key.selector}",
            f"KeyFile {key.pem}",
            f"Canonicalization {canon}",
            f"SignatureAlgorithm {key.algorithm}",
            *extra,
        ])
        p = self._tmp(".eml")
        p.write_bytes(msg)
        cp = run([self.binary, "-x", conf, "-t", p])
        out = cp.stdout.decode("latin-1")
        m = re.search(r"^(DKIM-Signature:.*?)\Z", out, re.S | re.M)
        if cp.returncode != 0 or not m:
            raise AssertionError(f"OpenDKIM did not sign (exit {cp.returncode}):\n{out}\n"
                                 f"{cp.stderr.decode('latin-1')}")
        # it folds with CRLF but ends with LF; use the message's own line endings
        lines = [ln for ln in re.split(r"\r?\n", m.group(1).rstrip("\r\n"))]
        nl = line_ending(msg)
        return nl.join(ln.encode("latin-1") for ln in lines) + nl + msg


def find_opendkim(it_dir: Path, dns_server: DnsServer) -> OpenDKIM:
    binary = shutil.which("opendkim") or (
        "/usr/sbin/opendkim" if os.path.exists("/usr/sbin/opendkim") else None)
    if binary is None:
        raise Unavailable(f"OpenDKIM is not installed: {APT_HINT['opendkim']}")
    wd = it_dir / "opendkim"
    wd.mkdir(mode=0o700)
    return OpenDKIM(binary, wd, dns_server, _world_writable_ancestor(it_dir) is None)


# --------------------------------------------------------------------------
# Mail::DKIM


@dataclass
class MailDKIM:
    dns: DnsServer
    workdir: Path
    version: str
    ed25519: bool

    def verify(self, msg: bytes) -> Verdict:
        return self.verify_many([msg])[0]

    def verify_many(self, msgs: Sequence[bytes]) -> list[Verdict]:
        """One perl process for several messages (it takes ~0.1 s to start)."""
        paths = []
        for msg in msgs:
            fd, name = tempfile.mkstemp(suffix=".eml", dir=self.workdir)
            with os.fdopen(fd, "wb") as f:
                f.write(msg)
            paths.append(name)
        cp = run(["perl", PERL_HELPER, "verify", "--ns", self.dns.addr,
                  "--port", str(self.dns.port), *paths])
        raw = cp.stdout.decode("utf-8", "replace") + cp.stderr.decode("utf-8", "replace")
        lines = [json.loads(ln) for ln in cp.stdout.splitlines() if ln.strip()]
        if cp.returncode != 0 or len(lines) != len(paths):
            return [Verdict("Mail::DKIM", [SigResult("error", detail=raw)], raw) for _ in paths]
        out = []
        for data in lines:
            sigs = [SigResult(s["result"], s["domain"], s["selector"], s["algorithm"],
                              s["details"]) for s in data["signatures"]]
            out.append(Verdict("Mail::DKIM", sigs, json.dumps(data)))
        return out

    def sign(self, msg: bytes, key: Key, canon: str, headers: str | None = None) -> bytes:
        cmd: list[str | Path] = ["perl", PERL_HELPER, "sign", "--key", key.pem, "--domain", DOMAIN,
                                 "--selector", key.selector, "--algorithm", key.algorithm,
                                 "--method", canon]
        if headers:
            cmd += ["--headers", headers]
        cp = run(cmd, input=msg)
        if cp.returncode != 0:
            raise AssertionError(f"Mail::DKIM did not sign: {cp.stderr.decode('utf-8', 'replace')}")
        nl = line_ending(msg)
        return re.sub(rb"\r?\n", nl, cp.stdout.rstrip(b"\r\n")) + nl + msg


def find_mail_dkim(it_dir: Path, dns_server: DnsServer) -> MailDKIM:
    if shutil.which("perl") is None:
        raise Unavailable(f"perl is not installed: {APT_HINT['perl']}")
    cp = run(["perl", "-MMail::DKIM", "-MNet::DNS", "-MJSON::PP", "-e",
              "print $Mail::DKIM::VERSION, ' ', "
              "(eval { require Mail::DKIM::Algorithm::ed25519_sha256; 1 } ? 1 : 0)"])
    if cp.returncode != 0:
        raise Unavailable(f"Mail::DKIM is not installed ({cp.stderr.decode()[:200].strip()}): "
                    f"{APT_HINT['perl']}")
    version, ed = cp.stdout.decode().split()
    wd = it_dir / "mail-dkim"
    wd.mkdir(mode=0o700)
    return MailDKIM(dns_server, wd, version, ed == "1")


# --------------------------------------------------------------------------
# dkimpy


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@dataclass
class DkimPy:
    module: Any
    dns: DnsServer
    ed25519: bool

    def dnsfunc(self, name: bytes, timeout: float = 5) -> bytes | None:
        return self.dns.txt(name.decode("ascii"), timeout=timeout)

    def verify(self, msg: bytes) -> Verdict:
        dkim = self.module
        msg = to_crlf(msg)  # what SMTP would carry
        count = len(field_unfolded(msg, "DKIM-Signature"))
        sigs = []
        for idx in range(count):
            handler = _ListHandler()
            log = logging.getLogger(f"mailseal-it-dkimpy-{id(handler)}")
            log.propagate = False
            log.setLevel(logging.DEBUG)
            log.addHandler(handler)
            d = dkim.DKIM(msg, logger=log, minkey=1024)
            try:
                ok = d.verify(idx=idx, dnsfunc=self.dnsfunc)
                detail = "" if ok else (handler.lines[-1] if handler.lines else "")
            except dkim.DKIMException as e:
                ok, detail = False, f"{type(e).__name__}: {e}"
            finally:
                log.removeHandler(handler)
            f = d.signature_fields or {}
            sigs.append(SigResult("pass" if ok else "fail",
                                  f.get(b"d", b"").decode(), f.get(b"s", b"").decode(),
                                  f.get(b"a", b"").decode(), detail))
        return Verdict("dkimpy", sigs, "")

    def verify_many(self, msgs: Sequence[bytes]) -> list[Verdict]:
        return [self.verify(m) for m in msgs]

    def sign(self, msg: bytes, key: Key, canon: str, headers: Sequence[str] | None = None) -> bytes:
        head, body = canon.split("/")
        priv = key.seed_b64 if key.algorithm == ED25519 else key.pem.read_bytes()
        nl = line_ending(msg)
        sig = self.module.sign(
            to_crlf(msg), key.selector.encode(), DOMAIN.encode(), priv,
            canonicalize=(head.encode(), body.encode()),
            signature_algorithm=key.algorithm.encode(),
            include_headers=[h.encode() for h in headers] if headers else None,
            linesep=nl,
        )
        return sig + msg


def find_dkimpy(dns_server: DnsServer) -> DkimPy:
    try:
        import dkim
    except ImportError:
        raise Unavailable("dkimpy is not installed: pip install -e '.[test]' "
                          "(or pip install dkimpy)") from None
    try:
        import nacl.signing  # noqa: F401  (dkimpy's Ed25519 needs PyNaCl)
        ed = True
    except ImportError:
        ed = False
    return DkimPy(dkim, dns_server, ed)


# --------------------------------------------------------------------------
# mailseal (the command line only)


@dataclass
class MailsealResult:
    cp: subprocess.CompletedProcess[bytes]

    @property
    def rc(self) -> int:
        return self.cp.returncode

    @property
    def stdout(self) -> bytes:
        return self.cp.stdout

    @property
    def stderr(self) -> str:
        return self.cp.stderr.decode("utf-8", "replace")

    def json_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.cp.stdout.decode("utf-8").splitlines():
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise AssertionError(f"mailseal verify --json printed a line that is not "
                                         f"JSON ({e}): {line!r}\nstderr: {self.stderr}") from None
        return out

    def describe(self) -> str:
        return (f"$ {' '.join(map(str, self.cp.args))}\nexit {self.rc}\n"
                f"stdout: {self.cp.stdout[:3000]!r}\nstderr: {self.stderr[-3000:]}")


class Mailseal:
    def __init__(self, dns: DnsServer | None) -> None:
        self.dns = dns
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"]
                                              if env.get("PYTHONPATH") else "")
        env.pop("PYTHONSTARTUP", None)
        self.env = env

    def __call__(self, *args: str | os.PathLike[str], input: bytes | None = None,
                 timeout: float = TOOL_TIMEOUT) -> MailsealResult:
        cmd = [sys.executable, "-m", "mailseal", *map(str, args)]
        return MailsealResult(run(cmd, input=input, timeout=timeout, env=self.env, cwd=REPO_ROOT))

    def sign(self, msg_file: Path, keys: Sequence[Key], *, canon: str | None = None,
             algorithm: bool = True, extra: Sequence[str] = ()) -> MailsealResult:
        args: list[str | os.PathLike[str]] = ["sign", "-d", DOMAIN]
        for k in keys:
            args += ["--key", k.pem, "-s", k.selector]
        if algorithm and len(keys) == 1:
            args += ["-a", keys[0].algorithm]
        if canon:
            args += ["-c", canon]
        args += list(extra)
        args.append(msg_file)
        return self(*args)

    def verify(self, files: Sequence[Path], *, zone: Path | None = None,
               extra: Sequence[str] = ()) -> MailsealResult:
        args: list[str | os.PathLike[str]] = ["verify", "--json"]
        if zone is not None:
            args += ["--zone", zone]
        else:
            assert self.dns is not None
            args += ["--dns-server", self.dns.spec, "--dns-timeout", "5"]
        return self(*args, *extra, *files)
