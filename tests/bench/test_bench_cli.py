"""``mailseal bench`` against a real ``mailseal milter``: both modes, protocols 2 and 6.

A milter process is started on a free loopback port (and one on a unix socket),
with a DNS server on loopback holding the key record for verify mode, and stopped
by its PID. The assertions are about the JSON shape and zero errors; nothing is timed.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailseal.dkim.keys import KeyType, generate_key, private_pem
from tests.support.dnsserver import DnsTestServer

TIMEOUT = 120  # seconds for any one bench run (they take about a second)
SUMMARY_KEYS = {
    "socket", "mode", "size", "protocol", "negotiated", "messages", "concurrency", "sent",
    "ok", "errors", "error_kinds", "checked", "seconds", "messages_per_second",
    "latency_ms", "mean_message_bytes", "client_cpu_ms", "milter_flags",
}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def txt(record: str) -> str:
    return " ".join(f'"{record[i : i + 250]}"' for i in range(0, len(record), 250))


@dataclass
class Rig:
    root: Path
    key: Path
    spec: str
    unix_spec: str


def _start(conf: Path, log: Path, ready: Callable[[], bool]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailseal", "milter", "-f", "-x", str(conf), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        if ready():
            return proc
        time.sleep(0.1)
    proc.kill()
    proc.wait(10)
    raise AssertionError("milter did not start: " + log.read_text())


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    root = tmp_path_factory.mktemp("bench")
    root.chmod(0o700)
    signing = generate_key(KeyType.RSA, 2048)
    key = root / "mail.private"
    key.write_bytes(private_pem(signing))
    key.chmod(0o600)
    zone = (
        "$TTL 300\n@ IN SOA ns hostmaster 1 3600 600 86400 60\n@ IN NS ns\n"
        f"mail._domainkey IN TXT {txt(signing.public_record())}\n"
    )
    with DnsTestServer({"example.com": zone}, max_lifetime=600) as dns:
        port = free_port()
        path = root / "milter.sock"
        procs = []
        try:
            for name, sock, ready in (
                ("inet", f"inet:{port}@127.0.0.1", lambda: _listening(port)),
                ("unix", f"unix:{path}", path.exists),
            ):
                conf = root / f"{name}.conf"
                conf.write_text(
                    f"Socket {sock}\nDomain example.com\nSelector mail\nKeyFile {key}\n"
                    "Mode sv\nSyslog no\nCanonicalization relaxed/simple\n"
                    f"Nameservers {dns.spec}\nPidFile {root}/{name}.pid\n"
                )
                procs.append(_start(conf, root / f"{name}.log", ready))
            yield Rig(root, key, f"inet:{port}@127.0.0.1", f"unix:{path}")
        finally:
            for p in procs:
                _stop(p)


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailseal", "bench", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


@pytest.mark.parametrize("protocol", ["2", "6"])
@pytest.mark.parametrize("mode", ["sign", "verify"])
def test_bench_against_mailseal(rig: Rig, mode: str, protocol: str) -> None:
    cp = bench(
        rig.spec, "--messages", "50", "--concurrency", "4", "--mode", mode,
        "--protocol", protocol, "--key", str(rig.key), "-d", "example.com", "-s", "mail",
        "--json",
    )  # fmt: skip
    assert cp.returncode == 0, cp.stdout + cp.stderr
    out = json.loads(cp.stdout)
    assert set(out) == SUMMARY_KEYS
    assert out["mode"] == mode and out["size"] == "2k"
    assert out["protocol"] == out["negotiated"] == int(protocol)
    assert (out["messages"], out["sent"], out["ok"], out["errors"]) == (50, 50, 50, 0)
    assert out["error_kinds"] == {} and out["checked"] is True
    assert out["concurrency"] == 4
    assert out["messages_per_second"] > 0 and out["seconds"] > 0
    lat = out["latency_ms"]
    assert set(lat) == {"p50", "p95", "p99", "max", "mean"}
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert 1500 < out["mean_message_bytes"] < 2600
    assert out["milter_flags"]["version"] == int(protocol)


def test_unix_socket_and_mix(rig: Rig) -> None:
    cp = bench(
        rig.unix_spec, "--messages", "40", "--concurrency", "2", "--size", "mix",
        "--key", str(rig.key), "-d", "example.com", "-s", "mail", "--json",
    )  # fmt: skip
    assert cp.returncode == 0, cp.stdout + cp.stderr
    out = json.loads(cp.stdout)
    assert (out["ok"], out["errors"], out["size"]) == (40, 0, "mix")
    assert out["mean_message_bytes"] > 10_000  # two 200 KB messages in 40


def test_table_output(rig: Rig) -> None:
    cp = bench(rig.spec, "--messages", "10", "--concurrency", "2")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    for label in ("messages/s", "latency ms", "p99", "errors", "NOT checked"):
        assert label in cp.stdout


def test_wrong_key_counts_nothing(rig: Rig) -> None:
    other = rig.root / "other.private"
    other.write_bytes(private_pem(generate_key(KeyType.ED25519)))
    cp = bench(
        rig.spec, "--messages", "10", "--concurrency", "2", "--key", str(other),
        "-d", "example.com", "-s", "mail", "--json",
    )  # fmt: skip
    assert cp.returncode == 1, cp.stdout + cp.stderr
    out = json.loads(cp.stdout)
    assert (out["ok"], out["errors"], out["messages_per_second"]) == (0, 10, 0.0)
    assert sum(out["error_kinds"].values()) == 10


def test_no_milter_there() -> None:
    cp = bench(f"inet:{free_port()}@127.0.0.1", "--messages", "5")
    assert cp.returncode == 69
    assert "cannot open a milter connection" in cp.stderr


def test_usage_errors() -> None:
    assert bench("inet:25@127.0.0.1", "--mode", "verify").returncode == 2
    assert bench("nonsense:1", "--messages", "1").returncode == 2
