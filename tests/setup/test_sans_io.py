"""The core of genkey/setup/testkey/dmarc/rotate stays sans-IO, as tests/test_layering.py
demands of the DKIM core: no sockets, loops, resolvers, clocks, processes or randomness.

(mailseal/dkim/publish.py and keycheck.py are covered by tests/test_layering.py already.)
The shells are left out: keys/files.py, setup/apply.py (they write files) and
dmarc/psl.py (it loads the Public Suffix List).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "mailseal"
CORE = [
    "dmarc/record.py",
    "dmarc/lint.py",
    "keys/names.py",
    "keys/rotation.py",
    "setup/layout.py",
    "setup/merge.py",
    "setup/plan.py",
    "setup/records.py",
]
FORBIDDEN = {
    "asyncio",
    "socket",
    "time",
    "subprocess",
    "threading",
    "random",
    "secrets",
    "os",
    "shutil",
    "dns.resolver",
    "dns.asyncresolver",
    "dns.query",
    "publicsuffixlist",
    "mailseal.dns.resolver",
    "mailseal.keys.files",
    "mailseal.setup.apply",
    "mailseal.dmarc.psl",
}


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("name", CORE)
def test_core_module_does_no_io(name: str) -> None:
    found = imports(PACKAGE / name)
    bad = {m for m in found if m in FORBIDDEN or m.split(".")[0] in FORBIDDEN}
    assert not bad, f"{name} imports {sorted(bad)}; core code must stay sans-IO"


def test_no_clock_reads_in_core() -> None:
    for name in CORE:
        text = (PACKAGE / name).read_text()
        assert "datetime.now(" not in text and ".today(" not in text, name
