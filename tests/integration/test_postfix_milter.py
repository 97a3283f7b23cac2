"""The milter behind a real Postfix, wired as the tutorial wires OpenDKIM.

Each test runs for both milter implementations (``opendkim``: the real
OpenDKIM; ``mailseal``: ``python -m mailseal milter``, skipped until it
exists) and both ``milter_protocol`` values (2 as in the tutorial, 6 the
Postfix default). A private Postfix relays everything to an aiosmtpd catcher;
what arrives is checked byte for byte and verified by dkimpy, OpenDKIM and
Mail::DKIM against the loopback nsd. See README.md beside this file.
"""

from __future__ import annotations

import hashlib
import re
import smtplib
import time
from typing import Any

import pytest

try:  # tests/ as packages, or (the default) rootdir-relative imports
    from . import postfix_harness as ph
    from .interop_harness import DOMAIN, Verdict, dkim_tags, field_unfolded, split_message, to_crlf
except ImportError:
    import postfix_harness as ph  # type: ignore[no-redef]
    from interop_harness import (  # type: ignore[no-redef]
        DOMAIN,
        Verdict,
        dkim_tags,
        field_unfolded,
        split_message,
        to_crlf,
    )

pytestmark = pytest.mark.integration

Rig = ph.PostfixRig


def _token(request: pytest.FixtureRequest, rig: Rig, tag: str = "") -> str:
    name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[-60:]
    return f"{name}-{rig.impl}-p{rig.protocol}-{tag}{time.monotonic_ns() % 10**9}"


def _one_signature(rig: Rig, msg: bytes) -> dict[str, str]:
    sigs = field_unfolded(msg, "DKIM-Signature")
    assert len(sigs) == 1, f"expected one DKIM-Signature, got {len(sigs)}:\n" \
        f"{split_message(msg)[0].decode('latin-1')}\n{rig.describe()}"
    tags = dkim_tags(sigs[0])
    assert tags.get("d") == DOMAIN and tags.get("s") == ph.SELECTOR, tags
    return tags


def _verified(rig: Rig, msg: bytes, verifiers: dict[str, Any], expect: str = "pass") -> None:
    """Every verifier reports ``expect`` for the s=mail signature."""
    problems = []
    for name, tool in verifiers.items():
        v: Verdict = tool.verify(msg)
        got = [s.result for s in v.sigs if s.selector == ph.SELECTOR]
        if got != [expect]:
            problems.append(f"{name}: {got} expected [{expect}]\n{v}")
    assert not problems, "\n".join(problems) + "\n--- message head ---\n" + \
        split_message(msg)[0].decode("latin-1") + "\n" + rig.describe()


@pytest.fixture
def verifiers(dkimpy: Any, opendkim: Any, mail_dkim: Any) -> dict[str, Any]:
    return {"dkimpy": dkimpy, "opendkim": opendkim, "Mail::DKIM": mail_dkim}


def _unchanged(rig: Rig, sent: bytes, delivered: bytes,
               added: tuple[str, ...] = ph.ADDED_BY_PIPELINE) -> None:
    """The delivered message is the sent one plus Received/DKIM-Signature/A-R only."""
    stripped = ph.strip_added(delivered, added)
    if stripped != to_crlf(sent):
        import difflib

        diff = "\n".join(difflib.unified_diff(
            to_crlf(sent).decode("latin-1").splitlines(),
            stripped.decode("latin-1").splitlines(), "sent", "delivered", lineterm="", n=1))
        raise AssertionError(f"message changed in transit:\n{diff[:4000]}\n{rig.describe()}")


def _added(delivered: bytes) -> list[str]:
    return [ph.field_name(f) for f in ph.header_fields(delivered)
            if ph.field_name(f) in ph.ADDED_BY_PIPELINE]


# --------------------------------------------------------------------------


