"""Our RA sender on the real kernel, checked by parsers and a kernel we did not write.

Two namespaces joined by a veth pair: `rtr` runs `python -m radvd -C conf -n -d 1`
on wlan0 (2001:db8::/64, as in the seed); `mn` has accept_ra=1, forwarding=0 and
runs radvdump and a scapy sniffer that also sends Router Solicitations.

One scenario runs once (module fixture, a few seconds); the tests then read
what it recorded.  Timing checks are protocol bounds with generous slack.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from ipaddress import IPv6Address, IPv6Network

import pytest

from nslib import Topology, have_netns, kill_all, ra_pair, start_listener, wait_for

pytestmark = pytest.mark.skipif(have_netns() is not None, reason=str(have_netns()))

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PREFIX = IPv6Network("2001:db8::/64")
HA_ADDRESS = IPv6Address("2001:db8::")
MAX_INTERVAL, MIN_INTERVAL, MIN_DELAY = 1.0, 0.3, 0.1

# the seed's brace-less grammar, made faster and with the HA information option
CONFIG = f"""\
interface wlan0
        AdvSendAdvert on;
        AdvIntervalOpt on;

        MaxRtrAdvInterval {MAX_INTERVAL};
        MinRtrAdvInterval {MIN_INTERVAL};
        MinDelayBetweenRAs {MIN_DELAY};
        AdvHomeAgentFlag on;
        AdvHomeAgentInfo on;
        HomeAgentPreference 10;
        HomeAgentLifetime 600;
        AdvRASolicitedUnicast on;

        prefix 2001:db8::/64
        AdvOnLink on;
        AdvAutonomous on;
        AdvRouterAddr on;
"""

# Runs inside the mn namespace: sniff everything ICMPv6 on wlan0, send three RSs
# (from the link-local address, from ::, and one with hop limit 64 that must be
# dropped) once RAs flow, stop after a final RA (router lifetime 0) or a timeout.
SNIFFER = textwrap.dedent("""
    import sys, time
    from scapy.all import AsyncSniffer, sendp, wrpcap, get_if_hwaddr, conf
    from scapy.layers.l2 import Ether
    from scapy.layers.inet6 import IPv6, ICMPv6ND_RA, ICMPv6ND_RS, ICMPv6NDOptSrcLLAddr
    pcap, lladdr, deadline = sys.argv[1], sys.argv[2], time.time() + float(sys.argv[3])
    mac = get_if_hwaddr("wlan0")
    count = {"ra": 0}
    def seen(p):
        if ICMPv6ND_RA in p:
            count["ra"] += 1
    def final(p):
        return ICMPv6ND_RA in p and p[ICMPv6ND_RA].routerlifetime == 0
    sn = AsyncSniffer(iface="wlan0", filter="icmp6", store=True, prn=seen,
                      stop_filter=final)
    sn.start()
    time.sleep(0.3)
    print("sniffing", flush=True)
    def rs(src, hlim, slla):
        p = Ether(src=mac, dst="33:33:00:00:00:02") / IPv6(src=src, dst="ff02::2", hlim=hlim)
        p = p / ICMPv6ND_RS()
        if slla:
            p = p / ICMPv6NDOptSrcLLAddr(lladdr=mac)
        sendp(p, iface="wlan0", verbose=False)
    while time.time() < deadline and count["ra"] < 2:
        time.sleep(0.05)
    rs(lladdr, 64, True)           # malformed: hop limit 64
    rs("::", 255, True)            # malformed: SLLA from ::
    time.sleep(0.2)
    print("rs-ll", time.time(), flush=True)
    rs(lladdr, 255, True)          # answered by unicast (AdvRASolicitedUnicast)
    time.sleep(1.0)
    print("rs-unspec", time.time(), flush=True)
    rs("::", 255, False)           # answered by multicast
    while time.time() < deadline and sn.running:
        time.sleep(0.05)
    if sn.running:
        sn.stop()
    else:
        sn.join()
    wrpcap(pcap, sn.results)
    print("done", len(sn.results), flush=True)
