"""DKIM interoperability: mailseal against OpenDKIM, Mail::DKIM and dkimpy.

What mailseal signs, they verify; what they sign, mailseal verifies (through
a real nsd on loopback, and from the same zone file with ``--zone``); tampered
copies fail everywhere. See README.md beside this file.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

try:  # tests/ as packages, or (the default) rootdir-relative imports
    from .interop_harness import (
        DOMAIN,
        ED25519,
        RSA,
        Key,
        Mailseal,
        MailsealResult,
        Verdict,
        dkim_tags,
        field_unfolded,
        line_ending,
        split_message,
        to_crlf,
        to_lf,
    )
except ImportError:
    from interop_harness import (  # type: ignore[no-redef]
        DOMAIN,
        ED25519,
        RSA,
        Key,
        Mailseal,
        MailsealResult,
        Verdict,
        dkim_tags,
        field_unfolded,
        line_ending,
        split_message,
        to_crlf,
        to_lf,
    )

pytestmark = pytest.mark.integration

CANONS = ["simple/simple", "relaxed/relaxed", "relaxed/simple", "simple/relaxed"]
ALGS = {RSA: "rsa", ED25519: "ed"}  # algorithm -> selector of its session key
TOOLS = ["dkimpy", "mail_dkim", "opendkim"]
SIGN_TIMEOUT = 30


# --------------------------------------------------------------------------
# messages (CRLF, as SMTP carries them; every one From: a example.com address)


def _crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("ascii")


def _long_body() -> str:
    words = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
             "incididunt ut labore et dolore magna aliqua").split()
    lines = []
    for i in range(3000):
        n = 3 + (i * 7) % 14
        lines.append(" ".join(words[(i + j) % len(words)] for j in range(n)) + f" {i}")
        if i % 500 == 250:
            lines.append(("x" * 97 + " ") * 9 + "y" * 116)  # a 998-octet line
        if i % 400 == 0:
            lines.append("")
    return "\n".join(lines) + "\n"


MESSAGES: dict[str, bytes] = {
    "plain": _crlf(
        "From: Alice Example <alice@example.com>\n"
        "To: Bob Example <bob@example.net>\n"
        "Subject: Interop test: plain text\n"
        "Date: Tue, 25 Nov 2025 10:00:00 +0000\n"
        "Message-ID: <plain.1@example.com>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "\n"
        "Hello Bob,\n"
        "\n"
        "this is a plain message.\n"
        "\n"
        "-- \n"
        "Alice\n"
    ),
    # folded headers, tabs and trailing spaces in headers and body, trailing blank lines
    "folded": _crlf(
        "From: Alice Example <alice@example.com>\n"
        "To: Bob Example <bob@example.net>,\n"
        "\tCarol Example <carol@example.org>,\n"
        "    Dave Example <dave@example.net>\n"
        "Subject: A folded subject line that goes on\n"
        "\tand on\twith tabs inside  and trailing spaces   \n"
        "Date: Tue, 25 Nov 2025 10:01:00 +0000\n"
        "Message-ID: <folded.1@example.com>\n"
        "X-Tabbed: value\twith\ttabs\t\tand  spaces\t \n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain;\n"
        " charset=us-ascii\n"
        "\n"
        "Line with trailing spaces   \n"
        "Line with a trailing tab\t\n"
        "\tLine starting with a tab\n"
        "  Line   with   inner   runs\tof\t\twhitespace\n"
        " \n"
        "The line above holds one space; blank lines follow.\n"
        "\n"
        "\n"
        "\n"
    ),
    # repeated fields: two Received, two To
    "repeated": _crlf(
        "Received: from mx2.example.net (mx2.example.net [192.0.2.2])\n"
        "\tby mx1.example.com with ESMTP id AAA; Tue, 25 Nov 2025 10:02:02 +0000\n"
        "Received: from client.example.org (client.example.org [192.0.2.7])\n"
        "\tby mx2.example.net with ESMTP id BBB; Tue, 25 Nov 2025 10:02:01 +0000\n"
        "From: Alice Example <alice@example.com>\n"
        "To: Bob Example <bob@example.net>\n"
        "To: Carol Example <carol@example.org>\n"
        "Subject: Two Received and two To fields\n"
        "Date: Tue, 25 Nov 2025 10:02:00 +0000\n"
        "Message-ID: <repeated.1@example.com>\n"
        "\n"
        "Two To fields and two Received fields.\n"
    ),
    "long": _crlf(
        "From: Alice Example <alice@example.com>\n"
        "To: Bob Example <bob@example.net>\n"
        "Subject: A long body\n"
        "Date: Tue, 25 Nov 2025 10:03:00 +0000\n"
        "Message-ID: <long.1@example.com>\n"
        "\n" + _long_body()
    ),
    "empty-body": _crlf(
        "From: Alice Example <alice@example.com>\n"
        "To: Bob Example <bob@example.net>\n"
        "Subject: No body at all\n"
        "Date: Tue, 25 Nov 2025 10:04:00 +0000\n"
        "Message-ID: <empty.1@example.com>\n"
        "\n"
    ),
    # unusual spacing after the colon (tab, two spaces, none)
    "spacing": _crlf(
        "From: Alice Example <alice@example.com>\n"
        "To:  Bob Example <bob@example.net>\n"
        "Subject:\tTab after the colon\n"
        "Date:Tue, 25 Nov 2025 10:05:00 +0000\n"
        "Message-ID: <spacing.1@example.com>\n"
        "\n"
        "Header spacing.\n"
    ),
}

# OpenDKIM's test mode passes each header to the filter as the milter protocol
# does without SMFIP_HDR_LEADSPC: "Name" and the value after one stripped space,
# then rebuilds "Name: value". simple header canonicalization of fields that do
# not have exactly one space after the colon cannot verify there.
OPENDKIM_LEADSPC_REASON = (
    "OpenDKIM test mode (like its milter without SMFIP_HDR_LEADSPC) rebuilds every "
    "header as 'Name: value' with one space, so 'simple' header canonicalization of "
    "'Subject:<TAB>...' / 'To:  ...' / 'Date:...' cannot verify there"
)


def _body_changed(msg: bytes) -> bytes:
    """One body byte changed (a letter's case), or a byte added to an empty body."""
    head, body = split_message(msg)
    m = re.search(rb"[A-Za-z]", body)
    if not m:
        return head + b"x" + line_ending(msg)
    i = m.start()
    return head + body[:i] + body[i : i + 1].swapcase() + body[i + 1 :]


def _header_changed(msg: bytes) -> bytes:
    """A signed header changed: one letter of the From display name."""
    out = msg.replace(b"From: Alice Example <", b"From: Alice Exbmple <", 1)
    assert out != msg
    return out


TAMPERS: dict[str, Callable[[bytes], bytes]] = {
    "body-changed": _body_changed,
    "header-changed": _header_changed,
}


# --------------------------------------------------------------------------
# helpers


def tool_skip(tool: Any, name: str, alg: str) -> None:
    """Skip, with the reason, what an installed tool cannot do."""
    if alg != ED25519:
        return
    if name == "mail_dkim" and not tool.ed25519:
        pytest.skip(f"Mail::DKIM {tool.version} has no Ed25519 (added in 1.20230630; Debian 12 "
                    "ships 1.20230212): its verdict on ed25519-sha256 is 'invalid (unsupported "
                    "algorithm)'")
    if name == "dkimpy" and not tool.ed25519:
        pytest.skip("dkimpy needs PyNaCl for Ed25519: pip install pynacl (dkimpy[ed25519])")


@pytest.fixture(scope="session")
def message_files(it_dir: Path) -> dict[str, Path]:
    mdir = it_dir / "messages"
    mdir.mkdir(mode=0o700)
    out = {}
    for name, msg in MESSAGES.items():
        (mdir / f"{name}.eml").write_bytes(msg)
        (mdir / f"{name}-lf.eml").write_bytes(to_lf(msg))
        out[name] = mdir / f"{name}.eml"
        out[name + "-lf"] = mdir / f"{name}-lf.eml"
    return out


def expect_signed(res: MailsealResult, original: bytes, count: int = 1) -> bytes:
    """mailseal sign's contract: the input byte for byte, DKIM-Signature field(s) on top."""
    assert res.rc == 0, "mailseal sign failed\n" + res.describe()
    out = res.stdout
    assert out.endswith(original), (
        "mailseal sign changed the message (output is not the input plus a field on top)\n"
        + res.describe())
    added = out[: len(out) - len(original)]
    nl = line_ending(original)
    assert added.endswith(nl), f"added field(s) do not end with the input's line ending: {added!r}"
    if nl == b"\n":
        assert b"\r" not in added, f"LF input, but the added field has CR: {added!r}"
    else:
        assert added.count(b"\n") == added.count(b"\r\n"), f"bare LF in the added field: {added!r}"
    fields = field_unfolded(added + nl, "DKIM-Signature")
    assert len(fields) == count, f"expected {count} DKIM-Signature field(s), got: {added!r}"
    for line in added.split(nl)[:-1]:
        assert line[:1] in (b" ", b"\t") or line.startswith(b"DKIM-Signature:"), (
            f"unexpected line in the added block: {line!r}")
    return out


def sig_tags(msg: bytes) -> list[dict[str, str]]:
    return [dkim_tags(v) for v in field_unfolded(msg, "DKIM-Signature")]


def assert_pass(v: Verdict, selectors: list[str]) -> None:
    assert len(v.sigs) == len(selectors), f"expected {len(selectors)} signature(s)\n{v}"
    for sel in selectors:
        s = v.by_selector(sel)
        assert s.result == "pass", f"signature s={sel} did not pass\n{v}"
        assert s.domain == DOMAIN, f"wrong d= for s={sel}\n{v}"


def assert_fail(v: Verdict, label: str) -> None:
    assert v.sigs, f"{label}: the verifier saw no signature\n{v}"
    assert not v.passed, f"{label}: a tampered message still passes\n{v}"
    assert all(s.result == "fail" for s in v.sigs), f"{label}: expected result 'fail'\n{v}"


def mailseal_results(res: MailsealResult, files: list[Path]) -> dict[Path, dict[str, Any]]:
    assert res.rc in (0, 1), "mailseal verify failed to run\n" + res.describe()
    objs = res.json_lines()
    assert len(objs) == len(files), "one JSON object per input expected\n" + res.describe()
    out = {}
    for path, obj in zip(files, objs, strict=True):
        assert obj.get("file") == str(path), f"JSON objects out of order: {obj}\n" + res.describe()
        assert {"result", "signatures"} <= obj.keys(), f"missing keys in {obj}"
        out[path] = obj
    return out


# --------------------------------------------------------------------------
# mailseal signs -> dkimpy, Mail::DKIM, OpenDKIM verify


@pytest.fixture(scope="session")
def mailseal_signed(mailseal: Mailseal, keys: dict[str, Key],
                    message_files: dict[str, Path]) -> dict[tuple[str, str, str], MailsealResult]:
    """Every (algorithm, canonicalization, message) signed once, a few at a time."""
    jobs = [(alg, canon, name) for alg in ALGS for canon in CANONS for name in MESSAGES]
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            job: pool.submit(mailseal.sign, message_files[job[2]], [keys[ALGS[job[0]]]],
                             canon=job[1])
            for job in jobs
        }
        return {job: fut.result(timeout=SIGN_TIMEOUT * len(jobs)) for job, fut in futures.items()}


