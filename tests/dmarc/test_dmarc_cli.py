"""``mailseal dmarc record`` / ``mailseal dmarc lint`` command-line contracts."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from mailseal.cli.main import cli


def run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_record_text_zone_and_json() -> None:
    rc, out, _ = run("dmarc", "record", "--rua", "d@example.com")
    assert (rc, out) == (0, "v=DMARC1; p=none; rua=mailto:d@example.com\n")
    rc, out, _ = run(
        "dmarc", "record", "example.com", "-p", "quarantine", "-t", "--rua", "d@example.com"
    )
    assert (
        out
        == '_dmarc.example.com.\tIN\tTXT\t"v=DMARC1; p=quarantine; rua=mailto:d@example.com; t=y"\n'
    )
    rc, out, _ = run("dmarc", "record", "example.com", "--json", "--rua", "d@example.com")
    assert json.loads(out) == {
        "name": "_dmarc.example.com",
        "type": "TXT",
        "value": "v=DMARC1; p=none; rua=mailto:d@example.com",
        "strings": ["v=DMARC1; p=none; rua=mailto:d@example.com"],
    }


def test_record_remarks_on_stderr() -> None:
    rc, out, err = run("dmarc", "record", "example.com", "-p", "reject")
    assert rc == 0 and "no rua=" in err
    rc, out, err = run("dmarc", "record", "example.com", "--rua", "d@reports.example.net")
    assert rc == 0 and "example.com._report._dmarc.reports.example.net" in err


def test_record_usage_errors() -> None:
    for args in (["-p", "block"], ["--rua", "https://x.example/"], ["bad domain!"], ["--fo", "9"]):
        rc, _, err = run("dmarc", "record", *args)
        assert rc == 2 and "Traceback" not in err, args


def test_lint_exit_codes_and_json(tmp_path: Path) -> None:
    rc, out, _ = run("dmarc", "lint", "--record", "v=DMARC1; p=reject; rua=mailto:d@example.com")
    assert rc == 0 and "no problems found" in out
    rc, out, _ = run(
        "dmarc", "lint", "--record", "v=DMARC1; p=quarantine; pct=50; rua=d@example.com"
    )
    assert rc == 1
    assert "corrected: v=DMARC1; p=quarantine; rua=mailto:d@example.com; t=y" in out
    rc, out, _ = run(
        "dmarc", "lint", "--json", "--record", "v=DMARC1; p=none; rua=mailto:d@example.com"
    )
    data = json.loads(out)
    assert rc == 0 and data["ok"] is True and data["findings"][0]["severity"] == "note"
    assert run("dmarc", "lint")[0] == 2
    assert run("dmarc", "lint", "bad domain!")[0] == 2


def test_lint_from_dns(tmp_path: Path) -> None:
    zone = tmp_path / "z"
    zone.write_text(
        "$ORIGIN example.com.\n@ 300 IN SOA ns. h. 1 2 3 4 5\n"
        '_dmarc 300 IN TXT "v=DMARC1; p=none; rua=mailto:x@example.net"\n'
    )
    rc, out, _ = run("dmarc", "lint", "example.com", "--zone", zone)
    assert rc == 1 and "[external-unauthorized]" in out
    rc, out, _ = run("dmarc", "lint", "example.org", "--zone", zone)
    assert rc == 1 and "[no-record]" in out
    rc, _, err = run(
        "dmarc", "lint", "example.com", "--dns-server", "127.0.0.1:9", "--dns-timeout", "0.3"
    )
    assert rc == 2 and "cannot look up _dmarc.example.com" in err and "Traceback" not in err


def test_help_has_examples() -> None:
    assert "mailseal dmarc record example.com" in run("dmarc", "record", "--help")[1]
    assert "mailseal dmarc lint example.com" in run("dmarc", "lint", "--help")[1]
