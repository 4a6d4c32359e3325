"""The seed document's network, built from network namespaces.

    cn ──┐                       ┌── (mn when at home)
         ├── br-home ── denali ──┤
         │   2001:db8::/64       └── br-remote ── mn (when away)
                                     2001:db8:1::/64

`denali` is the home agent (wlan0 = home link at 2001:db8::, wlan1 = the
foreign link at 2001:db8:1::), `cn` a correspondent on the home link
(2001:db8::c), `raven` the mobile node (home address 2001:db8::beef). The
two links are bridges in a switch namespace; moving the mobile node means
moving its cable from one bridge to the other, as switching ESSID did in
the seed. Namespace names carry the pid and a counter so two runs never
collide, and teardown removes them all.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import time
from ipaddress import IPv6Address

HOME_PREFIX = "2001:db8::/64"
FOREIGN_PREFIX = "2001:db8:1::/64"
HA_HOME = IPv6Address("2001:db8::")
HA_FOREIGN = IPv6Address("2001:db8:1::")
CN_ADDRESS = IPv6Address("2001:db8::c")
MN_HOME = IPv6Address("2001:db8::beef")
MN_COA = IPv6Address("2001:db8:1::100")

_count = itertools.count()


def run(cmd: list[str], ns: str | None = None, check: bool = True, timeout: float = 30,
        **kw) -> subprocess.CompletedProcess:
    if ns:
        cmd = ["ip", "netns", "exec", ns, *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip() or r.returncode}")
    return r


class SeedLab:
    def __init__(self, tag: str | None = None):
        tag = tag or f"{os.getpid() % 100000}x{next(_count)}"
        self.sw = f"sw{tag}"
        self.ha = f"denali{tag}"
        self.cn = f"cn{tag}"
        self.mn = f"raven{tag}"
        # where the home agent saves its binding cache (one per lab, so runs cannot mix)
        self.state_dir = f"/run/denali-lab-{tag}"
        self.namespaces = [self.sw, self.ha, self.cn, self.mn]
        self.where = "home"
        self.daemon: subprocess.Popen | None = None
        self.others: list[subprocess.Popen] = []

    # ---------------------------------------------------------------- build

    def build(self) -> "SeedLab":
        try:
            for ns in self.namespaces:
                run(["ip", "netns", "add", ns])
                run(["ip", "link", "set", "lo", "up"], ns)
                for key in ("all", "default"):
                    run(["sysctl", "-qw", f"net.ipv6.conf.{key}.accept_dad=0"], ns)
            for br in ("br-home", "br-remote"):
                # a cell, as a radio sees it: multicast reaches every station
                # (an 802.11 AP does not snoop MLD; a bridge would drop the home
                # agent's NS to a station that has just come back, until its
                # MLD report)
                run(["ip", "link", "add", br, "type", "bridge", "mcast_snooping", "0"], self.sw)
                run(["ip", "link", "set", br, "up"], self.sw)
            self._cable(self.ha, "wlan0", "br-home", "p-ha0")
            self._cable(self.ha, "wlan1", "br-remote", "p-ha1")
            self._cable(self.cn, "eth0", "br-home", "p-cn")
            self._cable(self.mn, "wlan0", "br-home", "p-mn")
            run(["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"], self.ha)
            run(["ip", "addr", "add", f"{HA_HOME}/64", "dev", "wlan0"], self.ha)
            run(["ip", "addr", "add", f"{HA_FOREIGN}/64", "dev", "wlan1"], self.ha)
            run(["ip", "addr", "add", f"{CN_ADDRESS}/64", "dev", "eth0"], self.cn)
            run(["ip", "-6", "route", "add", "default", "via", str(HA_HOME)], self.cn)
            # the mobile node starts at home with its home address
            run(["ip", "addr", "add", f"{MN_HOME}/64", "dev", "wlan0"], self.mn)
            run(["ip", "-6", "route", "add", "default", "via", str(HA_HOME)], self.mn)
        except Exception:
            self.teardown()
            raise
        return self

    def _cable(self, ns: str, ifname: str, bridge: str, port: str) -> None:
        tmp = f"v{next(_count)}{os.getpid() % 10000}"
        run(["ip", "link", "add", tmp, "type", "veth", "peer", "name", port])
        run(["ip", "link", "set", tmp, "netns", ns])
        run(["ip", "link", "set", port, "netns", self.sw])
        run(["ip", "link", "set", tmp, "name", ifname], ns)
        run(["ip", "link", "set", ifname, "up"], ns)
        run(["ip", "link", "set", port, "master", bridge, "up"], self.sw)

    # ------------------------------------------------------------- movement

    def move_cable(self, to: str) -> None:
        """The seed's `iwconfig wlan0 essid remote`: only raven's port changes
        bridge; its own stack has to notice (the mobile-node mode does)."""
        bridge = "br-remote" if to == "remote" else "br-home"
        run(["ip", "link", "set", "p-mn", "nomaster"], self.sw)
        run(["ip", "link", "set", "p-mn", "master", bridge], self.sw)
        self.where = to

    def spawn(self, ns: str, args: list[str], log_path: str | None = None) -> subprocess.Popen:
        """A process in `ns` (stopped by teardown), its output to `log_path`."""
        out = open(log_path, "w") if log_path else subprocess.DEVNULL
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *args], stdout=out,
                                stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.others.append(proc)
        return proc

    def move_mn(self, to: str, coa: IPv6Address = MN_COA) -> None:
        """Move raven's cable to `to` ("remote" or "home") and readdress it."""
        bridge = "br-remote" if to == "remote" else "br-home"
        run(["ip", "link", "set", "p-mn", "nomaster"], self.sw)
        run(["ip", "link", "set", "p-mn", "master", bridge], self.sw)
        run(["ip", "-6", "route", "flush", "default"], self.mn, check=False)
        # what was learned from the old link's RAs is stale on the new one
        # (a mobile-node stack does this on movement detection, RFC 6275 11.5.1)
        run(["ip", "-6", "addr", "flush", "dev", "wlan0", "dynamic"], self.mn, check=False)
        for prefix in (HOME_PREFIX, FOREIGN_PREFIX):
            run(["ip", "-6", "route", "del", prefix, "dev", "wlan0"], self.mn, check=False)
        if to == "remote":
            run(["ip", "addr", "del", f"{MN_HOME}/64", "dev", "wlan0"], self.mn, check=False)
            run(["ip", "addr", "add", f"{coa}/64", "dev", "wlan0"], self.mn, check=False)
            run(["ip", "-6", "route", "add", "default", "via", str(HA_FOREIGN)], self.mn)
        else:
            run(["ip", "addr", "flush", "dev", "wlan0", "scope", "global"], self.mn)
            run(["ip", "addr", "add", f"{MN_HOME}/64", "dev", "wlan0"], self.mn)
            run(["ip", "-6", "route", "add", "default", "via", str(HA_HOME)], self.mn)
        self.where = to

    # --------------------------------------------------------------- daemon

    def start_daemon(self, config_path: str, *extra: str, debug: int = 7,
                     log_path: str | None = None, vt_port: int = 7777) -> subprocess.Popen:
        cmd = ["ip", "netns", "exec", self.ha, sys.executable, "-m", "ha.daemon.main",
               "-c", config_path, "-d", str(debug), "--vt-port", str(vt_port), *extra]
        out = open(log_path, "w") if log_path else subprocess.DEVNULL
        self.daemon = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                       env={**os.environ, "PYTHONUNBUFFERED": "1",
                                            "DENALI_STATE_DIR": self.state_dir})
        self.vt_port = vt_port
        # the wait is only an upper bound: under TCG on a busy host imports alone take 20 s
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.daemon.poll() is not None:
                raise RuntimeError(f"denalid exited with {self.daemon.returncode}"
                                   + (f": see {log_path}" if log_path else ""))
            if self.console("help", check=False) is not None:
                return self.daemon
            time.sleep(0.1)
        raise RuntimeError("denalid did not open its console in 60 s")

    def console(self, line: str, check: bool = True, ns: str | None = None,
                port: int | None = None) -> str | None:
        """One console command (the HA's unless `ns` says otherwise); the reply text."""
        code = ("import sys; from ha.daemon.console_client import request; "
                "print(chr(10).join(request(sys.argv[1], port=int(sys.argv[2]))))")
        # the daemons' state directory, where the home agent's console socket is: changes
        # (bc add, reload) go there as root; TCP, where the socket is not, is read-only
        r = run([sys.executable, "-c", code, line, str(port or self.vt_port)], ns or self.ha,
                check=False, env={**os.environ, "DENALI_STATE_DIR": self.state_dir})
        if r.returncode != 0:
            if check:
                raise RuntimeError(f"console {line!r}: {r.stderr.strip()}")
            return None
        return r.stdout

    def stop_daemon(self, timeout: float = 15) -> int | None:
        if self.daemon is None:
            return None
        if self.daemon.poll() is None:
            self.daemon.terminate()
            try:
                self.daemon.wait(timeout)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        rc, self.daemon = self.daemon.returncode, None
        return rc

    # ------------------------------------------------------------- teardown

    def teardown(self) -> None:
        for proc in self.others:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.others:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        try:
            self.stop_daemon()
        finally:
            for ns in self.namespaces:
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> "SeedLab":
        return self.build()

    def __exit__(self, *exc) -> None:
        self.teardown()
