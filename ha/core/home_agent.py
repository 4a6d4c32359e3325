"""The home agent's protocol engine: bytes and a clock in, bytes and actions out.

Two rules about this file:

1. Every protocol decision the home agent makes is made here or in the pure
   modules it calls (registration rules in registration.py, discovery
   answers in discovery.py). The adapter (ha/daemon/home_agent.py) reads
   sockets, hands the bytes in, writes the bytes that come out and runs the
   actions; it never looks at a field of a packet.

2. This file does no I/O: no socket, no netlink, no clock, no random state of
   its own. `now` (seconds on the caller's monotonic clock) comes with every
   call, and the random source for DHAAD ordering is passed in.

The shape is aioquic's QuicConnection:

  receive_packet(data, ifindex, now)   a whole IPv6 packet from the packet
                                       tap: Mobility Header, or anything with
                                       a Home Address option
  receive_icmpv6(data, src, dst, hop_limit, now)
                                       one ICMPv6 message from a raw ICMPv6
                                       socket: NS/NA/RA on the home link,
                                       DHAAD requests on the anycast address
  datagrams_to_send(now)               whole IPv6 packets (BA, BE, Parameter
                                       Problem, DHAAD reply, MPA, DAD probes)
                                       with their destination and interface
  next_action()                        work for the datapath or the sockets,
                                       as plain data (registration.py's
                                       AddBinding/MoveBinding/DeleteBinding,
                                       JoinGroup/LeaveGroup for DAD)
  action_done(action, now) / action_failed(action, error, now)
  get_timer() / handle_timer(now)      binding expiry, DAD retransmissions
                                       and ends, home agent list expiry

Theory of operation
-------------------

A Binding Acknowledgement that accepts a binding is held back until the
datapath has done what the acceptance promised: the BA for a new binding
goes out after action_done(AddBinding), never before. When the action fails
instead, the registration is rolled back (a new binding is removed, and a
best-effort DeleteBinding cleans what part of it reached the kernel; a move
returns to the old care-of address) and the BA says 130, Insufficient
resources -- what UMIP answers too. A refresh needs nothing from the kernel,
so its BA goes at once. A deregistration's BA is not held: the mobile node is
home, and a kernel leftover is counted and logged, not blamed on it.

DAD (RFC 6275 section 10.3.1, RFC 4862 section 5.4) runs here too: the core
asks for the solicited-node groups to be joined (JoinGroup), then sends the
probe from :: and listens for RetransTimer. An NA for the target, or another
node's probe for it, ends it with 134. At most `max_concurrent_dad` probes
run at once -- every probe holds one or two multicast memberships of one
socket, and the kernel caps those per socket -- and a new registration past
that bound, or one whose group join fails, gets 130 at once instead of
waiting: the mobile node retransmits (section 11.8), and by then a slot is
likely free. No entry stays DAD_PENDING longer than one probe.

With tunnel_during_dad (off by default), a new registration's binding is
asked of the datapath (AddBinding: route, tunnel, proxy ND and the NA of
section 10.4.1) as its DAD starts, so the correspondents, on the home link
too, reach the mobile node during the second DAD takes; only the BA waits
for DAD's end (and for that AddBinding to be done). An NA from one of our
own addresses (the kernel's proxy answering our probe) is not a collision.
A failed DAD still gives 134 and tears the binding down, as do a
deregistration or expiry while DAD runs; a BU with a new CoA during DAD
moves it. The cost: if another node owns the address, its traffic goes to
the mobile node for up to RetransTimer, and the neighbours' caches point at
us until they learn better.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import random
from collections import Counter, deque
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network

from ha.core import registration as reg
from ha.core.binding_cache import BindingCache, BindingState
from ha.core.discovery import (HomeAgentList, HomePrefix, answer_dhaad,
                               answer_mobile_prefix_solicitation, home_agents_anycast)
from ha.core.error_limits import ErrorLimiter
from ha.core.rate_limit import NewBindingLimiter, SourceThrottle
from ha.wire import auth as rfc4285
from ha.wire import esp
from ha.wire import icmpv6 as nd
from ha.wire.errors import CodecError
from ha.wire.ipv6 import IPv6Header, Packet, Proto, RoutingHeaderType2, build_ba_packet, parse_packet
from ha.wire.mobility import (BAStatus, BEStatus, BindingAck, BindingError, BindingUpdate,
                              ReplayProtection, UnknownMobilityMessage, decode_mh, encode_mh,
                              mh_parameter_problem)

log = logging.getLogger("denali.ha")

UNSPECIFIED = IPv6Address("::")
RETRANS_TIMER = 1.0  # RFC 4861 section 10, RetransTimer default
DUP_ADDR_DETECT_TRANSMITS = 1  # RFC 4862 section 5.1 default
MAX_CONCURRENT_DAD = 64  # probes; each holds 1-2 groups of the ~180 a socket may join
DEFAULT_VALID_LIFETIME = 86400  # radvd's AdvValidLifetime default, seconds
DEFAULT_PREFERRED_LIFETIME = 14400  # radvd's AdvPreferredLifetime default
MIN_MOB_PFX_ADV_INTERVAL = 600  # seconds, RFC 6275 section 13
MAX_MOB_PFX_ADV_INTERVAL = 86400  # section 12
ND_HOP_LIMIT = 255  # RFC 4861 section 6.1: ND from off-link is ignored
HOP_LIMIT = 64


# ================================================================ inputs


@dataclass(slots=True)
class HomeAgentSettings:
    """What the engine needs to know about its link, besides the registration rules."""

    ha_address: IPv6Address
    home_ifindex: int = 0
    rules: reg.HomeAgentConfig = dataclasses.field(default_factory=reg.HomeAgentConfig)
    # prefix -> (valid, preferred) lifetime in seconds, for Mobile Prefix Advertisements
    prefix_lifetimes: dict = dataclasses.field(default_factory=dict)
    # section 10.6.2: unsolicited Mobile Prefix Advertisements to away mobile nodes
    send_mob_pfx_advs: bool = True
    min_mob_pfx_adv_interval: float = MIN_MOB_PFX_ADV_INTERVAL
    max_mob_pfx_adv_interval: float = MAX_MOB_PFX_ADV_INTERVAL
    dad_retrans_timer: float = RETRANS_TIMER
    dad_transmits: int = DUP_ADDR_DETECT_TRANSMITS
    max_concurrent_dad: int = MAX_CONCURRENT_DAD
    # intercept and tunnel for a new binding while its DAD runs, the BA when
    # DAD passes, a teardown (and 134) when it fails
    tunnel_during_dad: bool = False
    # RFC 4285: home address -> MnHaSecret. A home address listed here is
    # protected: only BUs it authenticates are served, and its BAs are signed.
    auth: dict = dataclasses.field(default_factory=dict)
    replay_window: float = rfc4285.DEFAULT_REPLAY_WINDOW  # seconds either side of our clock
    # RFC 3776: home address -> esp.MnHaIPsecSA (manual keys). A home address
    # listed here takes only BUs in ESP with its SA, and its BAs go in ESP.
    ipsec: dict = dataclasses.field(default_factory=dict)
    esp_replay_window: int = 64  # RFC 4303 section 3.4.3: 32 at least, 64 recommended
    # new bindings a second (and the burst allowed before that holds), per
    # source /64 and overall (ha/core/rate_limit.py); 0 = no limit. Off here,
    # the engine's default; the daemon's Settings carry the board's.
    new_bindings_per_prefix_rate: float = 0.0
    new_bindings_per_prefix_burst: float = 0.0
    new_bindings_rate: float = 0.0
    new_bindings_burst: float = 0.0
    # packets a second (and burst) from one source address that the tap's
    # handling reads at all (rate_limit.SourceThrottle); 0 = no limit. A mobile
    # node sends about one BU per binding per refresh.
    packets_per_source_rate: float = 0.0
    packets_per_source_burst: float = 0.0
    # entries of the home agent list learned from RAs (section 10.1); our own
    # entry is always kept
    max_home_agents: int = 16

    def new_binding_limiter(self) -> NewBindingLimiter | None:
        if self.new_bindings_per_prefix_rate <= 0 and self.new_bindings_rate <= 0:
            return None
        return NewBindingLimiter(self.new_bindings_per_prefix_rate,
                                 self.new_bindings_per_prefix_burst,
                                 self.new_bindings_rate, self.new_bindings_burst)

    @property
    def prefixes(self) -> tuple[IPv6Network, ...]:
        return self.rules.served_prefixes


# =============================================================== outputs


@dataclass(slots=True, frozen=True)
class Datagram:
    """A whole IPv6 packet for a header-included raw socket."""

    data: bytes
    dst: IPv6Address
    ifindex: int = 0  # 0: let the routing table choose


@dataclass(slots=True, frozen=True)
class JoinGroup:
    group: IPv6Address  # a solicited-node group on the home link, for DAD


@dataclass(slots=True, frozen=True)
class LeaveGroup:
    group: IPv6Address


def solicited_node(address: IPv6Address) -> IPv6Address:
    """RFC 4291 section 2.7.1: ff02::1:ffXX:XXXX."""
    return IPv6Address(0xFF0200000000000000000001FF000000 | (int(address) & 0xFFFFFF))


# ============================================================== internals


@dataclass(slots=True)
class _Held:
    """A decision whose BA waits on the datapath."""

    decision: reg.Decision
    before: object  # the binding as it was before this decision (None: new), for rollback


@dataclass(slots=True)
class _Early:
    """A binding set up while its registration's DAD runs (tunnel_during_dad)."""

    coa: IPv6Address
    link_local: IPv6Address | None
    action_id: int  # id() of its AddBinding
    done: bool = False  # that AddBinding has been carried out