@pytest.mark.parametrize("msg_name", list(MESSAGES))
@pytest.mark.parametrize("canon", CANONS)
@pytest.mark.parametrize("alg", list(ALGS))
@pytest.mark.parametrize("verifier", TOOLS)
def test_mailseal_signs_others_verify(request: pytest.FixtureRequest, verifier: str, alg: str,
                                      canon: str, msg_name: str,
                                      mailseal_signed: dict[tuple[str, str, str], MailsealResult],
                                      ) -> None:
    tool = request.getfixturevalue(verifier)
    tool_skip(tool, verifier, alg)
    if verifier == "opendkim" and canon.startswith("simple/") and msg_name == "spacing":
        pytest.skip(OPENDKIM_LEADSPC_REASON)
    signed = expect_signed(mailseal_signed[(alg, canon, msg_name)], MESSAGES[msg_name])
    tags = sig_tags(signed)[0]
    assert tags.get("a") == alg and tags.get("c", "simple/simple").split("/")[0] == \
        canon.split("/")[0], f"a=/c= do not match what was asked for: {tags}"
    variants = [signed] + [t(signed) for t in TAMPERS.values()]
    intact, *bad = tool.verify_many(variants)
    assert_pass(intact, [ALGS[alg]])
    for label, v in zip(TAMPERS, bad, strict=True):
        assert_fail(v, label)


