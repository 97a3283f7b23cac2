"""The core stays sans-IO: no sockets, event loops, resolvers or clocks inside it.

Core modules take bytes and values and return values; the shells (``dns/resolver.py``,
the CLI, later the milter server) do the I/O. This test reads each core module's
imports, so a shortcut that would make the core untestable fails here first.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mailseal"
CORE = [
    "dkim",
    "message",
    "spf",
    "dns/types.py",
    "dns/drive.py",
    "authres.py",
    "milter/session.py",
    "milter/codec.py",
    "milter/messages.py",
    "milter/negotiation.py",
    "milter/protocol.py",
    "milter/sockets.py",
]
FORBIDDEN = {
    "asyncio",
    "socket",
    "time",
    "dns.resolver",
    "dns.asyncresolver",
    "dns.query",
    "dns.asyncquery",
    "subprocess",
    "threading",
    "random",
    "secrets",
}


def core_files() -> list[Path]:
    files: list[Path] = []
    for entry in CORE:
        path = PACKAGE / entry
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return files


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", core_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_module_does_no_io(path: Path) -> None:
    bad = {m for m in imported_modules(path) if m in FORBIDDEN or m.split(".")[0] in FORBIDDEN}
    assert not bad, f"{path.name} imports {sorted(bad)}; core code must stay sans-IO"


def test_there_is_a_core_to_check() -> None:
    assert len(core_files()) >= 8
