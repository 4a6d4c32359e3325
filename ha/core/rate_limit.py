"""How fast new bindings may be created (pure; the clock is a parameter).

A new binding is the expensive kind of Binding Update: it takes a cache
entry, a DAD probe with its multicast memberships (RFC 6275 section 10.3.1),
a route, a proxy entry and maybe a tunnel. A refresh of an existing binding
costs almost nothing. So only BUs that would create a binding are charged
here; refreshes, moves and deregistrations are never held back (a mobile
node that already has a binding keeps it, whatever a flood around it does).
With DAD on, every new binding is one DAD start, so the same tokens bound
the rate of DAD probes too.

Two layers of token buckets:

  per source prefix   the BU's outer source (its care-of address) cut to a
                      /64: one foreign link -- one host or many -- gets at
                      most `per_prefix_rate` new bindings a second after a
                      burst of `per_prefix_burst`.
  global              all sources together: `rate` a second after a burst of
                      `burst`, the backstop against many prefixes at once.

A BU is admitted only when both buckets hold a token, and then it takes one
from each. A prefix refused by its own bucket takes nothing from the global
one, so one flooding link cannot starve the others. A rate of 0 turns that
layer off. The per-prefix memory is bounded (`remember` prefixes, least
recently charged forgotten first): a forgotten prefix comes back with a full
bucket, which the global bucket still bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Address

PREFIX_LEN = 64


@dataclass(slots=True)
class TokenBucket:
    rate: float  # tokens per second
    burst: float  # the most it holds
    tokens: float = -1.0  # -1: full at the first look
    stamp: float = 0.0

    def level(self, now: float) -> float:
        """Refill up to `now` and return what the bucket holds."""
        if self.tokens < 0:
            self.tokens, self.stamp = self.burst, now
        elif now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        return self.tokens

    def take(self, now: float) -> bool:
        if self.level(now) >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class NewBindingLimiter:
    """Admits or refuses new bindings by source /64 and overall."""

    # what admit() answers besides True
    OVER_PREFIX = "prefix"
    OVER_GLOBAL = "global"

    def __init__(self, per_prefix_rate: float = 20.0, per_prefix_burst: float = 100.0,
                 rate: float = 100.0, burst: float = 500.0, *, remember: int = 4096,
                 prefix_len: int = PREFIX_LEN):
        if min(per_prefix_rate, per_prefix_burst, rate, burst) < 0:
            raise ValueError("rates and bursts must be >= 0")
        self.per_prefix_rate = per_prefix_rate
        self.per_prefix_burst = max(1.0, per_prefix_burst)
        self.remember = remember
        self._shift = 128 - prefix_len
        self._global = TokenBucket(rate, max(1.0, burst)) if rate > 0 else None
        self._prefixes: dict[int, TokenBucket] = {}

    def admit(self, src: IPv6Address, now: float) -> bool | str:
        """True (and one token charged) when a new binding from `src` may be made
        at `now`; otherwise which layer refused: OVER_PREFIX or OVER_GLOBAL."""
        bucket = None
        if self.per_prefix_rate > 0:
            key = int(src) >> self._shift
            prefixes = self._prefixes
            bucket = prefixes.pop(key, None)  # re-inserted below: most recent last
            if bucket is None:
                bucket = TokenBucket(self.per_prefix_rate, self.per_prefix_burst)
                if len(prefixes) >= self.remember:
                    del prefixes[next(iter(prefixes))]
            prefixes[key] = bucket
            if bucket.level(now) < 1.0:
                return self.OVER_PREFIX
        if self._global is not None and not self._global.take(now):
            return self.OVER_GLOBAL
        if bucket is not None:
            bucket.tokens -= 1.0
        return True

    def __len__(self) -> int:
        """Source prefixes remembered."""
        return len(self._prefixes)


class SourceThrottle:
    """Packets a second from one source address, before anything is parsed.

    A host that sends BUs faster than any mobile node would (one BU per
    binding per refresh) has the excess dropped on arrival, unanswered: the
    daemon then spends microseconds, not a whole registration decision and a
    BA, on each, and keeps up with the flood instead of letting the kernel
    drop packets at random -- the legitimate mobile nodes' refreshes among
    them. Keyed by the 16 octets of the source address; memory bounded as
    NewBindingLimiter's is.
    """

    def __init__(self, rate: float, burst: float, *, remember: int = 4096):
        self.rate, self.burst, self.remember = rate, max(1.0, burst), remember
        self._sources: dict[bytes, TokenBucket] = {}

    def admit(self, source: bytes, now: float) -> bool:
        sources = self._sources
        bucket = sources.pop(source, None)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst)
            if len(sources) >= self.remember:
                del sources[next(iter(sources))]
        sources[source] = bucket
        return bucket.take(now)
