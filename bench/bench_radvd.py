"""Our RA sender beside the real radvd, on the same configuration, in namespaces.

    python3 bench/bench_radvd.py [--seconds 10] [--rounds 3]

Two namespaces joined by a veth pair.  Each sender runs alone in `rtr` with
Mobile IPv6's fastest schedule (MinRtrAdvInterval 0.03, MaxRtrAdvInterval 0.07,
MinDelayBetweenRAs 0.03, H flag, HA information and interval options, an R-flag
prefix).  A listener in `mn` (a raw ICMPv6 socket, its own process) counts the
RAs, sends a Router Solicitation every 0.6 s and notes when the next RA comes.
The senders take turns, `--rounds` windows each (ours, ours with MaxRADelay 0,
radvd, then again), so that load from elsewhere on the machine falls on all of
them alike; each figure is over all of a sender's windows.  The RA content never
changes here, so ours sends the bytes it encoded once (its cached path).

Printed, side by side, with the ratio ours/radvd (our default configuration):
  CPU seconds per 1,000 RAs   run time of the sender's process tree over the listening
                              window (/proc/PID/task/*/schedstat, nanoseconds; utime+stime
                              ticks where the kernel lacks it), divided by RAs received
  RS-to-RA latency            median and p95 from an RS to the first RA after it
                              (RFC 4861 §6.2.6 lets a solicited RA wait up to 0.5 s;
                              here the next periodic RA is never more than 70 ms away),
                              and to the unicast answer (AdvRASolicitedUnicast, on by
                              default): radvd sends it at once, ours after the random
                              delay (folded into the next multicast RA when that comes
                              first) unless MaxRADelay is 0
  interval accuracy           mean absolute distance of each multicast gap from
                              [Min, Max] (0 when inside), the mean gap, and how many
                              gaps fell outside
  RSS                         the sender's resident memory at the end
Figures only: nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import textwrap
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from nslib import Topology, have_netns, wait_for  # noqa: E402

MIN, MAX, MIN_DELAY = 0.03, 0.07, 0.03
CONFIG = f"""\
interface wlan0
{{
    AdvSendAdvert on;
    MinRtrAdvInterval {MIN};
    MaxRtrAdvInterval {MAX};
    MinDelayBetweenRAs {MIN_DELAY};
    AdvHomeAgentFlag on;
    AdvHomeAgentInfo on;
    HomeAgentPreference 10;
    HomeAgentLifetime 600;
    AdvIntervalOpt on;
    prefix 2001:db8::/64
    {{
        AdvOnLink on;
        AdvAutonomous on;
        AdvRouterAddr on;
    }};
}};
"""

LISTENER = textwrap.dedent("""
    import json, select, socket, struct, sys, time
    seconds, rs_every = float(sys.argv[1]), float(sys.argv[2])
    idx = socket.if_nametoindex("wlan0")
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    words = [0xFFFFFFFF] * 8
    words[134 >> 5] &= ~(1 << (134 & 31))          # pass only RAs
    s.setsockopt(socket.IPPROTO_ICMPV6, 1, struct.pack("=8I", *words))
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
    s.setsockopt(socket.SOL_SOCKET, 25, b"wlan0")
    rs = bytes([133, 0, 0, 0, 0, 0, 0, 0])
    print("ready", flush=True)
    sys.stdin.readline()
    ras, sent = [], []
    start = time.monotonic()
    end = start + seconds
    next_rs = start + rs_every
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if now >= next_rs:
            s.sendto(rs, ("ff02::2", 0, 0, idx))
            sent.append(time.monotonic())
            next_rs += rs_every
        r, _, _ = select.select([s], [], [], max(0.0, min(end, next_rs) - now))
        if r:
            data, anc, _, addr = s.recvmsg(2048, socket.CMSG_SPACE(20))
            t = time.monotonic()
            dst = "?"
            for level, kind, value in anc:
                if kind == socket.IPV6_PKTINFO:
                    dst = socket.inet_ntop(socket.AF_INET6, value[:16])
            lifetime = struct.unpack("!H", data[6:8])[0] if len(data) >= 8 else -1
            ras.append((t, dst, lifetime))
    print(json.dumps({"ras": ras, "rs": sent}), flush=True)
