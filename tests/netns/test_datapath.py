"""The user-space datapath on the real kernel, in namespaces.

    CN (2001:db8::c) --home link-- HA (2001:db8:: / 2001:db8:1::1) --foreign link-- MN
                                                                   CoA 2001:db8:1::100
                                                                   HoA 2001:db8::beef

The HA's datapath runs in this process, on an event loop in a thread that
has entered the HA namespace (its sockets, TUN and netlink live there). The
MN's end of the tunnel is a small TUN + raw-socket helper (MN_HELPER) in the
MN namespace, since this kernel has no ip6_tunnel. Peers that check our
packets: tcpdump captures parsed by scapy, `ip`, `nft`, the kernel's ping.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from ipaddress import IPv6Address

import pytest

from nslib import Topology, have_netns, wait_for

pytestmark = pytest.mark.skipif(have_netns() is not None, reason=str(have_netns()))

HA_HOME, HA_FOREIGN = IPv6Address("2001:db8::"), IPv6Address("2001:db8:1::1")
CN = IPv6Address("2001:db8::c")
HOA = IPv6Address("2001:db8::beef")
COA, COA2, WRONG = (IPv6Address("2001:db8:1::100"), IPv6Address("2001:db8:1::101"),
                    IPv6Address("2001:db8:1::200"))

# The MN's end of the tunnel: TUN "mnt0" holding the HoA, default route into it;
# packets read from it go out encapsulated from the current CoA to the HA, and
# packets from the raw proto-41 socket are written into it. SIGUSR1 switches
# to the second CoA (a movement), SIGUSR2 back to the first.
MN_HELPER = r"""
import fcntl, os, select, signal, socket, struct, sys
coas, ha = sys.argv[1:3], sys.argv[3]
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH22x", b"mnt0", 0x1001))
os.system("sysctl -qw net.ipv6.conf.mnt0.addr_gen_mode=1; ip link set mnt0 up mtu 1400;"
          f"ip -6 addr add {sys.argv[4]}/128 dev mnt0; ip -6 route add default dev mnt0")
rx = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 41)
state = {"tx": None}
def use(i):
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 41)
    s.bind((coas[i], 0))
    state["tx"] = s
use(0)
signal.signal(signal.SIGUSR1, lambda *a: use(1))
signal.signal(signal.SIGUSR2, lambda *a: use(0))
print("ready", flush=True)
while True:
    try:
        r, _, _ = select.select([fd, rx], [], [])
    except InterruptedError:
        continue
    if fd in r:
        state["tx"].sendto(os.read(fd, 65536), (ha, 0))
    if rx in r:
        os.write(fd, rx.recv(65536))
