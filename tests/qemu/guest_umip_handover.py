"""UMIP's mip6d as the mobile node, denalid as its home agent: the handover, timed.

Run inside the qemu guest (tests/qemu/harness.py: Debian's kernel, which has
CONFIG_IPV6_MIP6 and ip6_tunnel, the host's files over 9p) by
bench/bench_handover_umip.py and tests/qemu/test_umip_handover.py (which
adds "checks": true to its variant, see checkpoint()):

    python3 guest_umip_handover.py --repo /run/src --mip6d /run/job/mip6d \
        --kroot /opt/denali-qemu/linux-image-... [--moves 3] [--rate 1000] \
        [--variants '[{"name": "tdd", "extra": "DenaliTunnelDuringDad enabled;",
                       "mn_extra": "OptimisticHandoff enabled;", "mn_dad": true,
                       "ra": [0.03, 0.07, true]}]']

Everything runs in namespaces of this one guest, so every timestamp is one
CLOCK_MONOTONIC:
  - the seed's lab (ha/lab/topology.py) with its own tag: denalid as home
    agent (the seed's HA mip6d.conf plus a variant's extra lines, RAs every
    0.03-0.07 s with the Advertisement Interval option and unicast answers to
    RSs), a correspondent on the home link;
  - UMIP's mip6d as the mobile node in the lab's MN namespace (the seed's MN
    file with the brace its listing lost, plus a variant's lines), kernel DAD
    on for its interface (a variant may turn it off) with optimistic DAD
    (RFC 4429) allowed and used;
  - a probe in the correspondent and in the mobile node: 1,000 numbered,
    timestamped UDP datagrams a second each way (correspondent -> home
    address, home address -> correspondent).
A move is a Wi-Fi reassociation: the MN's switch port goes down, changes
bridge and comes up (the MN sees carrier loss and carrier back). The script
records arrivals, the link events, denalid's log (-d 7) and UMIP's (each line
stamped when read) and prints one 'DENALI-JSON {...}' line; it decides
nothing. `probe` is the probe's own entry point (run in a namespace).
"""

from __future__ import annotations

import argparse
import array
import ctypes
import errno
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback

PORT = 9411
IPV6_FREEBIND = 78  # linux/in6.h
TAG = "uho"  # this bench's namespaces: swuho, denaliuho, cnuho, ravenuho

RADVD = """\
interface wlan0 {
    AdvSendAdvert on;
    AdvIntervalOpt @OPT@;
    AdvRASolicitedUnicast on;
    MaxRtrAdvInterval @MAX@;
    MinRtrAdvInterval @MIN@;
    MinDelayBetweenRAs @MIN@;
    AdvHomeAgentFlag on;
    prefix 2001:db8::/64 { AdvOnLink on; AdvAutonomous on; AdvRouterAddr on; };
};
interface wlan1 {
    AdvSendAdvert on;
    AdvIntervalOpt @OPT@;
    AdvRASolicitedUnicast on;
    MaxRtrAdvInterval @MAX@;
    MinRtrAdvInterval @MIN@;
    MinDelayBetweenRAs @MIN@;
    AdvHomeAgentFlag off;
    prefix 2001:db8:1::/64 { AdvOnLink on; AdvAutonomous on; AdvRouterAddr on; };
};
"""


def radvd_text(ra_min, ra_max, interval_opt):
    return (RADVD.replace("@MIN@", str(ra_min)).replace("@MAX@", str(ra_max))
            .replace("@OPT@", "on" if interval_opt else "off"))


# ------------------------------------------------------------------ the probe

