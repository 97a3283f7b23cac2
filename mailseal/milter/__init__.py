"""The milter side of mailseal: Postfix (or Sendmail) hands each message to us.

There is no networking in the protocol code, after h11: ``protocol`` (codes, flags,
limits), ``messages`` (packets as values), ``codec`` (bytes to values and back, for
any split of the stream), ``negotiation`` (the O handshake) and ``sockets`` (socket
specifications) are sans-IO. ``session`` holds the per-connection policy; ``server``
and ``worker`` move the bytes; ``client`` speaks to a milter as Postfix does (tests
and ``mailseal bench``). The names below are the codec's public API.
"""

from mailseal.milter.codec import *  # noqa: F403
from mailseal.milter.codec import __all__ as _codec_all

__all__ = list(_codec_all)
