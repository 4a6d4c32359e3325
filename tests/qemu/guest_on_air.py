"""The seed on the air: one handover and back over mac80211_hwsim radios.

Run inside the qemu guest (tests/qemu/harness.py) by test_on_air.py:

    python3 guest_on_air.py --repo /run/src --kroot /opt/denali-qemu/linux-image-...

Three hwsim radios. denalid, the home agent, runs in the guest's root
namespace from a denali.conf with two [radio] cells (wlan0 `home`, channel 3,
2001:db8::/64, the home agent at 2001:db8:: as in the seed; wlan1 `remote`,
channel 8, 2001:db8:1::/64), its RA sender on a radvd.conf at RFC 6275
section 7.5's floors (0.03/0.07 s, the Advertisement Interval option, unicast
answers to solicitations). The third radio's phy goes to the namespace
oa-raven, where its interface takes the seed's name wlan0 and denalid runs as
the mobile node raven (the seed's MN mip6d.conf). A correspondent sits in
oa-cn behind a veth to the home agent (2001:db8:c::c, one routed hop from
the home link).

The move is the seed's `iwconfig wlan0 essid remote` done with iw: raven
disconnects from `home` and connects to `remote`, then back. A UDP probe
stream (PROBE_RATE datagrams/s each way, correspondent <-> home address)
runs throughout; each end records the CLOCK_MONOTONIC arrival times, one
clock for every namespace of the guest, so the gaps can be set beside the
move's start.

This records what it sees and decides nothing (test_on_air.py asserts); it
prints one 'DENALI-JSON {...}' line. Each end of the probe stream is
bench/handover_probe.py, run inside its namespace.
"""

from __future__ import annotations

import argparse
import array
import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import traceback

R: dict = {"steps": {}, "errors": [], "logs": {}}
T0 = time.monotonic()

RAVEN = "oa-raven"
CN = "oa-cn"
HOA = "2001:db8::beef"
HA_ADDRESS = "2001:db8::"
CN_ADDRESS = "2001:db8:c::c"
CN_ROUTER = "2001:db8:c::1"
PORT = 9400
PROBE_RATE = 200.0  # datagrams/s each way: 5 ms resolution, light enough for TCG
FREQ = {"home": 2422, "remote": 2447}  # channels 3 and 8
CLONE_NEWNET = 0x40000000

DENALI_CONF = """\
[ha]
interface = wlan0
debug_level = 7
# the handover settings of the README (bench/bench_handover.py's "fast" run)
tunnel_during_dad = yes
# denali.conf is closed by default (acl_default = deny): raven's home address is allowed
    [[acl]]
    2001:db8::beef = allow

[radio]
    [[wlan0]]
    essid = home
    channel = 3
    role = home
    address = 2001:db8::/64
    [[wlan1]]
    essid = remote
    channel = 8
    role = foreign
    address = 2001:db8:1::/64
"""

RADVD_IFACE = """\
interface {ifname}
{{
        AdvSendAdvert on;
        AdvIntervalOpt on;
        MaxRtrAdvInterval 0.07;
        MinRtrAdvInterval 0.03;
        MinDelayBetweenRAs 0.03;
        AdvRASolicitedUnicast on;
        MaxRADelay 0;
        AdvHomeAgentFlag {ha};

        prefix {prefix}
        {{
                AdvOnLink on;
                AdvAutonomous on;
                AdvRouterAddr on;
        }};
}};
"""
RADVD_CONF = (RADVD_IFACE.format(ifname="wlan0", ha="on", prefix="2001:db8::/64")
              + RADVD_IFACE.format(ifname="wlan1", ha="off", prefix="2001:db8:1::/64"))


def mark(name, **kw):
    kw["t"] = round(time.monotonic() - T0, 1)
    R["steps"][name] = kw
    print(f"guest: {name}: {json.dumps(kw)[:400]}", file=sys.stderr, flush=True)


