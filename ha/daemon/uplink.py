"""The uplink component: the wired upstream side of the router ([uplink]).

What an engineer typed by hand (`ip -6 addr add ... dev eth0`, `ip -6 route
add default via ...`, `sysctl net.ipv6.conf.all.forwarding=1`) done from
denali.conf, over rtnetlink (ha/net/rtnl.py's builders, no `ip` child):

  - the static address on the interface (nodad: it is configured, not
    guessed), or, for mode = slaac, accept_ra = 2 and autoconf = 1 on it:
    RFC 4861 section 6.3.4 has a router ignore RAs, and Linux does so on a
    forwarding interface unless accept_ra is 2;
  - the default route via the gateway, and each static route;
  - IPv6 forwarding on (the cells are routed to the uplink);
  - the appliance's own input rules, `inet denali_fw` (ha/net/firewall.py).

Everything it adds is remembered as one item each, so a reload applies only
the difference between the old items and the new, and stop removes exactly
what was added and puts the sysctls back. A missing interface (a USB NIC not
there yet) is waited for, as the home agent waits for its cell.

With `prefix_delegation = on` it also runs the DHCPv6 client
(ha/daemon/pd_client.py: dhcpcd, supervised) and keeps the renumbering state
(ha/config/pd.py) in the state directory's pd/state.json. A delegation that
changes what the cells are numbered from asks the daemon for a reload
(on_change): ha/daemon/settings.py lays the state over denali.conf, so the
RA sender, the home agent (its home prefixes, and the unsolicited MPAs of
RFC 6275 section 10.6.2) and this component all take the new prefixes the
way they take an edited file. The cells' addresses are among its items: the
current one of each cell, and each retired one kept deprecated (preferred
lifetime 0) with the valid lifetime it has left, after which the kernel
removes it.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
from ipaddress import IPv6Address, IPv6Interface, IPv6Network

log = logging.getLogger("denali.uplink")

WAIT_POLL = 1.0  # seconds between looks at an uplink interface that is not there yet
DEFAULT = IPv6Network("::/0")
FORWARDING = "net.ipv6.conf.all.forwarding"
RETIRED_METRIC = 512  # a retired prefix's on-link route (ours; the kernel's are 256)


def desired_items(up, cells=()) -> list[tuple]:
    """What [uplink] asks the kernel to hold, in the order it is applied.

    ("sysctl", ifname, key, value), ("addr", ifname, IPv6Interface),
    ("addr_until", ifname, IPv6Interface, valid_until: wall time; deprecated)
    and ("route", ifname, IPv6Network, IPv6Address); empty for no uplink.
    `cells` are the delegated cells' address items (cell_items()).
    """
    if up is None:
        return []
    name = up.interface
    items: list[tuple] = list(cells)
    if up.mode == "slaac":
        # autoconf from the upstream router's RAs while forwarding (see above)
        items += [("sysctl", name, "accept_ra", "2"), ("sysctl", name, "autoconf", "1")]
    elif up.address:
        items.append(("addr", name, IPv6Interface(up.address)))
    if up.gateway:
        items.append(("route", name, DEFAULT, IPv6Address(up.gateway)))
    for r in up.routes:
        items.append(("route", name, IPv6Network(r.prefix), IPv6Address(r.gateway)))
    return items


def cell_items(settings, state, now: float) -> list[tuple]:
    """The delegated cells' addresses: each one's current, and the retired ones."""
    up = getattr(settings, "uplink", None)
    if up is None or not up.prefix_delegation:
        return []
    items = []
    for r in settings.radios:
        if r.name in settings.pd_cells and r.address:
            items.append(("addr", r.name, IPv6Interface(r.address)))
    for r in state.retired:
        if r.valid_until > now:
            items.append(("addr_until", r.cell, r.address, r.valid_until))
    return items


def _conf_path(ifname: str, key: str) -> str:
    # by hand, not write_sysctl's dotted form: an interface name may hold a dot (eth0.10)
    return f"/proc/sys/net/ipv6/conf/{ifname}/{key}"


def _write_conf(ifname: str, key: str, value: str) -> str | None:
    """Set one per-interface IPv6 sysctl; the previous value (None: no such file)."""
    try:
        with open(_conf_path(ifname, key)) as f:
            old = f.read().strip()
        if old != value:
            with open(_conf_path(ifname, key), "w") as f:
                f.write(value)
        return old
    except FileNotFoundError:
        return None


class Uplink:
    """start() applies [uplink], reload(settings) the difference, stop() undoes it."""

    def __init__(self, settings, *, firewall: bool = True, on_change=None):
        self.settings = settings
        self.on_change = on_change          # asks the daemon to reload (a new delegation)
        self.pd = None                      # PdClient while prefix_delegation is on
        self.pd_state = None                # ha.config.pd.PdState
        self._pd_timer: asyncio.TimerHandle | None = None
        self.up = getattr(settings, "uplink", None)
        self.use_firewall = firewall
        self.applied: list[tuple] = []      # items in the kernel, in the order added
        self._restore: dict = {}            # ("sysctl", ifname, key) -> old value
        self._forwarding_old: str | None = None
        self._firewall = None
        self._rtnl = None
        self._waiter: asyncio.Task | None = None
        self._waiting_for: str | None = None
        self.errors: list[str] = []

    # ----------------------------------------------------------- lifecycle

    @property
    def state(self) -> str:
        if self.up is None:
            return "none"
        if self._waiting_for:
            return f"waiting for {self.up.interface}: {self._waiting_for}"
        what = self.up.address if self.up.mode == "static" and self.up.address else self.up.mode
        text = f"up on {self.up.interface} ({what})"
        if self.pd is not None:
            lease = self.pd_state.lease if self.pd_state is not None else None
            text += f", delegated {lease.prefix}" if lease else f", asking for a prefix ({self.pd.state})"
        return text + (f", {len(self.errors)} failed: {self.errors[0]}" if self.errors else "")

    async def start(self) -> None:
        from ha.net.rtnl import RtnlBatch
        if self.up is None:
            return
        self._rtnl = RtnlBatch()
        await self._begin()

    async def _begin(self) -> None:
        """Forwarding, the firewall, then the interface's items (or wait for it)."""
        from ha.net.iface import write_sysctl
        if self._forwarding_old is None:
            self._forwarding_old = write_sysctl(FORWARDING, "1")
            log.info("IPv6 forwarding on (was %s)", self._forwarding_old)
        self._install_firewall()
        if not os.path.exists(f"/sys/class/net/{self.up.interface}"):
            self._waiting_for = "does not exist"
            log.warning("uplink interface %s does not exist, waiting for it", self.up.interface)
            self._waiter = asyncio.get_running_loop().create_task(self._wait())
            return
        await self._converge(self._want())
        await self._pd_follow()

    def _want(self) -> list[tuple]:
        import time
        if self.up is not None and self.up.prefix_delegation and self.pd_state is None:
            self.pd_state = _load_pd_state()
        cells = cell_items(self.settings, self.pd_state, time.time()) if self.pd_state else []
        return desired_items(self.up, cells)

    async def _wait(self) -> None:
        while self.up is not None and not os.path.exists(f"/sys/class/net/{self.up.interface}"):
            await asyncio.sleep(WAIT_POLL)
        self._waiting_for = None
        self._waiter = None
        if self.up is not None:
            log.warning("uplink interface %s is there", self.up.interface)
            await self._converge(self._want())
            await self._pd_follow()

    # ------------------------------------------------- prefix delegation

    async def _pd_follow(self) -> None:
        """The DHCPv6 client running as [uplink] asks (restarted when that changed)."""
        from ha.daemon.pd_client import PdClient
        up = self.up
        want = (up.interface, up.pd_hint) if up is not None and up.prefix_delegation else None
        have = (self.pd.interface, self.pd.hint) if self.pd is not None else None
        if want == have:
            return
        if self.pd is not None:
            await self.pd.stop()
            self.pd = None
            log.info("prefix delegation: client stopped")
        if want is not None:
            self.pd = PdClient(up.interface, up.pd_hint, _pd_dir(), self._on_lease)
            self.pd.start()
            self._arm_pd_timer()

    def _on_lease(self, env: dict, written: float | None = None) -> None:
        """dhcpcd's script reported: a lease, a renewal, or the delegation's end.
        `written` is when the script wrote it (the lease's lifetimes start then)."""
        import time
        from ha.config import pd
        from ha.daemon.pd_client import GONE_REASONS
        now = time.time()
        reason = env.get("reason", "")
        lease = None if reason in GONE_REASONS else pd.lease_from_env(
            env, min(now, written) if written is not None else now)
        old = self.pd_state or pd.PdState()
        s = self.settings
        new = pd.renumber(pd.expire(old, now), lease, s.pd_cells, s.pd_configured, now)
        self.pd_state = new
        _save_pd_state(new)
        # a renewal (the server counts its lifetimes down) changes nothing the
        # cells see: only a new prefix, or one retired or run out, is a reload
        if (old.lease and old.lease.prefix) == (new.lease and new.lease.prefix) \
                and old.retired == new.retired:
            log.debug("prefix delegation: %s, %s unchanged", reason, lease and lease.prefix)
            return
        if lease is None:
            log.warning("prefix delegation: the delegation ended (%s)", reason or "?")
        elif old.lease is None or old.lease.prefix != lease.prefix:
            log.warning("prefix delegation: delegated %s (preferred %d s, valid %d s)%s",
                        lease.prefix, lease.preferred, lease.valid,
                        f", retiring {old.lease.prefix}" if old.lease else "")
        self._arm_pd_timer()
        if self.on_change is not None:
            self.on_change()

    def _arm_pd_timer(self) -> None:
        """A reload when a retired prefix or the lease runs out (ha.config.pd.next_change)."""
        import time
        from ha.config import pd
        if self._pd_timer is not None:
            self._pd_timer.cancel()
            self._pd_timer = None
        when = pd.next_change(self.pd_state) if self.pd_state is not None else None
        if when is None:
            return
        self._pd_timer = asyncio.get_running_loop().call_later(
            max(0.0, when - time.time()) + 0.5, self._pd_expired)

    def _pd_expired(self) -> None:
        import time
        from ha.config import pd
        self._pd_timer = None
        new = pd.expire(self.pd_state, time.time())
        if new != self.pd_state:
            self.pd_state = new
            try:
                _save_pd_state(new)
            except OSError as e:  # the state in memory still drives the cells
                log.error("prefix delegation: cannot save its state: %s", e)
            log.info("prefix delegation: a retired prefix ran out")
            if self.on_change is not None:
                self.on_change()
        self._arm_pd_timer()

    def _install_firewall(self) -> None:
        from ha.net.firewall import ApplianceFirewall
        if not self.use_firewall:
            return
        port = getattr(self.settings, "vt_port", 7777)
        fw = self._firewall
        if fw is not None and fw.uplink == self.up.interface and fw.console_port == port:
            return
        fw = ApplianceFirewall(self.up.interface, port)
        fw.install()  # replaces the old table in one transaction
        self._firewall = fw
        log.info("firewall table inet denali_fw, uplink %s, console port %d closed",
                 self.up.interface, port)

    async def reload(self, settings) -> None:
        self.settings = settings
        new = getattr(settings, "uplink", None)
        old, self.up = self.up, new
        if self._waiter is not None:
            self._waiter.cancel()
            self._waiter, self._waiting_for = None, None
        if new is None:
            if self.pd is not None:
                await self.pd.stop()
                self.pd = None
            if old is not None:
                await self._teardown()
                log.warning("uplink removed")
            return
        if self._rtnl is None:
            from ha.net.rtnl import RtnlBatch
            self._rtnl = RtnlBatch()
        await self._begin()
        log.info("uplink configuration reloaded")

    async def stop(self) -> None:
        if self._waiter is not None:
            self._waiter.cancel()
            self._waiter = None
        if self._pd_timer is not None:
            self._pd_timer.cancel()
            self._pd_timer = None
        if self.pd is not None:
            await self.pd.stop()
            self.pd = None
        await self._teardown()
        if self._rtnl is not None:
            self._rtnl.close()
            self._rtnl = None

    async def _teardown(self) -> None:
        from ha.net.iface import write_sysctl
        await self._converge([])
        if self._firewall is not None:
            try:
                self._firewall.remove()
            except OSError as e:
                log.error("removing the firewall table: %s", e)
            self._firewall = None
        if self._forwarding_old is not None:
            write_sysctl(FORWARDING, self._forwarding_old)
            log.info("IPv6 forwarding back to %s", self._forwarding_old)
            self._forwarding_old = None
        log.info("uplink stopped")

    # ---------------------------------------------------------- the kernel

    async def _converge(self, want: list[tuple]) -> None:
        """Remove the applied items not wanted, add the wanted ones not applied.

        Order: stale routes go first (before the address they may need),
        then new addresses and sysctls come, stale addresses leave (after
        the new one, so a shared prefix route stays), and new routes come
        last. When an address changed, the kept routes are put back too:
        the kernel may have dropped them with the old address's prefix.
        """
        stale = [i for i in self.applied if i not in want]
        new = [i for i in want if i not in self.applied]
        self.errors = []
        addr_changed = any(i[0] == "addr" for i in stale + new)
        for item in reversed([i for i in stale if i[0] == "route"]):
            await self._remove(item)
        if new and new[0][1]:
            await self._link_up(new[0][1])
        for item in [i for i in new if i[0] != "route"]:
            await self._add(item)
        kept = {(i[1], i[2].ip) for i in want if i[0] in ("addr", "addr_until")}
        for item in reversed([i for i in stale if i[0] != "route"]):
            if item[0] in ("addr", "addr_until") and (item[1], item[2].ip) in kept:
                self.applied.remove(item)  # the same address, now deprecated (or back)
                if item[0] == "addr_until":
                    await self._drop_route_of(item)  # back in use: the kernel's route again
                continue
            await self._remove(item)
        routes = [i for i in want if i[0] == "route"]
        for item in routes if addr_changed else [i for i in new if i[0] == "route"]:
            await self._add(item)

    async def _drop_route_of(self, item: tuple) -> None:
        """The on-link route an addr_until item added (gone already is fine)."""
        from ha.net import rtnl
        try:
            await self._rtnl.submit([rtnl.prefix_route_msg(
                rtnl.RTM_DELROUTE, item[2].network, socket.if_nametoindex(item[1]),
                metric=RETIRED_METRIC)])
        except OSError as e:
            if e.errno not in (errno.ESRCH, errno.ENODEV, errno.ENOENT, errno.ENXIO):
                log.error("cannot remove the route of %s: %s", _describe(item), e.strerror or e)

    async def _link_up(self, ifname: str) -> None:
        from ha.net.rtnl import NetlinkError, link_up_msg
        try:
            await self._rtnl.submit([link_up_msg(socket.if_nametoindex(ifname))])
        except (OSError, NetlinkError) as e:
            log.error("%s up: %s", ifname, e)

    async def _add(self, item: tuple) -> None:
        from ha.net import rtnl
        kind, ifname = item[0], item[1]
        try:
            if kind == "sysctl":
                old = _write_conf(ifname, item[2], item[3])
                if old is None:
                    raise OSError(errno.ENOENT, f"no {_conf_path(ifname, item[2])}")
                self._restore.setdefault(item[:3], old)
                log.info("%s %s = %s (was %s)", ifname, item[2], item[3], old)
            else:
                ifindex = socket.if_nametoindex(ifname)
                if kind == "addr":
                    a = item[2]
                    msg = rtnl.address_msg(rtnl.RTM_NEWADDR, a.ip, a.network.prefixlen, ifindex)
                elif kind == "addr_until":
                    import time
                    a, left = item[2], max(1, int(item[3] - time.time()))
                    # RFC 4862 section 5.5.3 e): deprecated now, gone when the valid one
                    # ends. Its on-link route is ours: the kernel (6.1 to 6.18 at least)
                    # gives an address changed from permanent to finite lifetimes a
                    # prefix route already expired, and the old prefix's hosts would be
                    # routed to the uplink
                    await self._rtnl.submit([rtnl.address_msg(
                        rtnl.RTM_NEWADDR, a.ip, a.network.prefixlen, ifindex,
                        lifetimes=(left, 0), noprefixroute=True)])
                    msg = rtnl.prefix_route_msg(rtnl.RTM_NEWROUTE, a.network, ifindex,
                                                metric=RETIRED_METRIC)
                else:
                    msg = rtnl.prefix_route_msg(rtnl.RTM_NEWROUTE, item[2], ifindex,
                                                gateway=item[3])
                await self._rtnl.submit([msg])
                log.info("added %s", _describe(item))
        except OSError as e:
            self.errors.append(f"{_describe(item)}: {e.strerror or e}")
            log.error("cannot add %s: %s", _describe(item), e.strerror or e)
            return
        if item not in self.applied:
            self.applied.append(item)

    async def _remove(self, item: tuple) -> None:
        from ha.net import rtnl
        kind, ifname = item[0], item[1]
        if item in self.applied:
            self.applied.remove(item)
        try:
            if kind == "sysctl":
                old = self._restore.pop(item[:3], None)
                if old is not None:
                    _write_conf(ifname, item[2], old)
                    log.info("%s %s back to %s", ifname, item[2], old)
                return
            ifindex = socket.if_nametoindex(ifname)
            if kind == "addr_until":
                await self._drop_route_of(item)
            if kind in ("addr", "addr_until"):
                a = item[2]
                msg = rtnl.address_msg(rtnl.RTM_DELADDR, a.ip, a.network.prefixlen, ifindex)
            else:
                msg = rtnl.prefix_route_msg(rtnl.RTM_DELROUTE, item[2], ifindex,
                                            gateway=item[3])
            await self._rtnl.submit([msg])
            log.info("removed %s", _describe(item))
        except OSError as e:
            # gone already (the interface went, or the kernel dropped the route
            # with its address): nothing of ours is left to remove
            if e.errno not in (errno.ESRCH, errno.ENODEV, errno.EADDRNOTAVAIL, errno.ENOENT,
                               errno.ENXIO):
                log.error("cannot remove %s: %s", _describe(item), e.strerror or e)


