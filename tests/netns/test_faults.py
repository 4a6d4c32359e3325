"""The home agent under faults, on the real kernel: a killed daemon, a failing datapath,
a Binding Update without the A bit. Each fault is one a board meets in the field."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from nslib import have_netns, wait_for  # noqa: E402

from ha.lab.topology import CN_ADDRESS, HA_HOME, MN_COA, MN_HOME, SeedLab, run  # noqa: E402

pytestmark = pytest.mark.skipif(have_netns() is not None, reason=str(have_netns()))

PEER = os.path.join(os.path.dirname(__file__), "scapy_peer.py")
SEED_HA_CONF = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "mip6d.ha.conf")


def peer(ns, command, **args):
    r = run([sys.executable, PEER, command, json.dumps(args)], ns, timeout=60)
    return json.loads(r.stdout.strip().splitlines()[-1])


def bu(lab, hoa, seq, lifetime=3600, flags="AH"):
    got = peer(lab.mn, "bu", coa=str(MN_COA), ha=str(HA_HOME), hoa=str(hoa), seq=seq,
               lifetime=lifetime, flags=flags)
    return [p for p in got if p["type"] == "BA"]


def bc(lab):
    return {b["hoa"]: b for b in json.loads(lab.console("bc json"))}


@pytest.fixture
def lab(tmp_path):
    conf = tmp_path / "mip6d.conf"
    shutil.copy(SEED_HA_CONF, conf)
    lab = SeedLab()
    lab.build()
    try:
        lab.conf_path = str(conf)
        lab.log_path = str(tmp_path / "denalid.log")
        lab.start_daemon(lab.conf_path, log_path=lab.log_path)
        lab.move_mn("remote")
        yield lab
    finally:
        lab.teardown()


class TunnelWatch:
    """tcpdump at the care-of address: when tunnelled packets for the home address arrive."""

    def __init__(self, lab):
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", lab.mn, "tcpdump", "-l", "-n", "-tt", "-i", "wlan0",
             "ip6 proto 41"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(0.5)

    def stop(self) -> list[float]:
        self.proc.send_signal(signal.SIGINT)
        out = self.proc.communicate(timeout=10)[0]
        return [float(line.split()[0]) for line in out.splitlines()
                if str(MN_HOME) in line and ">" in line]


def test_killed_daemon_keeps_its_bindings_and_traffic_resumes_without_a_new_bu(lab):
    assert bu(lab, MN_HOME, 100)[0]["status"] == 0
    before = bc(lab)[str(MN_HOME)]
    watch = TunnelWatch(lab)
    pinger = subprocess.Popen(["ip", "netns", "exec", lab.cn, "ping", "-i", "0.05", "-W", "1",
                               str(MN_HOME)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        os.kill(lab.daemon.pid, signal.SIGKILL)  # no teardown, as after the OOM killer
        lab.daemon.wait()
        killed = time.time()
        time.sleep(0.5)  # a supervisor's restart delay
        restarted = time.time()
        lab.start_daemon(lab.conf_path, log_path=lab.log_path + ".2")
        time.sleep(3.0)
    finally:
        pinger.terminate()
        pinger.wait()
        arrivals = watch.stop()
    after = bc(lab)[str(MN_HOME)]
    # the binding came back as it was: same care-of address, sequence and expiry
    assert after["coa"] == before["coa"] == str(MN_COA)
    assert after["seq"] == before["seq"] == 100
    assert abs(after["lifetime"] - before["lifetime"]) <= 10
    resumed = [t for t in arrivals if t > restarted]
    assert resumed, "no tunnelled packet reached the care-of address after the restart"
    print(f"\n[faults] traffic to the home address resumed {resumed[0] - restarted:.2f} s "
          f"after the restart, {resumed[0] - killed:.2f} s after the kill (no new BU)")
    # and the restarted daemon still serves: the next refresh is in sequence
    assert bu(lab, MN_HOME, 101)[0]["status"] == 0


def test_clean_stop_leaves_nothing_to_restore(lab):
    assert bu(lab, MN_HOME, 1)[0]["status"] == 0
    wait_for(lambda: os.path.exists(os.path.join(lab.state_dir, "bindings")),
             what="the binding cache saved")
    assert lab.stop_daemon() == 0
    assert not os.path.exists(os.path.join(lab.state_dir, "bindings"))
    lab.start_daemon(lab.conf_path, log_path=lab.log_path + ".2")
    assert bc(lab) == {}


def test_leftovers_of_a_killed_run_are_cleaned(lab):
    # a proxy entry for a home address nobody restores, as a killed run leaves it
    run(["ip", "-6", "neigh", "add", "proxy", "2001:db8::dead", "dev", "wlan0"], lab.ha)
    os.kill(lab.daemon.pid, signal.SIGKILL)
    lab.daemon.wait()
    lab.start_daemon(lab.conf_path, log_path=lab.log_path + ".2")
    assert "2001:db8::dead" not in run(["ip", "-6", "neigh", "show", "proxy"], lab.ha).stdout


def test_bu_without_the_a_bit_still_gets_a_ba(lab):
    # RFC 6275 10.3.1: "Regardless of the setting of the Acknowledge (A) bit"
    got = bu(lab, MN_HOME, 7, flags="H")
    assert got and got[0]["status"] == 0 and got[0]["seq"] == 7
    assert str(MN_HOME) in bc(lab)


def test_datapath_failure_is_refused_with_130_and_nothing_stays(lab):
    # the tunnel device vanishes under the daemon: every route into it fails (ENODEV)
    run(["ip", "link", "del", "denali0"], lab.ha)
    got = bu(lab, "2001:db8::31", 1)
    assert got and got[0]["status"] == 130
    assert "2001:db8::31" not in bc(lab)
    stats = json.loads(lab.console("stats json"))
    assert stats["registrations rolled back"] >= 1 and stats["BA 130"] >= 1
    # no proxy entry was left for the refused address
    assert "2001:db8::31" not in run(["ip", "-6", "neigh", "show", "proxy"], lab.ha).stdout


def test_daemon_started_before_its_home_interface_serves_once_it_appears(tmp_path):
    conf = tmp_path / "mip6d.conf"
    shutil.copy(SEED_HA_CONF, conf)
    with SeedLab() as lab:
        # a radio driver that is late at boot: no wlan0 yet
        run(["ip", "link", "set", "wlan0", "down"], lab.ha)
        run(["ip", "link", "set", "wlan0", "name", "late0"], lab.ha)
        lab.start_daemon(str(conf), log_path=str(tmp_path / "denalid.log"))
        status = json.loads(lab.console("status json"))
        assert status["services"]["ha"] == "waiting for wlan0: does not exist"
        assert lab.daemon.poll() is None  # waiting, not exiting for the supervisor to loop
        assert "not serving yet" in lab.console("bc")
        run(["ip", "link", "set", "late0", "name", "wlan0"], lab.ha)
        run(["ip", "link", "set", "wlan0", "up"], lab.ha)
        time.sleep(1.0)
        assert json.loads(lab.console("status json"))["services"]["ha"] == \
            "waiting for wlan0: has no global IPv6 address"  # a down link lost it
        run(["ip", "-6", "addr", "replace", f"{HA_HOME}/64", "dev", "wlan0", "nodad"], lab.ha)
        wait_for(lambda: json.loads(lab.console("status json"))["services"]["ha"] == "up",
                 timeout=15, what="the home agent serving on the interface that appeared")
        lab.move_mn("remote")
        assert bu(lab, MN_HOME, 1)[0]["status"] == 0
        log = open(tmp_path / "denalid.log").read()
        assert log.count("waiting for it") <= 2  # said once per reason, not every poll


def test_a_reload_of_a_broken_file_keeps_the_running_config(lab):
    assert bu(lab, MN_HOME, 1)[0]["status"] == 0
    with open(lab.conf_path, "ab") as f:
        f.write(b"\xff\xfe HaMaxBindingLife \xd9\xa3;\n")  # not UTF-8, an Arabic-Indic digit
    lab.daemon.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in open(lab.log_path).read(), what="the refusal logged")
    assert lab.daemon.poll() is None
    assert str(MN_HOME) in bc(lab)
    assert bu(lab, MN_HOME, 2)[0]["status"] == 0  # still serving, with the old rules


def test_concurrent_dad_is_bounded_and_the_refused_retry_later(lab):
    # 100 new home addresses at once: at most 64 DAD probes run, the rest hear 130 at
    # once instead of waiting on a probe that could never start (issue: group limit)
    got = peer(lab.mn, "burst", coa=str(MN_COA), ha=str(HA_HOME), first="2001:db8::1:0",
               count=100, wait=4.0)
    statuses = sorted(got.values())
    assert len(got) == 100, f"{len(got)} BAs for 100 BUs"
    assert statuses.count(0) == 64 and statuses.count(130) == 36, statuses
    assert len(bc(lab)) == 64
    stats = json.loads(lab.console("stats json"))
    assert stats["DAD refused, too many running"] == 36
    # the refused ones, retransmitted once the probes are over, are registered
    again = peer(lab.mn, "burst", coa=str(MN_COA), ha=str(HA_HOME), first="2001:db8::1:0",
                 count=100, seq=2, wait=4.0)
    assert sorted(again.values()).count(0) == 100
    assert len(bc(lab)) == 100
