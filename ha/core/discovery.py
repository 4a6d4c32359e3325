"""Dynamic home agent address discovery and mobile prefix discovery (pure).

The home agent list of RFC 6275 section 10.1 is learned from Router
Advertisements that carry the H flag (our own included); DHAAD requests
(section 10.5) are answered from it, and Mobile Prefix Solicitations
(section 10.6) with the home prefixes. The clock and the random source are
parameters: no sockets, no time here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network

# RFC 2526 section 2: the subnet anycast identifier 0x7e ("Mobile IPv6 home
# agents") in an EUI-64 format /64 gives the interface identifier below.
HOME_AGENTS_ANYCAST_IID = 0xFDFF_FFFF_FFFF_FFFE

# Section 10.1 keeps every home agent heard on the home link; a link has a
# handful, and a host sending RAs with the H flag from many link-local
# sources must not grow the list (nor the DHAAD work) without bound.
MAX_HOME_AGENTS = 16

# A reply must fit the IPv6 minimum MTU (section 10.5): 1280 octets less
# the IPv6 header (40) and the ICMPv6 DHAAD reply header (8).
MAX_DHAAD_ADDRESSES = (1280 - 40 - 8) // 16


def home_agents_anycast(prefix: IPv6Network) -> IPv6Address:
    """The home-agents anycast address of a /64 home prefix."""
    return IPv6Address(int(prefix.network_address) | HOME_AGENTS_ANYCAST_IID)


@dataclass(slots=True)
class HomeAgentEntry:
    link_local: IPv6Address
    addresses: tuple[IPv6Address, ...]  # global addresses from R-flag prefixes
    preference: int
    lifetime: int
    expires_at: float
    own: bool = False  # this node's own entry, from its own RA


class HomeAgentList:
    """Home agents on the home link, keyed by their link-local address.

    At most `limit` entries. This node's own entry (own=True) is always
    kept; when the list is full, a newcomer takes the place of the entry
    that matters least (lowest preference, then soonest to expire) if it
    matters more, and is left out otherwise.
    """

    def __init__(self, limit: int = MAX_HOME_AGENTS):
        self.limit = max(1, limit)
        self._entries: dict[IPv6Address, HomeAgentEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self):
        return iter(sorted(self._entries.values(), key=lambda e: (-e.preference, e.link_local)))

    def update_from_ra(self, src: IPv6Address, ra, now: float,
                       own: bool = False) -> HomeAgentEntry | None:
        """Section 10.1: record, refresh or drop a home agent from its RA.

        `own`: the RA is this node's own (heard back on the home link)."""
        from ha.wire.icmpv6 import HomeAgentInformation, PrefixInformation

        if not ra.home_agent:
            # an RA without the H flag means the router is no home agent (any longer)
            self._entries.pop(src, None)
            return None
        preference, lifetime = 0, ra.router_lifetime
        addresses = []
        for opt in ra.options:
            if isinstance(opt, HomeAgentInformation):
                preference, lifetime = opt.preference, opt.lifetime
            elif isinstance(opt, PrefixInformation) and opt.router_address and opt.router:
                addresses.append(opt.router)
        if lifetime == 0:
            # section 10.1: a zero home agent lifetime removes the entry
            self._entries.pop(src, None)
            return None
        entry = HomeAgentEntry(src, tuple(addresses), preference, lifetime, now + lifetime, own)
        if src not in self._entries and not self._make_room(entry, now):
            return None
        self._entries[src] = entry
        return entry

    def _make_room(self, entry: HomeAgentEntry, now: float) -> bool:
        """Room for a new entry: True when there is (after evicting one), False to leave it out."""
        entries = self._entries
        if len(entries) < self.limit:
            return True
        self.expire(now)
        if len(entries) < self.limit:
            return True
        others = [e for e in entries.values() if not e.own]
        if not others:
            return entry.own  # the list holds only our own entries
        worst = min(others, key=lambda e: (e.preference, e.expires_at))
        if not entry.own and (entry.preference, entry.expires_at) <= \
                (worst.preference, worst.expires_at):
            return False
        del entries[worst.link_local]
        return True

    def expire(self, now: float) -> None:
        for key in [k for k, e in self._entries.items() if e.expires_at <= now]:
            del self._entries[key]

    def addresses_for(self, prefix: IPv6Network, now: float, rng: random.Random) -> list[IPv6Address]:
        """Section 10.5: global addresses on `prefix`, highest preference first,
        home agents of equal preference in random order, fitting 1280 octets."""
        by_pref: dict[int, list[IPv6Address]] = {}
        for e in self._entries.values():
            if e.expires_at <= now:
                continue
            for a in e.addresses:
                if a in prefix:
                    by_pref.setdefault(e.preference, []).append(a)
                    break  # one address per home agent
        out: list[IPv6Address] = []
        for pref in sorted(by_pref, reverse=True):
            group = by_pref[pref]
            rng.shuffle(group)
            out.extend(group)
        return out[:MAX_DHAAD_ADDRESSES]


def answer_dhaad(request, prefix: IPv6Network, agents: HomeAgentList, now: float,
                 rng: random.Random):
    """The DHAAD reply for `request` (ICMPv6 144) or None when no agent is known."""
    from ha.wire.icmpv6 import DHAADReply

    addresses = agents.addresses_for(prefix, now, rng)
    if not addresses:
        return None
    return DHAADReply(identifier=request.identifier, home_agents=tuple(addresses))


@dataclass(slots=True, frozen=True)
class HomePrefix:
    prefix: IPv6Network
    valid_lifetime: int
    preferred_lifetime: int


def answer_mobile_prefix_solicitation(request, prefixes: list[HomePrefix], ha_address: IPv6Address):
    """Section 10.6.1: a Mobile Prefix Advertisement with every home prefix."""
    from ha.wire.icmpv6 import MobilePrefixAdvertisement, PrefixInformation

    options = [
        PrefixInformation(p.prefix, on_link=True, autonomous=True,
                          router_address=ha_address in p.prefix,
                          valid_lifetime=p.valid_lifetime,
                          preferred_lifetime=p.preferred_lifetime,
                          router=ha_address if ha_address in p.prefix else None)
        for p in prefixes
    ]
    return MobilePrefixAdvertisement(identifier=request.identifier, options=options)
