"""setup's plan from a snapshot (mailseal.setup.plan), checked without touching the disk.

``run`` plays the actions on an in-memory snapshot the way the shell plays them
on files; planning again on the result must give no action: idempotence.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mailseal.dkim.keys import KeyType, SigningKey, generate_key, private_pem
from mailseal.setup.layout import Layout
from mailseal.setup.plan import (
    Action,
    Existing,
    Kind,
    Request,
    SetupError,
    make_plan,
    missing_keys,
)

ROOT = Path("/srv/etc/opendkim")
OWNER = (102, 105)


@pytest.fixture(scope="module")
def rsa() -> SigningKey:
    return generate_key(KeyType.RSA, 1024)


@pytest.fixture(scope="module")
def ed() -> SigningKey:
    return generate_key(KeyType.ED25519)


def request(domain: str = "example.com", **kw: object) -> Request:
    return Request(domain, "mail", Layout.at(ROOT), owner=OWNER, **kw)  # type: ignore[arg-type]


def run(actions: tuple[Action, ...], snap: dict[Path, Existing]) -> dict[Path, Existing]:
    out = dict(snap)
    for a in actions:
        old = out.get(a.path)
        if a.kind is Kind.MKDIR:
            out[a.path] = Existing(True, a.mode, *(a.owner or (0, 0)))
        elif a.kind is Kind.WRITE:
            owner = a.owner or ((old.uid, old.gid) if old else (0, 0))
            out[a.path] = Existing(False, a.mode, *owner, content=a.content)
        elif a.kind is Kind.CHMOD:
            assert old is not None
            out[a.path] = Existing(old.is_dir, a.mode, old.uid, old.gid, old.content)
        else:
            assert old is not None and a.owner is not None
            out[a.path] = Existing(old.is_dir, old.mode, *a.owner, content=old.content)
    return out


def keys_for(
    req: Request, snap: dict[Path, Existing], rsa: SigningKey, ed: SigningKey
) -> dict[Path, SigningKey]:
    return {s.private: rsa if s.key_type is KeyType.RSA else ed for s in missing_keys(req, snap)}


def text(snap: dict[Path, Existing], path: Path) -> str:
    content = snap[path].content
    assert content is not None
    return content.decode()


def test_fresh_setup_then_nothing(rsa: SigningKey, ed: SigningKey) -> None:
    req = request()
    plan = make_plan(req, {}, keys_for(req, {}, rsa, ed))
    kinds = [(a.kind, a.path.name) for a in plan.actions]
    assert kinds == [
        (Kind.MKDIR, "opendkim"),
        (Kind.MKDIR, "keys"),
        (Kind.MKDIR, "example.com"),
        (Kind.WRITE, "mail.private"),
        (Kind.WRITE, "mail.txt"),
        (Kind.WRITE, "TrustedHosts"),
        (Kind.WRITE, "KeyTable"),
        (Kind.WRITE, "SigningTable"),
        (Kind.WRITE, "opendkim.conf"),
    ]
    by_name = {a.path.name: a for a in plan.actions}
    assert by_name["example.com"].mode == 0o700 and by_name["example.com"].owner == OWNER
    assert by_name["mail.private"].mode == 0o600 and by_name["mail.private"].owner == OWNER
    assert by_name["mail.private"].content == private_pem(rsa)
    assert by_name["KeyTable"].mode == 0o644 and by_name["KeyTable"].owner is None
    snap = run(plan.actions, {})
    assert not make_plan(req, snap, {}).changes


def test_written_tables_and_settings(rsa: SigningKey, ed: SigningKey) -> None:
    req = request(ed25519=True, ips=("192.0.2.10",))
    snap = run(make_plan(req, {}, keys_for(req, {}, rsa, ed)).actions, {})
    conf = text(snap, ROOT / "opendkim.conf")
    assert "KeyTable\tfile:/srv/etc/opendkim/KeyTable\n" in conf
    assert "SigningTable\trefile:/srv/etc/opendkim/SigningTable\n" in conf
    assert "MultipleSignatures\tyes\n" in conf
    assert text(snap, ROOT / "KeyTable") == (
        "mail._domainkey.example.com\texample.com:mail:/srv/etc/opendkim/keys/example.com/"
        "mail.private\n"
        "mail-ed25519._domainkey.example.com\texample.com:mail-ed25519:/srv/etc/opendkim/keys/"
        "example.com/mail-ed25519.private:ed25519-sha256\n"
    )
    signing = text(snap, ROOT / "SigningTable")
    hosts = text(snap, ROOT / "TrustedHosts")
    assert hosts.splitlines()[1:] == ["127.0.0.1", "::1", "localhost", "192.0.2.10"]
    assert signing.splitlines() == [
        "*@example.com mail._domainkey.example.com",
        "*@example.com mail-ed25519._domainkey.example.com",
    ]


def test_second_domain_appends(rsa: SigningKey, ed: SigningKey) -> None:
    first = request()
    snap = run(make_plan(first, {}, keys_for(first, {}, rsa, ed)).actions, {})
    second = request("example.org")
    plan = make_plan(second, snap, keys_for(second, snap, rsa, ed))
    written = {a.path.name: a for a in plan.actions if a.kind is Kind.WRITE}
    assert set(written) == {"mail.private", "mail.txt", "KeyTable", "SigningTable"}
    assert "example.com" in written["KeyTable"].note or "example.org" in written["KeyTable"].note
    snap = run(plan.actions, snap)
    assert text(snap, ROOT / "SigningTable").splitlines() == [
        "*@example.com mail._domainkey.example.com",
        "*@example.org mail._domainkey.example.org",
    ]
    assert not make_plan(second, snap, {}).changes and not make_plan(first, snap, {}).changes


def test_wrong_permissions_are_fixed(rsa: SigningKey, ed: SigningKey) -> None:
    req = request()
    snap = run(make_plan(req, {}, keys_for(req, {}, rsa, ed)).actions, {})
    key = ROOT / "keys/example.com/mail.private"
    snap[key] = Existing(False, 0o644, 0, 0, snap[key].content)
    snap[ROOT / "keys/example.com"] = Existing(True, 0o755, 0, 0)
    plan = make_plan(req, snap, {})
    assert [(a.kind, a.path.name, a.mode) for a in plan.actions] == [
        (Kind.CHMOD, "example.com", 0o700),
        (Kind.CHOWN, "example.com", 0),
        (Kind.CHMOD, "mail.private", 0o600),
        (Kind.CHOWN, "mail.private", 0),
    ]
    assert not make_plan(req, run(plan.actions, snap), {}).changes


def test_existing_key_is_kept_and_its_record_used(rsa: SigningKey, ed: SigningKey) -> None:
    req = request()
    private = ROOT / "keys/example.com/mail.private"
    snap = {private: Existing(False, 0o600, *OWNER, content=private_pem(ed))}
    with pytest.raises(SetupError, match="ed25519 key, not RSA"):
        make_plan(req, snap, {})
    snap[private] = Existing(False, 0o600, *OWNER, content=private_pem(rsa))
    plan = make_plan(req, snap, {})
    assert plan.keys[0][1].public_der() == rsa.public_der()
    assert not any(a.path == private and a.kind is Kind.WRITE for a in plan.actions)


@pytest.mark.parametrize(
    ("path", "content", "words"),
    [
        ("SigningTable", "*@example.com 2020._domainkey.example.com\n", "mailseal rotate"),
        ("KeyTable", "mail._domainkey.example.com example.com:mail:/other\n", "already has"),
        ("keys/example.com/mail.txt", "x", "stray .txt"),
        ("keys/example.com/mail.private", "not a key", "not a private key"),
    ],
)
def test_conflicts_change_nothing(path: str, content: str, words: str) -> None:
    req = request()
    snap = {ROOT / path: Existing(False, 0o644, 0, 0, content.encode())}
    with pytest.raises(SetupError, match=words):
        make_plan(
            req, snap, {ROOT / "keys/example.com/mail.private": generate_key(KeyType.ED25519)}
        )


def test_file_where_a_directory_belongs() -> None:
    with pytest.raises(SetupError, match="not a directory"):
        make_plan(request(), {ROOT / "keys": Existing(False, 0o644, 0, 0, b"")}, {})


def test_rerun_without_ed25519_keeps_the_ed25519_key(rsa: SigningKey, ed: SigningKey) -> None:
    dual = request(ed25519=True)
    snap = run(make_plan(dual, {}, keys_for(dual, {}, rsa, ed)).actions, {})
    plain = request()
    assert missing_keys(plain, snap) == []
    plan = make_plan(plain, snap, {})
    assert not plan.changes
    assert [spec.selector for spec, _ in plan.keys] == ["mail", "mail-ed25519"]
