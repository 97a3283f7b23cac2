"""Hypothesis strategies for every milter command and reply the codec knows."""

from __future__ import annotations

from hypothesis import strategies as st

from mailseal.milter.messages import (
    Abort,
    Accept,
    AddHeader,
    Body,
    ChangeHeader,
    Command,
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
    OptNegReply,
    Progress,
    Quarantine,
    Quit,
    QuitNewConnection,
    RcptTo,
    Reject,
    Reply,
    ReplyCode,
    Skip,
    Tempfail,
    Unknown,
    UnknownCommand,
    UnknownReply,
)
from mailseal.milter.protocol import (
    COMMAND_STAGE,
    ActionFlag,
    CommandCode,
    ProtocolFlag,
    ResponseCode,
)

uint32 = st.integers(0, 0xFFFFFFFF)
#: C-string text: latin-1 without NUL.
ctext = st.text(st.characters(min_codepoint=1, max_codepoint=255), max_size=40)
ctext1 = st.text(st.characters(min_codepoint=1, max_codepoint=255), min_size=1, max_size=40)
cbytes = st.binary(max_size=60).map(lambda b: b.replace(b"\0", b"x"))
cbytes1 = st.binary(min_size=1, max_size=60).map(lambda b: b.replace(b"\0", b"x"))
actions = uint32.map(ActionFlag)
protocol = uint32.map(ProtocolFlag)

_KNOWN_COMMANDS = {c.value for c in CommandCode}
_KNOWN_REPLIES = {c.value for c in ResponseCode}

connects = st.one_of(
    st.builds(Connect, ctext, st.just(b"U")),
    st.builds(Connect, ctext, st.sampled_from([b"4", b"6", b"L"]), st.integers(0, 65535), ctext),
)

commands: st.SearchStrategy[Command] = st.one_of(
    st.builds(OptNeg, uint32, actions, protocol),
    st.builds(
        DefineMacros, st.binary(min_size=1, max_size=1), st.dictionaries(ctext1, ctext, max_size=5)
    ),
    connects,
    st.builds(Helo, ctext),
    st.builds(MailFrom, st.lists(ctext, min_size=1, max_size=4).map(tuple)),
    st.builds(RcptTo, st.lists(ctext, min_size=1, max_size=4).map(tuple)),
    st.just(Data()),
    st.builds(Header, cbytes1, cbytes),
    st.just(EndOfHeaders()),
    st.builds(Body, st.binary(max_size=300)),
    st.builds(EndOfMessage, st.binary(max_size=100)),
    st.just(Abort()),
    st.just(Quit()),
    st.just(QuitNewConnection()),
    st.builds(Unknown, cbytes),
    st.builds(
        UnknownCommand,
        st.binary(min_size=1, max_size=1).filter(lambda c: c not in _KNOWN_COMMANDS),
        st.binary(max_size=40),
    ),
)

#: Macro names as a SETSYMLIST list can carry them.
macro_names = st.text(
    st.characters(min_codepoint=33, max_codepoint=255, blacklist_characters=","),
    min_size=1,
    max_size=12,
)


@st.composite
def smtp_replies(draw: st.DrawFn) -> bytes:
    """Reply texts Postfix accepts: 'ddd x.y.z text', multi-line with 'ddd-'."""
    first = draw(st.sampled_from("45"))
    code = first + draw(st.text("0123456789", min_size=2, max_size=2))
    texts = draw(st.lists(st.text("abcdefgh XYZ.,;:!?-%", max_size=20), min_size=1, max_size=3))
    lines = [
        f"{code}{'-' if n < len(texts) - 1 else ' '}{first}.7.1 {text}"
        for n, text in enumerate(texts)
    ]
    return "\r\n".join(lines).encode()


replies: st.SearchStrategy[Reply] = st.one_of(
    st.builds(
        OptNegReply,
        uint32,
        actions,
        protocol,
        st.none()
        | st.dictionaries(
            st.sampled_from(sorted(COMMAND_STAGE)), st.lists(macro_names, max_size=4)
        ),
    ),
    st.sampled_from([Continue(), Accept(), Reject(), Tempfail(), Discard(), Skip(), Progress()]),
    st.builds(ReplyCode, smtp_replies()),
    st.builds(AddHeader, cbytes1, cbytes),
    st.builds(InsertHeader, uint32, cbytes1, cbytes),
    st.builds(ChangeHeader, uint32, cbytes1, cbytes),
    st.builds(Quarantine, cbytes1),
    st.builds(
        UnknownReply,
        st.binary(min_size=1, max_size=1).filter(lambda c: c not in _KNOWN_REPLIES),
        st.binary(max_size=40),
    ),
)