def _pd_dir() -> str:
    from ha.daemon.settings import pd_state_path
    return os.path.dirname(pd_state_path())


def _load_pd_state():
    from ha.config import pd
    from ha.daemon.settings import pd_state_path
    try:
        with open(pd_state_path(), encoding="utf-8") as f:
            return pd.state_from_json(f.read())
    except FileNotFoundError:
        return pd.PdState()
    except (OSError, ValueError) as e:
        log.error("prefix delegation: %s: %s; starting afresh", pd_state_path(), e)
        return pd.PdState()


def _save_pd_state(state) -> None:
    from ha.config import pd
    from ha.config.atomic import atomic_write, private_dir
    from ha.daemon.settings import pd_state_path
    private_dir(os.path.dirname(pd_state_path()))
    atomic_write(pd_state_path(), pd.state_to_json(state))


def _describe(item: tuple) -> str:
    if item[0] == "addr":
        return f"address {item[2]} on {item[1]}"
    if item[0] == "addr_until":
        return f"address {item[2]} on {item[1]} (deprecated, retiring)"
    if item[0] == "route":
        dst = "default" if item[2] == DEFAULT else str(item[2])
        return f"route {dst} via {item[3]} dev {item[1]}"
    return f"{item[1]} {item[2]} = {item[3]}"
