"""Key rotation as values (mailseal.keys.rotation) and ``mailseal rotate`` end to end on files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailseal.cli.main import cli
from mailseal.keys.rotation import (
    RotationError,
    RotationState,
    RotKey,
    activate,
    current_keys,
    default_selector,
    prepare,
    retire,
)

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
KT = (
    "mail._domainkey.example.com\texample.com:mail:/k/example.com/mail.private\n"
    "other._domainkey.example.org\texample.org:other:/k/example.org/other.private\n"
)
ST = "*@example.com mail._domainkey.example.com\n*@example.org other._domainkey.example.org\n"


def test_current_keys_from_the_tables() -> None:
    [key] = current_keys("example.com", KT, ST, Path("/k"))
    assert key == RotKey(
        "mail._domainkey.example.com", "mail", "/k/example.com/mail.private", "rsa"
    )
    with pytest.raises(RotationError, match="mailseal setup example.net"):
        current_keys("example.net", KT, ST, Path("/k"))
    with pytest.raises(RotationError, match="not in the KeyTable"):
        current_keys("example.com", "", ST, Path("/k"))


def test_the_three_steps() -> None:
    current = current_keys("example.com", KT, ST, Path("/k"))
    state = prepare(RotationState("example.com"), current, default_selector(NOW), NOW, 7, {})
    assert state.phase == "prepared"
    [new] = state.pending
    assert (new.selector, new.path) == ("202603", "/k/example.com/202603.private")
    assert new.replaces == "mail._domainkey.example.com"
    with pytest.raises(RotationError, match="already prepared"):
        prepare(state, current, "x", NOW, 7, {})
    state2 = RotationState.from_json(state.to_json(), "state")
    assert state2 == state
    later = NOW + timedelta(days=1)
    state, kt, st = activate(state, KT, ST, later)
    assert state.phase == "activated" and state.retiring == tuple(current)
    assert kt.endswith(
        "202603._domainkey.example.com\texample.com:202603:/k/example.com/202603.private\n"
    )
    assert st.splitlines() == [
        "*@example.com 202603._domainkey.example.com",
        "*@example.org other._domainkey.example.org",
    ]
    with pytest.raises(RotationError, match="grace period ends 2026-03-23T12:00:00"):
        retire(state, kt, st, later + timedelta(days=6))
    with pytest.raises(RotationError, match="not retired yet"):
        prepare(state, [], "y", later, 7, {})
    state, kt = retire(state, kt, st, later + timedelta(days=7))
    assert state.phase == "idle" and "mail._domainkey.example.com" not in kt
    assert "other._domainkey.example.org" in kt
    assert [h.split(" ", 1)[1] for h in state.history] == [
        "prepared 202603",
        "activated 202603",
        "retired mail",
    ]


def test_two_keys_rotate_together_and_signer_kept() -> None:
    kt = KT + "ed._domainkey.example.com\texample.com:ed:/k/example.com/ed.private:ed25519-sha256\n"
    st = (
        "*@example.com mail._domainkey.example.com:@example.com\n"
        "*@example.com ed._domainkey.example.com\n"
    )
    current = current_keys("example.com", kt, st, Path("/k"))
    state = prepare(RotationState("example.com"), current, "2027", NOW, 3, {})
    assert [k.selector for k in state.pending] == ["2027", "2027-ed25519"]
    assert state.pending[1].algorithm == "ed25519-sha256"
    state, kt2, st2 = activate(state, kt, st, NOW)
    assert st2.splitlines() == [
        "*@example.com 2027._domainkey.example.com:@example.com",
        "*@example.com 2027-ed25519._domainkey.example.com",
    ]
    assert "2027-ed25519._domainkey.example.com\texample.com:2027-ed25519:" in kt2


def test_selector_clash_and_bad_state() -> None:
    current = current_keys("example.com", KT, ST, Path("/k"))
    with pytest.raises(RotationError, match="already in use"):
        prepare(RotationState("example.com"), current, "mail", NOW, 7, {})
    with pytest.raises(RotationError, match="not a rotation state file"):
        RotationState.from_json("{}", "x.json")


# --- the command, on a setup-made root ----------------------------------------------


def run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def zone_with(root: Path, *selectors: str) -> Path:
    head = "$ORIGIN example.com.\n$TTL 300\n@ IN SOA ns. hostmaster. 1 3600 600 86400 300\n"
    texts = [(root / "keys/example.com" / f"{s}.txt").read_text() for s in selectors]
    path = root.parent / "zone"
    path.write_text(head + "".join(texts))
    return path


def test_rotate_command_flow_with_reload(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    root = tmp_path / "etc"
    zone = tmp_path / "zone"
    zone.write_text("$ORIGIN example.com.\n@ 300 IN SOA ns. h. 1 2 3 4 5\n")
    assert run("setup", "example.com", "--root", root, "--zone", zone)[0] == 0
    rc, out, err = run("rotate", "example.com", "--root", root, "--now", "2026-03-15T12:00:00")
    assert rc == 0, err
    assert "202603._domainkey.example.com TXT" in out
    assert (root / "keys/example.com/202603.private").exists()
    # Idempotent: asking again prints the same prepared record.
    rc, again, _ = run("rotate", "example.com", "--root", root)
    assert rc == 0 and "prepared already" in again
    # Not published yet: refused, nothing switched.
    before = (root / "SigningTable").read_text()
    rc, _, err = run("rotate", "example.com", "--root", root, "--activate", "--zone", zone)
    assert rc == 1 and "key not found" in err and "Traceback" not in err
    assert (root / "SigningTable").read_text() == before
    # Published: switched, and a running process told to reload.
    zone = zone_with(root, "mail", "202603")
    sleeper = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal,time; signal.signal(signal.SIGUSR1, lambda *a: exit(7)); time.sleep(30)",
        ]
    )
    try:
        time.sleep(0.3)
        pid_file = tmp_path / "milter.pid"
        pid_file.write_text(f"{sleeper.pid}\n")
        args: list[str | Path] = [
            "--activate",
            "--zone",
            zone,
            "--pid-file",
            pid_file,
            "--now",
            "2026-03-16T12:00:00",
        ]
        rc, out, err = run("rotate", "example.com", "--root", root, *args)
        assert rc == 0, err
        assert f"sent SIGUSR1 to the milter (pid {sleeper.pid}" in out
        assert sleeper.wait(timeout=10) == 7
    finally:
        if sleeper.poll() is None:
            os.kill(sleeper.pid, signal.SIGKILL)
            sleeper.wait()
    assert "*@example.com 202603._domainkey.example.com" in (root / "SigningTable").read_text()
    rc, out, _ = run("rotate", "example.com", "--root", root, "--status", "--json")
    assert json.loads(out)["phase"] == "activated"
    # Retire: refused during the grace period, then done.
    rc, _, err = run(
        "rotate", "example.com", "--root", root, "--retire", "--now", "2026-03-20T12:00:00"
    )
    assert rc == 1 and "grace period ends 2026-03-23T12:00:00" in err
    rc, out, _ = run(
        "rotate", "example.com", "--root", root, "--retire", "--now", "2026-03-24T00:00:00"
    )
    assert rc == 0 and "delete the DNS record mail._domainkey.example.com TXT" in out
    assert not (root / "keys/example.com/mail.private").exists()
    assert "mail._domainkey" not in (root / "KeyTable").read_text()
    rc, out, _ = run("testkey", "-x", root / "opendkim.conf", "--zone", zone)
    assert rc == 0 and "202603._domainkey.example.com: key OK" in out


def test_rotate_errors(tmp_path: Path) -> None:
    rc, _, err = run("rotate", "example.com", "--root", tmp_path)
    assert rc == 2 and "cannot read configuration file" in err and "Traceback" not in err
    rc, _, err = run("rotate", "bad domain", "--root", tmp_path)
    assert rc == 2 and "not a domain name" in err
    rc, _, err = run("rotate", "example.com", "--root", tmp_path, "--now", "yesterday")
    assert rc == 2 and "ISO 8601" in err


def test_rotate_help_has_an_example() -> None:
    rc, out, _ = run("rotate", "--help")
    assert rc == 0 and "mailseal rotate example.com --activate" in out
