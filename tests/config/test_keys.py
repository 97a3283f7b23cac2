"""RequireSafeKeys: unsafe key files are refused with the file and the fixing command."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mailseal.config.keyfiles import KeyReader, key_file_problems
from mailseal.config.opendkim import load_config
from mailseal.dkim.keys import SigningKey
from mailseal.errors import ConfigError
from tests.config.conftest import ConfDir

ME = KeyReader.current()


def keyfile_config(conf: ConfDir, key: SigningKey, mode: int, extra: str = "") -> tuple[Path, Path]:
    path = conf.key("keys/mail.private", key, mode)
    return path, conf.write(
        "opendkim.conf", f"Domain example.com\nSelector mail\nKeyFile {path}\n{extra}"
    )


def test_0600_key_is_fine(conf: ConfDir, rsa_key: SigningKey) -> None:
    _, config = keyfile_config(conf, rsa_key, 0o600)
    cfg = load_config(config, key_reader=ME)
    assert cfg.warnings == () and cfg.signing_for("a@example.com")


def test_world_readable_key_is_refused(conf: ConfDir, rsa_key: SigningKey) -> None:
    path, config = keyfile_config(conf, rsa_key, 0o644)
    with pytest.raises(ConfigError) as info:
        load_config(config, key_reader=ME)
    assert str(info.value) == (
        f"{config}:3: key file {path} is not safe: every user can read it (mode 0644) "
        f"(fix: chmod 600 {path}; or set RequireSafeKeys no to use it anyway)"
    )


def test_group_readable_key_with_the_process_in_the_group(
    conf: ConfDir, rsa_key: SigningKey
) -> None:
    path, config = keyfile_config(conf, rsa_key, 0o640)
    assert os.stat(path).st_gid in ME.gids  # the file's group is one of ours
    cfg = load_config(config, key_reader=ME)
    assert cfg.warnings == () and cfg.signing_for("a@example.com")


def test_group_readable_key_with_the_process_outside_the_group(
    conf: ConfDir, rsa_key: SigningKey
) -> None:
    path, config = keyfile_config(conf, rsa_key, 0o640)
    outsider = KeyReader(ME.uid, frozenset(), ME.name)
    with pytest.raises(ConfigError) as info:
        load_config(config, key_reader=outsider)
    text = str(info.value)
    assert f"key file {path} is not safe: group " in text
    assert f"(mode 0640) and {ME.name} is not in " in text
    assert text.endswith(f"(fix: chmod 600 {path}; or set RequireSafeKeys no to use it anyway)")


def test_key_owned_by_someone_else(conf: ConfDir, rsa_key: SigningKey) -> None:
    path, config = keyfile_config(conf, rsa_key, 0o600)
    stranger = KeyReader(uid=54321, gids=frozenset({54321}), name="opendkim")
    if os.geteuid() == 0:
        os.chown(path, 54320, -1)  # root-owned files are always acceptable
    with pytest.raises(ConfigError) as info:
        load_config(config, key_reader=stranger)
    assert f"chown opendkim {path}" in str(info.value)


def test_owner_check_with_a_root_owned_file() -> None:
    info = os.stat_result((0o100600, 0, 0, 1, 0, 0, 0, 0, 0, 0))
    assert key_file_problems(Path("/k"), info, KeyReader(105, frozenset({105}), "opendkim")) == []
    info = os.stat_result((0o100600, 0, 0, 1, 1000, 0, 0, 0, 0, 0))
    ((problem, fix),) = key_file_problems(
        Path("/k"), info, KeyReader(105, frozenset({105}), "opendkim")
    )
    assert problem.endswith("not to opendkim or root") and fix == "chown opendkim /k"


def test_require_safe_keys_no_warns(conf: ConfDir, rsa_key: SigningKey) -> None:
    path, config = keyfile_config(conf, rsa_key, 0o644, "RequireSafeKeys no\n")
    cfg = load_config(config, key_reader=ME)
    assert cfg.signing_for("a@example.com")
    assert [str(w) for w in cfg.warnings] == [
        f"{config}:3: key file {path} is not safe: every user can read it (mode 0644) "
        f"(fix: chmod 600 {path}); used as RequireSafeKeys is no"
    ]


def test_world_writable_directory_is_refused(conf: ConfDir, rsa_key: SigningKey) -> None:
    path, config = keyfile_config(conf, rsa_key, 0o600)
    path.parent.chmod(0o777)
    with pytest.raises(ConfigError) as info:
        load_config(config, key_reader=ME)
    assert f"every user can write to the directory {path.parent}" in str(info.value)
    assert f"chmod o-w {path.parent}" in str(info.value)


def test_sticky_world_writable_directory_is_fine(conf: ConfDir, rsa_key: SigningKey) -> None:
    path, config = keyfile_config(conf, rsa_key, 0o600)
    path.parent.chmod(0o1777)  # like /tmp: nobody else can replace the file
    assert load_config(config, key_reader=ME).warnings == ()


def test_keytable_key_is_checked_at_its_line(conf: ConfDir, rsa_key: SigningKey) -> None:
    path = conf.key("k.private", rsa_key, 0o604)
    conf.write("KeyTable", f"\n\nk example.com:s:{path}\n")
    conf.write("SigningTable", "* k\n")
    text = conf.error(f"KeyTable {conf.root}/KeyTable\nSigningTable {conf.root}/SigningTable\n")
    assert text.startswith(
        f"{conf.root}/KeyTable:3: key file {path} is not safe: every user can read it"
    )


def test_unknown_user_id(conf: ConfDir, rsa_key: SigningKey) -> None:
    path = conf.key("k.private", rsa_key)
    config = conf.write(
        "opendkim.conf",
        f"UserID no-such-user-here\nDomain example.com\nSelector s\nKeyFile {path}\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config(config)  # no key_reader: the UserID user is looked up
    assert str(info.value).startswith(
        f"{config}:1: there is no user (or group) 'no-such-user-here' to check the key "
        "files against"
    )


def test_user_id_user_is_the_reader() -> None:
    root = KeyReader.for_user("root")
    assert root.uid == 0 and 0 in root.gids
    with pytest.raises(LookupError):
        KeyReader.for_user("root:no-such-group-here")
