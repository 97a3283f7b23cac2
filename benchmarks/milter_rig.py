"""Machinery for bench_milter.py: milters on one key, CPU and memory of a process tree,
smtp-source -> private Postfix -> smtp-sink, and ``mailseal bench`` runs.

Built on tests/integration/postfix_harness.py (the private Postfix, the tutorial's
OpenDKIM files, processes stopped by PID) and interop_harness.py (nsd on loopback).
Every process started here is stopped by its PID; everything listens on loopback;
every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "integration"))

import interop_harness as ih  # noqa: E402
import postfix_harness as ph  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"
DKIMPY_MILTER = os.environ.get("DKIMPY_MILTER", "/opt/dkimpy-milter-venv/bin/dkimpy-milter")
DOMAIN = ph.DOMAIN
SELECTOR = ph.SELECTOR
SENDER = f"bench@{DOMAIN}"
RCPT = "receiver@example.net"
LABELS = {"opendkim": "OpenDKIM", "mailseal": "mailseal", "dkimpy": "dkimpy-milter"}


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


# --------------------------------------------------------------------------
# a process tree's CPU time and memory


def tree(pid: int) -> list[int]:
    return [pid, *ph.descendants(pid)]


def cpu_seconds(root: int) -> float:
    """utime+stime of ``root`` and every live descendant, plus the children ``root``
    has reaped (cutime+cstime), from /proc/PID/stat."""
    total = 0
    for pid in tree(root):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17
        total += int(fields[11]) + int(fields[12])
        if pid == root:
            total += int(fields[13]) + int(fields[14])
    return total / CLK_TCK


def reset_peak_rss(root: int) -> None:
    """Reset VmHWM of the tree (``5`` to /proc/PID/clear_refs, Linux 4.0+)."""
    for pid in tree(root):
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_rss_mib(root: int, workers_only: bool) -> float:
    """Largest VmHWM among the tree's processes (the workers only, if asked and any)."""
    pids = tree(root)
    if workers_only and len(pids) > 1:
        pids = pids[1:]
    return max((ph.kib(ph.proc_status(p).get("VmHWM", "")) for p in pids), default=0) / 1024


# --------------------------------------------------------------------------
# milters


@dataclass
class DkimpyMilter(ph.Milter):
    """dkimpy-milter with the same tables and key (its own venv; DNSOverride for keys:
    it has no Nameservers option and resolves through the system resolver)."""

    record: str = ""

    def write_files(self) -> None:
        super().write_files()
        d = self.dir
        (d / "opendkim.conf").write_text(
            "Syslog\tyes\nUMask\t002\n"
            f"Canonicalization\t{self.canon}\nMode\tsv\nPidFile\t{d}/dkimpy.pid\n"
            f"UserID\topendkim:opendkim\nSocket\tinet:{self.port}@{self.host}\n"
            f"InternalHosts\trefile:{d}/TrustedHosts\nKeyTable\trefile:{d}/KeyTable\n"
            f"SigningTable\trefile:{d}/SigningTable\nDNSOverride\t{self.record}\n"
        )

    def command(self) -> list[str]:
        if not os.path.exists(DKIMPY_MILTER):
            raise ph.Unavailable(
                f"dkimpy-milter is not installed at {DKIMPY_MILTER} (python3 -m venv "
                "/opt/dkimpy-milter-venv && /opt/dkimpy-milter-venv/bin/pip install "
                "dkimpy-milter; needs libmilter-dev), or set DKIMPY_MILTER"
            )
        return [DKIMPY_MILTER, str(self.conf)]


def dkimpy_usable() -> str | None:
    """None when dkimpy-milter can run here, else why not."""
    if not os.path.exists(DKIMPY_MILTER):
        return f"not installed ({DKIMPY_MILTER})"
    try:
        pw = pwd.getpwnam("opendkim")
    except KeyError:
        return "no opendkim user to run it as"
    python = Path(DKIMPY_MILTER).parent / "python3"
    real = Path(os.path.realpath(python))
    for parent in real.parents:  # the workers run as opendkim: its stdlib must be readable
        st = parent.stat()
        if st.st_uid != pw.pw_uid and not st.st_mode & 0o005:
            return f"{real} is under {parent}, which the opendkim user cannot read"
    return None


