"""The SPF engine is core code: no sockets, loops, resolvers or clocks (STYLE.md, DESIGN.md §1).

tests/test_layering.py checks the core packages it lists; this applies the
same rule to mailseal/spf/.
"""

from pathlib import Path

import pytest

from tests.test_layering import FORBIDDEN, PACKAGE, imported_modules

SPF_FILES = sorted((PACKAGE / "spf").glob("*.py"))


@pytest.mark.parametrize("path", SPF_FILES, ids=lambda p: p.name)
def test_spf_module_does_no_io(path: Path) -> None:
    bad = {m for m in imported_modules(path) if m in FORBIDDEN or m.split(".")[0] in FORBIDDEN}
    assert not bad, f"{path.name} imports {sorted(bad)}; core code must stay sans-IO"


def test_there_are_spf_modules() -> None:
    assert {p.name for p in SPF_FILES} >= {"record.py", "macros.py", "eval.py", "results.py"}
