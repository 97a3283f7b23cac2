"""Load an opendkim.conf: the entry point the milter and the CLI use.

``load_config`` reads the file and its Includes (``grammar``), turns each value
into its type with errors at ``path:line`` (``build``), opens the datasets it
names (``datasets``, ``peers``, ``tables``) and reads every signing key
(``keyfiles``), so a reload re-reads them all and a broken key stops the
reload rather than a message.
"""

from __future__ import annotations

from pathlib import Path

from mailseal.config.build import build_config
from mailseal.config.keyfiles import KeyReader
from mailseal.config.model import ConfigWarning, OnAction, SigningChoice
from mailseal.config.peers import PeerList
from mailseal.config.settings import MilterConfig
from mailseal.errors import ConfigError, Where


def load_config(path: Path, *, key_reader: KeyReader | None = None) -> MilterConfig:
    """Read an opendkim.conf; raise ConfigError("path:line: problem (hint)") when unusable.

    ``key_reader`` overrides whose view key-file safety is judged from; by
    default the ``UserID`` user (who signs), else this process.
    """
    return build_config(Path(path), key_reader)


__all__ = [
    "ConfigError",
    "ConfigWarning",
    "KeyReader",
    "MilterConfig",
    "OnAction",
    "PeerList",
    "SigningChoice",
    "Where",
    "load_config",
]
