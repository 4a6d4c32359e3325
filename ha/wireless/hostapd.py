"""hostapd for one radio: its config file, its control socket, its supervised child.

Three layers, the first two pure:

- ``RadioSpec`` + ``check_radios()``: what may start. A radio must exist,
  support AP mode and have the channel usable for AP on its band; a DFS
  channel (5 GHz 52-64, 100-144, or one the phy flags for radar) only when
  the driver reports radar detection; a protected cell needs its key; no radio may
  take another's ESSID or channel (the one already running, else the first in
  the config, keeps it); channels less than 5 apart overlap and only warn.
  The channel, country, ESSID and key rules are ha.config.regulatory's, the
  same ones haconf checks before it commits.
- ``hostapd_config()``: the hostapd.conf text. Open, WPA2-PSK, WPA3-SAE or
  both (transition), CCMP always; 802.11n as HT20. ``country_code`` only when the kernel can
  read regulatory.db (wireless-regdb): without it hostapd fails to start.
- ``HostapdControl`` (control socket client, asyncio) and ``HostapdChild``
  (runs hostapd in the foreground, restarts it with back-off, logs why it died).

On modern kernels an AP interface beacons only while hostapd runs, so the
child is the radio: no hostapd, no cell.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
from dataclasses import dataclass

from ha.net.children import end_child
from ha.config.regulatory import (NON_OVERLAP_DISTANCE, channel_frequency,  # noqa: F401
                                  channel_rule, essid_rule,
                                  frequency, ht_rule, hw_mode_rule, is_dfs, is_hex_psk,
                                  key_rule, security_of, security_rule)

log = logging.getLogger("denali.wireless")

REGDB_PATHS = ("/lib/firmware/regulatory.db", "/usr/lib/firmware/regulatory.db")


@dataclass(frozen=True, slots=True)
class RadioSpec:
    """One configured radio, from ha.config.model.Radio or a dict with the same keys."""
    name: str
    essid: str
    channel: int
    hw_mode: str = "g"
    country: str = "US"
    txpower: int | None = None
    role: str = "foreign"
    key: str | None = None
    ieee80211n: bool = False
    security: str | None = None     # None: wpa2 with a key, open without

    @property
    def mode(self) -> str:
        """The security in force: open, wpa2, sae or wpa2-sae."""
        return security_of(self.security, self.key)

    @classmethod
    def of(cls, r) -> "RadioSpec":
        get = r.get if isinstance(r, dict) else (lambda k, d=None: getattr(r, k, d))
        name = get("name") or get("interface")
        if not name:
            raise ValueError(f"radio {r!r} has no name")
        if not get("essid"):
            raise ValueError(f"radio {name} has no essid")
        return cls(name=str(name), essid=str(get("essid")), channel=int(get("channel")),
                   hw_mode=get("hw_mode") or "g", country=get("country") or "US",
                   txpower=None if get("txpower") is None else int(get("txpower")),
                   role=get("role") or "foreign", key=get("key") or None,
                   ieee80211n=bool(get("ieee80211n", False)),
                   security=get("security") or None)


@dataclass(slots=True)
class PhyInfo:
    """What nl80211 says about one radio: enough to decide whether it can be our AP."""
    ifname: str
    phy: str
    ap: bool                    # AP among the supported interface types
    freqs: dict | None = None   # MHz -> None (usable) or why not ("disabled", "no-IR")
    iftype: str | None = None
    radar: frozenset = frozenset()  # MHz flagged NL80211_FREQUENCY_ATTR_RADAR (DFS)
    radar_detect: bool = False  # an interface combination has radar detect widths


@dataclass(slots=True)
class Verdict:
    name: str
    ok: bool
    reason: str = ""            # why it may not start
    missing: bool = False       # the radio is not there (yet): wait for it
    warnings: tuple = ()


def check_radios(specs, phys: dict, running=()) -> dict:
    """Decide which radios may start: {name: Verdict}.

    *phys* maps interface name to PhyInfo (absent: no such radio). *running* names
    the radios up now: they keep their ESSID and channel against newcomers.
    """
    order = sorted(specs, key=lambda s: (s.name not in running,))  # stable: config order
    verdicts: dict[str, Verdict] = {}
    taken: list[RadioSpec] = []
    for s in order:
        warnings = []
        missing = False
        reason = (hw_mode_rule(s.hw_mode) or channel_rule(s.channel, s.country, s.hw_mode)
                  or ht_rule(s.ieee80211n, s.hw_mode) or essid_rule(s.essid)
                  or key_rule(s.key) or security_rule(s.security, s.key))
        if reason is None and s.mode != "open" and not s.key:
            reason = (f"security {s.mode} and no key: haconf set {s.name} key PASSPHRASE "
                      "(8-63 characters), or security open")
        if reason is None:
            for t in taken:
                if t.essid == s.essid:
                    reason = (f"ESSID {s.essid!r} is already the ESSID of {t.name}: "
                              "each radio needs its own")
                    break
                if t.channel == s.channel:
                    reason = (f"channel {s.channel} is already used by {t.name}: "
                              "use another channel, at best 5 or more apart")
                    break
        if reason is None:
            p = phys.get(s.name)
            if p is None:
                reason, missing = f"no radio {s.name} (waiting for it to appear)", True
            elif not p.ap:
                reason = f"{s.name} ({p.phy}) does not support AP mode"
            elif p.freqs is not None:
                f = frequency(s.channel)
                if f not in p.freqs:
                    reason = f"{s.name} ({p.phy}) has no channel {s.channel} ({f} MHz)"
                elif p.freqs[f]:
                    reason = (f"{s.name} ({p.phy}) cannot start an AP on channel "
                              f"{s.channel} ({f} MHz): {p.freqs[f]}")
            if reason is None and p is not None and p.ap and (
                    is_dfs(s.channel) or frequency(s.channel) in p.radar) \
                    and not p.radar_detect:
                # ETSI EN 301 893 / 47 CFR 15.407(h): no radar detection, no AP here
                reason = (f"channel {s.channel} is a DFS channel (radar detection "
                          f"required) and {s.name} ({p.phy}) reports no radar "
                          "detection: use 36-48 or 149-165")
        if reason is None:
            for t in taken:
                if abs(t.channel - s.channel) < NON_OVERLAP_DISTANCE and \
                        max(t.channel, s.channel) <= 14:  # 5 GHz: 20 MHz apart
                    warnings.append(f"{s.name} channel {s.channel} overlaps {t.name} channel "
                                    f"{t.channel} (less than {NON_OVERLAP_DISTANCE} apart)")
            taken.append(s)
        verdicts[s.name] = Verdict(s.name, reason is None, reason or "", missing,
                                   tuple(warnings))
    return {s.name: verdicts[s.name] for s in specs}


def _ssid_line(essid: str) -> str:
    raw = essid.encode("utf-8")
    if re.fullmatch(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?", essid):
        return f"ssid={essid}"
    # anything else (spaces at the ends, non-ASCII) as hex: no way to break the file
    line = f"ssid2={raw.hex()}"
    return line + ("\nutf8_ssid=1" if not essid.isascii() else "")


def hostapd_config(spec: RadioSpec, ctrl_dir: str, *, country: bool = True) -> str:
    """hostapd.conf text for *spec*; *country* False leaves the country to the kernel."""
    lines = [
        f"# written by denalid for radio {spec.name}: do not edit",
        f"interface={spec.name}",
        "driver=nl80211",
        f"ctrl_interface={ctrl_dir}",
        _ssid_line(spec.essid),
        f"hw_mode={spec.hw_mode}",
        f"channel={spec.channel}",
        "beacon_int=100",
        "auth_algs=1",
        "ignore_broadcast_ssid=0",
        "wmm_enabled=1",
    ]
    if spec.ieee80211n:
        lines += ["ieee80211n=1", "ht_capab="]  # HT20: no HT40 +/-, no extras
    if country:
        lines += [f"country_code={spec.country}", "ieee80211d=1"]
        if spec.hw_mode == "a":
            lines.append("ieee80211h=1")  # spectrum management: 5 GHz rules
    mode = spec.mode
    why = key_rule(spec.key) or security_rule(spec.security, spec.key)
    if why:
        raise ValueError(why)
    if mode != "open":
        if not spec.key:
            raise ValueError(f"security {mode} needs a key")
        mgmt = {"wpa2": "WPA-PSK", "sae": "SAE", "wpa2-sae": "WPA-PSK SAE"}[mode]
        lines += ["wpa=2", f"wpa_key_mgmt={mgmt}", "rsn_pairwise=CCMP"]
        if mode == "sae":
            lines.append("ieee80211w=2")          # WPA3: protected frames required
        elif mode == "wpa2-sae":
            lines += ["ieee80211w=1", "sae_require_mfp=1"]  # optional, SAE needs it
        if mode != "sae":
            if is_hex_psk(spec.key):
                lines.append(f"wpa_psk={spec.key.lower()}")
            else:
                lines.append(f"wpa_passphrase={spec.key}")
        if mode != "wpa2":
            lines.append(f"sae_password={spec.key}")
    return "\n".join(lines) + "\n"


def write_config(path: str, text: str) -> None:
    """Write a hostapd.conf: it may hold the WPA passphrase, so 0600 in a 0700 directory.

    The file is born 0600 (ha.config.atomic), also when it replaces an older one.
    """
    from ha.config.atomic import atomic_write, private_dir
    private_dir(os.path.dirname(os.path.abspath(path)))
    atomic_write(path, text)


def regdb_present(paths=REGDB_PATHS) -> bool:
    return any(os.path.exists(p) for p in paths)


# --- control socket --------------------------------------------------------------

def parse_status(text: str) -> dict:
    """hostapd STATUS (key=value lines) to a dict of strings."""
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep:
            out[k.strip()] = v.strip()
    return out


def parse_station(text: str) -> tuple[str, dict] | None:
    """STA-FIRST / STA-NEXT reply: the address line, then key=value lines."""
    lines = text.splitlines()
    if not lines or not re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", lines[0].strip()):
        return None
    return lines[0].strip(), parse_status("\n".join(lines[1:]))


class ControlError(Exception):
    pass


class HostapdControl:
    """A request/reply client of hostapd's control socket (unix datagrams)."""

    _seq = 0

    def __init__(self, path: str):
        self.path = path
        self._sock: socket.socket | None = None
        self._local = None
        self._lock = asyncio.Lock()

    def _open(self) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        HostapdControl._seq += 1
        local = os.path.join(os.path.dirname(self.path),
                             f".denalid-{os.getpid()}-{HostapdControl._seq}")
        try:
            os.unlink(local)
        except FileNotFoundError:
            pass
        try:
            s.bind(local)
            s.connect(self.path)
        except OSError:
            s.close()
            try:
                os.unlink(local)
            except OSError:
                pass
            raise
        s.setblocking(False)
        self._sock, self._local = s, local
        return s

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._local:
            try:
                os.unlink(self._local)
            except OSError:
                pass
            self._local = None

    async def request(self, cmd: str, timeout: float = 2.0) -> str:
        async with self._lock:
            try:
                s = self._sock or self._open()
            except OSError as e:
                raise ControlError(f"{self.path}: {e.strerror or e}") from None
            loop = asyncio.get_running_loop()
            try:
                await loop.sock_sendall(s, cmd.encode())
                while True:
                    data = await asyncio.wait_for(loop.sock_recv(s, 65536), timeout)
                    if not data.startswith(b"<"):  # skip unsolicited event messages
                        return data.decode("utf-8", "replace")
            except (OSError, asyncio.TimeoutError) as e:
                self.close()
                raise ControlError(f"{self.path}: {cmd}: {e or 'no reply'}") from None

    async def status(self) -> dict:
        return parse_status(await self.request("STATUS"))

    async def stations(self) -> list[tuple[str, dict]]:
        out = []
        reply = await self.request("STA-FIRST")
        while (sta := parse_station(reply)) is not None and len(out) < 2048:
            out.append(sta)
            reply = await self.request(f"STA-NEXT {sta[0]}")
        return out


