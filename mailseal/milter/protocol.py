"""The Sendmail milter protocol: codes, flags, limits, and what Postfix offers and sends.

No I/O and no encoding here: this module and ``messages.py`` (the packets as values)
say what the protocol is; ``codec.py`` turns messages into bytes and back.

Names are readable; each constant carries the libmilter name in a trailing comment
(Sendmail ``libmilter/mfdef.h`` and ``include/libmilter/mfapi.h``), so the C sources
stay greppable. Facts about what Postfix sends are from ``src/milter/milter8.c``,
``src/milter/milter.c`` and ``src/global/mail_params.h`` (the same in these respects
from 3.7.0 to 3.12).

A packet is a 4-byte big-endian length, one code byte, then the payload; the length
counts the code byte.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

# -- limits ---------------------------------------------------------------------------

LEN_BYTES: Final = 4  # MILTER_LEN_BYTES
#: Body chunk size: Postfix and Sendmail send body data in chunks of at most this.
CHUNK_SIZE: Final = 65535  # MILTER_CHUNK_SIZE
#: libmilter's default cap on a packet's payload (without the code byte). A body
#: chunk of 65535 bytes therefore has a length field of 65536. Postfix does not
#: keep to this for headers: it sends a header of up to header_size_limit
#: (102400 by default) in one packet, which libmilter drops as too big.
LIBMILTER_MAX_DATA: Final = 65535  # MILTER_MAX_DATA_SIZE
#: Our cap on a packet's length field: ten times Postfix's default header_size_limit,
#: so every real packet fits, while one connection cannot make us buffer gigabytes.
DEFAULT_MAX_PACKET: Final = 1024 * 1024
#: Highest protocol version there is (Sendmail 8.14+, Postfix 2.6+).
MAX_VERSION: Final = 6  # SMFI_PROT_VERSION
#: libmilter refuses an MTA that offers less.
MIN_VERSION: Final = 2  # SMFI_PROT_VERSION_MIN (engine.c)
MAX_UINT32: Final = 0xFFFFFFFF


class CommandCode(enum.Enum):
    """Code byte of a packet from the MTA to the filter."""

    ABORT = b"A"  # SMFIC_ABORT
    BODY = b"B"  # SMFIC_BODY
    CONNECT = b"C"  # SMFIC_CONNECT
    MACRO = b"D"  # SMFIC_MACRO
    END_OF_MESSAGE = b"E"  # SMFIC_BODYEOB
    HELO = b"H"  # SMFIC_HELO
    QUIT_NEW_CONNECTION = b"K"  # SMFIC_QUIT_NC (v6)
    HEADER = b"L"  # SMFIC_HEADER
    MAIL = b"M"  # SMFIC_MAIL
    END_OF_HEADERS = b"N"  # SMFIC_EOH
    OPTION_NEGOTIATION = b"O"  # SMFIC_OPTNEG
    QUIT = b"Q"  # SMFIC_QUIT
    RCPT = b"R"  # SMFIC_RCPT
    DATA = b"T"  # SMFIC_DATA (v4)
    UNKNOWN = b"U"  # SMFIC_UNKNOWN (v3)


class ResponseCode(enum.Enum):
    """Code byte of a packet from the filter to the MTA."""

    ADD_RECIPIENT = b"+"  # SMFIR_ADDRCPT
    DELETE_RECIPIENT = b"-"  # SMFIR_DELRCPT
    ADD_RECIPIENT_WITH_ARGS = b"2"  # SMFIR_ADDRCPT_PAR
    SHUTDOWN = b"4"  # SMFIR_SHUTDOWN
    ACCEPT = b"a"  # SMFIR_ACCEPT
    REPLACE_BODY = b"b"  # SMFIR_REPLBODY
    CONTINUE = b"c"  # SMFIR_CONTINUE
    DISCARD = b"d"  # SMFIR_DISCARD
    CHANGE_FROM = b"e"  # SMFIR_CHGFROM
    CONNECTION_FAIL = b"f"  # SMFIR_CONN_FAIL
    ADD_HEADER = b"h"  # SMFIR_ADDHEADER
    INSERT_HEADER = b"i"  # SMFIR_INSHEADER
    SET_MACRO_LIST = b"l"  # SMFIR_SETSYMLIST (sent inside the O reply, not alone)
    CHANGE_HEADER = b"m"  # SMFIR_CHGHEADER
    OPTION_NEGOTIATION = b"O"  # SMFIC_OPTNEG: the filter answers O with O
    PROGRESS = b"p"  # SMFIR_PROGRESS
    QUARANTINE = b"q"  # SMFIR_QUARANTINE
    REJECT = b"r"  # SMFIR_REJECT
    SKIP = b"s"  # SMFIR_SKIP (v6)
    TEMPFAIL = b"t"  # SMFIR_TEMPFAIL
    REPLY_CODE = b"y"  # SMFIR_REPLYCODE


class ActionFlag(enum.IntFlag):
    """What the filter may do to a message (O packet, second word).

    Each flag has a readable name and, as an alias, its libmilter name less ``SMFIF_``.
    """

    NONE = 0  # SMFIF_NONE
    ADD_HEADERS = 0x001  # SMFIF_ADDHDRS
    CHANGE_BODY = 0x002  # SMFIF_CHGBODY
    ADD_RECIPIENTS = 0x004  # SMFIF_ADDRCPT
    DELETE_RECIPIENTS = 0x008  # SMFIF_DELRCPT
    CHANGE_HEADERS = 0x010  # SMFIF_CHGHDRS (change and delete)
    QUARANTINE = 0x020  # SMFIF_QUARANTINE
    CHANGE_FROM = 0x040  # SMFIF_CHGFROM
    ADD_RECIPIENTS_WITH_ARGS = 0x080  # SMFIF_ADDRCPT_PAR
    SET_MACRO_LIST = 0x100  # SMFIF_SETSYMLIST
    # The libmilter names without their prefix, as aliases.
    ADDHDRS = ADD_HEADERS
    CHGBODY = CHANGE_BODY
    ADDRCPT = ADD_RECIPIENTS
    DELRCPT = DELETE_RECIPIENTS
    CHGHDRS = CHANGE_HEADERS
    CHGFROM = CHANGE_FROM
    ADDRCPT_PAR = ADD_RECIPIENTS_WITH_ARGS
    SETSYMLIST = SET_MACRO_LIST


class ProtocolFlag(enum.IntFlag):
    """Steps the MTA leaves out, replies the filter leaves out, extras (O packet, third word).

    ``NO_*``: the MTA does not send that step (Postfix still sends its macros).
    ``NR_*``: the filter sends no reply to that step and the MTA waits for none.
    Each flag has a readable name and, as an alias, its libmilter name less ``SMFIP_``.
    """

    NONE = 0
    NO_CONNECT = 0x00000001  # SMFIP_NOCONNECT
    NO_HELO = 0x00000002  # SMFIP_NOHELO
    NO_MAIL = 0x00000004  # SMFIP_NOMAIL
    NO_RCPT = 0x00000008  # SMFIP_NORCPT
    NO_BODY = 0x00000010  # SMFIP_NOBODY
    NO_HEADERS = 0x00000020  # SMFIP_NOHDRS
    NO_EOH = 0x00000040  # SMFIP_NOEOH
    NR_HEADER = 0x00000080  # SMFIP_NR_HDR, also SMFIP_NOHREPL (Postfix "no_header_reply")
    NO_UNKNOWN = 0x00000100  # SMFIP_NOUNKNOWN
    NO_DATA = 0x00000200  # SMFIP_NODATA
    SKIP = 0x00000400  # SMFIP_SKIP: the MTA understands the SKIP reply
    RCPT_REJECTED = 0x00000800  # SMFIP_RCPT_REJ: also send rejected RCPTs
    NR_CONNECT = 0x00001000  # SMFIP_NR_CONN
    NR_HELO = 0x00002000  # SMFIP_NR_HELO
    NR_MAIL = 0x00004000  # SMFIP_NR_MAIL
    NR_RCPT = 0x00008000  # SMFIP_NR_RCPT
    NR_DATA = 0x00010000  # SMFIP_NR_DATA
    NR_UNKNOWN = 0x00020000  # SMFIP_NR_UNKN
    NR_EOH = 0x00040000  # SMFIP_NR_EOH
    NR_BODY = 0x00080000  # SMFIP_NR_BODY
    HEADER_LEADING_SPACE = 0x00100000  # SMFIP_HDR_LEADSPC
    MDS_256K = 0x10000000  # SMFIP_MDS_256K (Sendmail: larger packets; libmilter internal)
    MDS_1M = 0x20000000  # SMFIP_MDS_1M
    # The libmilter names without their prefix, as aliases.
    NOCONNECT = NO_CONNECT
    NOHELO = NO_HELO
    NOMAIL = NO_MAIL
    NORCPT = NO_RCPT
    NOBODY = NO_BODY
    NOHDRS = NO_HEADERS
    NOEOH = NO_EOH
    NR_HDR = NR_HEADER
    NOHREPL = NR_HEADER
    NOUNKNOWN = NO_UNKNOWN
    NODATA = NO_DATA
    RCPT_REJ = RCPT_REJECTED
    NR_CONN = NR_CONNECT
    NR_UNKN = NR_UNKNOWN
    HDR_LEADSPC = HEADER_LEADING_SPACE


#: Steps an MTA can leave out (Postfix SMFIP_NOSEND_MASK).
NO_STEP_FLAGS: Final = (
    ProtocolFlag.NO_CONNECT
    | ProtocolFlag.NO_HELO
    | ProtocolFlag.NO_MAIL
    | ProtocolFlag.NO_RCPT
    | ProtocolFlag.NO_BODY
    | ProtocolFlag.NO_HEADERS
    | ProtocolFlag.NO_EOH
    | ProtocolFlag.NO_UNKNOWN
    | ProtocolFlag.NO_DATA
)
#: Replies a filter can leave out (Postfix SMFIP_NOREPLY_MASK).
NO_REPLY_FLAGS: Final = (
    ProtocolFlag.NR_CONNECT
    | ProtocolFlag.NR_HELO
    | ProtocolFlag.NR_MAIL
    | ProtocolFlag.NR_RCPT
    | ProtocolFlag.NR_DATA
    | ProtocolFlag.NR_UNKNOWN
    | ProtocolFlag.NR_HEADER
    | ProtocolFlag.NR_EOH
    | ProtocolFlag.NR_BODY
)
#: What libmilter assumes when an MTA offers no actions or no protocol flags (version 1).
V1_ACTIONS: Final = ActionFlag(0x0F)  # SMFI_V1_ACTS
V1_PROTOCOL: Final = ProtocolFlag(0x3F)  # SMFI_V1_PROT

# -- what Postfix offers (milter8.c, milter8_connect) ---------------------------------

#: Postfix offers every action at every protocol version, SET_MACRO_LIST included,
#: and reads macro lists from the filter's O reply whatever the version.
POSTFIX_ACTIONS: Final = ActionFlag(0x1FF)
_POSTFIX_V2: Final = NO_STEP_FLAGS & ~(ProtocolFlag.NO_UNKNOWN | ProtocolFlag.NO_DATA)
#: Protocol flags Postfix offers per ``milter_protocol`` version (MILTER8_Vn_PROTO_MASK).
#: ``milter_protocol = 2, no_header_reply`` adds NR_HEADER to the version 2 set.
POSTFIX_PROTOCOL: Final[Mapping[int, ProtocolFlag]] = {
    2: _POSTFIX_V2,  # 0x7F
    3: _POSTFIX_V2 | ProtocolFlag.NO_UNKNOWN,  # 0x17F
    4: _POSTFIX_V2 | ProtocolFlag.NO_UNKNOWN | ProtocolFlag.NO_DATA,  # 0x37F
    6: ProtocolFlag(0x001FFFFF),  # SMFI_CURR_PROT: everything up to HEADER_LEADING_SPACE
}


class MacroStage(enum.IntEnum):
    """Where a macro list applies, as numbered in SETSYMLIST lists (O reply)."""

    CONNECT = 0  # SMFIM_CONNECT
    HELO = 1  # SMFIM_HELO
    MAIL = 2  # SMFIM_ENVFROM
    RCPT = 3  # SMFIM_ENVRCPT
    DATA = 4  # SMFIM_DATA
    END_OF_MESSAGE = 5  # SMFIM_EOM
    END_OF_HEADERS = 6  # SMFIM_EOH


#: The command code a D packet names for each SETSYMLIST stage, and back.
STAGE_COMMAND: Final[Mapping[MacroStage, bytes]] = {
    MacroStage.CONNECT: b"C",
    MacroStage.HELO: b"H",
    MacroStage.MAIL: b"M",
    MacroStage.RCPT: b"R",
    MacroStage.DATA: b"T",
    MacroStage.END_OF_MESSAGE: b"E",
    MacroStage.END_OF_HEADERS: b"N",
}
#: What separates names in a SETSYMLIST list: Postfix splits on CHARS_COMMA_SP.
MACRO_LIST_SEPARATORS: Final = ", \t\r\n"
COMMAND_STAGE: Final[Mapping[bytes, MacroStage]] = {v: k for k, v in STAGE_COMMAND.items()}

#: Macros Postfix sends by default, by the code of the D packet that carries them
#: (milter_*_macros in mail_params.h). Only macros with a value are sent. Postfix also
#: sends the end-of-header list before each header (D L) and the end-of-data list
#: before each body chunk (D B); the unknown-command list (D U) is empty by default.
#: ``i`` (queue ID) has no value at MAIL and RCPT while smtpd_delay_open_until_valid_rcpt
#: is yes (the default): it first comes with DATA.
POSTFIX_DEFAULT_MACROS: Final[Mapping[bytes, tuple[str, ...]]] = {
    b"C": ("j", "{daemon_name}", "{daemon_addr}", "v", "_"),
    b"H": ("{tls_version}", "{cipher}", "{cipher_bits}", "{cert_subject}", "{cert_issuer}"),
    b"M": (
        "i",
        "{auth_type}",
        "{auth_authen}",
        "{auth_author}",
        "{mail_addr}",
        "{mail_host}",
        "{mail_mailer}",
    ),
    b"R": ("i", "{rcpt_addr}", "{rcpt_host}", "{rcpt_mailer}"),
    b"T": ("i",),
    b"U": (),
    b"N": ("i",),
    b"E": ("i",),
}


class AddressFamily(enum.Enum):
    """Family byte of a CONNECT packet."""

    UNKNOWN = b"U"  # SMFIA_UNKNOWN: host name only, no port or address follow
    UNIX = b"L"  # SMFIA_UNIX
    INET = b"4"  # SMFIA_INET
    INET6 = b"6"  # SMFIA_INET6
