"""OpenDKIM's own ``miltertest`` driving ``mailseal milter`` with Lua scripts.

miltertest (Debian 12: package ``miltertest``, built from the OpenDKIM source;
not part of ``opendkim-tools`` there) plays the MTA: it negotiates, sends the
connection, envelope, headers and body and records what the filter asked for
at end of message. The scripts are written per test into a temp directory and
run with ``miltertest -s FILE``; each test checks miltertest's exit status,
its standard error, and the values the script prints (``@@key=hex`` lines).

The milter is ``python -m mailseal milter -f -x CONF`` with the tutorial's
files (postfix_harness.Milter: opendkim.conf, TrustedHosts with its two traps,
refile: KeyTable/SigningTable, the ``opendkim-genkey -s mail`` key), on a free
127.0.0.1 port, stopped by PID. Signatures the milter returns are put on the
message the script sent and verified by dkimpy against the loopback nsd, so a
check is "the receiver would say pass", not only "a header came back".

What each test checks:

- ``test_sign_conversation[variant]``: an internal client (127.0.0.1), a
  SigningTable sender, a body in three chunks; the filter inserts (or, when
  the MTA offers no SMFIF_CHGHDRS, adds) one DKIM-Signature (d=example.com,
  s=mail) that verifies, and the final reply is CONTINUE or ACCEPT. Variants
  are the option negotiations miltertest can offer: its own default, each
  Postfix ``milter_protocol`` (2, 2 with ``no_header_reply``, 3, 4, 6), and
  version 6 without the no-reply flags, without HDR_LEADSPC, without
  CHGHDRS, without SETSYMLIST. The filter never asks for a step flag or an
  action the MTA did not offer.
- ``test_verify_conversation``: an external client; a dkimpy-signed message
  gets ``Authentication-Results: mx.example.com; dkim=pass``, a tampered copy
  ``dkim=fail``, an unsigned one nothing; a forged Authentication-Results
  claiming our authserv-id is deleted, a foreign one kept; nothing is signed.
- ``test_several_messages_with_aborts[2|6]``: one connection: signed, aborted
  after the headers, aborted mid-body, a sender with no SigningTable match
  (untouched), signed again; each signature verifies (so no state leaked
  from an aborted message into the next).
- ``test_refuses_mta_without_addhdrs``: an MTA that does not offer
  SMFIF_ADDHDRS, or speaks milter protocol version 1. libmilter refuses
  version 1 and OpenDKIM refuses the connection without ADDHDRS
  (mlfi_negotiate returns SMFIS_REJECT); mailseal must at least never send a
  header change it was not allowed.

Notes on miltertest 1.6.0 (Debian 12):
- ``mt.negotiate(conn, version, steps, actions)``: the code takes the protocol
  steps third and the actions fourth, the opposite of what miltertest(8) says
  (checked: SMFIP_HDR_LEADSPC offered as the third argument is agreed).
- It honours the SMFIP_NR_* flags the filter asks for (reads no reply, and
  ``mt.getreply`` then says CONTINUE) and the SMFIP_NO* flags (a script must
  test them with ``mt.test_option`` before, e.g., ``mt.rcptto``); with
  SMFIP_HDR_LEADSPC agreed it puts one space before each header value.
- Lua 5.3; macro types other than SMFIC_CONNECT/HELO/MAIL/RCPT are passed as
  numbers ('E' = 69 for end of message).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

try:  # tests/ as packages, or (the default) rootdir-relative imports
    from . import interop_harness as ih
    from . import postfix_harness as ph
except ImportError:
    import interop_harness as ih  # type: ignore[no-redef]
    import postfix_harness as ph  # type: ignore[no-redef]

pytestmark = pytest.mark.integration

DOMAIN = ih.DOMAIN
MILTERTEST = "miltertest"
APT_MILTERTEST = "apt-get install -y miltertest"
AUTHSERV = "mx.example.com"  # the `j` macro the scripts send, as Postfix's myhostname

# Flag values (libmilter's mfdef.h), written out so the test does not lean on
# mailseal's own tables.
SMFIP = {
    "NOCONNECT": 0x1, "NOHELO": 0x2, "NOMAIL": 0x4, "NORCPT": 0x8, "NOBODY": 0x10,
    "NOHDRS": 0x20, "NOEOH": 0x40, "NR_HDR": 0x80, "NOUNKNOWN": 0x100, "NODATA": 0x200,
    "SKIP": 0x400, "RCPT_REJ": 0x800, "NR_CONN": 0x1000, "NR_HELO": 0x2000,
    "NR_MAIL": 0x4000, "NR_RCPT": 0x8000, "NR_DATA": 0x10000, "NR_UNKN": 0x20000,
    "NR_EOH": 0x40000, "NR_BODY": 0x80000, "HDR_LEADSPC": 0x100000,
}
SMFIF = {
    "ADDHDRS": 0x1, "CHGBODY": 0x2, "ADDRCPT": 0x4, "DELRCPT": 0x8, "CHGHDRS": 0x10,
    "QUARANTINE": 0x20, "CHGFROM": 0x40, "ADDRCPT_PAR": 0x80, "SETSYMLIST": 0x100,
}
# miltertest's defaults for nil arguments: SMFI_PROT_VERSION, SMFI_CURR_PROT, SMFI_CURR_ACTS
MT_DEFAULT = (6, 0x1FFFFF, 0x1FF)
POSTFIX_V2_STEPS = 0x7F  # NOCONNECT..NOEOH (milter8.c MILTER8_V2_PROTO_MASK)
POSTFIX_ACTS = 0x1FF
NO_STEPS = 0x7F | 0x100 | 0x200 | 0x400  # every NO* flag and SKIP, no NR_*, no LEADSPC

# name -> (version, steps, actions); None = miltertest's default
VARIANTS: dict[str, tuple[int | None, int | None, int | None]] = {
    "miltertest-default": (None, None, None),
    "postfix-v2": (2, POSTFIX_V2_STEPS, POSTFIX_ACTS),
    "postfix-v2-no_header_reply": (2, POSTFIX_V2_STEPS | SMFIP["NR_HDR"], POSTFIX_ACTS),
    "postfix-v3": (3, POSTFIX_V2_STEPS | 0x100, POSTFIX_ACTS),
    "postfix-v4": (4, POSTFIX_V2_STEPS | 0x100 | 0x200, POSTFIX_ACTS),
    "postfix-v6": (6, 0x1FFFFF, POSTFIX_ACTS),
    "v6-no-noreply-flags": (6, NO_STEPS | SMFIP["HDR_LEADSPC"], POSTFIX_ACTS),
    "v6-no-leadspc": (6, 0x1FFFFF & ~SMFIP["HDR_LEADSPC"], POSTFIX_ACTS),
    "v6-addhdrs-only": (6, 0x1FFFFF, SMFIF["ADDHDRS"]),
    "v6-no-setsymlist": (6, 0x1FFFFF, 0xFF),
}
REFUSED_VARIANTS = ("v6-addhdrs-only",)

BODY_LINE = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"


# --------------------------------------------------------------------------
# Lua generation


def lua_str(value: bytes | str) -> str:
    """A Lua string literal for ``value`` (every non-printable byte as \\ddd)."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    out = []
    for b in data:
        c = chr(b)
        if 32 <= b < 127 and c not in '"\\':
            out.append(c)
        else:
            out.append(f"\\{b:03d}")
    return '"' + "".join(out) + '"'


