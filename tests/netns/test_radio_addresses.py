"""A [radio] cell's `address` reaches its interface over rtnetlink, and a restart keeps it.

denalid runs in a namespace whose wlan0 and wlan1 are veth ends (no radio:
the wireless manager reports them, the address step does not care); the
denali.conf has the built-in config's two cells, each with its address. Read back
with `ip -j addr` (iproute2's decoder, not ours): the address, no DAD
(the router's own address on its link), and a second start finds it in place
and replaces it rather than failing.
"""

import json
import os
import re
import signal
import subprocess
import sys

import pytest

from nslib import Topology, have_netns, kill_all, wait_for

from ha.config import model as C

pytestmark = pytest.mark.skipif(have_netns() is not None, reason=str(have_netns()))

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def radio_section(text):
    """The [radio] section of a denali.conf text, up to the next top-level section."""
    rest = text[text.index("[radio]\n"):]
    nxt = re.search(r"^\[\w+\]$", rest[len("[radio]\n"):], re.M)
    return rest if nxt is None else rest[:len("[radio]\n") + nxt.start()]


# the built-in config's two cells (wlan0 2001:db8::/64, wlan1 2001:db8:1::/64); only
# the RA sender beside them
CONF = "[ha]\n    enabled = off\n    vt_port = 7793\n[ra]\n" + radio_section(C.DEFAULT_TEXT)


def global_addresses(ns, dev):
    out = json.loads(ns.run("ip", "-j", "-6", "addr", "show", "dev", dev, "scope",
                            "global").stdout)
    return {f"{a['local']}/{a['prefixlen']}": a for i in out for a in i["addr_info"]
            if "local" in a}


def run_denalid(ns, conf, tmp_path, name):
    log_path = tmp_path / f"{name}.log"
    log = open(log_path, "w")
    proc = ns.popen(sys.executable, "-m", "ha.daemon.main", "-c", str(conf), "-d", "7",
                    stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                    env={**os.environ, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1",
                         "DENALI_STATE_DIR": str(tmp_path / "state")})
    wait_for(lambda: proc.poll() is not None or "ready" in log_path.read_text(),
             timeout=30, what=f"{name}: denalid ready")
    return proc, log_path


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=20)


def test_radio_addresses_set_without_dad_and_kept_across_a_restart(tmp_path):
    conf = tmp_path / "denali.conf"
    conf.write_text(CONF)
    topo = Topology()
    procs = []
    try:
        rtr, peer = topo.host("radA"), topo.host("radP")
        topo.link(rtr, "wlan0", peer, "eth0")
        topo.link(rtr, "wlan1", peer, "eth1")
        rtr.sysctl("net.ipv6.conf.all.accept_dad", "1")  # nodad must come from denalid
        rtr.sysctl("net.ipv6.conf.wlan0.accept_dad", "1")
        first, log1 = run_denalid(rtr, conf, tmp_path, "first")
        procs.append(first)
        assert first.poll() is None, log1.read_text()
        a0, a1 = global_addresses(rtr, "wlan0"), global_addresses(rtr, "wlan1")
        assert "2001:db8::/64" in a0, (a0, log1.read_text()[-3000:])
        assert "2001:db8:1::/64" in a1, (a1, log1.read_text()[-3000:])
        assert a0["2001:db8::/64"].get("nodad") is True, a0
        assert not a0["2001:db8::/64"].get("tentative"), a0
        text = log1.read_text()
        assert "wlan0: address 2001:db8::/64" in text and "wlan1: address 2001:db8:1::/64" in text
        assert stop(first) == 0, log1.read_text()[-3000:]

        # the address is still there (the interface keeps it): a restart replaces it
        assert "2001:db8::/64" in global_addresses(rtr, "wlan0")
        second, log2 = run_denalid(rtr, conf, tmp_path, "second")
        procs.append(second)
        text = log2.read_text()
        assert second.poll() is None, text
        assert "wlan0: address 2001:db8::/64" in text and "cannot add" not in text, text
        assert list(global_addresses(rtr, "wlan0")) == ["2001:db8::/64"]
        assert stop(second) == 0, log2.read_text()[-3000:]
    finally:
        kill_all(procs)
        topo.teardown()
