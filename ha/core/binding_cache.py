"""The home agent's Binding Cache (RFC 6275 section 9.1): home address -> binding.

This file only stores; it decides nothing. Whether a Binding Update may
create, refresh, move or delete an entry is decided in ha/core/registration.py
(the console's `bc add` / `bc del` go through the same rules). The one other
writer is HomeAgentCore (ha/core/home_agent.py), for what is not a Binding
Update: rolling an entry back when its datapath action failed, refusing one
whose DAD cannot run, restoring the saved cache at start, emptying it at stop.

Time is never read here: every call that needs it takes `now` (seconds, a
float from whatever monotonic clock the caller owns).

Expiry is a min-heap of (expires_at, int(hoa), hoa) with lazy deletion: a
refresh pushes a new heap entry and leaves the old one behind; when an entry
is popped it counts only if the binding still exists and still expires at
that very moment. Refreshing is therefore O(log n) and never searches the
heap. Stale entries are dropped in one O(n) rebuild once they outnumber the
live bindings by more than 64, so the heap stays within a small multiple of
len(cache) even when 100,000 mobile nodes refresh over and over.
"""

from __future__ import annotations

import enum
import heapq
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import Iterator


class BindingState(enum.Enum):
    DAD_PENDING = "dad-pending"  # accepted so far, waiting on DAD before the BA (section 10.3.1)
    REGISTERED = "registered"


@dataclass(slots=True)
class Binding:
    hoa: IPv6Address
    coa: IPv6Address
    lifetime: int  # granted, seconds
    registered_at: float
    expires_at: float
    sequence: int | None  # last accepted sequence number; None until the first BA 0
    state: BindingState = BindingState.REGISTERED
    home_registration: bool = True  # H
    link_local_compat: bool = False  # L
    key_management: bool = False  # K
    ack: bool = False  # A of the last BU accepted (or pending)
    local: IPv6Address | None = None  # our address the BU was sent to (tunnel endpoint)
    # While DAD runs: the sequence to acknowledge and where to send the BA.
    pending_sequence: int | None = None
    pending_ack_to: IPv6Address | None = None

    def remaining(self, now: float) -> float:
        return max(0.0, self.expires_at - now)


class CacheFull(Exception):
    """Adding a new home address to a cache already holding `capacity` entries."""


class BindingCache:
    __slots__ = ("capacity", "_by_hoa", "_heap")

    def __init__(self, capacity: int):
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.capacity = capacity
        self._by_hoa: dict[IPv6Address, Binding] = {}
        self._heap: list[tuple[float, int, IPv6Address]] = []

    # --------------------------------------------------------- lookups
    def __len__(self) -> int:
        return len(self._by_hoa)

    def __contains__(self, hoa: object) -> bool:
        return hoa in self._by_hoa

    def __iter__(self) -> Iterator[Binding]:
        # sorted so that the console prints a stable list
        return iter(sorted(self._by_hoa.values(), key=lambda b: b.hoa))

    def get(self, hoa: IPv6Address) -> Binding | None:
        return self._by_hoa.get(hoa)

    @property
    def full(self) -> bool:
        return len(self._by_hoa) >= self.capacity

    # --------------------------------------------------------- changes
    def put(self, binding: Binding) -> None:
        """Insert or replace the entry for binding.hoa and schedule its expiry.

        Call it again after changing expires_at (refresh, move): that is what
        reschedules the binding.
        """
        if binding.hoa not in self._by_hoa and self.full:
            raise CacheFull(binding.hoa)
        self._by_hoa[binding.hoa] = binding
        # int(hoa) breaks ties between equal times without comparing addresses
        heapq.heappush(self._heap, (binding.expires_at, int(binding.hoa), binding.hoa))
        if len(self._heap) > 2 * len(self._by_hoa) + 64:
            self._compact()

    def remove(self, hoa: IPv6Address) -> Binding | None:
        # the heap entry stays behind and is skipped when popped
        return self._by_hoa.pop(hoa, None)

    def expired(self, now: float) -> list[Binding]:
        """Remove and return every binding whose lifetime has run out at `now`."""
        out = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _, hoa = heapq.heappop(heap)
            binding = self._by_hoa.get(hoa)
            if binding is not None and binding.expires_at == when:
                del self._by_hoa[hoa]
                out.append(binding)
        return out

    def next_expiry(self) -> float | None:
        """When expired() will next have something to return (for the caller's timer)."""
        heap = self._heap
        while heap:
            when, _, hoa = heap[0]
            binding = self._by_hoa.get(hoa)
            if binding is not None and binding.expires_at == when:
                return when
            heapq.heappop(heap)
        return None

    def _compact(self) -> None:
        self._heap = [(b.expires_at, int(b.hoa), b.hoa) for b in self._by_hoa.values()]
        heapq.heapify(self._heap)
