"""MilterConfig: what ``mailseal milter`` takes from opendkim.conf, typed.

Defaults are OpenDKIM 2.11's, from ``opendkim.c`` (``dkimf_config_new``, the
``defaults`` handling table) and ``opendkim.h``; where mailseal differs, a
``# OpenDKIM difference:`` comment says so and docs/configuration.md lists it.
``MilterConfig()`` is a valid all-defaults config (verify only, nothing signed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mailseal.config.model import ConfigWarning, OnAction, SigningChoice
from mailseal.config.peers import PeerList
from mailseal.config.tables import NoSigning, SigningPolicy
from mailseal.dkim.canon import Canon
from mailseal.dkim.sign import DEFAULT_SIGN_HEADERS
from mailseal.errors import Where

#: RFC 6376 §5.4 "SHOULD NOT sign" fields: OpenDKIM's default OmitHeaders
#: (libopendkim ``dkim_should_not_signhdrs``).
DEFAULT_OMIT_HEADERS: tuple[str, ...] = ("return-path", "received", "comments", "keywords")


@dataclass(frozen=True, slots=True)
class MilterConfig:
    """Everything ``mailseal milter`` takes from opendkim.conf; defaults are OpenDKIM's."""

    path: Path | None = None
    warnings: tuple[ConfigWarning, ...] = ()
    origins: Mapping[str, Where] = field(default_factory=dict)  # option -> the line that set it

    # What to do, and where to listen.
    mode_sign: bool = True
    mode_verify: bool = True
    socket: str | None = None

    # Signing.
    header_canon: Canon = Canon.SIMPLE
    body_canon: Canon = Canon.SIMPLE
    signature_algorithm: str = "rsa-sha256"
    sub_domains: bool = False
    multiple_signatures: bool = False
    sign_headers: tuple[str, ...] = DEFAULT_SIGN_HEADERS
    omit_headers: tuple[str, ...] = DEFAULT_OMIT_HEADERS
    # OpenDKIM difference: OpenDKIM oversigns nothing unless told; From is what Debian sets.
    oversign_headers: tuple[str, ...] = ("from",)
    sender_headers: tuple[str, ...] = ("from",)
    maximum_signed_bytes: int | None = None
    signature_ttl: int | None = None
    remove_old_signatures: bool = False
    signing: SigningPolicy = field(default_factory=NoSigning)

    # Who is inside.
    internal_hosts: PeerList = field(default_factory=PeerList.default_internal)
    external_ignore: PeerList = field(default_factory=PeerList)
    peer_list: PeerList = field(default_factory=PeerList)
    mta_names: tuple[str, ...] = ()
    macro_list: tuple[tuple[str, tuple[str, ...] | None], ...] = ()

    # Verifying.
    minimum_key_bits: int = 1024
    require_safe_keys: bool = True
    maximum_headers: int = 65536  # bytes; 0 = no limit
    maximum_signatures_to_verify: int = 3
    clock_drift: int = 300
    dns_timeout: int = 5
    nameservers: tuple[str, ...] = ()

    # Authentication-Results.
    # None: not set (OpenDKIM then uses the MTA's name, the j macro); "HOSTNAME": this
    # host's name; the shell decides what either becomes.
    authserv_id: str | None = None
    always_add_ar: bool = False
    keep_auth_results: bool = False
    remove_ar_all: bool = False
    remove_ar_from: tuple[str, ...] = ()

    # Failure actions (OpenDKIM's defaults).
    on_bad_signature: OnAction = OnAction.ACCEPT
    on_key_not_found: OnAction = OnAction.ACCEPT
    on_no_signature: OnAction = OnAction.ACCEPT
    on_dns_error: OnAction = OnAction.TEMPFAIL
    on_internal_error: OnAction = OnAction.TEMPFAIL
    on_security: OnAction = OnAction.TEMPFAIL
    on_signature_error: OnAction = OnAction.REJECT

    # Message handling.
    software_header: bool = False
    fix_crlf: bool = False

    # Process.
    umask: int | None = None
    user_id: str | None = None
    pid_file: Path | None = None
    background: bool = True
    base_directory: Path | None = None
    syslog: bool = False
    syslog_facility: str = "mail"
    syslog_name: str | None = None
    syslog_success: bool = False
    log_why: bool = False
    log_results: bool = False
    auto_restart: bool = False
    auto_restart_rate: tuple[int, int] | None = None  # (restarts, seconds)
    auto_restart_count: int = 0  # 0 = no limit
    workers: int | None = None  # MailsealWorkers; None = the shell decides

    def signing_for(self, sender_address: str) -> list[SigningChoice]:
        """The signatures to add for mail from this address; empty when none applies."""
        if not self.mode_sign:
            return []
        parts = split_address(sender_address)
        if parts is None:
            return []
        return self.signing.choices(*parts)


def split_address(address: str) -> tuple[str, str] | None:
    """``user@domain`` -> (user, lower-case domain); None for anything unsignable."""
    text = address.strip()
    while len(text) >= 2 and text[0] == "<" and text[-1] == ">":
        text = text[1:-1].strip()
    user, at, domain = text.rpartition("@")
    domain = domain.lower().rstrip(".")
    if not at or not user or not domain or not text.isascii():
        # OpenDKIM compat: its SigningTable is ASCII-only (DKIMF_DB_FLAG_ASCIIONLY).
        return None
    return user, domain


__all__ = ["DEFAULT_OMIT_HEADERS", "MilterConfig", "split_address"]