def test_sign_over_smtp(postfix: Rig, verifiers: dict[str, Any],
                        request: pytest.FixtureRequest) -> None:
    """smtpd_milters: a message from 127.0.0.1 (internal per TrustedHosts) is signed."""
    tok = _token(request, postfix)
    msg = ph.message(tok, extra_headers="Cc: Carol <carol@example.net>\nX-Mailer: harness\n")
    postfix.pf.send_smtp(msg)
    got = postfix.deliver(tok)[0].data
    tags = _one_signature(postfix, got)
    _unchanged(postfix, msg, got)
    _verified(postfix, got, verifiers)
    print(f"[{postfix.impl} p{postfix.protocol}] added fields in order: {_added(got)}; "
          f"c={tags.get('c')} h={tags.get('h')}")


def test_sign_via_sendmail_command(postfix: Rig, verifiers: dict[str, Any],
                                   request: pytest.FixtureRequest) -> None:
    """non_smtpd_milters: ``sendmail -oi -f`` (postdrop, pickup, cleanup) is signed too."""
    tok = _token(request, postfix)
    msg = ph.message(tok).replace(b"\r\n", b"\n")  # a local program writes LF
    postfix.pf.sendmail(msg)
    got = postfix.deliver(tok)[0].data
    _one_signature(postfix, got)
    _unchanged(postfix, msg, got)
    _verified(postfix, got, verifiers)


def test_sign_via_sendmail_t(postfix: Rig, dkimpy: Any,
                             request: pytest.FixtureRequest) -> None:
    """``sendmail -t`` with no Date/Message-ID: Postfix's cleanup adds them before
    the milter sees the headers, and the signature covers them."""
    tok = _token(request, postfix)
    msg = (f"From: alice@{DOMAIN}\nTo: bob@example.net\nSubject: {tok}\n\nbody\n").encode()
    postfix.pf.sendmail(msg, use_t=True)
    got = postfix.deliver(tok)[0].data
    _one_signature(postfix, got)
    names = [ph.field_name(f) for f in ph.header_fields(got)]
    assert "date" in names and "message-id" in names, names
    _verified(postfix, got, {"dkimpy": dkimpy})


def _ar_results(msg: bytes) -> list[str]:
    out = []
    for v in field_unfolded(msg, "Authentication-Results"):
        out += re.findall(r"\bdkim=(\w+)", v)
    return out


def test_verify_from_external_client(postfix: Rig, dkimpy: Any, keys: dict[str, Any],
                                     request: pytest.FixtureRequest) -> None:
    """127.0.0.1 not in TrustedHosts: the milter verifies and adds
    Authentication-Results (dkim=pass intact, dkim=fail tampered), signs nothing."""
    tok = _token(request, postfix)
    good = dkimpy.sign(ph.message(tok + "-good"), keys["rsa"], "relaxed/relaxed")
    bad = dkimpy.sign(ph.message(tok + "-bad"), keys["rsa"], "relaxed/relaxed")
    bad = bad.replace(b"this is message", b"this is massage")
    with postfix.pf.smtp("verify") as s:
        s.sendmail(f"alice@{DOMAIN}", ["bob@example.net"], good)
        s.sendmail(f"alice@{DOMAIN}", ["bob@example.net"], bad)
    got_good = postfix.deliver(tok + "-good")[0].data
    got_bad = postfix.deliver(tok + "-bad")[0].data
    for label, got, want in (("intact", got_good, "pass"), ("tampered", got_bad, "fail")):
        ar = field_unfolded(got, "Authentication-Results")
        sigs = field_unfolded(got, "DKIM-Signature")
        assert len(sigs) == 1 and "s=rsa" in sigs[0].replace(" ", ""), \
            f"{label}: the milter must not sign here: {sigs}\n{postfix.describe()}"
        assert _ar_results(got) == [want], \
            f"{label}: Authentication-Results {ar}, expected dkim={want}\n{postfix.describe()}"
        assert "header.d=example.com" in ar[0], ar
        # opendkim.conf(5): AuthservID defaults to "the name of the MTA processing
        # the message" (the `j` macro: Postfix's myhostname), not gethostname()
        authserv_id = ar[0].split(";", 1)[0].strip()
        assert authserv_id == postfix.pf.main_cf()["myhostname"], (
            f"{label}: authserv-id {authserv_id!r}, OpenDKIM's default is the MTA's name "
            f"(macro j = {postfix.pf.main_cf()['myhostname']!r}): {ar[0]}")
        print(f"[{postfix.impl} p{postfix.protocol}] {label}: Authentication-Results:{ar[0]}")
    _unchanged(postfix, good, got_good, ("received", "authentication-results"))


