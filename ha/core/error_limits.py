"""How often the home agent may originate errors (pure; the clock is a parameter).

RFC 6275 section 9.3.3 asks that Binding Errors be rate limited, and RFC
4443 section 2.4(f) asks the same of ICMPv6 errors: a node that answers
every bad packet can be made to flood a victim. One limiter serves both:
at most one error per destination per `per_destination` seconds, and at
most `overall` errors in any one-second window.
"""

from __future__ import annotations

from ipaddress import IPv6Address


class ErrorLimiter:
    def __init__(self, per_destination: float = 1.0, overall: int = 10,
                 remember: int = 4096):
        self.per_destination = per_destination
        self.overall = overall
        self.remember = remember  # destinations tracked before the memory is reset
        self._last: dict[IPv6Address, float] = {}
        self._window_start = float("-inf")
        self._window_count = 0

    def allow(self, dst: IPv6Address, now: float) -> bool:
        """True when an error to `dst` may be sent at `now` (and counts it)."""
        if now - self._last.get(dst, float("-inf")) < self.per_destination:
            return False
        if now - self._window_start >= 1.0:
            self._window_start, self._window_count = now, 0
        if self._window_count >= self.overall:
            return False
        self._window_count += 1
        if len(self._last) >= self.remember:
            self._last.clear()
        self._last[dst] = now
        return True
