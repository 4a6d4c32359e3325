"""The home agent component: wire in, rules, effects out.

This is the adapter around the sans-I/O core. It reads packets from the
sockets in ha/net/sockets.py, decodes them with the codecs, asks
ha/core/registration.py what to do, runs the decided actions on the datapath and
sends the Binding Acknowledgement. It holds no protocol rule of its own: a
question about a BU field belongs in ha/core/registration.py.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from ipaddress import IPv6Address, IPv6Network

from ha.core import registration as reg
from ha.core.binding_cache import BindingCache, BindingState
from ha.daemon.console import mip6d_address
from ha.net.iface import SCOPE_GLOBAL, interface_addresses
from ha.wire.errors import CodecError

log = logging.getLogger("denali.ha")

MH = 135
ICMPV6 = 58



class HomeAgent:
    """Serves home registrations on one home interface."""

    def __init__(self, settings, *, backend: str = "auto", firewall: bool = True,
                 clock=time.monotonic, rng: random.Random | None = None):
        self.settings = settings
        self.backend = backend
        self.firewall = firewall
        self.clock = clock
        self.rng = rng or random.Random()
        self.cache = BindingCache(settings.capacity)
        self.stats: Counter = Counter()
        self.config: reg.HomeAgentConfig | None = None
        self.ifname = settings.ha_interface
        self.ha_address: IPv6Address | None = None
        self.prefixes: list[IPv6Network] = []
        self.datapath = None
        self._tap = self._raw = self._link = self._anycast = self._dad = None
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task] = set()
        from ha.core.error_limits import ErrorLimiter
        self._errors = ErrorLimiter()
        self._ours: frozenset = frozenset()
        from ha.core.discovery import HomeAgentList
        self.home_agents = HomeAgentList()

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        from ha.net.dad import DADRunner
        from ha.datapath.factory import open_datapath
        from ha.net.sockets import ICMPv6Socket, PacketTap, RawSender

        loop = asyncio.get_running_loop()
        self._resolve_addresses()
        self.config = self._make_config()
        self._ours = frozenset(self.config.ha_addresses)
        self.datapath = await open_datapath(self.ifname, self.ha_address, backend=self.backend,
                                            firewall=self.firewall,
                                            proxy=self.settings.proxy_nd)
        self._raw = RawSender()
        self._tap = PacketTap(self._on_tap_packet)
        loop.add_reader(self._tap.fileno(), self._tap.read_ready)
        # the home link: NS/NA for DAD, RAs for the home agent list
        self._link = ICMPv6Socket(self.ifname, (134, 135, 136), self._on_link_message)
        loop.add_reader(self._link.fileno(), self._link.read_ready)
        # DHAAD requests come in on whatever link faces the mobile node
        self._anycast = ICMPv6Socket(None, (144,), self._on_dhaad_message)
        loop.add_reader(self._anycast.fileno(), self._anycast.read_ready)
        from ha.core.discovery import home_agents_anycast
        for prefix in self.prefixes:
            try:
                self._link.join_anycast(home_agents_anycast(prefix))
            except OSError as e:
                log.warning("cannot join the home agents anycast address of %s: %s", prefix, e)
        self._dad = DADRunner(self._link, self._raw)
        self._schedule_expiry()
        log.info("home agent on %s, address %s, serving %s", self.ifname, self.ha_address,
                 ", ".join(map(str, self.prefixes)))

    def _resolve_addresses(self) -> None:
        globals_ = [a for a in interface_addresses(self.ifname) if a.scope == SCOPE_GLOBAL]
        if not globals_:
            raise RuntimeError(f"home interface {self.ifname} has no global IPv6 address")
        self.ha_address = globals_[0].address
        if self.settings.served_prefixes:
            self.prefixes = list(self.settings.served_prefixes)
        else:
            # the served home prefix is the /64 of the interface's global address
            self.prefixes = [IPv6Network(f"{self.ha_address}/64", strict=False)]

    def _make_config(self) -> reg.HomeAgentConfig:
        s = self.settings
        ours = tuple(a.address for a in interface_addresses(self.ifname))
        return reg.HomeAgentConfig(
            served_prefixes=tuple(self.prefixes), ha_addresses=(self.ha_address, *ours),
            max_binding_lifetime=s.max_binding_lifetime, acl_default_allow=s.acl_default_allow,
            acl=dict(s.acl), dad_enabled=s.dad, home_agent=True)

    async def reload(self, settings) -> None:
        self.settings = settings
        if settings.ha_interface != self.ifname:
            log.warning("home interface change (%s -> %s) needs a restart",
                        self.ifname, settings.ha_interface)
        self.config = self._make_config()
        self._ours = frozenset(self.config.ha_addresses)
        log.info("home agent configuration reloaded")

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._timer:
            self._timer.cancel()
        for t in list(self._tasks):
            t.cancel()
        for sock in (self._tap, self._link, self._anycast):
            if sock is not None:
                loop.remove_reader(sock.fileno())
        # every binding torn down: routes, proxy entries, tunnels (section 10.3.2 effects)
        for b in list(self.cache):
            if b.state is BindingState.REGISTERED and self.datapath is not None:
                try:
                    await self.datapath.remove_binding(b.hoa, b.coa)
                except Exception as e:
                    log.warning("removing binding %s: %s", b.hoa, e)
            self.cache.remove(b.hoa)
        if self.datapath is not None:
            await self.datapath.close()
        for sock in (self._tap, self._link, self._anycast, self._raw):
            if sock is not None:
                sock.close()
        log.info("home agent stopped")

    # ------------------------------------------------------------ receive

    def _on_tap_packet(self, data: bytes, ifname: str) -> None:
        from ha.wire.ipv6 import parse_packet
        try:
            pkt = parse_packet(data)
        except CodecError as e:
            self.stats["malformed dropped"] += 1
            log.debug("dropped malformed packet on %s: %s", ifname, e)
            return
        if pkt.header.dst not in self._ours:
            return  # passing through, or for another node
        if pkt.protocol == MH:
            self._on_mh(pkt, data)
        elif pkt.home_address is not None:
            self._on_hao_packet(pkt)

    def _on_mh(self, pkt, data: bytes) -> None:
        from ha.wire.mobility import (BindingUpdate, BEStatus, UnknownMobilityMessage, decode_mh,
                                 mh_parameter_problem)
        try:
            msg = decode_mh(pkt.payload, *pkt.pseudo_header_addresses())
        except CodecError as e:
            self.stats["malformed dropped"] += 1
            log.info("dropped malformed mobility header from %s: %s", pkt.header.src, e)
            pointer = mh_parameter_problem(pkt.payload)
            if pointer is not None:
                # section 9.2: a bad Payload Proto or Header Len earns an ICMP error
                self._send_parameter_problem(pkt, data, pkt.payload_offset + pointer)
            return
        if isinstance(msg, BindingUpdate):
            self.stats["BU received"] += 1
            ctx = reg.BUContext(msg, src=pkt.header.src, dst=pkt.header.dst,
                                hoa=pkt.home_address)
            log.debug("BU from %s hoa %s seq %d lifetime %d flags %s", pkt.header.src,
                      pkt.home_address, msg.sequence, msg.lifetime_seconds, _flags(msg))
            self._carry_out(reg.process_binding_update(ctx, self.cache, self.config,
                                                       self.clock()))
        elif isinstance(msg, UnknownMobilityMessage):
            # section 9.2: an unknown MH type is answered with BE status 2
            self.stats["unknown MH type"] += 1
            self._send_binding_error(BEStatus.UNRECOGNIZED_MH_TYPE_VALUE, pkt)
        else:
            self.stats[f"MH {type(msg).__name__} ignored"] += 1

    def _on_hao_packet(self, pkt) -> None:
        from ha.wire.mobility import BEStatus
        hoa = pkt.home_address
        b = self.cache.get(hoa)
        if b is None or b.state is not BindingState.REGISTERED:
            # section 9.3.1: a Home Address option with no binding
            self.stats["HAO without binding"] += 1
            self._send_binding_error(
                BEStatus.UNKNOWN_BINDING_FOR_HOME_ADDRESS_DESTINATION_OPTION, pkt)
            return
        if pkt.protocol == ICMPV6:
            self._on_icmp_with_hao(pkt, b)

    def _on_icmp_with_hao(self, pkt, binding) -> None:
        from ha.core.discovery import HomePrefix, answer_mobile_prefix_solicitation
        from ha.wire.icmpv6 import MobilePrefixSolicitation, decode_icmpv6
        try:
            msg = decode_icmpv6(pkt.payload, pkt.home_address, pkt.header.dst)
        except CodecError as e:
            self.stats["malformed dropped"] += 1
            log.info("dropped malformed ICMPv6 from %s: %s", pkt.header.src, e)
            return
        if isinstance(msg, MobilePrefixSolicitation):
            self.stats["MPS received"] += 1
            prefixes = [HomePrefix(p, 86400, 14400) for p in self.prefixes]
            mpa = answer_mobile_prefix_solicitation(msg, prefixes, self.ha_address)
            self._send_via_rh2(mpa, pkt.header.dst, binding.coa, binding.hoa)
            self.stats["MPA sent"] += 1

    def _on_link_message(self, data: bytes, src, dst, hop_limit) -> None:
        from ha.wire.icmpv6 import (NeighborAdvertisement, NeighborSolicitation, RouterAdvertisement,
                               decode_icmpv6)
        try:
            msg = decode_icmpv6(data, src, dst) if dst is not None else decode_icmpv6(data)
        except CodecError:
            self.stats["malformed dropped"] += 1
            return
        if hop_limit is not None and hop_limit != 255:
            return  # RFC 4861: ND from off-link is ignored
        if isinstance(msg, (NeighborSolicitation, NeighborAdvertisement)):
            self._dad.observe(msg, src)
        elif isinstance(msg, RouterAdvertisement):
            self.home_agents.update_from_ra(src, msg, self.clock())

    def _on_dhaad_message(self, data: bytes, src, dst, hop_limit) -> None:
        from ha.core.discovery import answer_dhaad, home_agents_anycast
        from ha.wire.icmpv6 import DHAADRequest, decode_icmpv6, encode_icmpv6
        try:
            msg = decode_icmpv6(data, src, dst) if dst is not None else decode_icmpv6(data)
        except CodecError:
            self.stats["malformed dropped"] += 1
            return
        if not isinstance(msg, DHAADRequest):
            return
        prefix = next((p for p in self.prefixes if dst == home_agents_anycast(p)), None)
        if prefix is None:
            return
        self.stats["DHAAD requests"] += 1
        reply = answer_dhaad(msg, prefix, self.home_agents, self.clock(), self.rng)
        if reply is None:
            # we know ourselves even before our own RA has been heard
            from ha.wire.icmpv6 import DHAADReply
            reply = DHAADReply(identifier=msg.identifier, home_agents=(self.ha_address,))
        self._anycast.send(encode_icmpv6(reply, self.ha_address, src), src, self.ha_address)
        self.stats["DHAAD replies"] += 1

    # ------------------------------------------------------------ effects

    def _carry_out(self, decision: reg.Decision) -> None:
        log.info("%s %s: %s", decision.hoa, decision.coa, decision.reason)
        if decision.ack is not None:
            self.stats[f"BA {int(decision.ack.status)}"] += 1
        needs_kernel = any(not isinstance(a, reg.RefreshBinding) for a in decision.actions)
        if not needs_kernel:
            self._send_ack(decision)
            return
        task = asyncio.get_running_loop().create_task(self._run_actions(decision))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_actions(self, decision: reg.Decision) -> None:
        dp = self.datapath
        for a in decision.actions:
            try:
                if isinstance(a, reg.StartDAD):
                    await self._run_dad(a)
                elif isinstance(a, reg.AddBinding):
                    await dp.add_binding(a.hoa, a.coa)
                elif isinstance(a, reg.MoveBinding):
                    await dp.move_binding(a.hoa, a.old_coa, a.new_coa)
                elif isinstance(a, reg.DeleteBinding):
                    await dp.remove_binding(a.hoa, a.coa)
                # ProxyOn/Off and Tunnel* are done by the datapath call above
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.stats["datapath errors"] += 1
                log.error("datapath %s failed: %s", type(a).__name__, e)
        self._send_ack(decision)

    async def _run_dad(self, action: reg.StartDAD) -> None:
        self.stats["DAD started"] += 1
        targets = [action.hoa] + ([action.link_local] if action.link_local else [])
        ok = await self._dad.probe(targets)
        if not ok:
            self.stats["DAD failed"] += 1
        self._carry_out(reg.dad_finished(action.hoa, ok, self.cache, self.config, self.clock()))

    def _send_ack(self, decision: reg.Decision) -> None:
        if decision.ack is None or decision.ack_to is None:
            return
        from ha.wire.ipv6 import build_ba_packet
        from ha.wire.mobility import encode_mh
        b = self.cache.get(decision.hoa)
        src = (b.local if b is not None and b.local else None) or self.ha_address
        mh = encode_mh(decision.ack, src, decision.hoa)
        self._raw.send(build_ba_packet(src, decision.ack_to, decision.hoa, mh), decision.ack_to)
        log.debug("BA status %d seq %d lifetime %d to %s", decision.ack.status,
                  decision.ack.sequence, decision.ack.lifetime_seconds, decision.ack_to)

    def _send_via_rh2(self, msg, src: IPv6Address, coa: IPv6Address, hoa: IPv6Address) -> None:
        from ha.wire.icmpv6 import encode_icmpv6
        from ha.wire.ipv6 import IPv6Header, RoutingHeaderType2
        body = encode_icmpv6(msg, src, hoa)  # checksum over the final destination
        rh2 = RoutingHeaderType2(ICMPV6, hoa).encode()
        head = IPv6Header(src, coa, 43, len(rh2) + len(body), 64).encode()
        self._raw.send(head + rh2 + body, coa)

    def _error_allowed(self, dst: IPv6Address) -> bool:
        if self._errors.allow(dst, self.clock()):
            return True
        self.stats["errors rate limited"] += 1
        return False

    def _send_parameter_problem(self, pkt, data: bytes, pointer: int) -> None:
        from ha.wire.icmpv6 import ParameterProblem, encode_icmpv6
        dst, src = pkt.header.src, pkt.header.dst
        if not self._error_allowed(dst):
            return
        # RFC 4443 section 2.4: as much of the invoking packet as fits in 1280
        pp = ParameterProblem(code=0, pointer=pointer, invoking=data[:1280 - 48])
        self._anycast.send(encode_icmpv6(pp, src, dst), dst, src)
        self.stats["parameter problems sent"] += 1

    def _send_binding_error(self, status, pkt) -> None:
        from ha.wire.ipv6 import IPv6Header
        from ha.wire.mobility import BindingError, encode_mh
        dst = pkt.header.src
        if not self._error_allowed(dst):
            return
        # section 9.3.3: sent to the source of the offending packet, home address inside
        home = pkt.home_address or IPv6Address("::")
        be = BindingError(status=status, home_address=home)
        src = pkt.header.dst
        mh = encode_mh(be, src, dst)
        head = IPv6Header(src, dst, MH, len(mh), 64).encode()
        self._raw.send(head + mh, dst)
        self.stats[f"BE {int(status)} sent"] += 1

    # ------------------------------------------------------------ expiry

    def _schedule_expiry(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(1.0, self._on_expiry_timer)

    def _on_expiry_timer(self) -> None:
        try:
            for decision in reg.expire(self.cache, self.clock()):
                self.stats["bindings expired"] += 1
                self._carry_out(decision)
            self.home_agents.expire(self.clock())
        finally:
            self._schedule_expiry()

    # ------------------------------------------------------------ console

    def register_commands(self, console) -> None:
        console.register("bc", self.cmd_bc, "binding cache (bc json for machines)")
        console.register("bc add", self.cmd_bc_add, "bc add hoa X coa Y lifetime N")
        console.register("bc del", self.cmd_bc_del, "bc del hoa X")
        console.register("hal", self.cmd_hal, "home agent list")
        console.register("pl", self.cmd_pl, "prefix list")
        console.register("stats", self.cmd_stats, "counters")

    def cmd_bc(self, args: list[str]) -> str:
        now = self.clock()
        if args[:1] == ["json"]:
            import json
            return json.dumps([{
                "hoa": str(b.hoa), "coa": str(b.coa), "status": b.state.value,
                "flags": _binding_flags(b), "local": str(b.local or self.ha_address),
                "lifetime": int(b.remaining(now)), "granted": b.lifetime,
                "seq": b.sequence if b.sequence is not None else b.pending_sequence,
            } for b in self.cache])
        lines = []
        for b in self.cache:
            seq = b.sequence if b.sequence is not None else b.pending_sequence
            lines += [
                f"hoa {mip6d_address(b.hoa)} status {b.state.value}",
                f" coa {mip6d_address(b.coa)} flags {_binding_flags(b)}",
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
        d = reg.admin_add_binding(kv["hoa"], kv["coa"], kv["lifetime"], self.cache,
                                  self.config, self.clock())
        self._carry_out(d)
        return d.reason

    def cmd_bc_del(self, args: list[str]) -> str:
        kv = self._admin_args(args, ("hoa",))
        d = reg.admin_delete_binding(kv["hoa"], self.cache, self.config, self.clock())
        self._carry_out(d)
        return d.reason

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


def _flags(bu) -> str:
    return "".join(c if on else "-" for c, on in (("A", bu.ack), ("H", bu.home_registration),
                                                    ("L", bu.link_local_compat),
                                                    ("K", bu.key_management)))


def _binding_flags(b) -> str:
    return "".join(c if on else "-" for c, on in (("A", b.ack), ("H", b.home_registration),
                                                    ("L", b.link_local_compat),
                                                    ("K", b.key_management)))