""")


def link_local(ns, ifname="wlan0"):
    out = ns.run("ip", "-6", "-o", "addr", "show", "dev", ifname, "scope", "link").stdout
    for word in out.split():
        if word.startswith("fe80::"):
            return IPv6Address(word.split("/")[0])
    return None


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    pytest.importorskip("scapy")
    if shutil.which("radvdump") is None:
        pytest.skip("needs radvdump (package radvd)")
    tmp = tmp_path_factory.mktemp("radvd")
    conf = tmp / "radvd.conf"
    conf.write_text(CONFIG)
    topo = Topology()
    procs = []
    try:
        rtr, mn = ra_pair(topo, solicit=False)
        rtr_ll = wait_for(lambda: link_local(rtr), what="router link-local")
        mn_ll = wait_for(lambda: link_local(mn), what="mn link-local")

        dump_out = open(tmp / "radvdump.txt", "w")
        dump = mn.popen("radvdump", "-e", stdout=dump_out, stderr=subprocess.STDOUT)
        procs.append(dump)
        pcap = tmp / "mn.pcap"
        sniffer = start_listener(mn, procs, sys.executable, "-c", SNIFFER, str(pcap),
                                 str(mn_ll), "25")
        env = dict(os.environ, PYTHONPATH=ROOT)
        router = rtr.popen(sys.executable, "-m", "radvd", "-C", str(conf), "-n", "-d", "1",
                           stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        procs.append(router)

        # the receiving kernel: SLAAC address and default route via our link-local
        def slaac():
            out = mn.run("ip", "-6", "-o", "addr", "show", "dev", "wlan0").stdout
            return [IPv6Address(w.split("/")[0]) for w in out.split()
                    if "/" in w and w.startswith("2001:db8:")]
        addresses = wait_for(slaac, timeout=10, what="SLAAC address on the MN")
        route = wait_for(lambda: mn.run("ip", "-6", "route", "show", "default").stdout.strip(),
                         timeout=10, what="default route on the MN")
        marks = {}
        for _ in range(2):
            line = sniffer.stdout.readline().split()
            if line:
                marks[line[0]] = float(line[1])
        time.sleep(1.0)                 # let the multicast answer to the :: RS go out
        router.send_signal(signal.SIGTERM)
        router_rc = router.wait(timeout=15)
        router_log = router.stderr.read()
        route_after = wait_for(
            lambda: (mn.run("ip", "-6", "route", "show", "default").stdout.strip() or "gone"),
            timeout=5, what="default route removal")
        sniff_out, sniff_err = sniffer.communicate(timeout=30)
        time.sleep(0.2)
        dump.terminate()
        dump.wait(timeout=5)
        dump_out.close()
        import scapy.layers.inet6  # noqa: F401  (dissectors for rdpcap)
        from scapy.utils import rdpcap
        yield dict(rtr_ll=rtr_ll, mn_ll=mn_ll, addresses=addresses, route=route,
                   route_after=route_after, router_rc=router_rc, router_log=router_log,
                   packets=rdpcap(str(pcap)) if pcap.exists() else [],
                   sniff=sniff_out + sniff_err, marks=marks,
                   radvdump=(tmp / "radvdump.txt").read_text())
    finally:
        kill_all(procs)
        topo.teardown()


def summary(scenario):
    """What the sniffer saw, for assertion messages."""
    from scapy.layers.inet6 import IPv6
    lines = [f"{float(p.time):.3f} {p[IPv6].src} > {p[IPv6].dst} hlim {p[IPv6].hlim} "
             f"{p.lastlayer().name}" for p in scenario["packets"] if IPv6 in p]
    return "\n".join(lines + [scenario["sniff"], str(scenario["marks"])])


def ras(scenario):
    from scapy.layers.inet6 import IPv6, ICMPv6ND_RA
    return [p for p in scenario["packets"] if ICMPv6ND_RA in p and IPv6 in p
            and IPv6Address(p[IPv6].src) == scenario["rtr_ll"]]


def test_receiving_kernel_forms_slaac_address_and_default_route(scenario):
    assert any(a in PREFIX for a in scenario["addresses"]), scenario["addresses"]
    assert f"via {scenario['rtr_ll']} dev wlan0" in scenario["route"]
    assert "proto ra" in scenario["route"]


def test_radvdump_decodes_mobile_ipv6_options(scenario):
    text = scenario["radvdump"]
    assert f"based on Router Advertisement from {scenario['rtr_ll']}" in text
    for line in ("AdvHomeAgentFlag on;", "AdvIntervalOpt on;", "AdvHomeAgentInfo on;",
                 "HomeAgentPreference 10;", "HomeAgentLifetime 600;", "AdvRouterAddr on;",
                 "prefix 2001:db8::/64", "AdvDefaultLifetime 3;"):
        assert line in text, line


def test_scapy_parses_the_ra_hop_limit_source_destination(scenario):
    from scapy.layers.inet6 import (IPv6, ICMPv6NDOptAdvInterval, ICMPv6NDOptHAInfo,
                                    ICMPv6NDOptPrefixInfo, ICMPv6NDOptSrcLLAddr, ICMPv6ND_RA)
    multicast = [p for p in ras(scenario) if p[IPv6].dst == "ff02::1"]
    assert len(multicast) >= 3, summary(scenario)
    for p in multicast:
        assert p[IPv6].hlim == 255
        assert IPv6Address(p[IPv6].src).is_link_local
    p = multicast[0]
    ra = p[ICMPv6ND_RA]
    assert ra.H == 1 and ra.routerlifetime == 3
    assert p[ICMPv6NDOptAdvInterval].advint == 1000
    assert (p[ICMPv6NDOptHAInfo].pref, p[ICMPv6NDOptHAInfo].lifetime) == (10, 600)
    pio = p[ICMPv6NDOptPrefixInfo]
    assert pio.R == 1 and pio.L == 1 and pio.A == 1 and pio.prefixlen == 64
    assert IPv6Address(pio.prefix) == HA_ADDRESS      # the router's full address (§7.2)
    from scapy.layers.l2 import Ether
    assert p[ICMPv6NDOptSrcLLAddr].lladdr == p[Ether].src


def test_intervals_within_configured_bounds(scenario):
    from scapy.layers.inet6 import IPv6, ICMPv6ND_RA
    times = [float(p.time) for p in ras(scenario)
             if p[IPv6].dst == "ff02::1" and p[ICMPv6ND_RA].routerlifetime != 0]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps
    slack = 0.25
    assert max(gaps) <= MAX_INTERVAL + slack, gaps
    assert min(gaps) >= MIN_DELAY - 0.05, gaps


def first_answer(scenario, sent_at, addressed_to):
    """Time from the RS to the first RA after it sent to `addressed_to` or to ff02::1."""
    from scapy.layers.inet6 import IPv6
    for p in ras(scenario):
        t = float(p.time)
        if t >= sent_at - 0.05 and p[IPv6].dst in (str(addressed_to), "ff02::1"):
            return t - sent_at
    return None


def test_rs_from_link_local_answered(scenario):
    # the sender chose unicast for it (AdvRASolicitedUnicast); if a multicast RA was
    # due sooner than the random 0..0.5 s delay, that one answers it (RFC 4861 §6.2.6)
    mn_ll = scenario["mn_ll"]
    assert (f"RS from {mn_ll}, unicast RA in" in scenario["router_log"]), \
        scenario["router_log"]
    delay = first_answer(scenario, scenario["marks"]["rs-ll"], mn_ll)
    assert delay is not None and delay <= 0.5 + 1.0, summary(scenario)   # loose slack
    assert all(p.hlim == 255 for p in ras(scenario))


def test_rs_from_unspecified_answered_by_multicast(scenario):
    log = scenario["router_log"]
    assert ("RS from ::, multicast RA in" in log
            or "RS from :: answered by the RA due in" in log), log
    delay = first_answer(scenario, scenario["marks"]["rs-unspec"], "ff02::1")
    assert delay is not None and delay <= 0.5 + 1.0, summary(scenario)


def test_malformed_rs_counted_and_process_survives(scenario):
    log = scenario["router_log"]
    # two malformed (hop limit 64, SLLA from ::), two good ones
    assert "(2 malformed)" in log, log
    assert "Traceback" not in log


def test_sigterm_sends_final_ra_with_router_lifetime_zero(scenario):
    from scapy.layers.inet6 import ICMPv6ND_RA, IPv6
    assert scenario["router_rc"] == 0, scenario["router_log"]
    finals = [p for p in ras(scenario) if p[ICMPv6ND_RA].routerlifetime == 0]
    assert finals, summary(scenario)
    assert finals[0][IPv6].dst == "ff02::1" and finals[0][IPv6].hlim == 255
    assert "AdvDefaultLifetime 0;" in scenario["radvdump"]
    # the receiving kernel drops the default route through us
    assert scenario["route_after"] == "gone"


def test_foreground_log_is_radvd_style(scenario):
    first = scenario["router_log"].splitlines()[0]
    assert first.startswith("[") and "] radvd (" in first
    assert "wlan0: advertising from fe80::" in scenario["router_log"]


LATE_CONFIG = """\
interface wlan0 {
    AdvSendAdvert on;
    IgnoreIfMissing on;
    MaxRtrAdvInterval 1; MinRtrAdvInterval 0.3; MinDelayBetweenRAs 0.1;
    AdvHomeAgentFlag on;
    AdvDefaultLifetime %d;
    prefix 2001:db8:1::/64 { };
};
"""


def test_missing_interface_picked_up_then_sighup_reload(tmp_path):
    """IgnoreIfMissing: start before wlan0 exists; SIGHUP keeps running, bad file kept out."""
    if shutil.which("radvdump") is None:
        pytest.skip("needs radvdump (package radvd)")
    conf = tmp_path / "radvd.conf"
    conf.write_text(LATE_CONFIG % 7)
    topo = Topology()
    procs = []
    try:
        rtr, mn = topo.host("rtr"), topo.host("mn")
        rtr.sysctl("net.ipv6.conf.all.forwarding", "1")
        env = dict(os.environ, PYTHONPATH=ROOT)
        log_path = tmp_path / "router.log"
        log_file = open(log_path, "w")
        router = rtr.popen(sys.executable, "-m", "radvd", "-C", str(conf), "-n", "-d", "1",
                           stderr=log_file, env=env, cwd=ROOT)
        procs.append(router)
        wait_for(lambda: "interface does not exist, waiting" in log_path.read_text(),
                 timeout=10, what="the sender to notice wlan0 is missing")
        assert router.poll() is None
        topo.link(rtr, "wlan0", mn, "wlan0")
        mn.sysctl("net.ipv6.conf.all.forwarding", "0")
        mn.sysctl("net.ipv6.conf.wlan0.accept_ra", "1")
        dump_path = tmp_path / "radvdump.txt"
        dump_out = open(dump_path, "w")
        dump = mn.popen("radvdump", stdout=dump_out, stderr=subprocess.STDOUT)
        procs.append(dump)
        wait_for(lambda: mn.run("ip", "-6", "route", "show", "default").stdout.strip(),
                 timeout=10, what="default route after wlan0 appeared")
        wait_for(lambda: "AdvDefaultLifetime 7;" in dump_path.read_text(), timeout=10,
                 what="radvdump to see the first configuration")
        # reload: the new router lifetime shows up in the RAs
        conf.write_text(LATE_CONFIG % 9)
        router.send_signal(signal.SIGHUP)
        wait_for(lambda: "AdvDefaultLifetime 9;" in dump_path.read_text(), timeout=10,
                 what="radvdump to see the reloaded configuration")
        # the interface goes down and comes back: advertising stops and resumes
        rtr.run("ip", "link", "set", "wlan0", "down")
        wait_for(lambda: "advertising suspended" in log_path.read_text(), timeout=10,
                 what="the sender to notice wlan0 went down")
        rtr.run("ip", "link", "set", "wlan0", "up")
        wait_for(lambda: log_path.read_text().count("wlan0: advertising from fe80::") >= 2,
                 timeout=10, what="advertising to resume on wlan0")
        # a broken file on reload: logged, the running configuration is kept
        conf.write_text("interface wlan0 {\n  AdvSendAdvert perhaps;\n};\n")
        router.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload failed" in log_path.read_text(), timeout=10,
                 what="the failed reload to be logged")
        assert router.poll() is None
        assert "radvd.conf:2: AdvSendAdvert expects on or off" in log_path.read_text()
        router.send_signal(signal.SIGTERM)
        assert router.wait(timeout=15) == 0
        log_file.close()
        text = log_path.read_text()
        assert "Traceback" not in text
        assert "wlan0: advertising from fe80::" in text
    finally:
        kill_all(procs)
        topo.teardown()


def test_seed_radvd_conf_unchanged_on_two_links(tmp_path):
    """The article's radvd.conf, as printed (no braces), drives both cells."""
    if shutil.which("radvdump") is None:
        pytest.skip("needs radvdump (package radvd)")
    seed = os.path.join(ROOT, "tests", "data", "radvd.seed.conf")
    topo = Topology()
    procs = []
    try:
        denali, home, away = topo.host("rtr"), topo.host("home"), topo.host("away")
        topo.link(denali, "wlan0", home, "wlan0")
        topo.link(denali, "wlan1", away, "wlan0")
        denali.sysctl("net.ipv6.conf.all.forwarding", "1")
        # the article's Listing 2
        denali.run("ip", "addr", "add", "2001:db8::/64", "dev", "wlan0", "nodad")
        denali.run("ip", "addr", "add", "2001:db8:1::/64", "dev", "wlan1", "nodad")
        dumps = {}
        for ns in (home, away):
            ns.sysctl("net.ipv6.conf.all.forwarding", "0")
            ns.sysctl("net.ipv6.conf.wlan0.accept_ra", "1")
            path = tmp_path / f"{ns.name}.txt"
            out = open(path, "w")
            procs.append(ns.popen("radvdump", stdout=out, stderr=subprocess.STDOUT))
            dumps[ns.name] = path
        env = dict(os.environ, PYTHONPATH=ROOT)
        router = denali.popen(sys.executable, "-m", "radvd", "-C", seed, "-n",
                              stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        procs.append(router)

        def slaac(ns, prefix):
            out = ns.run("ip", "-6", "-o", "addr", "show", "dev", "wlan0").stdout
            return any(IPv6Address(w.split("/")[0]) in IPv6Network(prefix)
                       for w in out.split() if "/" in w and w.startswith("2001:"))
        wait_for(lambda: slaac(home, "2001:db8::/64"), timeout=10, what="home SLAAC")
        wait_for(lambda: slaac(away, "2001:db8:1::/64"), timeout=10, what="away SLAAC")
        wait_for(lambda: "AdvRouterAddr on;" in dumps[home.name].read_text()
                 and "AdvRouterAddr on;" in dumps[away.name].read_text(), timeout=10,
                 what="radvdump on both links")
        router.send_signal(signal.SIGTERM)
        assert router.wait(timeout=15) == 0
        home_text, away_text = dumps[home.name].read_text(), dumps[away.name].read_text()
        assert "AdvHomeAgentFlag on;" in home_text       # wlan0: the home agent's link
        assert "AdvHomeAgentFlag on;" not in away_text   # wlan1: AdvHomeAgentFlag off
        assert "AdvIntervalOpt on;" in home_text and "AdvIntervalOpt on;" in away_text
        assert "prefix 2001:db8:1::/64" in away_text
        assert "Traceback" not in router.stderr.read()
    finally:
        kill_all(procs)
        topo.teardown()


AUTO_CONFIG = """\
interface wlan0 {
    AdvSendAdvert on;
    MaxRtrAdvInterval 1; MinRtrAdvInterval 0.3; MinDelayBetweenRAs 0.1;
    AdvHomeAgentFlag on;
    AdvHomeAgentInfo on;
    AdvMobRtrSupportFlag on;
    prefix ::/64 {
        AdvRouterAddr on;
        DecrementLifetimes on;
        AdvValidLifetime 600;
        AdvPreferredLifetime 300;
    };
};
"""


def test_auto_prefix_decrementing_lifetimes_and_mobile_router_flag(tmp_path):
    """`prefix ::/64` is every prefix of wlan0, counting down; the HA option has R set.

    Checked by radvdump (radvd's own decoder) and by the receiving kernel's SLAAC.
    """
    if shutil.which("radvdump") is None:
        pytest.skip("needs radvdump (package radvd)")
    conf = tmp_path / "radvd.conf"
    conf.write_text(AUTO_CONFIG)
    topo = Topology()
    procs = []
    try:
        rtr, mn = ra_pair(topo, addresses=("2001:db8:1::1/64", "2001:db8:2::1/64"))
        dump_path = tmp_path / "radvdump.txt"
        dump_out = open(dump_path, "w")
        procs.append(mn.popen("radvdump", stdout=dump_out, stderr=subprocess.STDOUT))
        env = dict(os.environ, PYTHONPATH=ROOT)
        log_path = tmp_path / "router.log"
        log_file = open(log_path, "w")
        router = rtr.popen(sys.executable, "-m", "radvd", "-C", str(conf), "-n", "-d", "1",
                           stderr=log_file, env=env, cwd=ROOT)
        procs.append(router)

        def valid_lifetimes():
            # radvdump prints one block per RA; the lifetimes of our first prefix, in order
            out, inside = [], False
            for line in dump_path.read_text().splitlines():
                line = line.strip()
                if line.startswith("prefix "):
                    inside = line.startswith("prefix 2001:db8:1::1/64")
                elif inside and line.startswith("AdvValidLifetime "):
                    out.append(int(line.split()[1].rstrip(";")))
            return out

        def slaac(prefix):
            out = mn.run("ip", "-6", "-o", "addr", "show", "dev", "wlan0").stdout
            return any(IPv6Address(w.split("/")[0]) in IPv6Network(prefix)
                       for w in out.split() if "/" in w and w.startswith("2001:"))
        wait_for(lambda: slaac("2001:db8:1::/64") and slaac("2001:db8:2::/64"), timeout=10,
                 what="SLAAC addresses in both of the router's prefixes")
        wait_for(lambda: len(set(valid_lifetimes())) >= 3, timeout=10,
                 what="the valid lifetime to count down in radvdump")
        router.send_signal(signal.SIGTERM)
        assert router.wait(timeout=15) == 0
        text = dump_path.read_text()
        # the R flag carries the router's own address in each prefix (RFC 6275 §7.2)
        assert "prefix 2001:db8:1::1/64" in text and "prefix 2001:db8:2::1/64" in text
        assert "prefix ::/64" not in text
        assert "AdvMobRtrSupportFlag on;" in text         # RFC 3963 §7.1
        lifetimes = valid_lifetimes()
        assert lifetimes[0] == 600 and lifetimes == sorted(lifetimes, reverse=True), lifetimes
        assert lifetimes[-1] < 600
        print(f"\nvalid lifetimes seen by radvdump: {lifetimes[:3]} ... {lifetimes[-3:]}")
        log_file.close()
        assert "Traceback" not in log_path.read_text()
    finally:
        kill_all(procs)
        topo.teardown()


# ------------------------------------------------------------------ MaxRADelay 0

FAST_REPLY_CONFIG = """\
interface wlan0
{
    AdvSendAdvert on;
    MaxRADelay 0;
    AdvRASolicitedUnicast on;
    MaxRtrAdvInterval 60;
    MinRtrAdvInterval 30;
    MinDelayBetweenRAs 3;
    prefix 2001:db8::/64 { };
};
"""

# In mn: wait for the first (multicast) RA, then send two RSs from the link-local
# address 0.1 s apart and print every RA heard until both have a unicast answer.
FAST_REPLY_PEER = textwrap.dedent("""
    import sys, time
    from scapy.all import AsyncSniffer, sendp, get_if_hwaddr
    from scapy.layers.l2 import Ether
    from scapy.layers.inet6 import IPv6, ICMPv6ND_RA, ICMPv6ND_RS, ICMPv6NDOptSrcLLAddr
    lladdr, deadline = sys.argv[1], time.time() + float(sys.argv[2])
    mac = get_if_hwaddr("wlan0")
    heard = []
    def seen(p):
        if ICMPv6ND_RA in p and IPv6 in p:
            heard.append(p)
            print("ra", p[IPv6].dst, p[Ether].dst, p[IPv6].hlim, flush=True)
    sn = AsyncSniffer(iface="wlan0", filter="icmp6", store=False, prn=seen)
    sn.start()
    time.sleep(0.3)
    print("sniffing", flush=True)
    while not heard and time.time() < deadline:
        time.sleep(0.02)
    rs = (Ether(src=mac, dst="33:33:00:00:00:02") / IPv6(src=lladdr, dst="ff02::2", hlim=255)
          / ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=mac))
    for _ in range(2):
        print("rs", flush=True)
        sendp(rs, iface="wlan0", verbose=False)
        time.sleep(0.1)
    while sum(p[IPv6].dst == lladdr for p in heard) < 2 and time.time() < deadline:
        time.sleep(0.02)
    sn.stop()
    print("done", flush=True)
""")


def test_max_ra_delay_0_rs_answered_by_unicast_ra(tmp_path):
    """MaxRADelay 0 with AdvRASolicitedUnicast: each RS gets a unicast RA at once, and
    the second, 0.1 s after the first, is not held back by MinDelayBetweenRAs (3 s):
    that limit is for multicast RAs.  The next multicast RA is 30-60 s away, so a
    unicast RA is the only answer the peer can hear within its (safety) deadline."""
    pytest.importorskip("scapy")
    conf = tmp_path / "radvd.conf"
    conf.write_text(FAST_REPLY_CONFIG)
    topo = Topology()
    procs = []
    try:
        rtr, mn = ra_pair(topo, "rdly", "mdly", accept_ra=False, solicit=False)
        rtr_ll = wait_for(lambda: link_local(rtr), what="router link-local")
        mn_ll = wait_for(lambda: link_local(mn), what="mn link-local")
        mn_mac = mn.run("cat", "/sys/class/net/wlan0/address").stdout.strip()
        peer = start_listener(mn, procs, sys.executable, "-c", FAST_REPLY_PEER, str(mn_ll), "20")
        env = dict(os.environ, PYTHONPATH=ROOT)
        router = rtr.popen(sys.executable, "-m", "radvd", "-C", str(conf), "-n", "-d", "2",
                           stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        procs.append(router)
        out, err = peer.communicate(timeout=40)
        router.send_signal(signal.SIGTERM)
        router.wait(timeout=15)
        log = router.stderr.read()
    finally:
        kill_all(procs)
        topo.teardown()
    lines = out.split("\n")
    assert "done" in lines, out + err
    after_rs = lines[lines.index("rs") + 1:]
    answers = [line.split() for line in after_rs if line.startswith("ra ")]
    unicast = [a for a in answers if a[1] == str(mn_ll)]
    assert len(unicast) == 2, (out, log)
    assert all(a[2] == mn_mac and a[3] == "255" for a in unicast), out
    assert not [a for a in answers if a[1] != str(mn_ll)], (out, log)   # no multicast answer
    assert log.count(f"RS from {mn_ll}, unicast RA now") == 2, log
    assert str(rtr_ll) in log


# The periodic RAs come from a sender thread, RS answers from the event loop: both
# obey one schedule.  With MaxRADelay 0 and multicast answers, an RS every 10 ms
# asks for an RA at once each time; what the peer hears must still keep
# MinDelayBetweenRAs apart and never wait longer than MaxRtrAdvInterval.
BURST_CONFIG = """\
interface wlan0
{
    AdvSendAdvert on;
    MaxRADelay 0;
    AdvRASolicitedUnicast off;
    MinRtrAdvInterval 0.2;
    MaxRtrAdvInterval 0.3;
    MinDelayBetweenRAs 0.1;
    AdvHomeAgentFlag on;
    AdvHomeAgentInfo on;
    HomeAgentLifetime 600;
    prefix 2001:db8::/64 { AdvRouterAddr on; };
};
"""

# Runs in the peer namespace: kernel receive timestamps of every RA, RSs every 10 ms
# during the middle second, until the final RAs (router lifetime 0) have come.
BURST_PEER = textwrap.dedent("""
    import json, select, socket, struct, sys, time
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    words = [0xFFFFFFFF] * 8
    words[134 >> 5] &= ~(1 << (134 & 31))          # pass only RAs
    s.setsockopt(socket.IPPROTO_ICMPV6, 1, struct.pack("=8I", *words))
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
    s.setsockopt(socket.SOL_SOCKET, 25, b"wlan0")
    s.setsockopt(socket.SOL_SOCKET, 35, 1)          # SO_TIMESTAMPNS
    idx = socket.if_nametoindex("wlan0")
    print("ready", flush=True)
    ras, rs_at, finals = [], [], 0
    start = None
    deadline = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < deadline and finals < 3:
        now = time.monotonic()
        if start is not None and 1.0 <= now - start < 2.0:
            s.sendto(bytes([133, 0, 0, 0, 0, 0, 0, 0]), ("ff02::2", 0, 0, idx))
            rs_at.append(time.time())
        if not select.select([s], [], [], 0.01)[0]:
            continue
        data, anc, _, _ = s.recvmsg(2048, 64)
        if start is None:
            start = time.monotonic()
        stamp = time.time()
        for level, kind, value in anc:
            if level == socket.SOL_SOCKET and kind == 35:
                sec, nsec = struct.unpack("@qq", value[:16])
                stamp = sec + nsec / 1e9
        life = struct.unpack("!H", data[6:8])[0]
        finals += life == 0
        ras.append((stamp, life))
        if len(ras) == 12:
            print("signal", flush=True)
    print(json.dumps({"ras": ras, "rs": rs_at}), flush=True)
""")

# FAKE at a boundary the machine cannot reach on demand: a process that may start
# no more threads.  threading.Thread.start fails as it does then (RuntimeError).
NO_THREADS = textwrap.dedent("""
    import runpy, sys, threading
    def refuse(self):
        raise RuntimeError("can't start new thread")
    threading.Thread.start = refuse
    sys.argv = ["radvd"] + sys.argv[1:]
    runpy.run_module("radvd", run_name="__main__", alter_sys=True)
""")


def threads_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


@pytest.mark.parametrize("driver", ["sender thread", "loop timers"])
def test_periodic_and_solicited_multicast_ras_share_one_schedule(tmp_path, driver):
    conf = tmp_path / "radvd.conf"
    conf.write_text(BURST_CONFIG)
    topo = Topology()
    procs = []
    log_file = None
    try:
        rtr, mn = ra_pair(topo, "rbst", "mbst", accept_ra=False, solicit=False)
        wait_for(lambda: link_local(rtr), what="router link-local")
        wait_for(lambda: link_local(mn), what="mn link-local")
        peer = start_listener(mn, procs, sys.executable, "-c", BURST_PEER, "30", ready="ready")
        env = dict(os.environ, PYTHONPATH=ROOT)
        args = ["-C", str(conf), "-n", "-d", "1"]
        cmd = [sys.executable, "-m", "radvd", *args] if driver == "sender thread" \
            else [sys.executable, "-c", NO_THREADS, *args]
        log_file = open(tmp_path / "radvd.log", "w")
        router = rtr.popen(*cmd, stderr=log_file, env=env, cwd=ROOT)
        procs.append(router)
        line = peer.stdout.readline().strip()
        assert line == "signal", (line, peer.stderr.read()[-2000:])
        # the peer has heard 12 RAs: the 1 s RS burst is under way
        threads = threads_of(router.pid)
        time.sleep(2.5)
        router.send_signal(signal.SIGTERM)
        rc = router.wait(timeout=15)
        out, err = peer.communicate(timeout=30)
    finally:
        if log_file is not None:
            log_file.close()
        kill_all(procs)
        topo.teardown()
    log = (tmp_path / "radvd.log").read_text()
    assert rc == 0, log
    result = json.loads(out.strip().splitlines()[-1])
    ras, rs_at = result["ras"], result["rs"]
    # one thread beside the loop, or none when it could not start (and the log says so)
    if driver == "sender thread":
        assert threads == 2, log
        assert "no RA sender thread" not in log
    else:
        assert threads == 1, log
        assert "no RA sender thread (can't start new thread), sending from the event loop" \
            in log
    assert len(rs_at) >= 50, err
    periodic = [t for t, life in ras if life != 0]
    finals = [t for t, life in ras if life == 0]
    assert len(finals) == 3, (ras, log)
    gaps = [b - a for a, b in zip(periodic, periodic[1:])]
    # RFC 4861 §6.2.6: MinDelayBetweenRAs (0.1 s) between any two multicast RAs, the
    # solicited ones sent from the loop included; no gap beyond MaxRtrAdvInterval
    assert min(gaps) >= 0.1 - 0.005, gaps
    assert max(gaps) <= 0.3 + 0.05, gaps
    # during the burst the RS answers come as fast as the limit allows (~0.1 s)
    burst = [g for a, g in zip(periodic, gaps) if rs_at[0] + 0.15 <= a <= rs_at[-1] - 0.15]
    assert burst and max(burst) <= 0.1 + 0.03, (burst, gaps)
    # RFC 4861 §6.2.5: the final RAs, MinDelayBetweenRAs apart, after the last periodic one
    assert finals[0] - periodic[-1] >= 0.1 - 0.005, (periodic[-3:], finals)
    assert all(b - a >= 0.1 - 0.005 for a, b in zip(finals, finals[1:])), finals
