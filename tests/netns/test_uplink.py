"""[uplink] on the real kernel: denalid addresses the upstream side, routes, forwards, guards.

Three namespaces (tag upl): the appliance (a cell `cell0` and an uplink `eth0`),
a host on the cell, and the ISP's router on the uplink. denalid runs from a
denali.conf whose [uplink] names eth0 with a static address, a gateway and a
static route. Checked from outside the daemon: `ip` shows the address and
routes in the kernel, the cell host pings the ISP through the appliance, the
ISP's TCP to the console port is dropped (no RST: the firewall, not a closed
port) while the console answers on loopback and the cell still gets its RST,
a SIGHUP with a changed route changes only that route, and after SIGTERM the
address, the routes, the table `inet denali_fw` and forwarding are back.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from nslib import Netns, Topology, have_netns, wait_for  # noqa: E402

pytestmark = pytest.mark.skipif(have_netns() is not None, reason=str(have_netns()))

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CELL_HA, CELL_HOST = "2001:db8::", "2001:db8::c"
UP_HA, ISP = "2001:db8:ff::2", "2001:db8:ff::1"
FAR = "2001:db8:77::1"  # behind the ISP, reached by the default route

CONF = """\
[ha]
    interface = cell0
    acl_default = allow
[ra]
[radio]
[uplink]
    interface = eth0
    address = {UP_HA}/64
    gateway = {ISP}
    routes = {routes}
    dns = 2001:db8:ff::53
"""

# argv: host, port; prints "connected", "refused" or "timeout"
TCP = r"""
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.settimeout(2)
try:
    s.connect((sys.argv[1], int(sys.argv[2]))); print("connected")
except ConnectionRefusedError:
    print("refused")
except (TimeoutError, socket.timeout):
    print("timeout")
"""
CONSOLE = ("import sys; from ha.daemon.console_client import request; "
           "print(chr(10).join(request('status', port=7777, unix_path=False)))")


def write_conf(path, routes):
    path.write_text(CONF.format(UP_HA=UP_HA, ISP=ISP, routes=", ".join(routes)))


def start_denalid(ha, conf, tmp_path):
    log = open(tmp_path / "denalid.log", "w")
    proc = ha.popen(sys.executable, "-m", "ha.daemon.main", "-c", str(conf), "-d", "7",
                    "--vt-port", "7777", stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                    env={**os.environ, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1",
                         "DENALI_STATE_DIR": str(tmp_path / "state")})
    wait_for(lambda: proc.poll() is not None or "ready" in
             (tmp_path / "denalid.log").read_text(), timeout=30, what="denalid ready")
    assert proc.poll() is None, (tmp_path / "denalid.log").read_text()
    return proc


@pytest.fixture
def lab():
    """The three namespaces, addressed; the appliance's uplink not yet."""
    topo = Topology()
    procs = []
    try:
        ha, cell, isp = (Netns(p) for p in ("uplD", "uplC", "uplI"))
        topo.hosts.update({"ha": ha, "cell": cell, "isp": isp})
        topo.link(ha, "cell0", cell, "eth0")
        topo.link(ha, "eth0", isp, "eth0")
        ha.run("ip", "-6", "addr", "add", f"{CELL_HA}/64", "dev", "cell0", "nodad")
        cell.run("ip", "-6", "addr", "add", f"{CELL_HOST}/64", "dev", "eth0", "nodad")
        cell.run("ip", "-6", "route", "add", "default", "via", CELL_HA)
        isp.run("ip", "-6", "addr", "add", f"{ISP}/64", "dev", "eth0", "nodad")
        isp.run("ip", "-6", "addr", "add", "fe80::1/64", "dev", "eth0", "nodad")
        isp.run("ip", "-6", "addr", "add", f"{FAR}/128", "dev", "lo")  # (no dummy module here)
        isp.run("ip", "-6", "route", "add", "2001:db8::/64", "via", UP_HA)
        ha.sysctl("net.ipv6.conf.all.forwarding", "0")
        yield {"ha": ha, "cell": cell, "isp": isp, "procs": procs, "topo": topo}
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        topo.teardown()


@pytest.fixture
def net(lab, tmp_path):
    """denalid running with the static [uplink]."""
    conf = tmp_path / "denali.conf"
    write_conf(conf, ["2001:db8:9::/48 via fe80::1"])
    proc = start_denalid(lab["ha"], conf, tmp_path)
    lab["procs"].append(proc)
    return {**lab, "proc": proc, "conf": conf, "log": tmp_path / "denalid.log"}


def routes(ha):
    return json.loads(ha.run("ip", "-j", "-6", "route", "show", "dev", "eth0").stdout)


def addresses(ha, dev="eth0"):
    out = json.loads(ha.run("ip", "-j", "-6", "addr", "show", "dev", dev).stdout)
    return {f"{a['local']}/{a['prefixlen']}" for i in out for a in i["addr_info"]}


def tcp(host, addr, port):
    return host.run(sys.executable, "-c", TCP, addr, str(port)).stdout.strip()


