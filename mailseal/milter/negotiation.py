"""Option negotiation, filter side: answer the MTA's O packet, remember what was agreed.

Sans-IO like the codec. The facts behind each rule are in ``docs/milter-protocol.md``:
libmilter's st_optionneg (engine.c) for what a filter may answer, Postfix's
milter8_connect (milter8.c) for what Postfix offers per version and what it checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from mailseal.milter.messages import (
    Abort,
    Body,
    Command,
    Connect,
    Data,
    DefineMacros,
    EndOfHeaders,
    Header,
    Helo,
    MailFrom,
    OptNeg,
    OptNegReply,
    Quit,
    QuitNewConnection,
    RcptTo,
    Unknown,
    UnknownCommand,
)
from mailseal.milter.protocol import (
    MAX_VERSION,
    MIN_VERSION,
    V1_ACTIONS,
    V1_PROTOCOL,
    ActionFlag,
    ProtocolFlag,
)

#: Actions mailseal asks for: add signatures and Authentication-Results, remove or
#: replace fields (old Authentication-Results, configured removals), choose macros.
DEFAULT_ACTIONS: Final = (
    ActionFlag.ADD_HEADERS | ActionFlag.CHANGE_HEADERS | ActionFlag.SET_MACRO_LIST
)
#: Without these there is nothing to do (OpenDKIM refuses such an MTA the same way).
REQUIRED_ACTIONS: Final = ActionFlag.ADD_HEADERS
#: Protocol flags mailseal asks for, each only where the MTA offers it:
#: steps DKIM never reads (HELO, RCPT, DATA, unknown commands) left out; no replies
#: to MAIL (kept for the logs), to each header and to body chunks (decisions fall at
#: end of headers and end of message, which keep theirs); exact header bytes; SKIP.
#: Leave NO_RCPT out when recipients matter (OpenDKIM's DontSignMailTo).
DEFAULT_PROTOCOL: Final = (
    ProtocolFlag.NO_HELO
    | ProtocolFlag.NO_RCPT
    | ProtocolFlag.NO_UNKNOWN
    | ProtocolFlag.NO_DATA
    | ProtocolFlag.NR_MAIL
    | ProtocolFlag.NR_HEADER
    | ProtocolFlag.NR_BODY
    | ProtocolFlag.SKIP
    | ProtocolFlag.HEADER_LEADING_SPACE
)

#: The no-reply flag that silences the reply to each command; absent: always a reply.
_NO_REPLY: Final[Mapping[type, ProtocolFlag]] = {
    Connect: ProtocolFlag.NR_CONNECT,
    Helo: ProtocolFlag.NR_HELO,
    MailFrom: ProtocolFlag.NR_MAIL,
    RcptTo: ProtocolFlag.NR_RCPT,
    Data: ProtocolFlag.NR_DATA,
    Unknown: ProtocolFlag.NR_UNKNOWN,
    Header: ProtocolFlag.NR_HEADER,
    EndOfHeaders: ProtocolFlag.NR_EOH,
    Body: ProtocolFlag.NR_BODY,
}
#: Commands never answered: libmilter sends nothing after D, A, Q and K, and closes
#: the connection on a code it does not know.
_NEVER_ANSWERED: Final = (DefineMacros, Abort, Quit, QuitNewConnection, UnknownCommand)


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What both sides agreed on; ``problem`` says why the connection cannot go on, if so."""

    version: int
    actions: ActionFlag  # the actions we may use
    protocol: ProtocolFlag  # the flags we sent back
    mta_actions: ActionFlag
    mta_protocol: ProtocolFlag
    macros: dict[bytes, list[str]] | None = None  # macro lists we asked for
    problem: str | None = None
    _needs_reply: dict[type, bool] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )  # needs_reply by command class, filled as asked

    @property
    def leading_space(self) -> bool:
        """Header values arrive exactly as written, and ours must start with their space."""
        return ProtocolFlag.HEADER_LEADING_SPACE in self.protocol

    @property
    def can_skip(self) -> bool:
        """A body chunk may be answered with Skip (SKIP agreed, body chunks answered)."""
        return ProtocolFlag.SKIP in self.protocol and ProtocolFlag.NR_BODY not in self.protocol

    def needs_reply(self, command: Command | type[Command]) -> bool:
        """Tell whether the MTA waits for a reply to this command (or command class).

        With an NR_* flag agreed the filter must not reply: the MTA reads no reply and
        a stray one would be taken as the answer to a later command.
        """
        kind = command if isinstance(command, type) else type(command)
        known = self._needs_reply.get(kind)
        if known is None:
            flag = _NO_REPLY.get(kind)
            never = issubclass(kind, _NEVER_ANSWERED)
            known = not never and (flag is None or flag not in self.protocol)
            self._needs_reply[kind] = known
        return known


def negotiate(
    mta: OptNeg,
    want_actions: ActionFlag = DEFAULT_ACTIONS,
    want_protocol: ProtocolFlag = DEFAULT_PROTOCOL,
    macros: Mapping[bytes, Sequence[str]] | None = None,
    *,
    supported_version: int = MAX_VERSION,
    require_actions: ActionFlag = REQUIRED_ACTIONS,
) -> tuple[OptNegReply, Negotiated]:
    """Answer the MTA's O packet as libmilter's st_optionneg would for such a filter.

    Version: the lower of the MTA's and ours (Postfix refuses a higher one). Actions
    and protocol flags: what we want of what the MTA offers; an MTA that offers
    nothing means the version 1 sets, as in libmilter. A flag the MTA does not offer
    is never sent back: Postfix would honour an NR_* flag it never offered, and then
    wait for no reply its own protocol version requires. Macro lists go out only when
    SET_MACRO_LIST is agreed; ``macros`` maps a command code (b"C", b"M", b"E"...)
    to macro names. A missing required action or a version below 2 is returned as
    ``problem`` (the caller logs it and closes), not raised.
    """
    offered_actions = mta.actions or V1_ACTIONS
    offered_protocol = mta.protocol or V1_PROTOCOL
    version = min(mta.version, supported_version)
    actions = want_actions & offered_actions
    protocol = want_protocol & offered_protocol
    problem = None
    if mta.version < MIN_VERSION:
        problem = f"MTA speaks milter protocol {mta.version}; version {MIN_VERSION} or later needed"
    elif require_actions & ~offered_actions:
        missing = ActionFlag(require_actions & ~offered_actions)
        problem = f"MTA does not allow {missing!r} (it offers {ActionFlag(offered_actions)!r})"
    lists = None
    if macros and ActionFlag.SET_MACRO_LIST in actions:
        lists = {stage: list(names) for stage, names in macros.items()}
    elif not macros:
        actions &= ~ActionFlag.SET_MACRO_LIST
    reply = OptNegReply(version, ActionFlag(actions), ProtocolFlag(protocol), lists)
    agreed = Negotiated(
        version=version,
        actions=reply.actions,
        protocol=reply.protocol,
        mta_actions=ActionFlag(offered_actions),
        mta_protocol=ProtocolFlag(offered_protocol),
        macros=reply.macros,
        problem=problem,
    )
    return reply, agreed