PRELUDE = r"""
-- generated by tests/integration/test_miltertest.py
local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end
function report(key, value)
  mt.echo("@@" .. key .. "=" .. hex(tostring(value)))
end
function step(what, r)
  if r ~= nil then error(what .. " failed: " .. tostring(r), 0) end
end
function replychar(conn)
  local r = mt.getreply(conn)
  if r == nil or r == 0 then return "?" end
  return string.char(math.floor(r))
end
STEPS = {
  NOCONNECT = SMFIP_NOCONNECT, NOHELO = SMFIP_NOHELO, NOMAIL = SMFIP_NOMAIL,
  NORCPT = SMFIP_NORCPT, NOBODY = SMFIP_NOBODY, NOHDRS = SMFIP_NOHDRS, NOEOH = SMFIP_NOEOH,
  NR_HDR = SMFIP_NR_HDR, NOUNKNOWN = SMFIP_NOUNKNOWN, NODATA = SMFIP_NODATA,
  SKIP = SMFIP_SKIP, RCPT_REJ = SMFIP_RCPT_REJ, NR_CONN = SMFIP_NR_CONN,
  NR_HELO = SMFIP_NR_HELO, NR_MAIL = SMFIP_NR_MAIL, NR_RCPT = SMFIP_NR_RCPT,
  NR_DATA = SMFIP_NR_DATA, NR_UNKN = SMFIP_NR_UNKN, NR_EOH = SMFIP_NR_EOH,
  NR_BODY = SMFIP_NR_BODY, HDR_LEADSPC = SMFIP_HDR_LEADSPC,
}
ACTIONS = {
  ADDHDRS = SMFIF_ADDHDRS, CHGBODY = SMFIF_CHGBODY, ADDRCPT = SMFIF_ADDRCPT,
  DELRCPT = SMFIF_DELRCPT, CHGHDRS = SMFIF_CHGHDRS, QUARANTINE = SMFIF_QUARANTINE,
  CHGFROM = SMFIF_CHGFROM, ADDRCPT_PAR = SMFIF_ADDRCPT_PAR, SETSYMLIST = SMFIF_SETSYMLIST,
}
function report_negotiation(conn)
  local steps, acts = {}, {}
  for name, flag in pairs(STEPS) do
    if flag ~= nil and mt.test_option(conn, flag) then steps[#steps + 1] = name end
  end
  for name, flag in pairs(ACTIONS) do
    if flag ~= nil and mt.test_action(conn, flag) then acts[#acts + 1] = name end
  end
  table.sort(steps)
  table.sort(acts)
  report("steps", table.concat(steps, ","))
  report("actions", table.concat(acts, ","))
end
function open(sock, version, steps, actions)
  local conn = mt.connect(sock, 20, 0.25)
  if conn == nil then error("mt.connect(" .. sock .. ") failed", 0) end
  step("mt.negotiate", mt.negotiate(conn, version, steps, actions))
  report("negotiate", replychar(conn))
  report_negotiation(conn)
  return conn
end
function connect_client(conn, host, ip)
  mt.macro(conn, SMFIC_CONNECT, "j", "mx.example.com", "{daemon_name}", "smtpd",
           "{client_addr}", ip, "_", host .. " [" .. ip .. "]")
  step("mt.conninfo", mt.conninfo(conn, host, ip))
  report("conninfo", replychar(conn))
end
-- One message: tag names its report keys. abort_at: nil, "mail", "headers", "body".
function message(conn, tag, m)
  mt.macro(conn, SMFIC_MAIL, "i", m.qid, "{mail_addr}", m.mail_addr)
  step(tag .. " mt.mailfrom", mt.mailfrom(conn, m.from))
  report(tag .. ".mail", replychar(conn))
  if m.abort_at == "mail" then
    step(tag .. " mt.abort", mt.abort(conn))
    report(tag .. ".aborted", "mail")
    return
  end
  if not mt.test_option(conn, SMFIP_NORCPT) then
    for _, rcpt in ipairs(m.rcpts) do
      step(tag .. " mt.rcptto", mt.rcptto(conn, rcpt))
      report(tag .. ".rcpt", replychar(conn))
    end
  end
  for i, h in ipairs(m.headers) do
    step(tag .. " mt.header " .. h[1], mt.header(conn, h[1], h[2]))
    local r = replychar(conn)
    if r ~= "c" then report(tag .. ".header" .. i, r) end
  end
  if m.abort_at == "headers" then
    step(tag .. " mt.abort", mt.abort(conn))
    report(tag .. ".aborted", "headers")
    return
  end
  step(tag .. " mt.eoh", mt.eoh(conn))
  report(tag .. ".eoh", replychar(conn))
  for i, chunk in ipairs(m.body) do
    step(tag .. " mt.bodystring", mt.bodystring(conn, chunk))
    report(tag .. ".body" .. i, replychar(conn))
    if m.abort_at == "body" then
      step(tag .. " mt.abort", mt.abort(conn))
      report(tag .. ".aborted", "body")
      return
    end
  end
  mt.macro(conn, 69, "i", m.qid)
  step(tag .. " mt.eom", mt.eom(conn))
  report(tag .. ".eom", replychar(conn))
  report(tag .. ".inserted", tostring(mt.eom_check(conn, MT_HDRINSERT)))
  report(tag .. ".added", tostring(mt.eom_check(conn, MT_HDRADD)))
  report(tag .. ".ins_sig", tostring(mt.eom_check(conn, MT_HDRINSERT, "DKIM-Signature")))
  report(tag .. ".add_sig", tostring(mt.eom_check(conn, MT_HDRADD, "DKIM-Signature")))
  report(tag .. ".ar_deleted", tostring(mt.eom_check(conn, MT_HDRDELETE, "Authentication-Results")))
  for i = 1, 2 do
    report(tag .. ".ar_deleted" .. i,
           tostring(mt.eom_check(conn, MT_HDRDELETE, "Authentication-Results", i)))
  end
  report(tag .. ".changed", tostring(mt.eom_check(conn, MT_HDRCHANGE)))
  for _, name in ipairs({"DKIM-Signature", "Authentication-Results"}) do
    for i = 0, 3 do
      local v = mt.getheader(conn, name, i)
      if v == nil then break end
      report(tag .. "." .. name .. "." .. i, v)
    end
  end
end
"""


