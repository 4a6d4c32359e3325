"""User-space tunnel backend: one TUN device and a raw protocol-41 socket.

For kernels without ip6_tunnel. The pump between the two is ha/net/tunnel.py's
(shared with the mobile node's end); what this file adds is which packets it
may carry. How a packet goes:

- CN -> home address: the kernel forwards it by the /128 route for the home
  address, which lives in the dedicated table ROUTE_TABLE (one rule,
  `pref 1000 lookup 6275`, before main) and points into the TUN device. We
  read it from the TUN, look the destination up in the binding table and
  send it on `socket(AF_INET6, SOCK_RAW, 41)` bound to the HA address to the
  care-of address: the kernel adds the outer header (src HA, dst CoA,
  next header 41).
- MN -> anywhere, reverse tunnelled: the raw socket hands us the inner
  packet and the outer source. We write the inner packet into the TUN (the
  kernel forwards it) only if the outer source is the care-of address
  registered for the inner source (RFC 6275 section 10.4.5).

Per binding the kernel holds one route and one proxy entry, written in a
batch; a move changes only our table here (the route still points at the
TUN), so it costs no kernel work. Closing the TUN deletes the device and
with it every route through it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from ipaddress import IPv6Address

from ha.datapath.base import Datapath, check_unicast_global, restore_host, undo_open
from ha.net.iface import interface_mtu, open_tun, write_sysctl
from ha.net.tunnel import OUTER_HEADER, TunnelPump, open_tunnel_socket
from ha.net.rtnl import (ROUTE_TABLE, RTM_DELROUTE, RTM_DELRULE, RTM_NEWROUTE, RTM_NEWRULE,
                         RULE_PRIORITY, NetlinkError, RtnlBatch, link_up_msg, route_msg, rule_msg)
from ha.datapath.proxy_nd import NASender, NSResponder

log = logging.getLogger(__name__)




def _not_unicast(dst: bytes) -> bool:
    # multicast ff00::/8 or link-local fe80::/10: never tunnelled
    return dst[0] == 0xFF or (dst[0] == 0xFE and dst[1] & 0xC0 == 0x80)



class _Binding:
    __slots__ = ("coa", "coa_str", "sockaddr")

    def __init__(self, coa: IPv6Address):
        self.coa = coa
        # the form recvfrom() reports, so the section 10.4.5 check is a str compare
        self.coa_str = socket.inet_ntop(socket.AF_INET6, coa.packed)
        self.sockaddr = (self.coa_str, 0)


class UserDatapath(Datapath):
    """The home agent's tunnel end for a kernel without ip6_tunnel.

    It owns a TUN device (the routes of every home address point into it),
    the raw protocol-41 socket bound to the home agent's address, the
    binding table that maps each home address to its care-of address, the
    one routing rule and table, the NA sender (and, with proxy="daemon", the
    NS responder) and the MH firewall rule; ha/datapath/factory.py opens it,
    the home agent adapter (ha/daemon/home_agent.py) drives it through the
    `Datapath` methods, and the event loop drives its packet pump. `close()`
    undoes all of it.
    """

    def __init__(self, home_ifname: str, ha_address: IPv6Address, *, loop, rtnl: RtnlBatch,
                 tun_fd: int, tun_name: str, sock41: socket.socket, na: NASender,
                 firewall, table: int, rule_priority: int, restore: dict):
        self.home_ifname = home_ifname
        self.home_ifindex = socket.if_nametoindex(home_ifname)
        self.ha_address = ha_address
        self.loop = loop
        self.rtnl = rtnl
        self.tun_fd = tun_fd
        self.tun_name = tun_name
        self.tun_ifindex = socket.if_nametoindex(tun_name)
        self.na = na
        self.firewall = firewall
        self.table = table
        self.rule_priority = rule_priority
        self._restore = restore
        self._bindings: dict[bytes, _Binding] = {}
        self._link_local_of = {}
        self.responder: NSResponder | None = None  # proxy="daemon": we answer NS
        self.counters = dict.fromkeys((
            "tunnelled_packets", "tunnelled_bytes", "decapsulated_packets",
            "decapsulated_bytes", "dropped_bad_source", "dropped_no_binding",
            "dropped_not_unicast", "dropped_malformed", "send_errors", "socket_errors"), 0)
        self.pump = TunnelPump(loop, tun_fd, outer_destination=self._outer_destination,
                               accept=self._accept, counters=self.counters)
        self.pump.attach(sock41)
        self._closed = False

    @classmethod
    async def open(cls, home_ifname: str, ha_address: IPv6Address, *, loop=None,
                   firewall: bool = True, tun_name: str = "denali0", table: int = ROUTE_TABLE,
                   rule_priority: int = RULE_PRIORITY, na_interval: float = 1.0,
                   proxy: str = "kernel") -> "UserDatapath":
        loop = loop or asyncio.get_running_loop()
        restore = {}
        fw = None
        rtnl = tun_fd = sock41 = na = None
        try:
            # a router forwards; the kernel proxies ND only on forwarding interfaces
            write_sysctl("net.ipv6.conf.all.forwarding", "1")
            if proxy == "kernel":
                key = f"net.ipv6.conf.{home_ifname}.proxy_ndp"
                restore[key] = write_sysctl(key, "1")
            if firewall:
                from ha.net.firewall import Firewall
                fw = Firewall()
                fw.install()
            rtnl = RtnlBatch(loop)
            tun_fd, tun_name = open_tun(tun_name)
            # no link-local address or RS/MLD chatter on the TUN: it is not a link
            write_sysctl(f"net.ipv6.conf.{tun_name}.addr_gen_mode", "1")
            mtu = max(1280, interface_mtu(home_ifname) - OUTER_HEADER)
            # a leftover rule from a crashed run would make the add fail: delete first
            try:
                await rtnl.submit([rule_msg(RTM_DELRULE, table, rule_priority)])
            except NetlinkError:
                pass
            await rtnl.submit([link_up_msg(socket.if_nametoindex(tun_name), mtu),
                               rule_msg(RTM_NEWRULE, table, rule_priority)])
            sock41 = open_tunnel_socket(str(ha_address))
            na = NASender(home_ifname, loop=loop, interval=na_interval)
            dp = cls(home_ifname, ha_address, loop=loop, rtnl=rtnl, tun_fd=tun_fd,
                     tun_name=tun_name, sock41=sock41, na=na, firewall=fw, table=table,
                     rule_priority=rule_priority, restore=restore)
            if proxy == "daemon":
                dp.responder = NSResponder(home_ifname, loop=loop, sender=na,
                                           wanted=dp._bindings.__contains__,
                                           counters=dp.counters)
            return dp
        except BaseException:
            if na is not None:
                na.close()
            if sock41 is not None:
                sock41.close()
            if tun_fd is not None:
                os.close(tun_fd)
            await undo_open(rtnl, fw, restore, table, rule_priority)
            raise

    # -- what the daemon calls ---------------------------------------------------------

    async def add_binding(self, hoa: IPv6Address, coa: IPv6Address,
                          link_local: IPv6Address | None = None) -> None:
        check_unicast_global(hoa)
        check_unicast_global(coa)
        key = hoa.packed
        self._bindings[key] = _Binding(coa)
        try:
            await self.rtnl.submit([route_msg(RTM_NEWROUTE, hoa, self.tun_ifindex, self.table),
                                    *self._proxy_msgs(True, self._proxied(hoa, link_local))])
        except BaseException:
            self._bindings.pop(key, None)
            raise
        self.na.announce(hoa)

    async def move_binding(self, hoa: IPv6Address, old_coa: IPv6Address,
                           new_coa: IPv6Address) -> None:
        # the route points at the TUN whatever the care-of address: nothing to tell the kernel
        check_unicast_global(new_coa)
        if hoa.packed not in self._bindings:
            raise KeyError(f"no binding for {hoa}")
        self._bindings[hoa.packed] = _Binding(new_coa)

    async def remove_binding(self, hoa: IPv6Address, coa: IPv6Address,
                             link_local: IPv6Address | None = None) -> None:
        self.na.cancel(hoa)
        try:
            await self.rtnl.submit([route_msg(RTM_DELROUTE, hoa, self.tun_ifindex, self.table),
                                    *self._proxy_msgs(False, self._unproxied(hoa))])
        finally:
            self._bindings.pop(hoa.packed, None)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.responder is not None:
            self.responder.close()
        self.na.close()
        self.pump.close()  # and the protocol-41 socket with it
        msgs = self._proxy_msgs(False, [IPv6Address(k) for k in self._bindings]
                               + self._link_locals_proxied())
        msgs.append(rule_msg(RTM_DELRULE, self.table, self.rule_priority))
        try:
            await self.rtnl.submit(msgs)
        except NetlinkError as e:
            log.warning("datapath close: %s", e)
        self._bindings.clear()
        os.close(self.tun_fd)  # deletes the device, and the routes through it
        self.rtnl.close()
        restore_host(self.firewall, self._restore)

    def bindings(self) -> dict[IPv6Address, IPv6Address]:
        return {IPv6Address(k): b.coa for k, b in self._bindings.items()}

    # -- the packet path ---------------------------------------------------------------

    def _outer_destination(self, pkt: bytes):
        """A packet the kernel routed to a home address: to its care-of address."""
        dst = pkt[24:40]
        if _not_unicast(dst):
            self.counters["dropped_not_unicast"] += 1
            return None
        b = self._bindings.get(dst)
        if b is None:
            self.counters["dropped_no_binding"] += 1
            return None
        return b.sockaddr

    def _accept(self, pkt: bytes, outer_source: str) -> bool:
        b = self._bindings.get(pkt[8:24])
        # RFC 6275 section 10.4.5: the outer source must be the registered CoA
        if b is None or b.coa_str != outer_source:
            self.counters["dropped_bad_source"] += 1
            return False
        return True
