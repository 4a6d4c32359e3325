"""The daemon's event loop: components, signals, the console.

Every service is a component with start(), reload(settings) and stop().
The home agent, the RA sender and (on the board) the wireless manager run
in this one process: the board has 64 MB of RAM and three interpreters
would not fit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

log = logging.getLogger("denali")


class Daemon:
    """denalid's one process: builds the components the settings ask for, runs them.

    It owns the event loop's signal handlers (SIGTERM stops, SIGHUP reloads),
    the console, and the order of things: the wireless manager first (the cells
    must exist), then the RA sender, then the home agent or the mobile node;
    stop runs the other way round. A reload that cannot be read keeps the
    running configuration; a component's own failure to reload is reported,
    not fatal. main() in ha/daemon/main.py creates it after reading the file.
    """

    def __init__(self, settings, args):
        self.settings = settings
        self.args = args
        self.components: list = []
        self.console = None
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        # start-up milestones in seconds since boot (CLOCK_MONOTONIC), for `status`
        self.boot: dict[str, float] = {}
        self._serving = asyncio.Event()  # the console listens: deferred starts may run

    def _build_components(self) -> list:
        s = self.settings
        comps = []
        if getattr(s, "uplink", None) is not None:
            # the upstream side first: forwarding and the appliance's rules
            comps.append(("uplink", self._uplink()))
        if s.radios:
            # the cells come up first: the RA sender and the home agent use them
            from ha.wireless.manager import WirelessManager
            wm = WirelessManager(s.radios)
            # a radio whose driver loads after start gets its address when its
            # hostapd starts: the home agent and the RA sender wait for it
            wm.on_radio_started = lambda name: self._address_interfaces(only=name)
            comps.append(("wireless", wm))
        if s.radvd_text:
            from radvd.service import RAService
            from radvd.config import parse
            comps.append(("ra", RAService(parse(s.radvd_text, s.radvd_source))))
        if s.node == "HA" and s.ha_interface:
            comps.append(("ha", self._home_agent(s)))
        if s.node == "MN" and s.mobile_node:
            from ha.daemon.mobile_node import MobileNodeService
            comps.append(("mn", MobileNodeService(s)))
        if _wants_system(s):
            # the clock and the log last: nothing above waits for them
            from ha.daemon.system import SystemServices
            comps.append(("system", SystemServices(s)))
        return comps

    def _home_agent(self, s):
        from ha.daemon.home_agent import HomeAgent
        return HomeAgent(s, backend=self.args.backend, firewall=not self.args.no_firewall,
                         prefix_lifetimes=advertised_lifetimes(s),
                         state_dir=getattr(self.args, "state_dir", None))

    def _uplink(self):
        from ha.daemon.uplink import Uplink
        return Uplink(self.settings, firewall=not getattr(self.args, "no_firewall", False),
                      on_change=self._reload.set)

    async def _address_interfaces(self, only: str | None = None) -> None:
        """The seed's `ifconfig wlan0 inet6 add 2001:db8::/64`: each radio's
        configured address on its interface, over rtnetlink (an RTM_NEWADDR
        with replace, so a restart finds it in place; no DAD: the router's own
        link address). A missing interface is left to the wireless manager and
        the home agent to report. *only*: that radio alone (its driver came
        late and its hostapd just started)."""
        wanted = []
        for r in self.settings.radios:
            name = getattr(r, "name", None) or r.get("name")
            addr = getattr(r, "address", None) if not isinstance(r, dict) else r.get("address")
            if only is not None and name != only:
                continue
            if addr and os.path.exists(f"/sys/class/net/{name}"):
                wanted.append((name, addr))
        if not wanted:
            return
        import ipaddress
        import socket
        from ha.net import rtnl
        batch = rtnl.RtnlBatch()
        try:
            for name, addr in wanted:
                try:
                    iface = ipaddress.IPv6Interface(addr)
                    msg = rtnl.address_msg(rtnl.RTM_NEWADDR, iface.ip,
                                           iface.network.prefixlen,
                                           socket.if_nametoindex(name))
                    await batch.submit([msg])
                except (OSError, ValueError) as e:
                    log.warning("%s: cannot add %s: %s", name, addr,
                                getattr(e, "strerror", None) or e)
                else:
                    log.info("%s: address %s", name, addr)
        finally:
            batch.close()

    async def run(self) -> int:
        from ha.daemon.console import Console
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload.set)
        self.console = Console(self.settings.vt_port)
        self._register_commands()
        started = []
        await self._address_interfaces()
        try:
            for name, comp in self._build_components():
                if self._stop.is_set():  # SIGTERM while starting: stop what started
                    break
                if name == "wireless":
                    # the radios come up after the rest, in the background: hostapd
                    # takes tens of seconds to beacon on the board, and the home
                    # agent, the RA sender and the console need not wait for it
                    # (each waits for its interface on its own); on one CPU the
                    # radios' checks would only delay them
                    comp = BackgroundStart(name, comp, after=self._serving)
                await comp.start()
                started.append((name, comp))
                if hasattr(comp, "register_commands"):
                    comp.register_commands(self.console)
            self.components = started
            await self.console.start()
            self._serving.set()
        except Exception as e:
            log.error("start-up failed: %s", e, exc_info=log.isEnabledFor(logging.DEBUG))
            print(f"denalid: start-up failed: {e}", file=sys.stderr)
            await self._stop_components(started)
            return 1
        if self._stop.is_set():
            log.warning("stopped while starting")
            await self.console.stop()
            await self._stop_components(started)
            return 0
        self._boot_figures()
        ready = "denali: home agent ready" if self.settings.node == "HA" else \
            "denali: mobile node ready"
        log.warning("%s (pid %d)", ready, os.getpid())
        print(ready, file=sys.stderr, flush=True)
        while not self._stop.is_set():
            stop = asyncio.ensure_future(self._stop.wait())
            reload = asyncio.ensure_future(self._reload.wait())
            await asyncio.wait({stop, reload}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            reload.cancel()
            if self._reload.is_set():
                self._reload.clear()
                await self.reload()
        log.warning("stopping")
        await self.console.stop()
        await self._stop_components(self.components)
        return 0

    def _boot_figures(self) -> None:
        """When this process began, entered main() and got ready, in seconds since boot."""
        try:
            with open("/proc/self/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            self.boot["process"] = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22
        except (OSError, ValueError, IndexError):
            pass
        main = sys.modules.get("ha.daemon.main")
        if getattr(main, "STARTED", None) is not None:
            self.boot["main"] = main.STARTED
        import time
        self.boot["ready"] = time.monotonic()

    async def _stop_components(self, comps) -> None:
        for name, comp in reversed(comps):
            try:
                await comp.stop()
            except Exception as e:
                log.error("stopping %s: %s", name, e)

    async def reload(self) -> str:
        from ha.daemon.settings import SettingsError, load_settings
        path = self.settings.source if self.settings.kind != "denali" \
            or self.settings.source != "(built-in default)" else self.args.config
        try:
            new = load_settings(path, radvd_conf=self.args.radvd_conf)
        except SettingsError as e:
            log.error("reload refused, running config kept: %s", e)
            return f"error: {e}"
        except Exception as e:  # a reader that raised what it should have reported
            log.error("reload refused, running config kept: %s: %s: %s", path,
                      type(e).__name__, e)
            return f"error: {path}: {e}"
        self.settings = new
        for i, (name, comp) in enumerate(list(self.components)):
            try:
                if name == "ra" and new.radvd_text:
                    from radvd.config import parse
                    await comp.reload(parse(new.radvd_text, new.radvd_source))
                elif name == "ha" and comp.address_gone():
                    # renumbered (ha/config/pd.py): the old address ran out with its
                    # prefix; the home agent starts again on the link's new one
                    log.warning("home agent address %s left %s: restarting the home agent",
                                comp.ha_address, comp.ifname)
                    await comp.stop()
                    comp = self._home_agent(new)
                    self.components[i] = (name, comp)
                    await comp.start()
                    comp.register_commands(self.console)
                elif name == "ha":
                    comp.prefix_lifetimes = advertised_lifetimes(new)
                    await comp.reload(new)
                elif name == "wireless":
                    await comp.reload(new.radios)
                elif name in ("uplink", "system"):
                    await comp.reload(new)
            except Exception as e:
                log.error("reloading %s: %s", name, e)
                return f"error: {name}: {e}"
        if getattr(new, "uplink", None) is not None and \
                not any(n == "uplink" for n, _ in self.components):
            # an [uplink] added since start: started now, stopped last
            comp = self._uplink()
            try:
                await comp.start()
            except Exception as e:
                log.error("starting uplink: %s", e)
                return f"error: uplink: {e}"
            self.components.insert(0, ("uplink", comp))
        if _wants_system(new) and not any(n == "system" for n, _ in self.components):
            from ha.daemon.system import SystemServices
            comp = SystemServices(new)
            try:
                await comp.start()
            except Exception as e:
                log.error("starting system services: %s", e)
                return f"error: system: {e}"
            self.components.append(("system", comp))
        log.warning("configuration reloaded")
        return "reloaded"

    def _register_commands(self) -> None:
        from ha.daemon.logbuffer import RecentLog
        c = self.console
        c.register("reload", lambda args: self.reload(), "reload the configuration")
        c.register("log", lambda args: RecentLog.text(int(args[0]) if args else 50),
                   "recent daemon log lines")
        c.register("status", self._status, "services and counts (status json)")

    async def _status(self, args) -> str:
        import json
        services = {name: getattr(comp, "state", "up") for name, comp in self.components}
        info = {"pid": os.getpid(), "services": services, "config": self.settings.source}
        ha = next((c for n, c in self.components if n == "ha"), None)
        if ha is not None and ha.core is not None:
            info["bindings"] = len(ha.cache)
            info["home_agent"] = {"interface": ha.ifname, "address": str(ha.ha_address),
                                  "prefixes": [str(p) for p in ha.prefixes]}
        boot = dict(self.boot)
        ra = next((c for n, c in self.components if n == "ra"), None)
        if ra is not None and ra.first_sent() is not None:
            boot["first_ra"] = ra.first_sent()
        wm = next((c for n, c in self.components if n == "wireless"), None)
        if wm is not None and getattr(wm, "started_at", None) is not None:
            boot["radios_checked"] = wm.started_at
        info["boot"] = {k: round(v, 2) for k, v in boot.items()}
        if wm is not None:
            info["radios"] = await wm.status()
        if args[:1] == ["json"]:
            return json.dumps(info)
        lines = [f"denalid pid {info['pid']}, config {info['config']}"]
        lines += [f"  {n:<10} {st}" for n, st in services.items()]
        if "bindings" in info:
            lines.append(f"  bindings   {info['bindings']}")
        if info["boot"]:
            lines.append("  boot       " + ", ".join(f"{k} {v:.1f} s" for k, v in info["boot"].items())
                         + " (since power-on)")
        if wm is not None:
            from ha.wireless.manager import format_radios
            lines.append(format_radios(info["radios"]))
        return "\n".join(lines)


class BackgroundStart:
    """A component whose start() runs as a task, once *after* is set: start()
    returns at once, stop() cancels a start still waiting or under way before
    stopping it. Every other attribute is the component's own."""

    def __init__(self, name: str, comp, after: asyncio.Event | None = None):
        self._name = name
        self._comp = comp
        self._after = after
        self._task: asyncio.Task | None = None
        self.started_at: float | None = None  # seconds since boot when start() ended

    def __getattr__(self, attr):
        return getattr(self._comp, attr)

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(),
                                                            name=f"start-{self._name}")

    async def _run(self) -> None:
        if self._after is not None:
            await self._after.wait()
        try:
            await self._comp.start()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the rest of the daemon serves on
            log.error("%s: start failed: %s", self._name, e)
        else:
            log.info("%s: started", self._name)
        import time
        self.started_at = time.monotonic()

    @property
    def state(self) -> str:
        if self._task is not None and not self._task.done():
            return "starting"
        return getattr(self._comp, "state", "up")

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self._comp.stop()


def _wants_system(s) -> bool:
    """[system] asks for an NTP client or remote syslog (denali.conf only)."""
    sy = getattr(s, "system", None)
    return sy is not None and bool(sy.ntp_servers or sy.syslog_host)


def advertised_lifetimes(s) -> dict:
    """(valid, preferred) lifetimes the RA sender gives each prefix of the home link.

    Section 10.6.1: a Mobile Prefix Advertisement carries the home prefixes with
    the lifetimes the home link advertises, so the home agent reads them here
    from the RA sender's own configuration. radvd's `prefix ::/64` stands for
    every prefix of the interface, keyed by None.
    """
    if not s.radvd_text or not s.ha_interface:
        return {}
    from radvd.config import parse
    out = {}
    for iface in parse(s.radvd_text, s.radvd_source).interfaces:
        if iface.name != s.ha_interface:
            continue
        for p in iface.prefixes:
            key = None if p.prefix.network_address.is_unspecified else p.prefix
            out[key] = (p.adv_valid_lifetime, p.adv_preferred_lifetime)
    return out
