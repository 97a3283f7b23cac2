"""The doctor's core stays sans-IO, as tests/test_layering.py requires of the rest of the core.

Only three doctor modules are shells: ``runner`` (asyncio), ``local`` (reads
opendkim.conf and keys) and ``send`` (sendmail, SMTP).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_layering import FORBIDDEN, PACKAGE, imported_modules

SHELLS = {"runner.py", "local.py", "send.py"}
CORE = sorted(p for p in (PACKAGE / "doctor").glob("*.py") if p.name not in SHELLS)


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_doctor_core_does_no_io(path: Path) -> None:
    bad = {m for m in imported_modules(path) if m in FORBIDDEN or m.split(".")[0] in FORBIDDEN}
    assert not bad, f"{path.name} imports {sorted(bad)}; core code must stay sans-IO"
    assert "mailseal.doctor.runner" not in imported_modules(path)


def test_there_is_a_doctor_core() -> None:
    assert len(CORE) >= 12