def probe_main(argv) -> int:
    """Both ends of the stream in one process: for each --end NS,SRC,PEER,OUT,STATUS a
    socket made in namespace NS (setns), bound to SRC, sending to PEER at --rate.

    One process and one loop for both ends halves what the emulated CPU spends
    on the probe itself. Each socket is bound with IPV6_FREEBIND so it outlives
    its address leaving the interface, as a home address does while the node
    moves. The time of each end's latest arrival is kept in its STATUS file (8
    bytes, rewritten every 50 ms) so the driver sees traffic resume; on SIGTERM
    (arrival, sequence) pairs go to OUT, the send count and errors to OUT.json.
    """
    p = argparse.ArgumentParser(prog="probe")
    p.add_argument("--end", action="append", required=True)
    p.add_argument("--rate", type=float, default=1000.0)
    a = p.parse_args(argv)
    ends = []
    for spec in a.end:
        ns, src, peer, out, status = spec.split(",")

        def opened(src=src):
            s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.bind((src, PORT))
            s.setblocking(False)
            return s
        ends.append({"sock": in_netns(ns, opened), "dest": (peer, PORT), "out": out,
                     "status": os.open(status, os.O_RDWR | os.O_CREAT, 0o644),
                     "times": array.array("d"), "seqs": array.array("l"), "errors": {}})
    by_fd = {e["sock"].fileno(): e for e in ends}
    socks = [e["sock"] for e in ends]
    sent = 0
    stop = False

    def on_term(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    period = 1.0 / a.rate
    due = time.monotonic()
    next_status = due
    pack, unpack = struct.Struct("!Id").pack, struct.Struct("!Id").unpack_from
    while not stop:
        now = time.monotonic()
        if now >= due:
            data = pack(sent, now)
            for e in ends:
                try:
                    e["sock"].sendto(data, e["dest"])
                except OSError as x:
                    name = errno.errorcode.get(x.errno, str(x.errno))
                    e["errors"][name] = e["errors"].get(name, 0) + 1
            sent += 1
            due += period
            if due < now - 0.02:  # a stall: no burst to catch up, the gap shows it
                due = now + period
            continue
        if now >= next_status:
            for e in ends:
                os.pwrite(e["status"], struct.pack("d", e["times"][-1] if e["times"] else 0.0), 0)
            next_status = now + 0.05
        try:
            ready, _, _ = select.select(socks, [], [], due - now)
        except InterruptedError:
            continue
        for sock in ready:
            e = by_fd[sock.fileno()]
            while True:
                try:
                    data = sock.recv(64)
                except (BlockingIOError, InterruptedError):
                    break
                e["times"].append(time.monotonic())
                e["seqs"].append(unpack(data)[0] if len(data) >= 12 else -1)
    for e in ends:
        with open(e["out"] + ".tmp", "wb") as f:
            f.write(struct.pack("qq", len(e["times"]), sent))
            e["times"].tofile(f)
            e["seqs"].tofile(f)
        with open(e["out"] + ".json", "w") as f:
            json.dump({"sent": sent, "errors": e["errors"]}, f)
        os.replace(e["out"] + ".tmp", e["out"])
    return 0


def read_probe(path):
    with open(path, "rb") as f:
        n, sent = struct.unpack("qq", f.read(16))
        times, seqs = array.array("d"), array.array("l")
        times.fromfile(f, n)
        seqs.fromfile(f, n)
    with open(path + ".json") as f:
        errors = json.load(f)["errors"]
    return list(times), list(seqs), sent, errors


def last_arrival(path):
    try:
        with open(path, "rb") as f:
            return struct.unpack("d", f.read(8))[0]
    except (OSError, struct.error):
        return 0.0


# ------------------------------------------------------------ the MN's port

CLONE_NEWNET = 0x40000000
RTM_NEWLINK, NLM_F_REQUEST, NLM_F_ACK, NLMSG_ERROR = 16, 1, 4, 2
IFF_UP, IFLA_MASTER = 1, 10


def in_netns(ns, fn):
    """fn() with this thread in namespace ns (setns(2)), then back."""
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET):
            raise OSError(ctypes.get_errno(), f"setns {ns}")
        try:
            return fn()
        finally:
            libc.setns(own, CLONE_NEWNET)
    finally:
        os.close(target)
        os.close(own)


