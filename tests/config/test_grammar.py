"""The opendkim.conf grammar: names, values, comments, Include, and the errors' shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailseal.config.grammar import MAX_INCLUDE_DEPTH, parse_bool, parse_c_integer
from mailseal.config.options import OPTIONS, closest_option, find_option
from mailseal.dkim.canon import Canon
from tests.config.conftest import VECTORS, ConfDir


def opendkim_names() -> list[tuple[str, str]]:
    lines = (VECTORS / "opendkim-config-names.txt").read_text().splitlines()
    return [tuple(line.split()) for line in lines if line and not line.startswith("#")]  # type: ignore[misc]


# --- names ---------------------------------------------------------------------------


def test_unknown_option_error_is_exact(conf: ConfDir) -> None:
    text = conf.error("Mode sv\n\nCanonicalisation relaxed/simple\n")
    assert text == (
        f"{conf.root}/opendkim.conf:3: unknown option 'Canonicalisation' "
        "(did you mean 'Canonicalization'?)"
    )


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("SigningTabel", "SigningTable"),
        ("internalhost", "InternalHosts"),
        ("OverSignHeader", "OversignHeaders"),
        ("RequireSafeKey", "RequireSafeKeys"),
        ("On-DNSErrors", "On-DNSError"),
        ("MailsealWorker", "MailsealWorkers"),
    ],
)
def test_did_you_mean(conf: ConfDir, typed: str, meant: str) -> None:
    assert conf.error(f"{typed} x\n").endswith(
        f"unknown option {typed!r} (did you mean {meant!r}?)"
    )


def test_unknown_option_without_close_name(conf: ConfDir) -> None:
    text = conf.error("Zzyzx 1\n")
    assert text.startswith(f"{conf.root}/opendkim.conf:1: unknown option 'Zzyzx' (")
    assert closest_option("Zzyzx") is None


@pytest.mark.parametrize(("name", "kind"), opendkim_names())
def test_every_opendkim_name_is_known_with_its_type(name: str, kind: str) -> None:
    option = find_option(name)
    assert option is not None, name
    assert option.kind.name == {"BOOLEAN": "BOOL", "INTEGER": "INT", "STRING": "STR"}.get(
        kind, kind
    )


def test_option_table_holds_nothing_else() -> None:
    names = {n.lower() for n, _ in opendkim_names()}
    extra = {o.name for key, o in OPTIONS.items() if key not in names}
    assert extra == {"ReplaceHeaders", "MailsealWorkers"}  # man page; mailseal's own


@pytest.mark.parametrize("name", ["mode", "MODE", "mOdE"])
def test_names_are_case_insensitive(conf: ConfDir, name: str) -> None:
    cfg = conf.load(f"{name} v\n")
    assert (cfg.mode_sign, cfg.mode_verify) == (False, True)


def test_ignored_option_warns_with_its_line(conf: ConfDir) -> None:
    cfg = conf.load("Mode v\nLDAPUseTLS yes\nQueryCache no\n")
    texts = [str(w) for w in cfg.warnings]
    assert (
        f"{conf.root}/opendkim.conf:2: option LDAPUseTLS is not supported by mailseal "
        "and is ignored" in texts
    )
    assert any(
        t.startswith(f"{conf.root}/opendkim.conf:3: option QueryCache is not supported")
        for t in texts
    )


def test_ignored_option_still_gets_its_type_checked(conf: ConfDir) -> None:
    assert conf.error("QueryCache maybe\n").endswith(
        "opendkim.conf:1: QueryCache takes yes or no, not 'maybe' (use yes or no)"
    )


# --- lines and values --------------------------------------------------------------------


def test_comments_blank_lines_and_whitespace(conf: ConfDir) -> None:
    cfg = conf.load(
        "# a comment\n\n   \t\n  Mode\t\t v   # trailing comment\nSocket inet:8891@localhost#x\n"
    )
    assert (cfg.mode_sign, cfg.mode_verify) == (False, True)
    assert cfg.socket == "inet:8891@localhost"


def test_carriage_return_ends_the_line(conf: ConfDir) -> None:
    cfg = conf.load("Mode v\r\nSyslog yes\r\n")
    assert cfg.syslog and not cfg.mode_sign


def test_value_keeps_inner_spaces(conf: ConfDir) -> None:
    cfg = conf.load("InternalHosts 10.0.0.0/8,  192.168.0.0/16\n")
    assert cfg.internal_hosts.matches("192.168.3.4", None)


def test_last_duplicate_wins(conf: ConfDir) -> None:
    cfg = conf.load("Canonicalization relaxed/relaxed\nCanonicalization simple/relaxed\n")
    assert (cfg.header_canon, cfg.body_canon) == (Canon.SIMPLE, Canon.RELAXED)
    assert cfg.origins["Canonicalization"].line == 2


def test_missing_value(conf: ConfDir) -> None:
    assert conf.error("Syslog yes\nMode   \n").startswith(
        f"{conf.root}/opendkim.conf:2: Mode needs a value ("
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [(t, True) for t in ["yes", "Y", "true", "T", "1", "yuck"]]
    + [(f, False) for f in ["no", "N", "false", "F", "0", "nope"]],
)
def test_booleans_by_first_letter(text: str, value: bool) -> None:
    assert parse_bool(text) is value


@pytest.mark.parametrize("text", ["on", "off", "2", "-1", "enabled"])
def test_bad_boolean(conf: ConfDir, text: str) -> None:
    assert conf.error(f"Syslog {text}\n") == (
        f"{conf.root}/opendkim.conf:1: Syslog takes yes or no, not {text!r} (use yes or no)"
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [("5", 5), ("0", 0), ("007", 7), ("0x1F", 31), ("-3", -3), ("+4", 4), ("010", 8)],
)
def test_integers_as_strtol_base_0(text: str, value: int) -> None:
    assert parse_c_integer(text) == value


@pytest.mark.parametrize("text", ["5s", "ten", "0x", "08", "1.5", "1e3"])
def test_bad_integer(conf: ConfDir, text: str) -> None:
    assert conf.error(f"DNSTimeout {text}\n").startswith(
        f"{conf.root}/opendkim.conf:1: DNSTimeout takes a whole number, not {text!r} ("
    )


def test_negative_number_refused(conf: ConfDir) -> None:
    assert conf.error("ClockDrift -5\n") == (
        f"{conf.root}/opendkim.conf:1: ClockDrift cannot be -5 (use 0 or more)"
    )


def test_not_utf8_names_the_line(conf: ConfDir) -> None:
    path = conf.root / "opendkim.conf"
    path.write_bytes(b"Mode v\nAuthservID caf\xe9\n")
    from mailseal.config.opendkim import load_config
    from mailseal.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}:2: the line is not UTF-8 text")


def test_missing_config_file(tmp_path: Path) -> None:
    from mailseal.config.opendkim import load_config
    from mailseal.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.conf")
    assert str(info.value) == (
        f"{tmp_path}/nope.conf: cannot read configuration file {tmp_path}/nope.conf: "
        "No such file or directory"
    )


def test_empty_file_is_all_defaults(conf: ConfDir) -> None:
    cfg = conf.load("")
    assert cfg.mode_sign and cfg.mode_verify and cfg.warnings == ()


# --- Include -----------------------------------------------------------------------------


def test_include_places_settings_where_it_stands(conf: ConfDir) -> None:
    conf.write("inc.conf", "Mode v\nSyslog yes\n")
    cfg = conf.load("Mode s\nInclude inc.conf\nSyslog no\n")
    assert (cfg.mode_sign, cfg.mode_verify) == (False, True)  # the include came later
    assert cfg.syslog is False  # and this came after it
    assert cfg.origins["Mode"] == cfg.origins["Mode"].__class__(conf.root / "inc.conf", 1)


def test_include_absolute_and_nested(conf: ConfDir) -> None:
    conf.write("a/b.conf", f"Include {conf.root}/a/c/d.conf\n")
    conf.write("a/c/d.conf", "Socket inet:1@localhost\n")
    cfg = conf.load("Include a/b.conf\n")
    assert cfg.socket == "inet:1@localhost"


def test_error_inside_an_include_names_that_file(conf: ConfDir) -> None:
    conf.write("inc.conf", "\n\nSyslgo yes\n")
    assert conf.error("Include inc.conf\n").startswith(
        f"{conf.root}/inc.conf:3: unknown option 'Syslgo'"
    )


def test_missing_include_names_the_include_line(conf: ConfDir) -> None:
    assert conf.error("Mode v\nInclude gone.conf\n") == (
        f"{conf.root}/opendkim.conf:2: cannot read included file {conf.root}/gone.conf: "
        "No such file or directory"
    )


def test_include_depth_limit(conf: ConfDir) -> None:
    for level in range(1, MAX_INCLUDE_DEPTH + 1):
        conf.write(f"l{level}.conf", f"Include l{level + 1}.conf\n")
    conf.write(f"l{MAX_INCLUDE_DEPTH + 1}.conf", "Mode v\n")
    # Five nested includes are fine (OpenDKIM's MAXLEVEL)...
    conf.write(f"l{MAX_INCLUDE_DEPTH}.conf", "Mode v\n")
    assert not conf.load("Include l1.conf\n").mode_sign
    # ...a sixth is not.
    conf.write(f"l{MAX_INCLUDE_DEPTH}.conf", f"Include l{MAX_INCLUDE_DEPTH + 1}.conf\n")
    assert conf.error("Include l1.conf\n").startswith(
        f"{conf.root}/l{MAX_INCLUDE_DEPTH}.conf:1: Include nested more than 5 levels deep"
    )


def test_include_cycle(conf: ConfDir) -> None:
    conf.write("a.conf", "Include b.conf\n")
    conf.write("b.conf", "Include a.conf\n")
    text = conf.error("Include a.conf\n")
    assert text.startswith(f"{conf.root}/b.conf:1: Include loop: {conf.root}/a.conf -> ")
    assert text.endswith("(remove one of the Includes)")


def test_include_of_itself(conf: ConfDir) -> None:
    assert "Include loop" in conf.error("Include opendkim.conf\n")


def test_include_of_a_directory(conf: ConfDir) -> None:
    (conf.root / "d").mkdir()
    assert conf.error("Include d\n").endswith(
        f"cannot read included file {conf.root}/d: Is a directory"
    )


def test_include_of_a_fifo_does_not_hang(conf: ConfDir) -> None:
    import os

    os.mkfifo(conf.root / "fifo")
    assert conf.error("Include fifo\n").endswith(
        f"included file {conf.root}/fifo is not a regular file"
    )
