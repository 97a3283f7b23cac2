"""The sign / verify / demo command-line contracts, run in-process and as `python -m mailseal`."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailseal.cli.demo import zone_text
from mailseal.cli.main import cli
from mailseal.dkim.keys import KeyType, generate_key, private_pem

MSG = b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nHello\r\n"
NOW = "1700000000"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli")
    rsa, ed = generate_key(KeyType.RSA, 2048), generate_key(KeyType.ED25519)
    small = generate_key(KeyType.RSA, 1024)
    (d / "rsa.pem").write_bytes(private_pem(rsa))
    (d / "ed.pem").write_bytes(private_pem(ed))
    (d / "small.pem").write_bytes(private_pem(small))
    (d / "msg.eml").write_bytes(MSG)
    (d / "msg-lf.eml").write_bytes(MSG.replace(b"\r\n", b"\n"))
    records = [("rsa._domainkey", rsa.public_record()), ("ed._domainkey", ed.public_record())]
    records.append(("small._domainkey", small.public_record()))
    (d / "zone").write_text(zone_text("example.com", records))
    return {"dir": d, "zone": d / "zone"}


def run(*args: str, input: bytes | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), input=input)
    return result.exit_code, result.stdout_bytes.decode("latin-1"), result.stderr


def sign(setup: dict[str, Path], *extra: str, file: str = "msg.eml") -> bytes:
    d = setup["dir"]
    code, out, err = run(
        "sign",
        "--key",
        str(d / "rsa.pem"),
        "-d",
        "example.com",
        "-s",
        "rsa",
        "--now",
        NOW,
        *extra,
        str(d / file),
    )
    assert code == 0, err
    return out.encode("latin-1")


def verify_json(setup: dict[str, Path], data: bytes, *extra: str) -> tuple[int, dict]:
    code, out, err = run(
        "verify", "--json", "--now", NOW, "--zone", str(setup["zone"]), *extra, "-", input=data
    )
    return code, json.loads(out)


def test_sign_output_is_input_plus_field(setup: dict[str, Path]) -> None:
    signed = sign(setup)
    assert signed.startswith(
        b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com;"
    )
    assert signed.endswith(b"\r\n" + MSG)
    code, doc = verify_json(setup, signed)
    assert code == 0
    assert doc == {
        "file": "-",
        "result": "pass",
        "signatures": [
            {
                "result": "pass",
                "domain": "example.com",
                "selector": "rsa",
                "algorithm": "rsa-sha256",
                "reason": "signature verified",
            }
        ],
    }


def test_lf_input_gets_lf_field_and_verifies(setup: dict[str, Path]) -> None:
    signed = sign(setup, file="msg-lf.eml")
    assert b"\r" not in signed
    assert signed.endswith(b"\n" + MSG.replace(b"\r\n", b"\n"))
    assert verify_json(setup, signed)[1]["result"] == "pass"


def test_dual_keys_in_pairs(setup: dict[str, Path]) -> None:
    d = setup["dir"]
    code, out, err = run(
        "sign",
        "--key",
        str(d / "rsa.pem"),
        "-s",
        "rsa",
        "--key",
        str(d / "ed.pem"),
        "-s",
        "ed",
        "-d",
        "example.com",
        "--now",
        NOW,
        str(d / "msg.eml"),
    )
    assert code == 0, err
    code, doc = verify_json(setup, out.encode("latin-1"))
    assert [(s["algorithm"], s["result"]) for s in doc["signatures"]] == [
        ("rsa-sha256", "pass"),
        ("ed25519-sha256", "pass"),
    ]


def test_tampered_message_fails_with_exit_1(setup: dict[str, Path]) -> None:
    signed = sign(setup).replace(b"Hello", b"Jello")
    code, doc = verify_json(setup, signed)
    assert code == 1
    assert doc["result"] == "fail"
    assert doc["signatures"][0]["reason"] == "body hash did not verify"


def test_unsigned_message_is_none_exit_1(setup: dict[str, Path]) -> None:
    code, doc = verify_json(setup, MSG)
    assert (code, doc) == (1, {"file": "-", "result": "none", "signatures": []})


def test_small_key_is_policy_unless_lowered(setup: dict[str, Path]) -> None:
    d = setup["dir"]
    code, out, err = run(
        "sign",
        "--key",
        str(d / "small.pem"),
        "-s",
        "small",
        "-d",
        "example.com",
        "--now",
        NOW,
        str(d / "msg.eml"),
    )
    signed = out.encode("latin-1")
    code, doc = verify_json(setup, signed, "--min-key-bits", "2048")
    assert code == 1 and doc["result"] == "policy"
    assert "1024 bits is below the minimum of 2048" in doc["signatures"][0]["reason"]
    assert verify_json(setup, signed)[1]["result"] == "pass"


def test_unreadable_input_reported_exit_2(setup: dict[str, Path]) -> None:
    d = setup["dir"]
    code, out, _ = run(
        "verify", "--json", "--zone", str(setup["zone"]), str(d / "missing.eml"), str(d / "msg.eml")
    )
    lines = [json.loads(x) for x in out.splitlines()]
    assert code == 2
    assert lines[0] == {"file": str(d / "missing.eml"), "error": "No such file or directory"}
    assert lines[1]["result"] == "none"


def test_text_output_one_line_per_signature(setup: dict[str, Path]) -> None:
    code, out, _ = run("verify", "--now", NOW, "--zone", str(setup["zone"]), "-", input=sign(setup))
    assert code == 0
    assert out == "-: pass d=example.com s=rsa a=rsa-sha256\n"


def test_max_signatures(setup: dict[str, Path]) -> None:
    signed = sign(setup)
    field = signed[: signed.index(b"From: Alice")]
    code, doc = verify_json(setup, field * 3 + MSG, "--max-signatures", "2")
    assert [s["result"] for s in doc["signatures"]] == ["pass", "pass", "neutral"]
    assert doc["signatures"][2]["reason"] == "not evaluated"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["sign", "--key", "/nonexistent.pem", "-d", "example.com", "-s", "x"],
            "cannot read key file",
        ),
        (["sign", "--key", "K", "--key", "K", "-d", "example.com", "-s", "x"], "come in pairs"),
        (
            ["sign", "--key", "K", "-d", "example.com", "-s", "x", "-c", "fancy"],
            "unknown canonicalization",
        ),
        (["verify", "--zone", "/nonexistent.zone", "-"], "nonexistent.zone"),
        (["verify"], "Missing argument"),
    ],
)
def test_usage_and_input_errors_exit_2_without_traceback(
    setup: dict[str, Path], args: list[str], message: str
) -> None:
    args = [str(setup["dir"] / "rsa.pem") if a == "K" else a for a in args]
    code, out, err = run(*args, input=MSG)
    assert code == 2
    assert message in err
    assert "Traceback" not in err + out


def test_key_that_is_not_a_key(setup: dict[str, Path]) -> None:
    bad = setup["dir"] / "bad.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nnonsense\n-----END PRIVATE KEY-----\n")
    code, _, err = run("sign", "--key", str(bad), "-d", "example.com", "-s", "x", input=MSG)
    assert code == 2
    assert f"{bad}: not a readable PEM private key" in err


def test_message_without_from(setup: dict[str, Path]) -> None:
    code, _, err = run(
        "sign",
        "--key",
        str(setup["dir"] / "ed.pem"),
        "-d",
        "example.com",
        "-s",
        "x",
        input=b"To: x@example.org\r\n\r\nhi\r\n",
    )
    assert code == 2 and "no From header field" in err


def test_python_dash_m_and_demo(tmp_path: Path) -> None:
    """The README's main job: the tutorial's files, offline sign+verify, then the live milter.

    ``--no-postfix`` keeps this hermetic (the built-in milter client stands in for
    Postfix); tests/integration/test_demo_postfix.py runs the private Postfix path.
    """
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mailseal",
            "demo",
            "--dir",
            str(tmp_path),
            "--seconds",
            "0",
            "--no-postfix",
        ],
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert out.count("dkim=pass") == 4  # two signatures offline, two added by the milter
    assert "Not using Postfix: --no-postfix was given." in out
    assert "built-in milter client" in out
    for name in ("opendkim.conf", "KeyTable", "SigningTable", "TrustedHosts"):
        assert (tmp_path / name).is_file()
    signed = (tmp_path / "signed.eml").read_bytes()
    assert b"DKIM-Signature" in signed
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mailseal",
            "verify",
            "--json",
            "--zone",
            str(tmp_path / "example.com.zone"),
            "-",
        ],
        input=signed.replace(b"Hello", b"Jello"),
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["result"] == "fail"


def test_demo_offline(tmp_path: Path) -> None:
    code, out, err = run("demo", "--dir", str(tmp_path), "--offline")
    assert code == 0, err
    assert out.count("dkim=pass") == 2 and "Starting the milter" not in out


def test_demo_says_why_it_does_not_use_postfix(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback to the built-in milter client names the reason."""
    import mailseal.cli.demo as demo

    assert demo.postfix_obstacle(True) == "--no-postfix was given"
    monkeypatch.setattr(demo.os.path, "exists", lambda p: p != demo.POSTFIX_BIN)
    monkeypatch.setattr(demo, "other_mtas", lambda: [])
    assert "Postfix is not installed (--no-install was given); `./run demo` run as root" in str(
        demo.postfix_obstacle(False, install=False)
    )
    # Installing is attempted only where no other MTA is installed; its failure is reported.
    tried: list[bool] = []
    monkeypatch.setattr(demo, "install_postfix", lambda: tried.append(True) or "apt-get failed: x")
    assert "Postfix is not installed (apt-get failed: x)" in str(demo.postfix_obstacle(False))
    assert tried == [True]
    monkeypatch.setattr(demo, "other_mtas", lambda: ["exim4-daemon-light"])
    said = str(demo.postfix_obstacle(False))
    assert tried == [True]  # not tried again: the postfix package would remove exim4
    assert "another MTA is (exim4-daemon-light)" in said and "would remove it" in said
    monkeypatch.setattr(demo.os.path, "exists", lambda p: True)
    monkeypatch.setattr(demo.os, "geteuid", lambda: 1000)
    assert "needs root" in str(demo.postfix_obstacle(False))