def lua_list(items: Sequence[str]) -> str:
    return "{" + ", ".join(items) + "}"


@dataclass
class Msg:
    """One message for a script: headers as (name, value after ``Name: ``), body chunks."""

    tag: str
    headers: list[tuple[str, bytes]]
    body: list[bytes]
    sender: str = f"alice@{DOMAIN}"
    rcpts: tuple[str, ...] = ("bob@example.net",)
    abort_at: str | None = None
    qid: str = ""

    def lua(self, conn: str = "conn") -> str:
        hdrs = lua_list([f"{{{lua_str(n)}, {lua_str(v)}}}" for n, v in self.headers])
        body = lua_list([lua_str(c) for c in self.body])
        rcpts = lua_list([lua_str(f"<{r}>") for r in self.rcpts])
        abort = lua_str(self.abort_at) if self.abort_at else "nil"
        qid = self.qid or re.sub(r"[^A-Z0-9]", "", self.tag.upper())[:12] or "QID"
        return (f"message({conn}, {lua_str(self.tag)}, {{qid = {lua_str(qid)}, "
                f"from = {lua_str('<' + self.sender + '>')}, mail_addr = {lua_str(self.sender)}, "
                f"rcpts = {rcpts}, headers = {hdrs}, body = {body}, abort_at = {abort}}})\n")

    def as_delivered(self, added: Sequence[tuple[str, bytes]] = ()) -> bytes:
        """The message as the MTA would pass it on: added fields on top (``value``
        exactly as it follows the colon), then ours, CRLF throughout."""
        out = b""
        for name, value in added:
            out += name.encode() + b":" + value.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") \
                + b"\r\n"
        for name, value in self.headers:
            out += name.encode() + b": " + value.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") \
                + b"\r\n"
        return out + b"\r\n" + b"".join(self.body)


