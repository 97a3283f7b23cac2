"""Option negotiation against what Postfix 3.7 offers for each milter_protocol version.

The offers are milter8.c's (milter8_connect): actions 0x1FF at every version, protocol
flags MILTER8_V2_PROTO_MASK 0x7F, V3 0x17F, V4 0x37F, V6 0x1FFFFF; with
``milter_protocol = 2, no_header_reply`` the v2 set plus SMFIP_NOHREPL (0xFF).
"""

from __future__ import annotations

import pytest

from mailseal.milter.codec import encode_reply
from mailseal.milter.messages import (
    Abort,
    Body,
    Connect,
    Data,
    DefineMacros,
    EndOfHeaders,
    EndOfMessage,
    Header,
    Helo,
    MailFrom,
    OptNeg,
    Quit,
    QuitNewConnection,
    RcptTo,
    Unknown,
    UnknownCommand,
)
from mailseal.milter.negotiation import DEFAULT_ACTIONS, DEFAULT_PROTOCOL, negotiate
from mailseal.milter.protocol import (
    POSTFIX_ACTIONS,
    POSTFIX_PROTOCOL,
    ActionFlag,
    ProtocolFlag,
)

P = ProtocolFlag
MACROS = {b"C": ["j", "{daemon_name}", "{client_addr}"], b"N": ["i", "{auth_type}"]}


def test_postfix_offers_match_milter8_c() -> None:
    assert POSTFIX_ACTIONS == 0x1FF
    assert {v: int(f) for v, f in POSTFIX_PROTOCOL.items()} == {
        2: 0x7F,
        3: 0x17F,
        4: 0x37F,
        6: 0x1FFFFF,
    }


# (MTA offer, expected protocol flags back, expected no-reply commands)
CASES = {
    "postfix 6": (
        OptNeg(6, POSTFIX_ACTIONS, POSTFIX_PROTOCOL[6]),
        DEFAULT_PROTOCOL,
        {MailFrom, Header, Body},
    ),
    "postfix 4": (
        OptNeg(4, POSTFIX_ACTIONS, POSTFIX_PROTOCOL[4]),
        P.NO_HELO | P.NO_RCPT | P.NO_UNKNOWN | P.NO_DATA,
        set(),
    ),
    "postfix 3": (
        OptNeg(3, POSTFIX_ACTIONS, POSTFIX_PROTOCOL[3]),
        P.NO_HELO | P.NO_RCPT | P.NO_UNKNOWN,
        set(),
    ),
    "postfix 2": (
        OptNeg(2, POSTFIX_ACTIONS, POSTFIX_PROTOCOL[2]),
        P.NO_HELO | P.NO_RCPT,
        set(),
    ),
    "postfix 2 no_header_reply": (
        OptNeg(2, POSTFIX_ACTIONS, POSTFIX_PROTOCOL[2] | P.NR_HEADER),
        P.NO_HELO | P.NO_RCPT | P.NR_HEADER,
        {Header},
    ),
}


@pytest.mark.parametrize(("offer", "protocol", "silent"), CASES.values(), ids=CASES.keys())
def test_negotiation_with_postfix(offer: OptNeg, protocol: ProtocolFlag, silent: set[type]) -> None:
    reply, agreed = negotiate(offer, DEFAULT_ACTIONS, DEFAULT_PROTOCOL, MACROS)
    assert agreed.problem is None
    assert reply.version == agreed.version == offer.version
    # Never a flag the MTA did not offer: Postfix would act on it regardless.
    assert reply.protocol == protocol
    assert reply.protocol & ~offer.protocol == 0
    # Postfix offers SETSYMLIST at every version and reads the lists at every version.
    assert (
        reply.actions
        == ActionFlag.ADD_HEADERS | ActionFlag.CHANGE_HEADERS | ActionFlag.SET_MACRO_LIST
    )
    assert reply.macros == MACROS
    assert agreed.leading_space is (offer.version == 6)
    assert agreed.can_skip is False  # v6: SKIP, but body chunks are not answered
    for kind in (Connect, Helo, MailFrom, RcptTo, Data, Unknown, Header, EndOfHeaders, Body):
        assert agreed.needs_reply(kind) is (kind not in silent), kind
    assert agreed.needs_reply(EndOfMessage()) and agreed.needs_reply(OptNeg)
    for never in (DefineMacros, Abort, Quit, QuitNewConnection, UnknownCommand):
        assert not agreed.needs_reply(never)


