"""DHCPv6 prefix delegation: what a delegated prefix makes of denali.conf.

Pure functions, no clock and no file: the lease comes in as values, `now`
as a number, and out come the renumbering state and the configuration the
daemon runs with. ha/daemon/uplink.py runs the client (dhcpcd) and keeps the
state; ha/daemon/settings.py lays the state over denali.conf on every load.

The model:

  - The uplink's client is delegated one prefix (a /56, say). Each cell gets
    one /64 of it, numbered by its sub-prefix id (``pd_home_id``, default 0,
    for the home cell; ``pd_foreign_id``, default 1, for the foreign one): the
    /64 whose bits between the delegated length and 64 are the id
    (RFC 7084 WPD-4: a /64 per LAN; RFC 3633 section 12.1).
  - The cell's address keeps the interface identifier it has in denali.conf
    (``address = 2001:db8::/64`` is the prefix's first address, as in the seed).
  - Renumbering: when the delegated prefix changes (or the first delegation
    replaces the configured prefix), the old /64 of each cell is *retired*:
    RFC 7084 L-13 has the router advertise it at once with preferred
    lifetime 0 and a valid lifetime of the lower of what is left and two
    hours, counted down in real time (RFC 4862 section 5.5.3 e: hosts then
    deprecate their addresses from it and drop them when it runs out), while
    the new /64 is advertised. Its address stays on the cell deprecated, and
    the home agent keeps it among its home prefixes, so the unsolicited
    Mobile Prefix Advertisement (RFC 6275 sections 10.6.2 and 11.4.3) tells
    the mobile nodes away from home both: the new prefix, and the old one
    with preferred lifetime 0.
  - The advertised lifetimes of the current /64 never exceed the lease's
    (RFC 7084 L-14 / RFC 8415 section 6.3: a host's addresses must not
    outlive the delegation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from ipaddress import IPv6Interface, IPv6Network

RETIRE_CAP = 7200  # s: RFC 7084 L-13, RFC 4862 section 5.5.3 e)'s two hours
INFINITY = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class Lease:
    """One delegated prefix as the client reported it, at wall time `at`."""
    prefix: IPv6Network
    preferred: int          # seconds from `at` (the lease's pltime)
    valid: int              # seconds from `at` (vltime)
    at: float

    @property
    def valid_until(self) -> float:
        return float("inf") if self.valid == INFINITY else self.at + self.valid


@dataclass(frozen=True, slots=True)
class Retired:
    """A cell's old /64, advertised with preferred lifetime 0 until valid_until."""
    cell: str
    address: IPv6Interface     # the cell's address in it (stays, deprecated)
    valid_until: float


@dataclass(frozen=True, slots=True)
class PdState:
    """The delegation in force and the cells' prefixes being retired."""
    lease: Lease | None = None
    retired: tuple = ()        # Retired
    # cell -> the /64 address it had before the first delegation (from
    # denali.conf), so that the first delegation retires it too
    configured: dict = field(default_factory=dict)


def carve(delegated: IPv6Network, sub_id: int) -> IPv6Network:
    """The /64 number `sub_id` of a delegated prefix (ValueError if it does not fit)."""
    if delegated.prefixlen > 64:
        raise ValueError(f"delegated prefix {delegated} is longer than /64: "
                         "a cell needs a /64 (RFC 7084 WPD-4)")
    room = 1 << (64 - delegated.prefixlen)
    if not 0 <= sub_id < room:
        raise ValueError(f"sub-prefix id {sub_id} does not fit in {delegated}: use 0-{room - 1}")
    base = int(delegated.network_address)
    return IPv6Network((base | (sub_id << 64), 64))


def cell_address(prefix64: IPv6Network, configured: str | None) -> IPv6Interface:
    """The cell's address in its new /64: the configured interface identifier kept."""
    iid = int(IPv6Interface(configured).ip) & ((1 << 64) - 1) if configured else 1
    return IPv6Interface((int(prefix64.network_address) | iid, 64))


