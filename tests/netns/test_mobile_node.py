"""The seed's whole scenario in namespaces, our code at both ends.

denalid as the home agent (tests/data/mip6d.ha.conf, the seed's file) and
our RA sender (python -m radvd) in the HA namespace, serving the home link
wlan0 (2001:db8::/64, H flag) and the foreign link wlan1 (2001:db8:1::/64)
with short intervals and the Advertisement Interval option; our mobile
node (tests/data/mip6d.mn.conf, the seed's raven) in the MN namespace.

Movement is the seed's `iwconfig wlan0 essid remote`: only the MN's cable
moves between bridges. Nothing readdresses the mobile node: it must notice
the new router, let the kernel's SLAAC make its care-of address, register,
and carry the correspondent's ping through the tunnel, then deregister when
the cable goes back. Waits poll for states and never time anything.
"""

import json
import os
import shutil
import subprocess
import sys
from ipaddress import IPv6Address, IPv6Network

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from nslib import have_netns, wait_for  # noqa: E402

from ha.lab.topology import CN_ADDRESS, MN_HOME, SeedLab, run  # noqa: E402

pytestmark = pytest.mark.skipif(have_netns() is not None, reason=str(have_netns()))

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data")
FOREIGN = IPv6Network("2001:db8:1::/64")
MN_PORT = 7777  # the MN's console, in its own namespace

RADVD_CONF = """\
interface wlan0 {
    AdvSendAdvert on; AdvIntervalOpt on; AdvHomeAgentFlag on;
    MaxRtrAdvInterval 1.5; MinRtrAdvInterval 0.5; MinDelayBetweenRAs 0.5;
    prefix 2001:db8::/64 { AdvOnLink on; AdvAutonomous on; AdvRouterAddr on; };
};
interface wlan1 {
    AdvSendAdvert on; AdvIntervalOpt on; AdvHomeAgentFlag off;
    MaxRtrAdvInterval 1.5; MinRtrAdvInterval 0.5; MinDelayBetweenRAs 0.5;
    prefix 2001:db8:1::/64 { AdvOnLink on; AdvAutonomous on; AdvRouterAddr on; };
};
"""


def mn_console(lab, line):
    code = ("import sys; from ha.daemon.console_client import request; "
            "print(chr(10).join(request(sys.argv[1], port=int(sys.argv[2]))))")
    r = run([sys.executable, "-c", code, line, str(MN_PORT)], lab.mn, check=False)
    return r.stdout if r.returncode == 0 else None


def mn_json(lab, line):
    out = mn_console(lab, line)
    return json.loads(out) if out else None


def bc(lab):
    return {b["hoa"]: b for b in json.loads(lab.console("bc json"))}


def mn_command(config):
    """raven runs the same daemon as denali, in mobile-node mode."""
    return [sys.executable, "-m", "ha.daemon.main", "-c", config, "-d", "7", "--vt-port", str(MN_PORT)]


@pytest.fixture
def lab(tmp_path):
    lab = SeedLab()
    lab.build()
    procs = []
    try:
        lab.start_daemon(os.path.join(DATA, "mip6d.ha.conf"), log_path=str(tmp_path / "ha.log"))
        conf = tmp_path / "radvd.conf"
        conf.write_text(RADVD_CONF)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": ROOT}
        for ns, cmd, log in (
                (lab.ha, [sys.executable, "-m", "radvd", "-C", str(conf), "-n", "-d", "1"],
                 "radvd.log"),
                (lab.mn, mn_command(os.path.join(DATA, "mip6d.mn.conf")), "mn.log")):
            out = open(tmp_path / log, "w")
            procs.append(subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=out,
                                          stderr=subprocess.STDOUT, env=env, cwd=ROOT))
        lab.procs = procs
        wait_for(lambda: mn_console(lab, "help"), 20, 0.2, "the mobile node's console")
        yield lab
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        lab.teardown()
        for log in ("ha.log", "radvd.log", "mn.log"):
            path = tmp_path / log
            if path.exists():
                sys.stdout.write(f"----- {log}\n{path.read_text()[-6000:]}")


