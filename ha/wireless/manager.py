"""The wireless manager: one hostapd per configured radio, supervised.

    wm = WirelessManager(settings.radios)   # ha.config.model.Radio objects or dicts
    await wm.start(); wm.register_commands(console)
    await wm.reload(new_radios)             # haconf apply: only changed radios restart
    await wm.stop()                         # hostapd children stopped, interfaces down

A radio is up when its hostapd runs (modern kernels beacon only through
hostapd). A radio that may not start is down with the reason, and the other
keeps running: a bad radio never takes the daemon or its neighbour down.

Radios are found over nl80211 (ha/net/nl80211.py, a plain generic-netlink
socket: pyroute2's IW would cost ~10 MB and seconds at 64 MB). Interfaces
that are missing are looked for in /sys every *poll* seconds, which costs
nothing, so a radio whose driver loads later is picked up. Frequencies per band come from the same wiphy dump; when
the kernel leaves them out of an unsplit dump, pyric's phyinfo supplies them.
"""

from __future__ import annotations

import asyncio
import logging
import os

from ha.wireless.hostapd import (HostapdChild, PhyInfo, RadioSpec, Verdict, check_radios,
                        hostapd_config, regdb_present, write_config)

log = logging.getLogger("denali.wireless")

RUNTIME_DIR = "/run/denali/hostapd"


def radio_present(name: str, sysfs: str = "/sys/class/net") -> bool:
    return os.path.exists(os.path.join(sysfs, name, "phy80211"))


async def read_phys_iw() -> dict:
    """{ifname: PhyInfo} for the 802.11 interfaces of this namespace, over nl80211
    (ha/net/nl80211.py: a plain socket, not pyroute2's 10 MB)."""
    from ha.net.nl80211 import IFTYPE_NAMES, Nl80211, Wiphy

    with Nl80211() as nl:
        wiphys = nl.wiphys()
        ifaces = nl.interfaces()
    out = {}
    for name, idx, iftype in ifaces:
        w = wiphys.get(idx) or Wiphy(idx, f"phy{idx}")
        out[name] = PhyInfo(ifname=name, phy=w.name, ap=w.ap,
                            freqs=dict(w.freqs) or None, iftype=IFTYPE_NAMES.get(iftype),
                            radar=frozenset(w.radar), radar_detect=w.radar_detect)
    return out


def fill_freqs_pyric(phys: dict) -> None:
    """Frequencies from pyric where nl80211's dump gave none (pyric asks per phy)."""
    try:
        import pyric.pyw as pyw
    except Exception as e:  # pyric is optional and old
        log.debug("pyric unavailable: %s", e)
        return
    for info in phys.values():
        if info.freqs is not None:
            continue
        try:
            bands = pyw.phyinfo(pyw.getcard(info.ifname))["bands"]
        except Exception as e:
            log.debug("pyric phyinfo %s: %s", info.ifname, e)
            continue
        freqs, radar = {}, set()
        for b in bands.values():
            for f, d in zip(b.get("rfs") or (), b.get("rf-data") or ()):
                # pyric drops NO_IR: it cannot tell a passive-scan channel apart
                freqs[int(f)] = "disabled" if not d.get("enabled", True) else None
                if d.get("radar"):
                    radar.add(int(f))
        info.freqs = freqs or None
        info.radar = info.radar | frozenset(radar)


async def read_phys() -> dict:
    try:
        phys = await read_phys_iw()
    except Exception as e:
        log.error("nl80211: cannot list radios: %s", e)
        return {}
    if any(p.freqs is None for p in phys.values()):
        fill_freqs_pyric(phys)
    return phys


async def set_regdomain(alpha2: str, wait: float = 3.0) -> str | None:
    """Ask cfg80211 for *alpha2*'s rules (nl80211 REQ_SET_REG, as `iw reg set`);
    the country in force after up to *wait* seconds (the kernel reads
    regulatory.db on its own time), or None when it cannot be read."""
    from ha.net.nl80211 import Nl80211

    with Nl80211() as nl:
        nl.req_set_reg(alpha2)
        loop = asyncio.get_running_loop()
        end = loop.time() + wait
        while True:
            now = nl.get_reg()
            if now == alpha2 or loop.time() > end:
                return now
            await asyncio.sleep(0.2)


