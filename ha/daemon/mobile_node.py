"""The mobile node component: sockets and kernel around ha/core/mobile_node.py.
It runs inside denalid when the configuration says NodeConfig MN.

Thin on purpose: every decision is the core's, which takes bytes and gives
bytes (aioquic's shape); this file reads sockets, calls the core, writes
what it gives and runs its actions:

  in   RAs as ICMPv6 messages from a raw socket on the interface, with
       their hop limit (the core checks it), BAs and BRRs as whole packets
       from an AF_PACKET socket (a kernel without MIP6 drops a type 2
       routing header with segments left 1 before any socket sees it),
       the interface's carrier and global addresses as rtnetlink announces
       their changes (ha/net/link_events.py: a reassociation that takes the
       link down and up for a few milliseconds is seen), read again every
       POLL_INTERVAL from /proc/net/if_inet6 and SIOCGIFFLAGS as a safety net;
  out  the core's datagrams: BUs, whole packets built by the core, through a
       header-included raw socket bound to the interface; RSs and the NA
       back home through the ICMPv6 socket. Its actions: rtnetlink requests (ha.net.rtnl's
       builders through one RtnlBatch, never an `ip` subprocess: those block
       the event loop for milliseconds each during a handover) for addresses,
       routes and the source rule, and the user-space tunnel end.

The tunnel end is ha/net/tunnel.py's pump, as at the home agent
(ha/datapath/user.py): a TUN device (TUN_NAME) holds
the home address while away; the rule `from HoA lookup TUNNEL_TABLE` and a
default route through the TUN at metric 128 (the seed's `::/0 dev ip6tnl1
metric 128`) send the home address's traffic into it; we read each packet
and send it on `socket(AF_INET6, SOCK_RAW, 41)` bound to the care-of
address, which adds the outer header CoA -> HA. Packets from the home agent
on that socket are written back into the TUN when the outer source is the
home agent and the inner destination the home address. The BU and tunnel
sockets are bound to the interface, so the default route through the TUN
never catches them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from ipaddress import IPv6Network

from ha.core import mobile_node as core
from ha.daemon.console import mip6d_address
from ha.net.iface import interface_running, usable_global_addresses

log = logging.getLogger("denali.mn")

POLL_INTERVAL = 1.0  # seconds between address / carrier polls (events come at once)
TUN_NAME = "ip6tnl1"  # the name the seed's `ifconfig` shows on the mobile node
TUNNEL_TABLE = 6276
RULE_PRIORITY = 1001
TUNNEL_METRIC = 128

def format_bul(entries: list[dict], ifname: str) -> str:
    """`bul` as mip6d prints it (the seed's listing), one block per entry."""
    lines = []
    for e in entries:
        coa = mip6d_address(e["coa"]) if e["coa"] else "-"
        delay = e["refresh_delay"] or 0.0  # seconds from the BU to its refresh
        after = e["refresh_in"] or 0.0
        lines += [
            f"Home address    {mip6d_address(e['hoa'])}",
            f"Care-of address {coa}",
            f"CN address      {mip6d_address(e['ha'])}",
            f" lifetime = {e['lifetime']},  delay = {int(delay * 1000)}",
            f" ack {e['ack']}",
            f" dev {ifname} last_coa "
            f"{mip6d_address(e['last_coa']) if e['last_coa'] else '-'}",
            f" lifetime {e['remaining']} / {e['granted']} seq {e['sequence']} "
            f"resend {e['resend']} delay {int(delay)}(after {int(after)}s) "
            f"expires {e['remaining']}",
            f" state {e['state']} location {e['location']}"
            + (f" status {e['last_status']}" if e["last_status"] is not None else ""),
        ]
    return "\n".join(lines)


class MobileNodeService:
    """The daemon component for NodeConfig MN: start(), reload(), stop()."""

    def __init__(self, settings, *, clock=time.monotonic, wall_clock=time.time):
        mns = settings.mobile_node
        self.settings = settings
        self.clock = clock
        self.wall_clock = wall_clock  # RFC 4285 timestamps are wall-clock time
        self.ifname = mns.interface
        self.config = core.MobileNodeConfig(
            mns.home_address, mns.home_agent, mns.interface,
            secret=getattr(mns, "secret", None),
            optimistic_handoff=getattr(mns, "optimistic_handoff", False))
        self.optimistic_dad = getattr(mns, "optimistic_dad", False)
        import random
        # the first sequence number: section 11.7.1 leaves it open, and a
        # random one avoids a 135 after a restart
        self.node = core.MobileNode(self.config, rng=random.SystemRandom())
        self.hoa = mns.home_address.ip
        self.loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._poller: asyncio.TimerHandle | None = None
        self._ra = self._ba = self._raw = self._watch = None
        self._tun_fd: int | None = None
        self._pump = None  # ha.net.tunnel.TunnelPump, from start() on
        self._rtnl = None  # ha.net.rtnl.RtnlBatch, from start() on
        self._pending: set[asyncio.Future] = set()  # netlink requests not yet acked
        self._tunnel: core.TunnelUp | None = None
        self._running: bool | None = None
        self.counters = dict.fromkeys(("tunnelled_packets", "decapsulated_packets",
                                       "dropped_not_home_address", "dropped_bad_source",
                                       "send_errors", "netlink_errors"), 0)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        from ha.net.iface import interface_mac, interface_mtu, open_tun, write_sysctl
        from ha.net.rtnl import RtnlBatch, link_up_msg
        from ha.net.sockets import BA_FILTER, ICMPv6Socket, PacketSocket
        from ha.net.tunnel import OUTER_HEADER, TunnelPump

        self.loop = loop = asyncio.get_running_loop()
        self.ifindex = socket.if_nametoindex(self.ifname)
        self._rtnl = RtnlBatch(loop)
        self.mac = interface_mac(self.ifname)
        self.config.link_layer_address = self.mac  # for the NA back home (11.5.4)
        # a host that learns its routers and CoA from RAs (the seed's accept_ra=1)
        write_sysctl(f"net.ipv6.conf.{self.ifname}.accept_ra", "1")
        if self.optimistic_dad:
            # RFC 4429: a new care-of address is usable while its DAD runs
            for key in ("optimistic_dad", "use_optimistic"):
                err = write_sysctl(f"net.ipv6.conf.{self.ifname}.{key}", "1")
                if err:
                    log.warning("optimistic DAD: %s (the care-of address waits for DAD)", err)
        from ha.net.link_events import LinkWatcher
        self._watch = LinkWatcher(self.ifindex, self._on_link, self._on_addresses,
                                  self._on_overrun)
        loop.add_reader(self._watch.fileno(), self._on_watch)
        self._ra = ICMPv6Socket(self.ifname, (134,), self._on_icmp)
        loop.add_reader(self._ra.fileno(), self._ra.read_ready)
        self._ba = PacketSocket(BA_FILTER, self._on_mh_packet, ifname=self.ifname, burst=64)
        loop.add_reader(self._ba.fileno(), self._on_ba_socket)
        raw = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.ifname.encode())
        raw.setblocking(False)
        self._raw = raw
        fd, name = open_tun(TUN_NAME)
        self._tun_fd, self.tun_name = fd, name
        # not a link: no link-local address, so no RS or MLD from it
        write_sysctl(f"net.ipv6.conf.{name}.addr_gen_mode", "1")
        self.tun_ifindex = socket.if_nametoindex(name)
        mtu = max(1280, interface_mtu(self.ifname) - OUTER_HEADER)
        await self._rtnl.submit([link_up_msg(self.tun_ifindex, mtu)])
        self._pump = TunnelPump(loop, fd, outer_destination=self._outer_destination,
                                accept=self._accept, counters=self.counters)
        self._poll()  # the addresses there are now, and the carrier's state
        if self._running:
            self.node.link_up(self._now())  # ask for RAs rather than wait for one
        self._service()
        log.info("mobile node on %s: home address %s, home agent %s", self.ifname,
                 self.config.home_address, self.config.home_agent)

    async def reload(self, settings) -> None:
        log.warning("mobile node settings change needs a restart")

    async def stop(self) -> None:
        loop = self.loop or asyncio.get_running_loop()
        for h in (self._timer, self._poller):
            if h is not None:
                h.cancel()
        if self._tunnel is not None:
            self._tunnel_down()
        if self._pending:  # let the kernel finish what we asked before the socket goes
            await asyncio.wait(list(self._pending), timeout=5)
        for sock in (self._ra, self._ba, self._watch):
            if sock is not None:
                loop.remove_reader(sock.fileno())
                sock.close()
        if self._raw is not None:
            self._raw.close()
        if self._pump is not None:
            self._pump.close()
            self._pump = None
        if self._tun_fd is not None:
            os.close(self._tun_fd)  # deletes the device and every route through it
            self._tun_fd = None
        if self._rtnl is not None:
            self._rtnl.close()
            self._rtnl = None
        log.info("mobile node stopped")

    # ------------------------------------------------------------- inputs

    def _now(self) -> float:
        """The monotonic time for the core, telling it the wall clock too
        (which NTP may step at any time) for its RFC 4285 timestamps."""
        now = self.clock()
        self.node.set_wall_clock(self.wall_clock(), now)
        return now

    def _on_link(self, running: bool) -> None:
        if running != self._running:
            was, self._running = self._running, running
            if was is not None:
                log.info("md: link %s", "up" if running else "down")
                (self.node.link_up if running else self.node.link_down)(self._now())

    def _on_addresses(self) -> None:
        self.node.set_addresses(usable_global_addresses(self.ifname), self._now())

    def _on_overrun(self) -> None:
        log.debug("md: netlink events lost, reading the interface again")
        self._on_link(interface_running(self.ifname))
        self._on_addresses()

    def _on_watch(self) -> None:
        self._watch.read_ready()
        self._service()

    def _poll(self) -> None:
        self._on_link(interface_running(self.ifname))
        self._on_addresses()
        self._service()
        self._poller = self.loop.call_later(POLL_INTERVAL, self._poll)

    def _on_icmp(self, data: bytes, src, dst, hop_limit) -> None:
        self.node.receive_icmpv6(data, src, hop_limit, self._now())
        self._service()

    def _on_ba_socket(self) -> None:
        self._ba.read_ready()
        self._service()

    def _on_mh_packet(self, data: bytes, _ifname: str) -> None:
        self.node.receive_packet(data, self._now())

    # ------------------------------------------------------------ outputs

    def _service(self) -> None:
        """Run every action the core decided, send its datagrams, then re-arm
        its timer. Kernel work goes first: the netlink batch of this turn then
        follows in order, and the datagrams need none of it (the BU socket is
        header-included and bound to the interface)."""
        while (action := self.node.next_action()) is not None:
            try:
                self._run(action)
            except Exception as e:  # one failed effect must not stop the node
                log.error("%s failed: %s", type(action).__name__, e,
                          exc_info=log.isEnabledFor(logging.DEBUG))
        for d in self.node.datagrams_to_send(self.clock()):
            self._send(d)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        when = self.node.get_timer()
        if when is not None and self.loop is not None:
            self._timer = self.loop.call_later(max(0.0, when - self.clock()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.node.handle_timer(self._now())
        self._service()

    def _run(self, a) -> None:
        if isinstance(a, core.HomeAddressOnLink):
            from ha.net.rtnl import RTM_DELADDR, RTM_NEWADDR, address_msg
            log.info("md: %s, %s %s %s", "at home" if a.present else "away from home",
                     a.address, "on" if a.present else "off", self.ifname)
            self._kernel(address_msg(RTM_NEWADDR if a.present else RTM_DELADDR, a.address.ip,
                                     a.address.network.prefixlen, self.ifindex))
        elif isinstance(a, core.TunnelUp):
            self._tunnel_up(a)
        elif isinstance(a, core.TunnelDown):
            self._tunnel_down()
        elif isinstance(a, core.ForgetRouter):
            self._forget_router(a)

    def _send(self, d: core.Datagram) -> None:
        log.info("%s", d.what)
        if d.icmpv6:  # RS, NA: the ICMPv6 socket on our interface
            if not self._ra.send(d.data, d.destination, src=d.source):
                self.counters["send_errors"] += 1
            return
        try:  # a BU: the whole packet, header included
            self._raw.sendto(d.data, (str(d.destination), 0))
        except OSError as e:
            self.counters["send_errors"] += 1
            log.warning("%s not sent: %s", d.what, e)

    def _kernel(self, *msgs, quiet: bool = False) -> None:
        """Queue rtnetlink requests for this loop turn's batch, one future each,
        so a request that fails (a route the kernel already removed) costs only
        itself. A failure is logged at debug, as the `ip` calls' were, and
        counted in netlink_errors unless `quiet` (a delete that may find nothing)."""
        done = self._kernel_done_quiet if quiet else self._kernel_done
        for msg in msgs:
            fut = self._rtnl.submit([msg])
            self._pending.add(fut)
            fut.add_done_callback(done)

    def _kernel_done(self, fut: asyncio.Future, count: bool = True) -> None:
        self._pending.discard(fut)
        if fut.cancelled():
            return
        e = fut.exception()
        if e is not None:
            self.counters["netlink_errors"] += count
            log.debug("netlink: %s", e)

    def _kernel_done_quiet(self, fut: asyncio.Future) -> None:
        self._kernel_done(fut, count=False)

    def _forget_router(self, a: core.ForgetRouter) -> None:
        from ha.net.iface import default_gateways
        from ha.net.rtnl import RTM_DELADDR, RTM_DELROUTE, address_msg, prefix_route_msg
        log.info("md: router %s lost%s", a.router,
                 (", prefixes " + " ".join(map(str, a.prefixes))) if a.prefixes else "")
        default = IPv6Network("::/0")
        self._kernel(prefix_route_msg(RTM_DELROUTE, default, self.ifindex, gateway=a.router))
        gateways = default_gateways(self.ifindex) if a.prefixes else []
        for prefix in a.prefixes:
            self._kernel(prefix_route_msg(RTM_DELROUTE, prefix, self.ifindex))
            # a gateway inside a prefix that is gone is not on this link any more
            for gw in gateways:
                if gw in prefix:
                    self._kernel(prefix_route_msg(RTM_DELROUTE, default, self.ifindex,
                                                  gateway=gw))
            for addr in usable_global_addresses(self.ifname):
                if addr in prefix and addr != self.hoa:
                    self._kernel(address_msg(RTM_DELADDR, addr, prefix.prefixlen,
                                             self.ifindex))

    # ------------------------------------------------------------- tunnel

    def _tunnel_requests(self, a: core.TunnelUp, add: bool) -> list:
        """The home address on the TUN, `from HoA lookup TUNNEL_TABLE` with a
        default route there, and the seed's `::/0 dev ip6tnl1 metric 128`."""
        from ha.net.rtnl import (RTM_DELADDR, RTM_DELROUTE, RTM_DELRULE, RTM_NEWADDR,
                                 RTM_NEWROUTE, RTM_NEWRULE, address_msg, prefix_route_msg,
                                 source_rule_msg)
        default, tun = IPv6Network("::/0"), self.tun_ifindex
        if add:
            return [address_msg(RTM_NEWADDR, a.home_address, 128, tun),
                    prefix_route_msg(RTM_NEWROUTE, default, tun, table=TUNNEL_TABLE),
                    source_rule_msg(RTM_NEWRULE, a.home_address, TUNNEL_TABLE, RULE_PRIORITY),
                    prefix_route_msg(RTM_NEWROUTE, default, tun, metric=TUNNEL_METRIC)]
        return [prefix_route_msg(RTM_DELROUTE, default, tun, metric=TUNNEL_METRIC),
                source_rule_msg(RTM_DELRULE, a.home_address, TUNNEL_TABLE, RULE_PRIORITY),
                prefix_route_msg(RTM_DELROUTE, default, tun, table=TUNNEL_TABLE),
                address_msg(RTM_DELADDR, a.home_address, 128, tun)]

    def _tunnel_up(self, a: core.TunnelUp) -> None:
        from ha.net.tunnel import open_tunnel_socket
        if self._tunnel is not None:
            self._tunnel_down()
        self._ha_sockaddr = (str(a.home_agent), 0)
        self._ha_str = socket.inet_ntop(socket.AF_INET6, a.home_agent.packed)
        self._pump.attach(open_tunnel_socket(str(a.care_of_address), self.ifname))
        self._tunnel = a
        from ha.net.rtnl import RTM_DELRULE, source_rule_msg
        # a leftover rule (a crashed run) would make the add fail: delete it first
        self._kernel(source_rule_msg(RTM_DELRULE, a.home_address, TUNNEL_TABLE, RULE_PRIORITY),
                     quiet=True)
        self._kernel(*self._tunnel_requests(a, True))
        log.info("tunnel up: %s via %s -> %s", a.home_address, a.care_of_address, a.home_agent)

    def _tunnel_down(self) -> None:
        a, self._tunnel = self._tunnel, None
        if self._pump is not None:
            self._pump.detach()
        if a is None:
            return
        self._kernel(*self._tunnel_requests(a, False))
        log.info("tunnel down")

    def _outer_destination(self, pkt: bytes):
        """A packet the kernel routed into the TUN: from the home address, to the HA."""
        if self._tunnel is None or pkt[8:24] != self.hoa.packed:
            self.counters["dropped_not_home_address"] += 1
            return None
        return self._ha_sockaddr

    def _accept(self, pkt: bytes, outer_source: str) -> bool:
        """From the home agent, for the home address: the inner packet goes to the stack."""
        if outer_source != self._ha_str or pkt[24:40] != self.hoa.packed:
            self.counters["dropped_bad_source"] += 1
            return False
        return True

    # ------------------------------------------------------------ console

    def register_commands(self, console) -> None:
        console.register("bul", self.cmd_bul, "binding update list (bul json for machines)")
        console.register("md", self.cmd_md, "movement detection: routers, location, CoA")
        console.register("stats", self.cmd_stats, "counters")

    def cmd_bul(self, args: list[str]) -> str:
        entries = self.node.binding_update_list(self.clock())
        if args[:1] == ["json"]:
            import json
            return json.dumps(entries)
        return format_bul(entries, self.ifname)

    def cmd_md(self, args: list[str]) -> str:
        now = self.clock()
        n = self.node
        info = {"location": n.location.value, "care_of_address":
                str(n.care_of_address) if n.care_of_address else None,
                "default_router": str(n.default_router) if n.default_router else None,
                "routers": [{"address": str(r.address), "prefixes": sorted(map(str, r.prefixes)),
                             "interval": r.interval, "lost_in": round(r.deadline - now, 3)}
                            for r in n.routers.values()]}
        if args[:1] == ["json"]:
            import json
            return json.dumps(info)
        lines = [f"location {info['location']} coa {info['care_of_address'] or '-'} "
                 f"default router {info['default_router'] or '-'}"]
        lines += [f" router {r['address']} {' '.join(r['prefixes'])} lost in {r['lost_in']}s"
                  for r in info["routers"]]
        return "\n".join(lines)

    def cmd_stats(self, args: list[str]) -> str:
        counters = {**self.node.counters, **self.counters}
        if args[:1] == ["json"]:
            import json
            return json.dumps(counters)
        width = max(map(len, counters))
        return "\n".join(f"{k:<{width}} {v}" for k, v in sorted(counters.items()))


# ------------------------------------------------------------------ standalone