def test_uplink_addressed_routed_forwarding_and_guarded_then_undone(net):
    ha, cell, isp, proc = net["ha"], net["cell"], net["isp"], net["proc"]
    # the kernel holds what [uplink] says
    assert f"{UP_HA}/64" in addresses(ha)
    got = {(r["dst"], r.get("gateway")) for r in routes(ha)}
    assert ("default", ISP) in got and ("2001:db8:9::/48", "fe80::1") in got, got
    assert ha.run("sysctl", "-n", "net.ipv6.conf.all.forwarding").stdout.strip() == "1"
    # a router: the cell reaches past the ISP, through the default route
    r = cell.run("ping", "-6", "-c", "2", "-W", "2", FAR, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    # the ISP may ping the appliance, not reach its console or anything else new
    assert isp.run("ping", "-6", "-c", "1", "-W", "2", UP_HA, check=False).returncode == 0
    assert tcp(isp, UP_HA, 7777) == "timeout"   # dropped: no RST came back
    assert tcp(isp, UP_HA, 22) == "timeout"
    assert tcp(cell, CELL_HA, 22) == "refused"  # the cells reach the router as before
    counters = ha.run("nft", "-j", "list", "table", "inet", "denali_fw").stdout
    drops = [e["rule"] for e in json.loads(counters)["nftables"] if "rule" in e
             and e["rule"].get("comment") == "the console is for loopback"]
    assert drops and any(x.get("counter", {}).get("packets", 0) > 0
                         for x in drops[0]["expr"]), drops
    status = ha.run(sys.executable, "-c", CONSOLE, cwd=ROOT,
                    env={**os.environ, "PYTHONPATH": ROOT}).stdout
    assert f"uplink     up on eth0 ({UP_HA}/64)" in status, status

    # a reload changes the route list only: the new route comes, the old goes
    write_conf(net["conf"], ["2001:db8:a::/48 via fe80::1"])
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: ("2001:db8:a::/48", "fe80::1") in
             {(r["dst"], r.get("gateway")) for r in routes(ha)}, what="the new route")
    got = {(r["dst"], r.get("gateway")) for r in routes(ha)}
    assert ("2001:db8:9::/48", "fe80::1") not in got and ("default", ISP) in got, got
    text = net["log"].read_text()
    assert "removed route 2001:db8:9::/48" in text
    assert text.count(f"address {UP_HA}/64 on eth0") == 1  # not re-added

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0, net["log"].read_text()
    assert f"{UP_HA}/64" not in addresses(ha)
    left = {(r["dst"], r.get("gateway")) for r in routes(ha)}
    assert not {("default", ISP), ("2001:db8:a::/48", "fe80::1")} & left, left
    assert "denali_fw" not in ha.run("nft", "list", "tables").stdout
    assert ha.run("sysctl", "-n", "net.ipv6.conf.all.forwarding").stdout.strip() == "0"


RADVD_CONF = """\
interface eth0 {
    AdvSendAdvert on;
    MinRtrAdvInterval 3;
    MaxRtrAdvInterval 4;
    prefix 2001:db8:ff::/64 { AdvOnLink on; AdvAutonomous on; };
};
"""


@pytest.mark.skipif(shutil.which("radvd") is None, reason="needs Debian's radvd as the ISP")
def test_slaac_uplink_learns_address_and_default_route_while_forwarding(lab, tmp_path):
    ha, isp = lab["ha"], lab["isp"]
    before = {k: ha.run("sysctl", "-n", f"net.ipv6.conf.eth0.{k}").stdout.strip()
              for k in ("accept_ra", "autoconf")}
    conf = tmp_path / "denali.conf"
    conf.write_text("[ha]\n    interface = cell0\n    acl_default = allow\n[ra]\n[radio]\n"
                    "[uplink]\n    interface = eth0\n    mode = slaac\n")
    proc = start_denalid(ha, conf, tmp_path)
    lab["procs"].append(proc)
    assert ha.run("sysctl", "-n", "net.ipv6.conf.eth0.accept_ra").stdout.strip() == "2"
    # the ISP's router: Debian's radvd, started once the appliance listens
    isp.sysctl("net.ipv6.conf.all.forwarding", "1")
    (tmp_path / "radvd.conf").write_text(RADVD_CONF)
    lab["procs"].append(isp.popen("radvd", "-n", "-C", str(tmp_path / "radvd.conf"),
                                  "-p", str(tmp_path / "radvd.pid"), "-m", "stderr",
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    learned = wait_for(lambda: [a.split("/")[0] for a in addresses(ha)
                                if a.startswith("2001:db8:ff:")], timeout=20,
                       what="a SLAAC address from the ISP's prefix")
    wait_for(lambda: any(r["dst"] == "default" and r.get("protocol") == "ra"
                         for r in routes(ha)), timeout=20, what="the RA's default route")
    # forwarding on and still a host upstream: the cell reaches past the ISP
    isp.run("ip", "-6", "route", "replace", "2001:db8::/64", "via", learned[0])
    r = lab["cell"].run("ping", "-6", "-c", "2", "-W", "2", FAR, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    after = {k: ha.run("sysctl", "-n", f"net.ipv6.conf.eth0.{k}").stdout.strip()
             for k in ("accept_ra", "autoconf")}
    assert after == before
    assert "denali_fw" not in ha.run("nft", "list", "tables").stdout


def test_a_late_uplink_interface_is_waited_for(lab, tmp_path):
    ha, isp = lab["ha"], lab["isp"]
    conf = tmp_path / "denali.conf"
    conf.write_text("[ha]\n    interface = cell0\n    acl_default = allow\n[ra]\n[radio]\n"
                    "[uplink]\n    interface = eth9\n    address = 2001:db8:fe::2/64\n")
    proc = start_denalid(ha, conf, tmp_path)
    lab["procs"].append(proc)
    status = lambda: ha.run(sys.executable, "-c", CONSOLE, cwd=ROOT,  # noqa: E731
                            env={**os.environ, "PYTHONPATH": ROOT}).stdout
    assert "uplink     waiting for eth9: does not exist" in status()
    lab["topo"].link(ha, "eth9", isp, "eth9")  # the USB NIC comes
    wait_for(lambda: "2001:db8:fe::2/64" in addresses(ha, "eth9"), timeout=10,
             what="the address on the late interface")
    wait_for(lambda: "up on eth9 (2001:db8:fe::2/64)" in status(), what="status up")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert "2001:db8:fe::2/64" not in addresses(ha, "eth9")
