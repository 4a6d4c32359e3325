"""The handover blackout, measured: denalid at both ends in namespaces.

    python3 bench/bench_handover.py [--moves 5] [--only NAME ...] [--keep-logs DIR]

The seed's network (ha.lab.topology.SeedLab: denali with its home and remote
links, a correspondent on the home link, raven), the kernel's DAD on at
raven as on a real laptop, and a UDP probe stream of 1,000 datagrams/s each
way (correspondent -> home address, home address -> correspondent; see
bench/handover_probe.py). raven's link goes down, its port changes bridge,
and the link comes up again, as a Wi-Fi reassociation does. For each move
(home -> remote, remote -> home) and direction the bench prints the longest
gap in received probes, the median over the moves, and where the time went:
from the link coming up to raven noticing it, to the movement being
detected, to the care-of address being usable, to the BU going out, to the
home agent's BA, and to the first probe through at each end (from the
daemons' logs, whose time stamps carry milliseconds).

Runs, in the same process and on the same machine:

  plain      the reference floor: no Mobile IPv6 at all. raven holds a static
             address on each link (no DAD), the bench swaps its default
             route at the move and the correspondent sends to both addresses:
             what the link move itself costs.
  seed       the seed's radvd.conf (RAs every 1-10 s) and mip6d.conf files,
             every setting at what RFC 6275 requires.
  fast-rfc   RAs every 0.03-0.07 s (RFC 6275 section 7.5's minimums), every
             other setting at what the RFCs require.
  fast       the same RAs with the settings that trade a little safety for
             speed, each described in the README: the RA sender answers an
             RS at once and by unicast (MaxRADelay 0, AdvRASolicitedUnicast),
             raven uses optimistic DAD (RFC 4429) for its care-of address and
             the tunnel as soon as its BU is out (OptimisticHandoff), and the
             home agent tunnels for a new binding while its DAD runs
             (DenaliTunnelDuringDad), the BA still waiting for the DAD.

Needs root (namespaces). Figures only, nothing asserted.
"""

from __future__ import annotations

import argparse
import array
import datetime
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from ha.lab.topology import (CN_ADDRESS, FOREIGN_PREFIX, HA_FOREIGN, HA_HOME,  # noqa: E402
                             HOME_PREFIX, MN_COA, MN_HOME, SeedLab, run)

PORT = 9000
RATE = 1000.0

HA_CONF = """\
NodeConfig HA;
DebugLevel 7;
Interface "wlan0";
UseMnHaIPsec disabled;
{extra}"""

MN_CONF = """\
NodeConfig MN;
DebugLevel 7;
UseMnHaIPsec disabled;
DoRouteOptimizationMN disabled;
DoRouteOptimizationCN disabled;
{extra}
Interface "wlan0";
MnHomeLink "wlan0" {{
        HomeAddress 2001:db8::beef/64;
        HomeAgentAddress 2001:db8::;
}}
"""

RADVD = """\
interface {ifname}
{{
        AdvSendAdvert on;
        AdvIntervalOpt on;
        MaxRtrAdvInterval {max};
        MinRtrAdvInterval {min};
        MinDelayBetweenRAs {min};
        AdvHomeAgentFlag {ha};
{extra}
        prefix {prefix}
        {{
                AdvOnLink on;
                AdvAutonomous on;
                AdvRouterAddr on;
        }};
}};
"""

RUNS = {
    # name: (RA min, RA max, radvd extra, HA extra, MN extra, optimistic DAD at raven)
    "seed": (1, 10, "", "", "", False),
    "fast-rfc": (0.03, 0.07, "", "", "", False),
    "fast": (0.03, 0.07, "        AdvRASolicitedUnicast on;\n        MaxRADelay 0;\n",
             "DenaliTunnelDuringDad enabled;\n",
             "OptimisticHandoff enabled;\nDenaliOptimisticDad enabled;", True),
}

# (label, log file, pattern) in the order they should happen after the link comes up
AWAY_EVENTS = [
    ("link seen", "raven", r"md: link up"),
    ("moved", "raven", r"md: away from home"),
    ("CoA", "raven", r"md: care-of address"),
    ("BU sent", "raven", r"BU to \S+ from 2001:db8:1:"),
    ("BU at HA", "denali", r"2001:db8::beef 2001:db8:1:"),
    ("BA sent", "denali", r"BA status 0 "),
    ("BA at MN", "raven", r"BA status 0 "),
]
HOME_EVENTS = [
    ("link seen", "raven", r"md: link up"),
    ("moved", "raven", r"md: at home"),
    ("BU sent", "raven", r"BU to \S+ from 2001:db8::beef .* lifetime 0"),
    ("BU at HA", "denali", r"2001:db8::beef \S+: dereg"),
    ("BA sent", "denali", r"BA status 0 "),
    ("BA at MN", "raven", r"BA status 0 "),
]