def sh(*cmd, ns=None, timeout=30, check=False):
    if ns:
        cmd = ("ip", "netns", "exec", ns) + cmd
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.stdout or ""
        return -1, out.decode(errors="replace") if isinstance(out, bytes) else out
    out = r.stdout + r.stderr
    if check and r.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: rc {r.returncode}: {out.strip()}")
    return r.returncode, out


def wait_for(pred, timeout, step=0.2):
    end = time.monotonic() + timeout
    while True:
        try:
            v = pred()
        except Exception:
            v = None
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


# ------------------------------------------------------------ consoles in namespaces

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


def console(line, ns=None, port=7777, timeout=10.0):
    """One console command to the denalid of `ns` (root: None); its answer or None.

    The socket is made inside the namespace (setns around socket(), which keeps
    its namespace), so no python has to start per poll: under TCG that costs
    a second or more."""
    from ha.daemon.console_client import request
    if ns is None:
        try:
            return "\n".join(request(line, port=port, timeout=timeout))
        except OSError:
            return None
    here = os.open("/proc/self/ns/net", os.O_RDONLY)
    there = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        _setns(there)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    finally:
        _setns(here)
        os.close(here)
        os.close(there)
    sock.settimeout(timeout)
    try:
        sock.connect(("127.0.0.1", port))
        sock.sendall(line.encode() + b"\n")
        data = b""
        while not data.endswith(b"\n.\n") and data != b".\n":
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        return None
    finally:
        sock.close()
    lines = data.decode(errors="replace").split("\n")
    out = []
    for text in lines:
        if text == ".":
            break
        out.append(text[1:] if text.startswith("..") else text)
    return "\n".join(out)


def console_json(line, ns=None):
    out = console(line, ns)
    try:
        return json.loads(out) if out else None
    except ValueError:
        return None


def ha_bc():
    return console_json("bc json")


def mn_bul():
    return console_json("bul json", RAVEN)


def mn_md():
    return console_json("md json", RAVEN)


# ------------------------------------------------------------------ the probe
# Each end of the stream is bench/handover_probe.py (the namespace bench's
# probe), run with --count so the script can wait until both ends hear the other.

def arrived(path):
    """The count a running probe last wrote (0 before it has)."""
    try:
        with open(path + ".count") as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def read_arrivals(path):
    a = array.array("d")
    try:
        with open(path, "rb") as f:
            a.frombytes(f.read())
    except OSError:
        pass
    return a


def blackout(arrivals, start, end):
    """What one direction of the stream saw of a move that began at `start`,
    up to `end` (the next move): the longest gap between arrivals that ends
    after the move began (a stream that had stopped before counts from
    `start`), when the first datagram after the start came, how many came,
    how many in the phase's last second, and every gap over 50 ms in ms
    from the start, for the report."""
    inside = [t for t in arrivals if start - 1.0 <= t <= end]
    after = [t for t in inside if t >= start]
    before = [t for t in inside if t < start]
    longest, gaps = 0.0, []
    prev = before[-1] if before else start
    for t in after:
        if t - prev > 0.05:
            gaps.append([round((prev - start) * 1000), round((t - start) * 1000)])
        longest = max(longest, t - prev)
        prev = t
    if end - prev > longest:  # never resumed: the gap runs to the end
        longest = end - prev
    return {"gap_ms": round(longest * 1000, 1),
            "first_after_ms": round((after[0] - start) * 1000, 1) if after else None,
            "received_after": len(after),
            "flowing_before": bool(before),
            # flowing again at the end of the phase, once everything settled
            "received_last_s": sum(1 for t in after if t >= end - 1.0),
            "gaps_ms": gaps[:20]}


# the log lines that tell where a move's time went, by daemon
EVENTS = {
    "mn": re.compile(r"md: link (down|up)|md: away|md: at home|md: care-of|tunnel (up|down)"
                     r"|BU to |BA status|NA for"),
    "ha": re.compile(r"AP-STA-(DIS)?CONNECTED|RS from|BU from|DAD started|registered after"
                     r"|deregistered|refused|BA status"),
}
_STAMP = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) (.*)")


