"""Fixtures for the interoperability tests (the machinery is in interop_harness.py).

Session-wide: one private 0700 directory, keys made for this run, a zone file,
one nsd serving it on 127.0.0.X:53, and handles on OpenDKIM, Mail::DKIM,
dkimpy and the mailseal command line. A missing tool skips the tests that need
it with a reason naming the package to install.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

try:  # tests/ as packages, or (the default) rootdir-relative imports
    from . import interop_harness as h
except ImportError:
    import interop_harness as h  # type: ignore[no-redef]


def _available(make):  # type: ignore[no-untyped-def]
    try:
        return make()
    except h.Unavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def it_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with h.private_dir(tmp_path_factory.mktemp("interop")) as d:
        yield d


@pytest.fixture(scope="session")
def keys(it_dir: Path) -> dict[str, h.Key]:
    return h.make_keys(it_dir)


@pytest.fixture(scope="session")
def zone_file(it_dir: Path, keys: dict[str, h.Key]) -> Path:
    return h.write_zone(it_dir, keys)


@pytest.fixture(scope="session")
def dns_server(it_dir: Path, zone_file: Path) -> Iterator[h.DnsServer]:
    try:
        cm = h.run_nsd(it_dir, zone_file)
        server = cm.__enter__()
    except h.Unavailable as e:
        pytest.skip(str(e))
    except RuntimeError as e:
        pytest.fail(str(e))
    try:
        yield server
    finally:
        cm.__exit__(None, None, None)


@pytest.fixture(scope="session")
def opendkim(it_dir: Path, dns_server: h.DnsServer) -> h.OpenDKIM:
    return _available(lambda: h.find_opendkim(it_dir, dns_server))


@pytest.fixture(scope="session")
def mail_dkim(it_dir: Path, dns_server: h.DnsServer) -> h.MailDKIM:
    return _available(lambda: h.find_mail_dkim(it_dir, dns_server))


@pytest.fixture(scope="session")
def dkimpy(dns_server: h.DnsServer) -> h.DkimPy:
    return _available(lambda: h.find_dkimpy(dns_server))


@pytest.fixture(scope="session")
def mailseal(dns_server: h.DnsServer) -> h.Mailseal:
    return h.Mailseal(dns_server)