def cells_of(up, radios) -> dict:
    """cell name -> sub-prefix id: the home cell and the foreign cell of [radio]."""
    out = {}
    for r in radios:
        if r.role == "home" and up.pd_home_id is not None:
            out[r.name] = up.pd_home_id
        elif r.role == "foreign" and up.pd_foreign_id is not None:
            out[r.name] = up.pd_foreign_id
    return out


def plan(state: PdState, cells: dict, configured: dict) -> dict:
    """cell -> its current address (IPv6Interface) under the state's lease.

    `configured` is cell -> denali.conf's address. Without a lease, the
    configured addresses stand (a lab with no ISP keeps working).
    """
    out = {}
    for cell, sub in cells.items():
        conf = configured.get(cell)
        if state.lease is None:
            if conf:
                out[cell] = IPv6Interface(conf)
            continue
        out[cell] = cell_address(carve(state.lease.prefix, sub), conf)
    return out


def renumber(state: PdState, lease: Lease | None, cells: dict, configured: dict,
             now: float) -> PdState:
    """The state after the client reported `lease` (None: the delegation is gone).

    A lease for the prefix in force only refreshes its lifetimes. A new prefix,
    or the loss of the one in force, retires each cell's address (L-13: valid
    for min(what is left, 2 h), preferred 0 at once); a retired address that
    comes back into use is un-retired. Retired prefixes past their valid
    lifetime are dropped.
    """
    before = plan(state, cells, configured)
    retired = [r for r in state.retired if r.valid_until > now]
    if lease is not None and state.lease is not None and lease.prefix == state.lease.prefix:
        return replace(state, lease=lease, retired=tuple(retired))
    # a delegation that ended (withdrawn, expired, released) numbers nothing past
    # its own valid lifetime either; the configured prefixes stand in again
    old_until = state.lease.valid_until if state.lease is not None else float("inf")
    until = min(old_until, now + RETIRE_CAP)
    after = plan(PdState(lease), cells, configured)
    for cell, addr in before.items():
        if after.get(cell) == addr:
            continue
        if until > now and not any(r.address == addr for r in retired):
            retired.append(Retired(cell, addr, until))
    now_used = set(after.values())
    retired = [r for r in retired if r.address not in now_used]
    return PdState(lease, tuple(retired), dict(configured))


def expire(state: PdState, now: float) -> PdState:
    """Drop what ran out: retired prefixes, and a lease past its valid lifetime."""
    lease = state.lease if state.lease is None or state.lease.valid_until > now else None
    kept = tuple(r for r in state.retired if r.valid_until > now)
    if lease is state.lease and kept == state.retired:
        return state
    return replace(state, lease=lease, retired=kept)


def next_change(state: PdState) -> float | None:
    """When expire() next has something to do (wall time), None if never."""
    times = [r.valid_until for r in state.retired]
    if state.lease is not None and state.lease.valid != INFINITY:
        times.append(state.lease.valid_until)
    return min(times) if times else None


def remaining(until: float, now: float) -> int:
    return max(0, int(until - now))


# ----------------------------------------------------------- denali.conf

