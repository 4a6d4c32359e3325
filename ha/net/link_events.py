"""Carrier and IPv6 address changes of one interface, as the kernel announces them.

A mobile node that polls its interface learns of a move up to a poll
interval late, and misses a link that goes down and up between two polls
(a Wi-Fi reassociation takes tens of milliseconds). rtnetlink tells every
listener of its multicast groups instead: RTM_NEWLINK carries the
interface's flags (IFF_RUNNING is the carrier), RTM_NEWADDR/RTM_DELADDR come
when an address is added, removed or changes flags (its DAD ending is one).

LinkWatcher reads those for one interface index and calls back in the order
the kernel sent them: on_link(running) for each link message, then
on_addresses() once per read if any address message was for us. When the
socket's buffer overran (ENOBUFS), messages are lost: both callbacks are
then called with the state read afresh by the caller (on_overrun).
"""

from __future__ import annotations

import errno
import socket
import struct

NETLINK_ROUTE = 0
RTMGRP_LINK = 0x1
RTMGRP_IPV6_IFADDR = 0x100
RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_DELADDR = 16, 17, 20, 21
IFF_RUNNING = 0x40

_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")
_IFADDRMSG = struct.Struct("=BBBBI")


def parse_events(data: bytes, ifindex: int) -> tuple[list[bool], bool]:
    """The link states (IFF_RUNNING, in order) and whether an address changed,
    from one read of the socket, for `ifindex` only."""
    links: list[bool] = []
    addresses = False
    off = 0
    while off + _NLMSGHDR.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, off)
        if length < _NLMSGHDR.size or off + length > len(data):
            break
        body = off + _NLMSGHDR.size
        if kind in (RTM_NEWLINK, RTM_DELLINK) and length >= _NLMSGHDR.size + _IFINFOMSG.size:
            _family, _type, index, flags, _change = _IFINFOMSG.unpack_from(data, body)
            if index == ifindex:
                links.append(kind == RTM_NEWLINK and bool(flags & IFF_RUNNING))
        elif kind in (RTM_NEWADDR, RTM_DELADDR) and length >= _NLMSGHDR.size + _IFADDRMSG.size:
            family, _plen, _flags, _scope, index = _IFADDRMSG.unpack_from(data, body)
            if index == ifindex and family == socket.AF_INET6:
                addresses = True
        off += (length + 3) & ~3
    return links, addresses


class LinkWatcher:
    def __init__(self, ifindex: int, on_link, on_addresses, on_overrun):
        self.ifindex = ifindex
        self.on_link, self.on_addresses, self.on_overrun = on_link, on_addresses, on_overrun
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK
                          | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
        s.bind((0, RTMGRP_LINK | RTMGRP_IPV6_IFADDR))
        self.sock = s

    def fileno(self) -> int:
        return self.sock.fileno()

    def read_ready(self) -> None:
        changed = False
        while True:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                if e.errno == errno.ENOBUFS:  # we fell behind: what we missed is unknown
                    self.on_overrun()
                    continue
                raise
            links, addresses = parse_events(data, self.ifindex)
            for running in links:
                self.on_link(running)
            changed |= addresses
        if changed:
            self.on_addresses()

    def close(self) -> None:
        self.sock.close()