SPACING_HEADERS = (
    "From:  Alice <alice@example.com>\n"  # two spaces
    "To:<bob@example.net>\n"  # none
    "Subject:\tTabbed {tok}\n"  # a tab
    "Date: Wed, 25 Nov 2026 12:00:00 +0000\n"
    "Message-ID: <{tok}@example.com>\n"
    "\nbody\n"
)


def test_header_leading_whitespace_simple(postfix: Rig, dkimpy: Any, mail_dkim: Any,
                                          request: pytest.FixtureRequest) -> None:
    """simple/simple, fields whose value does not start with exactly one space.

    Protocol 6: Postfix offers SMFIP_HDR_LEADSPC, the milter sees the exact bytes
    and the signature verifies. Protocol 2: Postfix strips one space if there
    is one and the milter cannot know what was there; OpenDKIM assumes one
    space, so such a signature fails at receivers (recorded, and asserted as
    the documented behaviour). Delivered bytes are unchanged either way.
    """
    tok = _token(request, postfix)
    odd = ph.crlf(SPACING_HEADERS.format(tok=tok + "-odd"))
    plain = ph.message(tok + "-plain")
    postfix.tap.clear()
    with postfix.pf.smtp("simple") as s:
        s.sendmail(f"alice@{DOMAIN}", ["bob@example.net"], odd)
        s.sendmail(f"alice@{DOMAIN}", ["bob@example.net"], plain)
    got_odd = postfix.deliver(tok + "-odd")[0].data
    got_plain = postfix.deliver(tok + "-plain")[0].data
    _unchanged(postfix, odd, got_odd)
    assert _one_signature(postfix, got_odd)["c"] == "simple/simple"
    seen = {k: v for k, v in postfix.tap.headers_of((tok + "-odd").encode()).items()
            if k in ("From", "To", "Subject")}
    neg = postfix.tap.negotiation()
    leadspc = "HDR_LEADSPC" in neg.get("milter", {}).get("protocol", [])  # type: ignore[union-attr]
    verdicts = {"dkimpy": dkimpy.verify(got_odd), "Mail::DKIM": mail_dkim.verify(got_odd)}
    results = {k: [s.result for s in v.sigs] for k, v in verdicts.items()}
    print(f"[{postfix.impl} p{postfix.protocol}] milter asked for HDR_LEADSPC: {leadspc}; "
          f"header values as the milter saw them: {seen}; receivers: {results}")
    _verified(postfix, got_plain, {"dkimpy": dkimpy, "Mail::DKIM": mail_dkim})
    if postfix.protocol >= 6:
        assert leadspc, f"the milter did not ask for SMFIP_HDR_LEADSPC: {neg}"
        assert seen["Subject"].startswith(b"\t") and seen["To"].startswith(b"<") \
            and seen["From"].startswith(b"  "), seen
        _verified(postfix, got_odd, {"dkimpy": dkimpy, "Mail::DKIM": mail_dkim})
    else:
        # Postfix stripped one space from From (two -> one) and nothing else
        assert seen["From"] == b" Alice <alice@example.com>", seen
        assert seen["Subject"].startswith(b"\t") and seen["To"].startswith(b"<"), seen
        assert results == {"dkimpy": ["fail"], "Mail::DKIM": ["fail"]}, (
            "protocol 2: expected the documented failure (the milter assumes one space "
            f"after the colon): {results}")