@pytest.mark.parametrize("canon", CANONS)
@pytest.mark.parametrize("alg", list(ALGS))
@pytest.mark.parametrize("verifier", TOOLS + ["mailseal"])
def test_mailseal_signs_lf_file(request: pytest.FixtureRequest, verifier: str, alg: str,
                                canon: str, mailseal: Mailseal, keys: dict[str, Key],
                                message_files: dict[str, Path], it_dir: Path) -> None:
    """An LF-only file: the field is added with LF; verifiers see what SMTP would carry."""
    tool = None if verifier == "mailseal" else request.getfixturevalue(verifier)
    if tool is not None:
        tool_skip(tool, verifier, alg)
    original = message_files["folded-lf"].read_bytes()
    res = mailseal.sign(message_files["folded-lf"], [keys[ALGS[alg]]], canon=canon)
    signed = expect_signed(res, original)
    if verifier == "mailseal":
        path = it_dir / "messages" / f"lf-signed-{ALGS[alg]}-{canon.replace('/', '-')}.eml"
        bad = path.with_name(path.stem + "-bad.eml")
        path.write_bytes(signed)
        bad.write_bytes(_body_changed(signed))
        got = mailseal_results(mailseal.verify([path, bad]), [path, bad])
        assert got[path]["result"] == "pass", got[path]
        assert got[bad]["result"] == "fail", got[bad]
        return
    assert tool is not None
    variants = [to_crlf(signed), to_crlf(_body_changed(signed))]
    if verifier == "opendkim":
        variants += [signed]  # OpenDKIM's test mode also reads LF files itself
    intact, bad, *more = tool.verify_many(variants)
    assert_pass(intact, [ALGS[alg]])
    assert_fail(bad, "body-changed")
    for v in more:
        assert_pass(v, [ALGS[alg]])


