"""Harness (no fixtures: see conftest.py) for the real-Postfix milter tests.

Pieces, all on loopback, every process started here and stopped by its PID,
every wait bounded:

- ``Catcher``: an aiosmtpd server in a thread that keeps every message Postfix
  delivers to it (large ones spooled to files), with ``wait_for(n, timeout)``
  (``mailseal.demo.catcher``, with the tests' size limits).
- ``PostfixInstance``: a private Postfix (``postfix -c DIR``) with its own
  main.cf/master.cf, queue and data directories under a temp dir (tmpfs when
  /dev/shm is one), ``maillog_file`` inside it, smtpd on free 127.0.0.1 ports
  (one listener per milter set-up, ``-o`` overrides in master.cf), relaying
  everything with ``smtp`` to the catcher. Nothing under /etc/postfix is read
  or changed: as root, ``postfix -c DIR`` and ``sendmail -C DIR`` need no
  ``alternate_config_directories`` entry (Postfix trusts the super-user).
  The implementation is ``mailseal.demo.postfix`` (``mailseal demo`` runs it
  too); the subclass here turns its errors into skips and assertion failures.
- ``Milter``: the real OpenDKIM (``opendkim -f -x CONF``) or ``python -m mailseal
  milter -f -x CONF`` with the tutorial's files (seed/000_59e536441a1971f5.txt):
  opendkim.conf, TrustedHosts, KeyTable, SigningTable, keys/example.com/mail.private,
  with yourdomain.com replaced and paths/port/nameserver adapted.
- ``MilterTap``: a proxy between Postfix and a milter that decodes every milter
  packet both ways (negotiation flags, macros, header bytes, modifications), so
  tests can state what Postfix actually sends.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# The private Postfix and the catcher are mailseal's own (``mailseal demo`` runs
# them too); the names below are re-exported for the tests and benchmarks.
from mailseal.demo import postfix as _pf
from mailseal.demo.catcher import Catcher as _Catcher
from mailseal.demo.catcher import Caught as Caught
from mailseal.demo.postfix import APT_POSTFIX as APT_POSTFIX
from mailseal.demo.postfix import MASTER_CF_SERVICES as MASTER_CF_SERVICES
from mailseal.demo.postfix import MAX_MESSAGE as MAX_MESSAGE
from mailseal.demo.postfix import POSTCONF_BIN as POSTCONF_BIN
from mailseal.demo.postfix import POSTFIX_BIN as POSTFIX_BIN
from mailseal.demo.postfix import SENDMAIL_BIN as SENDMAIL_BIN
from mailseal.demo.postfix import Listener as Listener
from mailseal.demo.postfix import descendants as descendants
from mailseal.demo.postfix import free_port as free_port
from mailseal.demo.postfix import kill_pids as kill_pids
from mailseal.demo.postfix import pid_alive as pid_alive
from mailseal.demo.postfix import proc_status as proc_status
from mailseal.demo.postfix import run_tty as run_tty
from mailseal.demo.postfix import wait_port as wait_port

try:
    from . import interop_harness as ih
except ImportError:
    import interop_harness as ih  # type: ignore[no-redef]

DOMAIN = ih.DOMAIN
SELECTOR = "mail"  # the tutorial's `opendkim-genkey -s mail`
CATCHER_LIMIT = 64 * 1024 * 1024  # aiosmtpd data_size_limit (its default is 32 MiB)
SPOOL_OVER = 1024 * 1024  # catcher keeps messages larger than this in files


class Unavailable(ih.Unavailable):
    pass


def kib(value: str) -> int:
    """'12345 kB' -> 12345."""
    return int(value.split()[0]) if value else 0


# Safety net for harness users that forget cleanup(): at interpreter exit,
# stop what this process started and remove the directories it made.
_LIVE: list[PostfixInstance | Milter] = []
_DIRS: list[Path] = []


@atexit.register
def _atexit_cleanup() -> None:
    for obj in reversed(_LIVE):
        with contextlib.suppress(Exception):
            obj.stop()
    for d in _DIRS:
        shutil.rmtree(d, ignore_errors=True)


def scratch_base(prefix: str) -> Path:
    """A fresh 0755 root-owned directory, on tmpfs (/dev/shm) when there is one."""
    d = _pf.tmpfs_dir(prefix)
    _DIRS.append(d)
    return d


def safe_base(prefix: str) -> Path:
    """A fresh 0755 directory with no group/world-writable parent (for OpenDKIM files)."""
    env = os.environ.get("MAILSEAL_IT_SAFE_DIR")
    for cand in ((env,) if env else ()) + ("/run", "/var/tmp", None):
        if cand is None:
            d = Path(tempfile.mkdtemp(prefix=prefix))
        elif os.path.isdir(cand) and os.access(cand, os.W_OK) \
                and ih._world_writable_ancestor(Path(cand)) is None:
            d = Path(tempfile.mkdtemp(prefix=prefix, dir=cand))
        else:
            continue
        d.chmod(0o755)
        _DIRS.append(d)
        return d
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------
# the catcher


# --------------------------------------------------------------------------
# milter protocol tap (a recording proxy)

SMFIP_FLAGS = {
    0x1: "NOCONNECT", 0x2: "NOHELO", 0x4: "NOMAIL", 0x8: "NORCPT", 0x10: "NOBODY",
    0x20: "NOHDRS", 0x40: "NOEOH", 0x80: "NR_HDR", 0x100: "NOUNKNOWN", 0x200: "NODATA",
    0x400: "SKIP", 0x800: "RCPT_REJ", 0x1000: "NR_CONN", 0x2000: "NR_HELO",
    0x4000: "NR_MAIL", 0x8000: "NR_RCPT", 0x10000: "NR_DATA", 0x20000: "NR_UNKN",
    0x40000: "NR_EOH", 0x80000: "NR_BODY", 0x100000: "HDR_LEADSPC", 0x200000: "MDS_256K",
    0x400000: "MDS_1M",
}
SMFIF_FLAGS = {
    0x1: "ADDHDRS", 0x2: "CHGBODY", 0x4: "ADDRCPT", 0x8: "DELRCPT", 0x10: "CHGHDRS",
    0x20: "QUARANTINE", 0x40: "CHGFROM", 0x80: "ADDRCPT_PAR", 0x100: "SETSYMLIST",
}


def flag_names(value: int, table: dict[int, str]) -> list[str]:
    names = [n for bit, n in table.items() if value & bit]
    rest = value & ~sum(table)
    return names + ([hex(rest)] if rest else [])


@dataclass
class Packet:
    conn: int
    to_milter: bool  # True: MTA -> milter
    cmd: str
    payload: bytes

    def fields(self) -> list[bytes]:
        return self.payload.split(b"\0")[:-1] if self.payload.endswith(b"\0") \
            else self.payload.split(b"\0")


class MilterTap:
    """Listens on a free port, forwards to the milter at (host, port), records packets."""

    def __init__(self, upstream: tuple[str, int], record_body: bool = False) -> None:
        self.upstream = upstream
        self.record_body = record_body
        self.packets: list[Packet] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self._stop = threading.Event()
        self._conns = 0
        self._threads: list[threading.Thread] = []
        self._open: list[socket.socket] = []
        self._accept = threading.Thread(target=self._accept_loop, daemon=True,
                                        name=f"milter-tap-{self.port}")

    def start(self) -> MilterTap:
        self._accept.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._accept.join(5)
        self._sock.close()
        for s in list(self._open):
            with contextlib.suppress(OSError):
                s.close()
        for t in self._threads:
            t.join(5)

    def clear(self) -> None:
        with self._lock:
            self.packets.clear()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                up = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            up.settimeout(None)
            client.settimeout(None)
            self._conns += 1
            n = self._conns
            self._open += [client, up]
            for src, dst, to_milter in ((client, up, True), (up, client, False)):
                t = threading.Thread(target=self._pump, args=(n, src, dst, to_milter), daemon=True)
                t.start()
                self._threads.append(t)

    def _pump(self, conn: int, src: socket.socket, dst: socket.socket, to_milter: bool) -> None:
        buf = b""
        try:
            while True:
                data = src.recv(262144)
                if not data:
                    break
                dst.sendall(data)
                buf += data
                while len(buf) >= 4:
                    (length,) = struct.unpack(">I", buf[:4])
                    if len(buf) < 4 + length:
                        break
                    cmd, payload = chr(buf[4]), buf[5:4 + length]
                    buf = buf[4 + length:]
                    if cmd == "B" and to_milter and not self.record_body:
                        payload = payload[:64]
                    with self._lock:
                        self.packets.append(Packet(conn, to_milter, cmd, payload))
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    # -- views ---------------------------------------------------------------

    def snapshot(self) -> list[Packet]:
        with self._lock:
            return list(self.packets)

    def negotiation(self) -> dict[str, object]:
        """What the MTA offered and what the milter asked for (first connection)."""
        out: dict[str, object] = {}
        for p in self.snapshot():
            if p.cmd == "O" and len(p.payload) >= 12:
                ver, act, proto = struct.unpack(">III", p.payload[:12])
                side = "mta" if p.to_milter else "milter"
                out[side] = {"version": ver, "actions": flag_names(act, SMFIF_FLAGS),
                             "protocol": flag_names(proto, SMFIP_FLAGS)}
                if not p.to_milter and len(p.payload) > 12:
                    out["milter_symlists"] = p.payload[12:]
            if "mta" in out and "milter" in out:
                break
        return out

    def macros(self) -> dict[str, dict[str, str]]:
        """Macros by the command they precede ('C' connect, 'E' end of message...)."""
        out: dict[str, dict[str, str]] = {}
        for p in self.snapshot():
            if p.cmd == "D" and p.to_milter and p.payload:
                parts = p.payload[1:].split(b"\0")
                d = out.setdefault(chr(p.payload[0]), {})
                for k, v in zip(parts[0::2], parts[1::2], strict=False):
                    d[k.decode("latin-1")] = v.decode("latin-1")
        return out

    def headers_seen(self) -> list[tuple[bytes, bytes]]:
        """(name, value) of every header packet the MTA sent, value bytes as sent."""
        out = []
        for p in self.snapshot():
            if p.cmd == "L" and p.to_milter:
                f = p.fields()
                out.append((f[0], f[1] if len(f) > 1 else b""))
        return out

    def messages_seen(self) -> list[list[tuple[bytes, bytes]]]:
        """Header packets grouped per message (each group ends at end-of-headers)."""
        out: list[list[tuple[bytes, bytes]]] = []
        cur: dict[int, list[tuple[bytes, bytes]]] = {}
        for p in self.snapshot():
            if not p.to_milter:
                continue
            if p.cmd == "L":
                f = p.fields()
                cur.setdefault(p.conn, []).append((f[0], f[1] if len(f) > 1 else b""))
            elif p.cmd == "N" and p.conn in cur:
                out.append(cur.pop(p.conn))
        return out

    def headers_of(self, needle: bytes) -> dict[str, bytes]:
        """The headers (name -> value as sent to the milter) of the message whose
        header block contains ``needle``."""
        for hdrs in self.messages_seen():
            if any(needle in v for _, v in hdrs):
                return {n.decode("latin-1"): v for n, v in hdrs}
        raise AssertionError(f"the tap saw no message with {needle!r}")

    def modifications(self) -> list[tuple[str, list[bytes]]]:
        """Header modifications the milter sent back: ('h'|'i'|'m', fields)."""
        out = []
        for p in self.snapshot():
            if not p.to_milter and p.cmd in "him":
                payload = p.payload
                if p.cmd in "im":
                    idx = struct.unpack(">I", payload[:4])[0]
                    out.append((p.cmd, [str(idx).encode(), *payload[4:].split(b"\0")[:-1]]))
                else:
                    out.append((p.cmd, payload.split(b"\0")[:-1]))
        return out

    def connects(self) -> list[dict[str, object]]:
        """Every connect packet: hostname, family ('4', '6', 'L', 'U'), port, address."""
        out: list[dict[str, object]] = []
        for p in self.snapshot():
            if p.cmd == "C" and p.to_milter:
                host, _, rest = p.payload.partition(b"\0")
                info: dict[str, object] = {"hostname": host.decode("latin-1")}
                if rest:
                    info["family"] = chr(rest[0])
                    if rest[:1] in (b"4", b"6") and len(rest) >= 3:
                        info["port"] = struct.unpack(">H", rest[1:3])[0]
                        info["address"] = rest[3:].rstrip(b"\0").decode("latin-1")
                out.append(info)
        return out

    def commands(self) -> list[str]:
        return [("> " if p.to_milter else "< ") + p.cmd for p in self.snapshot()]


# --------------------------------------------------------------------------
# the private Postfix instance


# --------------------------------------------------------------------------
# the catcher and the private Postfix instance (mailseal.demo), test-flavoured


class Catcher(_Catcher):
    """mailseal.demo.catcher.Catcher with the tests' limits (64 MB, spool over 1 MB)."""

    def __init__(self, spool: Path, data_size_limit: int = CATCHER_LIMIT) -> None:
        super().__init__(spool, data_size_limit, SPOOL_OVER)


