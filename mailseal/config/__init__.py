"""opendkim.conf compatibility: the grammar, datasets, peer lists and signing tables.

``load_config`` reads an OpenDKIM configuration (and the files it names) into a
``MilterConfig``; see docs/configuration.md for every option.
"""

from mailseal.config.model import ConfigWarning, OnAction, SigningChoice
from mailseal.config.opendkim import load_config
from mailseal.config.peers import PeerList
from mailseal.config.settings import MilterConfig

__all__ = ["ConfigWarning", "MilterConfig", "OnAction", "PeerList", "SigningChoice", "load_config"]
