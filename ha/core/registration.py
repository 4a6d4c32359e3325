"""Home registration rules: RFC 6275 sections 9.5.1 and 10.3.

Two rules about this file:

1. Everything that affects registration lives in this file. Whether a
   Binding Update is discarded, refused (and with which status), or accepted
   as a new binding, a refresh, a move or a deregistration is decided here
   and nowhere else. If you find yourself testing a BU field in the daemon or
   an adapter, the test belongs here instead.

2. This file does no I/O. It does not know about sockets, netlink, the clock
   or the wire format. It gets a decoded Binding Update with the addresses
   the packet carried (BUContext), the binding cache, the configuration and
   `now` (seconds, from the caller's monotonic clock); it returns a Decision:
   the Binding Acknowledgement to send (or None), where to send it, and the
   actions for the datapath (tunnel, proxy ND, DAD) as plain data. The caller
   runs the actions; the cache is already updated when the Decision comes out.

Theory of operation
-------------------

A BU goes through three gates, in the order RFC 6275 reads:

  discard   (no BA at all)  the table _DISCARDS: not a usable BU for us: no routable
                            home address, no routable care-of address, a home
                            registration without a Home Address option, or a
                            correspondent registration (we do no return
                            routability, so we cannot authorise one).
  refuse    (BA >= 128)     the table _REFUSALS below, first failing rule wins.
  accept    (BA 0)          one of: deregister, new binding (maybe DAD first),
                            refresh (same CoA), move (new CoA).

A new binding with DAD enabled is a two-step affair: process_binding_update
puts a DAD_PENDING entry in the cache and returns StartDAD with pending=True
and no BA; the caller runs DAD (about a second) and calls dad_finished(),
which returns the BA and the datapath actions. A BU for the same home address
that arrives meanwhile (a mobile node retransmits after 1.5 s with a new
sequence) replaces the pending one instead of being answered, so the one BA
that eventually goes out carries the latest sequence.

Bindings die by deregistration (lifetime 0, or CoA == HoA) or by expire(),
which HomeAgentCore.handle_timer (ha/core/home_agent.py) calls when
cache.next_expiry() comes due: there is no polling.

Choices where the RFC leaves room, and why
------------------------------------------

* A home address that is multicast, link-local, loopback, unspecified or
  IPv4-mapped is discarded silently, not refused with 132: section 9.5.1
  lists "a unicast routable home address" among the validity tests whose
  failure means the BU is not processed at all, and a BA to such a node
  would need that very address in its type 2 routing header.
* Without a Home Address option the home address is the outer source
  (section 9.5.1). That is only good for the deregistration a mobile node
  sends from its home link (section 11.5.4: lifetime 0, source = CoA = HoA,
  the source on a served prefix); any other BU without the option is
  discarded (section 10.3.1 makes it mandatory).
* Correspondent registrations (H = 0) need return routability, which this
  node does not do, so they are discarded -- except when a home binding
  exists for that address: then the mobile node gets 139, which tells it
  more than silence would.
* The access policy (129) is applied to registrations, not deregistrations:
  denying an address must not pin its binding until it expires.
* A home address that is one of our own addresses is refused with 134: DAD
  would find it taken, we know that without asking.
* A prefix whose remaining valid lifetime is 0 is no longer on our prefix
  list, so its addresses get 132.
* The BA goes to the outer source address of the BU (section 9.5.4), even
  when an Alternate Care-of Address option named another CoA: that address
  is the one we know can receive.
* A refresh that flips the L flag does not change the binding's L: proxying
  and DAD were set up for the L of the first registration, and DAD is for
  new bindings only. Deregister and register again to change it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network
from typing import Callable, Mapping, Union

from ha.core.binding_cache import Binding, BindingCache, BindingState
from ha.wire.mobility import (
    AlternateCareOfAddress,
    BAStatus,
    BindingAck,
    BindingRefreshAdvice,
    BindingUpdate,
)

SEQUENCE_MODULUS = 1 << 16
SEQUENCE_WINDOW = 1 << 15  # "greater" means 1..32767 ahead (section 9.5.1)
MAX_LIFETIME_UNITS = 0xFFFF  # the BA lifetime field is 16 bits of 4 s units
LINK_LOCAL_PREFIX = IPv6Network("fe80::/64")

# remaining valid lifetime of a prefix, seconds; None = infinite
PrefixLifetimes = Union[
    Mapping[IPv6Network, "float | None"],
    Callable[[IPv6Network, float], "float | None"],
    None,
]


# ================================================================== inputs


@dataclass(slots=True)
class HomeAgentConfig:
    served_prefixes: tuple[IPv6Network, ...] = ()
    ha_addresses: tuple[IPv6Address, ...] = ()  # our own addresses
    max_binding_lifetime: int = 262140  # seconds, mip6d's HaMaxBindingLife default
    # Mapping prefix -> remaining seconds (absent = infinite; the caller keeps
    # it current), or a callable (prefix, now) -> remaining seconds or None.
    # fe80::/64 may be given too; it is consulted when L = 1.
    prefix_valid_lifetime: PrefixLifetimes = None
    acl_default_allow: bool = True
    # mip6d's BindingAclPolicy: key = home address, or (home address, CoA)
    # for a rule that holds for that CoA only; the more specific key wins.
    acl: dict = field(default_factory=dict)
    dad_enabled: bool = True
    home_agent: bool = True  # False: this node serves no home registrations
    # Binding Refresh Advice (section 6.2.4) in the BA, seconds; None = never.
    refresh_advice: int | None = None


@dataclass(slots=True)
class BUContext:
    bu: BindingUpdate
    src: IPv6Address  # outer IPv6 source
    dst: IPv6Address  # where it was sent: one of our addresses
    hoa: IPv6Address | None  # from the Home Address option; None if absent


# ================================================================= actions
# Plain data for the datapath adapter, executed in order.


@dataclass(slots=True, frozen=True)
class StartDAD:
    hoa: IPv6Address
    link_local: IPv6Address | None  # also defend this one (L = 1)


@dataclass(slots=True, frozen=True)
class AddBinding:
    """Tunnel, route and proxy ND for hoa (and, with L = 1, its link-local twin)."""
    hoa: IPv6Address
    coa: IPv6Address
    lifetime: int  # seconds
    link_local: IPv6Address | None = None


@dataclass(slots=True, frozen=True)
class RefreshBinding:
    hoa: IPv6Address
    coa: IPv6Address
    lifetime: int


@dataclass(slots=True, frozen=True)
class MoveBinding:
    hoa: IPv6Address
    old_coa: IPv6Address
    new_coa: IPv6Address
    lifetime: int


@dataclass(slots=True, frozen=True)
class DeleteBinding:
    hoa: IPv6Address
    coa: IPv6Address
    link_local: IPv6Address | None = None


Action = Union[StartDAD, AddBinding, RefreshBinding, MoveBinding, DeleteBinding]


# ================================================================ output


@dataclass(slots=True)
class Decision:
    ack: BindingAck | None = None  # None: send nothing (discarded, or DAD pending)
    ack_to: IPv6Address | None = None  # BA destination; its RH2 carries `hoa`
    hoa: IPv6Address | None = None
    coa: IPv6Address | None = None
    actions: tuple = ()
    pending: bool = False  # DAD running: dad_finished() will answer
    reason: str = ""  # the rule that decided, for logs and the console

    @property
    def status(self) -> BAStatus | None:
        return None if self.ack is None else BAStatus(self.ack.status)


# =================================================================== rules
# Each rule answers one question about one BU. They read a _Facts bundle so
# that the refusal table below can call them all the same way.


@dataclass(slots=True)
class _Facts:
    ctx: BUContext
    bu: BindingUpdate
    hoa: IPv6Address
    coa: IPv6Address
    binding: Binding | None
    deregistration: bool
    cache: BindingCache
    config: HomeAgentConfig
    now: float
    # asked only of a BU that would make a new binding, once every other rule
    # passed: (outer source) -> True, or False to refuse it with 130
    admit: Callable[[IPv6Address], bool] | None = None


# section 9.5.1: a sequence number is newer when 1..32767 ahead modulo 2**16
def sequence_is_newer(new: int, last: int) -> bool:
    return 0 < (new - last) % SEQUENCE_MODULUS < SEQUENCE_WINDOW


# section 9.5.1 / 9.3.1: home and care-of addresses must be unicast routable
def is_unicast_routable(addr: IPv6Address) -> bool:
    return not (addr.is_multicast or addr.is_link_local or addr.is_loopback
                or addr.is_unspecified or addr.ipv4_mapped is not None)


# section 9.5.1: "the packet MUST contain a unicast routable home address"
def home_address_routable(f: _Facts) -> bool:
    return is_unicast_routable(f.hoa)


# section 9.5.1 / 6.2.5: the care-of address (source or Alternate CoA) likewise
def care_of_address_routable(f: _Facts) -> bool:
    return is_unicast_routable(f.coa)


# section 9.5.1: HoA from the Home Address option, else the outer source
def home_address_of(ctx: BUContext) -> IPv6Address:
    return ctx.hoa if ctx.hoa is not None else ctx.src


# section 6.2.5 / 9.5.1: the CoA is the Alternate CoA option if present, else the source
def care_of_address_of(ctx: BUContext) -> IPv6Address:
    alt = ctx.bu.option(AlternateCareOfAddress)
    return alt.address if alt is not None else ctx.src


# section 9.5.1: lifetime 0 or CoA == HoA asks for the binding to be deleted
def is_deregistration(bu: BindingUpdate, hoa: IPv6Address, coa: IPv6Address) -> bool:
    return bu.lifetime == 0 or coa == hoa


# section 10.3.1: a home registration carries a Home Address option; only the
# deregistration sent from the home link (11.5.4: lifetime 0, source = HoA) may not
def home_address_option_present(f: _Facts) -> bool:
    if f.ctx.hoa is not None:
        return True
    return f.bu.lifetime == 0 and home_prefix_of(f.ctx.src, f.config) is not None


# section 9.5.1: an H = 0 BU needs return routability, which this node lacks;
# it is let through only to be told 139 by a home binding for the same address
def correspondent_registration_answerable(f: _Facts) -> bool:
    b = f.binding
    return f.bu.home_registration or (b is not None and b.home_registration)


# Any failing rule: the BU is dropped without an answer.
_DISCARDS: tuple[tuple[Callable[[_Facts], bool], str], ...] = (
    (home_address_routable, "home address not unicast routable (9.5.1)"),
    (care_of_address_routable, "care-of address not unicast routable (9.5.1)"),
    (home_address_option_present, "no Home Address option (10.3.1)"),
    (correspondent_registration_answerable, "correspondent registration needs return "
                                            "routability, not implemented (9.5.1)"),
)


# section 9.5.1: a BU older than the last accepted one gets 135
def sequence_in_window(f: _Facts) -> bool:
    b = f.binding
    return b is None or b.sequence is None or sequence_is_newer(f.bu.sequence, b.sequence)


# section 9.5.1: an existing binding keeps its H flag (139)
def registration_type_unchanged(f: _Facts) -> bool:
    return f.binding is None or f.binding.home_registration == f.bu.home_registration


# section 10.3.1: H set but this node is not a home agent (131)
def home_registration_supported(f: _Facts) -> bool:
    return f.config.home_agent or not f.bu.home_registration


# section 10.3.1: the HoA must be on-link for one of our (still valid) prefixes (132)
def home_address_on_home_link(f: _Facts) -> bool:
    prefix = home_prefix_of(f.hoa, f.config)
    if prefix is None:
        return False
    remaining = prefix_remaining_lifetime(prefix, f.config, f.now)
    return remaining is None or remaining > 0


# section 10.3.1 ("any other reason"): mip6d's BindingAclPolicy (129)
def allowed_by_policy(f: _Facts) -> bool:
    acl = f.config.acl
    if f.deregistration or not acl:
        return f.deregistration or f.config.acl_default_allow
    verdict = acl.get((f.hoa, f.coa))
    if verdict is None:
        verdict = acl.get(f.hoa)
    return f.config.acl_default_allow if verdict is None else bool(verdict)


# section 10.3.2: only a home registration we hold can be deleted (133)
def home_registration_held(f: _Facts) -> bool:
    return not f.deregistration or (f.binding is not None and f.binding.home_registration)


# section 9.5.2 / 10.3.1: a new binding needs room in the cache (130)
def cache_has_room(f: _Facts) -> bool:
    return f.deregistration or f.binding is not None or not f.cache.full


# section 10.3.1: DAD on one of our own addresses can only fail (134)
def home_address_not_ours(f: _Facts) -> bool:
    return f.deregistration or f.binding is not None or f.hoa not in f.config.ha_addresses


# section 10.3.1 ("insufficient resources"): new bindings come at a bounded
# rate (ha/core/rate_limit.py); asked last, so that only a BU that would
# otherwise be accepted as new is charged, and never a refresh or a move
def new_binding_admitted(f: _Facts) -> bool:
    return f.deregistration or f.binding is not None or f.admit is None or f.admit(f.ctx.src)


# First failing rule wins; the order is the RFC's (9.5.1, then 10.3.1, then 10.3.2).
_REFUSALS: tuple[tuple[Callable[[_Facts], bool], BAStatus], ...] = (
    (sequence_in_window, BAStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW),
    (registration_type_unchanged, BAStatus.REGISTRATION_TYPE_CHANGE_DISALLOWED),
    (home_registration_supported, BAStatus.HOME_REGISTRATION_NOT_SUPPORTED),
    (home_address_on_home_link, BAStatus.NOT_HOME_SUBNET),
    (home_registration_held, BAStatus.NOT_HOME_AGENT_FOR_THIS_MOBILE_NODE),
    (allowed_by_policy, BAStatus.ADMINISTRATIVELY_PROHIBITED),
    (cache_has_room, BAStatus.INSUFFICIENT_RESOURCES),
    (home_address_not_ours, BAStatus.DUPLICATE_ADDRESS_DETECTION_FAILED),
    (new_binding_admitted, BAStatus.INSUFFICIENT_RESOURCES),
)


# section 10.3.1: the served prefix the home address is on, if any
def home_prefix_of(hoa: IPv6Address, config: HomeAgentConfig) -> IPv6Network | None:
    for prefix in config.served_prefixes:
        if hoa in prefix:
            return prefix
    return None


# section 10.3.1: remaining valid lifetime of a prefix at `now` (None = infinite)
def prefix_remaining_lifetime(prefix: IPv6Network, config: HomeAgentConfig,
                              now: float) -> float | None:
    source = config.prefix_valid_lifetime
    if source is None:
        return None
    if callable(source):
        return source(prefix, now)
    return source.get(prefix)


# section 10.3.1 (L bit): link-local address with the HoA's interface identifier
def link_local_of(hoa: IPv6Address) -> IPv6Address:
    return IPv6Address(int(LINK_LOCAL_PREFIX.network_address) | (int(hoa) & ((1 << 64) - 1)))


# section 10.3.1: granted = min(asked, policy, home prefix and, with L, link-local
# prefix remaining valid lifetime), in whole 4 s units rounding down
def granted_lifetime_units(requested_seconds: float, hoa: IPv6Address, link_local: bool,
                           config: HomeAgentConfig, now: float) -> int:
    limit = min(requested_seconds, config.max_binding_lifetime)
    prefixes = [home_prefix_of(hoa, config)]
    if link_local:
        prefixes.append(LINK_LOCAL_PREFIX)
    for prefix in prefixes:
        if prefix is not None:
            remaining = prefix_remaining_lifetime(prefix, config, now)
            if remaining is not None:
                limit = min(limit, remaining)
    return min(max(0, int(limit) // 4), MAX_LIFETIME_UNITS)


# section 6.2.4: Binding Refresh Advice only when it says something (interval < lifetime)
def refresh_advice_options(lifetime_units: int, config: HomeAgentConfig) -> list:
    if config.refresh_advice is None:
        return []
    units = config.refresh_advice // 4
    if 0 < units < lifetime_units:
        return [BindingRefreshAdvice(refresh_interval=units)]
    return []


# ========================================================= entry points


def process_binding_update(ctx: BUContext, cache: BindingCache, config: HomeAgentConfig,
                           now: float,
                           admit: Callable[[IPv6Address], bool] | None = None) -> Decision:
    """Decide what to do with one received Binding Update (updates `cache`).

    `admit`, when given, is asked whether a BU that would create a binding
    may (the caller's rate limit); it is never asked about any other BU.
    """
    bu = ctx.bu
    hoa = home_address_of(ctx)
    coa = care_of_address_of(ctx)
    f = _Facts(ctx, bu, hoa, coa, cache.get(hoa), is_deregistration(bu, hoa, coa),
               cache, config, now, admit)
    for rule, why in _DISCARDS:
        if not rule(f):
            return Decision(hoa=hoa, coa=coa, reason=f"discard: {why}")
    for rule, status in _REFUSALS:
        if not rule(f):
            return _refuse(ctx, f, status, rule.__name__)

    binding = f.binding
    if f.deregistration:
        return _deregister(ctx, f)
    if binding is None:
        return _register_new(ctx, f)
    if binding.state is BindingState.DAD_PENDING:
        return _supersede_pending(ctx, f)
    return _refresh_or_move(ctx, f)


def dad_finished(hoa: IPv6Address, ok: bool, cache: BindingCache, config: HomeAgentConfig,
                 now: float) -> Decision:
    """DAD for a pending registration is over: answer the latest BU for `hoa`."""
    b = cache.get(hoa)
    if b is None or b.state is not BindingState.DAD_PENDING:
        return Decision(hoa=hoa, reason="no registration waiting on DAD")
    seq = b.pending_sequence
    if not ok:
        # section 10.3.1: DAD failed, 134, and nothing of the binding stays
        cache.remove(hoa)
        ack = BindingAck(status=BAStatus.DUPLICATE_ADDRESS_DETECTION_FAILED, sequence=seq,
                         lifetime=0)
        return Decision(ack=ack, ack_to=b.pending_ack_to, hoa=hoa, coa=b.coa,
                        reason="DAD failed (10.3.1)")
    # The lifetime counts from now, and the prefix may have aged while DAD ran.
    units = granted_lifetime_units(b.lifetime, hoa, b.link_local_compat, config, now)
    b.lifetime = units * 4
    b.state = BindingState.REGISTERED
    b.sequence = seq
    b.registered_at = now
    b.expires_at = now + b.lifetime
    ack_to = b.pending_ack_to
    b.pending_sequence = b.pending_ack_to = None
    cache.put(b)
    ll = link_local_of(hoa) if b.link_local_compat else None
    actions = (AddBinding(hoa, b.coa, b.lifetime, ll),)
    ack = _accept_ack(seq, units, config)
    return Decision(ack=ack, ack_to=ack_to, hoa=hoa, coa=b.coa, actions=actions,
                    reason="registered after DAD (10.3.1)")


def expire(cache: BindingCache, now: float) -> list[Decision]:
    """Tear down every binding whose lifetime has run out (section 10.3.1: MUST delete)."""
    out = []
    for b in cache.expired(now):
        if b.state is BindingState.DAD_PENDING:
            # nothing was installed yet, so there is nothing to undo
            out.append(Decision(hoa=b.hoa, coa=b.coa, reason="expired while DAD pending"))
            continue
        out.append(Decision(hoa=b.hoa, coa=b.coa, actions=_teardown(b),
                            reason="lifetime expired (10.3.1)"))
    return out


# ------------------------------------------------------ console helpers
# `bc add` and `bc del` build a BU and go through process_binding_update, so
# that the console obeys exactly the rules the wire does. Their decisions
# have ack_to None: the ack says what happened, but nothing is sent.


def _next_sequence(b: Binding | None) -> int:
    if b is None:
        return 0
    last = b.pending_sequence if b.state is BindingState.DAD_PENDING else b.sequence
    return 0 if last is None else (last + 1) % SEQUENCE_MODULUS


def admin_add_binding(hoa: IPv6Address, coa: IPv6Address, lifetime: int, cache: BindingCache,
                      config: HomeAgentConfig, now: float) -> Decision:
    """Console `bc add hoa X coa Y lifetime N` (N in seconds)."""
    bu = BindingUpdate(sequence=_next_sequence(cache.get(hoa)),
                       lifetime=min(max(0, lifetime) // 4, MAX_LIFETIME_UNITS),
                       ack=True, home_registration=True)
    local = config.ha_addresses[0] if config.ha_addresses else IPv6Address("::")
    decision = process_binding_update(BUContext(bu, src=coa, dst=local, hoa=hoa),
                                      cache, config, now)
    if decision.pending:
        cache.get(hoa).pending_ack_to = None  # dad_finished must not send it either
    decision.ack_to = None
    return decision


def admin_delete_binding(hoa: IPv6Address, cache: BindingCache, config: HomeAgentConfig,
                         now: float) -> Decision:
    """Console `bc del hoa X`."""
    b = cache.get(hoa)
    bu = BindingUpdate(sequence=_next_sequence(b), lifetime=0, ack=True,
                       home_registration=True if b is None else b.home_registration)
    local = config.ha_addresses[0] if config.ha_addresses else IPv6Address("::")
    src = b.coa if b is not None else hoa
    decision = process_binding_update(BUContext(bu, src=src, dst=local, hoa=hoa),
                                      cache, config, now)
    decision.ack_to = None
    return decision


# ------------------------------------------------------------ internals


def _refuse(ctx: BUContext, f: _Facts, status: BAStatus, rule: str) -> Decision:
    seq = ctx.bu.sequence
    if status is BAStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW:
        seq = f.binding.sequence  # section 9.5.1: tell the MN what we last accepted
    # section 9.5.4 / 10.3.1: every refusal is answered, whatever the A bit says
    ack = BindingAck(status=status, sequence=seq, lifetime=0)
    return Decision(ack=ack, ack_to=ctx.src, hoa=f.hoa, coa=f.coa,
                    reason=f"refused {int(status)} {status.name}: {rule}")


# sections 10.3.1 and 10.3.2: the home agent MUST return a BA to a home
# registration or deregistration regardless of the A bit (the only kind accepted here)
def _accept_ack(sequence: int, units: int, config: HomeAgentConfig) -> BindingAck:
    return BindingAck(status=BAStatus.ACCEPTED, sequence=sequence, lifetime=units,
                      key_management=False, options=refresh_advice_options(units, config))


def _teardown(b: Binding) -> tuple:
    ll = link_local_of(b.hoa) if b.link_local_compat else None
    return (DeleteBinding(b.hoa, b.coa, ll),)


def _deregister(ctx: BUContext, f: _Facts) -> Decision:
    # section 10.3.2: delete the binding, stop proxying and tunnelling
    b = f.binding
    f.cache.remove(f.hoa)
    actions = () if b.state is BindingState.DAD_PENDING else _teardown(b)
    ack = _accept_ack(ctx.bu.sequence, 0, f.config)
    return Decision(ack=ack, ack_to=ctx.src, hoa=f.hoa, coa=b.coa, actions=actions,
                    reason="deregistered (10.3.2)")


def _register_new(ctx: BUContext, f: _Facts) -> Decision:
    bu, hoa, coa, config, now = ctx.bu, f.hoa, f.coa, f.config, f.now
    units = granted_lifetime_units(bu.lifetime_seconds, hoa, bu.link_local_compat, config, now)
    lifetime = units * 4
    b = Binding(hoa=hoa, coa=coa, lifetime=lifetime, registered_at=now,
                expires_at=now + lifetime, sequence=None,
                home_registration=True, link_local_compat=bu.link_local_compat,
                key_management=False, ack=bu.ack, local=ctx.dst)
    ll = link_local_of(hoa) if bu.link_local_compat else None
    if config.dad_enabled:
        # section 10.3.1: DAD before the BA, for new bindings only
        b.state = BindingState.DAD_PENDING
        b.pending_sequence = bu.sequence
        b.pending_ack_to = ctx.src
        f.cache.put(b)
        return Decision(hoa=hoa, coa=coa, actions=(StartDAD(hoa, ll),), pending=True,
                        reason="DAD started (10.3.1)")
    b.sequence = bu.sequence
    f.cache.put(b)
    actions = (AddBinding(hoa, coa, lifetime, ll),)
    return Decision(ack=_accept_ack(bu.sequence, units, config), ack_to=ctx.src,
                    hoa=hoa, coa=coa, actions=actions, reason="registered (10.3.1)")


def _supersede_pending(ctx: BUContext, f: _Facts) -> Decision:
    # A retransmission while DAD runs: the newest BU is the one to answer.
    bu, b = ctx.bu, f.binding
    if not sequence_is_newer(bu.sequence, b.pending_sequence):
        return Decision(hoa=f.hoa, coa=f.coa, pending=True,
                        reason="discard: not newer than the BU waiting on DAD")
    units = granted_lifetime_units(bu.lifetime_seconds, f.hoa, b.link_local_compat,
                                   f.config, f.now)
    b.coa = f.coa
    b.lifetime = units * 4
    b.expires_at = f.now + b.lifetime
    b.ack = bu.ack
    b.local = ctx.dst
    b.pending_sequence = bu.sequence
    b.pending_ack_to = ctx.src
    f.cache.put(b)
    return Decision(hoa=f.hoa, coa=f.coa, pending=True,
                    reason="superseded the BU waiting on DAD")


def _refresh_or_move(ctx: BUContext, f: _Facts) -> Decision:
    bu, b, now = ctx.bu, f.binding, f.now
    units = granted_lifetime_units(bu.lifetime_seconds, f.hoa, b.link_local_compat,
                                   f.config, now)
    lifetime = units * 4
    old_coa = b.coa
    b.coa = f.coa
    b.lifetime = lifetime
    b.registered_at = now
    b.expires_at = now + lifetime
    b.sequence = bu.sequence
    b.ack = bu.ack
    b.local = ctx.dst
    f.cache.put(b)
    if old_coa == f.coa:
        actions = (RefreshBinding(f.hoa, f.coa, lifetime),)
        reason = "refreshed (10.3.1)"
    else:
        actions = (MoveBinding(f.hoa, old_coa, f.coa, lifetime),)
        reason = "moved to a new care-of address (10.3.1)"
    return Decision(ack=_accept_ack(bu.sequence, units, f.config), ack_to=ctx.src,
                    hoa=f.hoa, coa=f.coa, actions=actions, reason=reason)