""")


def _task_cpu(pid: int, fields: list[str], tick: int) -> float:
    """CPU seconds of one process: every thread's schedstat run time (nanoseconds),
    or utime+stime in clock ticks where schedstat is missing (10 ms steps)."""
    total, found = 0, False
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        tasks = []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
                found = True
        except (OSError, ValueError, IndexError):
            pass
    if found:
        return total / 1e9
    return (int(fields[11]) + int(fields[12])) / tick


def cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by pid and its descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()
        stats[int(entry)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        if p in stats:
            total += _task_cpu(p, stats[p], tick)
        todo.extend(children.get(p, []))
    return total


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def percentile(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(q * (len(values) - 1))))
    return values[k]


def measure(name, cmd, rtr, mn, seconds, env=None):
    """One window of one sender: what the listener heard, and the sender's CPU."""
    proc = rtr.popen(*cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                     cwd=ROOT)
    try:
        time.sleep(1.5)                      # start-up and the initial RAs
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited: {proc.stderr.read()[-2000:]}")
        listener = mn.popen(sys.executable, "-c", LISTENER, str(seconds), "0.6",
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert listener.stdout.readline().strip() == "ready"
        cpu0 = cpu_seconds(proc.pid)
        listener.stdin.write("go\n")
        listener.stdin.flush()
        result = json.loads(listener.stdout.readline())
        cpu1 = cpu_seconds(proc.pid)
        listener.wait(timeout=10)
        rss = rss_kib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {"ras": [tuple(r) for r in result["ras"]], "rs": result["rs"],
            "cpu": cpu1 - cpu0, "rss": rss}


def summarize(windows):
    """The figures over all windows of one sender."""
    count, cpu, latency, unicast_latency, errors, gaps, rs_sent = 0, 0.0, [], [], [], [], 0
    for w in windows:
        ras = w["ras"]
        count += len(ras)
        cpu += w["cpu"]
        rs_sent += len(w["rs"])
        periodic = [t for t, dst, life in ras if dst.startswith("ff02") and life != 0]
        g = [b - a for a, b in zip(periodic, periodic[1:])]
        gaps += g
        errors += [max(0.0, MIN - x, x - MAX) for x in g]
        for t in w["rs"]:
            after = [r for r in ras if r[0] >= t]
            if after:
                latency.append(after[0][0] - t)
            uni = [r for r in after if not r[1].startswith("ff02") and r[0] - t <= 1.0]
            if uni:
                unicast_latency.append(uni[0][0] - t)
    return {
        "ras": count,
        "cpu_per_1000": cpu / max(1, count) * 1000,
        "lat_median_ms": statistics.median(latency) * 1000 if latency else float("nan"),
        "lat_p95_ms": percentile(latency, 0.95) * 1000,
        "uni_answers": f"{len(unicast_latency)}/{rs_sent}",
        "uni_median_ms": (statistics.median(unicast_latency) * 1000
                          if unicast_latency else float("nan")),
        "interval_err_ms": statistics.mean(errors) * 1000 if errors else float("nan"),
        "mean_gap_ms": statistics.mean(gaps) * 1000 if gaps else float("nan"),
        "out_of_bounds": f"{sum(e > 0 for e in errors)}/{len(gaps)}",
        "rss_mib": windows[-1]["rss"] / 1024,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="listening window per turn")
    ap.add_argument("--rounds", type=int, default=3, help="turns per sender")
    args = ap.parse_args()
    why = have_netns()
    if why:
        print(f"skipped: {why}")
        return 0
    radvd = shutil.which("radvd") or "/usr/sbin/radvd"
    if not os.path.exists(radvd):
        print("skipped: needs the real radvd for the reference")
        return 0
    topo = Topology()
    try:
        rtr, mn = topo.host("rtr"), topo.host("mn")
        topo.link(rtr, "wlan0", mn, "wlan0")
        rtr.sysctl("net.ipv6.conf.all.forwarding", "1")
        mn.sysctl("net.ipv6.conf.wlan0.accept_ra", "0")     # just listening
        rtr.run("ip", "addr", "add", "2001:db8::/64", "dev", "wlan0", "nodad")
        wait_for(lambda: "fe80::" in rtr.run("ip", "-6", "addr", "show", "dev",
                                             "wlan0").stdout, what="link-local")
        conf = f"/tmp/bench_radvd_{os.getpid()}.conf"
        fast = f"/tmp/bench_radvd_{os.getpid()}_fast.conf"
        pidfile = f"/tmp/bench_radvd_{os.getpid()}.pid"
        with open(conf, "w") as f:
            f.write(CONFIG)
        with open(fast, "w") as f:          # denali's extension: radvd would refuse it
            f.write(CONFIG.replace("    AdvSendAdvert on;\n",
                                   "    AdvSendAdvert on;\n    MaxRADelay 0;\n"))
        env = dict(os.environ, PYTHONPATH=ROOT)
        senders = {
            "ours": ([sys.executable, "-m", "radvd", "-C", conf, "-n", "-d", "0"], env),
            "fast": ([sys.executable, "-m", "radvd", "-C", fast, "-n", "-d", "0"], env),
            "radvd": ([radvd, "-C", conf, "-n", "-m", "stderr", "-p", pidfile], None),
        }
        windows = {name: [] for name in senders}
        for _ in range(args.rounds):
            for name, (cmd, e) in senders.items():
                windows[name].append(measure(name, cmd, rtr, mn, args.seconds, e))
        os.unlink(conf)
        os.unlink(fast)
    finally:
        topo.teardown()
    ours, fast, theirs = (summarize(windows[n]) for n in ("ours", "fast", "radvd"))

    print(f"RA sender benchmark: Min {MIN} s, Max {MAX} s, MinDelayBetweenRAs {MIN_DELAY} s, "
          f"Mobile IPv6 on, {args.rounds} turns of {args.seconds:g} s each")
    rows = [
        ("RAs received", "ras", "{:.0f}"),
        ("CPU s per 1,000 RAs", "cpu_per_1000", "{:.3f}"),
        ("RS->first RA median (ms)", "lat_median_ms", "{:.1f}"),
        ("RS->first RA p95 (ms)", "lat_p95_ms", "{:.1f}"),
        ("unicast answers to RS", "uni_answers", "{}"),
        ("RS->unicast RA median (ms)", "uni_median_ms", "{:.1f}"),
        ("interval mean abs error (ms)", "interval_err_ms", "{:.2f}"),
        ("mean multicast gap (ms)", "mean_gap_ms", "{:.1f}"),
        ("gaps outside [Min,Max]", "out_of_bounds", "{}"),
        ("RSS at end (MiB)", "rss_mib", "{:.1f}"),
    ]
    print(f"{'':30}{'denali radvd/':>15}{'MaxRADelay 0':>14}{'radvd 2.19':>12}"
          f"{'ours/radvd':>12}")
    for label, key, fmt in rows:
        a, f_, b = ours[key], fast[key], theirs[key]
        ratio = (f"{a / b:.2f}" if isinstance(a, float) and isinstance(b, float) and b
                 else "")
        print(f"{label:30}{fmt.format(a):>15}{fmt.format(f_):>14}{fmt.format(b):>12}"
              f"{ratio:>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