@pytest.mark.parametrize("alg", list(ALGS))
def test_mailseal_sign_field_shape(alg: str, mailseal: Mailseal, keys: dict[str, Key],
                                   mailseal_signed: dict[tuple[str, str, str], MailsealResult],
                                   ) -> None:
    """The field every receiver parses: one space after the colon, lines under 78."""
    signed = expect_signed(mailseal_signed[(alg, "relaxed/relaxed", "plain")], MESSAGES["plain"])
    head, _ = split_message(signed)
    first = head.split(b"\r\n", 1)[0]
    assert first.startswith(b"DKIM-Signature: "), (
        f"OpenDKIM's milter and test mode rebuild 'Name: value'; anything but one space after "
        f"the colon breaks simple header canonicalization there: {first!r}")
    tags = sig_tags(signed)[0]
    for t in ("v", "a", "d", "s", "c", "h", "bh", "b", "t"):
        assert t in tags, f"tag {t}= missing: {tags}"
    assert tags["v"] == "1" and tags["a"] == alg and tags["d"] == DOMAIN
    assert tags["s"] == ALGS[alg] and "from" in tags["h"].lower().split(":")
    block = signed[: len(signed) - len(MESSAGES["plain"])]
    long_lines = [ln for ln in block.split(b"\r\n") if len(ln) > 78]
    assert not long_lines, f"DKIM-Signature lines over 78 characters: {long_lines}"


# --------------------------------------------------------------------------
# others sign -> mailseal verifies


