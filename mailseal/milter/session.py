"""One milter connection's policy, sans-IO: commands in, replies and log events out.

The server decodes packets into commands (``codec.py``) and passes each one to
:meth:`MilterSession.handle`, a generator that may ask DNS questions (key
lookups at end of message) and returns the replies to send. The session holds
the connection state (peer, macros, negotiated options) and the message state,
renewed after each end of message or abort. It decides, as OpenDKIM does,
whether to sign or verify, streams the body into the DKIM engine, and turns the
outcome into header changes and a final reply following the On-* actions.
"""

from __future__ import annotations

import email.utils
import functools
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Final

from mailseal import __version__
from mailseal.authres import AR_FIELD, authentication_results, is_ours_or_listed
from mailseal.config.opendkim import MilterConfig, OnAction, SigningChoice
from mailseal.dkim.results import DkimResult, MessageVerdict
from mailseal.dkim.sign import MessageSigner, SignerSpec
from mailseal.dkim.verify import MessageVerifier, VerifyOptions
from mailseal.dns.types import Answer, Question
from mailseal.errors import MilterProtocolError, SigningError
from mailseal.message.headers import CrlfNormalizer, HeaderField
from mailseal.milter import codec
from mailseal.milter.codec import (
    Abort,
    Accept,
    AddHeader,
    Body,
    ChangeHeader,
    Connect,
    Continue,
    Data,
    DefineMacros,
    Discard,
    EndOfHeaders,
    EndOfMessage,
    Header,
    Helo,
    InsertHeader,
    MailFrom,
    OptNeg,
    Quarantine,
    Quit,
    QuitNewConnection,
    RcptTo,
    ReplyCode,
    Unknown,
    UnknownCommand,
    lookup_macro,
)
from mailseal.milter.protocol import ActionFlag, ProtocolFlag

Reply = codec.Reply
Command = codec.Command

#: Actions we ask for: add and change header fields (insert at the top, delete forged
#: Authentication-Results), quarantine for On-* quarantine, the macro list we need.
WANT_ACTIONS: Final = (
    ActionFlag.ADDHDRS | ActionFlag.CHGHDRS | ActionFlag.QUARANTINE | ActionFlag.SETSYMLIST
)
#: Steps we never use (fewer round trips), no reply where the reply never matters,
#: and the exact header spacing. Connect and end-of-headers keep their replies: we
#: accept a PeerList client at connect, and a message we have nothing to do with
#: at end of headers (so its body is never sent). No SKIP: with NR_BODY it could
#: not be sent anyway, and we need every body byte of what we sign or verify.
WANT_PROTOCOL: Final = (
    ProtocolFlag.NOHELO
    | ProtocolFlag.NORCPT
    | ProtocolFlag.NOUNKNOWN
    | ProtocolFlag.NODATA
    | ProtocolFlag.HDR_LEADSPC
    | ProtocolFlag.NR_HELO
    | ProtocolFlag.NR_MAIL
    | ProtocolFlag.NR_RCPT
    | ProtocolFlag.NR_DATA
    | ProtocolFlag.NR_UNKN
    | ProtocolFlag.NR_BODY
    | ProtocolFlag.NR_HDR
)
#: Macros we use, by the command they precede (SMFIF_SETSYMLIST, protocol 6).
WANT_MACROS: Final = {
    b"C": ["j", "{daemon_name}", "{client_addr}"],
    b"M": ["i", "{auth_type}", "{auth_authen}", "{mail_addr}"],
    b"E": ["i"],
}
_MESSAGE_MACROS: Final = ("i", "{auth_type}", "{auth_authen}", "{mail_addr}", "auth_type")


@dataclass(frozen=True, slots=True)
class Event:
    """Something for the log, in OpenDKIM's message shapes; the shell writes it."""

    level: str  # "debug", "info", "notice", "warning", "error"
    name: str  # fixed event name, e.g. "dkim.signed"
    text: str  # OpenDKIM-shaped line: "ABC123: DKIM-Signature field added (s=mail, d=x)"
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Message:
    """State of the message in progress; renewed after end of message or abort."""

    headers: list[HeaderField] = field(default_factory=list)
    header_bytes: int = 0
    too_big: bool = False
    signer: MessageSigner | None = None
    choices: list[SigningChoice] = field(default_factory=list)
    verifier: MessageVerifier | None = None
    done: bool = False  # decided before end of message: nothing more to do
    final: list[codec.Reply] | None = None  # the end-of-message reply, when decided early
    fix: CrlfNormalizer | None = None  # FixCRLF state across body chunks