def plain_msg(tag: str, *, sender: str = f"alice@{DOMAIN}", body: Sequence[bytes] | None = None,
              abort_at: str | None = None) -> Msg:
    headers = [
        ("From", f"Alice <{sender}>".encode()),
        ("To", b"Bob <bob@example.net>"),
        ("Subject", f"miltertest {tag}".encode()),
        ("Date", b"Wed, 25 Nov 2026 12:00:00 +0000"),
        ("Message-ID", f"<{tag}@{DOMAIN}>".encode()),
    ]
    if body is None:
        body = [f"Hello Bob,\r\n\r\nthis is {tag}.\r\n".encode()]
    return Msg(tag, headers, list(body), sender=sender, abort_at=abort_at)


def split_for_milter(raw: bytes) -> list[tuple[str, bytes]]:
    """A message's header fields as (name, value) the way an MTA passes them: the
    one space after the colon left out, folded lines joined by LF."""
    out = []
    for f in ph.header_fields(ih.to_crlf(raw)):
        name, _, value = f.partition(b":")
        value = value.rstrip(b"\r\n").replace(b"\r\n", b"\n")
        if value.startswith(b" "):
            value = value[1:]
        out.append((name.decode("latin-1"), value))
    return out


# --------------------------------------------------------------------------
# running miltertest


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    script: Path
    values: dict[str, str] = field(default_factory=dict)

    def describe(self, milter: ph.Milter | None = None) -> str:
        text = (f"$ miltertest -s {self.script}\nexit {self.rc}\n--- stdout ---\n"
                f"{self.stdout[-6000:]}\n--- stderr ---\n{self.stderr[-3000:]}")
        if milter is not None:
            text += "\n" + milter.log(3000)
        return text

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.values.get(key, default)