def test_several_messages_one_connection(postfix: Rig, dkimpy: Any, opendkim: Any,
                                         request: pytest.FixtureRequest) -> None:
    """Five messages over one SMTP connection, one from a domain with no
    SigningTable entry, one RSET in between: each signed (or not) on its own."""
    tok = _token(request, postfix)
    plan = [("a", True), ("b", True), ("other", False), ("c", True), ("d", True)]
    with postfix.pf.smtp() as s:
        for i, (tag, sign) in enumerate(plan):
            sender = f"alice@{DOMAIN}" if sign else "zed@example.org"
            msg = ph.message(f"{tok}-{tag}", sender=sender,
                             body=f"message {i}\n" + "line\n" * (i * 1000))
            if i == 3:
                s.rset()
            s.sendmail(sender, ["bob@example.net", "carol@example.net"], msg)
    for tag, sign in plan:
        got = postfix.deliver(f"{tok}-{tag}")[0].data
        sigs = field_unfolded(got, "DKIM-Signature")
        if not sign:
            assert sigs == [], f"example.org has no SigningTable entry: {sigs}"
            continue
        _one_signature(postfix, got)
        _verified(postfix, got, {"dkimpy": dkimpy, "opendkim": opendkim})


def test_large_message(postfix: Rig, dkimpy: Any, request: pytest.FixtureRequest) -> None:
    """50 MB through smtpd and the milter: delivered intact and signed; prints the
    milter's peak RSS (VmHWM) before and after."""
    if postfix.protocol != 6:
        pytest.skip("50 MB once per implementation (milter_protocol = 6)")
    tok = _token(request, postfix)
    sign = postfix.milters["sign"]
    before = sign.memory()
    body = ph.big_body(50 * 1000 * 1000)
    msg = ph.message(tok, body="") + body
    t0 = time.monotonic()
    postfix.pf.send_smtp(msg, timeout=180)
    caught = postfix.deliver(tok, timeout=150)[0]
    elapsed = time.monotonic() - t0
    after = sign.memory()
    got = caught.data
    head, got_body = split_message(got)
    assert hashlib.sha256(got_body).hexdigest() == hashlib.sha256(body).hexdigest(), \
        f"body changed: {len(got_body)} bytes arrived, {len(body)} sent"
    _one_signature(postfix, got)
    _verified(postfix, got, {"dkimpy": dkimpy})
    fmt = "; ".join(f"pid {p} {m['name']}: VmHWM {m['VmHWM']} KiB"  # type: ignore[str-bytes-safe]
                    for p, m in sorted(after.items()))
    fmt0 = "; ".join(f"pid {p}: {m['VmHWM']} KiB" for p, m in sorted(before.items()))
    print(f"[{postfix.impl}] 50 MB message: {len(msg)} bytes in {elapsed:.1f}s; "
          f"milter peak RSS before: {fmt0}; after: {fmt}")


def test_dead_milter_tempfails(postfix: Rig, request: pytest.FixtureRequest) -> None:
    """milter_default_action = tempfail: with no milter listening, Postfix answers 4xx
    and nothing is delivered (the tutorial's `accept` would pass mail unsigned)."""
    tok = _token(request, postfix)
    with pytest.raises(smtplib.SMTPResponseException) as ei:
        try:
            postfix.pf.send_smtp(ph.message(tok), listener="dead", timeout=60)
        except smtplib.SMTPRecipientsRefused as e:
            code, text = next(iter(e.recipients.values()))
            raise smtplib.SMTPResponseException(code, text) from e
    assert 400 <= ei.value.smtp_code < 500, ei.value
    with pytest.raises(TimeoutError):
        postfix.catcher.wait_for(1, 1.0, tok.encode())