def sender_address(value: bytes) -> str | None:
    """The first address of a From-like field value, domain lower-cased, or None."""
    # the same From fields come again and again; long ones are not kept (memory)
    return _cached_sender(value) if len(value) <= 256 else _sender_address(value)


@functools.lru_cache(maxsize=1024)
def _cached_sender(value: bytes) -> str | None:
    return _sender_address(value)


def _sender_address(value: bytes) -> str | None:
    text = value.decode("utf-8", "replace").replace("\r\n", "")
    for _, addr in email.utils.getaddresses([text]):
        local, at, domain = addr.rpartition("@")
        if at and local and domain:
            return f"{local}@{domain.lower().rstrip('.')}"
    return None


class MilterSession:
    """The policy for one milter connection."""

    def __init__(
        self, cfg: MilterConfig, authserv_id: str | None = None, hostname: str = "localhost"
    ) -> None:
        self.cfg = cfg
        self._authserv_id = authserv_id
        self.hostname = hostname
        self.events: list[Event] = []
        self.negotiated: codec.Negotiated | None = None
        self._leading_space = False  # HDR_LEADSPC agreed
        self.macros: dict[str, str] = {}
        self.host = ""
        self.address: str | None = None
        self.skip_connection = False
        self.msg = _Message()
        self.closed = False
        self.verify_options = VerifyOptions(
            min_key_bits=cfg.minimum_key_bits,
            max_signatures=cfg.maximum_signatures_to_verify,
            clock_drift=cfg.clock_drift,
        )

    # -- helpers -------------------------------------------------------------------

    def drain_events(self) -> list[Event]:
        out, self.events = self.events, []
        return out

    def _log(self, level: str, name: str, text: str, **fields: str) -> None:
        self.events.append(Event(level, name, f"{self.queue_id}: {text}", fields))

    @property
    def authserv_id(self) -> str:
        """AuthservID if set, else the MTA's name (the ``j`` macro), as opendkim.conf(5) says."""
        return self._authserv_id or lookup_macro(self.macros, "j") or self.hostname

    @property
    def queue_id(self) -> str:
        return lookup_macro(self.macros, "i") or "NOQUEUE"

    @property
    def in_message(self) -> bool:
        """True between the first message command and the end of message or abort."""
        return bool(self.msg.headers) or self.msg.signer is not None

    def _reply(self, command: Command, reply: Reply) -> list[Reply]:
        """The reply to a command, or nothing when the MTA was told not to expect one."""
        if self.negotiated is not None and not self.negotiated.needs_reply(command):
            return []
        return [reply]

    @property
    def leading_space(self) -> bool:
        """True when the MTA sends header values with their exact leading white space."""
        return self._leading_space

    def failure(self, action: OnAction, why: str) -> list[Reply]:
        """The final reply for an On-* action."""
        if action is OnAction.ACCEPT:
            return [Accept()]
        if action is OnAction.DISCARD:
            return [Discard()]
        if action is OnAction.REJECT:
            return [ReplyCode(f"550 5.7.1 {why}".encode())]
        if action is OnAction.TEMPFAIL:
            return [ReplyCode(f"451 4.7.1 {why}; try again later".encode())]
        return [Quarantine(why.encode()), Accept()]

    def fail_message(self, cmd: Command, action: OnAction, why: str) -> list[Reply]:
        """After an internal error: answer with ``action`` now or, if the MTA expects no
        reply to ``cmd``, at end of message. Never lets the message pass unprocessed
        unless the action says accept."""
        final = self.failure(action, why)
        if isinstance(cmd, EndOfMessage):
            self._reset_message()
            return final
        self.msg.done, self.msg.final = True, final
        if self.negotiated is not None and not self.negotiated.needs_reply(cmd):
            return []
        return final

    # -- the command loop ----------------------------------------------------------

    def handle(self, cmd: Command, now: int) -> Generator[Question, Answer, list[Reply]]:
        """Take one command; return the replies to send (after asking DNS questions, if any)."""
        if isinstance(cmd, EndOfMessage):
            return (yield from self._end_of_message(cmd, now))
        return self.handle_now(cmd)

    def handle_now(self, cmd: Command) -> list[Reply]:
        """Take any command but end of message (which may need DNS); return the replies."""
        if isinstance(cmd, DefineMacros):
            self.macros.update(cmd.macros)
            return []
        if isinstance(cmd, Header):
            return self._header(cmd)
        if isinstance(cmd, Body):
            return self._body(cmd)
        if isinstance(cmd, OptNeg):
            # OpenDKIM compat: without CHGHDRS the forged Authentication-Results fields
            # could not be removed, so it is required unless KeepAuthResults is set.
            need = ActionFlag.ADDHDRS
            if not self.cfg.keep_auth_results:
                need |= ActionFlag.CHGHDRS
            reply, self.negotiated = codec.negotiate(
                cmd, WANT_ACTIONS, WANT_PROTOCOL, WANT_MACROS, require_actions=need
            )
            self._leading_space = ProtocolFlag.HDR_LEADSPC in self.negotiated.protocol
            if self.negotiated.problem:
                # As OpenDKIM does: refuse the connection rather than half-work.
                raise MilterProtocolError(f"cannot work with this MTA: {self.negotiated.problem}")
            return [reply]
        if isinstance(cmd, Connect):
            return self._connect(cmd)
        if isinstance(cmd, MailFrom):
            self.msg = _Message()
            return self._reply(cmd, Continue())
        if isinstance(cmd, EndOfHeaders):
            return self._end_of_headers(cmd)
        if isinstance(cmd, Abort):
            self._reset_message()
            return []
        if isinstance(cmd, Quit):
            self.closed = True
            return []
        if isinstance(cmd, QuitNewConnection):
            self._reset_message()
            self.macros.clear()
            self.host, self.address, self.skip_connection = "", None, False
            return []
        if isinstance(cmd, (Helo, RcptTo, Data, Unknown)):
            return self._reply(cmd, Continue())
        if isinstance(cmd, UnknownCommand):
            raise MilterProtocolError(f"unknown milter command {cmd.code!r}")
        raise MilterProtocolError(f"unexpected milter command {type(cmd).__name__}")

    def _reset_message(self) -> None:
        self.msg = _Message()
        for name in _MESSAGE_MACROS:  # message macros end with the message
            self.macros.pop(name, None)

    def _connect(self, cmd: Connect) -> list[Reply]:
        self.host, self.address = cmd.hostname, cmd.address
        if self.cfg.peer_list.matches(cmd.address, cmd.hostname):
            self.skip_connection = True
            return [Accept()]
        return self._reply(cmd, Continue())

    def _header(self, cmd: Header) -> list[Reply]:
        m = self.msg
        value = cmd.value
        if b"\n" in value:
            value = value.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if not self.leading_space:
            # Without SMFIP_HDR_LEADSPC Postfix drops one space after the colon.
            # OpenDKIM compat: assume it was there (right for nearly all mail).
            value = b" " + value
        raw = cmd.name + b":" + value
        m.header_bytes += len(raw) + 2
        if self.cfg.maximum_headers and m.header_bytes > self.cfg.maximum_headers:
            m.too_big = True
        elif not m.too_big:
            m.headers.append(HeaderField(raw))
        return self._reply(cmd, Continue())

    def _originated(self) -> bool:
        """OpenDKIM's "originok": MTA name, MacroList, internal host, or authenticated."""
        cfg = self.cfg
        daemon = lookup_macro(self.macros, "{daemon_name}")
        if cfg.mta_names and daemon is not None and daemon in cfg.mta_names:
            return True
        for name, values in cfg.macro_list:
            value = lookup_macro(self.macros, name)
            if value is not None and (values is None or value in values):
                return True
        if cfg.internal_hosts.matches(self.address, self.host):
            return True
        return bool(lookup_macro(self.macros, "{auth_type}"))

    def _sender(self) -> str | None:
        for name in self.cfg.sender_headers or ("from",):
            for f in self.msg.headers:
                if f.lname == name.lower():
                    return sender_address(f.value)
        return None

    def _end_of_headers(self, cmd: EndOfHeaders) -> list[Reply]:
        m, cfg = self.msg, self.cfg
        if m.too_big:
            self._log(
                "error",
                "milter.headers_too_big",
                f"header block exceeds MaximumHeaders ({cfg.maximum_headers} bytes)",
            )
            m.done = True
            return self.failure(cfg.on_security, "message header block too large")
        sender = self._sender()
        if sender is None and cfg.mode_sign:
            # OpenDKIM compat: no usable From (or SenderHeaders) address: log, skip
            # signing and verifying, and say so in Authentication-Results.
            self._log("info", "milter.no_sender", "can't determine message sender; accepting")
            m.done = True
            m.final = [
                self._new_header(
                    AR_FIELD,
                    f" {self.authserv_id}; dkim=permerror (bad message/signature format)".encode(),
                ),
                Continue(),
            ]
            return self._reply(cmd, Continue())
        originated = self._originated()
        if sender is None:
            pass  # verify-only mode: the sender is not needed to verify
        elif cfg.mode_sign and originated:
            m.choices = cfg.signing_for(sender)
            if m.choices:
                return self._start_signing(cmd)
            if cfg.log_why:
                self._log("info", "milter.no_match", f"no signing table match for '{sender}'")
        elif cfg.mode_sign and cfg.signing_for(sender):
            if not cfg.external_ignore.matches(self.address, self.host):
                domain = sender.rpartition("@")[2]
                self._log(
                    "notice",
                    "milter.external_as_internal",
                    f"external host {self.host} attempted to send as {domain}",
                )
        if cfg.mode_verify:
            m.verifier = MessageVerifier(m.headers, self.verify_options)
            return self._reply(cmd, Continue())
        m.done = True
        return [Accept()]

    def _start_signing(self, cmd: EndOfHeaders) -> list[Reply]:
        cfg = self.cfg
        headers = tuple(h for h in cfg.sign_headers if h not in cfg.omit_headers)
        specs = [
            SignerSpec(
                key=c.key,
                domain=c.domain,
                selector=c.selector,
                algorithm=c.algorithm,
                header_canon=cfg.header_canon,
                body_canon=cfg.body_canon,
                headers=headers,
                oversign=tuple(cfg.oversign_headers),
                identity=c.identity,
                expire_after=cfg.signature_ttl,
                body_length=cfg.maximum_signed_bytes,
            )
            for c in self.msg.choices
        ]
        try:
            self.msg.signer = MessageSigner(specs)
        except SigningError as exc:
            self._log("error", "dkim.sign_error", f"cannot sign: {exc}")
            self.msg.done = True
            return self.failure(cfg.on_signature_error, "cannot sign message")
        return self._reply(cmd, Continue())

    def _body(self, cmd: Body) -> list[Reply]:
        self._feed(cmd.chunk)
        return self._reply(cmd, Continue())

    def _feed(self, chunk: bytes, last: bool = False) -> None:
        """Pass body bytes to the signer or verifier (FixCRLF: bare CR/LF made CRLF first)."""
        m = self.msg
        if m.done or (m.signer is None and m.verifier is None):
            return
        if self.cfg.fix_crlf:
            if m.fix is None:
                m.fix = CrlfNormalizer()
            chunk = m.fix.feed(chunk) + (m.fix.finish() if last else b"")
        if not chunk:
            return
        if m.signer is not None:
            m.signer.update(chunk)
        elif m.verifier is not None:
            m.verifier.update(chunk)

    # -- end of message ------------------------------------------------------------

    def _end_of_message(
        self, cmd: EndOfMessage, now: int
    ) -> Generator[Question, Answer, list[Reply]]:
        m = self.msg
        try:
            if m.final is not None:
                return m.final
            if m.done or self.skip_connection:
                return [Continue()]
            self._feed(cmd.chunk, last=True)
            if m.signer is not None:
                return self._finish_signing(now)
            if m.verifier is not None:
                verdict = yield from m.verifier.finish(now)
                return self._finish_verifying(verdict)
            return [Continue()]
        finally:
            self._reset_message()

    def _new_header(self, name: bytes, value: bytes) -> Reply:
        """Add a field near the top when the MTA allows it, else at the bottom.

        OpenDKIM compat: index 0, above the Received: field the MTA adds itself
        (seen from OpenDKIM 2.11 through a recording proxy in front of Postfix).
        """
        if not self.leading_space and value.startswith(b" "):
            value = value[1:]  # the MTA puts the one space back itself
        value = codec.milter_header_value(value)
        if self.negotiated is not None and ActionFlag.CHGHDRS in self.negotiated.actions:
            return InsertHeader(0, name, value)
        return AddHeader(name, value)

    def _finish_signing(self, now: int) -> list[Reply]:
        m, cfg = self.msg, self.cfg
        assert m.signer is not None
        try:
            fields = m.signer.finish(m.headers, now)
        except SigningError as exc:
            self._log("error", "dkim.sign_error", f"cannot sign: {exc}")
            return self.failure(cfg.on_signature_error, "cannot sign message")
        replies: list[Reply] = []
        if cfg.remove_old_signatures:
            replies += self._delete_fields("dkim-signature", lambda v: True)
        # Each insert goes to the top: insert the last first so the first key's
        # signature ends up topmost.
        for raw in reversed(fields):
            f = HeaderField(raw)
            replies.append(self._new_header(f.name, f.value))
        for c in m.choices:
            self._log(
                "info",
                "dkim.signed",
                f"DKIM-Signature field added (s={c.selector}, d={c.domain})",
                domain=c.domain,
                selector=c.selector,
            )
        if cfg.software_header:
            replies.append(self._new_header(b"DKIM-Filter", f" mailseal {__version__}".encode()))
        return [*replies, Continue()]

    def _delete_fields(self, lname: str, pick: Callable[[bytes], bool]) -> list[Reply]:
        """Deletions (ChangeHeader with an empty value) of the fields named ``lname`` picked."""
        out: list[Reply] = []
        index = 0
        for f in self.msg.headers:
            if f.lname != lname:
                continue
            index += 1  # ChangeHeader counts instances of the name, from 1
            if pick(f.value):
                out.append(ChangeHeader(index, f.name, b""))
        return out

    def _finish_verifying(self, verdict: MessageVerdict) -> list[Reply]:
        cfg = self.cfg

        def forged(value: bytes) -> bool:
            return cfg.remove_ar_all or is_ours_or_listed(
                value, self.authserv_id, cfg.remove_ar_from
            )

        replies = (
            [] if cfg.keep_auth_results else self._delete_fields("authentication-results", forged)
        )
        for s in verdict.signatures:
            ok = s.result is DkimResult.PASS
            text = (
                f"DKIM verification successful (d={s.domain}, s={s.selector})"
                if ok
                else f"bad signature data (d={s.domain}, s={s.selector}): {s.result.value}, "
                f"{s.reason}"
            )
            self._log(
                "info" if ok else "notice",
                "dkim.verified",
                text,
                domain=s.domain,
                selector=s.selector,
                result=s.result.value,
                reason=s.reason,
            )
        if verdict.signatures or cfg.always_add_ar:
            value = authentication_results(self.authserv_id, verdict.signatures)
            replies.append(self._new_header(AR_FIELD, value))
        return [*replies, *self._verdict_action(verdict)]

    def _verdict_action(self, verdict: MessageVerdict) -> list[Reply]:
        cfg = self.cfg
        sigs = verdict.signatures
        if not sigs:
            action, why = cfg.on_no_signature, "no DKIM signature"
        elif any(s.result is DkimResult.PASS for s in sigs):
            return [Continue()]
        elif sigs[0].result is DkimResult.TEMPERROR:
            action, why = cfg.on_dns_error, "DKIM key lookup failed"
        elif sigs[0].key_missing:
            action, why = cfg.on_key_not_found, "DKIM key not found"
        else:
            action, why = cfg.on_bad_signature, "DKIM signature did not verify"
        if action is OnAction.ACCEPT:
            return [Continue()]
        self._log("notice", "milter.action", f"{why}: {action.value}")
        return self.failure(action, why)
