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
