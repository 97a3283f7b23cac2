"""How many connections each worker serves, on a page of memory the workers share.

All workers accept from one listening socket, and the kernel wakes every one of
them for each new connection: whoever calls accept() first gets it. Left alone, one
worker ends up with most connections while another idles (7 of 8, measured). With
the board, a worker that serves more connections than some other accepting worker
lets that one go first (see ``Worker._accept``): the MTA's connections spread evenly.

The parent makes the board before forking and hands each worker a slot; a worker
writes only its own slot, the parent frees a slot when it reaps the worker. A slot
holds a connection count, FREE (no worker) or OUT (a worker that no longer accepts,
draining after a reload). Reads may see a count a moment old: the board only steers
who accepts first, it never decides whether a connection is served.
"""

from __future__ import annotations

import mmap
from typing import Final

FREE: Final = -1
OUT: Final = -2


class LoadBoard:
    """``slots`` counters in anonymous shared memory (inherited by forked workers)."""

    def __init__(self, slots: int) -> None:
        self._mem = mmap.mmap(-1, 4 * max(slots, 1))
        self._counts = memoryview(self._mem).cast("i")
        for i in range(len(self._counts)):
            self._counts[i] = FREE

    def __len__(self) -> int:
        return len(self._counts)

    # -- the parent --------------------------------------------------------------------

    def claim(self) -> int | None:
        """A free slot for a new worker (its count set to 0), or None if all are taken."""
        for i in range(len(self._counts)):
            if self._counts[i] == FREE:
                self._counts[i] = 0
                return i
        return None

    def release(self, slot: int) -> None:
        """The worker in ``slot`` is gone."""
        self._counts[slot] = FREE

    # -- a worker ----------------------------------------------------------------------

    def set(self, slot: int, connections: int) -> None:
        self._counts[slot] = connections

    def leave(self, slot: int) -> None:
        """This worker stops accepting: others no longer wait for it."""
        self._counts[slot] = OUT

    def count(self, slot: int) -> int:
        return self._counts[slot]

    def least_busy(self, slot: int) -> bool:
        """No other accepting worker serves fewer connections than the one in ``slot``."""
        counts = self._counts
        mine = counts[slot]
        for i in range(len(counts)):
            other = counts[i]
            if 0 <= other < mine and i != slot:
                return False
        return True


__all__ = ["FREE", "OUT", "LoadBoard"]