@dataclass
class MilterTestRig:
    binary: str
    milter: ph.Milter
    workdir: Path
    n: int = 0

    @property
    def sock(self) -> str:
        return f"inet:{self.milter.port}@127.0.0.1"

    def run(self, body: str, name: str, timeout: float = 60) -> Run:
        self.n += 1
        script = self.workdir / f"{self.n:03d}-{name}.lua"
        # the body runs under xpcall so a Lua error reaches stderr with a traceback
        # (miltertest itself exits 1 and prints nothing for some of them)
        script.write_text(
            f"SOCK = {lua_str(self.sock)}\n" + PRELUDE
            + "local ok, err = xpcall(function()\n" + body + "end, debug.traceback)\n"
            + 'if not ok then io.stderr:write("script error: " .. tostring(err) .. "\\n") '
            + "os.exit(3) end\n")
        cp = ih.run([self.binary, "-s", script], timeout=timeout)
        out = cp.stdout.decode("utf-8", "replace")
        values = {}
        for line in out.splitlines():
            if line.startswith("@@") and "=" in line:
                k, _, v = line[2:].partition("=")
                values[k] = bytes.fromhex(v).decode("utf-8", "replace")
        return Run(cp.returncode, out, cp.stderr.decode("utf-8", "replace"), script, values)

    def run_ok(self, body: str, name: str) -> Run:
        r = self.run(body, name)
        assert r.rc == 0 and not r.stderr.strip(), \
            f"miltertest failed:\n{r.describe(self.milter)}"
        assert self.milter.alive(), f"the milter died:\n{r.describe(self.milter)}"
        return r


@pytest.fixture(scope="module")
def rig(keys: dict[str, ih.Key], dns_server: ih.DnsServer) -> Iterator[MilterTestRig]:
    binary = shutil.which(MILTERTEST) or (
        "/usr/bin/miltertest" if Path("/usr/bin/miltertest").exists() else None)
    if binary is None:
        pytest.skip(f"miltertest is not installed: {APT_MILTERTEST}")
    ok, out = ph.mailseal_milter_available()
    if not ok:
        pytest.skip(f"mailseal milter not available yet: {out}")
    base = ph.safe_base("mailseal-miltertest-")
    m = ph.Milter("mailseal", "miltertest", base / "milter", keys[ph.SELECTOR], dns_server.addr,
                  extra=("MailsealWorkers 2",))
    try:
        m.start()
        work = base / "lua"
        work.mkdir()
        yield MilterTestRig(binary, m, work)
    finally:
        m.stop()
        shutil.rmtree(base, ignore_errors=True)


def flags(text: str | None) -> set[str]:
    return {f for f in (text or "").split(",") if f}


def mask_names(mask: int, table: dict[str, int]) -> set[str]:
    return {n for n, bit in table.items() if mask & bit}


def verify_pass(dkimpy: Any, msg: bytes, where: str) -> None:
    v = dkimpy.verify(msg)
    got = [(s.result, s.domain, s.selector) for s in v.sigs]
    assert got == [("pass", DOMAIN, ph.SELECTOR)], \
        f"{where}: dkimpy says {got}\n{v}\n--- message ---\n{msg[:3000].decode('latin-1')}"


# --------------------------------------------------------------------------
# tests


