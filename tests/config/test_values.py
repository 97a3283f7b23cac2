"""Each option's value: types, defaults (OpenDKIM's), and errors at path:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailseal.config.opendkim import MilterConfig, OnAction
from mailseal.dkim.canon import Canon
from mailseal.dkim.sign import DEFAULT_SIGN_HEADERS
from tests.config.conftest import ConfDir


def test_defaults_are_opendkims() -> None:
    cfg = MilterConfig()
    assert (cfg.mode_sign, cfg.mode_verify) == (True, True)
    assert (cfg.header_canon, cfg.body_canon) == (Canon.SIMPLE, Canon.SIMPLE)
    assert cfg.signature_algorithm == "rsa-sha256"
    assert cfg.minimum_key_bits == 1024 and cfg.require_safe_keys
    assert cfg.maximum_headers == 65536 and cfg.maximum_signatures_to_verify == 3
    assert cfg.clock_drift == 300 and cfg.dns_timeout == 5
    assert cfg.maximum_signed_bytes is None and cfg.signature_ttl is None
    assert cfg.sign_headers == DEFAULT_SIGN_HEADERS and cfg.sender_headers == ("from",)
    assert cfg.omit_headers == ("return-path", "received", "comments", "keywords")
    assert cfg.background and not cfg.syslog and cfg.syslog_facility == "mail"
    assert cfg.auto_restart_count == 0 and cfg.auto_restart_rate is None
    assert (
        cfg.on_bad_signature,
        cfg.on_key_not_found,
        cfg.on_no_signature,
        cfg.on_dns_error,
        cfg.on_internal_error,
        cfg.on_security,
        cfg.on_signature_error,
    ) == (
        OnAction.ACCEPT,
        OnAction.ACCEPT,
        OnAction.ACCEPT,
        OnAction.TEMPFAIL,
        OnAction.TEMPFAIL,
        OnAction.TEMPFAIL,
        OnAction.REJECT,
    )
    assert cfg.internal_hosts.matches("127.0.0.1", None)
    assert not cfg.external_ignore.matches("127.0.0.1", None)
    assert cfg.signing_for("a@example.com") == []


def test_loaded_empty_config_equals_defaults(conf: ConfDir) -> None:
    loaded = conf.load("")
    for name in MilterConfig.__dataclass_fields__:
        if name not in ("path", "signing", "internal_hosts", "external_ignore", "peer_list"):
            assert getattr(loaded, name) == getattr(MilterConfig(), name), name


# --- Mode, Canonicalization, SignatureAlgorithm ---------------------------------------


@pytest.mark.parametrize(
    ("text", "modes"),
    [("s", (True, False)), ("v", (False, True)), ("sv", (True, True)), ("VS", (True, True))],
)
def test_mode(conf: ConfDir, text: str, modes: tuple[bool, bool]) -> None:
    cfg = conf.load(f"Mode {text}\n")
    assert (cfg.mode_sign, cfg.mode_verify) == modes


def test_bad_mode(conf: ConfDir) -> None:
    assert conf.error("Mode sx\n") == (
        f"{conf.root}/opendkim.conf:1: unknown mode 'x' in 'sx' (use s (sign), v (verify) or sv)"
    )


@pytest.mark.parametrize(
    ("text", "canons"),
    [
        ("relaxed/simple", (Canon.RELAXED, Canon.SIMPLE)),
        ("relaxed", (Canon.RELAXED, Canon.SIMPLE)),
        ("Simple/Relaxed", (Canon.SIMPLE, Canon.RELAXED)),
    ],
)
def test_canonicalization(conf: ConfDir, text: str, canons: tuple[Canon, Canon]) -> None:
    cfg = conf.load(f"Canonicalization {text}\n")
    assert (cfg.header_canon, cfg.body_canon) == canons


def test_bad_canonicalization(conf: ConfDir) -> None:
    assert conf.error("\nCanonicalization relaxed/nowsp\n") == (
        f"{conf.root}/opendkim.conf:2: unknown value 'relaxed/nowsp' "
        "(use simple or relaxed, or header/body such as relaxed/simple)"
    )


def test_signature_algorithm(conf: ConfDir) -> None:
    assert conf.load("SignatureAlgorithm ed25519-sha256\n").signature_algorithm == "ed25519-sha256"
    cfg = conf.load("SignatureAlgorithm rsa-sha1\n")
    assert cfg.signature_algorithm == "rsa-sha256"
    assert "RFC 8301" in cfg.warnings[0].text
    assert conf.error("SignatureAlgorithm rsa-md5\n").endswith(
        "unknown signing algorithm 'rsa-md5' (use rsa-sha256 or ed25519-sha256)"
    )


# --- On-* -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("accept", OnAction.ACCEPT),
        ("a", OnAction.ACCEPT),
        ("Discard", OnAction.DISCARD),
        ("d", OnAction.DISCARD),
        ("quarantine", OnAction.QUARANTINE),
        ("q", OnAction.QUARANTINE),
        ("REJECT", OnAction.REJECT),
        ("r", OnAction.REJECT),
        ("tempfail", OnAction.TEMPFAIL),
        ("t", OnAction.TEMPFAIL),
    ],
)
def test_on_values(conf: ConfDir, text: str, action: OnAction) -> None:
    assert conf.load(f"On-BadSignature {text}\n").on_bad_signature is action


def test_on_default_sets_all_first(conf: ConfDir) -> None:
    # The order in the file does not matter: On-Default applies before the others.
    cfg = conf.load("On-DNSError accept\nOn-Default reject\n")
    assert cfg.on_dns_error is OnAction.ACCEPT
    for attr in (
        "on_bad_signature",
        "on_key_not_found",
        "on_no_signature",
        "on_internal_error",
        "on_security",
        "on_signature_error",
    ):
        assert getattr(cfg, attr) is OnAction.REJECT


def test_bad_on_value(conf: ConfDir) -> None:
    assert conf.error("On-Security bounce\n") == (
        f"{conf.root}/opendkim.conf:1: On-Security cannot be 'bounce' "
        "(use accept, discard, quarantine, reject or tempfail)"
    )


# --- process options ------------------------------------------------------------------


@pytest.mark.parametrize(
    "socket",
    [
        "inet:12145@localhost",
        "inet:8891",
        "inet6:8891@[::1]",
        "local:/run/opendkim/opendkim.sock",
        "unix:/x.sock",
        "/var/run/x.sock",
        "inet:milter@127.0.0.1",
    ],
)
def test_socket(conf: ConfDir, socket: str) -> None:
    assert conf.load(f"Socket {socket}\n").socket == socket


@pytest.mark.parametrize(
    ("socket", "problem"),
    [
        ("inet:0@localhost", "'0' is not a port"),
        ("inet:70000", "'70000' is not a port"),
        ("inet:@localhost", "'' is not a port"),
        ("inet:25@", "names no host"),
        ("tcp:25", "unknown socket type 'tcp'"),
        ("local:", "names no path"),
        ("opendkim.sock", "is not a socket"),
    ],
)
def test_bad_socket(conf: ConfDir, socket: str, problem: str) -> None:
    text = conf.error(f"Socket {socket}\n")
    assert text.startswith(f"{conf.root}/opendkim.conf:1: ") and problem in text
    assert text.endswith("(e.g. local:/run/opendkim/opendkim.sock or inet:8891@localhost)")


@pytest.mark.parametrize(
    ("text", "value", "warns"),
    [
        ("002", 0o2, False),
        ("007", 0o7, False),
        ("0", 0, False),
        ("7", 7, False),
        ("0x1ff", 0o777, False),
        ("22", 0o22, True),
        ("077", 0o77, False),
    ],
)
def test_umask(conf: ConfDir, text: str, value: int, warns: bool) -> None:
    cfg = conf.load(f"UMask {text}\n")
    assert cfg.umask == value
    assert bool(cfg.warnings) is warns
    if warns:
        assert cfg.warnings[0].text == (
            "OpenDKIM reads UMask 22 as decimal 22 (octal 026); mailseal reads it as octal 022 "
            "(write 022)"
        )


def test_bad_umask(conf: ConfDir) -> None:
    assert "is not a umask" in conf.error("UMask 01000\n")
    assert "takes a whole number" in conf.error("UMask 0o22\n")


def test_user_pid_syslog(conf: ConfDir) -> None:
    cfg = conf.load(
        "UserID opendkim:opendkim\nPidFile /run/opendkim/opendkim.pid\nBackground no\n"
        "Syslog yes\nSyslogSuccess yes\nLogWhy yes\nLogResults yes\nSyslogFacility LOCAL3\n"
        "SyslogName dkim\n"
    )
    assert cfg.user_id == "opendkim:opendkim"
    assert cfg.pid_file == Path("/run/opendkim/opendkim.pid")
    assert not cfg.background
    assert cfg.syslog and cfg.syslog_success and cfg.log_why and cfg.log_results
    assert (cfg.syslog_facility, cfg.syslog_name) == ("local3", "dkim")


@pytest.mark.parametrize("user", ["opendkim:", ":opendkim", "a b"])
def test_bad_user_id(conf: ConfDir, user: str) -> None:
    assert "is not user[:group]" in conf.error(f"UserID {user}\n")


def test_unknown_syslog_facility_warns(conf: ConfDir) -> None:
    cfg = conf.load("SyslogFacility mial\n")
    assert cfg.syslog_facility == "mail" and "unknown syslog facility" in cfg.warnings[0].text


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("10/1h", (10, 3600)),
        ("3/30", (3, 30)),
        ("3/30s", (3, 30)),
        ("5/2M", (5, 120)),
        ("1/1d", (1, 86400)),
    ],
)
def test_auto_restart_rate(conf: ConfDir, text: str, rate: tuple[int, int]) -> None:
    cfg = conf.load(f"AutoRestart yes\nAutoRestartRate {text}\nAutoRestartCount 7\n")
    assert cfg.auto_restart and cfg.auto_restart_rate == rate and cfg.auto_restart_count == 7


@pytest.mark.parametrize("text", ["10", "10/0h", "10/1w", "10/1hh", "x/1h", "-1/1h"])
def test_bad_auto_restart_rate(conf: ConfDir, text: str) -> None:
    assert conf.error(f"AutoRestart yes\nAutoRestartRate {text}\n") == (
        f"{conf.root}/opendkim.conf:2: {text!r} is not a rate "
        "(write restarts/time with s, m, h or d, e.g. 10/1h)"
    )
    cfg = conf.load(f"AutoRestartRate {text}\n")  # OpenDKIM reads it only with AutoRestart
    assert cfg.auto_restart_rate is None and "is invalid; ignored" in cfg.warnings[0].text


def test_mailseal_workers(conf: ConfDir) -> None:
    assert conf.load("MailsealWorkers 4\n").workers == 4
    assert conf.load("").workers is None
    assert "MailsealWorkers cannot be 0 (use 1 or more)" in conf.error("MailsealWorkers 0\n")


# --- numbers --------------------------------------------------------------------------


def test_numbers(conf: ConfDir) -> None:
    cfg = conf.load(
        "MinimumKeyBits 2048\nMaximumHeaders 0\nMaximumSignaturesToVerify 10\n"
        "MaximumSignedBytes 100000\nSignatureTTL 604800\nClockDrift 60\nDNSTimeout 0x0a\n"
    )
    assert cfg.minimum_key_bits == 2048 and cfg.maximum_headers == 0
    assert cfg.maximum_signatures_to_verify == 10 and cfg.maximum_signed_bytes == 100000
    assert cfg.signature_ttl == 604800 and cfg.clock_drift == 60 and cfg.dns_timeout == 10
    assert conf.load("SignatureTTL 0\n").signature_ttl is None


# --- Authentication-Results and DNS ---------------------------------------------------


def test_authentication_results_options(conf: ConfDir) -> None:
    cfg = conf.load(
        "AuthservID mx.example.com\nAlwaysAddARHeader yes\nKeepAuthResults yes\n"
        "RemoveARAll yes\nRemoveARFrom csl:MX.example.com,.example.net\nRemoveOldSignatures yes\n"
    )
    assert cfg.authserv_id == "mx.example.com"
    assert (
        cfg.always_add_ar
        and cfg.keep_auth_results
        and cfg.remove_ar_all
        and cfg.remove_old_signatures
    )
    assert cfg.remove_ar_from == ("mx.example.com", ".example.net")
    assert conf.load("AuthservID HOSTNAME\n").authserv_id == "HOSTNAME"
    assert conf.load("").authserv_id is None
    assert "is not a single word" in conf.error("AuthservID mx example\n")


def test_nameservers(conf: ConfDir) -> None:
    cfg = conf.load("Nameservers 127.0.0.1, ::1,[::1]:5353 ,192.0.2.1:53\n")
    assert cfg.nameservers == ("127.0.0.1", "::1", "[::1]:5353", "192.0.2.1:53")
    assert conf.error("Nameservers 127.0.0.1,dns.example\n").startswith(
        f"{conf.root}/opendkim.conf:1: "
    )


# --- header lists ---------------------------------------------------------------------


def test_sign_headers_list(conf: ConfDir) -> None:
    cfg = conf.load("SignHeaders Subject,To,Date\n")
    assert cfg.sign_headers == ("from", "subject", "to", "date")  # From is always signed


def test_sign_headers_delta(conf: ConfDir) -> None:
    cfg = conf.load("SignHeaders *,+X-Custom,-List-Id,-from\n")
    assert cfg.sign_headers[: len(DEFAULT_SIGN_HEADERS) - 1] == tuple(
        h for h in DEFAULT_SIGN_HEADERS if h != "list-id"
    )
    assert cfg.sign_headers[-1] == "x-custom" and "from" in cfg.sign_headers


def test_omit_headers(conf: ConfDir) -> None:
    cfg = conf.load("OmitHeaders *,+Subject,-Received,+From\n")
    assert cfg.omit_headers == ("return-path", "comments", "keywords", "subject")
    assert "subject" not in cfg.sign_headers and "from" in cfg.sign_headers
    assert conf.load("OmitHeaders .\n").omit_headers == ()


def test_bare_name_in_a_star_list_warns(conf: ConfDir) -> None:
    cfg = conf.load("SignHeaders *,X-Extra\n")
    assert cfg.sign_headers[-1] == "x-extra"
    assert "OpenDKIM ignores 'x-extra' in a list with '*'" in cfg.warnings[0].text


def test_oversign_and_sender_headers(conf: ConfDir) -> None:
    cfg = conf.load("OversignHeaders From,Subject\nSenderHeaders Sender,From\n")
    assert cfg.oversign_headers == ("from", "subject")
    assert cfg.sender_headers == ("sender", "from")


def test_header_list_from_a_file(conf: ConfDir) -> None:
    conf.write("hdrs", "From\nTo\n# c\nSubject\n")
    assert conf.load(f"SignHeaders {conf.root}/hdrs\n").sign_headers == ("from", "to", "subject")


def test_header_list_cannot_be_refile(conf: ConfDir) -> None:
    conf.write("hdrs", "From\n")
    assert conf.error(f"OversignHeaders refile:{conf.root}/hdrs\n") == (
        f"{conf.root}/opendkim.conf:1: OversignHeaders cannot be a refile: dataset "
        "(list the names, e.g. csl:a,b or file:/path with one per line)"
    )


# --- MTA and MacroList ----------------------------------------------------------------


def test_mta_and_macros(conf: ConfDir) -> None:
    conf.write("macros", "daemon_name ORIGINATING|MSA\nauth_authen\n{tls_version}\n")
    cfg = conf.load(f"MTA MSA,submission\nMacroList file:{conf.root}/macros\n")
    assert cfg.mta_names == ("MSA", "submission")
    assert cfg.macro_list == (
        ("daemon_name", ("ORIGINATING", "MSA")),
        ("auth_authen", None),
        ("tls_version", None),
    )
    cfg = conf.load("MacroList daemon_name=MSA|ORIG,auth_type\n")
    assert cfg.macro_list == (("daemon_name", ("MSA", "ORIG")), ("auth_type", None))


def test_macro_list_cannot_be_refile(conf: ConfDir) -> None:
    conf.write("m", "x\n")
    assert "MacroList must be a file: or csl: dataset" in conf.error(
        f"MacroList refile:{conf.root}/m\n"
    )


# --- BaseDirectory, X-Header ----------------------------------------------------------


def test_base_directory(conf: ConfDir) -> None:
    conf.write("data/internal", "10.0.0.0/8\n")
    cfg = conf.load(f"BaseDirectory {conf.root}/data\nInternalHosts file:internal\n")
    assert cfg.base_directory == conf.root / "data"
    assert cfg.internal_hosts.matches("10.9.9.9", None)
    assert conf.error("BaseDirectory /nonexistent/dir\n").endswith(
        "/nonexistent/dir is not a directory"
    )


def test_x_header_is_software_header(conf: ConfDir) -> None:
    cfg = conf.load("X-Header yes\n")
    assert cfg.software_header
    assert cfg.warnings[0].text == "X-Header is deprecated; write SoftwareHeader instead"
    assert conf.load("SoftwareHeader yes\nFixCRLF yes\n").fix_crlf


def test_origins_point_at_lines(conf: ConfDir) -> None:
    cfg = conf.load("# x\nMode v\n\nSocket inet:1\n")
    assert (cfg.origins["Mode"].line, cfg.origins["Socket"].line) == (2, 4)