@dataclass
class Rig:
    """The shared pieces: a private dir, the tutorial key, nsd serving its record."""

    base: Path
    key: ih.Key
    dns: ih.DnsServer
    record: str
    milters: list[ph.Milter] = field(default_factory=list)

    def milter(
        self, impl: str, name: str, *, verify: bool = False, extra: Sequence[str] = ()
    ) -> ph.Milter:
        """Start one milter with the tutorial's files (``verify``: TrustedHosts without
        this host, so every message from Postfix here is verified, not signed)."""
        kw: dict[str, Any] = {"trusted_hosts": ph.EXTERNAL_TRUSTED_HOSTS} if verify else {}
        directory = self.base / name
        m: ph.Milter
        if impl == "dkimpy":
            m = DkimpyMilter(
                impl,
                name,
                directory,
                self.key,
                self.dns.addr,
                record=self.record,
                host="127.0.0.1",
                **kw,
            )
        else:
            m = ph.Milter(
                impl, name, directory, self.key, self.dns.addr, extra=extra, host="127.0.0.1", **kw
            )
        self.milters.append(m)
        m.start(timeout=30)
        return m

    def stop(self) -> None:
        ph.stop_milters(self.milters)


def key_record(key: ih.Key) -> str:
    """The TXT record text of the tutorial key (opendkim-genkey's .txt holds a zone line)."""
    if not key.verbatim:
        return key.record
    import re

    return "".join(re.findall(r'"([^"]*)"', key.record))


@contextlib.contextmanager
def rig() -> Iterator[Rig]:
    base = ph.safe_base("mailseal-bench-milter-")
    it_dir = base / "it"
    it_dir.mkdir(mode=0o700)
    key = ph.tutorial_key(it_dir)
    zone = ih.write_zone(it_dir, {SELECTOR: key})
    cm = ih.run_nsd(it_dir, zone)
    dns = cm.__enter__()
    r = Rig(base, key, dns, key_record(key))
    try:
        yield r
    finally:
        try:
            r.stop()
        finally:
            cm.__exit__(None, None, None)
            shutil.rmtree(base, ignore_errors=True)


def spec(m: ph.Milter) -> str:
    """The milter's socket in ``mailseal bench`` syntax."""
    return f"inet:{m.port}@127.0.0.1"


# --------------------------------------------------------------------------
# mailseal bench, with the milter's CPU time around it


@dataclass
class MilterRun:
    summary: dict[str, Any]
    cpu_ms_per_msg: float

    @property
    def rate(self) -> float:
        return float(self.summary["messages_per_second"])

    @property
    def p99(self) -> float:
        return float(self.summary["latency_ms"]["p99"])

    @property
    def errors(self) -> int:
        return int(self.summary["errors"])


