"""The mobile node: movement detection and home registration, RFC 6275
sections 11.5 and 11.7. The mirror image of ha/core/registration.py.

Two rules about this file:

1. Everything that decides what the mobile node does lives here: whether it
   has moved, which care-of address it uses, when a Binding Update goes out
   and with which sequence number and lifetime, what a Binding
   Acknowledgement means, when the tunnel comes up and when the home
   address goes back on the home link. If the adapter (ha/daemon/mobile_node.py)
   ever tests a protocol field, the test belongs here instead.

2. This file does no I/O. It does not read a clock, a socket or the kernel.
   Like aioquic's QuicConnection, bytes and `now` (seconds from the caller's
   monotonic clock) go in, and datagrams and actions come out: the caller
   sends what datagrams_to_send(now) gives, runs what next_action() gives
   (plain data for kernel work: the home address on the link, the tunnel,
   a lost router's routes), asks get_timer() when to call handle_timer(now)
   next, and passes in the random source (`rng`) the first sequence number
   comes from.

Theory of operation
-------------------

Inputs, as the sockets give them:

  receive_packet(data, now)                   a whole IPv6 packet from the packet
                                              socket: a BA or a BRR (a kernel
                                              without MIP6 drops the BA's RH2)
  receive_icmpv6(data, src, hop_limit, now)   an ICMPv6 message from the raw
                                              socket on our interface (RAs)
  set_addresses(addresses, now)               the interface's global addresses
                                              (the kernel's SLAAC makes the CoA)
  link_up(now) / link_down(now)               layer-2 hints (section 11.5.1)
  handle_timer(now)                           when get_timer() says so

Outputs:

  datagrams_to_send(now)   Datagram: BUs as whole IPv6 packets for a
                           header-included raw socket (the Home Address
                           option and the MH checksum are ours to get right),
                           RSs and the NA of section 11.5.4 as ICMPv6
                           messages for the raw ICMPv6 socket
  next_action()            HomeAddressOnLink, TunnelUp, TunnelDown, ForgetRouter

The decoded-message methods below those (receive_router_advertisement,
receive_binding_ack, receive_binding_refresh_request) are where the rules
are; the byte-level ones only decode, count what does not, and call them.

Two parts, one below the other:

* Movement detection (section 11.5.1) keeps the routers heard on the link and
  picks a default router. A router is lost when its router lifetime runs out
  or, when it sends the Advertisement Interval option (section 7.3), after
  MISSED_ADVERTISEMENTS intervals of silence. An RA from a *new* router whose
  prefixes share nothing with the default router's is the hint of section
  11.5.1 that we may have moved: the default router then has one of its
  intervals (HINT_GRACE when it gave none) to be heard again, or it is lost.
  A router that is still heard is kept, so two routers on one link do not
  make the node flap. The default router's prefixes give the location: the
  home prefix means home, anything else means away, with the care-of address
  taken from the interface's addresses in those prefixes (kept while it
  stays valid: a new CoA is a new registration).

* Registration (sections 11.7.1 and 11.7.3) is one Binding Update List entry
  for the home agent, driven by the table _TRANSITIONS below: a state and an
  event give the next state and the effects, which are the small methods
  named _do_*.

Registration states:

  IDLE           no binding at the home agent, nothing outstanding (at home)
  REGISTERING    a BU with lifetime > 0 is outstanding and no binding is known
                 to exist for the current CoA: retransmitted with backoff
  REGISTERED     the HA accepted; the tunnel is up; a refresh BU goes out
                 before the lifetime ends (the entry shows "ack pending" while
                 it is outstanding)
  DEREGISTERING  back home: the lifetime-0 BU of section 11.5.4 is outstanding
  REFUSED        the HA said no (status >= 128 other than 135): no more BUs
                 until the next movement

Retransmission (section 11.8): INITIAL_BINDING_ACK_TIMEOUT_FIRSTREG (1.5 s)
when the home agent has no binding for us (it runs DAD first), else
INITIAL_BINDING_ACK_TIMEOUT (1 s), doubled each time up to MAX_BINDACK_TIMEOUT
(32 s), then kept there. Every transmission, retransmissions included, takes
a new sequence number (section 11.7.1).

Choices where the RFC leaves room, and why
------------------------------------------

* The BU lifetime is the smallest of the configured maximum (mip6d's
  MnMaxHaBindingLife, 262140 s), the remaining valid lifetime of the CoA's
  prefix and that of the home prefix as last heard at home (section 11.7.1:
  no greater than the remaining lifetimes of the home address and CoA).
* The granted lifetime counts from the time the accepted BU was sent
  (section 11.7.3). The refresh goes out a margin before expiry: a tenth of
  the lifetime, at least REFRESH_MARGIN_MIN seconds, never more than half
  the lifetime; a Binding Refresh Advice option in the BA brings it earlier.
* When a binding expires anyway, the tunnel goes down and a fresh
  registration starts (the home agent has dropped the binding too).
* Status 135 carries the home agent's last accepted sequence number (section
  9.5.1), so that BA is taken whatever its sequence number while a BU is
  outstanding, and the BU goes again at once with that number + 1.
* A deregistration answered with any refusal ends the entry too: 133 means
  the home agent has no binding for us, which is what we wanted, and there
  is nothing else a refusal could make us do.
* While the location is unknown (no router heard, or all lost) the binding
  is left alone: losing the link is not movement.
* An RA whose source is not link-local is ignored (RFC 4861 section 6.1.2);
  an RA with router lifetime 0 removes that router as a default router.
* With optimistic_handoff (UMIP's OptimisticHandoff, off by default) the
  tunnel comes up as the BU of a new registration goes out, so traffic
  flows while the home agent runs its DAD; a refusal or a return home takes
  it down again. Without it the tunnel waits for the BA, as section 11.7.1
  has the binding start from the acceptance.
* With an MN-HA secret in the config (RFC 4285), every BU carries a replay
  protection timestamp and the authentication option last, and a BA is
  taken only when its authenticator checks out and it echoes the timestamp
  of the BU it answers; anything else is counted in ba_auth_failed and
  ignored, as if lost. A 145 (MIPV6-MESG-ID-REQD) carries the home agent's
  clock: the offset is learnt from it and the BU goes again at once, once
  per BU. The wall clock comes in through set_wall_clock(); without it the
  first BU is stamped with `now` and the home agent's 145 corrects it.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Interface, IPv6Network

from ha.wire import auth as rfc4285
from ha.wire.errors import CodecError
from ha.wire.icmpv6 import (INFINITY, AdvertisementInterval, NeighborAdvertisement,
                            PrefixInformation, RouterAdvertisement, RouterSolicitation,
                            TargetLinkLayerAddress, decode_icmpv6, encode_icmpv6, validate_nd)
from ha.wire.ipv6 import IPv6Header, build_bu_packet
from ha.wire.mobility import (BAStatus, BindingAck, BindingRefreshAdvice,
                              BindingRefreshRequest, BindingUpdate, ReplayProtection,
                              decode_mh_packet, encode_mh)

log = logging.getLogger("denali.mn")

ALL_NODES = IPv6Address("ff02::1")
ALL_ROUTERS = IPv6Address("ff02::2")
UNSPECIFIED = IPv6Address("::")
IPPROTO_MH = 135

# RFC 6275 section 12 constants, seconds
INITIAL_BINDING_ACK_TIMEOUT = 1.0
INITIAL_BINDING_ACK_TIMEOUT_FIRSTREG = 1.5
MAX_BINDACK_TIMEOUT = 32.0

MAX_LIFETIME = 0xFFFF * 4  # the BU lifetime field: 16 bits of 4-second units
DEFAULT_MAX_LIFETIME = 262140  # mip6d's MnMaxHaBindingLife default
MISSED_ADVERTISEMENTS = 3  # intervals of silence before a router is lost
HINT_GRACE = 1.5  # seconds a hinted-away router has when it gave no interval
REFRESH_MARGIN_MIN = 3.0  # seconds before expiry, at least (never over half the lifetime)
SEQUENCE_MODULUS = 1 << 16


class Location(enum.Enum):
    UNKNOWN = "unknown"
    HOME = "home"
    AWAY = "away"


class RegState(enum.Enum):
    IDLE = "idle"
    REGISTERING = "registering"
    REGISTERED = "registered"
    DEREGISTERING = "deregistering"
    REFUSED = "refused"


class Event(enum.Enum):
    MOVED = "moved"  # away, with a care-of address other than the one bound
    RETURNED_HOME = "returned home"
    BA_ACCEPTED = "BA accepted"
    BA_SEQUENCE = "BA 135"  # sequence number out of window
    BA_REFUSED = "BA refused"
    RETRANSMIT = "retransmit"
    REFRESH = "refresh"
    EXPIRED = "expired"


# ================================================================= config


@dataclass(slots=True)
class MobileNodeConfig:
    home_address: IPv6Interface  # with the home prefix length, e.g. 2001:db8::beef/64
    home_agent: IPv6Address
    interface: str = ""  # for the binding update list only
    max_lifetime: int = DEFAULT_MAX_LIFETIME  # seconds
    link_layer_address: bytes = b""  # ours, for the NA of section 11.5.4
    secret: rfc4285.MnHaSecret | None = None  # RFC 4285 MN-HA SPI and key; None: unsigned
    # UMIP's OptimisticHandoff: the tunnel comes up with the BU of a new
    # registration, not with its BA (see "Choices" above)
    optimistic_handoff: bool = False

    @property
    def home_prefix(self) -> IPv6Network:
        return self.home_address.network


# ================================================================ actions


@dataclass(slots=True, frozen=True)
class Datagram:
    """Bytes to send to `destination`. With icmpv6 False, `data` is a whole
    IPv6 packet for a header-included raw socket (a BU); with icmpv6 True it
    is an ICMPv6 message for the raw ICMPv6 socket on our interface, sent
    from `source` (None: the kernel picks it), the kernel filling in the
    checksum for the real addresses (RFC 3542 section 3.1). `what` says what
    it is, for the log."""

    data: bytes
    destination: IPv6Address
    source: IPv6Address | None = None
    icmpv6: bool = False
    what: str = ""


@dataclass(slots=True)
class HomeAddressOnLink:
    """Put the home address on the interface (present) or take it off: it is
    on-link at home only (sections 11.5.4 and 11.5.2)."""

    address: IPv6Interface
    present: bool


@dataclass(slots=True)
class TunnelUp:
    """The bidirectional tunnel to the home agent (section 11.3.1): the home
    address on the tunnel, traffic from it encapsulated CoA -> HA."""

    home_address: IPv6Address
    care_of_address: IPv6Address
    home_agent: IPv6Address


@dataclass(slots=True)
class TunnelDown:
    home_address: IPv6Address


@dataclass(slots=True)
class ForgetRouter:
    """A router was lost (section 11.5.1): drop its default route and the
    prefixes (routes, autoconfigured addresses) no live router still announces.
    The home address is never among what goes: HomeAddressOnLink moves it."""

    router: IPv6Address
    prefixes: tuple[IPv6Network, ...]


Action = HomeAddressOnLink | TunnelUp | TunnelDown | ForgetRouter


# ======================================================= movement detection


@dataclass(slots=True)
class Router:
    address: IPv6Address  # link-local source of its RAs
    heard_at: float
    deadline: float  # lost when now reaches this
    interval: float | None  # from the Advertisement Interval option, seconds
    home_agent: bool = False  # the RA's H flag
    # prefix -> absolute end of valid lifetime (None: infinite)
    prefixes: dict[IPv6Network, float | None] = field(default_factory=dict)


def _prefix_valid_until(pio: PrefixInformation, now: float) -> float | None:
    return None if pio.valid_lifetime == INFINITY else now + pio.valid_lifetime


# ============================================================ the entry


@dataclass(slots=True)
class BindingUpdateListEntry:
    """The one entry, for the home agent (section 11.1)."""

    home_address: IPv6Address
    home_agent: IPv6Address
    care_of_address: IPv6Address | None = None
    sequence: int = 0  # of the last BU sent
    lifetime: int = 0  # seconds asked in the last BU
    sent_at: float = 0.0  # when the last BU went out
    outstanding: bool = False  # a BU waits for its BA
    timeout: float = INITIAL_BINDING_ACK_TIMEOUT  # current retransmission timeout
    retransmit_at: float | None = None
    resends: int = 0  # retransmissions of the current BU
    granted: int = 0  # seconds the HA granted (0: no binding known)
    expires_at: float | None = None
    refresh_at: float | None = None
    last_status: int | None = None
    last_coa: IPv6Address | None = None  # CoA of the last accepted binding
    stamp: int = 0  # RFC 4285 timestamp of the last BU sent (0: none)
    resynced: bool = False  # a 145 already corrected the clock for this BU


# ======================================================= the transitions

# (state, event) -> (next state, effects). Anything missing is ignored: a BA
# while nothing is outstanding, a refresh timer in the wrong state, and so on.
_TRANSITIONS: dict[tuple[RegState, Event], tuple[RegState, tuple[str, ...]]] = {
    (RegState.IDLE, Event.MOVED): (RegState.REGISTERING, ("send_registration",)),
    (RegState.REGISTERING, Event.MOVED): (RegState.REGISTERING, ("send_registration",)),
    (RegState.REGISTERED, Event.MOVED): (RegState.REGISTERING,
                                         ("tunnel_down", "send_registration")),
    (RegState.REFUSED, Event.MOVED): (RegState.REGISTERING, ("send_registration",)),
    (RegState.DEREGISTERING, Event.MOVED): (RegState.REGISTERING, ("send_registration",)),

    (RegState.REGISTERING, Event.RETURNED_HOME): (RegState.DEREGISTERING,
                                                  ("tunnel_down", "send_deregistration")),
    (RegState.REGISTERED, Event.RETURNED_HOME): (RegState.DEREGISTERING,
                                                 ("tunnel_down", "send_deregistration")),
    (RegState.REFUSED, Event.RETURNED_HOME): (RegState.DEREGISTERING,
                                              ("send_deregistration",)),

    (RegState.REGISTERING, Event.BA_ACCEPTED): (RegState.REGISTERED,
                                                ("bind", "tunnel_up")),
    (RegState.REGISTERED, Event.BA_ACCEPTED): (RegState.REGISTERED, ("bind",)),
    (RegState.DEREGISTERING, Event.BA_ACCEPTED): (RegState.IDLE,
                                                  ("forget_binding", "announce_home")),

    (RegState.REGISTERING, Event.BA_SEQUENCE): (RegState.REGISTERING, ("resend_after_135",)),
    (RegState.REGISTERED, Event.BA_SEQUENCE): (RegState.REGISTERED, ("resend_after_135",)),
    (RegState.DEREGISTERING, Event.BA_SEQUENCE): (RegState.DEREGISTERING,
                                                  ("resend_after_135",)),

    (RegState.REGISTERING, Event.BA_REFUSED): (RegState.REFUSED, ("stop", "tunnel_down")),
    (RegState.REGISTERED, Event.BA_REFUSED): (RegState.REFUSED, ("stop", "tunnel_down")),
    (RegState.DEREGISTERING, Event.BA_REFUSED): (RegState.IDLE,
                                                 ("forget_binding", "announce_home")),

    (RegState.REGISTERING, Event.RETRANSMIT): (RegState.REGISTERING, ("retransmit",)),
    (RegState.REGISTERED, Event.RETRANSMIT): (RegState.REGISTERED, ("retransmit",)),
    (RegState.DEREGISTERING, Event.RETRANSMIT): (RegState.DEREGISTERING, ("retransmit",)),

    (RegState.REGISTERED, Event.REFRESH): (RegState.REGISTERED, ("send_refresh",)),
    (RegState.REGISTERED, Event.EXPIRED): (RegState.REGISTERING,
                                           ("unbind", "tunnel_down", "send_registration")),
}


class MobileNode:
    """Sans-I/O mobile node for one home address and one home agent."""

    def __init__(self, config: MobileNodeConfig, *, rng=None,
                 initial_sequence: int | None = None):
        """`rng` is the caller's random source (anything with randrange(),
        e.g. random.SystemRandom()); `initial_sequence` instead fixes the
        first sequence number. One of the two is needed."""
        self.config = config
        self.hoa = config.home_address.ip
        self.state = RegState.IDLE
        self.location = Location.UNKNOWN
        self.routers: dict[IPv6Address, Router] = {}
        self.default_router: IPv6Address | None = None
        self.addresses: frozenset[IPv6Address] = frozenset()
        self.care_of_address: IPv6Address | None = None  # the one in use while away
        self.home_prefix_valid_until: float | None = None  # as last heard at home
        if initial_sequence is None:
            if rng is None:
                raise TypeError("MobileNode needs rng or initial_sequence")
            # section 11.7.1 leaves the start open; random avoids 135 after a restart
            initial_sequence = rng.randrange(SEQUENCE_MODULUS)
        self.bul = BindingUpdateListEntry(self.hoa, config.home_agent,
                                          sequence=(initial_sequence - 1) % SEQUENCE_MODULUS)
        self._actions: list = []
        self._datagrams: list[Datagram] = []
        self._tunnel_coa: IPv6Address | None = None  # the CoA the tunnel is up for
        self.counters = dict.fromkeys(("bu_sent", "bu_retransmitted", "ba_accepted",
                                       "ba_refused", "ba_135", "ba_ignored", "ra_ignored",
                                       "movements", "routers_lost", "malformed",
                                       "ba_auth_failed", "ba_145_resync"), 0)
        self._wall_offset = 0.0  # wall clock minus `now`, from set_wall_clock()
        self._ha_skew = 0.0  # the home agent's clock minus ours, learnt from a 145

    def set_wall_clock(self, wall: float, now: float) -> None:
        """The wall clock (Unix seconds) as it reads at `now`: RFC 4285
        timestamps are wall-clock time, and this file reads no clock."""
        self._wall_offset = wall - now

    # ================================================================= bytes in

    def receive_packet(self, data: bytes, now: float) -> None:
        """A whole IPv6 packet from the packet socket; anything but a BA or a
        BRR is left alone, and one that does not decode is counted."""
        try:
            got = decode_mh_packet(data)
        except CodecError:
            self.counters["malformed"] += 1
            return
        if got is None:
            return
        pkt, msg = got
        # the home address is in the type 2 routing header, else the destination
        hoa = pkt.routing_address or pkt.header.dst
        if isinstance(msg, BindingAck):
            log.info("BA status %d seq %d lifetime %d from %s", int(msg.status),
                     msg.sequence, msg.lifetime_seconds, pkt.header.src)
            secret = self.config.secret
            if secret is not None:
                # RFC 4285 section 5.2: the care-of address of a BA is its destination
                why = rfc4285.verify_mh(pkt.payload, secret.key, secret.spi, pkt.header.dst,
                                        pkt.header.src)
                if why is not None:
                    self.counters["ba_auth_failed"] += 1
                    log.warning("BA from %s ignored: %s", pkt.header.src, why)
                    return
            self.receive_binding_ack(msg, pkt.header.src, hoa, now)
        elif isinstance(msg, BindingRefreshRequest):
            log.info("BRR from %s", pkt.header.src)
            self.receive_binding_refresh_request(pkt.header.src, hoa, now)

    def receive_icmpv6(self, data: bytes, src: IPv6Address, hop_limit: int | None,
                       now: float) -> None:
        """An ICMPv6 message from the raw socket (the kernel checked its
        checksum); ND messages need hop limit 255 (RFC 4861 section 6.1.2)."""
        if len(data) < 4 or validate_nd(data[0], data[1], hop_limit) is not None:
            self.counters["ra_ignored"] += 1
            return
        try:
            msg = decode_icmpv6(data)
        except CodecError:
            self.counters["malformed"] += 1
            return
        if isinstance(msg, RouterAdvertisement):
            self.receive_router_advertisement(msg, src, now)

    # ================================================================ outputs

    def datagrams_to_send(self, now: float) -> list[Datagram]:
        """Everything to send now, oldest first; each is returned once."""
        out, self._datagrams = self._datagrams, []
        return out

    def next_action(self):
        """The oldest action not yet taken, or None."""
        return self._actions.pop(0) if self._actions else None

    def get_timer(self) -> float | None:
        """When handle_timer() must run next (absolute), or None."""
        times = [r.deadline for r in self.routers.values()]
        b = self.bul
        if b.outstanding and b.retransmit_at is not None:
            times.append(b.retransmit_at)
        if self.state is RegState.REGISTERED:
            if b.refresh_at is not None and not b.outstanding:
                times.append(b.refresh_at)
            if b.expires_at is not None:
                times.append(b.expires_at)
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        lost = [r for r in self.routers.values() if r.deadline <= now]
        for r in lost:
            self._lose_router(r, now)
        if lost:
            self._evaluate_location(now)
        b = self.bul
        # refresh before expiry, so a late call still refreshes first
        if self.state is RegState.REGISTERED and not b.outstanding \
                and b.refresh_at is not None and b.refresh_at <= now:
            self._fire(Event.REFRESH, now)
        elif b.outstanding and b.retransmit_at is not None and b.retransmit_at <= now:
            self._fire(Event.RETRANSMIT, now)
        if self.state is RegState.REGISTERED and b.expires_at is not None \
                and b.expires_at <= now:
            self._fire(Event.EXPIRED, now)

    # ==================================================== movement detection

    def receive_router_advertisement(self, ra: RouterAdvertisement, src: IPv6Address,
                                     now: float) -> None:
        if not src.is_link_local:
            self.counters["ra_ignored"] += 1  # RFC 4861 section 6.1.2
            return
        prefixes, withdrawn = {}, set()
        for opt in ra.options:
            if isinstance(opt, PrefixInformation) and not opt.prefix.is_link_local:
                if opt.valid_lifetime:
                    prefixes[opt.prefix] = _prefix_valid_until(opt, now)
                else:
                    withdrawn.add(opt.prefix)
                if opt.prefix == self.config.home_prefix:
                    self.home_prefix_valid_until = _prefix_valid_until(opt, now)
        interval_opt = next((o for o in ra.options if isinstance(o, AdvertisementInterval)),
                            None)
        interval = interval_opt.interval_ms / 1000 if interval_opt else None
        known = self.routers.get(src)
        if ra.router_lifetime == 0:
            # no longer a default router (RFC 4861 section 6.3.4)
            if known is not None:
                self._lose_router(known, now)
                self._evaluate_location(now)
            return
        deadline = now + ra.router_lifetime
        if interval:
            deadline = min(deadline, now + MISSED_ADVERTISEMENTS * interval)
        if known is None:
            router = self.routers[src] = Router(src, now, deadline, interval, ra.home_agent)
        else:
            router = known
            router.heard_at, router.deadline, router.interval = now, deadline, interval
            router.home_agent = ra.home_agent
        changed = known is None or not prefixes.keys() <= router.prefixes.keys()
        router.prefixes.update(prefixes)
        for p in [p for p, until in router.prefixes.items()
                  if p in withdrawn or (until is not None and until <= now)]:
            del router.prefixes[p]
            changed = True
        current = self.routers.get(self.default_router) if self.default_router else None
        if current is None:
            self._evaluate_location(now)
        elif current is not router and known is None \
                and not (router.prefixes.keys() & current.prefixes.keys()):
            # section 11.5.1: a new router with new prefixes hints at movement; the
            # default router has one interval to be heard again
            grace = current.interval or HINT_GRACE
            current.deadline = min(current.deadline, now + grace)
        elif current is router and changed:
            self._evaluate_location(now)

    def set_addresses(self, addresses, now: float) -> None:
        """The global addresses on the interface now (tentative ones left out)."""
        new = frozenset(IPv6Address(str(a).split("/")[0]) for a in addresses)
        if new != self.addresses:
            self.addresses = new
            self._evaluate_location(now)

    def link_up(self, now: float) -> None:
        """Layer 2 came (back) up, maybe on another link: ask routers now, and
        give each known router one interval to confirm it is still here."""
        for r in self.routers.values():
            r.deadline = min(r.deadline, now + (r.interval or HINT_GRACE))
        # the kernel's raw ICMPv6 socket fixes the checksum for the real source
        self._datagrams.append(Datagram(encode_icmpv6(RouterSolicitation(), UNSPECIFIED,
                                                      ALL_ROUTERS), ALL_ROUTERS,
                                        icmpv6=True, what="RS"))

    def link_down(self, now: float) -> None:
        """Layer 2 went down: every router heard on it is gone (the binding stays)."""
        for r in list(self.routers.values()):
            self._lose_router(r, now)
        self._evaluate_location(now)

    def _lose_router(self, router: Router, now: float) -> None:
        self.routers.pop(router.address, None)
        self.counters["routers_lost"] += 1
        still = set()
        for r in self.routers.values():
            still.update(r.prefixes)
        # the home prefix too: away, its on-link route would hide the home link
        # behind this one (the home address itself is the HomeAddressOnLink's)
        gone = tuple(p for p in router.prefixes if p not in still)
        self._actions.append(ForgetRouter(router.address, gone))
        if router.address == self.default_router:
            self.default_router = None

    def _choose_default_router(self) -> Router | None:
        if self.default_router in self.routers:
            return self.routers[self.default_router]
        if not self.routers:
            return None
        # the most recently heard router; ties by address for determinism
        router = max(self.routers.values(), key=lambda r: (r.heard_at, r.address))
        self.default_router = router.address
        return router

    def _pick_coa(self, router: Router) -> IPv6Address | None:
        usable = sorted(a for a in self.addresses if a != self.hoa
                        and any(a in p for p in router.prefixes))
        if not usable:
            return None
        current = self.care_of_address
        return current if current in usable else usable[0]

    def _evaluate_location(self, now: float) -> None:
        router = self._choose_default_router()
        if router is None:
            return  # no router: location unknown, the binding stays as it is
        previous = self.location
        if self.config.home_prefix in router.prefixes:
            self.location = Location.HOME
            self.care_of_address = None
            if previous is not Location.HOME:
                self.counters["movements"] += previous is not Location.UNKNOWN
                self._actions.append(HomeAddressOnLink(self.config.home_address, True))
                self._fire(Event.RETURNED_HOME, now)
            return
        self.location = Location.AWAY
        if previous is not Location.AWAY:
            self.counters["movements"] += previous is not Location.UNKNOWN
            self._actions.append(HomeAddressOnLink(self.config.home_address, False))
        coa = self._pick_coa(router)
        if coa is None:
            return  # wait for the kernel's SLAAC (set_addresses) to give one
        if coa != self.care_of_address:
            self.care_of_address = coa
            log.info("md: care-of address %s via %s", coa, router.address)
            self._fire(Event.MOVED, now)

    # ========================================================= registration

    def receive_binding_ack(self, ba: BindingAck, src: IPv6Address, home_address: IPv6Address,
                            now: float) -> None:
        """A BA from `src` for `home_address` (its type 2 routing header address,
        or its destination when it has none). Section 11.7.3."""
        b = self.bul
        if src != self.config.home_agent or home_address != self.hoa or not b.outstanding:
            self.counters["ba_ignored"] += 1
            return
        status = int(ba.status)
        if self.config.secret is not None and not self._ba_fresh(ba, status, now):
            return
        if status == BAStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW:
            # carries the HA's last accepted sequence number (section 9.5.1)
            self.counters["ba_135"] += 1
            b.last_status = status
            self._fire(Event.BA_SEQUENCE, now, ba=ba)
            return
        if ba.sequence != b.sequence:
            self.counters["ba_ignored"] += 1  # not for the BU outstanding
            return
        b.last_status = status
        if status < 128:
            self.counters["ba_accepted"] += 1
            self._fire(Event.BA_ACCEPTED, now, ba=ba)
        else:
            self.counters["ba_refused"] += 1
            self._fire(Event.BA_REFUSED, now, ba=ba)

    def _ba_fresh(self, ba: BindingAck, status: int, now: float) -> bool:
        """RFC 4285 section 6 for an authenticated BA: it echoes our BU's
        timestamp, or it is a 145 giving the home agent's clock."""
        b = self.bul
        rp = ba.option(ReplayProtection)
        if status == BAStatus.MIPV6_MESG_ID_REQD and rp is not None \
                and ba.sequence == b.sequence:
            if b.resynced:
                self.counters["ba_refused"] += 1
                b.last_status = status
                self._fire(Event.BA_REFUSED, now, ba=ba)
                return False
            # the home agent's clock, as it read on getting our BU: stamp
            # from it from now on, and send the BU again at once
            self._ha_skew = rfc4285.unix_from_ntp(rp.timestamp) - (now + self._wall_offset)
            self.counters["ba_145_resync"] += 1
            lifetime = 0 if self.state is RegState.DEREGISTERING else self._lifetime(now)
            self._send(now, lifetime, b.timeout, new=False)
            b.resynced = True
            return False
        if rp is None or rp.timestamp != b.stamp:
            self.counters["ba_auth_failed"] += 1
            log.warning("BA seq %d ignored: its timestamp is not our BU's", ba.sequence)
            return False
        return True

    def receive_binding_refresh_request(self, src: IPv6Address, home_address: IPv6Address,
                                        now: float) -> None:
        """A Binding Refresh Request from the home agent: refresh now (11.7.4)."""
        b = self.bul
        if src != self.config.home_agent or home_address != self.hoa or b.outstanding:
            return
        self._fire(Event.REFRESH, now)

    def _fire(self, event: Event, now: float, ba: BindingAck | None = None) -> None:
        entry = _TRANSITIONS.get((self.state, event))
        if entry is None:
            return
        self.state, effects = entry
        if self.config.optimistic_handoff and "send_registration" in effects:
            effects = (*effects, "tunnel_up")  # with the BU, not its BA
        for name in effects:
            getattr(self, "_do_" + name)(now, ba)

    # -- effects, in the order the table names them ------------------------------------

    def _lifetime(self, now: float) -> int:
        """Seconds to ask for (section 11.7.1), a multiple of 4, at least 4."""
        limits = [self.config.max_lifetime, MAX_LIFETIME]
        router = self.routers.get(self.default_router) if self.default_router else None
        if router is not None and self.care_of_address is not None:
            for p, until in router.prefixes.items():
                if self.care_of_address in p and until is not None:
                    limits.append(until - now)
        if self.home_prefix_valid_until is not None:
            limits.append(self.home_prefix_valid_until - now)
        return max(4, int(min(limits)) // 4 * 4)

    def _send(self, now: float, lifetime: int, timeout: float, *, new: bool) -> None:
        b = self.bul
        b.sequence = (b.sequence + 1) % SEQUENCE_MODULUS
        b.lifetime = lifetime
        b.sent_at = now
        b.outstanding = True
        if new:
            b.timeout, b.resends = timeout, 0
        b.retransmit_at = now + b.timeout
        b.resynced = False
        bu = BindingUpdate(sequence=b.sequence, lifetime=lifetime // 4, ack=True,
                           home_registration=True)
        # section 11.5.4: from the home link, source = home address, no HAO;
        # away: from the CoA with a Home Address option (section 11.7.1)
        source = self.hoa if lifetime == 0 else b.care_of_address
        secret = self.config.secret
        if secret is None:
            mh = encode_mh(bu, self.hoa, b.home_agent)  # checksum over the HoA (6.1.1)
        else:
            # RFC 4285 sections 5 and 6: a timestamp newer than any sent before,
            # then the MN-HA authenticator over CoA | HA | MH, last
            stamp = rfc4285.ntp_from_unix(now + self._wall_offset + self._ha_skew)
            b.stamp = max(stamp, b.stamp + 1)
            bu.options.append(ReplayProtection(b.stamp))
            mh = rfc4285.encode_signed(bu, secret.key, secret.spi, source, b.home_agent,
                                       self.hoa, b.home_agent)
        if lifetime == 0:
            packet = IPv6Header(source, b.home_agent, IPPROTO_MH, len(mh)).encode() + mh
        else:
            packet = build_bu_packet(source, b.home_agent, self.hoa, mh)
        self._datagrams.append(Datagram(
            packet, b.home_agent, source,
            what=f"BU to {b.home_agent} from {source} seq {b.sequence} lifetime {lifetime}"))
        self.counters["bu_sent"] += 1

    def _do_send_registration(self, now, ba) -> None:
        b = self.bul
        b.care_of_address = self.care_of_address
        # the home agent runs DAD before its first answer when it has no binding
        first = b.granted == 0
        self._send(now, self._lifetime(now), INITIAL_BINDING_ACK_TIMEOUT_FIRSTREG if first
                   else INITIAL_BINDING_ACK_TIMEOUT, new=True)

    def _do_send_refresh(self, now, ba) -> None:
        self._send(now, self._lifetime(now), INITIAL_BINDING_ACK_TIMEOUT, new=True)

    def _do_send_deregistration(self, now, ba) -> None:
        self.bul.care_of_address = self.hoa
        self._send(now, 0, INITIAL_BINDING_ACK_TIMEOUT, new=True)

    def _do_retransmit(self, now, ba) -> None:
        b = self.bul
        b.timeout = min(b.timeout * 2, MAX_BINDACK_TIMEOUT)
        b.resends += 1
        self.counters["bu_retransmitted"] += 1
        lifetime = 0 if self.state is RegState.DEREGISTERING else self._lifetime(now)
        self._send(now, lifetime, b.timeout, new=False)

    def _do_resend_after_135(self, now, ba) -> None:
        b = self.bul
        b.sequence = ba.sequence  # _send adds one (section 11.7.3)
        lifetime = 0 if self.state is RegState.DEREGISTERING else self._lifetime(now)
        self._send(now, lifetime, b.timeout, new=False)

    def _do_bind(self, now, ba) -> None:
        b = self.bul
        b.outstanding = False
        b.retransmit_at = None
        b.granted = min(ba.lifetime_seconds, b.lifetime)
        b.expires_at = b.sent_at + b.granted  # from when the BU was sent (11.7.3)
        b.last_coa = b.care_of_address
        margin = min(b.granted / 2, max(b.granted / 10, REFRESH_MARGIN_MIN))
        b.refresh_at = b.expires_at - margin
        advice = ba.option(BindingRefreshAdvice)
        if advice is not None and advice.refresh_interval:
            b.refresh_at = min(b.refresh_at, b.sent_at + advice.refresh_interval * 4)

    def _do_unbind(self, now, ba) -> None:
        b = self.bul
        b.granted, b.expires_at, b.refresh_at = 0, None, None

    def _do_tunnel_up(self, now, ba) -> None:
        if self._tunnel_coa == self.bul.care_of_address:
            return  # up already, for this CoA (an optimistic handoff's BU brought it)
        self._tunnel_coa = self.bul.care_of_address
        self._actions.append(TunnelUp(self.hoa, self.bul.care_of_address, self.bul.home_agent))

    def _do_tunnel_down(self, now, ba) -> None:
        if self._tunnel_coa is None:
            return
        self._tunnel_coa = None
        self._actions.append(TunnelDown(self.hoa))

    def _do_stop(self, now, ba) -> None:
        b = self.bul
        b.outstanding = False
        b.retransmit_at = None
        b.granted, b.expires_at, b.refresh_at = 0, None, None

    def _do_forget_binding(self, now, ba) -> None:
        b = self.bul
        b.outstanding = False
        b.retransmit_at = None
        b.granted, b.expires_at, b.refresh_at = 0, None, None
        b.care_of_address = None

    def _do_announce_home(self, now, ba) -> None:
        na = NeighborAdvertisement(self.hoa, router=False, solicited=False, override=True,
                                   options=[TargetLinkLayerAddress(self.config.link_layer_address)]
                                   if self.config.link_layer_address else [])
        self._datagrams.append(Datagram(encode_icmpv6(na, self.hoa, ALL_NODES), ALL_NODES,
                                        self.hoa, icmpv6=True,
                                        what=f"NA for {self.hoa} to all nodes (back home)"))

    # =========================================================== the view

    def binding_update_list(self, now: float) -> list[dict]:
        """The entries as plain data for `bul` (empty when IDLE)."""
        b = self.bul
        if self.state is RegState.IDLE:
            return []
        remaining = max(0, int(b.expires_at - now)) if b.expires_at is not None else 0
        return [{
            "hoa": str(b.home_address), "coa": str(b.care_of_address or ""),
            "ha": str(b.home_agent), "state": self.state.value,
            "lifetime": b.lifetime, "granted": b.granted, "remaining": remaining,
            "sequence": b.sequence, "resend": b.resends,
            "ack": "pending" if b.outstanding else "ready",
            "refresh_in": (max(0.0, b.refresh_at - now) if b.refresh_at is not None
                           and self.state is RegState.REGISTERED else None),
            # refresh delay counted from the BU, as mip6d's `delay`
            "refresh_delay": (b.refresh_at - b.sent_at if b.refresh_at is not None
                              and self.state is RegState.REGISTERED else None),
            "retransmit_in": (max(0.0, b.retransmit_at - now) if b.outstanding
                              and b.retransmit_at is not None else None),
            "last_coa": str(b.last_coa) if b.last_coa else None,
            "last_status": b.last_status, "location": self.location.value,
        }]
