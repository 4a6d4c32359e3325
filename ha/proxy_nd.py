"""Proxy Neighbor Discovery for away home addresses (RFC 6275 section 10.4.1).

The kernel answers Neighbor Solicitations for a home address once the home
interface has proxy_ndp=1 (and forwarding) and a proxy neighbour entry
(NTF_PROXY) exists for it; `proxy_entry_msg` builds that entry's netlink
request for the datapath's batch. The kernel never sends the unsolicited
Neighbor Advertisements that make the correspondents on the home link
switch to the home agent's MAC, so `NASender` sends them.

The NA is encoded by the shared codec (ha/icmpv6.py) once per binding. The
kernel picks the source (the home interface's link-local address, as the
destination is link-scope) and recomputes the checksum of everything sent
on a raw ICMPv6 socket (RFC 3542 section 3.1; it first subtracts whatever
the field held), so the checksum encoded over the unspecified source does
no harm.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from ipaddress import IPv6Address

from ha.datapath import RTM_DELNEIGH, RTM_NEWNEIGH, proxy_neigh_msg

log = logging.getLogger(__name__)

MAX_NEIGHBOR_ADVERTISEMENT = 3  # RFC 4861 section 10
ALL_NODES = "ff02::1"
ICMP6_FILTER = 1
IPV6_MULTICAST_IF, IPV6_MULTICAST_HOPS, IPV6_MULTICAST_LOOP = 17, 18, 19


def proxy_entry_msg(add: bool, hoa: IPv6Address, ifindex: int) -> tuple[int, int, bytes]:
    """The netlink request that starts (add) or stops proxying for hoa on ifindex."""
    return proxy_neigh_msg(RTM_NEWNEIGH if add else RTM_DELNEIGH, hoa, ifindex)


def build_unsolicited_na(target: IPv6Address, mac: bytes) -> bytes:
    """NA for the home address, section 10.4.1: R=0, S=0, O=1, TLLA = the HA's MAC."""
    from ha.icmpv6 import NeighborAdvertisement, TargetLinkLayerAddress, encode_icmpv6
    na = NeighborAdvertisement(target, router=False, solicited=False, override=True,
                               options=[TargetLinkLayerAddress(mac)])
    return encode_icmpv6(na, IPv6Address("::"), IPv6Address(ALL_NODES))


SIOCGIFHWADDR = 0x8927


def interface_mac(ifname: str) -> bytes:
    """The interface's MAC, by ioctl: /sys shows the namespace that mounted it, not ours."""
    import fcntl
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        ifr = fcntl.ioctl(s.fileno(), SIOCGIFHWADDR, struct.pack("16s16x", ifname.encode()))
    return ifr[18:24]


class NASender:
    """Multicasts the unsolicited NAs of section 10.4.1 on the home link.

    `announce(hoa)` sends one now and MAX_NEIGHBOR_ADVERTISEMENT - 1 more,
    `interval` seconds apart (RFC 4861 section 7.2.6); `cancel(hoa)` stops the
    rest when the binding goes away.
    """

    def __init__(self, ifname: str, *, loop: asyncio.AbstractEventLoop,
                 count: int = MAX_NEIGHBOR_ADVERTISEMENT, interval: float = 1.0):
        self.loop = loop
        self.ifindex = socket.if_nametoindex(ifname)
        self.mac = interface_mac(ifname)
        self.count = count
        self.interval = interval
        self.sent = 0
        self.errors = 0
        self._timers: dict[IPv6Address, asyncio.TimerHandle] = {}
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        s.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, b"\xff" * 32)  # send only
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 255)  # RFC 4861 7.1.2
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_IF, self.ifindex)
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 0)
        s.setblocking(False)
        self.sock = s
        self._dst = (ALL_NODES, 0, 0, self.ifindex)

    def announce(self, hoa: IPv6Address) -> None:
        self.cancel(hoa)
        self._send(hoa, build_unsolicited_na(hoa, self.mac), self.count)

    def _send(self, hoa: IPv6Address, na: bytes, left: int) -> None:
        self._timers.pop(hoa, None)
        try:
            self.sock.sendto(na, self._dst)
            self.sent += 1
        except OSError as e:
            self.errors += 1
            log.debug("unsolicited NA for %s: %s", hoa, e)
        if left > 1:
            self._timers[hoa] = self.loop.call_later(self.interval, self._send, hoa, na, left - 1)

    def cancel(self, hoa: IPv6Address) -> None:
        timer = self._timers.pop(hoa, None)
        if timer is not None:
            timer.cancel()

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self.sock.close()