def test_needs_reply_takes_instances_too() -> None:
    _, agreed = negotiate(OptNeg(6, POSTFIX_ACTIONS, POSTFIX_PROTOCOL[6]))
    assert not agreed.needs_reply(Header(b"X", b"y"))
    assert agreed.needs_reply(EndOfHeaders())
    assert not agreed.needs_reply(DefineMacros(b"C", {}))


def test_postfix_6_reply_bytes() -> None:
    reply, _ = negotiate(OptNeg(6, POSTFIX_ACTIONS, POSTFIX_PROTOCOL[6]), macros={b"N": ["i"]})
    assert encode_reply(reply) == bytes.fromhex(
        "00000013 4f 00000006 00000111 0018478a 00000006 6900"
    )


def test_everything_wanted_takes_only_what_is_offered() -> None:
    want = ProtocolFlag(0x1FFFFF)
    reply, agreed = negotiate(OptNeg(2, POSTFIX_ACTIONS, POSTFIX_PROTOCOL[2]), want_protocol=want)
    assert reply.protocol == 0x7F
    assert agreed.needs_reply(Header) and agreed.needs_reply(Body)


def test_skip_needs_body_replies() -> None:
    want = P.SKIP | P.NR_HEADER
    _, agreed = negotiate(OptNeg(6, POSTFIX_ACTIONS, POSTFIX_PROTOCOL[6]), want_protocol=want)
    assert agreed.can_skip
    assert agreed.needs_reply(Body)


def test_version_is_the_lower_one() -> None:
    reply, _ = negotiate(OptNeg(7, POSTFIX_ACTIONS, POSTFIX_PROTOCOL[6]))
    assert reply.version == 6
    reply, _ = negotiate(OptNeg(6, POSTFIX_ACTIONS, POSTFIX_PROTOCOL[6]), supported_version=4)
    assert reply.version == 4


def test_version_1_is_a_problem() -> None:
    _, agreed = negotiate(OptNeg(1, ActionFlag(0), ProtocolFlag(0)))
    assert agreed.problem is not None and "version" in agreed.problem


def test_missing_add_headers_is_a_problem_not_an_exception() -> None:
    reply, agreed = negotiate(OptNeg(6, ActionFlag.CHANGE_HEADERS, POSTFIX_PROTOCOL[6]))
    assert agreed.problem is not None and "ADD_HEADERS" in agreed.problem
    assert ActionFlag.ADD_HEADERS not in reply.actions


def test_zero_offers_mean_the_version_1_sets() -> None:
    # libmilter st_optionneg: no action flags -> SMFI_V1_ACTS, no protocol -> SMFI_V1_PROT.
    reply, agreed = negotiate(OptNeg(2, ActionFlag(0), ProtocolFlag(0)))
    assert agreed.mta_actions == 0x0F and agreed.mta_protocol == 0x3F
    assert agreed.problem is None
    assert reply.actions == ActionFlag.ADD_HEADERS  # CHANGE_HEADERS is not a v1 action
    assert reply.protocol == P.NO_HELO | P.NO_RCPT


def test_no_macro_lists_without_setsymlist() -> None:
    offer = OptNeg(6, POSTFIX_ACTIONS & ~ActionFlag.SET_MACRO_LIST, POSTFIX_PROTOCOL[6])
    reply, agreed = negotiate(offer, macros=MACROS)
    assert reply.macros is None and agreed.macros is None
    assert ActionFlag.SET_MACRO_LIST not in reply.actions


def test_no_setsymlist_asked_without_lists() -> None:
    reply, _ = negotiate(OptNeg(6, POSTFIX_ACTIONS, POSTFIX_PROTOCOL[6]))
    assert ActionFlag.SET_MACRO_LIST not in reply.actions
    assert reply.macros is None


def test_libmilter_flag_names_are_aliases() -> None:
    # Looked up by name: mypy takes an alias for a member of its own.
    assert ActionFlag["ADDHDRS"] is ActionFlag["ADD_HEADERS"]
    assert ActionFlag["SETSYMLIST"] is ActionFlag["SET_MACRO_LIST"]
    assert ProtocolFlag["HDR_LEADSPC"] is ProtocolFlag["HEADER_LEADING_SPACE"]
    assert ProtocolFlag["NOHREPL"] is ProtocolFlag["NR_HDR"] is ProtocolFlag["NR_HEADER"]
    assert ProtocolFlag["NR_UNKN"] is ProtocolFlag["NR_UNKNOWN"]
    assert ActionFlag.ADDHDRS | ActionFlag.CHGHDRS == 0x11
