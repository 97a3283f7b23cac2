"""The exception tree: broken input and bugs, never verdicts.

A signature that does not verify is a result value (see ``dkim.results``);
exceptions are for things a caller cannot go on with: a key file that is not a
key, a config line that cannot be read, a malformed milter packet.
"""

from __future__ import annotations


class MailsealError(Exception):
    """Root of every error mailseal raises on purpose."""


class KeyFileError(MailsealError):
    """A private or public key could not be loaded; the message says why and what fixes it."""


class MessageError(MailsealError):
    """A message is too broken to process (for example a header block past a size cap)."""


class SigningError(MailsealError):
    """A message could not be signed with the given parameters."""


class DnsError(MailsealError):
    """The DNS layer could not be set up (a zone file that does not parse, a bad server spec)."""


class MilterProtocolError(MailsealError):
    """A milter packet broke the protocol (bad framing, a payload that does not parse).

    The connection it came on cannot be trusted to stay in step any longer: close it.
    """


# --- configuration (opendkim.conf and the files it names) ---------------------

from dataclasses import dataclass  # noqa: E402  (kept beside the classes that use it)
from pathlib import Path  # noqa: E402


@dataclass(frozen=True, slots=True)
class Where:
    """A place in a configuration file: the file and its 1-based line (0: the file itself)."""

    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}" if self.line > 0 else str(self.path)


class ConfigError(MailsealError):
    """A configuration value mailseal cannot use: ``path:line: problem (hint)``."""

    def __init__(self, where: Where, option: str, problem: str, hint: str = "") -> None:
        self.where, self.option, self.problem, self.hint = where, option, problem, hint
        text = f"{where}: {problem}"
        super().__init__(text + (f" ({hint})" if hint else ""))

    def __reduce__(self) -> tuple[type[ConfigError], tuple[Where, str, str, str]]:
        # Rebuild from the parts (the default would call __init__ with the text alone).
        return (ConfigError, (self.where, self.option, self.problem, self.hint))
