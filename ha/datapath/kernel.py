"""Kernel tunnel backend: one ip6tnl device per care-of address (ip6_tunnel kernels).

Per care-of address: an ip6ip6 tunnel `dntN` (local = HA address, remote =
CoA, no encapsulation-limit option), created on first use and deleted with
its last binding. Per binding: a /128 route for the home address into that
tunnel in ROUTE_TABLE (one rule, `pref 1000 lookup 6275`) and a proxy
neighbour entry on the home link. A move is one route replace.

The ip6tnl requests (ha/net/rtnl.py) go through the same batched rtnetlink
socket as the routes; this machine has no ip6_tunnel, so the devices
themselves are exercised only in qemu.

Reverse tunnel (RFC 6275 section 10.4.5): the kernel delivers a packet to
`dntN` only if its outer source is that tunnel's remote, i.e. a registered
CoA. That the CoA is the one registered *for the inner source* is checked
by NftSourceCheck: a set of (home address . tunnel ifindex) pairs in its
own table `ip6 denali_tunnel`, and one prerouting rule dropping packets that
arrive on a `dnt*` device from any other pair. Set changes made in one
event-loop turn go to the kernel in one `nft -f -` run.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import socket
from ipaddress import IPv6Address

from ha.datapath.base import Datapath, check_unicast_global, restore_host, undo_open
from ha.net.iface import write_sysctl
from ha.net.rtnl import (ROUTE_TABLE, RTM_DELROUTE, RTM_DELRULE, RTM_NEWROUTE, RTM_NEWRULE,
                         RULE_PRIORITY, NetlinkError, RtnlBatch, ip6tnl_add_msg, link_del_msg,
                         route_msg, rule_msg)

log = logging.getLogger(__name__)

# ip6tnl devices at once. Each is a network device with its IPv6 state (some
# 45 KB of kernel memory), and a flood of new bindings from fresh care-of
# addresses would otherwise make one apiece: past the cap a binding that needs
# another tunnel fails, and the core answers 130 (ha/config/denali.spec, max_tunnels).
MAX_TUNNELS = 64


class TooManyTunnels(OSError):
    """A new care-of address would need a tunnel past max_tunnels."""


class NftSourceCheck:
    """The section 10.4.5 check for ip6tnl devices, as an nftables set and one rule."""

    TABLE = "denali_tunnel"

    def __init__(self, loop: asyncio.AbstractEventLoop, tunnel_prefix: str = "dnt"):
        self.loop = loop
        self.prefix = tunnel_prefix
        self._ops: list[str] = []
        self._waiters: list[asyncio.Future] = []
        self._scheduled = False
        self.runs = 0

    def ruleset(self) -> str:
        t = self.TABLE
        # add-then-delete: valid whether or not a leftover table exists (one transaction)
        return (f"table ip6 {t}\ndelete table ip6 {t}\n"
                f"table ip6 {t} {{\n"
                f"  set bound {{ type ipv6_addr . iface_index; }}\n"
                f"  chain reverse_tunnel {{\n"
                f"    type filter hook prerouting priority -300; policy accept;\n"
                f'    iifname "{self.prefix}*" ip6 saddr . meta iif != @bound counter drop\n'
                f"  }}\n}}\n")

    async def install(self) -> None:
        await self._nft(self.ruleset())

    async def remove(self) -> None:
        await self._nft(f"table ip6 {self.TABLE}\ndelete table ip6 {self.TABLE}\n")

    def allow(self, hoa: IPv6Address, ifindex: int) -> asyncio.Future:
        return self._queue(f"add element ip6 {self.TABLE} bound {{ {hoa} . {ifindex} }}")

    def disallow(self, hoa: IPv6Address, ifindex: int) -> asyncio.Future:
        return self._queue(f"delete element ip6 {self.TABLE} bound {{ {hoa} . {ifindex} }}")

    def _queue(self, line: str) -> asyncio.Future:
        fut = self.loop.create_future()
        self._ops.append(line)
        self._waiters.append(fut)
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(lambda: self.loop.create_task(self._flush()))
        return fut

    async def _flush(self) -> None:
        self._scheduled = False
        ops, self._ops = self._ops, []
        waiters, self._waiters = self._waiters, []
        try:
            await self._nft("\n".join(ops) + "\n")
        except OSError as e:
            for fut in waiters:
                if not fut.done():
                    fut.set_exception(e)
        else:
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    async def _nft(self, script: str) -> None:
        # in-process through libnftables: no fork per batch, and an error at once
        # (ha/net/nft.py); the set changes of one loop turn are one transaction
        from ha.net.nft import apply
        self.runs += 1
        apply(script)


class _Tunnel:
    __slots__ = ("name", "ifindex", "users")

    def __init__(self, name: str, ifindex: int):
        self.name, self.ifindex, self.users = name, ifindex, 0


class KernelDatapath(Datapath):
    """The home agent's tunnel end where the kernel has ip6_tunnel.

    It owns the ip6tnl devices (one per care-of address, counted by their
    bindings), the /128 routes into them in its own table and the one rule
    before main, the proxy entries (or, with proxy="daemon", the NS
    responder), the NA sender, the NftSourceCheck set and the MH firewall
    rule. The kernel moves the packets; nothing here reads one.
    ha/datapath/factory.py opens it when the kernel offers ip6_tunnel, the home
    agent adapter (ha/daemon/home_agent.py) drives it through the `Datapath`
    methods, and `close()` removes everything it made.
    """

    def __init__(self, home_ifindex: int, ha_address: IPv6Address, *, rtnl, na=None,
                 firewall=None, table: int = ROUTE_TABLE, rule_priority: int = RULE_PRIORITY,
                 ifindex_of=socket.if_nametoindex, restore: dict | None = None,
                 tunnel_prefix: str = "dnt", source_check: NftSourceCheck | None = None):
        self.home_ifindex = home_ifindex
        self.ha_address = ha_address
        self.rtnl = rtnl
        self.na = na
        self.firewall = firewall
        self.table = table
        self.rule_priority = rule_priority
        self._ifindex_of = ifindex_of
        self._restore = restore or {}
        self._names = (f"{tunnel_prefix}{n}" for n in itertools.count())
        self._tunnels: dict[IPv6Address, _Tunnel] = {}
        self._pending: dict[IPv6Address, asyncio.Future] = {}  # tunnels being created
        self._bindings: dict[IPv6Address, IPv6Address] = {}
        self._link_local_of = {}
        self.counters = {"tunnels_created": 0, "tunnels_deleted": 0, "tunnels_refused": 0}
        self.responder = None  # proxy="daemon": we answer NS (ha/datapath/proxy_nd.py)
        self.source_check = source_check
        self._closed = False
        self.max_tunnels = MAX_TUNNELS

    @classmethod
    async def open(cls, home_ifname: str, ha_address: IPv6Address, *, loop=None,
                   firewall: bool = True, table: int = ROUTE_TABLE,
                   rule_priority: int = RULE_PRIORITY, na_interval: float = 1.0,
                   proxy: str = "kernel", **kw) -> "KernelDatapath":
        from ha.datapath.proxy_nd import NASender
        loop = loop or asyncio.get_running_loop()
        restore = {}
        write_sysctl("net.ipv6.conf.all.forwarding", "1")
        if proxy == "kernel":
            key = f"net.ipv6.conf.{home_ifname}.proxy_ndp"
            restore[key] = write_sysctl(key, "1")
        fw = rtnl = check = None
        try:
            if firewall:
                from ha.net.firewall import Firewall
                fw = Firewall()
                fw.install()
            rtnl = RtnlBatch(loop)
            try:
                await rtnl.submit([rule_msg(RTM_DELRULE, table, rule_priority)])
            except NetlinkError:
                pass
            await rtnl.submit([rule_msg(RTM_NEWRULE, table, rule_priority)])
            check = NftSourceCheck(loop, kw.get("tunnel_prefix", "dnt"))
            await check.install()
            na = NASender(home_ifname, loop=loop, interval=na_interval)
        except BaseException:
            if check is not None:
                await check.remove()
            await undo_open(rtnl, fw, restore, table, rule_priority)
            raise
        dp = cls(socket.if_nametoindex(home_ifname), ha_address, rtnl=rtnl, na=na,
                 firewall=fw, table=table, rule_priority=rule_priority, restore=restore,
                 source_check=check, **kw)
        if proxy == "daemon":
            from ha.datapath.proxy_nd import NSResponder
            dp.responder = NSResponder(home_ifname, loop=loop, sender=na,
                                       wanted=lambda t: IPv6Address(t) in dp._bindings,
                                       counters=dp.counters)
        return dp

    async def _tunnel_to(self, coa: IPv6Address) -> _Tunnel:
        tunnel = self._tunnels.get(coa)
        if tunnel is not None:
            return tunnel
        pending = self._pending.get(coa)
        if pending is not None:  # another registration to this CoA is creating it
            return await asyncio.shield(pending)
        if len(self._tunnels) + len(self._pending) >= self.max_tunnels:
            self.counters["tunnels_refused"] += 1
            raise TooManyTunnels(errno.ENOBUFS, f"{self.max_tunnels} tunnels in use, none "
                                 f"more for care-of address {coa}")
        fut = asyncio.get_running_loop().create_future()
        self._pending[coa] = fut
        try:
            name = next(self._names)
            await self.rtnl.submit([ip6tnl_add_msg(name, self.ha_address, coa)])
            tunnel = self._tunnels[coa] = _Tunnel(name, self._ifindex_of(name))
            self.counters["tunnels_created"] += 1
            fut.set_result(tunnel)
            return tunnel
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # retrieved: waiters (if any) get it too
            raise
        finally:
            del self._pending[coa]

    def _release(self, coa: IPv6Address) -> list:
        """Drop one user of coa's tunnel; the delete request if it was the last."""
        tunnel = self._tunnels.get(coa)
        if tunnel is None:
            return []
        tunnel.users -= 1
        if tunnel.users > 0:
            return []
        del self._tunnels[coa]
        self.counters["tunnels_deleted"] += 1
        return [link_del_msg(tunnel.ifindex)]  # takes its routes with it

    async def _allow(self, hoa: IPv6Address, tunnel: _Tunnel) -> None:
        if self.source_check is not None:
            await self.source_check.allow(hoa, tunnel.ifindex)

    async def _disallow(self, hoa: IPv6Address, coa: IPv6Address) -> None:
        tunnel = self._tunnels.get(coa)
        if self.source_check is not None and tunnel is not None:
            try:
                await self.source_check.disallow(hoa, tunnel.ifindex)
            except OSError as e:  # the element was never there: nothing to undo
                log.warning("source check: %s", e)

    async def add_binding(self, hoa: IPv6Address, coa: IPv6Address,
                          link_local: IPv6Address | None = None) -> None:
        check_unicast_global(hoa)
        check_unicast_global(coa)
        tunnel = await self._tunnel_to(coa)
        tunnel.users += 1
        kernel = self.rtnl.submit([route_msg(RTM_NEWROUTE, hoa, tunnel.ifindex, self.table),
                                   *self._proxy_msgs(True, self._proxied(hoa, link_local))])
        results = await asyncio.gather(kernel, self._allow(hoa, tunnel), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            if not isinstance(results[1], BaseException):
                await self._disallow(hoa, coa)
            await self.rtnl.submit(self._release(coa))
            raise errors[0]
        self._bindings[hoa] = coa
        if self.na is not None:
            self.na.announce(hoa)

    async def move_binding(self, hoa: IPv6Address, old_coa: IPv6Address,
                           new_coa: IPv6Address) -> None:
        check_unicast_global(new_coa)
        tunnel = await self._tunnel_to(new_coa)
        tunnel.users += 1
        try:
            await asyncio.gather(
                self.rtnl.submit([route_msg(RTM_NEWROUTE, hoa, tunnel.ifindex, self.table)]),
                self._allow(hoa, tunnel))
        except BaseException:
            await self._disallow(hoa, new_coa)
            await self.rtnl.submit(self._release(new_coa))
            raise
        self._bindings[hoa] = new_coa
        await self._disallow(hoa, old_coa)
        await self.rtnl.submit(self._release(old_coa))

    async def remove_binding(self, hoa: IPv6Address, coa: IPv6Address,
                             link_local: IPv6Address | None = None) -> None:
        if self.na is not None:
            self.na.cancel(hoa)
        await self._disallow(hoa, coa)
        tunnel = self._tunnels.get(coa)
        msgs = self._proxy_msgs(False, self._unproxied(hoa))
        if tunnel is not None and tunnel.users > 1:  # else the tunnel's deletion takes the route
            msgs.insert(0, route_msg(RTM_DELROUTE, hoa, tunnel.ifindex, self.table))
        msgs += self._release(coa)
        self._bindings.pop(hoa, None)
        await self.rtnl.submit(msgs)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.responder is not None:
            self.responder.close()
        if self.na is not None:
            self.na.close()
        msgs = self._proxy_msgs(False, list(self._bindings) + self._link_locals_proxied())
        msgs += [link_del_msg(t.ifindex) for t in self._tunnels.values()]
        msgs.append(rule_msg(RTM_DELRULE, self.table, self.rule_priority))
        self.counters["tunnels_deleted"] += len(self._tunnels)
        self._tunnels.clear()
        self._bindings.clear()
        try:
            await self.rtnl.submit(msgs)
        except NetlinkError as e:
            log.warning("datapath close: %s", e)
        if hasattr(self.rtnl, "close"):
            self.rtnl.close()
        if self.source_check is not None:
            try:
                await self.source_check.remove()
            except OSError as e:
                log.warning("datapath close: %s", e)
        restore_host(self.firewall, self._restore)

    def bindings(self) -> dict[IPv6Address, IPv6Address]:
        return dict(self._bindings)
