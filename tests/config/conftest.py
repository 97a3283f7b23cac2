"""Fixtures for the config tests: a private config directory and keys made once.

``ConfDir`` writes config files, datasets and keys into a 0700 directory (as
DESIGN.md asks of key directories) and loads them with the key-file safety
judged from this process's identity, so no test depends on an ``opendkim``
user existing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from mailseal.config.keyfiles import KeyReader
from mailseal.config.opendkim import MilterConfig, load_config
from mailseal.dkim.keys import KeyType, SigningKey, generate_key, private_pem
from mailseal.errors import ConfigError

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "config"


@pytest.fixture(scope="session")
def rsa_key() -> SigningKey:
    return generate_key(KeyType.RSA, 2048)


@pytest.fixture(scope="session")
def rsa_key2() -> SigningKey:
    return generate_key(KeyType.RSA, 1024)


@pytest.fixture(scope="session")
def ed_key() -> SigningKey:
    return generate_key(KeyType.ED25519)


@dataclass
class ConfDir:
    root: Path

    def write(self, name: str, text: str, mode: int = 0o600) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(text)
        path.chmod(mode)
        return path

    def key(self, name: str, key: SigningKey, mode: int = 0o600) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_bytes(private_pem(key))
        path.chmod(mode)
        return path

    def load(self, text: str, name: str = "opendkim.conf") -> MilterConfig:
        return load_config(self.write(name, text), key_reader=KeyReader.current())

    def error(self, text: str, name: str = "opendkim.conf") -> str:
        with pytest.raises(ConfigError) as info:
            self.load(text, name)
        return str(info.value)


@pytest.fixture
def conf(tmp_path: Path) -> ConfDir:
    root = tmp_path / "etc"
    root.mkdir(mode=0o700)
    return ConfDir(root)