_FOREIGN: dict[tuple[str, str, str, str], bytes] = {}


def foreign_signed(tool: Any, name: str, key: Key, canon: str, msg_name: str) -> bytes:
    k = (name, key.selector, canon, msg_name)
    if k not in _FOREIGN:
        _FOREIGN[k] = tool.sign(MESSAGES[msg_name], key, canon)
    return _FOREIGN[k]


def signer_skip(tool: Any, name: str, alg: str, canon: str) -> None:
    tool_skip(tool, name, alg)
    if name == "opendkim" and alg == ED25519 and canon.startswith("simple/"):
        pytest.skip("OpenDKIM 2.11.0~beta2's Ed25519 signatures with 'simple' header "
                    "canonicalization verify nowhere, not even in OpenDKIM itself (its "
                    "relaxed ones do); only relaxed/* Ed25519 signing by OpenDKIM is tested")


def foreign_messages(name: str, canon: str) -> list[str]:
    return [m for m in MESSAGES
            if not (name == "opendkim" and canon.startswith("simple/") and m == "spacing")]


@pytest.mark.parametrize("dns_mode", ["dns-server", "zone"])
@pytest.mark.parametrize("canon", CANONS)
@pytest.mark.parametrize("alg", list(ALGS))
@pytest.mark.parametrize("signer", TOOLS)
def test_others_sign_mailseal_verifies(request: pytest.FixtureRequest, signer: str, alg: str,
                                       canon: str, dns_mode: str, mailseal: Mailseal,
                                       keys: dict[str, Key], zone_file: Path,
                                       it_dir: Path) -> None:
    tool = request.getfixturevalue(signer)
    signer_skip(tool, signer, alg, canon)
    key = keys[ALGS[alg]]
    outdir = it_dir / "foreign" / f"{signer}-{key.selector}-{canon.replace('/', '-')}-{dns_mode}"
    outdir.mkdir(parents=True)
    files: list[Path] = []
    expected: dict[Path, str] = {}
    for msg_name in foreign_messages(signer, canon):
        signed = foreign_signed(tool, signer, key, canon, msg_name)
        variants = {"intact": signed, **{lbl: t(signed) for lbl, t in TAMPERS.items()}}
        for label, data in variants.items():
            p = outdir / f"{msg_name}-{label}.eml"
            p.write_bytes(data)
            files.append(p)
            expected[p] = "pass" if label == "intact" else "fail"
    res = mailseal.verify(files, zone=zone_file if dns_mode == "zone" else None)
    got = mailseal_results(res, files)
    wrong = {p.name: (exp, got[p]) for p, exp in expected.items() if got[p]["result"] != exp}
    assert not wrong, (f"mailseal verify disagrees with {signer} on {len(wrong)} of {len(files)} "
                       f"messages (expected, got):\n"
                       + "\n".join(f"  {n}: {e} / {g}" for n, (e, g) in wrong.items())
                       + "\n" + res.describe()[:3000])
    for p in files:
        sigs = got[p]["signatures"]
        assert len(sigs) == 1, f"{p.name}: {sigs}"
        assert sigs[0].get("domain") == DOMAIN and sigs[0].get("selector") == key.selector
        assert sigs[0].get("algorithm") == alg, f"{p.name}: {sigs[0]}"
    assert res.rc == 1, "some inputs fail, so exit 1 expected\n" + res.describe()


# --------------------------------------------------------------------------
# dual signing (RSA and Ed25519 at once)


@pytest.fixture(scope="session")
def dual_signed(mailseal: Mailseal, keys: dict[str, Key],
                message_files: dict[str, Path]) -> dict[str, MailsealResult]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            canon: pool.submit(mailseal.sign, message_files["folded"], [keys["rsa"], keys["ed"]],
                               canon=canon)
            for canon in ("relaxed/relaxed", "simple/simple")
        }
        return {c: f.result(timeout=2 * SIGN_TIMEOUT) for c, f in futures.items()}