def _big_body() -> list[bytes]:
    line = (BODY_LINE + "\r\n").encode()
    return [line * 900, line * 900, b"the end\r\n\r\n"]  # 59,400 + 59,400 + 11 bytes


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_sign_conversation(rig: MilterTestRig, dkimpy: Any, variant: str) -> None:
    version, steps, actions = VARIANTS[variant]
    offered_steps = MT_DEFAULT[1] if steps is None else steps
    offered_acts = MT_DEFAULT[2] if actions is None else actions
    msg = plain_msg(f"sign-{variant}", body=_big_body())
    script = (f"conn = open(SOCK, {version or 'nil'}, {steps if steps is not None else 'nil'}, "
              f"{actions if actions is not None else 'nil'})\n"
              'connect_client(conn, "localhost", "127.0.0.1")\n'
              + msg.lua() + "mt.disconnect(conn)\n")
    if variant in REFUSED_VARIANTS:
        # As OpenDKIM: without CHGHDRS forged Authentication-Results could not be
        # removed, so the connection is refused at negotiation (KeepAuthResults no).
        r = rig.run(script, f"sign-{variant}")
        assert r.rc != 0 and "mt.negotiate failed" in r.stderr, r.describe(rig.milter)
        assert rig.milter.alive(), r.describe(rig.milter)
        assert "cannot work with this MTA" in rig.milter.log(4000)
        return
    r = rig.run_ok(script, f"sign-{variant}")
    ctx = r.describe(rig.milter)
    asked_steps, asked_acts = flags(r.get("steps")), flags(r.get("actions"))
    print(f"[{variant}] offered steps {sorted(mask_names(offered_steps, SMFIP))}, "
          f"actions {sorted(mask_names(offered_acts, SMFIF))}; mailseal asked for steps "
          f"{sorted(asked_steps)}, actions {sorted(asked_acts)}")
    assert r.get("negotiate") == "O", ctx
    assert asked_steps <= mask_names(offered_steps, SMFIP), \
        f"the filter asked for steps the MTA did not offer: {asked_steps}\n{ctx}"
    assert asked_acts <= mask_names(offered_acts, SMFIF), \
        f"the filter asked for actions the MTA did not offer: {asked_acts}\n{ctx}"
    assert "ADDHDRS" in asked_acts, ctx
    assert r.get("conninfo") == "c", ctx
    tag = msg.tag
    assert r.get(f"{tag}.eoh") == "c", ctx
    assert r.get(f"{tag}.eom") in ("c", "a"), f"final reply {r.get(f'{tag}.eom')!r}\n{ctx}"
    can_insert = bool(offered_acts & SMFIF["CHGHDRS"])
    assert r.get(f"{tag}.ins_sig") == str(can_insert).lower(), ctx
    assert r.get(f"{tag}.add_sig") == str(not can_insert).lower(), ctx
    assert r.get(f"{tag}.DKIM-Signature.1") is None, f"more than one signature\n{ctx}"
    sig = r.get(f"{tag}.DKIM-Signature.0")
    assert sig is not None, ctx
    leadspc = "HDR_LEADSPC" in asked_steps
    # with HDR_LEADSPC the filter writes the space after the colon itself; without
    # it the MTA adds one (and the filter must not)
    if leadspc:
        assert sig.startswith(" ") and not sig.startswith("  "), repr(sig[:20])
        value = sig.encode()
    else:
        assert not sig.startswith((" ", "\t")), repr(sig[:20])
        value = b" " + sig.encode()
    tags = ih.dkim_tags(sig)
    assert tags.get("d") == DOMAIN and tags.get("s") == ph.SELECTOR, tags
    assert tags.get("c") == "relaxed/simple", tags  # the tutorial's Canonicalization
    verify_pass(dkimpy, msg.as_delivered([("DKIM-Signature", value)]), variant)
    assert f"{tag}.Authentication-Results.0" not in r.values, f"signed mail verified?\n{ctx}"