def log_events(path, who, start_wall, start, end):
    """`who`'s log lines of EVENTS between the monotonic times start and end,
    as [ms after start, who, text]: the logs stamp wall-clock time of day
    with milliseconds, set beside the monotonic clock at the move's start."""
    day = time.localtime(start_wall)
    start_of_day = start_wall - (day.tm_hour * 3600 + day.tm_min * 60 + day.tm_sec) \
        - (start_wall % 1)
    out = []
    try:
        lines = open(path, errors="replace").read().splitlines()
    except OSError:
        return out
    for line in lines:
        m = _STAMP.match(line)
        if not m or not EVENTS[who].search(m.group(5)):
            continue
        h, mi, sec, ms = map(int, m.groups()[:4])
        wall = start_of_day + h * 3600 + mi * 60 + sec + ms / 1000
        ms_after = (wall - start_wall) * 1000
        if -200 <= ms_after <= (end - start) * 1000:
            text = re.sub(r"^(denali\.\w+|denali): ", "", m.group(5))
            out.append([round(ms_after), who, text[:110]])
    return out


# ------------------------------------------------------------------- the run

def phy_of(ifname):
    with open(f"/sys/class/net/{ifname}/phy80211/name") as f:
        return f.read().strip()


def tunnels():
    """The home agent's ip6tnl devices: name -> remote, local, rx/tx packets."""
    out = {}
    rc, text = sh("ip", "-6", "tunnel", "show")
    for line in text.splitlines():
        m = re.match(r"(\S+): \S+/ipv6 remote (\S+) local (\S+)", line)
        if m and m.group(2) != "::":
            out[m.group(1)] = {"remote": m.group(2), "local": m.group(3)}
    for name, t in out.items():
        rc, js = sh("ip", "-s", "-j", "link", "show", "dev", name)
        try:
            st = json.loads(js)[0]["stats64"]
            t["rx_packets"], t["tx_packets"] = st["rx"]["packets"], st["tx"]["packets"]
        except (ValueError, KeyError, IndexError):
            t["stats"] = js[-200:]
    return out


def ping(ns, dst, src=None, count=3):
    cmd = ["ping", "-6", "-c", str(count), "-i", "0.3", "-w", "30"]
    if src:
        cmd += ["-I", src]
    rc, out = sh(*cmd, dst, ns=ns, timeout=45)
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    return {"rc": rc, "sent": int(m.group(1)) if m else 0,
            "received": int(m.group(2)) if m else 0, "tail": out.strip()[-200:]}


def associate(ssid):
    """iw's `iwconfig wlan0 essid SSID`: leave the cell, join the other."""
    sh("iw", "dev", "wlan0", "disconnect", ns=RAVEN)
    return sh("iw", "dev", "wlan0", "connect", ssid, str(FREQ[ssid]), ns=RAVEN)


def linked(ssid):
    rc, out = sh("iw", "dev", "wlan0", "link", ns=RAVEN)
    return f"SSID: {ssid}" in out


