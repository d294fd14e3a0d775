"""In-order offset commits per partition, as Knative's OffsetManager does.

An offset is committable only when it and every offset before it on the partition are done
(delivered, dead-lettered or discarded), even when events are sent in parallel.

>>> tracker = PartitionOffsets()
>>> for offset in (5, 6, 7):
...     tracker.begin(offset)
>>> tracker.done(7); tracker.committable()
>>> tracker.done(5); tracker.committable()
6
>>> tracker.done(6); tracker.committable(), tracker.in_flight
(8, 0)
"""

from __future__ import annotations

import threading
from collections import deque

__all__ = ["PartitionOffsets"]


class PartitionOffsets:
    """Offsets of one partition that were handed out, and which of them are done."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: deque[list[int | bool]] = deque()
        self._next_commit: int | None = None
        self._committed: int | None = None

    def begin(self, offset: int) -> None:
        """Record that `offset` is being delivered (offsets arrive in increasing order)."""
        with self._lock:
            self._pending.append([offset, False])

    def done(self, offset: int) -> None:
        """Record that `offset` is finished, then advance the contiguous prefix."""
        with self._lock:
            for entry in self._pending:
                if entry[0] == offset:
                    entry[1] = True
                    break
            while self._pending and self._pending[0][1]:
                self._next_commit = int(self._pending.popleft()[0]) + 1

    def committable(self) -> int | None:
        """The offset to commit (next to read), when it moved since the last `mark_committed`."""
        with self._lock:
            return self._next_commit if self._next_commit != self._committed else None

    def mark_committed(self, offset: int) -> None:
        """Remember that `offset` was committed."""
        with self._lock:
            self._committed = offset

    @property
    def in_flight(self) -> int:
        """Offsets handed out and not yet committable."""
        with self._lock:
            return len(self._pending)