"""

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


class NsLoop:
    """An asyncio loop on a thread that lives in one network namespace."""

    def __init__(self, ns_name: str):
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.error = None

        def main():
            try:
                fd = os.open(f"/run/netns/{ns_name}", os.O_RDONLY)
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
                os.close(fd)
            except BaseException as e:
                self.error = e
                ready.set()
                return
            asyncio.set_event_loop(self.loop)
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        ready.wait()
        if self.error:
            raise self.error

    def run(self, coro, timeout: float = 20):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn, *args):
        async def wrap():
            return fn(*args)
        return self.run(wrap())

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class Capture:
    """tcpdump in a namespace, parsed by scapy when stopped."""

    live: list = []  # killed by the `net` fixture if a test fails before stop()

    def __init__(self, ns, iface: str, bpf: str):
        self.path = tempfile.mktemp(suffix=".pcap")
        self.proc = ns.popen("tcpdump", "-U", "--immediate-mode", "-n", "-i", iface,
                             "-w", self.path, bpf,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        Capture.live.append(self.proc)
        line = self.proc.stderr.readline()  # "listening on ..." once the filter is attached
        assert "listening" in line, line

    def stop(self):
        import scapy.layers.inet6  # noqa: F401  (registers the dissectors)
        import scapy.layers.l2  # noqa: F401
        from scapy.utils import rdpcap
        time.sleep(0.2)
        self.proc.terminate()
        self.proc.wait(5)
        Capture.live.remove(self.proc)
        try:
            return list(rdpcap(self.path))
        finally:
            os.unlink(self.path)


def raw_send(ns, proto: int, src, dst, payload: bytes):
    """Send payload on socket(AF_INET6, SOCK_RAW, proto) bound to src, from inside ns."""
    ns.run(sys.executable, "-c",
           "import socket,sys; s=socket.socket(socket.AF_INET6,socket.SOCK_RAW,int(sys.argv[1]));"
           "s.bind((sys.argv[2],0)); s.sendto(bytes.fromhex(sys.argv[4]),(sys.argv[3],0))",
           str(proto), str(src), str(dst), payload.hex())


@pytest.fixture(scope="module")
def net():
    topo = Topology()
    mn_proc = None
    try:
        ha, cn, mn = topo.host("ha"), topo.host("cn"), topo.host("mn")
        topo.link(ha, "home0", cn, "eth0")
        topo.link(ha, "fore0", mn, "eth0")
        ha.run("ip", "-6", "addr", "add", f"{HA_HOME}/64", "dev", "home0", "nodad")
        ha.run("ip", "-6", "addr", "add", f"{HA_FOREIGN}/64", "dev", "fore0", "nodad")
        cn.run("ip", "-6", "addr", "add", f"{CN}/64", "dev", "eth0", "nodad")
        for a in (COA, COA2, WRONG):
            mn.run("ip", "-6", "addr", "add", f"{a}/64", "dev", "eth0", "nodad")
        mn.run("ip", "-6", "route", "add", f"{HA_HOME}/128", "via", str(HA_FOREIGN))
        mn_proc = mn.popen(sys.executable, "-c", MN_HELPER, str(COA), str(COA2), str(HA_HOME),
                           str(HOA), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert mn_proc.stdout.readline().strip() == "ready", mn_proc.stderr.read()
        topo.mn_pid = mn_proc.pid  # `ip netns exec` execs: this is the helper itself
        yield topo
    finally:
        for proc in Capture.live:
            proc.kill()
            proc.wait()
        Capture.live.clear()
        if mn_proc is not None:
            mn_proc.kill()
            mn_proc.wait()
        topo.teardown()


@pytest.fixture
def nsloop(net):
    nl = NsLoop(net.hosts["ha"].name)
    try:
        yield nl
    finally:
        nl.stop()


@pytest.fixture
def dp(nsloop):
    from ha.datapath.factory import open_datapath
    d = nsloop.run(open_datapath("home0", HA_HOME, backend="user", na_interval=0.05))
    try:
        yield d
    finally:
        nsloop.run(d.close())


def ping(ns, dst, count=1):
    return ns.run("ping", "-6", "-c", str(count), "-i", "0.2", "-W", "2", str(dst), check=False)


def mac_of(ns, ifname) -> str:
    return ns.run("cat", f"/sys/class/net/{ifname}/address").stdout.strip()


def test_tunnel_both_ways_with_proxy_nd(net, nsloop, dp):
    ha, cn, mn = net.hosts["ha"], net.hosts["cn"], net.hosts["mn"]
    ha_mac = mac_of(ha, "home0")
    na_cap = Capture(cn, "eth0", "icmp6 and ip6[40] == 136")
    nsloop.run(dp.add_binding(HOA, COA))
    time.sleep(0.3)  # the three NAs are 50 ms apart here
    nas = na_cap.stop()
    from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
    nas = [p for p in nas if ICMPv6ND_NA in p and p[ICMPv6ND_NA].tgt == str(HOA)]
    assert len(nas) == 3
    for p in nas:
        na = p[ICMPv6ND_NA]
        assert (na.R, na.S, na.O) == (0, 0, 1)
        assert p[ICMPv6NDOptDstLLAddr].lladdr == ha_mac
        assert p[IPv6].dst == "ff02::1" and p[IPv6].hlim == 255
        assert p[IPv6].src.startswith("fe80:")  # the kernel picked the link-local source
        again = p[IPv6].copy()
        del again[ICMPv6ND_NA].cksum
        assert IPv6(bytes(again))[ICMPv6ND_NA].cksum == na.cksum  # the kernel's checksum

    tun_cap = Capture(mn, "eth0", "ip6 proto 41")
    r = ping(cn, HOA, count=3)
    outer = tun_cap.stop()
    assert r.returncode == 0, r.stdout + r.stderr
    # the CN resolved the home address to the HA's MAC (proxy ND)
    neigh = cn.run("ip", "-6", "neigh", "show", str(HOA), "dev", "eth0").stdout
    assert ha_mac in neigh, neigh
    to_mn = [p for p in outer if p[IPv6].src == str(HA_HOME) and p[IPv6].dst == str(COA)]
    from_mn = [p for p in outer if p[IPv6].src == str(COA) and p[IPv6].dst == str(HA_HOME)]
    assert len(to_mn) >= 3 and len(from_mn) >= 3
    assert all(p[IPv6].nh == 41 and p[IPv6].payload.src == str(CN) for p in to_mn)
    assert all(p[IPv6].payload.src == str(HOA) for p in from_mn)
    c = nsloop.call(dict, dp.counters)
    assert c["tunnelled_packets"] >= 3 and c["decapsulated_packets"] >= 3
    assert ha.run("ip", "-6", "neigh", "show", "proxy").stdout.count(str(HOA)) == 1


def test_reverse_tunnel_from_wrong_source_is_dropped_and_counted(net, nsloop, dp):
    from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
    mn, cn = net.hosts["mn"], net.hosts["cn"]
    nsloop.run(dp.add_binding(HOA, COA))
    inner = bytes(IPv6(src=str(HOA), dst=str(CN), hlim=64) / ICMPv6EchoRequest(id=7, seq=1))
    cap = Capture(cn, "eth0", "icmp6 and ip6[40] == 128")
    raw_send(mn, 41, WRONG, HA_HOME, inner)                 # wrong outer source: dropped
    wait_for(lambda: nsloop.call(dict, dp.counters)["dropped_bad_source"] == 1,
             what="the drop to be counted")
    raw_send(mn, 41, COA, HA_HOME, inner)                   # right one: forwarded to the CN
    wait_for(lambda: nsloop.call(dict, dp.counters)["decapsulated_packets"] == 1,
             what="the good packet to be decapsulated")
    echoes = cap.stop()
    assert len(echoes) == 1 and echoes[0][IPv6].src == str(HOA)
    # an inner source with no binding at all is dropped the same way
    stranger = bytes(IPv6(src="2001:db8::dead", dst=str(CN)) / ICMPv6EchoRequest())
    raw_send(mn, 41, COA, HA_HOME, stranger)
    wait_for(lambda: nsloop.call(dict, dp.counters)["dropped_bad_source"] == 2,
             what="the unbound source to be dropped")
    # bad packets are counted and dropped, and the datapath carries on
    for junk in (b"", b"\x45" * 60, b"\x60" * 20):
        raw_send(mn, 41, COA, HA_HOME, junk)
    wait_for(lambda: nsloop.call(dict, dp.counters)["dropped_malformed"] == 3,
             what="the malformed packets to be counted")
    assert ping(net.hosts["cn"], HOA).returncode == 0


def test_move_binding_switches_the_care_of_address(net, nsloop, dp):
    from scapy.layers.inet6 import IPv6
    cn, mn = net.hosts["cn"], net.hosts["mn"]
    nsloop.run(dp.add_binding(HOA, COA))
    assert ping(cn, HOA).returncode == 0
    nsloop.run(dp.move_binding(HOA, COA, COA2))
    os.kill(net.mn_pid, signal.SIGUSR1)  # the MN now sends from COA2
    try:
        time.sleep(0.1)
        cap = Capture(mn, "eth0", "ip6 proto 41")
        r = ping(cn, HOA, count=2)
        outer = cap.stop()
        assert r.returncode == 0, r.stdout
        assert {p[IPv6].dst for p in outer if p[IPv6].src == str(HA_HOME)} == {str(COA2)}
        assert {p[IPv6].src for p in outer if p[IPv6].dst == str(HA_HOME)} == {str(COA2)}
    finally:
        os.kill(net.mn_pid, signal.SIGUSR2)
        time.sleep(0.1)


def test_remove_and_close_leave_nothing_behind(net, nsloop):
    from ha.datapath.factory import open_datapath
    ha, cn = net.hosts["ha"], net.hosts["cn"]
    before = {k: ha.run(*cmd).stdout for k, cmd in STATE_CMDS.items()}
    d = nsloop.run(open_datapath("home0", HA_HOME, backend="user", na_interval=0.05))
    try:
        nsloop.run(d.add_binding(HOA, COA))
        other = IPv6Address("2001:db8::b0b")
        nsloop.run(d.add_binding(other, COA2))
        assert "denali0" in ha.run("ip", "link").stdout
        assert "6275" in ha.run("ip", "-6", "rule").stdout
        assert "denali" in ha.run("nft", "list", "ruleset").stdout
        assert str(other) in ha.run("ip", "-6", "route", "show", "table", "6275").stdout
        nsloop.run(d.remove_binding(other, COA2))
        assert str(other) not in ha.run("ip", "-6", "route", "show", "table", "all").stdout
        assert str(other) not in ha.run("ip", "-6", "neigh", "show", "proxy").stdout
        assert ping(cn, HOA).returncode == 0
    finally:
        nsloop.run(d.close())
    after = {k: ha.run(*cmd).stdout for k, cmd in STATE_CMDS.items()}
    assert after == before
    assert ping(cn, HOA).returncode != 0


STATE_CMDS = {
    "routes": ("ip", "-6", "route", "show", "table", "all"),
    "rules": ("ip", "-6", "rule"),
    "proxy": ("ip", "-6", "neigh", "show", "proxy"),
    "links": ("ip", "-br", "link"),
    "nft": ("nft", "list", "ruleset"),
}


def _param_problems(net, with_firewall: bool) -> list:
    """Send a bare MH BU and a BU with a Home Address option from the CN; return the replies."""
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, HAO, MIP6MH_BU, ICMPv6ParamProblem
    cn = net.hosts["cn"]
    bare = bytes(IPv6(src=str(CN), dst=str(HA_HOME)) / MIP6MH_BU(seq=1))
    with_hao = bytes(IPv6(src=str(CN), dst=str(HA_HOME))
                     / IPv6ExtHdrDestOpt(options=[HAO(hoa=str(HOA))]) / MIP6MH_BU(seq=2))
    cap = Capture(cn, "eth0", "icmp6 and ip6[40] == 4")
    for pkt in (bare, with_hao):
        # IPPROTO_RAW: the whole IPv6 header is ours
        cn.run(sys.executable, "-c",
               "import socket,sys; s=socket.socket(socket.AF_INET6,socket.SOCK_RAW,255);"
               "s.sendto(bytes.fromhex(sys.argv[1]),(sys.argv[2],0))", pkt.hex(), str(HA_HOME))
    time.sleep(0.3)
    return [p[ICMPv6ParamProblem] for p in cap.stop()]


def test_firewall_stops_parameter_problem_for_mobility_header(net, nsloop):
    from ha.net.firewall import Firewall
    ha = net.hosts["ha"]
    # without the rule this kernel (no MIP6) answers both BUs with Parameter Problem
    without = _param_problems(net, False)
    assert sorted(p.code for p in without) == [1, 2]
    fw = Firewall()
    nsloop.call(fw.install)
    try:
        assert _param_problems(net, True) == []
        # AF_PACKET (tcpdump) on the HA still sees the BU
        cap = Capture(ha, "home0", "ip6")
        _param_problems(net, True)
        assert len([p for p in cap.stop() if p.haslayer("MIP6MH_BU")]) == 2
    finally:
        nsloop.call(fw.remove)
    assert "denali" not in ha.run("nft", "list", "ruleset").stdout


def test_many_bindings_go_in_few_netlink_writes_and_failures_are_reported(net, nsloop, dp):
    ha = net.hosts["ha"]
    hoas = [IPv6Address(f"2001:db8::1:{i:x}") for i in range(500)]

    async def add_all():
        sends = dp.rtnl.sends
        await asyncio.gather(*(dp.add_binding(h, COA) for h in hoas))
        return dp.rtnl.sends - sends
    sends = nsloop.run(add_all())
    assert sends < 50  # 1,000 requests, acked once per write
    routes = ha.run("ip", "-6", "route", "show", "table", "6275").stdout
    proxies = ha.run("ip", "-6", "neigh", "show", "proxy").stdout
    assert all(str(h) in routes and str(h) in proxies for h in hoas)

    # a failing request in the middle of a batch fails only its own caller
    from ha.net.rtnl import RTM_NEWNEIGH, NetlinkError, proxy_neigh_msg

    async def mixed():
        good = dp.rtnl.submit([proxy_neigh_msg(RTM_NEWNEIGH, IPv6Address("2001:db8::77"),
                                               dp.home_ifindex)])
        bad = dp.rtnl.submit([proxy_neigh_msg(RTM_NEWNEIGH, IPv6Address("2001:db8::78"), 9999)])
        good2 = dp.rtnl.submit([proxy_neigh_msg(RTM_NEWNEIGH, IPv6Address("2001:db8::79"),
                                                dp.home_ifindex)])
        return await asyncio.gather(good, bad, good2, return_exceptions=True)
    r = nsloop.run(mixed())
    assert r[0] is None and r[2] is None and isinstance(r[1], NetlinkError), r
    assert r[1].errno == 19  # ENODEV
    async def remove_all():
        await asyncio.gather(*(dp.remove_binding(h, COA) for h in hoas))
    nsloop.run(remove_all())
    assert "2001:db8::1:" not in ha.run("ip", "-6", "route", "show", "table", "all").stdout
    ha.run("ip", "-6", "neigh", "del", "proxy", "2001:db8::77", "dev", "home0")
    ha.run("ip", "-6", "neigh", "del", "proxy", "2001:db8::79", "dev", "home0")


def test_auto_picks_user_here_and_kernel_backend_fails_cleanly(net, nsloop):
    from ha.net.rtnl import NetlinkError
    from ha.datapath.factory import kernel_has_ip6_tunnel, open_datapath
    from ha.datapath.user import UserDatapath
    ha = net.hosts["ha"]
    if kernel_has_ip6_tunnel():
        pytest.skip("this kernel has ip6_tunnel: the kernel backend is tested in qemu")
    before = {k: ha.run(*cmd).stdout for k, cmd in STATE_CMDS.items()}
    d = nsloop.run(open_datapath("home0", HA_HOME))
    try:
        assert isinstance(d, UserDatapath)
    finally:
        nsloop.run(d.close())
    # the kernel backend's ip6tnl request reaches the real kernel, which refuses the kind
    k = nsloop.run(open_datapath("home0", HA_HOME, backend="kernel"))
    try:
        with pytest.raises(NetlinkError) as e:
            nsloop.run(k.add_binding(HOA, COA))
        assert e.value.errno == 95  # EOPNOTSUPP: no ip6tnl link kind
    finally:
        nsloop.run(k.close())
    assert {k: ha.run(*cmd).stdout for k, cmd in STATE_CMDS.items()} == before


def test_kernel_backend_source_check_drops_a_home_address_from_the_wrong_tunnel(net, nsloop):
    """The section 10.4.5 check of the ip6tnl backend, on a veth standing in for `dnt9`."""
    import socket
    from ha.datapath.kernel import NftSourceCheck
    ha, mn = net.hosts["ha"], net.hosts["mn"]
    net.link(mn, "sc9", ha, "dnt9")
    ha.run("ip", "-6", "addr", "add", "2001:db8:9::1/64", "dev", "dnt9", "nodad")
    good, bad, other = "2001:db8:9::beef", "2001:db8:9::dead", "2001:db8:9::b0b"
    for a in (good, bad):
        mn.run("ip", "-6", "addr", "add", f"{a}/64", "dev", "sc9", "nodad")
        ha.run("ip", "-6", "neigh", "replace", a, "lladdr", mac_of(mn, "sc9"), "dev", "dnt9",
               "nud", "permanent")
    mn.run("ip", "-6", "neigh", "replace", "2001:db8:9::1", "lladdr", mac_of(ha, "dnt9"),
           "dev", "sc9", "nud", "permanent")

    def reaches(src):
        return mn.run("ping", "-6", "-c", "1", "-W", "1", "-I", src, "2001:db8:9::1",
                      check=False).returncode == 0

    check = NftSourceCheck(nsloop.loop, "dnt")
    nsloop.run(check.install())
    try:
        ifindex = nsloop.call(socket.if_nametoindex, "dnt9")

        async def allow_two():
            await asyncio.gather(check.allow(IPv6Address(good), ifindex),
                                 check.allow(IPv6Address(other), ifindex))
        runs = check.runs
        nsloop.run(allow_two())
        assert check.runs == runs + 1  # one nft run for the batch
        assert reaches(good)
        assert not reaches(bad)
        async def disallow():
            await check.disallow(IPv6Address(good), ifindex)
        nsloop.run(disallow())
        assert not reaches(good)
    finally:
        nsloop.run(check.remove())
    assert reaches(bad)  # it was the rule that dropped it
    assert "denali_tunnel" not in ha.run("nft", "list", "ruleset").stdout
