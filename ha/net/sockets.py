"""Sockets for Mobile IPv6 signalling: thin adapters, no protocol rules.

Measured on a kernel without CONFIG_IPV6_MIP6 (see shared/DESIGN.md):
- a BU carries a Home Address option the kernel does not know, so it is
  read from an AF_PACKET socket (the firewall rule in ha/net/firewall.py keeps
  the kernel from answering it with a Parameter Problem);
- a BA needs a type 2 routing header, which IPV6_RTHDR refuses, so it goes
  out whole through a header-included raw socket (IPPROTO_RAW).
Both work the same on a kernel that has MIP6.
"""

from __future__ import annotations

import ctypes
import logging
import socket
import struct
from collections.abc import Callable
from ipaddress import IPv6Address

log = logging.getLogger("denali.signal")

ETH_P_IPV6 = 0x86DD
SO_ATTACH_FILTER = 26
PACKET_OUTGOING = 4
IPV6_RECVPKTINFO = 49
IPV6_PKTINFO = 50
IPV6_RECVHOPLIMIT = 51
IPV6_HOPLIMIT = 52
ICMP6_FILTER = 1
IPV6_JOIN_ANYCAST = 27

# Classic BPF programs, run on the network header (SOCK_DGRAM): each keeps
# the few packets a reader wants and drops the rest in the kernel, so the
# daemon never sees ordinary traffic.

# First next header Destination Options (60: a Home Address option may be
# inside), the Mobility Header itself (135), or ESP (50: a BU in ESP sent
# from home, RFC 3776 section 3.1, which has no Home Address option): what a
# home agent receives.
MH_FILTER = (
    (0x30, 0, 0, 6),       # ldb [6]          next header
    (0x15, 2, 0, 60),      # jeq #60   -> accept
    (0x15, 1, 0, 135),     # jeq #135  -> accept
    (0x15, 0, 1, 50),      # jeq #50   -> accept, else drop
    (0x06, 0, 0, 0xFFFF),  # ret #65535
    (0x06, 0, 0, 0),       # ret #0
)

# First next header Routing (43: a BA with its type 2 routing header) or the
# Mobility Header (135): what a mobile node receives.
BA_FILTER = (
    (0x30, 0, 0, 6),       # ldb [6]
    (0x15, 1, 0, 43),      # jeq #43  -> accept
    (0x15, 0, 1, 135),     # jeq #135 -> accept, else drop
    (0x06, 0, 0, 0xFFFF),  # ret #65535
    (0x06, 0, 0, 0),       # ret #0
)

# Next header ICMPv6 with no extension headers (RFC 4861 messages carry
# none), type 135 Neighbor Solicitation: what the proxy-ND responder answers.
NS_FILTER = (
    (0x30, 0, 0, 6),       # ldb [6]
    (0x15, 0, 3, 58),      # ICMPv6?
    (0x30, 0, 0, 40),      # ldb [40]
    (0x15, 0, 1, 135),     # NS?
    (0x06, 0, 0, 0xFFFF),
    (0x06, 0, 0, 0),
)


def _attach_filter(sock: socket.socket, program) -> None:
    code = b"".join(struct.pack("HBBI", *ins) for ins in program)
    buf = ctypes.create_string_buffer(code)
    fprog = struct.pack("HL", len(program), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


class PacketSocket:
    """An AF_PACKET reader of IPv6 packets, from the IPv6 header on.

    Used wherever the kernel would not hand us a packet through an IPv6
    socket (a BU's Home Address option, a BA's type 2 routing header, an NS
    for an address we do not hold). `program` is a classic BPF filter that
    runs in the kernel; `ifname` binds to one interface (None: every link).
    Packets we sent ourselves (PACKET_OUTGOING) are skipped. `read_ready()`
    drains up to `burst` packets per call and hands each to
    `on_packet(data, ifname)`, so a flood cannot starve the event loop.
    """

    def __init__(self, program, on_packet: Callable[[bytes, str], None], *,
                 ifname: str | None = None, rcvbuf: int | None = None,
                 burst: int = 256, bufsize: int = 65535):
        self.on_packet = on_packet
        self.burst = burst
        self.bufsize = bufsize
        s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IPV6))
        try:
            _attach_filter(s, program)
            if ifname:
                s.bind((ifname, ETH_P_IPV6))
            if rcvbuf:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            s.setblocking(False)
        except BaseException:
            s.close()
            raise
        self.sock = s

    def fileno(self) -> int:
        return self.sock.fileno()

    def read_ready(self) -> None:
        """Drain the socket; called by the event loop when it is readable."""
        recvfrom, on_packet, size = self.sock.recvfrom, self.on_packet, self.bufsize
        for _ in range(self.burst):
            try:
                data, addr = recvfrom(size)
            except (BlockingIOError, InterruptedError):
                return
            if addr[2] == PACKET_OUTGOING:  # our own BAs, BUs, NAs
                continue
            on_packet(data, addr[0])

    def close(self) -> None:
        self.sock.close()


