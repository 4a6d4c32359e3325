"""DHCPv6 prefix delegation on the real kernel, against ISC's DHCPv6 server.

Namespaces (tag pd): the appliance (uplink to the ISP, the home cell wlan0, the
foreign cell wlan1, veths standing in for the radios), the ISP running
`dhcpd -6` with a prefix6 pool, a host on each cell. denalid runs dhcpcd (the
client of [uplink] prefix_delegation = on). Checked from outside the daemon:
`ip` shows each cell numbered from its /64 of the delegated /56, radvdump on
each cell hears the new prefix advertised and the configured one deprecated
(preferred lifetime 0); then the ISP renumbers (its server restarted with
another pool and no lease memory, the client's lease left to run out), and
the cells hear the new /56's /64s while the old ones stay advertised with
preferred lifetime 0 and the valid lifetime they have left; a mobile node
registered away from home (a binding added on the console) is sent an
unsolicited Mobile Prefix Advertisement: tcpdump captures it on the foreign
cell and scapy reads the new home prefix and the old one (preferred 0) in it.
"""

import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from nslib import Topology, have_netns, unique, wait_for  # noqa: E402

pytestmark = pytest.mark.skipif(have_netns() is not None, reason=str(have_netns()))

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POOL_A, POOL_B = "2001:db8:100::", "2001:db8:200::"
UP_HA, ISP = "2001:db8:ff::2", "2001:db8:ff::1"

CONF = """\
[ha]
    interface = wlan0
    acl_default = allow
    min_mob_pfx_adv_interval = 600
[ra]
    [[wlan0]]
        AdvSendAdvert = on
        MaxRtrAdvInterval = 1
        MinRtrAdvInterval = 0.5
        MinDelayBetweenRAs = 0.5
        AdvIntervalOpt = on
        AdvHomeAgentFlag = on
        prefix = 2001:db8::/64
        AdvRouterAddr = on
    [[wlan1]]
        AdvSendAdvert = on
        MaxRtrAdvInterval = 1
        MinRtrAdvInterval = 0.5
        MinDelayBetweenRAs = 0.5
        AdvIntervalOpt = on
        prefix = 2001:db8:1::/64
[radio]
    [[wlan0]]
        essid = home
        channel = 3
        role = home
        security = open
        address = 2001:db8::/64
    [[wlan1]]
        essid = remote
        channel = 8
        role = foreign
        security = open
        address = 2001:db8:1::1/64
[uplink]
    interface = {UP}
    address = {UP_HA}/64
    gateway = {ISP}
    prefix_delegation = on
    pd_hint = 56
"""

# the client renews every 2 s and rebinds after 3 s: a renumbered server is
# heard within seconds (it withdraws the old prefix, lifetimes 0, and the client
# asks anew); the lease's 60 s bound the home agent's bindings (RFC 6275 10.3.1)
DHCPD = """\
default-lease-time 60;
preferred-lifetime 40;
max-lease-time 60;
option dhcp-renewal-time 2;
option dhcp-rebinding-time 3;
subnet6 2001:db8:ff::/64 {{
  prefix6 {pool} {pool} /56;
}}
"""

def missing():
    for tool, pkg in (("dhcpcd", "dhcpcd-base"), ("dhcpd", "isc-dhcp-server"),
                      ("radvdump", "radvd")):
        if shutil.which(tool) is None:
            return f"needs {tool} (package {pkg}; ./setup.sh installs it)"
    return None