def test_seed_scenario_move_register_tunnel_return_home(lab):
    # at home: the home router heard, no binding anywhere
    wait_for(lambda: (mn_json(lab, "md json") or {}).get("location") == "home", 10, 0.2,
             "the MN to find itself at home")
    assert mn_json(lab, "bul json") == []
    assert bc(lab) == {}

    # iwconfig wlan0 essid remote
    lab.move_cable("remote")
    binding = wait_for(lambda: [b for b in bc(lab).values() if b["status"] == "registered"
                                and b["hoa"] == str(MN_HOME)], 20, 0.2, "the HA's binding")[0]
    coa = IPv6Address(binding["coa"])
    assert coa in FOREIGN and coa != IPv6Address("2001:db8:1::100")  # SLAAC's, not the lab's
    assert binding["status"] == "registered" and binding["flags"].startswith("AH")
    (entry,) = wait_for(lambda: [e for e in mn_json(lab, "bul json") or []
                                 if e["state"] == "registered"], 10, 0.2, "the MN's BUL entry")
    assert entry["coa"] == str(coa) and entry["ha"] == "2001:db8::" and entry["ack"] == "ready"
    text = mn_console(lab, "bul")
    assert "Home address    2001:db8:0:0:0:0:0:beef" in text and "CN address      2001:db8:0:" in text
    addrs = run(["ip", "-6", "addr", "show", "dev", "wlan0"], lab.mn).stdout
    assert "2001:db8::beef" not in addrs  # the home address left the foreign link
    assert str(coa) in addrs and "2001:db8::" not in addrs.replace("2001:db8::beef", "")
    # the seed's ifconfig ip6tnl1 / route -A inet6 after moving
    assert "2001:db8::beef/128" in run(["ip", "-6", "addr", "show", "dev", "ip6tnl1"],
                                       lab.mn).stdout
    assert "metric 128" in run(["ip", "-6", "route", "show", "default", "dev", "ip6tnl1"],
                               lab.mn).stdout
    # the home address's own traffic goes to the tunnel's table (netlink, no `ip`)
    assert "from 2001:db8::beef lookup 6276" in run(["ip", "-6", "rule", "show"], lab.mn).stdout
    assert "default dev ip6tnl1" in run(["ip", "-6", "route", "show", "table", "6276"],
                                        lab.mn).stdout

    # the correspondent reaches the home address through the tunnel, both ways
    r = run(["ping", "-6", "-c", "3", "-i", "0.2", "-w", "10", str(MN_HOME)], lab.cn,
            check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    mn_stats = mn_json(lab, "stats json")
    assert mn_stats["decapsulated_packets"] >= 3 and mn_stats["tunnelled_packets"] >= 3
    sniff = None
    if shutil.which("tcpdump"):
        sniff = subprocess.Popen(["ip", "netns", "exec", lab.cn, "timeout", "15", "tcpdump",
                                  "-lni", "eth0", "-c", "1", "icmp6 and ip6[40] == 128"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while "listening on" not in (line := sniff.stderr.readline()):
            assert line, "tcpdump did not start"
    # and the mobile node reaches the correspondent from its home address (the seed's ping6)
    r = run(["ping", "-6", "-c", "2", "-i", "0.2", "-w", "10", str(CN_ADDRESS)], lab.mn,
            check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    if sniff is not None:  # the request reached the correspondent from the home address
        line = sniff.communicate(timeout=15)[0]
        assert f"{MN_HOME} > {CN_ADDRESS}" in line, line
    ha_stats = json.loads(lab.console("stats json"))
    assert ha_stats["datapath tunnelled_packets"] >= 3
    assert ha_stats["datapath decapsulated_packets"] >= 3

    # back home: deregistration, the binding goes, the home address is on the link again
    lab.move_cable("home")
    wait_for(lambda: bc(lab) == {}, 20, 0.2, "the HA's binding to go")
    wait_for(lambda: mn_json(lab, "bul json") == [], 10, 0.2, "the MN's BUL to empty")
    assert mn_json(lab, "md json")["location"] == "home"
    addrs = run(["ip", "-6", "addr", "show", "dev", "wlan0"], lab.mn).stdout
    assert "2001:db8::beef/64" in addrs
    r = run(["ping", "-6", "-c", "2", "-i", "0.2", "-w", "10", str(MN_HOME)], lab.cn,
            check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2001:db8::beef" not in run(["ip", "-6", "addr", "show", "dev", "ip6tnl1"],
                                       lab.mn).stdout
    assert "2001:db8::beef" not in run(["ip", "-6", "rule", "show"], lab.mn).stdout
    assert "metric 128" not in run(["ip", "-6", "route", "show", "default"], lab.mn).stdout
    assert mn_json(lab, "stats json")["netlink_errors"] == 0