async def set_station_mode(ifname: str, sysfs: str = "/sys/class/net") -> None:
    with open(os.path.join(sysfs, ifname, "ifindex")) as f:
        ifindex = int(f.read())
    from ha.net.nl80211 import IFTYPE_STATION, Nl80211
    with Nl80211() as nl:
        nl.set_interface_type(ifindex, IFTYPE_STATION)


def _set_link_down(ifname: str) -> None:
    import fcntl
    import socket
    import struct
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH", ifname.encode()[:15], 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, req)[:18])[1]
        if flags & IFF_UP:
            fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", ifname.encode()[:15],
                                                     flags & ~IFF_UP))


class WirelessManager:
    """The radios of the board: one supervised hostapd per radio allowed to start.

    It owns a HostapdChild per running radio (the process, its restarts, its
    control socket), the hostapd.conf files and control directory under
    *runtime_dir*, each radio's verdict (why one is down: bad config, missing,
    no AP mode, channel not usable), and the task that polls /sys for radios
    that come and go.  It reads no config file: the daemon (ha/daemon/
    service.py's Daemon) builds it from Settings.radios (denali.conf [radio]),
    calls start() before the RA sender, reload(radios) on SIGHUP or haconf
    apply (only radios whose settings changed restart) and stop() last, and
    registers its ``radios`` console command; status() is what that shows.
    """

    def __init__(self, radios, *, runtime_dir: str = RUNTIME_DIR, hostapd: str = "hostapd",
                 poll: float = 2.0, backoff: float = 1.0, read_phys=read_phys,
                 sysfs: str = "/sys/class/net", set_reg=set_regdomain):
        self.specs: list[RadioSpec] = []
        self.verdicts: dict[str, Verdict] = {}
        self.children: dict[str, HostapdChild] = {}
        self.runtime_dir = runtime_dir
        self.ctrl_dir = os.path.join(runtime_dir, "ctrl")
        self.hostapd = hostapd
        self.poll = poll
        self.backoff = backoff
        self._read_phys = read_phys
        self._set_reg = set_reg
        self._reg: str | None = None  # the country asked of cfg80211
        self.sysfs = sysfs
        self._poll_task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self.specs, bad = self._specs(radios)
        self._bad = bad
        # called with the radio's name each time its hostapd is started (the
        # daemon puts the radio's configured address on it)
        self.on_radio_started = None

    @staticmethod
    def _specs(radios):
        if hasattr(radios, "radios"):  # a Settings or DenaliConfig: take its radios
            radios = radios.radios
        specs, bad = [], {}
        for r in radios or ():
            try:
                specs.append(RadioSpec.of(r))
            except (TypeError, ValueError) as e:
                name = (r.get("name") if isinstance(r, dict) else getattr(r, "name", None)) or "?"
                bad[str(name)] = Verdict(str(name), False, f"bad radio config: {e}")
        return specs, bad

    # --- life cycle ---------------------------------------------------------------

    async def start(self) -> None:
        try:
            # the configs hold WPA passphrases: their directory is 0700 when we make it
            from ha.config.atomic import private_dir
            private_dir(self.runtime_dir)
            os.makedirs(self.ctrl_dir, mode=0o750, exist_ok=True)
        except OSError as e:  # hostapd will say the same; the radios show why they are down
            log.error("cannot create %s: %s", self.ctrl_dir, e)
        async with self._lock:
            await self._apply(set())
        self._poll_task = asyncio.get_running_loop().create_task(self._poll_loop(),
                                                                 name="wireless-poll")

    async def reload(self, radios) -> None:
        new, bad = self._specs(radios)
        async with self._lock:
            old = {s.name: s for s in self.specs}
            keep = {s.name for s in new if old.get(s.name) == s and s.name in self.children}
            for name in list(self.children):
                if name not in keep:
                    log.warning("radio %s: configuration changed, restarting its hostapd", name)
                    await self._stop_child(name)
            self.specs, self._bad = new, bad
            await self._apply(keep)

    async def stop(self) -> None:
        if self._poll_task is not None:
            self._poll_task.cancel()
            try:
                await self._poll_task
            except asyncio.CancelledError:
                pass
            self._poll_task = None
        async with self._lock:
            for name in list(self.children):
                await self._stop_child(name)

    async def _stop_child(self, name: str) -> None:
        child = self.children.pop(name)
        await child.stop()
        try:
            _set_link_down(name)
        except OSError as e:
            log.debug("radio %s: cannot set the link down: %s", name, e)
            return
        # a hostapd that was killed leaves the interface in AP mode, and the next
        # one restores that on exit: put it back to station ourselves
        try:
            await set_station_mode(name, self.sysfs)
        except Exception as e:
            log.debug("radio %s: cannot set station mode: %s", name, e)

    async def _apply(self, keep: set) -> None:
        """Check every radio and start those that may start and are not running."""
        # nl80211 only when a radio to check is there:
        # one that is absent is "missing" without asking, and is polled in /sys
        checking = any(s.name not in keep and radio_present(s.name, self.sysfs)
                       for s in self.specs)
        if checking:
            await self._regdomain()
        phys = await self._read_phys() if checking else {}
        for name in keep:  # running radios are there: no need to look them up again
            phys.setdefault(name, PhyInfo(name, "?", True, None))
        self.verdicts = check_radios(self.specs, phys, running=keep)
        self.verdicts.update(self._bad)
        country = regdb_present()
        if not country:
            log.warning("no regulatory.db (wireless-regdb): the country is left to the kernel")
        for s in self.specs:
            v = self.verdicts[s.name]
            for w in v.warnings:
                log.warning("radio %s: %s", s.name, w)
            if not v.ok:
                if s.name in self.children:  # cannot happen for kept radios; be safe
                    await self._stop_child(s.name)
                log.error("radio %s (%s) down: %s", s.name, s.essid, v.reason)
                continue
            if s.name in self.children:
                continue
            conf = os.path.join(self.runtime_dir, f"{s.name}.conf")
            try:
                write_config(conf, hostapd_config(s, self.ctrl_dir, country=country))
            except (OSError, ValueError) as e:
                self.verdicts[s.name] = Verdict(s.name, False, f"cannot write {conf}: {e}")
                log.error("radio %s down: cannot write %s: %s", s.name, conf, e)
                continue
            child = HostapdChild(s, conf, self.ctrl_dir, hostapd=self.hostapd,
                                 backoff=self.backoff)
            child.start()
            self.children[s.name] = child
            if self.on_radio_started is not None:
                try:
                    res = self.on_radio_started(s.name)
                    if asyncio.iscoroutine(res):
                        await res
                except Exception as e:  # the radio serves on without its address
                    log.error("radio %s: %s", s.name, e)
            log.warning("radio %s: hostapd started for ESSID %r channel %d", s.name, s.essid,
                        s.channel)
            if s.txpower is not None:
                asyncio.get_running_loop().create_task(self._set_txpower(s, child),
                                                       name=f"txpower-{s.name}")

    async def _regdomain(self) -> None:
        """Before the 5 GHz checks: the country's rules in cfg80211.  The world
        domain marks 5 GHz channels no-IR (passive), which a check before
        hostapd's own country_code would take for a refusal."""
        five = [s for s in self.specs if s.hw_mode == "a"]
        if not five or not regdb_present():
            return
        want = five[0].country
        others = sorted({s.country for s in five} - {want})
        if others:
            log.warning("radios ask for countries %s and %s: one regulatory domain "
                        "serves them all, %s", want, ", ".join(others), want)
        if self._reg == want:
            return
        try:
            now = await self._set_reg(want)
        except Exception as e:
            log.error("nl80211: cannot set regulatory domain %s: %s", want, e)
            return
        self._reg = want
        log.info("regulatory domain %s (asked %s)", now, want)

    async def _set_txpower(self, s: RadioSpec, child: HostapdChild, wait: float = 30.0) -> None:
        """hostapd has no transmit power setting: once it beacons, set it over nl80211."""
        loop = asyncio.get_running_loop()
        end = loop.time() + wait
        while loop.time() < end and self.children.get(s.name) is child:
            try:
                if (await child.ctrl.status()).get("state") == "ENABLED":
                    break
            except Exception:
                pass
            await asyncio.sleep(0.5)
        else:
            return
        try:
            with open(os.path.join(self.sysfs, s.name, "ifindex")) as f:
                ifindex = int(f.read())
            from ha.net.nl80211 import TX_POWER_FIXED, Nl80211
            with Nl80211() as nl:
                nl.set_tx_power(ifindex, TX_POWER_FIXED, s.txpower * 100)  # in mBm
            log.info("radio %s: transmit power %d dBm", s.name, s.txpower)
        except Exception as e:
            log.error("radio %s: cannot set transmit power %d dBm: %s", s.name, s.txpower, e)

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            try:
                await self._poll_once()
            except Exception:  # the poller must outlive any surprise
                log.exception("wireless poll failed")

    async def _poll_once(self) -> None:
        async with self._lock:
            gone = [n for n in self.children if not radio_present(n, self.sysfs)]
            for name in gone:
                log.error("radio %s disappeared: hostapd stopped", name)
                await self._stop_child(name)
            waiting = [s.name for s in self.specs if s.name not in self.children
                       and self.verdicts.get(s.name, Verdict(s.name, False)).missing
                       and radio_present(s.name, self.sysfs)]
            if gone or waiting:
                if waiting:
                    log.warning("radio %s appeared", ", ".join(waiting))
                await self._apply(set(self.children))

    # --- what the console shows ---------------------------------------------------

    async def status(self) -> list[dict]:
        # every hostapd asked at once: one that is still starting (or stuck) costs
        # its control socket's timeout once, not once per radio in turn
        out = list(await asyncio.gather(*(self._status_row(s) for s in self.specs)))
        for name, v in self._bad.items():
            out.append({"radio": name, "interface": name, "mode": "down", "state": "down",
                        "reason": v.reason, "stations": [], "station_count": 0})
        return out

    async def _status_row(self, s: RadioSpec) -> dict:
        v = self.verdicts.get(s.name)
        child = self.children.get(s.name)
        row = {"radio": s.name, "interface": s.name, "role": s.role, "essid": s.essid,
               "channel": s.channel, "frequency": None, "mode": "down", "state": "down",
               "stations": [], "station_count": 0, "security": {"wpa2": "wpa2-psk", "sae": "wpa3-sae",
                            "wpa2-sae": "wpa2-psk+wpa3-sae"}.get(s.mode, "open"),
               "reason": None, "warnings": list(v.warnings) if v else [],
               "restarts": child.restarts if child else 0,
               "last_exit": child.last_exit if child else None,
               "pid": child.pid if child else None}
        if child is None:
            row["reason"] = v.reason if v else "not checked yet"
        else:
            try:
                st = await child.ctrl.status()
                row["state"] = st.get("state", "?").lower()
                if st.get("state") == "ENABLED":
                    row["mode"] = "AP"
                row["essid"] = st.get("ssid[0]", s.essid)
                row["channel"] = int(st.get("channel", s.channel))
                row["frequency"] = int(st["freq"]) if "freq" in st else None
                stas = await child.ctrl.stations()
                row["stations"] = [mac for mac, _ in stas]
                row["station_count"] = len(stas)
            except Exception as e:
                row["state"] = "starting" if child.pid else "restarting"
                row["reason"] = child.last_exit or f"hostapd not answering: {e}"
        return row

    def register_commands(self, console) -> None:
        console.register("radios", self._radios_command,
                         "radios: interface, mode, ESSID, channel, stations (radios json)")

    async def _radios_command(self, args) -> str:
        rows = await self.status()
        if args[:1] == ["json"]:
            import json
            return json.dumps(rows)
        return format_radios(rows)


def format_radios(rows) -> str:
    if not rows:
        return "no radios configured"
    lines = [f"{'interface':<10} {'mode':<5} {'ESSID':<16} {'ch':>3} {'MHz':>5} {'sta':>4}  state"]
    for r in rows:
        freq = r.get("frequency") or "-"
        state = r["state"]
        if r.get("reason"):
            state += f": {r['reason']}"
        lines.append(f"{r['interface']:<10} {r['mode']:<5} {str(r.get('essid', '-')):<16} "
                     f"{str(r.get('channel', '-')):>3} {freq:>5} {r['station_count']:>4}  {state}")
        for w in r.get("warnings") or ():
            lines.append(f"{'':<10} warning: {w}")
    return "\n".join(lines)
