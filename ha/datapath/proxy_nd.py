"""Proxy Neighbor Discovery for away home addresses (RFC 6275 section 10.4.1).

The kernel answers Neighbor Solicitations for a home address once the home
interface has proxy_ndp=1 (and forwarding) and a proxy neighbour entry
(NTF_PROXY) exists for it; `proxy_entry_msg` builds that entry's netlink
request for the datapath's batch. The kernel never sends the unsolicited
Neighbor Advertisements that make the correspondents on the home link
switch to the home agent's MAC, so `NASender` sends them.

With proxy="daemon" there is no proxy entry: `NSResponder` reads the
solicitations from an AF_PACKET socket and answers those for away home
addresses itself. The kernel keeps its proxy entries in a hash of 16
buckets with linear lists, so past a few thousand bindings every add costs
a walk of them (measured: 1,000 adds take 12 ms into an empty table and
1.5 s once 41,000 are there); the daemon's answer is a dict lookup.

The NA is encoded by the shared codec (ha/wire/icmpv6.py) once per binding. The
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

from ha.net.iface import interface_mac

log = logging.getLogger(__name__)

MAX_NEIGHBOR_ADVERTISEMENT = 3  # RFC 4861 section 10
IPV6_UNICAST_HOPS = 16
ALL_NODES = "ff02::1"
ICMP6_FILTER = 1
IPV6_MULTICAST_IF, IPV6_MULTICAST_HOPS, IPV6_MULTICAST_LOOP = 17, 18, 19


def build_unsolicited_na(target: IPv6Address, mac: bytes) -> bytes:
    """NA for the home address, section 10.4.1: R=0, S=0, O=1, TLLA = the HA's MAC."""
    from ha.wire.icmpv6 import NeighborAdvertisement, TargetLinkLayerAddress, encode_icmpv6
    na = NeighborAdvertisement(target, router=False, solicited=False, override=True,
                               options=[TargetLinkLayerAddress(mac)])
    return encode_icmpv6(na, IPv6Address("::"), IPv6Address(ALL_NODES))



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
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_UNICAST_HOPS, 255)
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

    def send_to(self, na: bytes, dst: IPv6Address) -> None:
        """One NA to `dst` on the home link (a solicited one, from NSResponder)."""
        try:
            self.sock.sendto(na, (str(dst), 0, 0, self.ifindex))
            self.sent += 1
        except OSError as e:
            self.errors += 1
            log.debug("NA to %s: %s", dst, e)

    def cancel(self, hoa: IPv6Address) -> None:
        timer = self._timers.pop(hoa, None)
        if timer is not None:
            timer.cancel()

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self.sock.close()


SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_ALLMULTI = 0x8913, 0x8914, 0x200
UNSPECIFIED = bytes(16)


def _set_allmulti(ifname: str, on: bool) -> bool:
    """Turn IFF_ALLMULTI on or off; returns whether it was on before."""
    import fcntl
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        ifr = fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, struct.pack("16sH14x", ifname.encode(), 0))
        flags = struct.unpack_from("16sH", ifr)[1]
        new = flags | IFF_ALLMULTI if on else flags & ~IFF_ALLMULTI
        if new != flags:
            fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", ifname.encode(), new))
        return bool(flags & IFF_ALLMULTI)


class NSResponder:
    """Answers Neighbor Solicitations for away home addresses (proxy="daemon").

    A solicitation for a home address goes to its solicited-node group, which
    nobody on the home agent joined, so the interface is put in all-multicast
    mode and the packet socket sees it before the IPv6 stack drops it. The
    answer is what the kernel's proxy would send (RFC 4861 section 7.2.8):
    our link-layer address, R=0 (the mobile node is a host), O=0 (a proxy does
    not override the owner), S=1, to the soliciting node, or to all-nodes
    with S=0 when the solicitation came from the unspecified address (a DAD
    probe for a home address that is away: the answer defends it).
    """

    def __init__(self, ifname: str, *, loop: asyncio.AbstractEventLoop, sender: NASender,
                 wanted, counters: dict | None = None):
        from ha.net.sockets import NS_FILTER, PacketSocket
        self.loop = loop
        self.ifname = ifname
        self.sender = sender
        self.wanted = wanted  # packed target -> bool
        self.counters = counters if counters is not None else {}
        for key in ("ns_answered", "ns_not_ours", "ns_invalid"):
            self.counters.setdefault(key, 0)
        self.sock = PacketSocket(NS_FILTER, self._on_ns, ifname=ifname, bufsize=2048)
        self._was_allmulti = _set_allmulti(ifname, True)
        loop.add_reader(self.sock.fileno(), self.sock.read_ready)

    def _on_ns(self, data: bytes, _ifname: str = "") -> None:
        c = self.counters
        # RFC 4861 section 7.1.1: hop limit 255, code 0, at least 24 octets
        if len(data) < 64 or data[7] != 255 or data[41] != 0:
            c["ns_invalid"] += 1
            return
        target = data[48:64]
        if not self.wanted(target):
            c["ns_not_ours"] += 1
            return
        from ha.wire.errors import CodecError
        from ha.wire.icmpv6 import (NeighborAdvertisement, TargetLinkLayerAddress, decode_icmpv6)
        src, dst = IPv6Address(data[8:24]), IPv6Address(data[24:40])
        try:
            decode_icmpv6(data[40:40 + int.from_bytes(data[4:6], "big")], src, dst)
        except CodecError:
            c["ns_invalid"] += 1
            return
        solicited = data[8:24] != UNSPECIFIED
        reply_to = src if solicited else IPv6Address(ALL_NODES)
        from ha.wire.icmpv6 import encode_icmpv6
        na = NeighborAdvertisement(IPv6Address(target), router=False, solicited=solicited,
                                   override=False,
                                   options=[TargetLinkLayerAddress(self.sender.mac)])
        self.sender.send_to(encode_icmpv6(na, IPv6Address("::"), reply_to), reply_to)
        c["ns_answered"] += 1

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        if not self._was_allmulti:
            try:
                _set_allmulti(self.ifname, False)
            except OSError:
                pass
