"""Interop with UMIP's mip6d, a third-party Mobile IPv6 stack, as a real peer.

Both ways round: UMIP as mobile node with denalid as its home agent, and (at
the end, "the mirror") denalid as mobile node with UMIP as home agent.
In the first, UMIP is the mobile node, in a qemu guest on Debian's kernel (it needs
CONFIG_IPV6_MIP6; tests/qemu/umip_peer.py and ../shared/peers/umip), its
tap on the foreign bridge of the seed's lab; denalid is the home agent in
the lab's namespace on this host's kernel, started with the seed's
mip6d.conf and radvd.conf unchanged. The mobile node runs the seed's MN
mip6d.conf with the closing brace the seed's listing lost (UMIP's parser
needs it; ours reads the file as it is) and its NIC renamed to the seed's
wlan0. Every wait polls for a state; nothing is timed.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from ipaddress import IPv6Address, IPv6Network

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from nslib import wait_for  # noqa: E402
from umip_peer import GUEST_IID, UmipGuest, missing  # noqa: E402

from ha.lab.topology import CN_ADDRESS, MN_HOME, SeedLab, run  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data")
COA = f"2001:db8:1::{GUEST_IID}"
HOA = "2001:db8:0:0:0:0:0:beef"  # as UMIP and our console print it
# the guest's NIC takes the seed's interface name before mip6d starts
RENAME = "ip link set eth0 down; ip link set eth0 name wlan0; ip link set wlan0 up\n"
# TCG is slow and the seed's RAs come every 1-10 s: generous bounds, never asserted
PATIENCE = 240


def wait(predicate, what, timeout=PATIENCE, interval=1.0):
    return wait_for(predicate, timeout=timeout, interval=interval, what=what)


def bc(lab):
    return {IPv6Address(b["hoa"]): b for b in json.loads(lab.console("bc json"))}


@pytest.fixture(scope="module")
def umip_mn(tmp_path_factory):
    reason = missing()
    if reason:
        pytest.skip(reason)
    tmp_path = tmp_path_factory.mktemp("umip-mn")
    lab = SeedLab()
    lab.build()
    guest = UmipGuest(lab.sw, f"tu{os.getpid() % 100000}", str(tmp_path / "guest"))
    lab.log_path = str(tmp_path / "denalid.log")
    try:
        # the lab's own mobile node stays off the links: UMIP is the mobile node here
        run(["ip", "addr", "flush", "dev", "wlan0", "scope", "global"], lab.mn)
        run(["ip", "link", "set", "p-mn", "down"], lab.sw)
        lab.start_daemon(os.path.join(DATA, "mip6d.ha.conf"), "-C",
                         os.path.join(DATA, "radvd.seed.conf"), log_path=lab.log_path)
        conf = tmp_path / "mip6d.mn.conf"
        conf.write_text(open(os.path.join(DATA, "mip6d.mn.conf")).read() + "}\n")
        guest.start(str(conf), "br-remote", pre=RENAME)
        lab.guest = guest
        yield lab
    finally:
        guest.stop()
        lab.teardown()
        denalid = open(lab.log_path).read() if os.path.exists(lab.log_path) else ""
        for name, text in (("denalid", denalid), ("UMIP guest", guest.log())):
            sys.stdout.write(f"----- {name}\n{text[-8000:]}\n")


def plug(lab, bridge):
    """The guest's cable to `bridge` in the lab's switch (br-home or br-remote)."""
    run(["ip", "link", "set", lab.guest.tap, "nomaster"], lab.sw)
    run(["ip", "link", "set", lab.guest.tap, "master", bridge], lab.sw)


def registered(lab):
    return bc(lab).get(MN_HOME, {}).get("status") == "registered"


def test_umip_mobile_node_registers_keeps_its_binding_and_tunnels_both_ways(umip_mn):
    lab, guest = umip_mn, umip_mn.guest

    # registration: BA status 0 (UMIP says so), and our binding cache lists it
    wait(lambda: registered(lab), "denalid's binding for the home address")
    assert IPv6Address(bc(lab)[MN_HOME]["coa"]) == IPv6Address(COA)
    wait(lambda: "Got BA from 2001:db8:0:0:0:0:0:0 to home address 2001:db8:0:0:0:0:0:beef "
         f"with coa 2001:db8:1:0:{GUEST_IID} and status 0" in guest.log(), "UMIP to log the BA")
    (bule,) = wait(guest.bul, "UMIP's binding update list")
    assert bule["hoa"] == HOA and bule["coa"] == f"2001:db8:1:0:{GUEST_IID}"
    assert "ack ready" in bule["text"]

    # 30 s on UMIP still holds its home binding: nothing told it that we cannot
    # handle its Home Address option (its MPS follows the BA at once)
    time.sleep(30)
    (bule,) = guest.bul()
    assert bule["hoa"] == HOA and bule["cn"] == "2001:db8:0:0:0:0:0:0"
    assert "HA unable to handle binding" not in guest.log()
    assert "NON_MIP_CN_ENTRY" not in guest.log()

    # a correspondent on the home link reaches the home address through the tunnel
    r = run(["ping", "-6", "-c", "3", "-i", "0.5", "-w", "60", str(MN_HOME)], lab.cn,
            check=False, timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    # and the mobile node reaches it from its home address, reverse-tunnelled
    if shutil.which("tcpdump") is None:
        pytest.fail("needs tcpdump to see the mobile node's source address (setup.sh installs it)")
    sniff = subprocess.Popen(["ip", "netns", "exec", lab.cn, "timeout", "90", "tcpdump",
                              "-lni", "eth0", "-c", "1", f"icmp6 and ip6[40] == 128 and "
                              f"src {MN_HOME}"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while "listening on" not in (line := sniff.stderr.readline()):
        assert line, "tcpdump did not start"
    out = guest.sh(f"ping -c 3 -w 60 -I {MN_HOME} {CN_ADDRESS}")
    assert " 0% packet loss" in out, out
    seen = sniff.communicate(timeout=90)[0]
    assert f"{MN_HOME} > {CN_ADDRESS}" in seen, seen


def test_umip_mobile_node_returning_home_deregisters(umip_mn):
    lab = umip_mn
    wait(lambda: registered(lab), "denalid's binding for the home address")
    plug(lab, "br-home")
    wait(lambda: MN_HOME not in bc(lab), "denalid's binding to go")


def test_umip_mobile_node_at_home_hears_the_ba_and_is_reachable_on_the_home_link(umip_mn):
    # the BA to a home address goes without a type 2 routing header (RFC 6275
    # section 9.5.4): UMIP's kernel drops an RH2 it holds no state for at home
    lab, guest = umip_mn, umip_mn.guest
    if MN_HOME in bc(lab):
        plug(lab, "br-home")
        wait(lambda: MN_HOME not in bc(lab), "denalid's binding to go")
    wait(lambda: guest.bul() == [], "UMIP's binding update list to empty",
         timeout=60)
    r = run(["ping", "-6", "-c", "2", "-i", "0.5", "-w", "30", str(MN_HOME)], lab.cn,
            check=False, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


# ---------------------------------------------------------------- the mirror
# UMIP as the home agent (the seed's HA mip6d.conf, wlan0 = the guest's NIC,
# its static address 2001:db8:: and forwarding from GUEST_PRE) on the home
# bridge; denalid as the mobile node raven (the seed's MN file, unchanged)
# in the lab's MN namespace; the lab's router namespace only routes and runs
# our RA sender with the seed's radvd.conf (H flag on the home link, which is
# how UMIP learns its home prefix).
HA_PRE = RENAME + ("ip addr add 2001:db8::/64 dev wlan0\n"
                   "sysctl -qw net.ipv6.conf.all.forwarding=1\n"
                   "ip -6 route add default via 2001:db8::1\n")
MN_PORT = 7777  # denalid's console in the MN namespace


def mn_bul(lab):
    out = lab.console("bul json", ns=lab.mn, port=MN_PORT, check=False)
    return json.loads(out) if out else None


def umip_bc(guest):
    out = guest.console("bc")
    return out if "mip6d>" in out else None


@pytest.fixture(scope="module")
def umip_ha(tmp_path_factory):
    reason = missing()
    if reason:
        pytest.skip(reason)
    tmp_path = tmp_path_factory.mktemp("umip-ha")
    lab = SeedLab()
    lab.build()
    guest = UmipGuest(lab.sw, f"th{os.getpid() % 100000}", str(tmp_path / "guest"))
    procs = []
    logs = {"radvd": tmp_path / "radvd.log", "denalid (MN)": tmp_path / "mn.log"}
    try:
        # The router keeps 2001:db8::1; 2001:db8:: is UMIP's. A forwarding Linux
        # interface holds the Subnet-Router anycast address prefix:: (RFC 4291
        # section 2.6.1), the seed's home agent address, and would swallow every
        # BU: home-link forwarding off drops it, and packets are still routed
        # between the links (measured on this kernel).
        run(["ip", "addr", "del", "2001:db8::/64", "dev", "wlan0"], lab.ha)
        run(["ip", "addr", "add", "2001:db8::1/64", "dev", "wlan0"], lab.ha)
        run(["sysctl", "-qw", "net.ipv6.conf.wlan0.forwarding=0"], lab.ha)
        for ns in (lab.cn, lab.mn):
            run(["ip", "-6", "route", "replace", "default", "via", "2001:db8::1"], ns)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": ROOT}
        procs.append(subprocess.Popen(
            ["ip", "netns", "exec", lab.ha, sys.executable, "-m", "radvd", "-C",
             os.path.join(DATA, "radvd.seed.conf"), "-n", "-d", "1"],
            stdout=open(logs["radvd"], "w"), stderr=subprocess.STDOUT, env=env, cwd=ROOT))
        conf = tmp_path / "mip6d.ha.conf"
        conf.write_text(open(os.path.join(DATA, "mip6d.ha.conf")).read())  # unchanged
        guest.start(str(conf), "br-home", pre=HA_PRE)
        wait(lambda: umip_bc(guest), "UMIP's console")
        procs.append(subprocess.Popen(
            ["ip", "netns", "exec", lab.mn, sys.executable, "-m", "ha.daemon.main", "-c",
             os.path.join(DATA, "mip6d.mn.conf"), "-d", "7", "--vt-port", str(MN_PORT)],
            stdout=open(logs["denalid (MN)"], "w"), stderr=subprocess.STDOUT, env=env, cwd=ROOT))
        wait(lambda: mn_bul(lab) is not None, "the mobile node's console")
        lab.guest = guest
        yield lab
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        guest.stop()
        lab.teardown()
        for name, path in logs.items():
            text = path.read_text() if path.exists() else ""
            sys.stdout.write(f"----- {name}\n{text[-6000:]}\n")
        sys.stdout.write(f"----- UMIP guest (HA)\n{guest.log()[-8000:]}\n")


def test_denalid_mobile_node_registers_with_umip_home_agent_tunnels_and_deregisters(umip_ha):
    lab, guest = umip_ha, umip_ha.guest
    wait(lambda: mn_bul(lab) == [], "the mobile node at home with an empty list")

    # iwconfig wlan0 essid remote: raven's cable moves, it must notice and register
    lab.move_cable("remote")
    (entry,) = wait(lambda: [e for e in mn_bul(lab) or [] if e["state"] == "registered"],
                    "the mobile node's BUL entry")
    assert IPv6Address(entry["ha"]) == IPv6Address("2001:db8::")
    coa = IPv6Address(entry["coa"])
    assert coa in IPv6Network("2001:db8:1::/64")
    text = wait(lambda: (t := umip_bc(guest)) and "status registered" in t and t,
                "UMIP's binding cache entry")
    assert "hoa 2001:db8:0:0:0:0:0:beef" in text and "flags AH--" in text
    assert f"coa {_mip6d(coa)}" in text

    # the correspondent reaches raven's home address through UMIP's tunnel
    r = run(["ping", "-6", "-c", "3", "-i", "0.5", "-w", "60", str(MN_HOME)], lab.cn,
            check=False, timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    # and raven reaches it from its home address, reverse-tunnelled
    sniff = subprocess.Popen(["ip", "netns", "exec", lab.cn, "timeout", "90", "tcpdump",
                              "-lni", "eth0", "-c", "1",
                              f"icmp6 and ip6[40] == 128 and src {MN_HOME}"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while "listening on" not in (line := sniff.stderr.readline()):
        assert line, "tcpdump did not start"
    r = run(["ping", "-6", "-c", "3", "-i", "0.5", "-w", "60", str(CN_ADDRESS)], lab.mn,
            check=False, timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    seen = sniff.communicate(timeout=90)[0]
    assert f"{MN_HOME} > {CN_ADDRESS}" in seen, seen

    # back home: raven deregisters, both lists empty, the home link reaches it
    lab.move_cable("home")
    wait(lambda: mn_bul(lab) == [], "the mobile node's BUL to empty")
    wait(lambda: (t := umip_bc(guest)) is not None and "hoa" not in t, "UMIP's cache to empty")
    r = run(["ping", "-6", "-c", "2", "-i", "0.5", "-w", "60", str(MN_HOME)], lab.cn,
            check=False, timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr


def _mip6d(address):
    """An address as mip6d prints it: eight groups, no zero compression."""
    return ":".join(f"{int(g, 16):x}" for g in address.exploded.split(":"))