class Isp:
    """ISC dhcpd -6 in the ISP namespace, delegating one /56 from `pool`."""

    def __init__(self, ns, tmp):
        self.ns, self.tmp, self.proc = ns, tmp, None

    def start(self, pool):
        conf, leases = self.tmp / "dhcpd6.conf", self.tmp / "dhcpd6.leases"
        conf.write_text(DHCPD.format(pool=pool))
        leases.write_text("")  # no memory of earlier leases: a renumbered ISP
        self.log = open(self.tmp / f"dhcpd-{pool.strip(':').replace(':', '-')}.log", "w")
        self.proc = self.ns.popen("dhcpd", "-6", "-f", "-cf", str(conf), "-lf", str(leases),
                                  "-pf", str(self.tmp / "dhcpd6.pid"), "eth0",
                                  stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


def addresses(ns, dev):
    """{address/len: preferred lifetime text} of the global addresses of dev."""
    out = ns.run("ip", "-6", "addr", "show", "dev", dev, "scope", "global").stdout
    found, last = {}, None
    for line in out.splitlines():
        m = re.search(r"inet6 (\S+)", line)
        if m:
            last = m.group(1)
            found[last] = "forever"
        m = re.search(r"preferred_lft (\S+)", line)
        if m and last:
            found[last] = m.group(1)
    return found


def heard(dump_path):
    """{prefix: (valid, preferred)} of the last RA radvdump printed."""
    text = dump_path.read_text()
    blocks = text.split("interface ")
    if len(blocks) < 2:
        return {}
    last = blocks[-1]
    if "};\n" not in last and len(blocks) > 2:
        last = blocks[-2]  # the newest one is still being written
    out = {}
    for m in re.finditer(r"prefix (\S+)\s*\{(.*?)\};", last, re.S):
        v = re.search(r"AdvValidLifetime (\d+|infinity);", m.group(2))
        p = re.search(r"AdvPreferredLifetime (\d+|infinity);", m.group(2))
        out[m.group(1)] = (v.group(1), p.group(1))
    return out


@pytest.fixture
def lab(tmp_path):
    why = missing()
    if why:
        pytest.skip(why)
    pytest.importorskip("scapy")
    up = unique("pdu")[:12]  # dhcpcd keeps its lease per interface name: a fresh one
    topo, procs, isp = Topology(), [], None
    try:
        rtr, ispns, home, away = (topo.host(r) for r in ("pdR", "pdI", "pdH", "pdF"))
        topo.link(rtr, up, ispns, "eth0")
        topo.link(rtr, "wlan0", home, "eth0")
        topo.link(rtr, "wlan1", away, "eth0")
        ispns.run("ip", "-6", "addr", "add", f"{ISP}/64", "dev", "eth0", "nodad")
        for ns in (home, away):
            ns.sysctl("net.ipv6.conf.eth0.accept_ra", "0")  # radvdump listens; no SLAAC needed
        isp = Isp(ispns, tmp_path)
        isp.start(POOL_A)
        conf = tmp_path / "denali.conf"
        conf.write_text(CONF.format(UP=up, UP_HA=UP_HA, ISP=ISP))
        dumps = {}
        for name, ns in (("home", home), ("away", away)):
            dumps[name] = tmp_path / f"radvdump-{name}.txt"
            f = open(dumps[name], "w")
            procs.append(ns.popen("radvdump", "-d", "1", stdout=f, stderr=subprocess.STDOUT))
        log = open(tmp_path / "denalid.log", "w")
        env = {**os.environ, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1",
               "DENALI_STATE_DIR": str(tmp_path / "state")}
        proc = rtr.popen(sys.executable, "-m", "ha.daemon.main", "-c", str(conf), "-d", "7",
                         "--vt-port", "7777", stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                         env=env)
        procs.append(proc)
        yield dict(rtr=rtr, isp=isp, home=home, away=away, proc=proc, dumps=dumps, env=env,
                   log=tmp_path / "denalid.log", tmp=tmp_path, procs=procs, up=up)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if isp is not None:
            isp.stop()
        topo.teardown()
        for f in (f"/var/lib/dhcpcd/{up}.lease6",):
            if os.path.exists(f):
                os.unlink(f)


def console(lab, command):
    code = ("import sys; from ha.daemon.console_client import request; "
            "print(chr(10).join(request(sys.argv[1], port=7777)))")
    return lab["rtr"].run(sys.executable, "-c", code, command, env=lab["env"], cwd=ROOT).stdout


def test_cells_numbered_from_the_delegation_and_renumbered_safely(lab):
    rtr, log = lab["rtr"], lab["log"]
    why = lambda: log.read_text()[-4000:]  # noqa: E731
    wait_for(lambda: lab["proc"].poll() is not None or "ready" in log.read_text(), timeout=30,
             what="denalid ready")
    assert lab["proc"].poll() is None, why()
    wait_for(lambda: f"delegated {POOL_A}/56" in log.read_text(), timeout=60,
             what="the first delegation")
    # each cell its /64 of the /56 (sub-prefix ids 0 and 1), the configured
    # address kept deprecated (RFC 7084 L-13)
    wait_for(lambda: "2001:db8:100:1::1/64" in addresses(rtr, "wlan1"), timeout=10,
             what="the foreign cell's new address")
    home = addresses(rtr, "wlan0")
    assert "2001:db8:100::/64" in home, home
    assert home.get("2001:db8::/64") == "0sec", (home, why())
    # radvdump on each cell: the new prefix preferred, the configured one deprecated
    def ras_have(name, new, old):
        got = heard(lab["dumps"][name])
        return new in got and got[new][1] != "0" and got.get(old, (None, None))[1] == "0"
    wait_for(lambda: ras_have("home", "2001:db8:100::/64", "2001:db8::/64"), timeout=15,
             what="home cell RA with the delegated prefix")
    wait_for(lambda: ras_have("away", "2001:db8:100:1::/64", "2001:db8:1::/64"), timeout=15,
             what="foreign cell RA with the delegated prefix")
    assert int(heard(lab["dumps"]["home"])["2001:db8:100::/64"][0]) <= 60  # the lease's

    # a mobile node away from home: a care-of address on the foreign cell and
    # a binding for a home address of the delegated home prefix
    away = lab["away"]
    away.run("ip", "-6", "addr", "add", "2001:db8:100:1::beef/64", "dev", "eth0", "nodad")
    out = console(lab, "bc add hoa 2001:db8:100::beef coa 2001:db8:100:1::beef lifetime 600")
    assert "error" not in out.lower(), out
    def unsolicited_mpas():
        m = re.search(r"MPA sent unsolicited\s+(\d+)", console(lab, "stats"))
        return int(m.group(1)) if m else 0
    before = unsolicited_mpas()
    pcap = lab["tmp"] / "foreign-cell.pcap"
    capture = away.popen("tcpdump", "-U", "-n", "-i", "eth0", "-w", str(pcap), "ip6",
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    lab["procs"].append(capture)
    capture.stderr.readline()  # "listening on eth0 ..."

    # the ISP renumbers: a server that remembers nothing and delegates from another
    # pool; it withdraws the old prefix when the client rebinds, and delegates anew
    lab["isp"].stop()
    lab["isp"].start(POOL_B)
    wait_for(lambda: f"delegated {POOL_B}/56" in log.read_text(), timeout=60,
             what="the second delegation")
    wait_for(lambda: ras_have("home", "2001:db8:200::/64", "2001:db8:100::/64"), timeout=15,
             what="home cell RA: new prefix, the old one deprecated")
    wait_for(lambda: ras_have("away", "2001:db8:200:1::/64", "2001:db8:100:1::/64"),
             timeout=15, what="foreign cell RA: new prefix, the old one deprecated")
    assert "2001:db8:200::/64" in addresses(rtr, "wlan0")
    # the old prefix's hosts are still on the cell, not behind the uplink
    route = rtr.run("ip", "-6", "route", "get", "2001:db8:100:1::beef").stdout
    assert " dev wlan1 " in route, route
    # the mobile node away from home is told of the new home prefix (RFC 6275
    # 10.6.2: an unsolicited Mobile Prefix Advertisement when the prefixes change)
    assert unsolicited_mpas() > before, console(lab, "stats") + why()
    # and the MPA is on the foreign cell, read back with scapy: the new home
    # prefix preferred, the old one with preferred lifetime 0
    def mpas():
        import scapy.layers.inet6 as L
        from scapy.utils import rdpcap
        out = []
        for p in rdpcap(str(pcap)) if pcap.exists() else []:
            if L.ICMPv6MPAdv in p:
                opts, o = {}, p[L.ICMPv6MPAdv].payload
                while o and L.ICMPv6NDOptPrefixInfo in o:
                    i = o[L.ICMPv6NDOptPrefixInfo]
                    opts[f"{i.prefix}/{i.prefixlen}"] = i.preferredlifetime
                    o = i.payload
                out.append(opts)
        return out
    wait_for(lambda: any("2001:db8:200::/64" in m for m in mpas()), timeout=10,
             what="an MPA with the new home prefix on the foreign cell")
    mpa = next(m for m in mpas() if "2001:db8:200::/64" in m)
    assert mpa["2001:db8:200::/64"] > 0 and mpa.get("2001:db8:100::/64") == 0, mpa

    # the configured prefix's two hours end (its address removed here by hand, as
    # the kernel does at the valid lifetime's end): the home agent, which served
    # from 2001:db8::, starts again on the home link's delegated address
    rtr.run("ip", "-6", "addr", "del", "2001:db8::/64", "dev", "wlan0")
    lab["proc"].send_signal(signal.SIGHUP)
    wait_for(lambda: "restarting the home agent" in log.read_text(), timeout=15,
             what="the home agent restarted")
    wait_for(lambda: "address 2001:db8:200::," in log.read_text(), timeout=15,
             what="the home agent on the delegated address")
