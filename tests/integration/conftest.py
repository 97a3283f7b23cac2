"""Fixtures for the interoperability tests (the machinery is in interop_harness.py).

Session-wide: one private 0700 directory, keys made for this run, a zone file,
one nsd serving it on 127.0.0.X:53, and handles on OpenDKIM, Mail::DKIM,
dkimpy and the mailseal command line. A missing tool skips the tests that need
it with a reason naming the package to install.

For test_postfix_milter.py (machinery in postfix_harness.py): a catcher,
milters (OpenDKIM, mailseal) per module and a private Postfix per milter
implementation and ``milter_protocol``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

try:  # tests/ as packages, or (the default) rootdir-relative imports
    from . import interop_harness as h
    from . import postfix_harness as ph
except ImportError:
    import interop_harness as h  # type: ignore[no-redef]
    import postfix_harness as ph  # type: ignore[no-redef]


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
    ks = h.make_keys(it_dir)
    # the tutorial's `opendkim-genkey -s mail` key (s=mail), for the Postfix tests
    ks[ph.SELECTOR] = ph.tutorial_key(it_dir)
    return ks


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


# --------------------------------------------------------------------------
# real Postfix + a milter (test_postfix_milter.py; machinery in postfix_harness.py)


@pytest.fixture(scope="session")
def catcher() -> Iterator[ph.Catcher]:
    """An aiosmtpd catcher every private Postfix relays to (messages told apart by token)."""
    spool = ph.scratch_base("mailseal-catcher-")
    c = ph.Catcher(spool).start()
    try:
        yield c
    finally:
        c.stop()
        shutil.rmtree(spool, ignore_errors=True)


_MAILSEAL_MILTER: list[tuple[bool, str]] = []


@pytest.fixture(scope="module", params=ph.IMPLEMENTATIONS)
def milter_impl(request: pytest.FixtureRequest) -> str:
    impl = str(request.param)
    if impl == "mailseal":
        if not _MAILSEAL_MILTER:
            _MAILSEAL_MILTER.append(ph.mailseal_milter_available())
        ok, out = _MAILSEAL_MILTER[0]
        if not ok:
            print(f"mailseal milter not available yet: `python -m mailseal milter --help` "
                  f"says: {out}")
            pytest.skip("mailseal milter not available yet")
    return impl


@pytest.fixture(scope="module")
def milters(milter_impl: str, keys: dict[str, h.Key],
            dns_server: h.DnsServer) -> Iterator[dict[str, ph.Milter]]:
    """Three milters of one implementation, each with the tutorial's files:
    ``sign`` (the tutorial as written: relaxed/simple, TrustedHosts with
    127.0.0.1 and localhost), ``simple`` (the same with simple/simple) and
    ``verify`` (TrustedHosts without this host, so every message is verified)."""
    base = ph.safe_base(f"mailseal-milters-{milter_impl}-")
    specs = {
        "sign": {},
        "simple": {"canon": "simple/simple"},
        "verify": {"trusted_hosts": ph.EXTERNAL_TRUSTED_HOSTS},
    }
    started: dict[str, ph.Milter] = {}
    try:
        for name, kw in specs.items():
            m = ph.Milter(milter_impl, name, base / name, keys[ph.SELECTOR], dns_server.addr,
                          **kw)  # type: ignore[arg-type]
            try:
                started[name] = m.start()
            except ph.Unavailable as e:
                pytest.skip(str(e))
        yield started
    finally:
        ph.stop_milters(list(started.values()))
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module", params=[2, 6], ids=lambda p: f"proto{p}")
def milter_protocol(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture(scope="module")
def postfix(milters: dict[str, ph.Milter], milter_protocol: int,
            catcher: ph.Catcher) -> Iterator[ph.PostfixRig]:
    """A private Postfix: the tutorial's main.cf milter lines (but
    ``milter_default_action = tempfail``, so a broken milter shows) with the
    ``sign`` milter on the default smtpd and for ``sendmail``; listeners
    ``simple`` (through a recording MilterTap), ``verify`` and ``dead`` (a port
    nobody listens on)."""
    try:
        rig = ph.PostfixRig.build(milters, milter_protocol, catcher)
    except ph.Unavailable as e:
        pytest.skip(str(e))
    try:
        rig.start()
    except BaseException:
        rig.stop()
        raise
    try:
        yield rig
    finally:
        rig.stop()
