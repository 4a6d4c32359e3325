"""When to send which Router Advertisement on one interface (sans-I/O).

Theory of operation, in the style of aioquic's QuicConnection: the scheduler
never reads a clock, a socket or the system random source.  The caller

* passes `now` (seconds, any monotonic origin) into every call,
* feeds received Router Solicitations with `receive_rs(data, src, hop_limit, now)`,
* asks `get_timer()` when to call `handle_timer(now)` next,
* collects what to send with `datagrams_to_send()`: a list of Transmit, each
  an encoded ICMPv6 RA with its source and destination,
* calls `stop(now)` when the interface stops advertising, then keeps driving the
  timer until `finished` is true (the final RAs have gone out).

The rules, all in this file:

* RFC 4861 §6.2.4: the first RA goes out at start; unsolicited RAs then follow
  at intervals drawn uniformly from [MinRtrAdvInterval, MaxRtrAdvInterval],
  clamped to MAX_INITIAL_RTR_ADVERT_INTERVAL for the first
  MAX_INITIAL_RTR_ADVERTISEMENTS.
* RFC 4861 §6.2.6: multicast RAs are never closer than MinDelayBetweenRAs
  (RFC 6275 §7.5 lets that be 0.03 s), whatever scheduled them; a solicited
  RA waits a random 0..MAX_RA_DELAY_TIME and is folded into the next multicast
  RA if that one is due sooner; after a recent multicast RA it waits
  MinDelayBetweenRAs plus the random delay.  Unicast replies (UnicastOnly,
  AdvRASolicitedUnicast, RFC 7772 §5.1) wait the random delay too, but not
  MinDelayBetweenRAs: that rule limits multicast RAs only.
* denali's MaxRADelay (0..0.5 s, default MAX_RA_DELAY_TIME) bounds that random
  delay.  0 breaks §6.2.6's MUST on purpose, for fast handovers: a solicited RA
  that is due at once is handed out by receive_rs() itself, so the caller can
  send it in the same turn of its loop (the multicast limit still holds).
* RFC 4861 §6.1.1: an RS is dropped unless hop limit 255 and code 0 (checked by
  ha.wire.icmpv6.validate_nd), unless it decodes, and if it comes from :: with a
  Source Link-Layer Address option.
* RFC 4861 §6.2.5: on stop, MAX_FINAL_RTR_ADVERTISEMENTS RAs with router
  lifetime 0, spaced by MinDelayBetweenRAs.
* Reload (`reconfigure`) keeps the schedule: the next RA stays where it was,
  brought forward if the new MaxRtrAdvInterval is shorter.
* radvd.conf(5) DecrementLifetimes: a prefix's valid and preferred lifetimes
  count down from when the scheduler started advertising it (whole seconds of
  `now`; infinity stays infinity, RFC 4861 §4.6.2); once the preferred lifetime
  is 0 that RA goes out once more, so hosts deprecate at once, and the prefix is
  then left out.  A stanza whose preferred lifetime is 0 from the start (denali
  retiring a renumbered prefix, RFC 7084 L-13) is sent until its valid lifetime
  has run down to 0 instead.  A reload that keeps a prefix's stanza keeps its
  countdown.
* radvd's `prefix ::/64` (any all-zero prefix) stands for every global prefix on
  the interface, each with the stanza's options (radvd's add_auto_prefixes).

What goes in an RA is `build_ra()`, a pure function of the interface's
configuration and its Link (addresses, MAC) below.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Interface

from radvd.config import InterfaceConfig

MAX_INITIAL_RTR_ADVERT_INTERVAL = 16.0      # RFC 4861 §10
MAX_INITIAL_RTR_ADVERTISEMENTS = 3
MAX_FINAL_RTR_ADVERTISEMENTS = 3
MAX_RA_DELAY_TIME = 0.5
ALL_NODES = IPv6Address("ff02::1")
UNSPECIFIED = IPv6Address("::")
ND_ROUTER_SOLICIT = 133
MAX_PENDING_UNICAST = 256         # unicast replies waiting their random delay

log = logging.getLogger("denali.radvd")


@dataclass(slots=True, frozen=True)
class Link:
    """What the RA needs from the interface (read by the service from /proc, /sys)."""
    name: str
    link_local: IPv6Address
    mac: bytes | None = None
    mtu: int = 1500
    addresses: tuple[IPv6Address, ...] = ()     # global addresses on the interface
    # the same addresses with their prefix lengths, for `prefix ::/64`
    networks: tuple[IPv6Interface, ...] = ()


@dataclass(slots=True)
class Transmit:
    """One RA to send: the decision, the message and its encoded bytes."""
    data: bytes
    src: IPv6Address
    dst: IPv6Address
    message: object          # ha.wire.icmpv6.RouterAdvertisement
    kind: str                # "unsolicited", "solicited", "unicast", "final"


def advertisement_interval_ms(max_interval: float) -> int:
    """RFC 6275 §7.3; radvd adds 20 ms below 200 ms for timer granularity."""
    ms = max_interval * 1000.0
    if max_interval < 0.2:
        ms += 20
    return int(round(ms))


def router_address(prefix_config, link: Link) -> IPv6Address | None:
    """The full address for an R-flag prefix (RFC 6275 §7.2)."""
    if prefix_config.address is not None:
        return prefix_config.address
    for a in link.addresses:
        if a in prefix_config.prefix:
            return a
    return None


def is_auto_prefix(prefix_config) -> bool:
    """radvd's `prefix ::/64`: an all-zero prefix means the interface's own prefixes."""
    return prefix_config.prefix.network_address == UNSPECIFIED and prefix_config.address is None


def prefixes_of(prefix_config, link: Link, listed=frozenset()):
    """(network, router address) pairs one prefix stanza advertises on this link.

    An auto prefix yields each global prefix of the interface once, in the
    kernel's order, minus those another stanza lists itself (its own options win);
    the R flag carries the interface's address in it (RFC 6275 §7.2).
    """
    if not is_auto_prefix(prefix_config):
        router = router_address(prefix_config, link) if prefix_config.adv_router_addr else None
        return [(prefix_config.prefix, router)]
    out, seen = [], set(listed)
    for a in link.networks:
        if a.network in seen:
            continue
        seen.add(a.network)
        out.append((a.network, a.ip if prefix_config.adv_router_addr else None))
    return out


def build_ra(config: InterfaceConfig, link: Link, *, final: bool = False, lifetimes=None):
    """The RouterAdvertisement for this interface; `final` for the stop RAs (§6.2.5).

    `lifetimes`, one per prefix stanza, is (valid, preferred) or None to leave the
    prefix out (DecrementLifetimes ran it down); by default the configured ones.
    """
    from ha.wire.icmpv6 import (AdvertisementInterval, DNSSearchList, HomeAgentInformation, MTU,
                           PrefixInformation, RecursiveDNSServer, RouteInformation,
                           RouterAdvertisement, SourceLinkLayerAddress)
    config.resolve_defaults()
    options: list = []
    if lifetimes is None:
        lifetimes = [(p.adv_valid_lifetime, p.adv_preferred_lifetime) for p in config.prefixes]
    listed = frozenset(p.prefix for p in config.prefixes if not is_auto_prefix(p))
    for p, lt in zip(config.prefixes, lifetimes):
        if lt is None:
            continue
        valid, preferred = lt
        if final and p.deprecate_prefix:
            # radvd.conf(5) DeprecatePrefix; RFC 4862 §5.5.3 e) keeps 2 hours anyway
            preferred, valid = 0, min(valid, 7201)
        for network, router in prefixes_of(p, link, listed):
            options.append(PrefixInformation(network, on_link=p.adv_on_link,
                                             autonomous=p.adv_autonomous,
                                             router_address=p.adv_router_addr,
                                             valid_lifetime=valid, preferred_lifetime=preferred,
                                             router=router))
    for r in config.routes:
        lifetime = 0 if final and r.remove_route else r.adv_route_lifetime
        options.append(RouteInformation(r.prefix, r.adv_route_preference, lifetime))
    for r in config.rdnss:
        lifetime = 0 if final and r.flush_rdnss else r.adv_rdnss_lifetime
        options.append(RecursiveDNSServer(lifetime, tuple(r.servers)))
    for d in config.dnssl:
        lifetime = 0 if final and d.flush_dnssl else d.adv_dnssl_lifetime
        options.append(DNSSearchList(lifetime, tuple(d.domains)))
    if config.adv_link_mtu:
        options.append(MTU(config.adv_link_mtu))
    if config.adv_source_ll_address and link.mac:
        options.append(SourceLinkLayerAddress(link.mac))
    if config.adv_interval_opt:
        options.append(AdvertisementInterval(advertisement_interval_ms(config.max_rtr_adv_interval)))
    router_lifetime = 0 if final else config.adv_default_lifetime
    # RFC 6275 §7.4: the option SHOULD NOT be sent when both fields have their
    # defaults (preference 0, lifetime = router lifetime).  In the final RAs it is
    # left out so the home agent lifetime is the router lifetime, 0 (§11.4.1).
    if (config.adv_home_agent_info and not final
            and (config.home_agent_preference != 0
                 or config.home_agent_lifetime != router_lifetime
                 or config.adv_mob_rtr_support_flag)):
        options.append(HomeAgentInformation(config.home_agent_preference,
                                            config.home_agent_lifetime,
                                            mobile_router=config.adv_mob_rtr_support_flag))
    return RouterAdvertisement(
        cur_hop_limit=config.adv_cur_hop_limit,
        managed=config.adv_managed_flag,
        other=config.adv_other_config_flag,
        home_agent=config.adv_home_agent_flag,
        # RFC 4191 §2.2: a router that is not a default router sends Prf 0
        preference=config.adv_default_preference if router_lifetime else 0,
        router_lifetime=router_lifetime,
        reachable_time=config.adv_reachable_time,
        retrans_timer=config.adv_retrans_timer,
        options=options)


class RAScheduler:
    """The RA timing and content decisions for one interface."""

    def __init__(self, config: InterfaceConfig, link: Link, *, now: float, random):
        self.config = config
        self.link = link
        self._random = random
        self._decrementing = False      # any DecrementLifetimes stanza (set with the countdowns)
        self._static_lifetimes: list = []
        self._next_multicast: float | None = None
        self._last_multicast: float | None = None
        self._pending_unicast: dict[IPv6Address, float] = {}
        self._initial_sent = 0
        self._finals_left = 0
        self._stopping = False
        self._solicited_at: float | None = None
        self._outbox: list[Transmit] = []
        # the RA only changes with the configuration, the link or a counting-down
        # lifetime: build and encode it once per such state.  The periodic multicast
        # RA has its own slot, checked without hashing addresses (its hot path).
        self._cache: dict[tuple, tuple[object, bytes]] = {}
        self._multicast_slot: tuple | None = None     # (final, lifetimes, ra, data)
        # DecrementLifetimes: when each prefix stanza's countdown began, and those run out
        self._countdown: dict[tuple, float] = {}
        self._ceased: set[tuple] = set()
        self._start_countdowns(now)
        self.ras_sent = 0
        self.rs_received = 0
        self.rs_dropped_malformed = 0
        self.rs_ignored = 0
        if self._advertises_multicast:
            self._next_multicast = now    # §6.2.4: advertise as soon as the interface is up

    # ------------------------------------------------------------------ state

    @staticmethod
    def _countdown_key(p) -> tuple:
        return (p.prefix, p.address, p.adv_valid_lifetime, p.adv_preferred_lifetime)

    def _start_countdowns(self, now: float) -> None:
        # a stanza that is still there unchanged keeps counting (SIGHUP is no reset)
        old, self._countdown = self._countdown, {}
        for p in self.config.prefixes:
            if p.decrement_lifetimes:
                key = self._countdown_key(p)
                self._countdown[key] = old.get(key, now)
        self._ceased &= set(self._countdown)
        self._decrementing = bool(self._countdown)
        self._static_lifetimes = [(p.adv_valid_lifetime, p.adv_preferred_lifetime)
                                  for p in self.config.prefixes]

    def prefix_lifetimes(self, now: float) -> list:
        """(valid, preferred) per prefix stanza at `now`, None for one that has run out."""
        if not self._decrementing:
            return self._static_lifetimes       # nothing counts down: the configured ones
        from radvd.config import INFINITY
        out = []
        for p in self.config.prefixes:
            valid, preferred = p.adv_valid_lifetime, p.adv_preferred_lifetime
            if p.decrement_lifetimes:
                key = self._countdown_key(p)
                if key in self._ceased:
                    out.append(None)
                    continue
                gone = max(0, int(now - self._countdown[key]))
                if valid != INFINITY:
                    valid = max(0, valid - gone)
                if preferred != INFINITY:
                    preferred = max(0, preferred - gone)
            out.append((valid, preferred))
        return out

    def _lifetimes_sent(self, lifetimes: list) -> None:
        # radvd.conf(5): after an RA with preferred lifetime 0 the prefix is no longer sent
        if not self._decrementing:
            return
        for p, lt in zip(self.config.prefixes, lifetimes):
            # a stanza deprecated from the start (preferred 0: a prefix being
            # retired, RFC 7084 L-13) is advertised until its valid lifetime ends
            done = lt is not None and lt[1] == 0 and (p.adv_preferred_lifetime != 0 or lt[0] == 0)
            if p.decrement_lifetimes and done:
                self._ceased.add(self._countdown_key(p))
                log.info("%s: prefix %s ran down to preferred lifetime 0 (DecrementLifetimes), "
                         "no longer advertised", self.config.name, p.prefix)

    @property
    def _advertises_multicast(self) -> bool:
        c = self.config
        return c.adv_send_advert and not c.unicast_only

    @property
    def finished(self) -> bool:
        """After stop(): true once the final RAs have been handed out."""
        return self._stopping and self._finals_left == 0

    @property
    def next_multicast(self) -> float | None:
        return self._next_multicast

    @property
    def last_multicast(self) -> float | None:
        return self._last_multicast

    def get_timer(self) -> float | None:
        """When handle_timer() must run next, or None when nothing is due."""
        if not self._pending_unicast:
            return self._next_multicast
        times = [t for t in (self._next_multicast, *self._pending_unicast.values())
                 if t is not None]
        return min(times) if times else None

    # ------------------------------------------------------------------ events

    def handle_timer(self, now: float) -> None:
        nxt = self._next_multicast
        if nxt is not None and now >= nxt:
            last = self._last_multicast
            if last is not None and now + 1e-6 < last + self.config.min_delay_between_ras:
                # whatever moved it here (a reload, a shorter interval), multicast RAs
                # keep MinDelayBetweenRAs apart (RFC 4861 §6.2.6, RFC 6275 §7.5)
                self._next_multicast = last + self.config.min_delay_between_ras
            elif self._stopping:
                self._send_final(now)
            else:
                self._send_multicast(now, "unsolicited" if self._solicited_at is None
                                     else "solicited")
        if not self._pending_unicast:
            return
        for dst, due in list(self._pending_unicast.items()):
            if now >= due:
                del self._pending_unicast[dst]
                lifetimes = self.prefix_lifetimes(now)
                self._emit(dst, "unicast", lifetimes)
                self._lifetimes_sent(lifetimes)

    def receive_rs(self, data: bytes, src: IPv6Address, hop_limit: int, now: float,
                   dst: IPv6Address | None = None) -> None:
        """A received ICMPv6 message (type 133 expected) and its IPv6 header fields."""
        from ha.wire.errors import CodecError
        from ha.wire.icmpv6 import RouterSolicitation, SourceLinkLayerAddress, decode_icmpv6, \
            option, validate_nd
        if len(data) < 1 or data[0] != ND_ROUTER_SOLICIT:
            return                          # not ours: the filter lets only RS through
        self.rs_received += 1
        code = data[1] if len(data) > 1 else 0
        reason = validate_nd(ND_ROUTER_SOLICIT, code, hop_limit)
        if reason is None:
            try:
                msg = decode_icmpv6(data, src, dst) if dst is not None else decode_icmpv6(data)
            except CodecError as e:
                reason = f"undecodable RS: {e}"
            else:
                if not isinstance(msg, RouterSolicitation):
                    reason = "not a Router Solicitation"
                elif src == UNSPECIFIED and option(msg, SourceLinkLayerAddress) is not None:
                    reason = "RS from :: with a source link-layer address option"  # §6.1.1
        if reason is not None:
            self.rs_dropped_malformed += 1
            log.debug("%s: dropped RS from %s: %s", self.config.name, src, reason)
            return
        c = self.config
        if not c.adv_send_advert or self._stopping:
            self.rs_ignored += 1
            return
        if c.clients and src not in c.clients:
            self.rs_ignored += 1
            log.debug("%s: RS from %s, not in clients", c.name, src)
            return
        # RFC 4861 §6.2.6's random delay, bounded by MaxRADelay (0: none, no draw)
        limit = c.max_ra_delay
        delay = self._random.uniform(0.0, limit) if limit > 0 else 0.0
        if (c.unicast_only or c.adv_ra_solicited_unicast or c.clients) and src != UNSPECIFIED:
            if src in self._pending_unicast:
                log.debug("%s: RS from %s, unicast RA already due in %.3f s", c.name, src,
                          self._pending_unicast[src] - now)
                return
            if delay <= 0.0:
                # due now: out in this call, no timer turn (MinDelayBetweenRAs limits
                # multicast RAs only, RFC 4861 §6.2.6)
                lifetimes = self.prefix_lifetimes(now)
                self._emit(src, "unicast", lifetimes)
                self._lifetimes_sent(lifetimes)
                log.debug("%s: RS from %s, unicast RA now", c.name, src)
                return
            if len(self._pending_unicast) >= MAX_PENDING_UNICAST:
                self.rs_ignored += 1        # a flood of sources: no unbounded state
                return
            self._pending_unicast[src] = now + delay
            log.debug("%s: RS from %s, unicast RA in %.3f s", c.name, src, delay)
            return
        if c.unicast_only:
            self.rs_ignored += 1
            return
        due = now + delay
        if self._last_multicast is not None and now - self._last_multicast < c.min_delay_between_ras:
            due = self._last_multicast + c.min_delay_between_ras + delay
        if self._next_multicast is not None and self._next_multicast <= due:
            log.debug("%s: RS from %s answered by the RA due in %.3f s", c.name, src,
                      self._next_multicast - now)
            return
        self._next_multicast = due
        if self._solicited_at is None:
            self._solicited_at = now
        if due <= now:
            log.debug("%s: RS from %s, multicast RA now", c.name, src)
            self._send_multicast(now, "solicited")
            return
        log.debug("%s: RS from %s, multicast RA in %.3f s", c.name, src, due - now)

    def stop(self, now: float) -> None:
        """Stop advertising: schedule the final RAs (RFC 4861 §6.2.5)."""
        if self._stopping:
            return
        self._stopping = True
        self._pending_unicast.clear()
        if not self._advertises_multicast or self._last_multicast is None:
            # never advertised: nothing to withdraw
            self._next_multicast = None
            return
        self._finals_left = MAX_FINAL_RTR_ADVERTISEMENTS
        self._next_multicast = max(now, self._last_multicast + self.config.min_delay_between_ras)

    def reconfigure(self, config: InterfaceConfig, now: float) -> None:
        """New configuration for the same interface (SIGHUP): keep the schedule."""
        was = self._advertises_multicast
        self.config = config
        self._cache.clear()
        self._multicast_slot = None
        self._start_countdowns(now)
        if self._stopping:
            return
        if not self._advertises_multicast:
            self._next_multicast = None
            self._solicited_at = None
        elif not was or self._next_multicast is None:
            self._next_multicast = now
            self._initial_sent = 0
        else:
            self._next_multicast = min(self._next_multicast, now + config.max_rtr_adv_interval)
        if not (config.adv_send_advert and (config.unicast_only or config.adv_ra_solicited_unicast
                                            or config.clients)):
            self._pending_unicast.clear()

    def set_link(self, link: Link) -> None:
        """The interface's addresses or MAC changed: later RAs carry the new ones."""
        self.link = link
        self._cache.clear()
        self._multicast_slot = None

    def datagrams_to_send(self) -> list[Transmit]:
        out, self._outbox = self._outbox, []
        return out

    # ------------------------------------------------------------------ internals

    def _send_multicast(self, now: float, kind: str) -> None:
        c = self.config
        lifetimes = self.prefix_lifetimes(now)
        if c.clients:
            # radvd.conf(5) clients: no multicast, the same RA to each listed client
            for client in c.clients:
                self._emit(client, kind, lifetimes)
        else:
            self._emit(ALL_NODES, kind, lifetimes)
            self._pending_unicast.clear()   # the soliciters hear this one
        self._lifetimes_sent(lifetimes)
        # Count the next interval from when this RA was due, not from when the caller
        # got round to it, so that timer lateness does not add up into longer gaps;
        # a caller that was very late (suspended, busy) starts afresh from now.
        due = self._next_multicast if self._next_multicast is not None else now
        base = due if now - due < c.min_rtr_adv_interval / 2 else now
        self._last_multicast = now
        self._solicited_at = None
        interval = self._random.uniform(c.min_rtr_adv_interval, c.max_rtr_adv_interval)
        self._initial_sent += 1
        if self._initial_sent < MAX_INITIAL_RTR_ADVERTISEMENTS:
            interval = min(interval, MAX_INITIAL_RTR_ADVERT_INTERVAL)
        # MinDelayBetweenRAs is measured from the real send time (RFC 4861 §6.2.6 MUST)
        self._next_multicast = max(base + interval, now + c.min_delay_between_ras)

    def _send_final(self, now: float) -> None:
        c = self.config
        lifetimes = self.prefix_lifetimes(now)
        for dst in (c.clients or [ALL_NODES]):
            self._emit(dst, "final", lifetimes, final=True)
        self._last_multicast = now
        self._finals_left -= 1
        self._next_multicast = (now + c.min_delay_between_ras) if self._finals_left else None

    def _emit(self, dst: IPv6Address, kind: str, lifetimes: list, final: bool = False) -> None:
        # The encoded bytes differ only by what build_ra() reads (configuration and
        # link: both clear the cache), the final flag, the prefix lifetimes that count
        # down, and the destination (in the checksum's pseudo-header).
        slot = self._multicast_slot
        if dst is ALL_NODES and slot is not None and slot[0] is final and slot[1] == lifetimes:
            ra, data = slot[2], slot[3]
        else:
            key = (final, dst, tuple(lifetimes))
            cached = self._cache.get(key)
            if cached is None:
                from ha.wire.icmpv6 import encode_icmpv6
                ra = build_ra(self.config, self.link, final=final, lifetimes=lifetimes)
                cached = (ra, encode_icmpv6(ra, self.link.link_local, dst))
                if len(self._cache) > 64:          # unicast destinations come and go
                    self._cache.clear()
                self._cache[key] = cached
            ra, data = cached
            if dst is ALL_NODES:
                self._multicast_slot = (final, list(lifetimes), ra, data)
        self._outbox.append(Transmit(data, self.link.link_local, dst, ra, kind))
        self.ras_sent += 1