@pytest.mark.parametrize("canon", ["relaxed/relaxed", "simple/simple"])
@pytest.mark.parametrize("verifier", TOOLS)
def test_dual_signature(request: pytest.FixtureRequest, verifier: str, canon: str,
                        dual_signed: dict[str, MailsealResult]) -> None:
    tool = request.getfixturevalue(verifier)
    signed = expect_signed(dual_signed[canon], MESSAGES["folded"], count=2)
    assert sorted(t["a"] for t in sig_tags(signed)) == [ED25519, RSA], sig_tags(signed)
    intact, *bad = tool.verify_many([signed] + [t(signed) for t in TAMPERS.values()])
    assert len(intact.sigs) == 2, f"the verifier should see both signatures\n{intact}"
    assert intact.by_selector("rsa").result == "pass", str(intact)
    ed_ok = getattr(tool, "ed25519", True)
    if ed_ok:
        assert intact.by_selector("ed").result == "pass", str(intact)
    else:
        assert intact.by_selector("ed").result != "pass", str(intact)
        print(f"{verifier}: no Ed25519 support; its verdict on the Ed25519 signature: "
              f"{intact.by_selector('ed').detail}")
    for label, v in zip(TAMPERS, bad, strict=True):
        assert not v.passed, f"{label}: a tampered dual-signed message still passes\n{v}"
        assert v.by_selector("rsa").result == "fail", f"{label}\n{v}"
        if ed_ok:
            assert v.by_selector("ed").result == "fail", f"{label}\n{v}"


@pytest.mark.parametrize("dns_mode", ["dns-server", "zone"])
def test_dual_signature_mailseal_verifies(dns_mode: str, mailseal: Mailseal, zone_file: Path,
                                          it_dir: Path,
                                          dual_signed: dict[str, MailsealResult]) -> None:
    signed = expect_signed(dual_signed["relaxed/relaxed"], MESSAGES["folded"], count=2)
    good = it_dir / "messages" / f"dual-{dns_mode}.eml"
    bad = it_dir / "messages" / f"dual-{dns_mode}-bad.eml"
    good.write_bytes(signed)
    bad.write_bytes(_body_changed(signed))
    res = mailseal.verify([good, bad], zone=zone_file if dns_mode == "zone" else None)
    got = mailseal_results(res, [good, bad])
    assert got[good]["result"] == "pass"
    assert sorted((s["selector"], s["result"]) for s in got[good]["signatures"]) == [
        ("ed", "pass"), ("rsa", "pass")], got[good]
    assert got[bad]["result"] == "fail"
    assert [s["result"] for s in got[bad]["signatures"]] == ["fail", "fail"], got[bad]
    assert res.rc == 1, res.describe()


# --------------------------------------------------------------------------
# oversigning, expiry, key size


@pytest.mark.parametrize("verifier", TOOLS + ["mailseal"])
def test_oversigned_from(request: pytest.FixtureRequest, verifier: str, mailseal: Mailseal,
                         keys: dict[str, Key], message_files: dict[str, Path],
                         it_dir: Path) -> None:
    """With --oversign, a From field added after signing breaks the signature everywhere."""
    res = mailseal.sign(message_files["plain"], [keys["rsa"]], canon="relaxed/relaxed",
                        extra=["--headers", "from:to:subject:date", "--oversign"])
    signed = expect_signed(res, MESSAGES["plain"])
    h = sig_tags(signed)[0]["h"].lower().split(":")
    assert h.count("from") >= 2, f"--oversign should list from more often than it occurs: h={h}"
    sig_end = signed.index(b"\r\nFrom: ") + 2
    forged = signed[:sig_end] + b"From: Mallory <mallory@example.com>\r\n" + signed[sig_end:]
    if verifier == "mailseal":
        good, bad = it_dir / "messages" / "over.eml", it_dir / "messages" / "over-forged.eml"
        good.write_bytes(signed)
        bad.write_bytes(forged)
        got = mailseal_results(mailseal.verify([good, bad]), [good, bad])
        assert got[good]["result"] == "pass" and got[bad]["result"] != "pass", got
        return
    tool = request.getfixturevalue(verifier)
    intact, v = tool.verify_many([signed, forged])
    assert_pass(intact, ["rsa"])
    assert not v.passed, f"an added From field must break an oversigned signature\n{v}"