def overlay(values: dict, state: PdState, cells: dict, now: float) -> dict:
    """denali.conf's validated tree with the delegation laid over it.

    Each delegated cell's [radio] address and [ra] prefix become the new
    /64 (lifetimes capped by the lease's), each retired /64 is added as a
    [[[prefix ...]]] block with AdvPreferredLifetime 0, AdvValidLifetime what
    is left and DecrementLifetimes on (the RA sender counts it down), and the
    home agent serves the home cell's current and retired prefixes. Cells
    without a delegation, and everything else, are left as they are.
    """
    out = _copy(values)
    configured = {c: out.get("radio", {}).get(c, {}).get("address") for c in cells}
    current = plan(state, cells, configured)
    home = out.get("ha", {}).get("interface")
    served = []
    for cell, addr in current.items():
        radio = out.get("radio", {}).get(cell)
        if radio is not None:
            radio["address"] = f"{addr.ip}/64"
        ra = out.get("ra", {}).get(cell)
        if ra is not None and state.lease is not None:
            ra["prefix"] = str(addr.network)
            lease = state.lease
            if lease.valid != INFINITY:
                ra["AdvValidLifetime"] = min(ra.get("AdvValidLifetime", INFINITY), lease.valid)
            if lease.preferred != INFINITY:
                ra["AdvPreferredLifetime"] = min(ra.get("AdvPreferredLifetime", INFINITY),
                                                 lease.preferred, ra["AdvValidLifetime"])
        if cell == home:
            served.append(str(addr.network))
    in_use = {a.network for a in current.values()}
    for r in state.retired:
        left = remaining(r.valid_until, now)
        if left <= 0 or r.address.network in in_use:
            continue
        ra = out.get("ra", {}).get(r.cell)
        if ra is not None:
            ra[f"prefix {r.address.network}"] = {
                "AdvOnLink": ra.get("AdvOnLink", True),
                "AdvAutonomous": ra.get("AdvAutonomous", True),
                "AdvRouterAddr": ra.get("AdvRouterAddr", False),
                "AdvValidLifetime": left, "AdvPreferredLifetime": 0,
                "DeprecatePrefix": False, "DecrementLifetimes": True}
        if r.cell == home and str(r.address.network) not in served:
            served.append(str(r.address.network))
    if served and "ha" in out and not out["ha"].get("served_prefix"):
        out["ha"]["served_prefix"] = served
    return out


def _copy(tree):
    return {k: _copy(v) if isinstance(v, dict) else (list(v) if isinstance(v, list) else v)
            for k, v in tree.items()}


# ------------------------------------------------------------ state file

def lease_from_env(env: dict, now: float) -> Lease | None:
    """The first delegated prefix in dhcpcd's script variables (new_dhcp6_ia_pd*).

    None when the variables hold no prefix (EXPIRE6, RELEASE6). ValueError on
    values that are not a prefix and lifetimes.
    """
    keys = sorted(k for k in env if k.startswith("new_dhcp6_ia_pd")
                  and k.endswith("_prefix1"))
    for k in keys:
        addr, plen = env[k], env.get(k + "_length")
        pl, vl = env.get(k + "_pltime", "0"), env.get(k + "_vltime", "0")
        if not plen:
            raise ValueError(f"{k} without {k}_length")
        prefix = IPv6Network(f"{addr}/{plen}")
        valid = int(vl)
        if valid == 0:
            continue  # RFC 8415 section 18.2.10.1: lifetime 0, the prefix is withdrawn
        return Lease(prefix, min(int(pl), valid), valid, now)
    return None


def state_to_json(state: PdState) -> str:
    lease = state.lease
    return json.dumps({
        "lease": None if lease is None else {
            "prefix": str(lease.prefix), "preferred": lease.preferred,
            "valid": lease.valid, "at": lease.at},
        "retired": [{"cell": r.cell, "address": str(r.address),
                     "valid_until": r.valid_until} for r in state.retired],
        "configured": state.configured}, indent=1, sort_keys=True) + "\n"


def state_from_json(text: str) -> PdState:
    """ValueError on anything that is not a state this module wrote."""
    try:
        d = json.loads(text)
        lease = d.get("lease")
        return PdState(
            None if lease is None else Lease(IPv6Network(lease["prefix"]),
                                             int(lease["preferred"]), int(lease["valid"]),
                                             float(lease["at"])),
            tuple(Retired(r["cell"], IPv6Interface(r["address"]), float(r["valid_until"]))
                  for r in d.get("retired", ())),
            dict(d.get("configured", {})))
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as e:
        raise ValueError(f"not a prefix delegation state: {e}") from None
