"""Properties: whatever a config file holds, loading it succeeds or raises ConfigError."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from mailseal.config.keyfiles import KeyReader
from mailseal.config.model import Warnings
from mailseal.config.opendkim import load_config
from mailseal.config.options import OPTIONS
from mailseal.config.peers import PeerList
from mailseal.errors import ConfigError, Where

NAMES = sorted(o.name for o in OPTIONS.values())
READER = KeyReader.current()

# Values that reach the interesting code: datasets, numbers, addresses, paths.
value_text = st.one_of(
    st.text(max_size=40).map(lambda s: s.replace("\n", " ")),
    st.sampled_from(
        [
            "yes",
            "no",
            "0",
            "0x10",
            "-1",
            "007",
            "sv",
            "v",
            "relaxed/simple",
            "rsa-sha256",
            "csl:127.0.0.1,::1",
            "refile:TrustedHosts",
            "file:KeyTable",
            "./x",
            "dsn:mysql://h",
            "inet:8891@localhost",
            "local:/x.sock",
            "10/1h",
            "a=b|c",
            "*,+x,-from",
            "%",
            "HOSTNAME",
            "KeyTable",
            "SigningTable",
            "TrustedHosts",
            "opendkim.conf",
            "/nonexistent/path",
        ]
    ),
)
config_line = st.one_of(
    st.tuples(st.sampled_from(NAMES), st.sampled_from([" ", "\t", "  "]), value_text).map("".join),
    st.text(max_size=60).map(lambda s: s.replace("\n", " ")),
)
dataset_line = st.one_of(
    st.text(max_size=60).map(lambda s: s.replace("\n", " ")),
    st.tuples(
        st.sampled_from(
            ["*@example.com", "example.com", "k", "*", "127.0.0.1", "192.168.0.1/24", "!x"]
        ),
        st.sampled_from([" ", "\t"]),
        st.sampled_from(["k", "example.com:s:/nope", "%:s:./k", "k:%", "", "a:b:c:d:e"]),
    ).map("".join),
)


def load_text(files: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        root.chmod(0o700)
        for name, text in files.items():
            (root / name).write_text(text)
        try:
            load_config(root / "opendkim.conf", key_reader=READER)
        except ConfigError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_text_loads_or_raises_config_error(text: str) -> None:
    load_text({"opendkim.conf": text})


@settings(max_examples=300, deadline=None)
@given(
    st.lists(config_line, max_size=12),
    st.lists(dataset_line, max_size=6),
    st.lists(dataset_line, max_size=6),
    st.lists(dataset_line, max_size=6),
)
def test_option_lines_load_or_raise_config_error(
    conf_lines: list[str], keytable: list[str], signing: list[str], hosts: list[str]
) -> None:
    load_text(
        {
            "opendkim.conf": "\n".join(conf_lines),
            "KeyTable": "\n".join(keytable),
            "SigningTable": "\n".join(signing),
            "TrustedHosts": "\n".join(hosts),
        }
    )


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text(max_size=30), max_size=8),
    st.booleans(),
    st.one_of(st.none(), st.text(max_size=40), st.ip_addresses().map(str)),
    st.one_of(st.none(), st.text(max_size=40)),
)
def test_peer_lists_never_raise(
    entries: list[str], refile: bool, ip: str | None, host: str | None
) -> None:
    plist = PeerList.parse(((e, Where(Path("x"), 1)) for e in entries), Warnings(), refile=refile)
    assert plist.matches(ip, host) in (True, False)


@settings(max_examples=200, deadline=None)
@given(st.ip_addresses(), st.integers(0, 128))
def test_a_network_matches_its_own_addresses(address: object, length: int) -> None:
    import ipaddress

    assert isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address)
    length = min(length, address.max_prefixlen)
    network = ipaddress.ip_network(f"{address}/{length}", strict=False)
    plist = PeerList.parse([(str(network), Where(Path("x"), 1))], Warnings())
    assert plist.matches(str(address), None)
    negated = PeerList.parse(
        [(str(network), Where(Path("x"), 1)), (f"!{address}", Where(Path("x"), 2))], Warnings()
    )
    assert not negated.matches(str(address), None)
