"""The milter daemon as a process: start, sign over a real socket, reload, survive bad input, stop.

Each test starts ``python -m mailseal milter -f`` on a free loopback port (or a
unix socket) with a private config, talks to it with the MTA-side client, and
stops it by PID. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailseal.dkim.keys import KeyType, generate_key, private_pem
from mailseal.milter import codec
from mailseal.milter.client import MilterClient

HEADERS = [(b"From", b" Alice <alice@example.com>"), (b"Subject", b" hello")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Milter:
    def __init__(self, root: Path, extra: str = "", workers: int | None = 2) -> None:
        self.root = root
        self.port = free_port()
        self.spec = f"inet:{self.port}@127.0.0.1"
        self.conf = root / "opendkim.conf"
        self.log = root / "milter.log"
        self.workers = workers
        self.write_config(extra)
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self, extra: str = "", selector: str = "mail") -> None:
        self.conf.write_text(
            f"Socket {self.spec}\nDomain example.com\nSelector {selector}\n"
            f"KeyFile {self.root}/key.private\nMode sv\nSyslog no\n"
            f"PidFile {self.root}/milter.pid\n" + extra
        )

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mailseal",
                "milter",
                "-f",
                "-x",
                str(self.conf),
                *(["--workers", str(self.workers)] if self.workers else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("wb"),
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("milter did not start: " + self.log.read_text())

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.proc.pid)],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        return [int(p) for p in out.split()]


@pytest.fixture
def milter(tmp_path: Path) -> Iterator[Milter]:
    tmp_path.chmod(0o700)
    key = tmp_path / "key.private"
    key.write_bytes(private_pem(generate_key(KeyType.ED25519)))
    key.chmod(0o600)
    m = Milter(tmp_path)
    yield m
    if m.proc is not None and m.proc.poll() is None:
        m.stop()


async def sign_once(spec: str, version: int = 6) -> codec.InsertHeader:
    c = MilterClient(timeout=10)
    await c.connect(spec)
    await c.negotiate(version=version)
    r = await c.send_message(headers=HEADERS, body=b"hello\r\n")
    await c.quit()
    assert isinstance(r.reply, codec.Continue), r
    [field] = r.inserted_headers
    return field


def test_signs_over_inet_socket_both_protocols(milter: Milter) -> None:
    milter.start()
    for version in (2, 6):
        field = asyncio.run(sign_once(milter.spec, version))
        assert field.name == b"DKIM-Signature"
        assert b"d=example.com" in field.value and b"s=mail" in field.value
    assert (milter.root / "milter.pid").read_text().strip() == str(milter.proc.pid)
    assert milter.stop() == 0
    assert not (milter.root / "milter.pid").exists()


def test_unix_socket_with_umask(milter: Milter) -> None:
    path = milter.root / "milter.sock"
    milter.spec = f"local:{path}"
    milter.write_config("UMask 007\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailseal", "milter", "-f", "-x", str(milter.conf)],
        stderr=milter.log.open("wb"),
    )
    milter.proc = proc
    deadline = time.monotonic() + 20
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert path.exists(), milter.log.read_text()
    assert oct(path.stat().st_mode & 0o777) == oct(0o770)
    assert asyncio.run(sign_once(f"unix:{path}")).name == b"DKIM-Signature"
    assert milter.stop() == 0
    assert not path.exists()


def test_reload_picks_up_new_selector_and_survives_bad_config(milter: Milter) -> None:
    milter.start()
    assert b"s=mail" in asyncio.run(sign_once(milter.spec)).value
    milter.write_config(selector="fresh")
    milter.signal(signal.SIGUSR1)
    deadline = time.monotonic() + 20
    while b"s=fresh" not in asyncio.run(sign_once(milter.spec)).value:
        assert time.monotonic() < deadline, milter.log.read_text()
        time.sleep(0.2)
    milter.conf.write_text(milter.conf.read_text() + "Canonicalisation relaxed\n")
    milter.signal(signal.SIGHUP)
    time.sleep(1.0)
    assert b"s=fresh" in asyncio.run(sign_once(milter.spec)).value
    log = milter.log.read_text()
    assert "reload failed, still serving the old configuration" in log
    assert "unknown option 'Canonicalisation' (did you mean 'Canonicalization'?)" in log
    assert milter.stop() == 0


def test_garbage_and_vanishing_clients_do_not_hurt_the_daemon(milter: Milter) -> None:
    milter.start()
    junk = [
        b"\x00\x00\x00\x00",  # zero length
        b"\xff\xff\xff\xffX",  # absurd length
        os.urandom(4096),
        codec.encode_command(
            codec.OptNeg(6, codec.ActionFlag(0x1FF), codec.ProtocolFlag(0x1FFFFF))
        )[:7],
    ]
    for data in junk:
        with socket.create_connection(("127.0.0.1", milter.port), timeout=5) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(5)
            try:
                while s.recv(4096):
                    pass
            except OSError:
                pass

    async def vanish_mid_message() -> None:
        c = MilterClient(timeout=10)
        await c.connect(milter.spec)
        await c.negotiate(version=6)
        assert c._writer is not None
        c._writer.write(codec.encode_command(codec.MailFrom(("<a@example.com>",))))
        c._writer.write(codec.encode_command(codec.Header(b"From", b" a@example.com")))
        c._writer.write(codec.encode_command(codec.Body(b"x" * 1000)))
        await c._writer.drain()
        c._writer.close()

    asyncio.run(vanish_mid_message())
    assert asyncio.run(sign_once(milter.spec)).name == b"DKIM-Signature"
    assert milter.proc.poll() is None


def test_killed_worker_is_restarted_with_autorestart(milter: Milter) -> None:
    milter.write_config("AutoRestart yes\nAutoRestartRate 10/1h\n")
    milter.start()
    before = milter.worker_pids()
    assert len(before) == 2
    os.kill(before[0], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while True:
        now = milter.worker_pids()
        if len(now) == 2 and before[0] not in now:
            break
        assert time.monotonic() < deadline, milter.log.read_text()
        time.sleep(0.2)
    assert asyncio.run(sign_once(milter.spec)).name == b"DKIM-Signature"
    assert "ended unexpectedly (signal 9)" in milter.log.read_text()


def test_without_autorestart_a_dead_worker_stops_the_milter(milter: Milter) -> None:
    milter.start()
    os.kill(milter.worker_pids()[0], signal.SIGKILL)
    assert milter.proc is not None
    assert milter.proc.wait(timeout=30) == 0
    assert "AutoRestart is off: stopping" in milter.log.read_text()


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        (
            "Canonicalisation relaxed\n",
            78,
            ":1: unknown option 'Canonicalisation' (did you mean 'Canonicalization'?)",
        ),
        ("Socket inet:12145@localhost\nMode sv\n", 0, "configuration OK"),
    ],
)
def test_check_only(tmp_path: Path, text: str, code: int, message: str) -> None:
    conf = tmp_path / "opendkim.conf"
    conf.write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "mailseal", "milter", "-n", "-x", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == code
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_version_flag() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mailseal", "milter", "-V"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "mailseal milter" in proc.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_workers_run_as_userid(milter: Milter) -> None:
    milter.write_config("UserID nobody\n")
    milter.start()
    for pid in milter.worker_pids():
        status = Path(f"/proc/{pid}/status").read_text()
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        assert uid_line.split()[1:] == [str(65534)] * 4, uid_line
    # Keys were read by the root parent; the workers sign without file access.
    assert asyncio.run(sign_once(milter.spec)).name == b"DKIM-Signature"


def test_sigterm_lets_open_connections_finish_their_messages(milter: Milter) -> None:
    milter.start()

    async def interrupted_message() -> codec.InsertHeader:
        c = MilterClient(timeout=20)
        await c.connect(milter.spec)
        await c.negotiate(version=6)
        assert c._writer is not None
        # Start the message by hand, stop the milter, then finish it.
        c._writer.write(codec.encode_command(codec.MailFrom(("<alice@example.com>",))))
        for name, value in HEADERS:
            c._writer.write(codec.encode_command(codec.Header(name, value)))
        await c._writer.drain()
        milter.signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        result = await c.send_message(headers=HEADERS, body=b"late body\r\n")
        await c.quit()
        [field] = result.inserted_headers
        return field

    assert asyncio.run(interrupted_message()).name == b"DKIM-Signature"
    assert milter.stop() == 0


@pytest.mark.parametrize(("cpus", "want"), [(1, 1), (2, 1), (3, 1), (4, 2), (16, 8)])
def test_default_workers_leave_half_the_cpus_to_the_mta(cpus: int, want: int) -> None:
    from mailseal.milter.server import default_workers

    assert default_workers(cpus) == want


def test_default_workers_follow_the_cpus_this_process_may_use(milter: Milter) -> None:
    from mailseal.milter.server import default_workers

    allowed = len(os.sched_getaffinity(0))
    assert default_workers() == max(1, allowed // 2)
    milter.workers = None  # neither --workers nor MailsealWorkers
    milter.start()
    deadline = time.monotonic() + 10
    while len(milter.worker_pids()) < default_workers() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)  # none beyond that
    assert len(milter.worker_pids()) == default_workers()
    assert f"ready, {default_workers()} worker(s)" in milter.log.read_text()
