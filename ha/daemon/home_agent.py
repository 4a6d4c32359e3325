"""The home agent component: sockets and the datapath around ha/core/home_agent.py.

Thin on purpose: every protocol decision is HomeAgentCore's. What this file
does is I/O only:

  in   whole packets from the AF_PACKET tap (Mobility Header, Home Address
       option), ICMPv6 from a raw socket on the home link (NS/NA for DAD, RAs
       for the home agent list) and from one on any link (DHAAD requests);
  out  the core's datagrams through the header-included raw socket;
  run  the core's actions: AddBinding/MoveBinding/DeleteBinding on the
       datapath (each in a task, so that the datapath can batch them), and
       JoinGroup/LeaveGroup on the home link socket; each outcome goes back
       to the core (action_done / action_failed);
  time one timer, armed at core.get_timer() after every call into the core.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from ipaddress import IPv6Address, IPv6Network

from ha.core import registration as reg
from ha.core.home_agent import HomeAgentCore, HomeAgentSettings, JoinGroup, LeaveGroup, bu_flags
from ha.daemon.console import mip6d_address
from ha.wire import auth as rfc4285
from ha.net.iface import IFA_F_DEPRECATED, SCOPE_GLOBAL, interface_addresses

log = logging.getLogger("denali.ha")

WAIT_POLL = 0.5  # seconds between looks at a home interface that is not there yet


# the rate limits of new bindings, passed to the core as they are named in Settings
_LIMITS = ("new_bindings_per_prefix_rate", "new_bindings_per_prefix_burst",
           "new_bindings_rate", "new_bindings_burst", "packets_per_source_rate",
           "packets_per_source_burst")


class HomeAgent:
    """The home agent service of denalid on one home interface.

    Owns the sockets, the datapath and the core's timer; Daemon (ha/daemon/
    service.py) starts, reloads and stops it, and the console calls its
    cmd_* methods. The binding cache and the counters live in the core.
    """

    def __init__(self, settings, *, backend: str = "auto", firewall: bool = True,
                 clock=time.monotonic, rng: random.Random | None = None,
                 wall_clock=time.time,
                 prefix_lifetimes: dict | None = None, state_dir: str | None = None):
        self.settings = settings
        self.state_dir = state_dir
        self.prefix_lifetimes = prefix_lifetimes or {}  # from the RA sender's configuration
        self.backend = backend
        self.firewall = firewall
        self.clock = clock
        self.wall_clock = wall_clock  # RFC 4285 timestamps are wall-clock time
        self.rng = rng or random.Random()
        self.ifname = settings.ha_interface
        self.ha_address: IPv6Address | None = None
        self.prefixes: list[IPv6Network] = []
        self.core: HomeAgentCore | None = None
        self.datapath = None
        self._tap = self._raw = self._link = self._anycast = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._tasks: set[asyncio.Task] = set()
        self._store = None
        self._waiter: asyncio.Task | None = None
        self._waiting_for: str | None = None
        self._saved_generation = 0
        self._save_handle: asyncio.TimerHandle | None = None

    # the core's state, for the console and the daemon's status
    @property
    def cache(self):
        return self.core.cache

    @property
    def stats(self):
        return self.core.stats

    @property
    def home_agents(self):
        return self.core.home_agents

    # ------------------------------------------------------------ lifecycle

    @property
    def state(self) -> str:
        """What `status` shows: up, or what it is waiting for."""
        if self.core is not None:
            return "up"
        return f"waiting for {self.ifname}: {self._waiting_for or 'starting'}"

    async def start(self) -> None:
        """Serve now if the home interface is ready, else as soon as it is.

        A radio whose driver is late (or a card missing at boot) must not make
        the daemon exit and the supervisor restart it forever: like the RA
        sender, the home agent says once what it waits for and polls.
        """
        why = self._not_ready()
        if why is None:
            await self._serve()
            return
        self._waiting_for = why
        log.warning("home interface %s %s, waiting for it", self.ifname, why)
        self._waiter = asyncio.get_running_loop().create_task(self._wait_and_serve())

    def _not_ready(self) -> str | None:
        import socket
        try:
            socket.if_nametoindex(self.ifname)
        except OSError:
            return "does not exist"
        if not any(a.scope == SCOPE_GLOBAL and a.usable for a in interface_addresses(self.ifname)):
            return "has no global IPv6 address"  # or only a tentative one, still in DAD
        return None

    async def _wait_and_serve(self) -> None:
        while (why := self._not_ready()) is not None:
            if why != self._waiting_for:
                log.warning("home interface %s %s, waiting for it", self.ifname, why)
                self._waiting_for = why
            await asyncio.sleep(WAIT_POLL)
        try:
            await self._serve()
        except Exception as e:
            log.error("home agent cannot start on %s: %s", self.ifname, e)
            self._waiting_for = f"start failed: {e}"

    async def _serve(self) -> None:
        import socket
        from ha.datapath.factory import open_datapath
        from ha.net.sockets import ICMPv6Socket, PacketTap, RawSender

        loop = asyncio.get_running_loop()
        self._resolve_addresses()
        self.core = HomeAgentCore(self._core_settings(socket.if_nametoindex(self.ifname)),
                                  capacity=self.settings.capacity, rng=self.rng)
        from ha.daemon.binding_store import BindingStore
        from ha.datapath.leftovers import clean_leftovers
        self._store = BindingStore(self.state_dir, clock=self.clock)
        saved = self._store.load()
        # a killed predecessor's tunnels and proxy entries: keep only what comes back
        clean_leftovers(self.ifname, {b.hoa for b in saved})
        self.datapath = await open_datapath(self.ifname, self.ha_address, backend=self.backend,
                                            firewall=self.firewall,
                                            proxy=self.settings.proxy_nd)
        if hasattr(self.datapath, "max_tunnels"):  # one device per care-of address
            self.datapath.max_tunnels = getattr(self.settings, "max_tunnels",
                                                self.datapath.max_tunnels)
        self._raw = RawSender()
        self._tap = PacketTap(self._on_tap_packet)
        loop.add_reader(self._tap.fileno(), self._tap.read_ready)
        # the home link: NS/NA for DAD, RAs for the home agent list
        self._link = ICMPv6Socket(self.ifname, (134, 135, 136), self._on_icmpv6)
        loop.add_reader(self._link.fileno(), self._link.read_ready)
        # DHAAD requests come in on whatever link faces the mobile node
        self._anycast = ICMPv6Socket(None, (144,), self._on_icmpv6)
        loop.add_reader(self._anycast.fileno(), self._anycast.read_ready)
        from ha.core.discovery import home_agents_anycast
        for prefix in self.prefixes:
            try:
                self._link.join_anycast(home_agents_anycast(prefix))
            except OSError as e:
                log.warning("cannot join the home agents anycast address of %s: %s", prefix, e)
        if saved:
            n = self.core.restore(saved, self.clock())
            log.warning("restored %d of %d saved bindings from %s", n, len(saved),
                        self._store.path)
            self._saved_generation = -1  # write back what was kept
        self._flush()
        log.info("home agent on %s, address %s, serving %s", self.ifname, self.ha_address,
                 ", ".join(map(str, self.prefixes)))

    def _resolve_addresses(self) -> None:
        globals_ = [a for a in interface_addresses(self.ifname) if a.scope == SCOPE_GLOBAL]
        if not globals_:
            raise RuntimeError(f"home interface {self.ifname} has no global IPv6 address")
        # a renumbered link keeps its old address deprecated for a while: not that one
        globals_.sort(key=lambda a: bool(a.flags & IFA_F_DEPRECATED))
        self.ha_address = globals_[0].address
        if self.settings.served_prefixes:
            self.prefixes = list(self.settings.served_prefixes)
        else:
            # the served home prefix is the /64 of the interface's global address
            self.prefixes = [IPv6Network(f"{self.ha_address}/64", strict=False)]

    def address_gone(self) -> bool:
        """The address it serves from has left the home link (a retired prefix ran out)."""
        if self.core is None or self.ha_address is None:
            return False
        return all(a.address != self.ha_address for a in interface_addresses(self.ifname))

    def _follow_prefixes(self) -> None:
        """New served prefixes (a renumbered home link, ha/config/pd.py) on reload.

        The home agent's own address stays the one it started with: the old
        one is kept on the link (deprecated) until its prefix runs out, and a
        BU to the new one is served too (it is among the interface's addresses).
        """
        from ha.core.discovery import home_agents_anycast
        want = list(self.settings.served_prefixes)
        if not want or want == self.prefixes:
            return
        for prefix in (p for p in want if p not in self.prefixes):
            try:
                self._link.join_anycast(home_agents_anycast(prefix))
            except OSError as e:
                log.warning("cannot join the home agents anycast address of %s: %s", prefix, e)
        log.warning("home prefixes now %s (were %s)", ", ".join(map(str, want)),
                    ", ".join(map(str, self.prefixes)))
        self.prefixes = want

    def _core_settings(self, ifindex: int) -> HomeAgentSettings:
        s = self.settings
        ours = tuple(a.address for a in interface_addresses(self.ifname))
        rules = reg.HomeAgentConfig(
            served_prefixes=tuple(self.prefixes), ha_addresses=(self.ha_address, *ours),
            max_binding_lifetime=s.max_binding_lifetime, acl_default_allow=s.acl_default_allow,
            acl=dict(s.acl), dad_enabled=s.dad, home_agent=True)
        every = self.prefix_lifetimes.get(None)  # radvd's `prefix ::/64`
        lifetimes = {p: v for p in self.prefixes
                     if (v := self.prefix_lifetimes.get(p, every)) is not None}
        # section 10.3.1: no binding outlives the valid lifetime of its home prefix
        rules.prefix_valid_lifetime = {p: valid for p, (valid, _) in lifetimes.items()
                                       if valid != 0xFFFFFFFF}
        return HomeAgentSettings(
            ha_address=self.ha_address, home_ifindex=ifindex, rules=rules,
            prefix_lifetimes=lifetimes, send_mob_pfx_advs=s.send_mob_pfx_advs,
            min_mob_pfx_adv_interval=getattr(s, "min_mob_pfx_adv_interval", 600),
            max_mob_pfx_adv_interval=getattr(s, "max_mob_pfx_adv_interval", 86400),
            auth=dict(getattr(s, "auth", {})),
            ipsec=dict(getattr(s, "ipsec", {})),
            tunnel_during_dad=getattr(s, "tunnel_during_dad", False),
            replay_window=getattr(s, "replay_window", rfc4285.DEFAULT_REPLAY_WINDOW),
            **{k: getattr(s, k) for k in _LIMITS if hasattr(s, k)})

    async def reload(self, settings) -> None:
        self.settings = settings
        if settings.ha_interface != self.ifname:
            log.warning("home interface change (%s -> %s) needs a restart",
                        self.ifname, settings.ha_interface)
        if self.core is None:
            return  # still waiting for the interface: _serve() reads the new settings
        self._follow_prefixes()
        self.core.reload(self._core_settings(self.core.settings.home_ifindex), self.clock())
        self.core.cache.capacity = getattr(settings, "capacity", self.core.cache.capacity)
        if hasattr(self.datapath, "max_tunnels"):
            self.datapath.max_tunnels = getattr(settings, "max_tunnels",
                                                self.datapath.max_tunnels)
        self._flush()  # unsolicited MPAs when the home prefixes changed
        log.info("home agent configuration reloaded")

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._waiter is not None:
            self._waiter.cancel()
        if self._timer:
            self._timer.cancel()
        for t in list(self._tasks):
            t.cancel()
        for sock in (self._tap, self._link, self._anycast):
            if sock is not None:
                loop.remove_reader(sock.fileno())
        if self.core is not None:
            # every binding torn down: routes, proxy entries, tunnels (section 10.3.2 effects)
            self.core.stop(self.clock())
            while (a := self.core.next_action()) is not None:
                if isinstance(a, reg.DeleteBinding) and self.datapath is not None:
                    try:
                        await self.datapath.remove_binding(a.hoa, a.coa)
                    except Exception as e:
                        log.warning("removing binding %s: %s", a.hoa, e)
        if self._save_handle is not None:
            self._save_handle.cancel()
        if self._store is not None:
            self._store.clear()  # torn down: nothing for a successor to restore
        if self.datapath is not None:
            await self.datapath.close()
        for sock in (self._tap, self._link, self._anycast, self._raw):
            if sock is not None:
                sock.close()
        log.info("home agent stopped")

    # ------------------------------------------------------------ receive

    def _on_tap_packet(self, data: bytes, ifname: str) -> None:
        self.core.receive_packet(data, 0, self.clock(), self.wall_clock())
        self._flush()

    def _on_icmpv6(self, data: bytes, src, dst, hop_limit) -> None:
        self.core.receive_icmpv6(data, src, dst, hop_limit, self.clock())
        self._flush()

    # ------------------------------------------------------------ effects

    def _flush(self) -> None:
        """Run what the core asked for, send what it wrote, re-arm its timer."""
        core = self.core
        while (a := core.next_action()) is not None:
            if isinstance(a, JoinGroup):
                try:
                    self._link.join(a.group)
                except OSError as e:
                    core.action_failed(a, e, self.clock())
                else:
                    core.action_done(a, self.clock())
            elif isinstance(a, LeaveGroup):
                try:
                    self._link.leave(a.group)
                except OSError as e:
                    log.debug("leaving %s: %s", a.group, e)
            else:
                task = asyncio.get_running_loop().create_task(self._run(a))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        for d in core.datagrams_to_send(self.clock()):
            self._raw.send(d.data, d.dst, d.ifindex)
        self._arm_timer()
        if core.generation != self._saved_generation and self._save_handle is None \
                and self._store is not None:
            self._save_handle = asyncio.get_running_loop().call_later(
                self._store.next_delay(), self._save)

    def _save(self) -> None:
        self._save_handle = None
        self._saved_generation = self.core.generation
        self._store.save(self.core.registered())

    async def _run(self, a) -> None:
        dp = self.datapath
        try:
            if isinstance(a, reg.AddBinding):
                await dp.add_binding(a.hoa, a.coa, a.link_local)
            elif isinstance(a, reg.MoveBinding):
                await dp.move_binding(a.hoa, a.old_coa, a.new_coa)
            elif isinstance(a, reg.DeleteBinding):
                await dp.remove_binding(a.hoa, a.coa, a.link_local)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.core.action_failed(a, e, self.clock())
        else:
            self.core.action_done(a, self.clock())
        self._flush()

    # ------------------------------------------------------------ timer

    def _arm_timer(self) -> None:
        when = self.core.get_timer()
        if when == self._timer_at and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = when
        if when is not None:
            delay = max(0.0, when - self.clock())
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self.core.handle_timer(self.clock())
        self._flush()

    # ------------------------------------------------------------ console

    def register_commands(self, console) -> None:
        for name, handler, text in (
                ("bc", self.cmd_bc, "binding cache (bc json for machines)"),
                ("bc add", self.cmd_bc_add, "bc add hoa X coa Y lifetime N"),
                ("bc del", self.cmd_bc_del, "bc del hoa X"),
                ("hal", self.cmd_hal, "home agent list"),
                ("pl", self.cmd_pl, "prefix list"),
                ("stats", self.cmd_stats, "counters")):
            console.register(name, self._when_serving(handler), text)

    def _when_serving(self, handler):
        def run(args):
            if self.core is None:
                from ha.daemon.console import ConsoleError
                raise ConsoleError(f"home agent not serving yet: {self.state}")
            return handler(args)
        return run

    def cmd_bc(self, args: list[str]) -> str:
        now = self.clock()
        if args[:1] == ["json"]:
            import json
            return json.dumps([{
                "hoa": str(b.hoa), "coa": str(b.coa), "status": b.state.value,
                "flags": bu_flags(b), "local": str(b.local or self.ha_address),
                "lifetime": int(b.remaining(now)), "granted": b.lifetime,
                "seq": b.sequence if b.sequence is not None else b.pending_sequence,
            } for b in self.cache])
        lines = []
        for b in self.cache:
            seq = b.sequence if b.sequence is not None else b.pending_sequence
            lines += [
                f"hoa {mip6d_address(b.hoa)} status {b.state.value}",
                f" coa {mip6d_address(b.coa)} flags {bu_flags(b)}",
                f" local {mip6d_address(b.local or self.ha_address)}",
                f" lifetime {int(b.remaining(now))} / {b.lifetime} seq {seq} unreach 0",
            ]
        return "\n".join(lines)

    def _admin_args(self, args: list[str], need: tuple[str, ...]) -> dict:
        from ha.daemon.console import ConsoleError
        if len(args) % 2:
            raise ConsoleError("arguments come in pairs: " + " ".join(f"{k} X" for k in need))
        kv = dict(zip(args[::2], args[1::2]))
        missing = [k for k in need if k not in kv]
        if missing:
            raise ConsoleError("missing " + ", ".join(missing))
        try:
            return {k: (int(v) if k == "lifetime" else IPv6Address(v)) for k, v in kv.items()}
        except ValueError as e:
            raise ConsoleError(str(e)) from None

    def cmd_bc_add(self, args: list[str]) -> str:
        kv = self._admin_args(args, ("hoa", "coa", "lifetime"))
        reason = self.core.admin_add(kv["hoa"], kv["coa"], kv["lifetime"], self.clock())
        self._flush()
        return reason

    def cmd_bc_del(self, args: list[str]) -> str:
        kv = self._admin_args(args, ("hoa",))
        reason = self.core.admin_delete(kv["hoa"], self.clock())
        self._flush()
        return reason

    def cmd_hal(self, args: list[str]) -> str:
        now = self.clock()
        lines = [f"{mip6d_address(self.ha_address)} (this node)"]
        for e in self.home_agents:
            lines.append(f"{mip6d_address(e.link_local)} pref {e.preference} lifetime "
                         f"{max(0, int(e.expires_at - now))} "
                         + " ".join(mip6d_address(a) for a in e.addresses))
        return "\n".join(lines)

    def cmd_pl(self, args: list[str]) -> str:
        return "\n".join(f"{p} dev {self.ifname}" for p in self.prefixes)

    def cmd_stats(self, args: list[str]) -> str:
        counters = dict(self.stats)
        counters["bindings"] = len(self.cache)
        if self.datapath is not None:
            counters.update({f"datapath {k}": v for k, v in self.datapath.counters.items()})
        if args[:1] == ["json"]:
            import json
            return json.dumps(counters)
        width = max(map(len, counters))
        return "\n".join(f"{k:<{width}} {v}" for k, v in sorted(counters.items()))
