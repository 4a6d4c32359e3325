"""The user-space IPv6-in-IPv6 tunnel pump (RFC 2473), shared by both ends.

Where the kernel has no ip6_tunnel, a tunnel end is a TUN device and a raw
`socket(AF_INET6, SOCK_RAW, 41)`: the kernel routes the packets to be
tunnelled into the TUN; we read each one and send it on the raw socket,
which adds the outer header (the socket's bound address -> the destination
we give). What arrives on the raw socket is the inner packet with the outer
source as its address; accepted ones are written into the TUN, and the
kernel forwards or delivers them.

`TunnelPump` is that loop and nothing else. Which packets may go in and
come out is the owner's: the home agent end (ha/datapath/user.py) looks the
inner destination up in its bindings and checks the outer source against
the care-of address (RFC 6275 section 10.4.5); the mobile node end
(ha/daemon/mobile_node.py) sends only its home address's packets to its
home agent and takes back only the home agent's packets for it.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable

log = logging.getLogger(__name__)

IPPROTO_IPV6 = 41  # IPv6-in-IPv6
OUTER_HEADER = 40  # bytes the encapsulation adds, so the TUN's MTU is 40 less
READ_BURST = 64  # packets per wakeup before yielding to the loop

COUNTERS = ("tunnelled_packets", "tunnelled_bytes", "decapsulated_packets",
            "decapsulated_bytes", "dropped_malformed", "send_errors", "socket_errors")


def open_tunnel_socket(local: str | None = None, ifname: str | None = None) -> socket.socket:
    """A non-blocking raw protocol-41 socket, bound to the `local` address
    (the outer source) and, when given, to interface `ifname` (so that a
    default route through the TUN never catches the outer packets)."""
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_IPV6)
    try:
        if ifname:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
        if local:
            s.bind((local, 0))
        s.setblocking(False)
    except BaseException:
        s.close()
        raise
    return s


class TunnelPump:
    """Pumps packets between `tun_fd` and a protocol-41 socket on `loop`.

    outer_destination(packet) -> sockaddr or None
        for each well-formed IPv6 packet read from the TUN: where to send it
        encapsulated, or None to drop it (the callback counts why).
    accept(packet, outer_source) -> bool
        for each well-formed inner packet from the socket; `outer_source` is
        the outer header's source as recvfrom() reports it (inet_ntop form).

    The socket can come and go (the mobile node binds a new one to each
    care-of address): `attach(sock)` starts reading it, `detach()` stops and
    closes it; while none is attached, TUN packets are dropped as send errors.
    """

    def __init__(self, loop, tun_fd: int, *,
                 outer_destination: Callable[[bytes], tuple | None],
                 accept: Callable[[bytes, str], bool],
                 counters: dict | None = None, burst: int = READ_BURST):
        self.loop = loop
        self.tun_fd = tun_fd
        self.outer_destination = outer_destination
        self.accept = accept
        self.counters = counters if counters is not None else {}
        for key in COUNTERS:
            self.counters.setdefault(key, 0)
        self.burst = burst
        self.sock: socket.socket | None = None
        loop.add_reader(tun_fd, self._on_tun)

    def attach(self, sock: socket.socket) -> None:
        self.detach()
        self.sock = sock
        self.loop.add_reader(sock.fileno(), self._on_socket)

    def detach(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            self.loop.remove_reader(sock.fileno())
            sock.close()

    def close(self) -> None:
        """Stop both directions; the caller closes the TUN (that deletes it)."""
        self.detach()
        self.loop.remove_reader(self.tun_fd)

    def _on_tun(self) -> None:
        """Packets the kernel routed into the TUN: encapsulate them."""
        c = self.counters
        fd, where = self.tun_fd, self.outer_destination
        for _ in range(self.burst):
            try:
                pkt = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                c["socket_errors"] += 1
                return
            if len(pkt) < 40 or pkt[0] >> 4 != 6:
                c["dropped_malformed"] += 1
                continue
            dst = where(pkt)
            if dst is None:
                continue
            sock = self.sock
            try:
                if sock is None:
                    raise OSError("no tunnel socket")
                sock.sendto(pkt, dst)
            except OSError:
                c["send_errors"] += 1
                continue
            c["tunnelled_packets"] += 1
            c["tunnelled_bytes"] += len(pkt)

    def _on_socket(self) -> None:
        """Encapsulated packets: the raw socket hands us the inner one."""
        c = self.counters
        fd, accept = self.tun_fd, self.accept
        for _ in range(self.burst):
            sock = self.sock
            if sock is None:
                return
            try:
                pkt, addr = sock.recvfrom(65536)
            except BlockingIOError:
                return
            except OSError:
                c["socket_errors"] += 1
                return
            if len(pkt) < 40 or pkt[0] >> 4 != 6:
                c["dropped_malformed"] += 1
                continue
            if not accept(pkt, addr[0]):
                continue
            try:
                os.write(fd, pkt)
            except OSError:
                c["send_errors"] += 1
                continue
            c["decapsulated_packets"] += 1
            c["decapsulated_bytes"] += len(pkt)
