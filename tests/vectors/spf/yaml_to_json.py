"""Write rfc7208-tests.json from rfc7208-tests.yml (needs PyYAML; mailseal's tests do not).

The YAML is the openspf.org RFC 7208 test suite as pyspf 2.0.14 ships it; the
JSON holds the same documents (one object per scenario, in file order) read
with ``yaml.safe_load_all``, so the tests can load it with the standard
library. Run from anywhere: ``python3 tests/vectors/spf/yaml_to_json.py``.
"""

import json
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent


def convert() -> list[dict[str, object]]:
    with (HERE / "rfc7208-tests.yml").open("rb") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc]


if __name__ == "__main__":
    text = json.dumps(convert(), indent=1, ensure_ascii=True) + "\n"
    (HERE / "rfc7208-tests.json").write_text(text, encoding="ascii")