class Port:
    """The MN's switch port, moved by rtnetlink from this process: a reassociation
    is three messages, not three `ip` processes (each ~0.5 s under TCG)."""

    def __init__(self, ns, port, bridges):
        def opened():
            s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)  # NETLINK_ROUTE
            s.bind((0, 0))
            return s, socket.if_nametoindex(port), {b: socket.if_nametoindex(b) for b in bridges}
        self.sock, self.index, self.bridges = in_netns(ns, opened)
        self.seq = 0

    def _link(self, flags, change, attrs=b""):
        self.seq += 1
        body = struct.pack("BxHiII", 0, 0, self.index, flags, change) + attrs
        self.sock.send(struct.pack("IHHII", 16 + len(body), RTM_NEWLINK,
                                   NLM_F_REQUEST | NLM_F_ACK, self.seq, 0) + body)
        data = self.sock.recv(4096)
        _len, kind, _f, _seq, _pid = struct.unpack_from("IHHII", data)
        if kind == NLMSG_ERROR:
            (err,) = struct.unpack_from("i", data, 16)
            if err:
                raise OSError(-err, f"RTM_NEWLINK {self.index}")

    def down(self):
        self._link(0, IFF_UP)

    def up(self):
        self._link(IFF_UP, IFF_UP)

    def master(self, bridge):
        self._link(0, 0, struct.pack("HHI", 8, IFLA_MASTER, self.bridges[bridge]))


IFA_F_NAMES = ((0x01, "secondary"), (0x02, "nodad"), (0x04, "optimistic"),
               (0x08, "dadfailed"), (0x10, "homeaddress"), (0x20, "deprecated"),
               (0x40, "tentative"), (0x80, "permanent"))
RTM_GETADDR, NLM_F_DUMP, NLMSG_DONE, IFA_ADDRESS, IFA_FLAGS = 22, 0x300, 3, 1, 8