def test_verify_conversation(rig: MilterTestRig, dkimpy: Any, keys: dict[str, ih.Key]) -> None:
    """External client (198.51.100.7): verified, not signed."""
    def signed(tag: str) -> bytes:
        raw = ph.message(f"verify-{tag}")
        return dkimpy.sign(raw, keys["rsa"], "relaxed/relaxed")

    good = signed("good")
    bad = signed("bad").replace(b"this is message", b"this is massage")
    forged = (f"Authentication-Results: {AUTHSERV}; dkim=pass header.d=example.com\r\n"
              "Authentication-Results: other.example.net; dkim=pass header.d=example.org\r\n"
              ).encode()
    msgs = []
    for tag, raw in (("good", forged + good), ("bad", bad), ("none", ph.message("verify-none"))):
        head, body = ih.split_message(raw)
        msgs.append(Msg(f"verify-{tag}", split_for_milter(head), [body]))
    script = ("conn = open(SOCK, nil, nil, nil)\n"
              'connect_client(conn, "mail.example.net", "198.51.100.7")\n'
              + "".join(m.lua() for m in msgs) + "mt.disconnect(conn)\n")
    r = rig.run_ok(script, "verify")
    ctx = r.describe(rig.milter)
    for m, want in zip(msgs, ("pass", "fail", None), strict=True):
        t = m.tag
        assert r.get(f"{t}.eom") in ("c", "a"), f"{t}: final reply {r.get(f'{t}.eom')}\n{ctx}"
        assert r.get(f"{t}.DKIM-Signature.0") is None, f"{t}: the filter signed\n{ctx}"
        ar = r.get(f"{t}.Authentication-Results.0")
        print(f"[{t}] Authentication-Results:{ar}")
        if want is None:
            assert ar is None and r.get(f"{t}.inserted") == "false" \
                and r.get(f"{t}.added") == "false", f"{t}: unsigned mail changed\n{ctx}"
            continue
        assert ar is not None, f"{t}: no Authentication-Results\n{ctx}"
        authserv, _, rest = ar.strip().partition(";")
        assert authserv == AUTHSERV, f"{t}: authserv-id {authserv!r}\n{ctx}"
        assert re.findall(r"\bdkim=(\w+)", rest) == [want], f"{t}: {ar}\n{ctx}"
        assert "header.d=example.com" in rest and "header.s=rsa" in rest, ar
    # the forged field claiming our authserv-id goes (the first A-R), the foreign one stays
    assert r.get("verify-good.ar_deleted1") == "true", ctx
    assert r.get("verify-good.ar_deleted2") == "false", ctx
    assert r.get("verify-bad.ar_deleted") == "false", ctx


@pytest.mark.parametrize("proto", [2, 6], ids=lambda p: f"v{p}")
def test_several_messages_with_aborts(rig: MilterTestRig, dkimpy: Any, proto: int) -> None:
    steps = POSTFIX_V2_STEPS if proto == 2 else 0x1FFFFF
    p = f"abort{proto}"
    msgs = [
        plain_msg(f"{p}-first"),
        plain_msg(f"{p}-aborted-at-mail", abort_at="mail"),
        plain_msg(f"{p}-aborted-after-headers", abort_at="headers"),
        plain_msg(f"{p}-aborted-mid-body", abort_at="body",
                  body=[b"half a body that never ends\r\n", b"second chunk\r\n"]),
        plain_msg(f"{p}-no-match", sender="zed@example.org"),
        plain_msg(f"{p}-last", body=[b"a different body\r\n", b"in two chunks\r\n"]),
    ]
    script = (f"conn = open(SOCK, {proto}, {steps}, {POSTFIX_ACTS})\n"
              'connect_client(conn, "localhost", "127.0.0.1")\n'
              + "".join(m.lua() for m in msgs) + "mt.disconnect(conn)\n")
    r = rig.run_ok(script, p)
    ctx = r.describe(rig.milter)
    leadspc = "HDR_LEADSPC" in flags(r.get("steps"))
    for m in msgs:
        t = m.tag
        if m.abort_at:
            assert r.get(f"{t}.aborted") == m.abort_at and r.get(f"{t}.eom") is None, ctx
            continue
        assert r.get(f"{t}.eom") in ("c", "a"), f"{t}: final reply {r.get(f'{t}.eom')}\n{ctx}"
        sig = r.get(f"{t}.DKIM-Signature.0")
        if m.sender.endswith("@example.org"):
            assert sig is None and r.get(f"{t}.inserted") == "false" \
                and r.get(f"{t}.added") == "false", f"{t}: no SigningTable match\n{ctx}"
            continue
        assert sig is not None and r.get(f"{t}.DKIM-Signature.1") is None, f"{t}\n{ctx}"
        value = sig.encode() if leadspc else b" " + sig.encode()
        verify_pass(dkimpy, m.as_delivered([("DKIM-Signature", value)]), t)