class PacketTap(PacketSocket):
    """The home agent's reader: MH and destination-options packets on all links."""

    def __init__(self, on_packet: Callable[[bytes, str], None]):
        super().__init__(MH_FILTER, on_packet, rcvbuf=4 << 20)


class RawSender:
    """Sends whole IPv6 packets (header included), e.g. a BA with an RH2."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
        # our own multicast (a DAD probe) must not come back to our listeners
        self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
        self.sock.setblocking(False)

    def send(self, packet: bytes, dst: IPv6Address, ifindex: int = 0) -> bool:
        # str() of an IPv6Address is costly at thousands of BAs a second;
        # the destination is the packet's own (bytes 24..40), so format that
        text = socket.inet_ntop(socket.AF_INET6, packet[24:40])
        try:
            if ifindex and packet[24] != 0xFF and packet[24:26] != b"\xfe\x80":
                # the scope id of a global destination is ignored: name the
                # interface in IPV6_PKTINFO to keep the routing table out of it
                self.sock.sendmsg([packet], [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO,
                                              bytes(16) + struct.pack("@I", ifindex))],
                                  0, (text, 0))
            else:
                self.sock.sendto(packet, (text, 0, 0, ifindex))
            return True
        except (BlockingIOError, OSError) as e:
            log.warning("send to %s failed: %s", dst, e)
            return False

    def close(self) -> None:
        self.sock.close()


def _icmp6_filter(types) -> bytes:
    """ICMP6_FILTER: block everything but `types` (a set bit blocks)."""
    words = [0xFFFFFFFF] * 8
    for t in types:
        words[t >> 5] &= ~(1 << (t & 31))
    return struct.pack("8I", *words)


class ICMPv6Socket:
    """Raw ICMPv6 on one interface: ND for DAD, RAs, DHAAD; hop limit 255 out."""

    def __init__(self, ifname: str | None, types, on_message: Callable):
        # ifname None: any interface (e.g. DHAAD requests arrive on the link
        # that faces the mobile node, not on the home link)
        self.ifname = ifname
        self.ifindex = socket.if_nametoindex(ifname) if ifname else 0
        self.on_message = on_message
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        if ifname:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
        s.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, _icmp6_filter(types))
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
        if ifname:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self.ifindex)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
        s.setblocking(False)
        self.sock = s
        self._groups: set[IPv6Address] = set()
        self._anycast: set[IPv6Address] = set()

    def fileno(self) -> int:
        return self.sock.fileno()

    def join(self, group: IPv6Address) -> None:
        if group not in self._groups:
            mreq = group.packed + struct.pack("@I", self.ifindex)
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
            self._groups.add(group)

    def leave(self, group: IPv6Address) -> None:
        if group in self._groups:
            mreq = group.packed + struct.pack("@I", self.ifindex)
            try:
                self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_LEAVE_GROUP, mreq)
            except OSError:
                pass
            self._groups.discard(group)

    def join_anycast(self, address: IPv6Address) -> None:
        mreq = address.packed + struct.pack("@I", self.ifindex)
        self.sock.setsockopt(socket.IPPROTO_IPV6, IPV6_JOIN_ANYCAST, mreq)
        self._anycast.add(address)

    def send(self, data: bytes, dst: IPv6Address, src: IPv6Address | None = None) -> bool:
        anc = []
        if src is not None:
            anc.append((socket.IPPROTO_IPV6, IPV6_PKTINFO,
                        src.packed + struct.pack("@I", self.ifindex)))
        try:
            self.sock.sendmsg([data], anc, 0, (str(dst), 0, 0, self.ifindex))
            return True
        except (BlockingIOError, OSError) as e:
            log.warning("ICMPv6 send to %s on %s failed: %s", dst, self.ifname, e)
            return False

    def read_ready(self) -> None:
        for _ in range(256):
            try:
                data, ancdata, _flags, addr = self.sock.recvmsg(65535, 256)
            except (BlockingIOError, InterruptedError):
                return
            dst = None
            hop_limit = None
            for level, kind, value in ancdata:
                if level == socket.IPPROTO_IPV6 and kind == IPV6_PKTINFO and len(value) >= 16:
                    dst = IPv6Address(value[:16])
                elif level == socket.IPPROTO_IPV6 and kind == IPV6_HOPLIMIT and len(value) >= 4:
                    hop_limit = struct.unpack("@i", value[:4])[0]
            src = IPv6Address(addr[0].split("%")[0])
            self.on_message(data, src, dst, hop_limit)

    def close(self) -> None:
        self.sock.close()
