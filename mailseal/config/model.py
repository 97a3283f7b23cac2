"""Small values shared by the config modules: warnings, failure actions, signing choices."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mailseal.dkim.keys import SigningKey
from mailseal.errors import Where


@dataclass(frozen=True, slots=True)
class ConfigWarning:
    """Something the admin should know that does not stop the milter: ``path:line: text``."""

    where: Where
    text: str

    def __str__(self) -> str:
        return f"{self.where}: {self.text}"


class Warnings:
    """Collects warnings in order, once each (a file named by two options warns once)."""

    def __init__(self) -> None:
        self._items: dict[tuple[Where, str], ConfigWarning] = {}

    def add(self, where: Where, text: str) -> None:
        self._items.setdefault((where, text), ConfigWarning(where, text))

    def freeze(self) -> tuple[ConfigWarning, ...]:
        return tuple(self._items.values())


class OnAction(enum.Enum):
    """What to tell the MTA when a check ends a certain way (OpenDKIM's On-* values)."""

    ACCEPT = "accept"
    DISCARD = "discard"
    QUARANTINE = "quarantine"
    REJECT = "reject"
    TEMPFAIL = "tempfail"

    @classmethod
    def parse(cls, text: str) -> OnAction | None:
        """Read a value as OpenDKIM does: the word or its first letter, any case."""
        word = text.strip().lower()
        for action in cls:
            if word in (action.value, action.value[0]):
                return action
        return None


@dataclass(frozen=True, slots=True)
class SigningChoice:
    """One signature to add: the key and the tags it implies."""

    key: SigningKey
    domain: str  # d=, lower case
    selector: str  # s=
    identity: str | None  # i=, only when it lies within d= (RFC 6376 §3.5)
    algorithm: str  # a=: rsa-sha256 or ed25519-sha256
    keyname: str  # the KeyTable name (or the KeyFile path), for logs


__all__ = ["ConfigWarning", "OnAction", "SigningChoice", "Warnings"]