@dataclass(slots=True)
class _Probe:
    hoa: IPv6Address
    targets: tuple[IPv6Address, ...]
    groups: tuple[IPv6Address, ...]
    joins_waiting: set
    sent: int = 0
    deadline: float | None = None  # None: not yet sent (waiting on the joins)


class HomeAgentCore:
    """Serves home registrations for the prefixes of one home link."""

    def __init__(self, settings: HomeAgentSettings, *, capacity: int = 200_000,
                 rng: random.Random | None = None):
        self.settings = settings
        self.cache = BindingCache(capacity)
        self.home_agents = HomeAgentList(settings.max_home_agents)
        self.stats: Counter = Counter()
        self.rng = rng if rng is not None else random.Random(0)
        self._errors = ErrorLimiter()
        # new bindings by source /64 and overall; refusals logged once per
        # source /64 per minute, at most a few lines a second in all
        self._limiter = settings.new_binding_limiter()
        self._limit_logged = ErrorLimiter(per_destination=60.0, overall=5)
        self._throttle = _throttle(settings)
        self._ours = frozenset(settings.rules.ha_addresses) | {settings.ha_address}
        self._datagrams: list[Datagram] = []
        self._actions: deque = deque()
        self._held: dict[int, _Held] = {}  # id(action) -> what waits on it
        # tunnel_during_dad: home address -> its early binding, while its
        # registration waits on DAD
        self._early: dict[IPv6Address, _Early] = {}
        self._probes: dict[IPv6Address, _Probe] = {}  # by home address
        self._group_users: Counter = Counter()  # group -> probes using it
        self._join_for: dict[int, IPv6Address] = {}  # id(JoinGroup) -> group
        # bumped on every change of a registered binding: the adapter saves the
        # cache when it moves (crash recovery, see restore())
        self.generation = 0
        self._mpa_heap: list = []  # (when, hoa): next unsolicited MPA, stale ones skipped
        self._mpa_due: dict[IPv6Address, float] = {}
        # RFC 4285 section 6: per protected home address, the newest timestamp
        # accepted (a replayed BU carries an older or equal one); it is also
        # what the BA echoes back
        self._last_stamp: dict[IPv6Address, int] = {}
        self._auth_logged: dict[IPv6Address, float] = {}  # source -> when last logged
        # RFC 3776 / RFC 4303: inbound SAs by SPI, and per home address the
        # receive window and the last sequence number sent
        self._esp_in: dict[int, tuple] = {}
        self._esp_window: dict[IPv6Address, esp.ReplayWindow] = {}
        self._esp_sent: dict[IPv6Address, int] = {}
        self._esp_sas(settings, {})

    # ------------------------------------------------------------ settings

    def reload(self, settings: HomeAgentSettings, now: float | None = None) -> None:
        """New rules for new registrations; bindings in the cache stay as they are.

        Section 10.6.2: when the home prefixes or their lifetimes change, every
        mobile node away from home hears it at once in an unsolicited MPA.
        """
        old = self._home_prefixes()
        if _limits(settings) != _limits(self.settings):
            self._limiter = settings.new_binding_limiter()  # buckets start full
            self._throttle = _throttle(settings)
        self.home_agents.limit = settings.max_home_agents
        old_ipsec = self.settings.ipsec
        self.settings = settings
        self._esp_sas(settings, old_ipsec)
        self._ours = frozenset(settings.rules.ha_addresses) | {settings.ha_address}
        if now is not None and settings.send_mob_pfx_advs and self._home_prefixes() != old:
            for b in self.registered():
                self._send_unsolicited_mpa(b, now)

    @property
    def rules(self) -> reg.HomeAgentConfig:
        return self.settings.rules

    # ------------------------------------------------------------- receive

    def receive_packet(self, data: bytes, ifindex: int, now: float,
                       wall: float | None = None) -> None:
        """A packet from the tap: Mobility Header, or one carrying a Home Address option.

        `wall` is the wall clock (Unix seconds): RFC 4285 timestamps are
        compared with it. Without it a BU for a protected home address is dropped.
        """
        if self._throttle is not None and not self._throttle.admit(data[8:24], now):
            self.stats["packets dropped, source over its rate"] += 1
            if self._limit_logged.allow(data[8:24], now):  # once per source per minute
                log.warning("packets from %s over %g/s: dropped unanswered",
                            _source_of(data), self.settings.packets_per_source_rate)
            return
        try:
            pkt = parse_packet(data)
        except CodecError as e:
            self.stats["malformed dropped"] += 1
            log.debug("dropped malformed packet on ifindex %d: %s", ifindex, e)
            return
        if pkt.header.dst not in self._ours:
            return  # passing through, or for another node
        if pkt.protocol == Proto.MH:
            self._on_mh(pkt, data, now, wall)
        elif pkt.protocol == Proto.ESP:
            self._on_esp(pkt, data, now, wall)
        elif pkt.home_address is not None:
            self._on_hao_packet(pkt, now)

    def receive_icmpv6(self, data: bytes, src: IPv6Address, dst: IPv6Address | None,
                       hop_limit: int | None, now: float) -> None:
        """One ICMPv6 message (without its IPv6 header) from a raw ICMPv6 socket."""
        try:
            msg = nd.decode_icmpv6(data, src, dst) if dst is not None else nd.decode_icmpv6(data)
        except CodecError:
            self.stats["malformed dropped"] += 1
            return
        if isinstance(msg, nd.DHAADRequest):
            self._on_dhaad(msg, src, dst, now)
            return
        if hop_limit is not None and hop_limit != ND_HOP_LIMIT:
            return  # RFC 4861 sections 6.1 and 7.1.1: not from this link
        if isinstance(msg, (nd.NeighborSolicitation, nd.NeighborAdvertisement)):
            self._dad_observe(msg, src, now)
        elif isinstance(msg, nd.RouterAdvertisement):
            self.home_agents.update_from_ra(src, msg, now, own=src in self._ours)

    # ------------------------------------------------------------- outputs

    def datagrams_to_send(self, now: float) -> list[Datagram]:
        out, self._datagrams = self._datagrams, []
        return out

    def next_action(self):
        return self._actions.popleft() if self._actions else None

    def action_done(self, action, now: float) -> None:
        if isinstance(action, JoinGroup):
            self._join_done(action, now)
            return
        held = self._held.pop(id(action), None)
        if held is not None:
            self._send_ack(held.decision)
        if isinstance(action, reg.AddBinding):
            e = self._early.get(action.hoa)
            if e is not None and e.action_id == id(action):
                e.done = True
            self._schedule_mpa(action.hoa, now)

    def action_failed(self, action, error: BaseException, now: float) -> None:
        """The datapath or a socket could not do `action`: roll back and say 130."""
        self.stats["datapath errors"] += 1
        log.error("%s %s failed: %s", type(action).__name__, getattr(action, "hoa", ""), error)
        if isinstance(action, JoinGroup):
            self._join_failed(action, now)
            return
        held = self._held.pop(id(action), None)
        e = self._early.get(getattr(action, "hoa", None))
        if held is None and e is not None and e.action_id == id(action):
            # the early binding did not come up: the registration goes on
            # without it, and DAD's end asks for the binding again
            del self._early[action.hoa]
            self._actions.append(reg.DeleteBinding(action.hoa, action.coa, action.link_local))
            return
        if held is None:
            return  # a deregistration or a cleanup: nothing to roll back
        d = held.decision
        if isinstance(action, reg.AddBinding):
            self.cache.remove(action.hoa)
            # part of the batch may have reached the kernel: take it out again
            self._actions.append(reg.DeleteBinding(action.hoa, action.coa, action.link_local))
        elif isinstance(action, reg.MoveBinding) and held.before is not None:
            self.cache.put(held.before)
        self.stats["registrations rolled back"] += 1
        self.generation += 1
        self._refuse_now(d, BAStatus.INSUFFICIENT_RESOURCES,
                         f"datapath: {type(action).__name__} failed")

    # --------------------------------------------------------------- timer

    def get_timer(self) -> float | None:
        """When handle_timer() next has work, or None."""
        times = [p.deadline for p in self._probes.values() if p.deadline is not None]
        expiry = self.cache.next_expiry()
        if expiry is not None:
            times.append(expiry)
        times.extend(e.expires_at for e in self.home_agents)
        heap = self._mpa_heap
        while heap and (self._mpa_due.get(heap[0][1]) != heap[0][0]
                        or heap[0][1] not in self.cache):
            when, hoa = heapq.heappop(heap)  # rescheduled, or its binding is gone
            if self._mpa_due.get(hoa) == when:
                del self._mpa_due[hoa]
        if heap:
            times.append(heap[0][0])
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        for p in [p for p in self._probes.values() if p.deadline is not None and p.deadline <= now]:
            if p.sent < self.settings.dad_transmits:
                self._send_probe(p, now)
            else:
                self._dad_over(p, True, now)
        for decision in reg.expire(self.cache, now):
            self.stats["bindings expired"] += 1
            self._carry_out(decision, None, now)
        self.home_agents.expire(now)
        heap = self._mpa_heap
        while heap and heap[0][0] <= now:
            when, hoa = heapq.heappop(heap)
            if self._mpa_due.get(hoa) != when:
                continue
            del self._mpa_due[hoa]
            b = self.cache.get(hoa)
            if b is not None and b.state is BindingState.REGISTERED:
                self._send_unsolicited_mpa(b, now)

    # ------------------------------------------------------------- console

    def admin_add(self, hoa: IPv6Address, coa: IPv6Address, lifetime: int, now: float) -> str:
        before = self._snapshot(hoa)
        d = reg.admin_add_binding(hoa, coa, lifetime, self.cache, self.rules, now)
        self._carry_out(d, before, now)
        return d.reason

    def admin_delete(self, hoa: IPv6Address, now: float) -> str:
        d = reg.admin_delete_binding(hoa, self.cache, self.rules, now)
        self._carry_out(d, None, now)
        return d.reason

    def registered(self) -> list:
        """The bindings worth keeping across a restart (not those still in DAD)."""
        return [b for b in self.cache if b.state is BindingState.REGISTERED]

    def restore(self, bindings, now: float) -> int:
        """Bindings saved by a previous run of the daemon, put back without a new BU.

        Each must still be unexpired and on a served prefix; its kernel state is
        rebuilt by an AddBinding action (no BA: nobody asked). A mobile node then
        keeps its traffic and its sequence numbers as if nothing had happened.
        """
        n = 0
        for b in bindings:
            if b.expires_at <= now or reg.home_prefix_of(b.hoa, self.rules) is None \
                    or b.hoa in self.cache or self.cache.full:
                continue
            b.state = BindingState.REGISTERED
            self.cache.put(b)
            ll = reg.link_local_of(b.hoa) if b.link_local_compat else None
            self._actions.append(reg.AddBinding(b.hoa, b.coa, b.lifetime, ll))
            n += 1
        self.stats["bindings restored"] += n
        return n

    def stop(self, now: float) -> None:
        """Tear every binding down (queued as DeleteBinding actions) and forget them."""
        for b in list(self.cache):
            if b.state is BindingState.REGISTERED:
                ll = reg.link_local_of(b.hoa) if b.link_local_compat else None
                self._actions.append(reg.DeleteBinding(b.hoa, b.coa, ll))
            self.cache.remove(b.hoa)
        for hoa, e in self._early.items():  # bindings of registrations still in DAD
            self._actions.append(reg.DeleteBinding(hoa, e.coa, e.link_local))
        self._early.clear()
        for hoa in list(self._probes):
            self._probe_cancel(hoa)
        self._held.clear()

    # ------------------------------------------------------------ mobility

    def _on_mh(self, pkt: Packet, data: bytes, now: float, wall: float | None = None,
               esp_hoa: IPv6Address | None = None) -> None:
        """A Mobility Header; `esp_hoa` is the home address of the SA it came
        in (ESP checked by _on_esp), None when it came in the clear."""
        try:
            msg = decode_mh(pkt.payload, *pkt.pseudo_header_addresses())
        except CodecError as e:
            self.stats["malformed dropped"] += 1
            log.info("dropped malformed mobility header from %s: %s", pkt.header.src, e)
            pointer = mh_parameter_problem(pkt.payload)
            if pointer is not None and esp_hoa is None:  # inside ESP no pointer reaches it
                # section 9.2: a bad Payload Proto or Header Len earns an ICMP error
                self._parameter_problem(pkt, data, pkt.payload_offset + pointer, now)
            return
        if isinstance(msg, BindingUpdate):
            self.stats["BU received"] += 1
            hoa = pkt.home_address
            log.debug("BU from %s hoa %s seq %d lifetime %d flags %s", pkt.header.src, hoa,
                      msg.sequence, msg.lifetime_seconds, bu_flags(msg))
            ctx = reg.BUContext(msg, src=pkt.header.src, dst=pkt.header.dst, hoa=hoa)
            if reg.home_address_of(ctx) in self.settings.ipsec \
                    and esp_hoa != reg.home_address_of(ctx):
                # RFC 3776 section 4.2 (and RFC 4301 5.2): the policy for this
                # home address requires ESP, so a BU in the clear is discarded
                # unanswered, as the kernel's IPsec would; nothing moves
                self.stats["BU dropped, not in ESP (IPsec required)"] += 1
                self._log_once(pkt.header.src, now, "BU for %s from %s dropped: not in ESP, "
                               "and its IPsecPolicySet requires it", reg.home_address_of(ctx),
                               pkt.header.src)
                return
            if not self._authenticated(pkt, msg, reg.home_address_of(ctx), now, wall):
                return
            before = self._snapshot(reg.home_address_of(ctx))
            admit = None if self._limiter is None else (lambda s: self._admit(s, now))
            d = reg.process_binding_update(ctx, self.cache, self.rules, now, admit)
            if d.reason.endswith(": cache_has_room"):
                self.stats["BU refused, binding cache full"] += 1
                self._log_limit(UNSPECIFIED, now, "binding cache full (%d bindings): "
                                "new bindings refused 130", len(self.cache))
            self._carry_out(d, before, now)
        elif isinstance(msg, UnknownMobilityMessage):
            # section 9.2: an unknown MH type is answered with BE status 2
            self.stats["unknown MH type"] += 1
            self._binding_error(BEStatus.UNRECOGNIZED_MH_TYPE_VALUE, pkt, now)
        else:
            self.stats[f"MH {type(msg).__name__} ignored"] += 1

    # ------------------------------------------------------- RFC 3776 ESP

    def _esp_sas(self, settings: HomeAgentSettings, old: dict) -> None:
        """Index the inbound SAs by SPI; an SA unchanged by a reload keeps its
        counters (sequence numbers sent, the receive window), a new or
        changed one starts afresh (RFC 4303 section 3.3.3: a new SA counts from 1)."""
        self._esp_in = {sa.spi_to_ha: (hoa, sa) for hoa, sa in settings.ipsec.items()}
        for hoa in list(self._esp_window):
            if settings.ipsec.get(hoa) != old.get(hoa):
                del self._esp_window[hoa]
                self._esp_sent.pop(hoa, None)
        for hoa in settings.ipsec:
            if hoa not in self._esp_window:
                self._esp_window[hoa] = esp.ReplayWindow(settings.esp_replay_window)
                self._esp_sent[hoa] = 0

    def _on_esp(self, pkt: Packet, data: bytes, now: float, wall: float | None) -> None:
        """RFC 4303 section 3.4 inbound processing for ESP in transport mode
        to one of our addresses: the SA by SPI, its selector (RFC 3776 4.2:
        the home address, not the care-of address, and protocol MH), the
        replay window, the ICV; then the Mobility Header inside goes on as
        if it had come in the clear, marked as protected."""
        src = pkt.header.src
        try:
            spi, seq = esp.esp_spi(pkt.payload), esp.esp_sequence(pkt.payload)
        except CodecError:
            self.stats["malformed dropped"] += 1
            return
        found = self._esp_in.get(spi)
        if found is None:
            # section 3.4.2: no SA, the packet is discarded (an auditable event)
            self.stats["ESP dropped, unknown SPI"] += 1
            self._log_once(src, now, "ESP from %s dropped: no SA for SPI %#x", src, spi)
            return
        hoa, sa = found
        mn = pkt.home_address or src  # from home there is no Home Address option
        if mn != hoa:
            self.stats["ESP dropped, SA of another home address"] += 1
            self._log_once(src, now, "ESP from %s (home address %s) dropped: SPI %#x is the "
                           "SA of %s", src, mn, spi, hoa)
            return
        window = self._esp_window[hoa]
        why = window.check(seq)
        if why is not None:
            self.stats["ESP dropped, replay window"] += 1
            self._log_once(src, now, "ESP from %s for %s dropped: %s", src, hoa, why)
            return
        try:
            _, _, nh, inner = esp.decode_esp(pkt.payload, sa.key_to_ha)
        except esp.EspAuthError:
            self.stats["ESP dropped, ICV wrong"] += 1
            self._log_once(src, now, "ESP from %s for %s dropped: integrity check failed "
                           "(wrong key?)", src, hoa)
            return
        except CodecError as e:
            self.stats["malformed dropped"] += 1
            log.info("dropped malformed ESP from %s: %s", src, e)
            return
        window.accept(seq)  # section 3.4.3: only after the ICV has checked out
        if nh != Proto.MH:
            self.stats["ESP dropped, not MH"] += 1  # the SA's selector is protocol MH
            return
        self.stats["ESP accepted"] += 1
        log.debug("ESP spi %#x seq %d from %s for %s: %d octets of MH", spi, seq, src, hoa,
                  len(inner))
        inner_pkt = dataclasses.replace(pkt, protocol=Proto.MH, payload=inner)
        self._on_mh(inner_pkt, data, now, wall, esp_hoa=hoa)

    def _esp_wrap(self, hoa: IPv6Address, mh: bytes) -> tuple[int, bytes] | None:
        """(next header, payload) for a BA to `hoa`: the MH in ESP with our
        outbound SA when the home address has one, else the MH itself.
        None: the SA's sequence numbers are used up (section 3.3.3: never cycle)."""
        sa = self.settings.ipsec.get(hoa)
        if sa is None:
            return Proto.MH, mh
        seq = self._esp_sent.get(hoa, 0) + 1
        if seq > esp.MAX_SEQ:
            self.stats["BA not sent, ESP sequence numbers used up"] += 1
            log.error("ESP SA %#x to %s has sent 2^32-1 packets: new keys (and SPIs) needed",
                      sa.spi_to_mn, hoa)
            return None
        self._esp_sent[hoa] = seq
        self.stats["ESP sent"] += 1
        return Proto.ESP, esp.encode_esp(sa.spi_to_mn, seq, mh, Proto.MH, sa.key_to_mn)

    def _log_once(self, src: IPv6Address, now: float, fmt: str, *args) -> None:
        seen = self._auth_logged.get(src)
        if seen is None or now - seen >= 60.0:  # once per source per minute
            if len(self._auth_logged) >= 4096:
                self._auth_logged.clear()
            self._auth_logged[src] = now
            log.warning(fmt, *args)

    # ------------------------------------------------------------ RFC 4285

    def _authenticated(self, pkt: Packet, bu: BindingUpdate, hoa: IPv6Address, now: float,
                       wall: float | None) -> bool:
        """True when the BU may go on to the registration rules: its home
        address is unprotected, or the BU carries the right MN-HA
        authenticator and a fresh timestamp. Otherwise it is answered (or
        dropped) here, before any rule can leak state such as the last
        sequence number in a 135."""
        secret = self.settings.auth.get(hoa)
        if secret is None:
            return True
        src = pkt.header.src
        # RFC 4285 section 5.2: the care-of address is the packet's source (it
        # is the home address itself for a BU sent from home)
        why = rfc4285.verify_mh(pkt.payload, secret.key, secret.spi, src, pkt.header.dst)
        if why is not None:
            # section 5.2: an authenticator that does not check out (or none
            # at all) is refused with MIPV6-AUTH-FAIL; nothing in the cache moves
            self.stats["BU authentication failed"] += 1
            # the BA echoes the BU's timestamp, so that the mobile node can
            # tell it answers this BU (an attacker learns nothing from it)
            rp = bu.option(ReplayProtection)
            self._auth_refuse(bu, hoa, src, BAStatus.MIPV6_AUTH_FAIL, why, now,
                              rp.timestamp if rp is not None else 0)
            return False
        if wall is None:
            self.stats["BU dropped, no wall clock"] += 1
            return False
        rp = bu.option(ReplayProtection)
        last = self._last_stamp.get(hoa)
        if rp is None:
            why = "no replay protection option"
        elif abs(rfc4285.unix_from_ntp(rp.timestamp) - wall) > self.settings.replay_window:
            why = (f"timestamp {rfc4285.unix_from_ntp(rp.timestamp) - wall:+.1f} s off our clock, "
                   f"window {self.settings.replay_window:g} s")
        elif last is not None and rp.timestamp <= last:
            why = "timestamp not newer than the last accepted (a replay)"
        else:
            self._last_stamp[hoa] = rp.timestamp
            self.stats["BU authenticated"] += 1
            return True
        # section 6: MIPV6-MESG-ID-REQD, with our own time in the BA's replay
        # option so that the mobile node can correct its clock offset
        self.stats["BU replay check failed"] += 1
        self._auth_refuse(bu, hoa, src, BAStatus.MIPV6_MESG_ID_REQD, why, now,
                          rfc4285.ntp_from_unix(wall))
        return False

    def _auth_refuse(self, bu: BindingUpdate, hoa: IPv6Address, src: IPv6Address,
                     status: BAStatus, why: str, now: float, stamp: int | None) -> None:
        seen = self._auth_logged.get(src)
        if seen is None or now - seen >= 60.0:  # once per source per minute
            if len(self._auth_logged) >= 4096:
                self._auth_logged.clear()
            self._auth_logged[src] = now
            log.warning("BU for protected %s from %s refused %d: %s", hoa, src, int(status), why)
        d = reg.Decision(ack=BindingAck(status=status, sequence=bu.sequence, lifetime=0),
                         ack_to=src, hoa=hoa, coa=src,
                         reason=f"refused {int(status)} {status.name}: {why}")
        self._send_ack(d, stamp)

    # ------------------------------------------------------------- limits

    def _admit(self, src: IPv6Address, now: float) -> bool:
        """The rate limit of new bindings, asked by the registration rules."""
        verdict = self._limiter.admit(src, now)
        if verdict is True:
            return True
        s = self.settings
        if verdict == NewBindingLimiter.OVER_PREFIX:
            self.stats["BU refused, new bindings over the per-prefix rate"] += 1
            key = IPv6Address(int(src) >> 64 << 64)
            if self._limit_logged.allow(key, now):  # once per source /64 per minute
                log.warning("new bindings from %s/64 over %g/s (burst %g): refused 130", key,
                            s.new_bindings_per_prefix_rate, s.new_bindings_per_prefix_burst)
        else:
            self.stats["BU refused, new bindings over the global rate"] += 1
            self._log_limit(UNSPECIFIED, now, "new bindings over %g/s (burst %g) in all "
                            "(this one from %s): refused 130", s.new_bindings_rate,
                            s.new_bindings_burst, src)
        return False

    def _log_limit(self, key: IPv6Address, now: float, fmt: str, *args) -> None:
        if self._limit_logged.allow(key, now):  # once per key per minute
            log.warning(fmt, *args)

    def _on_hao_packet(self, pkt: Packet, now: float) -> None:
        b = self.cache.get(pkt.home_address)
        if b is None or b.state is not BindingState.REGISTERED:
            # section 9.3.1: a Home Address option with no binding
            self.stats["HAO without binding"] += 1
            self._binding_error(BEStatus.UNKNOWN_BINDING_FOR_HOME_ADDRESS_DESTINATION_OPTION,
                                pkt, now)
            return
        if pkt.protocol != Proto.ICMPV6:
            self.stats["HAO packets not served"] += 1
            return
        try:
            msg = nd.decode_icmpv6(pkt.payload, pkt.home_address, pkt.header.dst)
        except CodecError as e:
            self.stats["malformed dropped"] += 1
            log.info("dropped malformed ICMPv6 from %s: %s", pkt.header.src, e)
            return
        if isinstance(msg, nd.MobilePrefixSolicitation):
            self.stats["MPS received"] += 1
            mpa = answer_mobile_prefix_solicitation(msg, self._home_prefixes(),
                                                    self.settings.ha_address)
            self._send_via_rh2(mpa, pkt.header.dst, b.coa, b.hoa)
            self.stats["MPA sent"] += 1
        else:
            self.stats["HAO packets not served"] += 1

    def _schedule_mpa(self, hoa: IPv6Address, now: float) -> None:
        """Section 10.6.2's schedule: MinMobPfxAdvInterval plus a random part up to
        MIN(MaxMobPfxAdvInterval, the shortest preferred lifetime)."""
        s = self.settings
        if not s.send_mob_pfx_advs:
            return
        preferred = min((p.preferred_lifetime for p in self._home_prefixes()),
                        default=s.max_mob_pfx_adv_interval)
        top = min(s.max_mob_pfx_adv_interval, preferred)
        low = s.min_mob_pfx_adv_interval
        when = now + low + self.rng.random() * abs(top - low)
        self._mpa_due[hoa] = when
        heapq.heappush(self._mpa_heap, (when, hoa))

    def _send_unsolicited_mpa(self, b, now: float) -> None:
        # an answer to nobody's solicitation: a fresh identifier
        msg = nd.MobilePrefixSolicitation(identifier=self.rng.getrandbits(16))
        mpa = answer_mobile_prefix_solicitation(msg, self._home_prefixes(),
                                                self.settings.ha_address)
        self._send_via_rh2(mpa, b.local or self.settings.ha_address, b.coa, b.hoa)
        self.stats["MPA sent unsolicited"] += 1
        self._schedule_mpa(b.hoa, now)

    def _home_prefixes(self) -> list[HomePrefix]:
        """Section 10.6.1: the MPA carries each prefix with the lifetimes the home link has."""
        out = []
        for p in self.settings.prefixes:
            valid, preferred = self.settings.prefix_lifetimes.get(
                p, (DEFAULT_VALID_LIFETIME, DEFAULT_PREFERRED_LIFETIME))
            out.append(HomePrefix(p, valid, preferred))
        return out

    # -------------------------------------------------------------- DHAAD

    def _on_dhaad(self, msg, src: IPv6Address, dst: IPv6Address | None, now: float) -> None:
        prefix = next((p for p in self.settings.prefixes if dst == home_agents_anycast(p)), None)
        if prefix is None:
            return  # section 10.5: only requests to a served prefix's anycast address
        self.stats["DHAAD requests"] += 1
        reply = answer_dhaad(msg, prefix, self.home_agents, now, self.rng)
        if reply is None:
            # we are a home agent for the prefix before our own RA has been heard
            reply = nd.DHAADReply(identifier=msg.identifier,
                                  home_agents=(self.settings.ha_address,))
        self._icmp(reply, self.settings.ha_address, src, HOP_LIMIT)
        self.stats["DHAAD replies"] += 1

    # ---------------------------------------------------------- decisions

    def _snapshot(self, hoa: IPv6Address):
        b = self.cache.get(hoa)
        return dataclasses.replace(b) if b is not None else None

    def _carry_out(self, d: reg.Decision, before, now: float) -> None:
        log.info("%s %s: %s", d.hoa, d.coa, d.reason)
        if d.actions or (d.ack is not None and d.ack.status == BAStatus.ACCEPTED):
            self.generation += 1
        kernel = None
        waits_on = None  # id() of an early AddBinding still running, for the BA
        for a in d.actions:
            if isinstance(a, reg.StartDAD):
                self._dad_start(a, d, now)
                return  # dad_finished() will answer
            if isinstance(a, reg.AddBinding) and a.hoa in self._early:
                # DAD passed, and the binding is (being) set up already
                e = self._early.pop(a.hoa)
                if e.coa == a.coa:
                    waits_on = None if e.done else e.action_id
                    continue
                a = reg.MoveBinding(a.hoa, e.coa, a.coa, a.lifetime)
            if isinstance(a, (reg.AddBinding, reg.MoveBinding, reg.DeleteBinding)):
                self._actions.append(a)
                kernel = a
        if d.hoa in self._probes:
            b = self.cache.get(d.hoa)
            if b is None or b.state is not BindingState.DAD_PENDING:
                self._probe_cancel(d.hoa)  # deregistered or expired while DAD ran
        self._early_follow(d.hoa)
        accepted = d.ack is not None and d.ack.status == BAStatus.ACCEPTED
        if waits_on is not None and kernel is None and accepted:
            self._held[waits_on] = _Held(d, before)
            return
        if kernel is not None and not isinstance(kernel, reg.DeleteBinding) and accepted:
            self._held[id(kernel)] = _Held(d, before)
            return
        self._send_ack(d)

    def _refuse_now(self, d: reg.Decision, status: BAStatus, why: str) -> None:
        seq = d.ack.sequence if d.ack is not None else 0
        refused = dataclasses.replace(d, ack=BindingAck(status=status, sequence=seq, lifetime=0),
                                      reason=f"refused {int(status)} {status.name}: {why}")
        log.info("%s %s: %s", d.hoa, d.coa, refused.reason)
        self._send_ack(refused)

    def _send_ack(self, d: reg.Decision, stamp: int | None = None) -> None:
        if d.ack is None:
            return
        self.stats[f"BA {int(d.ack.status)}"] += 1
        if d.ack_to is None:
            return  # from the console: nothing goes on the wire
        b = self.cache.get(d.hoa)
        src = (b.local if b is not None and b.local else None) or self.settings.ha_address
        secret = self.settings.auth.get(d.hoa)
        if secret is None:
            mh = encode_mh(d.ack, src, d.hoa)
        else:
            # RFC 4285 sections 5 and 6: a BA to a protected home address
            # carries a timestamp (the BU's, echoed, or our clock for a 145)
            # and is signed with the same key, its care-of address being
            # where the BA goes
            stamp = stamp if stamp is not None else self._last_stamp.get(d.hoa, 0)
            ack = dataclasses.replace(d.ack, options=[*d.ack.options, ReplayProtection(stamp)])
            mh = rfc4285.encode_signed(ack, secret.key, secret.spi, d.ack_to, src, src, d.hoa)
        wrapped = self._esp_wrap(d.hoa, mh)  # RFC 3776 3.1: ESP after the RH2, before the MH
        if wrapped is None:
            return
        nh, mh = wrapped
        if d.ack_to == d.hoa:
            # at home (section 11.5.4: the BU came from the home address, no HAO) there is
            # no care-of address to route through: a type 2 routing header naming the
            # destination itself is dropped by a MIP6 kernel that holds no binding any more
            packet = IPv6Header(src, d.hoa, nh, len(mh), HOP_LIMIT).encode() + mh
            # out of the home interface: the binding's /128 route into the
            # tunnel may not be gone yet, and would send the BA to the old CoA
            self._datagrams.append(Datagram(packet, d.ack_to, self.settings.home_ifindex))
        else:
            packet = build_ba_packet(src, d.ack_to, d.hoa, mh, next_header=nh)
            self._datagrams.append(Datagram(packet, d.ack_to))
        log.debug("BA status %d seq %d lifetime %d to %s", d.ack.status, d.ack.sequence,
                  d.ack.lifetime_seconds, d.ack_to)

    # ----------------------------------------------------------------- DAD

    def _dad_start(self, action: reg.StartDAD, d: reg.Decision, now: float) -> None:
        if len(self._probes) >= self.settings.max_concurrent_dad:
            self.stats["DAD refused, too many running"] += 1
            self._pending_refused(action.hoa, f"{len(self._probes)} DAD probes running")
            return
        self.stats["DAD started"] += 1
        targets = (action.hoa,) + ((action.link_local,) if action.link_local else ())
        groups = tuple(dict.fromkeys(solicited_node(t) for t in targets))
        probe = _Probe(action.hoa, targets, groups, set())
        self._probes[action.hoa] = probe
        for g in groups:
            self._group_users[g] += 1
            if self._group_users[g] == 1:
                join = JoinGroup(g)
                probe.joins_waiting.add(id(join))
                self._join_for[id(join)] = g
                self._actions.append(join)
        if not probe.joins_waiting:
            self._send_probe(probe, now)
        b = self.cache.get(action.hoa)
        if self.settings.tunnel_during_dad and b is not None and action.hoa not in self._early:
            add = reg.AddBinding(action.hoa, b.coa, b.lifetime, action.link_local)
            self._early[action.hoa] = _Early(b.coa, action.link_local, id(add))
            self.stats["bindings forwarded during DAD"] += 1
            self._actions.append(add)

    def _early_follow(self, hoa: IPv6Address) -> None:
        """Keep an early binding in step with the registration that waits on
        DAD: moved with a new CoA, torn down when the registration is gone."""
        e = self._early.get(hoa)
        if e is None:
            return
        b = self.cache.get(hoa)
        if b is None:
            del self._early[hoa]
            self._actions.append(reg.DeleteBinding(hoa, e.coa, e.link_local))
        elif b.state is BindingState.DAD_PENDING and b.coa != e.coa:
            self._actions.append(reg.MoveBinding(hoa, e.coa, b.coa, b.lifetime))
            e.coa = b.coa

    def _join_done(self, action: JoinGroup, now: float) -> None:
        self._join_for.pop(id(action), None)
        for p in list(self._probes.values()):
            if id(action) in p.joins_waiting:
                p.joins_waiting.discard(id(action))
                if not p.joins_waiting and p.deadline is None:
                    self._send_probe(p, now)

    def _join_failed(self, action: JoinGroup, now: float) -> None:
        group = self._join_for.pop(id(action), None)
        if group is not None:
            self._group_users[group] -= 1  # never joined: nothing to leave
            if self._group_users[group] <= 0:
                del self._group_users[group]
        for p in [p for p in self._probes.values() if id(action) in p.joins_waiting]:
            p.joins_waiting.discard(id(action))
            p.groups = tuple(g for g in p.groups if g != group)
            self._probe_end(p)
            self._pending_refused(p.hoa, "cannot join the solicited-node group for DAD")

    def _pending_refused(self, hoa: IPv6Address, why: str) -> None:
        """A registration waiting on DAD that cannot have it: 130, and nothing stays."""
        b = self.cache.get(hoa)
        if b is None or b.state is not BindingState.DAD_PENDING:
            return
        self.cache.remove(hoa)
        d = reg.Decision(ack=BindingAck(status=BAStatus.INSUFFICIENT_RESOURCES,
                                        sequence=b.pending_sequence or 0, lifetime=0),
                         ack_to=b.pending_ack_to, hoa=hoa, coa=b.coa)
        self._refuse_now(d, BAStatus.INSUFFICIENT_RESOURCES, why)
        self._early_follow(hoa)

    def _send_probe(self, p: _Probe, now: float) -> None:
        for target in p.targets:
            group = solicited_node(target)
            body = nd.encode_icmpv6(nd.NeighborSolicitation(target=target, options=[]),
                                    UNSPECIFIED, group)
            head = IPv6Header(UNSPECIFIED, group, Proto.ICMPV6, len(body), ND_HOP_LIMIT).encode()
            self._datagrams.append(Datagram(head + body, group, self.settings.home_ifindex))
        p.sent += 1
        p.deadline = now + self.settings.dad_retrans_timer

    def _dad_observe(self, msg, src: IPv6Address, now: float) -> None:
        target = msg.target
        for p in list(self._probes.values()):
            if target not in p.targets or p.deadline is None:
                continue
            if isinstance(msg, nd.NeighborAdvertisement):
                if src in self._ours:
                    continue  # our own proxy defending it (tunnel_during_dad)
                log.info("DAD: %s is in use on the home link (NA from %s)", target, src)
            elif src == UNSPECIFIED:
                log.info("DAD: another node is probing %s", target)
            else:
                continue  # an ordinary NS for the address: not a collision (RFC 4862 5.4.3)
            self._dad_over(p, False, now)

    def _dad_over(self, p: _Probe, ok: bool, now: float) -> None:
        self._probe_end(p)
        if not ok:
            self.stats["DAD failed"] += 1
        before = self._snapshot(p.hoa)
        self._carry_out(reg.dad_finished(p.hoa, ok, self.cache, self.rules, now), before, now)

    def _probe_cancel(self, hoa: IPv6Address | None) -> None:
        p = self._probes.get(hoa)
        if p is not None:
            self._probe_end(p)

    def _probe_end(self, p: _Probe) -> None:
        self._probes.pop(p.hoa, None)
        for g in p.groups:
            self._group_users[g] -= 1
            if self._group_users[g] <= 0:
                del self._group_users[g]
                self._actions.append(LeaveGroup(g))

    # ------------------------------------------------------------- errors

    def _error_allowed(self, dst: IPv6Address, now: float) -> bool:
        if self._errors.allow(dst, now):
            return True
        self.stats["errors rate limited"] += 1
        return False

    def _parameter_problem(self, pkt: Packet, data: bytes, pointer: int, now: float) -> None:
        dst, src = pkt.header.src, pkt.header.dst
        if not self._error_allowed(dst, now):
            return
        # RFC 4443 section 2.4: as much of the invoking packet as fits in 1280
        pp = nd.ParameterProblem(code=0, pointer=pointer, invoking=data[:1280 - 48])
        self._icmp(pp, src, dst, HOP_LIMIT)
        self.stats["parameter problems sent"] += 1

    def _binding_error(self, status: BEStatus, pkt: Packet, now: float) -> None:
        dst = pkt.header.src
        if not self._error_allowed(dst, now):
            return
        # section 9.3.3: to the source of the offending packet, its home address inside
        be = BindingError(status=status, home_address=pkt.home_address or UNSPECIFIED)
        src = pkt.header.dst
        mh = encode_mh(be, src, dst)
        head = IPv6Header(src, dst, Proto.MH, len(mh), HOP_LIMIT).encode()
        self._datagrams.append(Datagram(head + mh, dst))
        self.stats[f"BE {int(status)} sent"] += 1

    # ------------------------------------------------------------ builders

    def _icmp(self, msg, src: IPv6Address, dst: IPv6Address, hop_limit: int) -> None:
        body = nd.encode_icmpv6(msg, src, dst)
        head = IPv6Header(src, dst, Proto.ICMPV6, len(body), hop_limit).encode()
        self._datagrams.append(Datagram(head + body, dst))

    def _send_via_rh2(self, msg, src: IPv6Address, coa: IPv6Address, hoa: IPv6Address) -> None:
        body = nd.encode_icmpv6(msg, src, hoa)  # checksum over the final destination
        rh2 = RoutingHeaderType2(Proto.ICMPV6, hoa).encode()
        head = IPv6Header(src, coa, Proto.ROUTING, len(rh2) + len(body), HOP_LIMIT).encode()
        self._datagrams.append(Datagram(head + rh2 + body, coa))


def _limits(s: HomeAgentSettings) -> tuple:
    return (s.new_bindings_per_prefix_rate, s.new_bindings_per_prefix_burst,
            s.new_bindings_rate, s.new_bindings_burst, s.packets_per_source_rate,
            s.packets_per_source_burst)


def _throttle(s: HomeAgentSettings) -> SourceThrottle | None:
    if s.packets_per_source_rate <= 0:
        return None
    return SourceThrottle(s.packets_per_source_rate, s.packets_per_source_burst)


def _source_of(data: bytes) -> str:
    try:
        return str(IPv6Address(data[8:24]))
    except ValueError:
        return "?"


def bu_flags(bu) -> str:
    """A BU's or binding's flags the way mip6d prints them: AHLK, '-' for clear."""
    return "".join(c if on else "-" for c, on in (("A", bu.ack), ("H", bu.home_registration),
                                                    ("L", bu.link_local_compat),
                                                    ("K", bu.key_management)))
