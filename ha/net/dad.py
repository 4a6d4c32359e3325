"""Duplicate Address Detection on the home link for a new binding (adapter).

RFC 6275 section 10.3.1: before accepting a new home registration the home
agent checks, by DAD (RFC 4862 section 5.4), that nobody on the home link
uses the home address (and, with L=1, the link-local address made from the
same interface identifier). We send a Neighbor Solicitation from :: to the
solicited-node group and listen for one RetransTimer: a Neighbor
Advertisement for the target, or someone else's DAD solicitation for it,
is a collision.
"""

from __future__ import annotations

import asyncio
import logging
from ipaddress import IPv6Address

log = logging.getLogger("denali.dad")

UNSPECIFIED = IPv6Address("::")
RETRANS_TIMER = 1.0  # RFC 4861 section 10, RetransTimer default
DUP_ADDR_DETECT_TRANSMITS = 1  # RFC 4862 section 5.1 default


def solicited_node(address: IPv6Address) -> IPv6Address:
    """RFC 4291 section 2.7.1: ff02::1:ffXX:XXXX."""
    return IPv6Address(0xFF0200000000000000000001FF000000 | (int(address) & 0xFFFFFF))


class DADRunner:
    """Runs DAD probes over an ICMPv6Socket on the home link."""

    def __init__(self, icmp, raw, retrans_timer: float = RETRANS_TIMER,
                 transmits: int = DUP_ADDR_DETECT_TRANSMITS):
        # icmp listens on the home link (NS, NA); raw sends whole packets,
        # because a socket-level send would fill in a source address and a
        # DAD probe must come from :: (RFC 4862 section 5.4.2)
        self.icmp = icmp
        self.raw = raw
        self.retrans_timer = retrans_timer
        self.transmits = transmits
        self._probing: dict[IPv6Address, asyncio.Future] = {}

    def observe(self, msg, src: IPv6Address) -> None:
        """Called with every NS and NA heard on the home link."""
        from ha.wire.icmpv6 import NeighborAdvertisement, NeighborSolicitation

        target = getattr(msg, "target", None)
        fut = self._probing.get(target)
        if fut is None or fut.done():
            return
        if isinstance(msg, NeighborAdvertisement):
            log.info("DAD: %s is in use on the home link (NA from %s)", target, src)
            fut.set_result(False)
        elif isinstance(msg, NeighborSolicitation) and src == UNSPECIFIED:
            log.info("DAD: another node is probing %s", target)
            fut.set_result(False)

    async def probe(self, addresses: list[IPv6Address]) -> bool:
        """True when every address is unique on the home link."""
        from ha.wire.icmpv6 import ICMPV6, NeighborSolicitation, encode_icmpv6
        from ha.wire.ipv6 import IPv6Header

        loop = asyncio.get_running_loop()
        futures = []
        for address in addresses:
            fut = self._probing.get(address)
            if fut is None or fut.done():
                fut = loop.create_future()
                self._probing[address] = fut
                group = solicited_node(address)
                self.icmp.join(group)
            futures.append(fut)
        try:
            for _ in range(self.transmits):
                for address in addresses:
                    ns = NeighborSolicitation(target=address, options=[])
                    group = solicited_node(address)
                    body = encode_icmpv6(ns, UNSPECIFIED, group)
                    head = IPv6Header(UNSPECIFIED, group, ICMPV6, len(body), 255).encode()
                    self.raw.send(head + body, group, self.icmp.ifindex)
                done, _ = await asyncio.wait(futures, timeout=self.retrans_timer,
                                             return_when=asyncio.FIRST_COMPLETED)
                if any(f.result() is False for f in done):
                    return False
            return True
        finally:
            for address, fut in zip(addresses, futures):
                if self._probing.get(address) is fut:
                    del self._probing[address]
                    if not fut.done():
                        fut.cancel()
                if not any(solicited_node(a) == solicited_node(address) for a in self._probing):
                    self.icmp.leave(solicited_node(address))