def bench_run(
    m: ph.Milter,
    *,
    mode: str,
    size: str,
    messages: int,
    concurrency: int,
    protocol: int,
    key_pem: Path,
    timeout: float = 300,
) -> MilterRun:
    """One ``mailseal bench --json`` run (a separate process, so its CPU is not the
    milter's); CPU ms per message of the milter's process tree over the run."""
    assert m.proc is not None
    cmd = [
        sys.executable,
        "-m",
        "mailseal",
        "bench",
        spec(m),
        "--messages",
        str(messages),
        "--concurrency",
        str(concurrency),
        "--size",
        size,
        "--mode",
        mode,
        "--protocol",
        str(protocol),
        "--key",
        str(key_pem),
        "-d",
        DOMAIN,
        "-s",
        SELECTOR,
        "--json",
    ]
    before = cpu_seconds(m.proc.pid)
    cp = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=ih.Mailseal(None).env
    )
    after = cpu_seconds(m.proc.pid)
    try:
        summary = json.loads(cp.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(
            f"mailseal bench failed ({cp.returncode}): {cp.stderr[-2000:]}\n{m.log(2000)}"
        ) from None
    sent = max(int(summary["sent"]), 1)
    return MilterRun(summary, (after - before) * 1000 / sent)


# --------------------------------------------------------------------------
# end to end: smtp-source -> Postfix (milter) -> smtp-sink


class Sink:
    """``smtp-sink`` on a free port, dumping each message to a file on tmpfs."""

    def __init__(self, base: Path) -> None:
        self.dir = base / "sink"
        self.dir.mkdir(mode=0o755, parents=True)
        pw = pwd.getpwnam("postfix")
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.port = ph.free_port()
        self.log = base / "sink.log"
        self.proc = subprocess.Popen(
            [SMTP_SINK, "-u", "postfix", "-d", f"{self.dir}/m.", f"127.0.0.1:{self.port}", "512"],
            stdin=subprocess.DEVNULL,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if not ph.wait_port("127.0.0.1", self.port, 10, lambda: self.proc.poll() is None):
            self.stop()
            raise RuntimeError(f"smtp-sink did not start: {self.log.read_text()[-1000:]}")

    def files(self) -> list[Path]:
        return [Path(e.path) for e in os.scandir(self.dir)]

    def count(self) -> int:
        return sum(1 for _ in os.scandir(self.dir))

    def clear(self) -> None:
        for p in self.files():
            with contextlib.suppress(OSError):
                p.unlink()

    def stop(self) -> None:
        ih.stop_process(self.proc, grace=3)


@dataclass
class E2ERun:
    delivered: int
    seconds: float  # smtp-source start to the last message in smtp-sink
    accept_seconds: float  # smtp-source start to its exit (all accepted by Postfix)
    cpu_ms_per_msg: float | None
    problems: list[str]

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else 0.0


def wait_queue_empty(pf: ph.PostfixInstance, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        incoming = pf.queue / "incoming"
        active = pf.queue / "active"
        deferred = pf.queue / "deferred"
        busy = any(
            any(True for _ in d.rglob("*") if _.is_file())
            for d in (incoming, active, deferred)
            if d.exists()
        )
        if not busy:
            return True
        time.sleep(0.1)
    return False


class Deliveries:
    """Counts deliveries to smtp-sink in Postfix's maillog (``status=sent``), from now on.

    smtp-sink creates its dump file when a transaction starts, so counting files would
    count a 50 MB message while it is still arriving; the smtp client logs ``sent`` once
    smtp-sink has answered the end of data.
    """

    def __init__(self, pf: ph.PostfixInstance) -> None:
        self.file = pf.maillog.open("rb")
        self.file.seek(0, os.SEEK_END)
        self.partial = b""
        self.sent = 0
        self.failed: list[str] = []

    def poll(self) -> int:
        data = self.partial + self.file.read()
        end = data.rfind(b"\n") + 1
        self.partial = data[end:]
        for line in data[:end].splitlines():
            if b" status=sent " in line:
                self.sent += 1
            elif b" status=" in line and len(self.failed) < 5:
                self.failed.append(line.decode("utf-8", "replace")[-300:])
        return self.sent

    def close(self) -> None:
        self.file.close()


def e2e_run(
    pf: ph.PostfixInstance,
    listener: str,
    sink: Sink,
    message_file: Path,
    *,
    messages: int,
    sessions: int,
    milter: ph.Milter | None,
    timeout: float = 300,
) -> E2ERun:
    """Send ``messages`` with smtp-source (``sessions`` in parallel) and wait until
    Postfix has delivered them all to smtp-sink; the milter's CPU time over the same
    window."""
    sink.clear()
    log = Deliveries(pf)
    before = cpu_seconds(milter.proc.pid) if milter and milter.proc else 0.0
    cmd = [
        SMTP_SOURCE,
        "-s",
        str(sessions),
        "-m",
        str(messages),
        "-F",
        str(message_file),
        "-f",
        SENDER,
        "-t",
        RCPT,
        "-M",
        "client.example.com",
        f"127.0.0.1:{pf.port(listener)}",
    ]
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    problems: list[str] = []
    deadline = start + timeout
    accept = None
    got = 0
    try:
        while time.monotonic() < deadline:
            if accept is None and proc.poll() is not None:
                accept = time.monotonic() - start
                if proc.returncode != 0:
                    out = proc.stdout.read().decode("utf-8", "replace") if proc.stdout else ""
                    problems.append(f"smtp-source exit {proc.returncode}: {out[-500:]}")
                    break
            got = log.poll()
            if got >= messages or log.failed:
                break
            time.sleep(0.01)
        elapsed = time.monotonic() - start
        problems += log.failed
    finally:
        log.close()
    try:  # everything delivered: smtp-source may still be saying QUIT
        proc.wait(max(10.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        problems.append(f"smtp-source still running after {timeout}s")
    if accept is None:
        accept = time.monotonic() - start
        if proc.returncode != 0:
            out = proc.stdout.read().decode("utf-8", "replace") if proc.stdout else ""
            problems.append(f"smtp-source exit {proc.returncode}: {out[-500:]}")
    if got < messages:
        problems.append(f"{got} of {messages} delivered within {timeout}s")
    after = cpu_seconds(milter.proc.pid) if milter and milter.proc else 0.0
    cpu = (after - before) * 1000 / max(got, 1) if milter else None
    return E2ERun(got, elapsed, accept, cpu, problems)


def write_lf(path: Path, raw: bytes) -> Path:
    """smtp-source -F sends each line with CRLF itself: the file has LF line ends."""
    path.write_bytes(raw.replace(b"\r\n", b"\n"))
    return path