def test_refuses_mta_without_addhdrs(rig: MilterTestRig) -> None:
    """An MTA that may not add headers (no SMFIF_ADDHDRS), or speaks version 1.

    OpenDKIM's mlfi_negotiate returns SMFIS_REJECT without ADDHDRS and libmilter
    refuses a version below 2 (SMFI_PROT_VERSION_MIN), closing the connection;
    mailseal's negotiation.py says the same ("the caller logs it and closes").
    Either way the filter must never ask for a header change it was not granted.
    """
    cases = {"no-addhdrs": (6, 0x1FFFFF, SMFIF["CHGBODY"]), "version-1": (1, 0x7F, 0x0F)}
    results = {}
    for name, (version, steps, actions) in cases.items():
        m = plain_msg(f"refuse-{name}")
        # every step protected by pcall: a filter that closes the connection makes
        # miltertest's calls fail, which is the expected outcome
        script = (
            "local ok, err = pcall(function()\n"
            f"  conn = open(SOCK, {version}, {steps}, {actions})\n"
            '  connect_client(conn, "localhost", "127.0.0.1")\n'
            + "  " + m.lua()
            + "end)\n"
            'report("pcall", tostring(ok) .. " " .. tostring(err))\n'
        )
        r = rig.run(script, f"refuse-{name}")
        assert rig.milter.alive(), r.describe(rig.milter)
        results[name] = r
        print(f"[{name}] miltertest exit {r.rc}; negotiate {r.get('negotiate')!r}, "
              f"actions asked {r.get('actions')!r}; eom {r.get(f'{m.tag}.eom')!r}, "
              f"inserted {r.get(f'{m.tag}.inserted')!r}, added {r.get(f'{m.tag}.added')!r}; "
              f"{r.get('pcall')}")
    problems = []
    for name, r in results.items():
        tag = f"refuse-{name}"
        if r.get(f"{tag}.eom") is None:
            continue  # refused somewhere before end of message: fine
        granted = flags(r.get("actions"))
        if "ADDHDRS" not in granted and (r.get(f"{tag}.added") == "true"
                                         or r.get(f"{tag}.inserted") == "true"):
            problems.append(f"{name}: ADDHDRS was not granted ({granted or 'no actions'}) "
                            f"but the filter added a header at end of message")
        elif name == "version-1":
            problems.append(f"{name}: the filter accepted milter protocol version 1 and "
                            f"went on to end of message (libmilter refuses versions below 2)")
    assert not problems, "\n".join(problems) + "\n" + "\n".join(
        r.describe() for r in results.values()) + "\n" + rig.milter.log(2000)


def test_no_header_change_without_chghdrs(rig: MilterTestRig, dkimpy: Any,
                                          keys: dict[str, ih.Key]) -> None:
    """An MTA that offers SMFIF_ADDHDRS but not SMFIF_CHGHDRS, and a message from
    outside carrying a forged Authentication-Results (our authserv-id).

    OpenDKIM needs CHGHDRS unless KeepAuthResults is set (mlfi_negotiate) and
    refuses the connection without it. Acceptable here: refused before end of
    message, or verified without a header change that was not granted.
    """
    raw = (f"Authentication-Results: {AUTHSERV}; dkim=pass header.d=example.com\r\n".encode()
           + dkimpy.sign(ph.message("nochg"), keys["rsa"], "relaxed/relaxed"))
    head, body = ih.split_message(raw)
    m = Msg("nochg", split_for_milter(head), [body])
    script = (
        "local ok, err = pcall(function()\n"
        f"  conn = open(SOCK, 6, {0x1FFFFF}, {SMFIF['ADDHDRS']})\n"
        '  connect_client(conn, "mail.example.net", "198.51.100.7")\n'
        + "  " + m.lua()
        + "end)\n"
        'report("pcall", tostring(ok) .. " " .. tostring(err))\n'
    )
    r = rig.run(script, "nochg")
    assert rig.milter.alive(), r.describe(rig.milter)
    granted = flags(r.get("actions"))
    print(f"[nochg] actions granted {sorted(granted)}; eom {r.get('nochg.eom')!r}; "
          f"header changed {r.get('nochg.changed')!r}, AR added {r.get('nochg.added')!r}; "
          f"{r.get('pcall')}")
    if r.get("nochg.eom") is not None and "CHGHDRS" not in granted:
        assert r.get("nochg.changed") == "false", (
            f"CHGHDRS was not granted ({sorted(granted)}) but the filter sent a header "
            f"change (SMFIR_CHGHEADER) at end of message\n{r.describe(rig.milter)}")
