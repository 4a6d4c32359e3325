"""Interface facts from the kernel: addresses, MAC, MTU, carrier, TUN, sysctl.

One copy of each, shared by the home agent, the mobile node, the datapaths
and the RA sender. Where a fact is in both /sys and an ioctl, the ioctl is
used: sysfs shows the network namespace that mounted it, not the caller's.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
from ipaddress import IPv6Address
from typing import Iterator, NamedTuple

IFA_F_OPTIMISTIC, IFA_F_DADFAILED, IFA_F_DEPRECATED, IFA_F_TENTATIVE = 0x04, 0x08, 0x20, 0x40
SCOPE_GLOBAL, SCOPE_LINK = 0x00, 0x20
SIOCGIFFLAGS, SIOCGIFMTU, SIOCGIFHWADDR = 0x8913, 0x8921, 0x8927
IFF_RUNNING = 0x40
TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000


class InterfaceAddress(NamedTuple):
    address: IPv6Address
    prefix_len: int
    scope: int
    flags: int
    ifname: str

    @property
    def usable(self) -> bool:
        """Not DAD-failed, and past DAD or optimistic (RFC 4429: usable while
        its DAD runs, where the interface has optimistic_dad on)."""
        if self.flags & IFA_F_DADFAILED:
            return False
        return not self.flags & IFA_F_TENTATIVE or bool(self.flags & IFA_F_OPTIMISTIC)


def if_inet6(text: str | None = None) -> Iterator[InterfaceAddress]:
    """Every IPv6 address of this namespace, from /proc/net/if_inet6 (or `text`)."""
    if text is None:
        try:
            with open("/proc/net/if_inet6") as f:
                text = f.read()
        except OSError:
            return
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 6:
            continue
        try:
            yield InterfaceAddress(IPv6Address(bytes.fromhex(parts[0])), int(parts[2], 16),
                                   int(parts[3], 16), int(parts[4], 16), parts[5])
        except ValueError:
            continue


def interface_addresses(ifname: str) -> list[InterfaceAddress]:
    """The addresses of `ifname`, in the kernel's order."""
    return [a for a in if_inet6() if a.ifname == ifname]


def usable_global_addresses(ifname: str) -> list[IPv6Address]:
    """Global addresses of `ifname` that have passed DAD (or are optimistic)."""
    return [a.address for a in interface_addresses(ifname)
            if a.scope == SCOPE_GLOBAL and a.usable]


def _ifreq(ifname: str, request: int) -> bytes:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        return fcntl.ioctl(s.fileno(), request, struct.pack("16s16x", ifname.encode()))


def interface_mac(ifname: str) -> bytes:
    return _ifreq(ifname, SIOCGIFHWADDR)[18:24]


def interface_mtu(ifname: str) -> int:
    return struct.unpack_from("=i", _ifreq(ifname, SIOCGIFMTU), 16)[0]


def interface_running(ifname: str) -> bool:
    """Carrier: IFF_RUNNING (an 802.11 station is associated, a cable is in)."""
    try:
        return bool(struct.unpack_from("=H", _ifreq(ifname, SIOCGIFFLAGS), 16)[0] & IFF_RUNNING)
    except OSError:
        return False


def open_tun(name: str) -> tuple[int, str]:
    """A TUN device without packet info, non-blocking; (fd, the name the kernel gave)."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        ifr = fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd, ifr[:16].rstrip(b"\0").decode()


def write_sysctl(path: str, value: str) -> str | None:
    """Set /proc/sys/<path> to value; return the previous value (None if absent)."""
    full = "/proc/sys/" + path.replace(".", "/")
    try:
        with open(full) as f:
            old = f.read().strip()
        if old != value:
            with open(full, "w") as f:
                f.write(value)
        return old
    except FileNotFoundError:
        return None


def default_gateways(ifindex: int, table: int = 254) -> list[IPv6Address]:
    """The gateways of the IPv6 default routes out of `ifindex` in `table`
    (`ip -6 route show default dev X`), from one rtnetlink dump: no
    subprocess, so the event loop waits microseconds, not an `ip` start-up."""
    RTM_GETROUTE, RTM_NEWROUTE, NLMSG_DONE, NLMSG_ERROR = 26, 24, 3, 2
    RTA_GATEWAY, RTA_OIF, RTA_TABLE = 5, 4, 15
    NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
    req = struct.pack("=BBBBBBBBI", socket.AF_INET6, 0, 0, 0, 0, 0, 0, 0, 0)
    out: list[IPv6Address] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) as s:
        s.bind((0, 0))
        s.send(struct.pack("=IHHII", 16 + len(req), RTM_GETROUTE,
                           NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + req)
        while True:
            data = s.recv(1 << 16)
            offset = 0
            while offset + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                if length < 16 or kind in (NLMSG_DONE, NLMSG_ERROR):
                    return out
                if kind == RTM_NEWROUTE:
                    dst_len, rtm_table = data[offset + 17], data[offset + 20]
                    attrs, pos, end = {}, offset + 28, offset + length
                    while pos + 4 <= end:
                        alen, akind = struct.unpack_from("=HH", data, pos)
                        if alen < 4:
                            break
                        attrs[akind] = data[pos + 4:pos + alen]
                        pos += (alen + 3) & ~3
                    if RTA_TABLE in attrs:
                        rtm_table = struct.unpack("=I", attrs[RTA_TABLE][:4])[0]
                    oif = struct.unpack("=i", attrs[RTA_OIF][:4])[0] if RTA_OIF in attrs else 0
                    if dst_len == 0 and rtm_table == table and oif == ifindex \
                            and len(attrs.get(RTA_GATEWAY, b"")) == 16:
                        out.append(IPv6Address(attrs[RTA_GATEWAY]))
                offset += (length + 3) & ~3
