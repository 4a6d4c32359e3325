"""Registration decisions per second, beside an empty loop of the same length.

    python3 bench/bench_registration.py [N]

Times only ha.core.registration (the rules and the cache): the BUs are built
before the clock starts, as the codec would hand them over. The reference is
a loop over the same list doing nothing, measured in the same run, so the
ratio says how much the rules cost per BU relative to Python's own loop.
"""

from __future__ import annotations

import os
import sys
import time
from ipaddress import IPv6Address, IPv6Network

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from ha.core.binding_cache import BindingCache  # noqa: E402
from ha.wire.mobility import BindingUpdate  # noqa: E402
from ha.core.registration import (  # noqa: E402
    BUContext, HomeAgentConfig, expire, process_binding_update,
)

HA = IPv6Address("2001:db8::")


def contexts(n: int, seq: int, coa_base: int) -> list[BUContext]:
    base = int(IPv6Address("2001:db8::"))
    out = []
    for i in range(n):
        bu = BindingUpdate(sequence=seq, lifetime=1000, ack=True, home_registration=True)
        out.append(BUContext(bu=bu, src=IPv6Address(coa_base + i), dst=HA,
                             hoa=IPv6Address(base + 1 + i)))
    return out


def empty_loop(items) -> float:
    t = time.perf_counter()
    for _ in items:
        pass
    return time.perf_counter() - t


def timed(items, cache, config, now) -> float:
    t = time.perf_counter()
    for ctx in items:
        process_binding_update(ctx, cache, config, now)
    return time.perf_counter() - t


def report(name: str, n: int, spent: float, ref: float) -> None:
    print(f"{name:<28} {n / spent:>12,.0f} decisions/s   "
          f"empty loop {n / ref:>14,.0f} it/s   ratio {spent / ref:>7.1f}x")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    config = HomeAgentConfig(served_prefixes=(IPv6Network("2001:db8::/64"),),
                             ha_addresses=(HA,), dad_enabled=False)
    cache = BindingCache(n)
    coa1 = int(IPv6Address("2001:db8:1::"))
    coa2 = int(IPv6Address("2001:db8:2::"))
    new = contexts(n, 1, coa1)
    refresh = contexts(n, 2, coa1)
    move = contexts(n, 3, coa2)

    print(f"python {sys.version.split()[0]}, {n:,} home addresses")
    report("new registration (no DAD)", n, timed(new, cache, config, 0.0), empty_loop(new))
    report("refresh (same CoA)", n, timed(refresh, cache, config, 10.0), empty_loop(refresh))
    report("move (new CoA)", n, timed(move, cache, config, 20.0), empty_loop(move))
    assert len(cache) == n

    t = time.perf_counter()
    gone = expire(cache, 1e9)
    spent = time.perf_counter() - t
    print(f"{'expire all':<28} {len(gone) / spent:>12,.0f} bindings/s")


if __name__ == "__main__":
    main()