@pytest.mark.parametrize("verifier", TOOLS + ["mailseal"])
def test_expired_signature(request: pytest.FixtureRequest, verifier: str, mailseal: Mailseal,
                           keys: dict[str, Key], message_files: dict[str, Path],
                           it_dir: Path) -> None:
    """x= is honoured by every verifier; a fresh signature with x= passes."""
    then = int(time.time()) - 2 * 86400
    old = mailseal.sign(message_files["plain"], [keys["rsa"]],
                        extra=["--now", str(then), "--expire", "3600"])
    fresh = mailseal.sign(message_files["plain"], [keys["rsa"]], extra=["--expire", "3600"])
    old_msg = expect_signed(old, MESSAGES["plain"])
    fresh_msg = expect_signed(fresh, MESSAGES["plain"])
    t = sig_tags(old_msg)[0]
    assert int(t["t"]) == then and int(t["x"]) == then + 3600, t
    if verifier == "mailseal":
        paths = [it_dir / "messages" / n for n in ("exp-old.eml", "exp-fresh.eml")]
        paths[0].write_bytes(old_msg)
        paths[1].write_bytes(fresh_msg)
        now = mailseal_results(mailseal.verify(paths), paths)
        assert now[paths[0]]["result"] != "pass" and now[paths[1]]["result"] == "pass", now
        back = mailseal_results(mailseal.verify(paths[:1], extra=["--now", str(then + 60)]),
                                paths[:1])
        assert back[paths[0]]["result"] == "pass", back
        return
    tool = request.getfixturevalue(verifier)
    v_old, v_fresh = tool.verify_many([old_msg, fresh_msg])
    assert not v_old.passed, f"an expired signature passes\n{v_old}"
    assert_pass(v_fresh, ["rsa"])


def test_min_key_bits(mailseal: Mailseal, keys: dict[str, Key], opendkim: Any,
                      message_files: dict[str, Path], it_dir: Path) -> None:
    """A 1024-bit key (OpenDKIM-signed) passes by default and fails --min-key-bits 2048."""
    signed = opendkim.sign(MESSAGES["plain"], keys["rsa1024"], "relaxed/relaxed")
    p = it_dir / "messages" / "rsa1024.eml"
    p.write_bytes(signed)
    ok = mailseal_results(mailseal.verify([p], extra=["--min-key-bits", "1024"]), [p])
    assert ok[p]["result"] == "pass", ok
    strict = mailseal.verify([p], extra=["--min-key-bits", "2048"])
    got = mailseal_results(strict, [p])
    assert got[p]["result"] != "pass", got
    assert strict.rc == 1, strict.describe()


def test_mailseal_verify_exit_codes(mailseal: Mailseal, keys: dict[str, Key], dkimpy: Any,
                                    message_files: dict[str, Path], it_dir: Path) -> None:
    """All pass -> 0; an unsigned message -> result none and exit 1."""
    good = it_dir / "messages" / "exit-good.eml"
    good.write_bytes(dkimpy.sign(MESSAGES["plain"], keys["rsa"], "relaxed/simple"))
    unsigned = it_dir / "messages" / "exit-unsigned.eml"
    unsigned.write_bytes(MESSAGES["plain"])
    res = mailseal.verify([good])
    assert mailseal_results(res, [good])[good]["result"] == "pass"
    assert res.rc == 0, res.describe()
    res = mailseal.verify([good, unsigned])
    got = mailseal_results(res, [good, unsigned])
    assert got[unsigned]["result"] == "none" and got[unsigned]["signatures"] == []
    assert res.rc == 1, res.describe()
    res = mailseal("verify", "--json", "--dns-server", mailseal.dns.spec, "-",
                   input=good.read_bytes())
    objs = res.json_lines()
    assert res.rc == 0 and len(objs) == 1 and objs[0]["result"] == "pass", res.describe()
    res = mailseal.verify([it_dir / "messages" / "no-such-file.eml"])
    assert res.rc == 2, "unreadable input -> exit 2\n" + res.describe()