# --- the supervised child ---------------------------------------------------------

class HostapdChild:
    """Runs `hostapd CONF` in the foreground and brings it back when it dies.

    Back-off doubles from *backoff* up to *backoff_max*; a run that lasted
    *stable* seconds resets it. Why it died (exit status and its last lines of
    output) is logged and kept in ``last_exit``.
    """

    def __init__(self, spec: RadioSpec, conf_path: str, ctrl_dir: str, *,
                 hostapd: str = "hostapd", backoff: float = 1.0, backoff_max: float = 30.0,
                 stable: float = 60.0):
        self.spec = spec
        self.conf_path = conf_path
        self.ctrl = HostapdControl(os.path.join(ctrl_dir, spec.name))
        self.hostapd = hostapd
        self.backoff, self.backoff_max, self.stable = backoff, backoff_max, stable
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.last_exit: str | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._tail: list[str] = []

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.returncode is None else None

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._supervise(),
                                                            name=f"hostapd-{self.spec.name}")

    async def _read_output(self, stream) -> None:
        while line := await stream.readline():
            text = line.decode("utf-8", "replace").rstrip()
            self._tail = (self._tail + [text])[-8:]
            log.debug("hostapd %s: %s", self.spec.name, text)

    async def _supervise(self) -> None:
        delay = self.backoff
        loop = asyncio.get_running_loop()
        while not self._stopping:
            self._tail = []
            began = loop.time()
            try:
                self.proc = await asyncio.create_subprocess_exec(
                    self.hostapd, self.conf_path, stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            except OSError as e:
                self.last_exit = f"cannot run {self.hostapd}: {e.strerror or e}"
                log.error("radio %s: %s", self.spec.name, self.last_exit)
            else:
                reader = loop.create_task(self._read_output(self.proc.stdout))
                rc = await self.proc.wait()
                await asyncio.wait({reader}, timeout=1)
                self.ctrl.close()
                if self._stopping:
                    break
                if loop.time() - began >= self.stable:
                    delay = self.backoff
                why = f"signal {-rc}" if rc < 0 else f"exit status {rc}"
                tail = " | ".join(t for t in self._tail[-3:] if t)
                self.last_exit = why + (f": {tail}" if tail else "")
                log.error("radio %s: hostapd died (%s); restarting in %g s",
                          self.spec.name, self.last_exit, delay)
            try:
                await asyncio.sleep(delay)
            except asyncio.CancelledError:
                break
            delay = min(delay * 2, self.backoff_max)
            self.restarts += 1

    async def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        await end_child(self.proc, self._task, timeout)
        self._task = None
        self.ctrl.close()