class Addresses:
    """The MN's IPv6 addresses and their flags (tentative, optimistic...), by an
    RTM_GETADDR dump from this process: no `ip` child at a moment that counts."""

    def __init__(self, ns, ifname):
        def opened():
            s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
            s.bind((0, 0))
            return s, socket.if_nametoindex(ifname)
        self.sock, self.index = in_netns(ns, opened)

    def snapshot(self):
        body = struct.pack("BBBBI", socket.AF_INET6, 0, 0, 0, 0)
        self.sock.send(struct.pack("IHHII", 16 + len(body), RTM_GETADDR,
                                   NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body)
        out = []
        while True:
            data = self.sock.recv(65536)
            off = 0
            while off < len(data):
                ln, kind = struct.unpack_from("IH", data, off)
                if kind == NLMSG_DONE:
                    return out
                if kind == RTM_NEWLINK + 4:  # RTM_NEWADDR
                    fam, plen, flags, scope, index = struct.unpack_from("BBBBI", data, off + 16)
                    a, addr = off + 24, None
                    while a < off + ln:
                        alen, atype = struct.unpack_from("HH", data, a)
                        if atype == IFA_ADDRESS:
                            addr = socket.inet_ntop(socket.AF_INET6, data[a + 4:a + 20])
                        elif atype == IFA_FLAGS:
                            (flags,) = struct.unpack_from("I", data, a + 4)
                        a += (alen + 3) & ~3
                    if index == self.index and addr and scope == 0:
                        out.append(addr + " " + ",".join(n for b, n in IFA_F_NAMES if flags & b))
                off += (ln + 3) & ~3


# ------------------------------------------------------------------- the run

class Lines:
    """A child's output, each line stamped with CLOCK_MONOTONIC when read."""

    def __init__(self, proc):
        self.proc, self.lines = proc, []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.append((time.monotonic(), raw.decode(errors="replace").rstrip("\n")))

    def since(self, t):
        return [(ts, line) for ts, line in self.lines if ts >= t]


def wall_to_mono(hms: str, ref_wall: float, ref_mono: float) -> float:
    """denalid's HH:MM:SS.mmm (local time) as CLOCK_MONOTONIC, by the offset at ref."""
    h, m, s = hms.split(":")
    sod = int(h) * 3600 + int(m) * 60 + float(s)
    lt = time.localtime(ref_wall)
    ref_sod = lt.tm_hour * 3600 + lt.tm_min * 60 + lt.tm_sec + (ref_wall % 1)
    d = sod - ref_sod
    if d < -43200:
        d += 86400
    elif d > 43200:
        d -= 86400
    return ref_mono + d


LOG_RE = re.compile(r"^(\d\d:\d\d:\d\d\.\d{3}) \S+: (BU from|BA status) (.*)$")


def denalid_events(path, ref_wall, ref_mono):
    """(mono, 'BU'|'BA', text) from denalid's -d 7 log."""
    out = []
    try:
        text = open(path, errors="replace").read()
    except OSError:
        return out
    for line in text.splitlines():
        m = LOG_RE.match(line)
        if m:
            kind = "BU" if m.group(2) == "BU from" else "BA"
            out.append((wall_to_mono(m.group(1), ref_wall, ref_mono), kind,
                        m.group(2) + " " + m.group(3)))
    return out


def longest_gap(times, lo, hi):
    """The longest interval without an arrival in [lo, hi]: (length, start, end)."""
    pts = [lo] + [t for t in times if lo < t < hi] + [hi]
    best = (0.0, lo, lo)
    for a, b in zip(pts, pts[1:]):
        if b - a > best[0]:
            best = (b - a, a, b)
    return best


def analyse(V, arrivals, events, umip_lines, args):
    """Per move and direction: the longest gap, lost datagrams, the baseline gap
    before the move; the BU and BA denalid logged, relative to link-up."""
    import bisect
    if V["moves"]:
        t_first = V["moves"][0]["t_down"] - 3
        n = int(V["moves"][-1]["t_end"] - t_first) + 1
        V["rate_per_s"] = {d: [bisect.bisect_left(a[0], t_first + k + 1)
                               - bisect.bisect_left(a[0], t_first + k) for k in range(n)]
                           for d, a in arrivals.items()}
    for k, mv in enumerate(V["moves"]):
        up, down, end = mv["t_up"], mv["t_down"], mv["t_end"]
        mv["link_down_ms"] = round((up - down) * 1000, 1)
        for d, (times, seqs, _sent, _err) in arrivals.items():
            g, a, b = longest_gap(times, down - 0.3, end)
            base = longest_gap(times, down - args.settle + 0.3, down)[0]
            i, j = bisect.bisect_left(times, down - 0.3), bisect.bisect_left(times, end)
            got = seqs[i:j]
            lost = (max(got) - min(got) + 1 - len(set(got))) if got else None
            bins = [bisect.bisect_left(times, down - 0.5 + 0.1 * (q + 1))
                    - bisect.bisect_left(times, down - 0.5 + 0.1 * q)
                    for q in range(int((min(end, up + 6) - down + 0.5) * 10))]
            mv[d] = {"per_100ms_from_down_minus_500": bins,
                     "gap_ms": round(g * 1000, 1), "gap_from_up_ms": round((a - up) * 1000, 1),
                     "resume_from_up_ms": round((b - up) * 1000, 1), "lost": lost,
                     "baseline_gap_ms": round(base * 1000, 1),
                     "resumed": b < end - 1e-6}
        window = [(t, kind, text) for t, kind, text in events
                  if down - 0.05 <= t < (V["moves"][k + 1]["t_down"] if k + 1 < len(V["moves"])
                                         else end + 5)]
        bus = [e for e in window if e[1] == "BU"]
        bas = [e for e in window if e[1] == "BA"]
        mv["bu_count"] = len(bus)
        if bus:
            mv["bu_from_up_ms"] = round((bus[0][0] - up) * 1000)
            mv["last_bu_from_up_ms"] = round((bus[-1][0] - up) * 1000)
            mv["bu_text"] = bus[0][2]
        if bas:
            # the first accepting BA after the first BU; retransmissions and their answers after it
            ok = [e for e in bas if e[2].startswith("BA status 0 ") and (not bus or e[0] >= bus[0][0])]
            if ok:
                mv["ba_from_up_ms"] = round((ok[0][0] - up) * 1000)
            mv["last_ba_from_up_ms"] = round((bas[-1][0] - up) * 1000)
            mv["ba_text"] = [f"{round((e[0] - up) * 1000)} ms {e[2]}" for e in bas]
        def first(pattern, after=up):
            for t, line in umip_lines:
                if t >= after and t <= end and pattern in line:
                    return round((t - up) * 1000)
            return None
        mv["umip_moved_ms"] = first("mn_move: in ")
        mv["umip_bu_ms"] = first("sending MH type 5")
        mv["umip_ba_ms"] = first("Got BA from")
        mv["umip_dad_ms"] = first("DAD succeeded")
        mv["umip_router_expiries"] = sum(1 for t, line in umip_lines
                                         if down <= t <= end and "md_expire_router" in line)
        lines = [(round((t - up) * 1000), line[:200]) for t, line in umip_lines
                 if down - 0.05 <= t <= end and "md_update_router_stats" not in line]
        mv["umip_log"] = lines[:150]
        for key in ("t_down", "t_up_cmd", "t_up", "t_end"):
            mv[key] = round(mv[key], 4)


# ------------------------------------------ the CI test's checkpoints
# With "checks" in a variant (tests/qemu/test_umip_handover.py), the run stops
# after the registration and after each move until both ends agree on the state
# they should be in, then records both ends' views and pings through it.

UMIP_VT = 7777  # UMIP's console, on [::1] in the MN's namespace


def umip_console(ns, line, timeout=3.0):
    """UMIP's reply to one console command (e.g. `bul`), None when it does not answer."""
    def opened():
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(("::1", UMIP_VT))
        return s
    try:
        s = in_netns(ns, opened)
    except OSError:
        return None
    chunks = []
    with s:
        try:
            s.sendall(line.encode() + b"\n")
            s.shutdown(socket.SHUT_WR)  # UMIP answers, sees the end and closes
            while data := s.recv(4096):
                chunks.append(data)
        except OSError:
            pass  # a timeout: what came is the answer
    text = b"".join(chunks).decode(errors="replace")
    return text if "mip6d>" in text else None


def ha_tunnels(ns):
    """{name: {remote, rx, tx}} of the ip6tnl devices in namespace ns (iproute2's view)."""
    from ha.lab.topology import run
    r = run(["ip", "-d", "-s", "-j", "link", "show", "type", "ip6tnl"], ns, check=False)
    out = {}
    try:
        links = json.loads(r.stdout or "[]")
    except ValueError:
        return out
    for link in links:
        data = (link.get("linkinfo") or {}).get("info_data") or {}
        st = link.get("stats64") or link.get("stats") or {}
        out[link["ifname"]] = {"remote": data.get("remote"),
                               "rx": (st.get("rx") or {}).get("packets", 0),
                               "tx": (st.get("tx") or {}).get("packets", 0)}
    return out


def ping(ns, dst, src=None):
    from ha.lab.topology import run
    cmd = ["ping", "-6", "-n", "-c", "3", "-i", "0.3", "-w", "30"]
    cmd += ["-I", src] if src else []
    r = run(cmd + [dst], ns, check=False, timeout=60)
    m = re.search(r"(\d+) received", r.stdout)
    return {"rc": r.returncode, "received": int(m.group(1)) if m else 0,
            "out": (r.stdout + r.stderr)[-600:]}


def checkpoint(V, name, lab, umip, dlog, since, expect):
    """Wait (90 s at most) until denalid's cache and UMIP's binding update list
    agree on *expect* ("registered": one entry each, "home": none), then
    record both views, denalid's stats, pings both ways with the tunnels'
    counters around them, and what each end logged since *since*."""
    import umip_peer
    from ha.lab.topology import CN_ADDRESS, MN_HOME
    hoa = str(MN_HOME)

    def ours():
        try:
            bc = json.loads(lab.console("bc json", check=False) or "null")
        except ValueError:
            return None
        return None if bc is None else [b for b in bc if b.get("hoa") == hoa]

    def bul():
        out = umip_console(lab.mn, "bul")
        return None if out is None else (umip_peer.bul_entries(out), out)

    def settled():
        b, u = ours(), bul()
        if b is None or u is None:
            return None
        if expect == "registered":
            ok = [x for x in b if x.get("status") == "registered"] and len(u[0]) == 1
        else:
            ok = not b and u[0] == []
        return (b, u) if ok else None

    end, got = time.monotonic() + 90, None
    while got is None and time.monotonic() < end:
        got = settled()
        if got is None:
            time.sleep(0.5)
    b, u = got or (ours(), bul())
    C = {"expect": expect, "settled": got is not None, "bc": b,
         "bul": [{k: e[k] for k in ("hoa", "coa", "cn")} for e in (u or ([], ""))[0]],
         "bul_text": (u or ([], ""))[1][-1500:]}
    C["tunnels_before"] = ha_tunnels(lab.ha)
    C["cn_to_mn"] = ping(lab.cn, hoa)
    C["mn_to_cn"] = ping(lab.mn, str(CN_ADDRESS), src=hoa)
    C["tunnels_after"] = ha_tunnels(lab.ha)
    try:
        C["stats"] = json.loads(lab.console("stats json", check=False) or "null")
    except ValueError:
        C["stats"] = None
    C["ha_events"] = [text for t, _kind, text in denalid_events(dlog, time.time(), time.monotonic())
                      if t >= since - 0.05]
    C["umip_log"] = [line[:200] for t, line in umip.lines if t >= since and re.search(
        r"Got BA|sending MH type 5|NON_MIP|unable|bule_|mn_move|rror", line)][:80]
    V.setdefault("checks", {})[name] = C


def cpu_ticks():
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(f), f[3] + f[4]  # total, idle + iowait


def run_variant(spec, args, R):
    from ha.lab.topology import CN_ADDRESS, MN_HOME, SeedLab, run

    name, extra, ra = spec["name"], spec.get("extra", ""), spec.get("ra", [0.03, 0.07, True])
    V = {"name": name, "extra": extra, "ra": ra, "mn_extra": spec.get("mn_extra", ""),
         "mn_dad": spec.get("mn_dad", True),
         "moves": [], "notes": []}
    R["variants"].append(V)
    tmp = f"/tmp/uho-{name}"
    os.makedirs(tmp, exist_ok=True)
    lab = SeedLab(tag=TAG)
    procs = []
    umip = None
    t0 = time.monotonic()
    try:
        lab.build()
        mn = lab.mn
        # the lab's MN starts with a static home address and DAD off: UMIP is the
        # mobile node here, a laptop's kernel DADs every address it forms
        run(["ip", "addr", "flush", "dev", "wlan0", "scope", "global"], mn)
        run(["ip", "-6", "route", "flush", "default"], mn, check=False)
        mn_dad = 1 if spec.get("mn_dad", True) else 0
        for key, val in (("forwarding", 0), ("accept_ra", 1), ("accept_dad", mn_dad),
                         ("optimistic_dad", args.optimistic), ("use_optimistic", args.optimistic),
                         ("dad_transmits", 1)):
            for dev in ("all", "default", "wlan0"):
                run(["sysctl", "-qw", f"net.ipv6.conf.{dev}.{key}={val}"], mn)
        # start away (the interop test's order), so the first move is the return home
        run(["ip", "link", "set", "p-mn", "nomaster"], lab.sw)
        run(["ip", "link", "set", "p-mn", "master", "br-remote"], lab.sw)

        ha_conf = os.path.join(tmp, "mip6d.ha.conf")
        with open(os.path.join(args.repo, "tests", "data", "mip6d.ha.conf")) as f:
            text = f.read()
        with open(ha_conf, "w") as f:
            f.write(text + ("\n" + extra + "\n" if extra else ""))
        radvd_conf = os.path.join(tmp, "radvd.conf")
        with open(radvd_conf, "w") as f:
            f.write(radvd_text(*ra))
        dlog = os.path.join(tmp, "denalid.log")
        try:
            lab.start_daemon(ha_conf, "-C", radvd_conf, log_path=dlog)
        except RuntimeError as e:
            # SeedLab waits 20 s for the console; a cold start under TCG can take longer
            if lab.daemon is None or lab.daemon.poll() is not None or "20 s" not in str(e):
                raise
            end = time.monotonic() + 60
            while lab.console("help", check=False) is None:
                if time.monotonic() > end or lab.daemon.poll() is not None:
                    raise
                time.sleep(0.5)
        V["denalid_started"] = round(time.monotonic() - t0, 1)

        mn_conf = os.path.join(tmp, "mip6d.mn.conf")
        with open(os.path.join(args.repo, "tests", "data", "mip6d.mn.conf")) as f:
            mn_text = f.read() + "}\n" + (spec.get("mn_extra", "") + "\n")
        with open(mn_conf, "w") as f:
            f.write(mn_text)
        umip_proc = subprocess.Popen(["ip", "netns", "exec", mn, args.mip6d, "-c", mn_conf,
                                      "-d", "7"], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        procs.append(umip_proc)
        umip = Lines(umip_proc)

        def registered():
            out = lab.console("bc json", check=False)
            try:
                return any(b["hoa"] == str(MN_HOME) and b["status"] == "registered"
                           for b in json.loads(out or "[]"))
            except ValueError:
                return False

        end = time.monotonic() + 90
        while not registered():
            if time.monotonic() > end or umip_proc.poll() is not None:
                raise RuntimeError("UMIP did not register with denalid in 90 s")
            time.sleep(0.5)
        V["registered"] = round(time.monotonic() - t0, 1)
        checks = bool(spec.get("checks"))
        if checks:
            checkpoint(V, "away", lab, umip, dlog, t0, "registered")

        # the probes: the correspondent to the home address and back
        files, ends = {}, []
        for who, ns, src, peer in (("cn", lab.cn, str(CN_ADDRESS), str(MN_HOME)),
                                   ("mn", mn, str(MN_HOME), str(CN_ADDRESS))):
            out, status = os.path.join(tmp, f"probe-{who}.bin"), os.path.join(tmp, f"st-{who}")
            with open(status, "wb") as f:
                f.write(struct.pack("d", 0.0))
            files[who] = (out, status)
            ends += ["--end", ",".join((ns, src, peer, out, status))]
        procs.append(subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "probe", "--rate", str(args.rate), *ends],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        probes = {"both": procs[-1]}
        # at the mobile node arrive correspondent -> MN datagrams: direction cn->mn
        direction_file = {"cn->mn": files["mn"][1], "mn->cn": files["cn"][1]}

        def flowing(after):
            return all(last_arrival(p) > after for p in direction_file.values())

        end = time.monotonic() + 30
        while not flowing(time.monotonic() - 0.2):
            if time.monotonic() > end:
                V["notes"].append("the probe streams did not both flow before the moves")
                break
            time.sleep(0.2)
        time.sleep(args.settle)

        port = Port(lab.sw, "p-mn", ("br-home", "br-remote"))
        addrs = Addresses(mn, "wlan0")
        cpu0 = cpu_ticks()
        where = "remote"
        for i in range(2 * args.moves):
            to = "home" if where == "remote" else "remote"
            bridge = "br-home" if to == "home" else "br-remote"
            mv = {"move": f"{where}->{to}"}
            mv["t_down"] = time.monotonic()
            port.down()
            port.master(bridge)
            mv["t_up_cmd"] = time.monotonic()
            port.up()
            mv["t_up"] = time.monotonic()
            where = to
            end = mv["t_up"] + args.move_timeout
            mv["mn_addresses"] = {}
            marks = [0.2, 0.6, 1.2, 2.0]
            while time.monotonic() < end and (marks or not flowing(mv["t_up"])):
                if marks and time.monotonic() >= mv["t_up"] + marks[0]:
                    mv["mn_addresses"][f"+{marks.pop(0)} s"] = addrs.snapshot()
                time.sleep(0.05)
            mv["resumed"] = flowing(mv["t_up"])
            time.sleep(args.settle)
            mv["t_end"] = time.monotonic()
            V["moves"].append(mv)
            if checks:
                checkpoint(V, f"after {mv['move']}", lab, umip, dlog, mv["t_up"],
                           "home" if to == "home" else "registered")

        cpu1 = cpu_ticks()
        V["cpu_busy"] = round(1 - (cpu1[1] - cpu0[1]) / max(1, cpu1[0] - cpu0[0]), 3)
        for p in probes.values():
            p.send_signal(signal.SIGTERM)
        for who, p in probes.items():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                V["notes"].append(f"probe {who} did not stop")
        # the mobile node's probe receives the cn->mn stream, the correspondent's mn->cn
        arrivals, V["probes"] = {}, {}
        read = {}
        for who in ("cn", "mn"):
            try:
                read[who] = read_probe(files[who][0])
            except OSError as e:
                V["notes"].append(f"no record from the {who} probe: {e}")
        for direction, rx, tx in (("cn->mn", "mn", "cn"), ("mn->cn", "cn", "mn")):
            if rx in read:
                arrivals[direction] = read[rx]
                V["probes"][direction] = {"received": len(read[rx][0]),
                                          "sent": read[tx][2] if tx in read else None,
                                          "send_errors": read[tx][3] if tx in read else None}
        events = denalid_events(dlog, time.time(), time.monotonic())
        analyse(V, arrivals, events, umip.lines if umip else [], args)
        V["denalid_log_tail"] = open(dlog, errors="replace").read()[-2500:]
        V["bc"] = lab.console("bc", check=False)
        try:
            V["ha_stats"] = json.loads(lab.console("stats json", check=False) or "null")
        except ValueError:
            V["ha_stats"] = None
    except Exception:
        R["errors"].append(f"{name}: " + traceback.format_exc())
        try:
            V["denalid_log_tail"] = open(os.path.join(tmp, "denalid.log")).read()[-4000:]
        except OSError:
            pass
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        if umip is not None:
            umip.thread.join(2)
            V["umip_log_head"] = [line[:200] for _, line in umip.lines[:60]]
            first = V["moves"][0]["t_down"] if V["moves"] else float("inf")
            V["umip_notable"] = [
                (round(t - t0, 3), line[:200]) for t, line in umip.lines
                if re.search(r"unable|NON_MIP|rror|ail|Got BA|blackhole|block|DAD|BE |"
                             r"sending MH|mn_move: in", line)][:200]
            V["umip_before_moves"] = [
                (round(t - t0, 3), line[:160]) for t, line in umip.lines
                if t < first and "md_update_router_stats" not in line][60:260]
        lab.teardown()
    V["seconds"] = round(time.monotonic() - t0, 1)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "probe":
        return probe_main(sys.argv[2:])
    p = argparse.ArgumentParser()
    p.add_argument("--repo", required=True)
    p.add_argument("--mip6d", required=True)
    p.add_argument("--kroot", required=True)
    p.add_argument("--moves", type=int, default=3, help="moves each way")
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--settle", type=float, default=1.5)
    p.add_argument("--move-timeout", type=float, default=25.0)
    p.add_argument("--optimistic", type=int, default=1, choices=(0, 1))
    p.add_argument("--variants", default='[{"name": "base"}]',
                   help='JSON list of {"name", "extra": HA mip6d.conf lines, '
                        '"ra": [min, max, AdvIntervalOpt]}')
    a = p.parse_args()
    sys.path.insert(0, a.repo)
    os.chdir(a.repo)
    R = {"variants": [], "errors": [], "mono0": time.monotonic()}
    try:
        os.chmod(a.mip6d, 0o755)
        for mod in ("ip6_tunnel", "xfrm_user", "af_key"):
            r = subprocess.run(["modprobe", "-d", a.kroot, mod], capture_output=True, text=True)
            if r.returncode:
                R["errors"].append(f"modprobe {mod}: {r.stderr.strip()}")
        R["clocksource"] = open(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource").read().strip()
        for spec in json.loads(a.variants):
            run_variant(spec, a, R)
    except Exception:
        R["errors"].append(traceback.format_exc())
    R["seconds"] = round(time.monotonic() - R["mono0"], 1)
    print("DENALI-JSON " + json.dumps(R), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
