"""The home agent's datapath: binding state in the kernel, behind one interface.

The daemon tells a Datapath to add, move or remove a binding (home address ->
care-of address); the datapath does exactly that and decides no protocol rule,
except the reverse-tunnel source check of RFC 6275 section 10.4.5, which only
the user backend can make (it sees every decapsulated packet).

Two backends, chosen at start by what the kernel offers (`open_datapath`):

- "kernel" (ha/datapath/kernel.py): one ip6tnl device per care-of address,
  for kernels with ip6_tunnel (stock distribution kernels, the board).
- "user" (ha/datapath/user.py): one TUN device and a raw protocol-41 socket,
  for kernels without it (this build machine).

Both need, per binding, a /128 route for the home address and a proxy
neighbour entry (NTF_PROXY) on the home interface, written through
ha/net/rtnl.py's batching socket.
"""
from __future__ import annotations

from ipaddress import IPv6Address


class Datapath:
    """What the daemon calls. Every call does what it says and decides nothing.

    counters: packets/bytes tunnelled and decapsulated, and drops by reason.
    """

    counters: dict

    async def add_binding(self, hoa: IPv6Address, coa: IPv6Address,
                          link_local: IPv6Address | None = None) -> None:
        """Route hoa/128 into the tunnel toward coa; proxy ND for hoa (and link_local)."""
        raise NotImplementedError

    async def move_binding(self, hoa: IPv6Address, old_coa: IPv6Address,
                           new_coa: IPv6Address) -> None:
        raise NotImplementedError

    async def remove_binding(self, hoa: IPv6Address, coa: IPv6Address,
                             link_local: IPv6Address | None = None) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """Remove everything this datapath created."""
        raise NotImplementedError

    # set by the backends: the home interface, and the NS responder when the
    # daemon (not the kernel) answers for away home addresses
    home_ifindex: int
    responder = None
    _link_local_of: dict  # home address -> its proxied link-local twin (L = 1)

    # section 10.3.1, L = 1: the link-local address with the home address's
    # interface identifier is defended on the home link too
    def _proxied(self, hoa: IPv6Address, link_local: IPv6Address | None) -> list:
        """Addresses to proxy for a new binding; remembers the link-local one."""
        if link_local is None:
            return [hoa]
        self._link_local_of[hoa] = link_local
        return [hoa, link_local]

    def _unproxied(self, hoa: IPv6Address) -> list:
        ll = self._link_local_of.pop(hoa, None)
        return [hoa] if ll is None else [hoa, ll]

    def _link_locals_proxied(self) -> list:
        return list(self._link_local_of.values())

    def _proxy_msgs(self, add: bool, hoas) -> list:
        """Proxy entries to add or delete; none when the daemon answers NS itself."""
        if self.responder is not None:
            return []
        from ha.net.rtnl import proxy_entry_msg
        return [proxy_entry_msg(add, hoa, self.home_ifindex) for hoa in hoas]


def check_unicast_global(addr: IPv6Address) -> None:
    if addr.is_multicast or addr.is_link_local or addr.is_unspecified or addr.is_loopback:
        raise ValueError(f"{addr} cannot be tunnelled (not global unicast)")


async def undo_open(rtnl, firewall, restore: dict, table: int, rule_priority: int) -> None:
    """What a backend's open() did before it failed, undone: the rule, the netlink
    socket, the firewall table, the sysctls (a rule that was never added is fine)."""
    from ha.net.rtnl import RTM_DELRULE, NetlinkError, rule_msg
    if rtnl is not None:
        try:
            await rtnl.submit([rule_msg(RTM_DELRULE, table, rule_priority)])
        except NetlinkError:
            pass
        rtnl.close()
    restore_host(firewall, restore)


def restore_host(firewall, restore: dict) -> None:
    """The host as before the datapath: its firewall table gone, its sysctls back."""
    from ha.net.iface import write_sysctl
    if firewall is not None:
        firewall.remove()
    for key, old in restore.items():
        if old is not None:
            write_sysctl(key, old)