class PostfixInstance(_pf.PostfixInstance):
    """mailseal.demo.postfix.PostfixInstance as the tests want it: a missing
    Postfix is ``Unavailable`` (a skip), a failure an AssertionError with the
    maillog, the directory removed at exit if a test forgot ``cleanup``."""

    def __init__(self, relay_port: int, main: dict[str, str] | None = None,
                 base: Path | None = None) -> None:
        reason = _pf.unavailable_reason()
        if reason is not None:
            raise Unavailable(reason)
        super().__init__(relay_port, main, base or scratch_base("mailseal-postfix-"))

    def start(self, timeout: float = 30) -> PostfixInstance:
        _LIVE.append(self)
        try:
            return super().start(timeout)
        except _pf.PostfixError as e:
            raise AssertionError(f"{e}\n{self.log()}") from None

    def reload(self, main: dict[str, str] | None = None) -> None:
        try:
            super().reload(main)
        except _pf.PostfixError as e:
            raise AssertionError(str(e)) from None

    def sendmail(self, msg: bytes, sender: str = f"alice@{DOMAIN}",
                 rcpts: Sequence[str] = ("bob@example.net",), *, use_t: bool = False,
                 timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        try:
            return super().sendmail(msg, sender, rcpts, use_t=use_t, timeout=timeout)
        except _pf.PostfixError as e:
            raise AssertionError(str(e)) from None



# --------------------------------------------------------------------------
# milters: OpenDKIM or mailseal with the tutorial's files


def tutorial_key(it_dir: Path) -> ih.Key:
    """The tutorial's key: ``opendkim-genkey -s mail -d example.com`` (its .txt goes
    into the zone verbatim), or, without opendkim-tools, the same with cryptography."""
    kdir = it_dir / "keys" / "tutorial"
    kdir.mkdir(mode=0o700, parents=True)
    tool = shutil.which("opendkim-genkey") or (
        "/usr/sbin/opendkim-genkey" if os.path.exists("/usr/sbin/opendkim-genkey") else None)
    if tool:
        cp = ih.run([tool, "-b", "2048", "-s", SELECTOR, "-d", DOMAIN, "-D", kdir])
        txt = kdir / f"{SELECTOR}.txt"
        if cp.returncode == 0 and txt.exists():
            return ih.Key(SELECTOR, ih.RSA, 2048, kdir / f"{SELECTOR}.private",
                          txt.read_text(), verbatim=True)
    import base64

    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import rsa

    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = kdir / f"{SELECTOR}.private"
    fd = os.open(pem, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(k.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption()))
    spki = k.public_key().public_bytes(ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo)
    return ih.Key(SELECTOR, ih.RSA, 2048, pem,
                  "v=DKIM1; h=sha256; k=rsa; p=" + base64.b64encode(spki).decode())


# The tutorial's lines, verbatim but for the paths, the port and the domain
# ({dir}, {port} filled in). Syslog stays "yes" as in the tutorial: where there
# is no /dev/log OpenDKIM's log is lost; the Postfix maillog still shows what
# the milter answered.
TUTORIAL_CONF = """\
# Log to syslog
Syslog\tyes
# Required to use local socket with MTAs that access the socket as a non-
# privileged user (e.g. Postfix)
UMask\t002

#The canonicalization methods used at message signing
Canonicalization\t{canon}

Mode\tsv
PidFile\t{dir}/opendkim.pid
SignatureAlgorithm\trsa-sha256

AutoRestart\tyes
AutoRestartRate\t10/1h

UserID\topendkim:opendkim
Socket\tinet:{port}@{host}

ExternalIgnoreList\trefile:{dir}/TrustedHosts
InternalHosts\trefile:{dir}/TrustedHosts
KeyTable\trefile:{dir}/KeyTable
SigningTable\trefile:{dir}/SigningTable
"""

TUTORIAL_TRUSTED_HOSTS = """\
127.0.0.1
localhost
192.168.0.1/24
*.example.com
"""

# For the verifying set-up: every client here is 127.0.0.1/localhost, so a
# list without them makes every message "external" (verified, not signed).
EXTERNAL_TRUSTED_HOSTS = """\
192.0.2.1
*.example.org
"""

IMPLEMENTATIONS = ("opendkim", "mailseal")


def milter_host() -> str:
    """``localhost`` as the tutorial writes it, when it means only 127.0.0.1 here."""
    try:
        addrs = {a[4][0] for a in socket.getaddrinfo("localhost", 25, 0, socket.SOCK_STREAM)}
    except OSError:
        return "127.0.0.1"
    return "localhost" if addrs == {"127.0.0.1"} else "127.0.0.1"


def mailseal_milter_available() -> tuple[bool, str]:
    cp = ih.run([sys.executable, "-m", "mailseal", "milter", "--help"], timeout=60,
                env=ih.Mailseal(None).env, cwd=ih.REPO_ROOT)
    out = (cp.stdout + cp.stderr).decode("utf-8", "replace")
    return cp.returncode == 0, out.strip()[-500:]


@dataclass
class Milter:
    """One milter process (OpenDKIM or mailseal) with its own tutorial-style files."""

    impl: str
    name: str
    dir: Path
    key: ih.Key
    dns_addr: str
    canon: str = "relaxed/simple"
    trusted_hosts: str = TUTORIAL_TRUSTED_HOSTS
    extra: Sequence[str] = ()
    port: int = 0
    host: str = field(default_factory=milter_host)
    proc: subprocess.Popen[bytes] | None = None
    logfile: Path | None = None
    stopped: bool = False

    @property
    def conf(self) -> Path:
        return self.dir / "opendkim.conf"

    @property
    def socket_spec(self) -> str:
        """What Postfix's smtpd_milters names (the tutorial's inet:localhost:PORT)."""
        return f"inet:{self.host}:{self.port}"

    def write_files(self) -> None:
        d = self.dir
        d.mkdir(mode=0o755, parents=True)
        self.port = self.port or free_port()
        conf = TUTORIAL_CONF.format(dir=d, port=self.port, host=self.host, canon=self.canon)
        # the harness's additions: loopback DNS, no TrustAnchorFile (DESIGN.md §3)
        conf += f"\n# test harness\nNameservers\t{self.dns_addr}\nDNSTimeout\t5\n"
        conf += "".join(line + "\n" for line in self.extra)
        (d / "opendkim.conf").write_text(conf)
        (d / "TrustedHosts").write_text(self.trusted_hosts)
        (d / "KeyTable").write_text(
            f"{SELECTOR}._domainkey.{DOMAIN}\t{DOMAIN}:{SELECTOR}:"
            f"{d}/keys/{DOMAIN}/{SELECTOR}.private\n")
        (d / "SigningTable").write_text(f"*@{DOMAIN} {SELECTOR}._domainkey.{DOMAIN}\n")
        kd = d / "keys" / DOMAIN
        kd.mkdir(parents=True)
        (d / "keys").chmod(0o755)
        shutil.copy(self.key.pem, kd / f"{SELECTOR}.private")
        (kd / f"{SELECTOR}.private").chmod(0o600)
        # `chown -R opendkim:opendkim /etc/opendkim/keys/yourdomain.com`
        try:
            ent = pwd.getpwnam("opendkim")
            for p in (kd, *kd.iterdir()):
                os.chown(p, ent.pw_uid, ent.pw_gid)
        except KeyError:
            pass
        kd.chmod(0o700)

    def command(self) -> list[str]:
        if self.impl == "opendkim":
            binary = shutil.which("opendkim") or "/usr/sbin/opendkim"
            if not os.path.exists(binary):
                raise Unavailable(f"OpenDKIM is not installed: {ih.APT_HINT['opendkim']}")
            return [binary, "-f", "-x", str(self.conf)]
        return [sys.executable, "-m", "mailseal", "milter", "-f", "-x", str(self.conf)]

    def start(self, timeout: float = 20) -> Milter:
        if not self.conf.exists():
            self.write_files()
        self.logfile = self.dir / "milter.log"
        env = ih.Mailseal(None).env
        _LIVE.append(self)
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=self.logfile.open("ab"), stderr=subprocess.STDOUT,
                                     env=env, cwd=ih.REPO_ROOT, start_new_session=True)
        if not wait_port("127.0.0.1", self.port, timeout, lambda: self.proc.poll() is None):
            self.stop()
            raise AssertionError(f"{self.impl} milter {self.name} did not listen on "
                                 f"127.0.0.1:{self.port} within {timeout}s "
                                 f"(exit {self.proc.poll()}):\n{self.log()}")
        return self

    def pids(self) -> list[int]:
        if self.proc is None or self.proc.poll() is not None:
            return []
        return [self.proc.pid, *descendants(self.proc.pid)]

    def memory(self) -> dict[int, dict[str, int]]:
        """VmHWM / VmRSS (KiB) of the milter process and every descendant."""
        out = {}
        for p in self.pids():
            st = proc_status(p)
            if st:
                out[p] = {"VmHWM": kib(st.get("VmHWM", "")), "VmRSS": kib(st.get("VmRSS", "")),
                          "name": st.get("Name", "?")}  # type: ignore[dict-item]
        return out

    def peak_rss_kib(self) -> int:
        return max((m["VmHWM"] for m in self.memory().values()), default=0)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self, tail: int = 6000) -> str:
        if self.logfile is None or not self.logfile.exists():
            return "(no milter output)"
        text = self.logfile.read_text(errors="replace")
        note = (" (OpenDKIM logs to syslog: `Syslog yes`, as in the tutorial)"
                if self.impl == "opendkim" else "")
        return f"--- {self.impl} milter {self.name} output{note} ---\n" + text[-tail:]

    def terminate(self) -> None:
        """SIGTERM without waiting (OpenDKIM's libmilter takes ~5 s to notice)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    def stop(self, grace: float = 8.0) -> None:
        if self.proc is None or self.stopped:
            return
        self.stopped = True
        family = self.pids()
        self.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=grace)
        ih.stop_process(self.proc, grace=2.0)
        kill_pids([p for p in family if pid_alive(p)], grace=2.0)


def stop_milters(milters: Sequence[Milter]) -> None:
    """Stop several milters at once (each waits for the others' grace period)."""
    for m in milters:
        m.terminate()
    for m in milters:
        m.stop()


# --------------------------------------------------------------------------
# messages


def crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def message(token: str, *, subject: str | None = None, extra_headers: str = "",
            body: str | None = None, sender: str = f"alice@{DOMAIN}",
            to: str = "bob@example.net") -> bytes:
    """A complete CRLF message (From/To/Date/Message-ID present, so Postfix adds
    none) carrying ``token`` in its Subject and Message-ID."""
    subj = subject if subject is not None else f" test {token}"
    if body is None:
        body = (f"Hello Bob,\n\nthis is message {token}.\n"
                " a line with a leading space\n\ttabbed line  \n"
                "trailing spaces   \n\n\n")
    return crlf(
        f"From: Alice <{sender}>\n"
        f"To: Bob <{to}>\n"
        f"Subject:{subj}\n"
        "Date: Wed, 25 Nov 2026 12:00:00 +0000\n"
        f"Message-ID: <{token}@{DOMAIN}>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        f"{extra_headers}"
        "\n" + body)


def big_body(size: int) -> bytes:
    """``size`` bytes of 76-character base64-like lines (CRLF)."""
    import hashlib

    line = b""
    lines = []
    total = 0
    i = 0
    while total < size:
        line = hashlib.sha512(str(i).encode()).hexdigest().encode()[:76] + b"\r\n"
        lines.append(line)
        total += len(line)
        i += 1
    return b"".join(lines)


ADDED_BY_PIPELINE = ("received", "dkim-signature", "authentication-results")


def header_fields(msg: bytes) -> list[bytes]:
    """Each header field of ``msg`` as raw bytes (folded lines kept), in order."""
    head, _ = ih.split_message(msg)
    fields: list[bytes] = []
    for line in re.split(rb"(?<=\n)", head):
        if not line or line in (b"\r\n", b"\n"):
            continue
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    return fields


def field_name(raw: bytes) -> str:
    return raw.split(b":", 1)[0].strip().decode("latin-1").lower()


def strip_added(msg: bytes, names: Sequence[str] = ADDED_BY_PIPELINE) -> bytes:
    """``msg`` without the header fields Postfix and the milter add."""
    _, body = ih.split_message(msg)
    kept = [f for f in header_fields(msg) if field_name(f) not in names]
    nl = ih.line_ending(msg)
    return b"".join(kept) + nl + body


# --------------------------------------------------------------------------
# one Postfix wired to one implementation's milters


@dataclass
class PostfixRig:
    """A private Postfix wired as the tutorial says, plus test listeners.

    main.cf: ``smtpd_milters = inet:localhost:PORT`` (the ``sign`` milter),
    ``non_smtpd_milters = $smtpd_milters``, ``milter_protocol = 2|6``,
    ``milter_default_action = tempfail`` (the tutorial says accept, which would
    hide a broken milter). Listeners: ``default`` (sign), ``simple`` (the
    simple/simple milter, through ``tap``), ``verify`` and ``dead``.
    """

    impl: str
    protocol: int
    milters: dict[str, Milter]
    catcher: Catcher
    pf: PostfixInstance
    tap: MilterTap

    @classmethod
    def build(cls, milters: dict[str, Milter], protocol: int, catcher: Catcher) -> PostfixRig:
        sign = milters["sign"]
        pf = PostfixInstance(catcher.port, {
            "smtpd_milters": sign.socket_spec,
            "non_smtpd_milters": "$smtpd_milters",
            "milter_protocol": str(protocol),
            "milter_default_action": "tempfail",
        })
        tap = MilterTap(("127.0.0.1", milters["simple"].port))
        pf.add_listener("simple", {"smtpd_milters": f"inet:127.0.0.1:{tap.port}"})
        pf.add_listener("verify", {"smtpd_milters": milters["verify"].socket_spec})
        pf.add_listener("dead", {"smtpd_milters": f"inet:127.0.0.1:{free_port()}"})
        return cls(sign.impl, protocol, milters, catcher, pf, tap)

    def start(self) -> PostfixRig:
        self.tap.start()
        self.pf.start()
        return self

    def stop(self) -> None:
        self.pf.cleanup()
        self.tap.stop()

    def describe(self) -> str:
        """Everything useful when a test fails: maillog, queue, milter output."""
        parts = [f"[{self.impl} milter, milter_protocol = {self.protocol}]", self.pf.describe()]
        for m in self.milters.values():
            alive = "running" if m.alive() else f"EXITED {m.proc.poll() if m.proc else '?'}"
            parts.append(f"{m.name} ({alive}): {m.log(2000)}")
        return "\n".join(parts)

    def deliver(self, token: str, n: int = 1, timeout: float = 30) -> list[Caught]:
        """Wait for ``n`` delivered messages carrying ``token``; on timeout fail with logs."""
        try:
            return self.catcher.wait_for(n, timeout, token.encode())
        except TimeoutError as e:
            raise AssertionError(f"{e}\n{self.describe()}") from None
