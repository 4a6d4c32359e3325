"""proxy_nd = daemon: the home agent answers Neighbor Solicitations itself.

Same lab as the seed; the daemon runs the project's config with the switch
on. What a correspondent on the home link notices must not change (it
resolves the away home address to the home agent and reaches it), while the
kernel holds no proxy entry at all.
"""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from nslib import have_netns, wait_for  # noqa: E402

from ha.config.model import DEFAULT_TEXT  # noqa: E402
from ha.lab.topology import HA_HOME, MN_COA, SeedLab, run  # noqa: E402

pytestmark = pytest.mark.skipif(have_netns() is not None, reason=str(have_netns()))

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def register(lab, hoa, lifetime=3600, seq=1):
    r = run([sys.executable, "-m", "ha.lab.bu_probe", "--coa", str(MN_COA), "--ha", str(HA_HOME),
             "--hoa", hoa, "--seq", str(seq), "--lifetime", str(lifetime), "--json"], lab.mn,
            cwd=ROOT)
    return json.loads(r.stdout)["status"]


@pytest.fixture
def lab(tmp_path):
    conf = tmp_path / "denali.conf"
    # the built-in config is closed (acl_default = deny): allow the home addresses used here
    conf.write_text(DEFAULT_TEXT.replace("[ha]\n", "[ha]\n    proxy_nd = daemon\n", 1).replace(
        "    acl_default = deny\n", "    acl_default = deny\n    [[acl]]\n"
        "        2001:db8::e1 = allow\n        2001:db8::e2 = allow\n", 1))
    with SeedLab() as lab:
        lab.start_daemon(str(conf), log_path=str(tmp_path / "denalid.log"))
        lab.move_mn("remote")
        yield lab


def test_correspondent_resolves_the_home_address_with_no_kernel_proxy_entry(lab):
    hoa = "2001:db8::e1"
    assert register(lab, hoa) == 0
    assert run(["ip", "-6", "neigh", "show", "proxy"], lab.ha).stdout.strip() == ""
    assert run(["sysctl", "-n", "net.ipv6.conf.wlan0.proxy_ndp"], lab.ha).stdout.strip() == "0"
    # forget what the unsolicited NAs taught, so the correspondent has to ask
    run(["ip", "-6", "neigh", "flush", "dev", "eth0"], lab.cn)
    run(["ping", "-c", "1", "-W", "1", hoa], lab.cn, check=False)
    ha_mac = run(["cat", "/sys/class/net/wlan0/address"], lab.ha).stdout.strip()
    wait_for(lambda: ha_mac in run(["ip", "-6", "neigh", "show", hoa], lab.cn).stdout,
             what="the correspondent to learn the home agent's MAC for the home address")
    stats = json.loads(lab.console("stats json"))
    assert stats["datapath ns_answered"] >= 1
    assert stats["datapath tunnelled_packets"] >= 1


def test_no_answer_once_the_binding_is_gone(lab):
    hoa = "2001:db8::e2"
    assert register(lab, hoa) == 0
    assert register(lab, hoa, lifetime=0, seq=2) == 0
    before = json.loads(lab.console("stats json"))["datapath ns_answered"]
    run(["ip", "-6", "neigh", "flush", "dev", "eth0"], lab.cn)
    run(["ping", "-c", "1", "-W", "2", hoa], lab.cn, check=False)
    neigh = run(["ip", "-6", "neigh", "show", hoa], lab.cn).stdout
    assert "lladdr" not in neigh, neigh
    assert json.loads(lab.console("stats json"))["datapath ns_answered"] == before