# --------------------------------------------------------------------------
# the harness itself: the outside tools agree with each other through nsd


@pytest.mark.parametrize("canon", CANONS)
@pytest.mark.parametrize("alg", list(ALGS))
@pytest.mark.parametrize("verifier", TOOLS)
@pytest.mark.parametrize("signer", TOOLS)
def test_harness_tools_agree(request: pytest.FixtureRequest, signer: str, verifier: str,
                             alg: str, canon: str, keys: dict[str, Key]) -> None:
    """Baseline: each outside signer's output verifies in each outside verifier."""
    s_tool = request.getfixturevalue(signer)
    v_tool = request.getfixturevalue(verifier)
    signer_skip(s_tool, signer, alg, canon)
    tool_skip(v_tool, verifier, alg)
    key = keys[ALGS[alg]]
    names = foreign_messages(signer, canon)
    if verifier == "opendkim":
        names = foreign_messages("opendkim", canon)
    signed = [foreign_signed(s_tool, signer, key, canon, n) for n in names]
    bad = [_body_changed(signed[0]), _header_changed(signed[0])]
    verdicts = v_tool.verify_many(signed + bad)
    for n, v in zip(names, verdicts[: len(names)], strict=True):
        assert v.sigs and v.sigs[0].result == "pass", f"{signer} -> {verifier}, {n}\n{v}"
    for label, v in zip(TAMPERS, verdicts[len(names):], strict=True):
        assert_fail(v, label)


# --------------------------------------------------------------------------
# a key pair made by opendkim-genkey (what users migrating from OpenDKIM have)


@pytest.mark.parametrize("verifier", TOOLS + ["mailseal-dns", "mailseal-zone"])
def test_opendkim_genkey_key(request: pytest.FixtureRequest, verifier: str, mailseal: Mailseal,
                             keys: dict[str, Key], message_files: dict[str, Path],
                             zone_file: Path, it_dir: Path) -> None:
    """mailseal signs with genkey.private; genkey.txt is in the zone verbatim."""
    if "genkey" not in keys:
        pytest.skip("opendkim-genkey is not installed: apt-get install -y opendkim-tools")
    key = keys["genkey"]
    res = mailseal.sign(message_files["folded"], [key], canon="relaxed/relaxed")
    signed = expect_signed(res, MESSAGES["folded"])
    if verifier.startswith("mailseal"):
        good = it_dir / "messages" / f"genkey-{verifier}.eml"
        bad = it_dir / "messages" / f"genkey-{verifier}-bad.eml"
        good.write_bytes(signed)
        bad.write_bytes(_header_changed(signed))
        zone = zone_file if verifier == "mailseal-zone" else None
        got = mailseal_results(mailseal.verify([good, bad], zone=zone), [good, bad])
        assert got[good]["result"] == "pass" and got[bad]["result"] == "fail", got
        return
    tool = request.getfixturevalue(verifier)
    intact, bad_v = tool.verify_many([signed, _header_changed(signed)])
    assert_pass(intact, ["genkey"])
    assert_fail(bad_v, "header-changed")


@pytest.mark.parametrize("verifier", TOOLS)
def test_dkimpy_seed_key(request: pytest.FixtureRequest, verifier: str, mailseal: Mailseal,
                         keys: dict[str, Key], message_files: dict[str, Path],
                         it_dir: Path) -> None:
    """An Ed25519 key in dkimpy's format (base64 seed) signs what the others verify."""
    tool = request.getfixturevalue(verifier)
    tool_skip(tool, verifier, ED25519)
    seed = it_dir / "keys" / "ed-dkimpy.key"
    if not seed.exists():
        seed.write_bytes(keys["ed"].seed_b64 + b"\n")
        seed.chmod(0o600)
    res = mailseal("sign", "--key", seed, "-s", "ed", "-d", DOMAIN, message_files["plain"])
    signed = expect_signed(res, MESSAGES["plain"])
    intact, bad = tool.verify_many([signed, _body_changed(signed)])
    assert_pass(intact, ["ed"])
    assert_fail(bad, "body-changed")