def test_milter_conversation(postfix: Rig, request: pytest.FixtureRequest) -> None:
    """What Postfix sends and what the milter asks for (recorded by the tap)."""
    tok = _token(request, postfix)
    postfix.tap.clear()
    postfix.pf.send_smtp(ph.message(tok), listener="simple")
    postfix.deliver(tok)
    neg = postfix.tap.negotiation()
    macros = postfix.tap.macros()
    mods = postfix.tap.modifications()
    cf = postfix.pf.postconf("milter_connect_macros", "milter_helo_macros",
                             "milter_mail_macros", "milter_rcpt_macros",
                             "milter_data_macros", "milter_end_of_header_macros",
                             "milter_end_of_data_macros")
    print(f"[{postfix.impl} p{postfix.protocol}] Postfix macro settings (defaults): {cf}")
    print(f"[{postfix.impl} p{postfix.protocol}] negotiation: {neg}")
    print(f"[{postfix.impl} p{postfix.protocol}] macros by command: {macros}")
    print(f"[{postfix.impl} p{postfix.protocol}] modifications: "
          f"{[(c, f[:2] + [f[2][:40] + b'...'] if len(f) > 2 else f) for c, f in mods]}")
    mta, milter = neg["mta"], neg["milter"]
    assert mta["version"] == postfix.protocol  # type: ignore[index]
    assert milter["version"] <= postfix.protocol  # type: ignore[index]
    assert ("HDR_LEADSPC" in mta["protocol"]) == (postfix.protocol >= 6)  # type: ignore[index]
    assert "ADDHDRS" in milter["actions"] or "CHGHDRS" in milter["actions"]  # type: ignore[index]
    assert {"j", "{daemon_name}"} <= set(macros.get("C", {})), macros
    assert macros.get("E", {}).get("i"), macros
    # the signature was added (inserted at the top or appended)
    added = [f for c, f in mods if c in "hi" and f[-2].lower() == b"dkim-signature"]
    assert len(added) == 1, mods
    value = added[0][-1]
    # without HDR_LEADSPC Postfix adds the space after the colon itself; with it
    # the milter must start the value with one
    if "HDR_LEADSPC" in milter["protocol"]:  # type: ignore[index]
        assert value.startswith(b" ") and not value.startswith(b"  "), value[:20]
    else:
        assert not value.startswith((b" ", b"\t")), value[:20]


def test_sendmail_milter_conversation(postfix: Rig, dkimpy: Any,
                                      request: pytest.FixtureRequest) -> None:
    """What the milter sees for ``sendmail`` mail (non_smtpd_milters): a second
    private Postfix (running beside the first) whose non_smtpd_milters goes
    through a tap to the ``sign`` milter."""
    tok = _token(request, postfix)
    tap = ph.MilterTap(("127.0.0.1", postfix.milters["sign"].port)).start()
    pf = ph.PostfixInstance(postfix.catcher.port, {
        "smtpd_milters": "",
        "non_smtpd_milters": f"inet:127.0.0.1:{tap.port}",
        "milter_protocol": str(postfix.protocol),
        "milter_default_action": "tempfail",
    })
    try:
        pf.start()
        pf.sendmail(ph.message(tok).replace(b"\r\n", b"\n"))
        got = postfix.catcher.wait_for(1, 30, tok.encode())[0].data
    except (AssertionError, TimeoutError) as e:
        raise AssertionError(f"{e}\n{pf.describe()}") from None
    finally:
        pf.cleanup()
        tap.stop()
    _one_signature(postfix, got)
    _verified(postfix, got, {"dkimpy": dkimpy})
    macros, conns = tap.macros(), tap.connects()
    print(f"[{postfix.impl} p{postfix.protocol}] sendmail path: connect {conns}; "
          f"macros {macros}; negotiation {tap.negotiation()}")
    assert conns and conns[0].get("address") == "127.0.0.1", conns
    assert macros.get("E", {}).get("i"), macros
