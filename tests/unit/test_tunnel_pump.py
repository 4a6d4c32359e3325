"""ha/net/tunnel.py's pump on real file descriptors, without root: a datagram
socketpair stands in for the TUN (one packet per read and write, as a TUN
gives), a UDP socket on ::1 for the protocol-41 socket (sendto/recvfrom with
the peer's address, as the raw socket gives the outer source)."""

from __future__ import annotations

import asyncio
import socket
from ipaddress import IPv6Address

import pytest

from ha.net.tunnel import TunnelPump
from ha.wire.ipv6 import IPv6Header

HOA = IPv6Address("2001:db8::beef")
CN = IPv6Address("2001:db8::c")


def packet(src, dst, payload=b"ping"):
    return IPv6Header(src, dst, 59, len(payload)).encode() + payload


def udp6():
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.bind(("::1", 0))
    s.setblocking(False)
    return s


async def settle():
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.fixture
def rig():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 loopback")
    tun_kernel, tun_ours = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    tun_ours.setblocking(False)
    peer = udp6()  # the far end of the tunnel
    yield tun_kernel, tun_ours, peer
    for s in (tun_kernel, tun_ours, peer):
        s.close()


def test_packets_go_both_ways_and_the_owner_decides(rig):
    tun_kernel, tun_ours, peer = rig
    asked = []

    async def main():
        loop = asyncio.get_running_loop()
        sock = udp6()
        peer_addr = peer.getsockname()[:2]

        def outer_destination(pkt):
            asked.append(IPv6Address(pkt[8:24]))
            return peer_addr if pkt[8:24] == HOA.packed else None

        def accept(pkt, outer_source):
            return outer_source == "::1" and pkt[24:40] == HOA.packed

        pump = TunnelPump(loop, tun_ours.fileno(), outer_destination=outer_destination,
                          accept=accept)
        pump.attach(sock)
        tun_kernel.send(packet(HOA, CN))        # the home address's packet: tunnelled
        tun_kernel.send(packet(CN, HOA))        # the owner says no
        tun_kernel.send(b"\x60" + bytes(10))    # shorter than a header: malformed
        await settle()
        assert peer.recv(2048) == packet(HOA, CN)
        peer.sendto(packet(CN, HOA, b"pong"), sock.getsockname()[:2])  # accepted
        peer.sendto(packet(CN, CN), sock.getsockname()[:2])            # refused
        peer.sendto(b"\x40" * 60, sock.getsockname()[:2])              # IPv4: malformed
        await settle()
        assert tun_kernel.recv(2048) == packet(CN, HOA, b"pong")
        c = pump.counters
        assert (c["tunnelled_packets"], c["decapsulated_packets"], c["dropped_malformed"]) \
            == (1, 1, 2)
        assert c["tunnelled_bytes"] == len(packet(HOA, CN))
        # without a socket (the mobile node between care-of addresses) nothing goes out
        pump.detach()
        assert sock.fileno() == -1  # detach closed it
        tun_kernel.send(packet(HOA, CN))
        await settle()
        assert c["send_errors"] == 1 and c["tunnelled_packets"] == 1
        pump.close()

    asyncio.run(main())
    assert asked == [HOA, CN, HOA]
    tun_kernel.setblocking(False)
    with pytest.raises(BlockingIOError):
        tun_kernel.recv(2048)  # nothing refused was written into the TUN
