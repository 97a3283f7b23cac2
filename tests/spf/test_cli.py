"""The ``mailseal spf`` command-line contract: options, output shapes, exit codes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailseal.cli.main import cli
from mailseal.cli.spf import MIN_CHECK_SECONDS, _Deadline
from mailseal.dns.drive import drive
from mailseal.dns.types import Answer, Question, Status
from mailseal.spf import check_host

ZONE = """\
example.com. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 include:_spf.example.net -all exp=why.example.com"
why.example.com. 300 IN TXT "%{i} is not one of %{d}'s servers"
_spf.example.net. 300 IN TXT "v=spf1 a:mail.example.net ~all"
mail.example.net. 300 IN A 198.51.100.7
mail.example.net. 300 IN AAAA 2001:db8::7
mail.example.net. 300 IN TXT "v=spf1 a -all"
"""


@pytest.fixture(scope="module")
def zone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spf-cli") / "example.zone"
    path.write_text(ZONE)
    return path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["spf", *args])
    return result.exit_code, result.stdout, result.stderr


def spf_json(zone: Path, *args: str) -> dict[str, object]:
    code, out, err = run(*args, "--json", "--zone", str(zone))
    assert code == 0, err
    doc = json.loads(out)
    assert isinstance(doc, dict)
    return doc


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        (
            "192.0.2.9",
            {"result": "pass", "explanation": None, "mechanism": "ip4:192.0.2.0/24", "lookups": 0},
        ),
        (
            "198.51.100.7",
            {
                "result": "pass",
                "explanation": None,
                "mechanism": "include:_spf.example.net",
                "lookups": 2,
            },
        ),
        (
            "::ffff:198.51.100.7",
            {
                "result": "pass",
                "explanation": None,
                "mechanism": "include:_spf.example.net",
                "lookups": 2,
            },
        ),
        (
            "203.0.113.5",
            {
                "result": "fail",
                "explanation": "203.0.113.5 is not one of example.com's servers",
                "mechanism": "-all",
                "lookups": 2,
            },
        ),
    ],
)
def test_json_contract(zone: Path, ip: str, expected: dict[str, object]) -> None:
    doc = spf_json(zone, "--ip", ip, "--sender", "alice@example.com", "--helo", "mx.example.org")
    assert doc == expected
    assert list(doc) == ["result", "explanation", "mechanism", "lookups"]


def test_every_result_exits_0(zone: Path) -> None:
    for sender in ("a@example.com", "a@nowhere.example", "a@mail.example.net"):
        code, _, _ = run("--ip", "203.0.113.5", "--sender", sender, "--zone", str(zone))
        assert code == 0
    assert spf_json(zone, "--ip", "203.0.113.5", "--sender", "a@nowhere.example")["result"] == (
        "none"
    )


def test_null_sender_is_postmaster_at_helo(zone: Path) -> None:
    doc = spf_json(zone, "--ip", "198.51.100.7", "--sender", "", "--helo", "mail.example.net")
    assert (doc["result"], doc["mechanism"]) == ("pass", "a")
    doc = spf_json(zone, "--ip", "2001:db8::8", "--sender", "", "--helo", "mail.example.net")
    assert (doc["result"], doc["mechanism"]) == ("fail", "-all")


def test_helo_identity(zone: Path) -> None:
    args = ["--ip", "2001:db8::7", "--helo", "mail.example.net", "--identity", "helo"]
    assert spf_json(zone, *args)["result"] == "pass"
    # The sender is not what a HELO check looks at.
    doc = spf_json(zone, *args, "--sender", "a@example.com")
    assert (doc["result"], doc["mechanism"]) == ("pass", "a")


def test_text_output(zone: Path) -> None:
    code, out, _ = run("--ip", "203.0.113.5", "--sender", "a@example.com", "--zone", str(zone))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "fail (mailfrom example.com)"
    assert "mechanism: -all" in lines
    assert "explanation: 203.0.113.5 is not one of example.com's servers" in lines
    assert "reason: example.com: matched -all" in lines
    assert "lookups: 2 of 10, void: 0 of 2" in lines
    assert lines[-1].startswith("record: v=spf1 ip4:192.0.2.0/24")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ip", "300.1.1.1", "--sender", "a@example.com"], "is not an IPv4 or IPv6 address"),
        (["--ip", "fe80::1%eth0", "--sender", "a@example.com"], "is not an IPv4 or IPv6"),
        (["--ip", "192.0.2.1"], "--sender ADDR is required"),
        (["--ip", "192.0.2.1", "--sender", ""], "give --helo NAME"),
        (["--ip", "192.0.2.1", "--identity", "helo"], "--identity helo needs --helo"),
        (["--ip", "192.0.2.1", "--sender", "a@b.c", "--identity", "pra"], "Invalid value"),
        (["--sender", "a@example.com"], "Missing option '--ip'"),
        (["--ip", "192.0.2.1", "--sender", "a@b.c", "--dns-server", "ns.example"], "not an IP"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    code, out, err = run(*args)
    assert code == 2 and out == ""
    assert message in err


def test_bad_zone_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zone"
    bad.write_text('example.com. 300 IN TXT "unterminated\n')
    code, _, err = run("--ip", "192.0.2.1", "--sender", "a@example.com", "--zone", str(bad))
    assert code == 2 and "bad.zone" in err and "Traceback" not in err


def test_unreachable_dns_is_temperror_not_a_traceback() -> None:
    started = time.monotonic()
    code, out, err = run(
        "--ip", "192.0.2.1", "--sender", "a@example.com", "--json",
        "--dns-server", "127.0.0.1:9", "--dns-timeout", "0.3",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["result"] == "temperror"
    assert time.monotonic() - started < 5


def test_installed_entry_point(zone: Path) -> None:
    """One real process: ``python -m mailseal spf`` as a user runs it."""
    proc = subprocess.run(
        [sys.executable, "-m", "mailseal", "spf", "--ip", "192.0.2.9", "--sender",
         "a@example.com", "--json", "--zone", str(zone)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["result"] == "pass"


def test_check_time_limit_turns_later_questions_into_timeouts() -> None:
    """RFC 7208 §4.6.4: a time limit on the whole check, its excess a temperror."""

    class Slow:
        async def ask(self, question: Question) -> Answer:
            await asyncio.sleep(0.2)
            record = "v=spf1 a:a1.example a:a2.example -all"
            return Answer(question, Status.OK, (record,) if question.rdtype.value == "TXT" else ())

    started = time.monotonic()
    check = check_host("192.0.2.1", "example.com", "a@example.com")
    verdict = asyncio.run(drive(check, _Deadline(Slow(), 0.3)))
    assert verdict.result.value == "temperror" and "ran out of time" in verdict.reason
    assert verdict.lookups == 1 and time.monotonic() - started < 1.0
    assert MIN_CHECK_SECONDS >= 20