def main(args) -> None:
    repo, run = args.repo, "/run/on-air"
    os.makedirs(run, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=repo, PYTHONDONTWRITEBYTECODE="1",
               PYTHONUNBUFFERED="1")
    procs: dict[str, subprocess.Popen] = {}
    logs = {"ha": f"{run}/denalid-ha.log", "mn": f"{run}/denalid-mn.log",
            "probe-cn": f"{run}/probe-cn.log", "probe-mn": f"{run}/probe-mn.log"}

    def spawn(name, cmd, ns=None):
        if ns:
            cmd = ["ip", "netns", "exec", ns, *cmd]
        procs[name] = subprocess.Popen(cmd, stdout=open(logs[name], "w"),
                                       stderr=subprocess.STDOUT, env=env, cwd=repo)
        return procs[name]

    def stop(name, timeout=20):
        p = procs.get(name)
        if p is None or p.poll() is not None:
            return p.returncode if p else None
        p.send_signal(signal.SIGTERM)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            return p.wait()

    try:
        rc, out = sh("modprobe", "-d", args.kroot, "mac80211_hwsim", "radios=3")
        # the mobile node's tunnel end is a TUN device: devtmpfs shows /dev/net/tun
        # only once the module is in
        rc_tun, out_tun = sh("modprobe", "-d", args.kroot, "tun")
        mark("modprobe", rc=rc, out=out.strip(), tun=rc_tun, tun_out=out_tun.strip(),
             dev_net_tun=os.path.exists("/dev/net/tun"))
        for cmd in (("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"),
                    # hostapd may cycle the cells down and up: their addresses stay
                    ("sysctl", "-qw", "net.ipv6.conf.wlan0.keep_addr_on_down=1"),
                    ("sysctl", "-qw", "net.ipv6.conf.wlan1.keep_addr_on_down=1")):
            sh(*cmd, check=True)

        # the correspondent, one routed hop from the home link
        for cmd in (("ip", "netns", "add", CN),
                    ("ip", "link", "add", "oacn0", "type", "veth", "peer", "name", "oacn1"),
                    ("ip", "link", "set", "oacn1", "netns", CN),
                    ("ip", "addr", "add", f"{CN_ROUTER}/64", "dev", "oacn0", "nodad"),
                    ("ip", "link", "set", "oacn0", "up")):
            sh(*cmd, check=True)
        for cmd in (("ip", "link", "set", "lo", "up"),
                    ("ip", "link", "set", "oacn1", "name", "eth0"),
                    ("ip", "addr", "add", f"{CN_ADDRESS}/64", "dev", "eth0", "nodad"),
                    ("ip", "link", "set", "eth0", "up"),
                    ("ip", "-6", "route", "add", "default", "via", CN_ROUTER)):
            sh(*cmd, ns=CN, check=True)

        # raven's radio in its own namespace, under the seed's name wlan0
        sta_phy = phy_of("wlan2")
        for cmd in (("ip", "netns", "add", RAVEN),
                    ("iw", "phy", sta_phy, "set", "netns", "name", RAVEN)):
            sh(*cmd, check=True)
        for cmd in (("ip", "link", "set", "lo", "up"),
                    ("ip", "link", "set", "wlan2", "name", "wlan0"),
                    ("ip", "link", "set", "wlan0", "up")):
            sh(*cmd, ns=RAVEN, check=True)
        mark("namespaces", phy=sta_phy)

        # denali: the home agent, both cells through hostapd, the RA sender
        with open(f"{run}/denali.conf", "w") as f:
            f.write(DENALI_CONF)
        with open(f"{run}/radvd.conf", "w") as f:
            f.write(RADVD_CONF)
        spawn("ha", [sys.executable, "-m", "ha.daemon.main", "-c", f"{run}/denali.conf",
                     "-C", f"{run}/radvd.conf", "-d", "7", "--vt-port", "7777"])

        def cells_up():
            s = console_json("status json")
            radios = (s or {}).get("radios") or []
            return s if len(radios) == 2 and all(r.get("mode") == "AP" for r in radios) \
                and ha_bc() is not None else None
        status = wait_for(cells_up, 90, 0.5)
        # the seed's `ifconfig wlan0 inet6 add 2001:db8::/64`, should a cell have lost it
        addrs = {}
        for ifname, addr in (("wlan0", "2001:db8::/64"), ("wlan1", "2001:db8:1::/64")):
            rc, text = sh("ip", "-6", "addr", "show", "dev", ifname, "scope", "global")
            addrs[ifname] = addr.split("/")[0] + "/" in text
            if not addrs[ifname]:
                sh("ip", "-6", "addr", "replace", addr, "dev", ifname, "nodad")
        mark("ha_ready", ok=bool(status), radios=(status or {}).get("radios"),
             addresses_kept=addrs, iw=sh("iw", "dev")[1][-1500:])

        # raven joins `home` with the seed's static home address, then its daemon starts
        associate("home")
        home_linked = wait_for(lambda: linked("home"), 40, 0.3)
        sh("ip", "-6", "addr", "add", f"{HOA}/64", "dev", "wlan0", ns=RAVEN)
        mn_conf = open(os.path.join(repo, "tests", "data", "mip6d.mn.conf")).read()
        optimistic = _parser_takes("OptimisticHandoff enabled;", mn_conf)
        if optimistic:
            mn_conf = mn_conf.replace("NodeConfig MN;", "NodeConfig MN;\nOptimisticHandoff "
                                      "enabled;\nDenaliOptimisticDad enabled;")
        with open(f"{run}/mip6d.mn.conf", "w") as f:
            f.write(mn_conf)
        spawn("mn", [sys.executable, "-m", "ha.daemon.main", "-c", f"{run}/mip6d.mn.conf",
                     "-d", "7", "--vt-port", "7777"], ns=RAVEN)
        at_home = wait_for(lambda: (mn_md() or {}).get("location") == "home", 60, 0.5)
        mark("mn_home", linked=bool(home_linked), at_home=bool(at_home),
             optimistic_handoff=optimistic, md=mn_md(), bul=mn_bul(), bc=ha_bc(),
             ping_cn_to_hoa=ping(CN, HOA, count=2))

        # the probe stream, both ways, for the whole run
        probe = [sys.executable, os.path.join(repo, "bench", "handover_probe.py"),
                 "--port", str(PORT), "--rate", str(PROBE_RATE), "--count"]
        spawn("probe-cn", probe + ["--src", CN_ADDRESS, "--peer", HOA,
                                   "--out", f"{run}/cn.arrivals"], ns=CN)
        spawn("probe-mn", probe + ["--src", HOA, "--peer", CN_ADDRESS,
                                   "--out", f"{run}/mn.arrivals"], ns=RAVEN)
        # python starts slowly under TCG: move only once both ends hear the other
        flowing = wait_for(lambda: arrived(f"{run}/cn.arrivals") > 100
                           and arrived(f"{run}/mn.arrivals") > 100, 60, 0.2)
        time.sleep(1)
        mark("probes", flowing=bool(flowing), cn=arrived(f"{run}/cn.arrivals"),
             mn=arrived(f"{run}/mn.arrivals"))
        moves = []

        # iwconfig wlan0 essid remote
        t_away, wall_away = time.monotonic(), time.time()
        rc, out = associate("remote")
        remote_linked = wait_for(lambda: linked("remote"), 40, 0.2)
        t_linked = time.monotonic()

        def mn_registered():
            return [e for e in mn_bul() or [] if e.get("state") == "registered"]

        def ha_registered():
            return [b for b in ha_bc() or [] if b.get("hoa") == HOA
                    and b.get("status") == "registered"]
        bul = wait_for(mn_registered, 60, 0.2)
        t_registered = time.monotonic()
        bc = wait_for(ha_registered, 20, 0.2)
        time.sleep(2)  # the probes settle after the move
        tun_before = tunnels()
        mn_stats_before = console_json("stats json", RAVEN) or {}
        cn_to_mn = ping(CN, HOA)
        mn_to_cn = ping(RAVEN, CN_ADDRESS, src=HOA)
        tun_after = tunnels()
        mn_stats_after = console_json("stats json", RAVEN) or {}
        rc, mn_addrs = sh("ip", "-6", "addr", "show", ns=RAVEN)
        mark("away", linked=bool(remote_linked), connect_rc=rc,
             link_s=round(t_linked - t_away, 2), registered_s=round(t_registered - t_away, 2),
             bul=bul, bc=bc, bul_text=console("bul", RAVEN), bc_text=console("bc"),
             md=mn_md(), cn_to_mn=cn_to_mn, mn_to_cn=mn_to_cn,
             tunnels_before=tun_before, tunnels_after=tun_after,
             mn_stats_before=mn_stats_before, mn_stats_after=mn_stats_after,
             mn_addresses=mn_addrs[-1500:])
        moves.append(("home->remote", t_away, wall_away))

        # back home: deregistration
        t_home, wall_home = time.monotonic(), time.time()
        associate("home")
        home_linked = wait_for(lambda: linked("home"), 40, 0.2)
        t_linked = time.monotonic()
        empty_bul = wait_for(lambda: mn_bul() == [], 60, 0.2)
        t_dereg = time.monotonic()
        empty_bc = wait_for(lambda: ha_bc() == [], 20, 0.2)
        time.sleep(2)
        rc, mn_addrs = sh("ip", "-6", "addr", "show", "dev", "wlan0", ns=RAVEN)
        mark("home_again", linked=bool(home_linked), link_s=round(t_linked - t_home, 2),
             deregistered_s=round(t_dereg - t_home, 2), bul_empty=empty_bul is not None
             and mn_bul() == [], bc_empty=ha_bc() == [], md=mn_md(),
             cn_to_mn=ping(CN, HOA), mn_to_cn=ping(RAVEN, CN_ADDRESS, src=HOA),
             tunnels=tunnels(), mn_wlan0=mn_addrs[-800:])
        moves.append(("remote->home", t_home, wall_home))
        t_end = time.monotonic()

        stop("probe-cn")
        stop("probe-mn")
        cn_arr = read_arrivals(f"{run}/cn.arrivals")  # from raven's home address
        mn_arr = read_arrivals(f"{run}/mn.arrivals")  # from the correspondent
        out = []
        for i, (name, start, wall) in enumerate(moves):
            end = moves[i + 1][1] if i + 1 < len(moves) else t_end
            events = sorted(log_events(logs["mn"], "mn", wall, start, end)
                            + log_events(logs["ha"], "ha", wall, start, end))
            out.append({"move": name, "cn->mn": blackout(mn_arr, start, end),
                        "mn->cn": blackout(cn_arr, start, end), "events": events[:40]})
        for m, phase in zip(out, ("away", "home_again")):
            st = R["steps"][phase]
            m["link_s"] = st["link_s"]
            m["binding_s"] = st.get("registered_s", st.get("deregistered_s"))
            print(f"guest: on-air handover {m['move']}: cn->mn {m['cn->mn']['gap_ms']:.0f} ms, "
                  f"mn->cn {m['mn->cn']['gap_ms']:.0f} ms (associated after {m['link_s']} s, "
                  f"binding list settled after {m['binding_s']} s)", file=sys.stderr, flush=True)
        R["blackout"] = out
        R["probe_rate"] = PROBE_RATE
        R["probe_counts"] = {"cn_received": len(cn_arr), "mn_received": len(mn_arr)}
        mark("blackout", moves=out)
    except Exception:
        R["errors"].append(traceback.format_exc())
    finally:
        for name in ("probe-cn", "probe-mn", "mn", "ha"):
            rc = stop(name)
            if name in ("mn", "ha"):
                R.setdefault("exit", {})[name] = rc
        for name, path in logs.items():
            try:
                # pyroute2's own debug lines (the radios' polls) would drown denalid's
                lines = [ln for ln in open(path, errors="replace")
                         if "pyroute2" not in ln]
                R["logs"][name] = "".join(lines)[-8000:]
            except OSError:
                pass
        sh("ip", "netns", "del", RAVEN)
        sh("ip", "netns", "del", CN)


def _parser_takes(line, text):
    """Whether today's mip6d.conf reader accepts `line` (another change adds it)."""
    from ha.config.mip6d_conf import parse_mip6d
    try:
        parse_mip6d(text.replace("NodeConfig MN;", "NodeConfig MN;\n" + line), "probe.conf")
        return True
    except Exception:
        return False


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True)
    ap.add_argument("--kroot", required=True)
    a = ap.parse_args()
    sys.path.insert(0, a.repo)
    os.chdir(a.repo)
    try:
        main(a)
    except BaseException:
        R["errors"].append(traceback.format_exc())
    R["seconds"] = round(time.monotonic() - T0, 1)
    print("DENALI-JSON " + json.dumps(R), flush=True)
