"""Signing choices: KeyTable + SigningTable lookups, %, MultipleSignatures, Domain mode."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization

from mailseal.config.opendkim import MilterConfig, SigningChoice
from mailseal.dkim.keys import KeyType, SigningKey
from tests.config.conftest import VECTORS, ConfDir


def tables(
    conf: ConfDir, keytable: str, signingtable: str, extra: str = "", kind: str = "refile"
) -> MilterConfig:
    conf.write("KeyTable", keytable)
    conf.write("SigningTable", signingtable)
    return conf.load(
        f"KeyTable file:{conf.root}/KeyTable\nSigningTable {kind}:{conf.root}/SigningTable\n{extra}"
    )


def summary(choices: list[SigningChoice]) -> list[tuple[str, str, str | None, str, str]]:
    return [(c.domain, c.selector, c.identity, c.algorithm, c.keyname) for c in choices]


# --- refile: SigningTable ------------------------------------------------------------


def test_refile_star_at_domain(conf: ConfDir, rsa_key: SigningKey) -> None:
    key = conf.key("keys/mail.private", rsa_key)
    cfg = tables(conf, f"k1 example.com:mail:{key}\n", "*@example.com k1\n")
    (choice,) = cfg.signing_for("Alice@Example.COM")
    assert summary([choice]) == [("example.com", "mail", None, "rsa-sha256", "k1")]
    assert choice.key.public_der() == rsa_key.public_der()
    assert cfg.signing_for("alice@example.net") == []
    assert cfg.signing_for("alice@sub.example.com") == []


def test_refile_star_dot_domain_covers_subdomains(conf: ConfDir, rsa_key: SigningKey) -> None:
    key = conf.key("k.private", rsa_key)
    cfg = tables(conf, f"k1 example.com:mail:{key}\n", "*.example.com k1\n")
    assert summary(cfg.signing_for("a@sub.example.com"))[0][0] == "example.com"
    assert cfg.signing_for("a@example.com") == []  # "user@example.com" has no ".example.com"


def test_refile_first_match_in_file_order(
    conf: ConfDir, rsa_key: SigningKey, ed_key: SigningKey
) -> None:
    rsa, ed = conf.key("rsa.private", rsa_key), conf.key("ed.private", ed_key)
    kt = f"r example.com:rsa:{rsa}\ne example.com:ed:{ed}\n"
    cfg = tables(conf, kt, "bob@example.com e\n*@example.com r\n")
    assert [c.selector for c in cfg.signing_for("bob@example.com")] == ["ed"]
    assert [c.selector for c in cfg.signing_for("carol@example.com")] == ["rsa"]


# --- file: SigningTable ---------------------------------------------------------------------


@pytest.fixture
def four_keys(conf: ConfDir, rsa_key: SigningKey) -> str:
    key = conf.key("k.private", rsa_key)
    return "".join(
        f"{name} example.com:{name}:{key}\n"
        for name in ("full", "dom", "udot", "dot", "ustar", "star")
    )


@pytest.mark.parametrize(
    ("table_keys", "sender", "expected"),
    [
        (["bob@mail.example.com", "mail.example.com"], "bob@mail.example.com", "full"),
        (["mail.example.com", "bob@.example.com"], "bob@mail.example.com", "dom"),
        (["bob@.example.com", ".example.com"], "bob@mail.example.com", "udot"),
        ([".example.com", "bob@*"], "bob@mail.example.com", "dot"),
        ([".com", "bob@*"], "bob@mail.example.com", "dot"),
        (["bob@*", "*"], "bob@mail.example.com", "ustar"),
        (["*"], "bob@mail.example.com", "star"),
        (["example.com"], "bob@mail.example.com", None),  # a bare domain is exact
        (["BOB@MAIL.EXAMPLE.COM"], "bob@mail.example.com", "full"),  # keys ignore case
    ],
)
def test_file_lookup_order(
    conf: ConfDir, four_keys: str, table_keys: list[str], sender: str, expected: str | None
) -> None:
    names = {
        "bob@mail.example.com": "full",
        "BOB@MAIL.EXAMPLE.COM": "full",
        "mail.example.com": "dom",
        "bob@.example.com": "udot",
        ".example.com": "dot",
        ".com": "dot",
        "bob@*": "ustar",
        "*": "star",
        "example.com": "dom",
    }
    st = "".join(f"{k} {names[k]}\n" for k in table_keys)
    cfg = tables(conf, four_keys, st, kind="file")
    got = [c.keyname for c in cfg.signing_for(sender)]
    assert got == ([expected] if expected else [])


def test_file_table_star_at_domain_is_read_as_meant(conf: ConfDir, rsa_key: SigningKey) -> None:
    key = conf.key("k.private", rsa_key)
    cfg = tables(
        conf, f"k1 example.com:mail:{key}\n", "*@example.com k1\n*.example.org k1\n", kind="file"
    )
    assert [c.keyname for c in cfg.signing_for("a@example.com")] == ["k1"]
    assert [c.keyname for c in cfg.signing_for("a@x.example.org")] == ["k1"]
    texts = [str(w) for w in cfg.warnings]
    assert texts == [
        f"{conf.root}/SigningTable:1: OpenDKIM never matches '*@example.com' in a file: "
        "SigningTable (wildcards work only in refile:); mailseal reads it as 'example.com'",
        f"{conf.root}/SigningTable:2: OpenDKIM never matches '*.example.org' in a file: "
        "SigningTable (wildcards work only in refile:); mailseal reads it as '.example.org'",
    ]


# --- % and signer ---------------------------------------------------------------------------


def test_percent_domain_in_keytable(conf: ConfDir, rsa_key: SigningKey) -> None:
    key = conf.key("k.private", rsa_key)
    cfg = tables(conf, f"any %:mail:{key}\n", "* any\n", kind="file")
    assert summary(cfg.signing_for("x@Shop.Example")) == [
        ("shop.example", "mail", None, "rsa-sha256", "any")
    ]


def test_percent_in_key_path_loads_every_domain(
    conf: ConfDir, rsa_key: SigningKey, ed_key: SigningKey
) -> None:
    conf.key("keys/a.example/mail.private", rsa_key)
    conf.key("keys/b.example/mail.private", ed_key)
    cfg = tables(conf, f"any %:mail:{conf.root}/keys/%/mail.private\n", "* any\n", kind="file")
    a, b = cfg.signing_for("x@a.example"), cfg.signing_for("x@B.example")
    assert a[0].key.type is KeyType.RSA and a[0].algorithm == "rsa-sha256"
    assert b[0].key.type is KeyType.ED25519 and b[0].algorithm == "ed25519-sha256"
    assert cfg.signing_for("x@c.example") == []  # no key file for it when the config loaded


def test_percent_in_key_path_with_fixed_domain(conf: ConfDir, rsa_key: SigningKey) -> None:
    conf.key("keys/example.com.private", rsa_key)
    cfg = tables(conf, "k example.com:s:./keys/%.private\n", "* k\n", kind="file")
    assert cfg.signing_for("a@example.com")[0].selector == "s"


def test_percent_keyname_and_signer(conf: ConfDir, rsa_key: SigningKey) -> None:
    key = conf.key("k.private", rsa_key)
    cfg = tables(conf, f"example.com example.com:mail:{key}\n", "*@example.com %:bounce@%\n")
    (choice,) = cfg.signing_for("a@example.com")
    assert (choice.keyname, choice.identity) == ("example.com", "bounce@example.com")
    assert cfg.signing_for("a@other.example") == []


@pytest.mark.parametrize(
    ("signer", "identity"),
    [
        ("@example.com", "@example.com"),
        ("user@sub.example.com", "user@sub.example.com"),
        ("user@example.net", None),  # outside d=: OpenDKIM leaves i= out
        ("user@badexample.com", None),
        ("", None),
    ],
)
def test_signer_must_lie_within_the_domain(
    conf: ConfDir, rsa_key: SigningKey, signer: str, identity: str | None
) -> None:
    key = conf.key("k.private", rsa_key)
    cfg = tables(conf, f"k example.com:mail:{key}\n", f"* k:{signer}\n", kind="file")
    assert cfg.signing_for("a@example.com")[0].identity == identity


# --- MultipleSignatures and the 4-field KeyTable ------------------------------------------


def test_rsa_and_ed25519_for_one_domain(
    conf: ConfDir, rsa_key: SigningKey, ed_key: SigningKey
) -> None:
    rsa, ed = conf.key("rsa.private", rsa_key), conf.key("ed.private", ed_key)
    kt = f"rsa example.com:rsa2024:{rsa}:rsa-sha256\ned example.com:ed2024:{ed}:ed25519-sha256\n"
    st = "*@example.com rsa\n*@example.com ed\n"
    cfg = tables(conf, kt, st, "MultipleSignatures yes\n")
    assert summary(cfg.signing_for("a@example.com")) == [
        ("example.com", "rsa2024", None, "rsa-sha256", "rsa"),
        ("example.com", "ed2024", None, "ed25519-sha256", "ed"),
    ]
    single = tables(conf, kt, st)
    assert [c.keyname for c in single.signing_for("a@example.com")] == ["rsa"]


def test_multiple_signatures_across_file_levels(
    conf: ConfDir, rsa_key: SigningKey, ed_key: SigningKey
) -> None:
    rsa, ed = conf.key("rsa.private", rsa_key), conf.key("ed.private", ed_key)
    kt = f"rsa example.com:a:{rsa}\ned example.com:b:{ed}\n"
    cfg = tables(conf, kt, "example.com rsa\n* ed\n", "MultipleSignatures yes\n", kind="file")
    assert [c.selector for c in cfg.signing_for("x@example.com")] == ["a", "b"]


def test_algorithm_follows_key_type_without_fourth_field(conf: ConfDir, ed_key: SigningKey) -> None:
    ed = conf.key("ed.private", ed_key)
    cfg = tables(
        conf, f"ed example.com:ed:{ed}\n", "* ed\n", "SignatureAlgorithm rsa-sha256\n", kind="file"
    )
    assert cfg.signing_for("a@example.com")[0].algorithm == "ed25519-sha256"


def test_fourth_field_must_fit_the_key(conf: ConfDir, rsa_key: SigningKey) -> None:
    rsa = conf.key("rsa.private", rsa_key)
    conf.write("KeyTable", f"\nk example.com:s:{rsa}:ed25519-sha256\n")
    conf.write("SigningTable", "* k\n")
    assert conf.error(
        f"KeyTable {conf.root}/KeyTable\nSigningTable {conf.root}/SigningTable\n"
    ) == (
        f"{conf.root}/KeyTable:2: key 'k' is an rsa key but the line asks for ed25519-sha256 "
        "(use rsa-sha256 or leave the fourth field out)"
    )


def test_unknown_fourth_field(conf: ConfDir, rsa_key: SigningKey) -> None:
    rsa = conf.key("rsa.private", rsa_key)
    conf.write("KeyTable", f"k example.com:s:{rsa}:rsa-sha1\n")
    conf.write("SigningTable", "* k\n")
    assert "unknown signing algorithm 'rsa-sha1' in the fourth field" in conf.error(
        f"KeyTable {conf.root}/KeyTable\nSigningTable {conf.root}/SigningTable\n"
    )


# --- key data and key files -----------------------------------------------------------------


def test_inline_base64_der_key(conf: ConfDir, rsa_key: SigningKey) -> None:
    der = rsa_key.key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cfg = tables(conf, f"k example.com:s:{base64.b64encode(der).decode()}\n", "* k\n", kind="file")
    assert cfg.signing_for("a@example.com")[0].key.public_der() == rsa_key.public_der()


def test_relative_path_without_dot_is_key_data(conf: ConfDir, rsa_key: SigningKey) -> None:
    conf.key("keys/mail.private", rsa_key)
    conf.write("KeyTable", "k example.com:s:keys/mail.private\n")
    conf.write("SigningTable", "* k\n")
    text = conf.error(f"KeyTable {conf.root}/KeyTable\nSigningTable {conf.root}/SigningTable\n")
    assert text.startswith(f"{conf.root}/KeyTable:1: key data of 'k': not a private key")


def test_missing_key_file_names_the_keytable_line(conf: ConfDir) -> None:
    conf.write("KeyTable", f"# keys\nk example.com:mail:{conf.root}/keys/gone.private\n")
    conf.write("SigningTable", "* k\n")
    assert conf.error(
        f"KeyTable refile:{conf.root}/KeyTable\nSigningTable {conf.root}/SigningTable\n"
    ) == (
        f"{conf.root}/KeyTable:2: cannot read key file {conf.root}/keys/gone.private: "
        "No such file or directory"
    )


def test_broken_key_file(conf: ConfDir) -> None:
    conf.write("bad.private", "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    conf.write("KeyTable", f"k example.com:mail:{conf.root}/bad.private\n")
    conf.write("SigningTable", "* k\n")
    text = conf.error(f"KeyTable {conf.root}/KeyTable\nSigningTable {conf.root}/SigningTable\n")
    assert text.startswith(
        f"{conf.root}/KeyTable:1: {conf.root}/bad.private: not a readable PEM private key"
    )


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("k example.com:mail", "key 'k' needs domain:selector:key"),
        ("k", "key 'k' needs domain:selector:key"),
        ("k example.com::/x", "key 'k' needs domain:selector:key"),
        ("k exa mple.com:s:/x", "'exa mple.com' is not a domain name"),
        ("k example.com:s!:/x", "'s!' is not a valid selector"),
    ],
)
def test_bad_keytable_lines(conf: ConfDir, line: str, problem: str) -> None:
    conf.write("KeyTable", f"{line}\n")
    conf.write("SigningTable", "* k\n")
    text = conf.error(f"KeyTable {conf.root}/KeyTable\nSigningTable {conf.root}/SigningTable\n")
    assert text.startswith(f"{conf.root}/KeyTable:1: {problem}")


def test_signing_table_naming_a_missing_key(conf: ConfDir, rsa_key: SigningKey) -> None:
    key = conf.key("k.private", rsa_key)
    conf.write("KeyTable", f"Key1 example.com:s:{key}\n")
    conf.write("SigningTable", "*@example.com Key1\n*@example.org key1\n")
    assert conf.error(
        f"KeyTable {conf.root}/KeyTable\nSigningTable refile:{conf.root}/SigningTable\n"
    ) == (
        f"{conf.root}/SigningTable:2: key 'key1' is not in the KeyTable ({conf.root}/KeyTable) "
        "(KeyTable names are case-sensitive; add the key there or fix the name)"
    )


def test_signing_table_line_without_key(conf: ConfDir) -> None:
    conf.write("KeyTable", "")
    conf.write("SigningTable", "*@example.com\n")
    assert "'*@example.com' names no key" in conf.error(
        f"KeyTable {conf.root}/KeyTable\nSigningTable refile:{conf.root}/SigningTable\n"
    )


def test_tables_need_each_other(conf: ConfDir) -> None:
    conf.write("t", "")
    assert conf.error(f"SigningTable {conf.root}/t\n").endswith(
        "opendkim.conf:1: SigningTable needs a KeyTable "
        "(add KeyTable, e.g. KeyTable refile:/etc/opendkim/KeyTable)"
    )
    assert "KeyTable needs a SigningTable" in conf.error(f"Mode sv\nKeyTable {conf.root}/t\n")


def test_verify_only_mode_reads_no_keys(conf: ConfDir) -> None:
    conf.write("KeyTable", f"k example.com:s:{conf.root}/gone.private\n")
    conf.write("SigningTable", "* k\n")
    cfg = conf.load(
        f"Mode v\nKeyTable {conf.root}/KeyTable\nSigningTable {conf.root}/SigningTable\n"
    )
    assert cfg.signing_for("a@example.com") == []


def test_small_rsa_key_warns(conf: ConfDir, rsa_key2: SigningKey) -> None:
    key = conf.key("k.private", rsa_key2)  # 1024 bits: allowed, no warning
    cfg = tables(conf, f"k example.com:s:{key}\n", "* k\n", kind="file")
    assert cfg.warnings == ()
    key.write_bytes((VECTORS / "rsa-768.pem").read_bytes())  # cryptography makes none this small
    cfg = tables(conf, f"k example.com:s:{key}\n", "* k\n", kind="file")
    assert [str(w) for w in cfg.warnings] == [
        f"{conf.root}/KeyTable:1: the 768-bit RSA key makes signatures receivers ignore "
        "(RFC 8301 asks for at least 1024 bits; use 2048)"
    ]


# --- Domain + Selector + KeyFile --------------------------------------------------------------


def domain_mode(conf: ConfDir, key: SigningKey, domain: str, extra: str = "") -> MilterConfig:
    path = conf.key("default.private", key)
    return conf.load(f"Domain {domain}\nSelector 2024\nKeyFile {path}\n{extra}")


def test_domain_mode(conf: ConfDir, rsa_key: SigningKey) -> None:
    cfg = domain_mode(conf, rsa_key, "example.com,example.org")
    assert summary(cfg.signing_for("a@EXAMPLE.org")) == [
        ("example.org", "2024", None, "rsa-sha256", f"{conf.root}/default.private")
    ]
    assert cfg.signing_for("a@sub.example.org") == []
    assert cfg.signing_for("a@example.net") == []


def test_domain_mode_subdomains(conf: ConfDir, rsa_key: SigningKey) -> None:
    cfg = domain_mode(conf, rsa_key, "example.com", "SubDomains yes\n")
    assert [c.domain for c in cfg.signing_for("a@deep.sub.example.com")] == ["example.com"]
    assert [c.domain for c in cfg.signing_for("a@example.com")] == ["example.com"]
    assert cfg.signing_for("a@example.net") == []


def test_domain_mode_from_a_file_and_star(conf: ConfDir, rsa_key: SigningKey) -> None:
    conf.write("domains", "*\n")
    cfg = domain_mode(conf, rsa_key, f"{conf.root}/domains")
    assert [c.domain for c in cfg.signing_for("a@anything.example")] == ["anything.example"]


def test_domain_mode_ed25519(conf: ConfDir, ed_key: SigningKey) -> None:
    cfg = domain_mode(conf, ed_key, "example.com")
    assert cfg.signing_for("a@example.com")[0].algorithm == "ed25519-sha256"


def test_domain_mode_rules(conf: ConfDir, rsa_key: SigningKey) -> None:
    path = conf.key("k.private", rsa_key)
    assert "KeyFile and Selector go together" in conf.error(f"KeyFile {path}\n")
    assert "KeyFile and Selector go together" in conf.error("Selector s\n")
    assert "Domain needs KeyFile and Selector" in conf.error("Domain example.com\n")
    cfg = conf.load(f"KeyFile {path}\nSelector s\n")
    assert cfg.signing_for("a@example.com") == []
    assert "Domain is not: nothing is signed" in str(cfg.warnings[0])


def test_keytable_overrides_domain_mode(conf: ConfDir, rsa_key: SigningKey) -> None:
    key = conf.key("k.private", rsa_key)
    conf.write("KeyTable", f"k example.com:s:{key}\n")
    conf.write("SigningTable", "* k\n")
    cfg = conf.load(
        f"Domain example.org\nKeyTable {conf.root}/KeyTable\n"
        f"SigningTable {conf.root}/SigningTable\n"
    )
    assert [str(w) for w in cfg.warnings] == [
        f"{conf.root}/opendkim.conf:1: Domain is ignored because KeyTable is set"
    ]


# --- sender addresses --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sender", ["", "nobody", "@example.com", "a@", "ü@example.com", "a@exämple.com"]
)
def test_unsignable_senders(conf: ConfDir, rsa_key: SigningKey, sender: str) -> None:
    cfg = domain_mode(conf, rsa_key, "*")
    assert cfg.signing_for(sender) == []


def test_angle_brackets_and_trailing_dot(conf: ConfDir, rsa_key: SigningKey) -> None:
    cfg = domain_mode(conf, rsa_key, "example.com")
    assert [c.domain for c in cfg.signing_for("<a@example.com.>")] == ["example.com"]