_STAMP = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) ")


def say(msg: str) -> None:
    print(msg, flush=True)


def wait_for(predicate, timeout: float, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = predicate()
        if v:
            return v
        time.sleep(step)
    return None


class Clock:
    """Wall-clock seconds of the day (the daemons' log stamps) to monotonic time."""

    def __init__(self):
        wall, self.mono = time.time(), time.monotonic()
        day = datetime.datetime.fromtimestamp(wall)
        self.wall_of_day = (day.hour * 3600 + day.minute * 60 + day.second
                            + day.microsecond / 1e6)

    def from_log(self, line: str) -> float | None:
        m = _STAMP.match(line)
        if not m:
            return None
        h, mi, s, ms = map(int, m.groups())
        return self.mono + (h * 3600 + mi * 60 + s + ms / 1000) - self.wall_of_day


def log_events(path: str, clock: Clock) -> list[tuple[float, str]]:
    out = []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                t = clock.from_log(line)
                if t is not None:
                    out.append((t, line.rstrip()))
    except FileNotFoundError:
        pass
    return out


def gaps(arrivals: array.array, start: float, end: float) -> tuple[float, float | None]:
    """The longest gap between arrivals that ends in [start, end], and the
    arrival that ended it: the first packet through after the move (None:
    nothing came after start)."""
    inside = [t for t in arrivals if start - 0.5 <= t <= end]
    if not inside or inside[-1] < start:
        return end - start, None
    longest, ended, prev = 0.0, None, None
    for t in inside:
        if prev is not None and t >= start and t - prev > longest:
            longest, ended = t - prev, t
        prev = t
    return longest, ended


class Bench:
    def __init__(self, moves: int, keep: str | None):
        self.moves = moves
        self.keep = keep
        self.results: dict[str, dict] = {}

    # ----------------------------------------------------------- plumbing

    def _move(self, lab: SeedLab, to: str, pause: float, route: bool = False) -> tuple[float, float]:
        bridge = "br-remote" if to == "remote" else "br-home"
        t_down = time.monotonic()
        run(["ip", "link", "set", "p-mn", "down"], lab.sw)
        run(["ip", "link", "set", "p-mn", "nomaster"], lab.sw)
        run(["ip", "link", "set", "p-mn", "master", bridge], lab.sw)
        if pause:
            time.sleep(pause)
        if route:  # the plain path: the static configuration for the new link
            gw = HA_FOREIGN if to == "remote" else HA_HOME
            run(["ip", "-6", "route", "replace", "default", "via", str(gw), "dev", "wlan0",
                 "onlink"], lab.mn)
        t_up = time.monotonic()
        run(["ip", "link", "set", "p-mn", "up"], lab.sw)
        lab.where = to
        return t_down, t_up

    def _probes(self, lab: SeedLab, workdir: str, plain: bool):
        py = sys.executable
        probe = os.path.join(HERE, "handover_probe.py")
        cn_out, mn_out = os.path.join(workdir, "cn.arr"), os.path.join(workdir, "mn.arr")
        cn_peers = [str(MN_HOME)] + ([str(MN_COA)] if plain else [])
        mn_srcs = [str(MN_HOME)] + ([str(MN_COA)] if plain else [])
        cmd_cn = [py, probe, "--port", str(PORT), "--rate", str(RATE), "--out", cn_out,
                  "--src", str(CN_ADDRESS)] + sum((["--peer", p] for p in cn_peers), [])
        cmd_mn = [py, probe, "--port", str(PORT), "--rate", str(RATE), "--out", mn_out,
                  "--peer", str(CN_ADDRESS)] + sum((["--src", s] for s in mn_srcs), [])
        procs = [lab.spawn(lab.cn, cmd_cn, os.path.join(workdir, "probe-cn.log")),
                 lab.spawn(lab.mn, cmd_mn, os.path.join(workdir, "probe-mn.log"))]
        return procs, cn_out, mn_out

    def _stop_probes(self, procs, cn_out, mn_out):
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(10)

        def load(path):
            a = array.array("d")
            with open(path, "rb") as f:
                a.frombytes(f.read())
            return a
        # cn.arr holds what the correspondent received: the mobile node -> correspondent direction
        return {"mn->cn": load(cn_out), "cn->mn": load(mn_out)}

    # -------------------------------------------------------------- runs

    def run_plain(self) -> None:
        workdir = tempfile.mkdtemp(prefix="denali-ho-plain-")
        lab = SeedLab(tag=f"ho{os.getpid() % 10000}p")
        lab.build()
        moves = []
        try:
            # both addresses static as /128s (no on-link prefix to mislead the
            # node on the other link), no DAD; the default route is swapped at the move
            run(["ip", "addr", "del", f"{MN_HOME}/64", "dev", "wlan0"], lab.mn)
            for addr in (MN_HOME, MN_COA):
                run(["ip", "addr", "add", f"{addr}/128", "dev", "wlan0", "nodad"], lab.mn)
            run(["ip", "-6", "route", "replace", "default", "via", str(HA_HOME), "dev", "wlan0",
                 "onlink"], lab.mn)
            procs, cn_out, mn_out = self._probes(lab, workdir, plain=True)
            time.sleep(1.0)
            for i in range(self.moves * 2):
                to = "remote" if i % 2 == 0 else "home"
                t_down, t_up = self._move(lab, to, 0.0, route=True)
                moves.append((to, t_down, t_up))
                time.sleep(1.0)
            arr = self._stop_probes(procs, cn_out, mn_out)
        finally:
            lab.teardown()
        self._summarise("plain", moves, arr, {}, None)
        if not self.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    def run_mip(self, name: str) -> None:
        ra_min, ra_max, ra_extra, ha_extra, mn_extra, optimistic = RUNS[name]
        workdir = os.path.join(self.keep, name) if self.keep else \
            tempfile.mkdtemp(prefix=f"denali-ho-{name}-")
        os.makedirs(workdir, exist_ok=True)
        files = {
            "ha.conf": HA_CONF.format(extra=ha_extra),
            "mn.conf": MN_CONF.format(extra=mn_extra),
            "radvd.conf": RADVD.format(ifname="wlan0", min=ra_min, max=ra_max, ha="on",
                                       extra=ra_extra, prefix=HOME_PREFIX)
            + RADVD.format(ifname="wlan1", min=ra_min, max=ra_max, ha="off",
                           extra=ra_extra, prefix=FOREIGN_PREFIX),
        }
        for fname, text in files.items():
            with open(os.path.join(workdir, fname), "w") as f:
                f.write(text)
        lab = SeedLab(tag=f"ho{os.getpid() % 10000}{name[:1]}{len(name)}")
        lab.build()
        moves, settled = [], []
        arr = None
        try:
            # the kernel's DAD on at raven, as on a laptop (the lab turns it off)
            for key in ("all", "default", "wlan0"):
                run(["sysctl", "-qw", f"net.ipv6.conf.{key}.accept_dad=1"], lab.mn)
            lab.start_daemon(os.path.join(workdir, "ha.conf"), "-C",
                             os.path.join(workdir, "radvd.conf"),
                             log_path=os.path.join(workdir, "denali.log"))
            lab.spawn(lab.mn, [sys.executable, "-m", "ha.daemon.main", "-c",
                               os.path.join(workdir, "mn.conf"), "-d", "7", "--vt-port", "7777"],
                      os.path.join(workdir, "raven.log"))

            def raven(line):
                out = lab.console(line, check=False, ns=lab.mn, port=7777)
                try:
                    return json.loads(out) if out else None
                except ValueError:
                    return None

            if not wait_for(lambda: (raven("md json") or {}).get("location") == "home", 30, 0.2):
                raise RuntimeError(f"raven never saw home: see {workdir}")
            procs, cn_out, mn_out = self._probes(lab, workdir, plain=False)
            time.sleep(1.0)
            for i in range(self.moves * 2):
                to = "remote" if i % 2 == 0 else "home"
                t_down, t_up = self._move(lab, to, 0.0)
                moves.append((to, t_down, t_up))
                if to == "remote":
                    ok = wait_for(lambda: any(e.get("state") == "registered" and e.get("coa")
                                              for e in raven("bul json") or []), 60, 0.05)
                else:
                    def home():
                        bul = raven("bul json")
                        return bul is not None and all(e.get("state") == "idle" for e in bul) \
                            and (raven("md json") or {}).get("location") == "home"
                    ok = wait_for(home, 60, 0.05)
                if not ok:
                    say(f"  {name}: move {i + 1} to {to} did not settle in 60 s")
                settled.append(time.monotonic())
                time.sleep(1.0)
            arr = self._stop_probes(procs, cn_out, mn_out)
        finally:
            lab.teardown()
        clock = Clock()
        logs = {"raven": log_events(os.path.join(workdir, "raven.log"), clock),
                "denali": log_events(os.path.join(workdir, "denali.log"), clock)}
        self._summarise(name, moves, arr, logs, workdir, settled)
        if not self.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    # ----------------------------------------------------------- figures

    def _summarise(self, name, moves, arr, logs, workdir, settled=None) -> None:
        res = {}
        for i, (to, t_down, t_up) in enumerate(moves):
            end = moves[i + 1][1] if i + 1 < len(moves) else t_up + 60
            if settled:  # the registration is done: traffic resumes within a moment of it
                end = min(end, settled[i] + 0.5)
            else:
                end = min(end, t_up + 1.0)
            key = "home->remote" if to == "remote" else "remote->home"
            entry = res.setdefault(key, {"cn->mn": [], "mn->cn": [], "events": {}})
            firsts = {}
            for direction in ("cn->mn", "mn->cn"):
                gap, first = gaps(arr[direction], t_down, end)
                entry[direction].append(gap)
                firsts[direction] = first
            if logs:
                events = AWAY_EVENTS if to == "remote" else HOME_EVENTS
                for label, which, pattern in events:
                    rx = re.compile(pattern)
                    t = next((t for t, line in logs[which]
                              if t >= t_down - 0.002 and t <= end and rx.search(line)), None)
                    entry["events"].setdefault(label, []).append(
                        None if t is None else t - t_up)
            for direction, first in firsts.items():
                entry["events"].setdefault(f"first {direction}", []).append(
                    None if first is None else first - t_up)
        self.results[name] = res

    def report(self) -> None:
        say("")
        say(f"handover blackout: {RATE:.0f} probes/s each way, {self.moves} moves each way, "
            "DAD on at raven (the longest gap in received probes)")
        floor = self.results.get("plain", {})
        say(f"{'run':<10} {'move':<13} {'direction':<8} {'median':>9} {'vs floor':>9}   moves (ms)"
            "   (floor: the plain run's cn->mn median for that move)")
        for name, res in self.results.items():
            for move, entry in res.items():
                for direction in ("cn->mn", "mn->cn"):
                    vals = entry[direction]
                    med = statistics.median(vals)
                    # the floor is the plain path's correspondent -> node gap (the cable
                    # move and one neighbour resolution); its other direction depends on
                    # whether the static node's first NS for its gateway beats the carrier
                    ref = floor.get(move, {}).get("cn->mn")
                    ratio = f"{med / statistics.median(ref):8.1f}x" \
                        if ref and name != "plain" and statistics.median(ref) > 0 else f"{'':>9}"
                    say(f"{name:<10} {move:<13} {direction:<8} {med * 1000:7.0f} ms {ratio}   "
                        + " ".join(f"{v * 1000:.0f}" for v in vals))
        say("")
        say("where the time goes: median ms after the link came up (- : not seen)")
        for name, res in self.results.items():
            if name == "plain":
                continue
            for move, entry in res.items():
                parts = []
                for label, vals in entry["events"].items():
                    seen = [v for v in vals if v is not None]
                    parts.append(f"{label} {statistics.median(seen) * 1000:.0f}"
                                 if seen else f"{label} -")
                say(f"{name:<10} {move:<13} " + ", ".join(parts))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--moves", type=int, default=5, help="moves each way per run (default 5)")
    p.add_argument("--only", nargs="*", choices=["plain", *RUNS], help="runs to make")
    p.add_argument("--keep-logs", metavar="DIR")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_handover: needs root (network namespaces)", file=sys.stderr)
        return 2
    b = Bench(args.moves, args.keep_logs)
    for name in args.only or ["plain", *RUNS]:
        say(f"run {name} ...")
        if name == "plain":
            b.run_plain()
        else:
            b.run_mip(name)
    b.report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
