"""RFC 4285 in namespaces: our mobile node and our home agent sharing a key.

The seed's two mip6d.conf files, each with denali's DenaliMnHaKey line for
the mobile node's home address (the MN's file with the HA's key, or with a
wrong one). The hijack of issue 12 is sent by scapy (tests/netns/scapy_peer.py)
from the correspondent's namespace, a third host. Replayed, stale and
unstamped BUs are scapy's too, signed in this file with Python's hmac.
Waits poll for states and never time anything.
"""

import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from nslib import have_netns, wait_for  # noqa: E402
from tests.netns.test_mobile_node import RADVD_CONF, bc, mn_command, mn_console, mn_json  # noqa: E402

from ha.lab.topology import CN_ADDRESS, HA_HOME, MN_COA, MN_HOME, SeedLab, run  # noqa: E402

pytestmark = pytest.mark.skipif(have_netns() is not None, reason=str(have_netns()))

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data")
PEER = os.path.join(os.path.dirname(__file__), "scapy_peer.py")
KEY = "6a1c0e5d9b7f33a1c4e2d8f07b5a9c11"
SPI = 4242
THIRD_PARTY = "2001:db8:1::dead"


def key_line(key):
    return f'DenaliMnHaKey {MN_HOME} {SPI} "{key}";\n'


def start_lab(tmp_path, mn_key):
    lab = SeedLab()
    lab.build()
    lab.procs = []
    ha_conf = tmp_path / "mip6d.ha.conf"
    ha_conf.write_text(open(os.path.join(DATA, "mip6d.ha.conf")).read() + "\n" + key_line(KEY))
    # the seed's MN file leaves its MnHomeLink block open at the end: the line goes first
    mn_conf = tmp_path / "mip6d.mn.conf"
    mn_conf.write_text(key_line(mn_key) + open(os.path.join(DATA, "mip6d.mn.conf")).read())
    os.chmod(ha_conf, 0o600)
    os.chmod(mn_conf, 0o600)
    lab.start_daemon(str(ha_conf), log_path=str(tmp_path / "ha.log"))
    radvd = tmp_path / "radvd.conf"
    radvd.write_text(RADVD_CONF)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": ROOT}
    for ns, cmd, log in (
            (lab.ha, [sys.executable, "-m", "radvd", "-C", str(radvd), "-n", "-d", "1"],
             "radvd.log"),
            (lab.mn, mn_command(str(mn_conf)), "mn.log")):
        out = open(tmp_path / log, "w")
        lab.procs.append(subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=out,
                                          stderr=subprocess.STDOUT, env=env, cwd=ROOT))
    wait_for(lambda: mn_console(lab, "help"), 20, 0.2, "the mobile node's console")
    wait_for(lambda: (mn_json(lab, "md json") or {}).get("location") == "home", 10, 0.2,
             "the MN to find itself at home")
    return lab


def stop_lab(lab, tmp_path):
    for p in lab.procs:
        p.terminate()
    for p in lab.procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
    lab.teardown()
    for log in ("ha.log", "radvd.log", "mn.log"):
        path = tmp_path / log
        if path.exists():
            sys.stdout.write(f"----- {log}\n{path.read_text()[-6000:]}")


@pytest.fixture
def lab_right_key(tmp_path):
    lab = start_lab(tmp_path, KEY)
    try:
        yield lab
    finally:
        stop_lab(lab, tmp_path)


@pytest.fixture
def lab_wrong_key(tmp_path):
    lab = start_lab(tmp_path, "00" * 16)
    try:
        yield lab
    finally:
        stop_lab(lab, tmp_path)


def ha_stats(lab):
    return json.loads(lab.console("stats json"))


def hijack_bu(lab, seq, lifetime=3600, **kw):
    """A BU for the MN's home address from the correspondent, scapy's, unsigned."""
    r = run([sys.executable, PEER, "bu", json.dumps(dict(
        coa=str(CN_ADDRESS), ha=str(HA_HOME), hoa=str(MN_HOME), seq=seq, lifetime=lifetime,
        flags="AH", **kw))], lab.cn, timeout=60)
    return [p for p in json.loads(r.stdout.strip().splitlines()[-1]) if p["type"] == "BA"]


def test_mobile_node_registers_with_its_key_and_the_hijack_fails(lab_right_key):
    lab = lab_right_key
    lab.move_cable("remote")
    (binding,) = wait_for(lambda: [b for b in bc(lab).values() if b["status"] == "registered"
                                   and b["hoa"] == str(MN_HOME)], 20, 0.2, "the HA's binding")
    coa = binding["coa"]
    assert ha_stats(lab)["BU authenticated"] >= 1
    wait_for(lambda: [e for e in mn_json(lab, "bul json") or [] if e["state"] == "registered"],
             10, 0.2, "the MN's BUL entry")
    before = ha_stats(lab)["BU authentication failed"] if "BU authentication failed" in \
        ha_stats(lab) else 0

    # issue 12's three packets: out of window (would be 135 with our sequence) ...
    (ba,) = hijack_bu(lab, 1)
    assert ba["status"] == 146  # MIPV6-AUTH-FAIL, and no sequence number given away
    assert ba["seq"] == 1
    # ... that number + 1 with an Alternate CoA at a third party ...
    (ba,) = hijack_bu(lab, 2, alt_coa=THIRD_PARTY)
    assert ba["status"] == 146
    # ... and a deregistration
    (ba,) = hijack_bu(lab, 3, lifetime=0)
    assert ba["status"] == 146
    assert ha_stats(lab)["BU authentication failed"] == before + 3

    # the real binding stays, and so does the traffic to the home address
    b = bc(lab)[str(MN_HOME)]
    assert b["status"] == "registered" and b["coa"] == coa
    r = run(["ping", "-6", "-c", "2", "-i", "0.2", "-w", "10", str(MN_HOME)], lab.cn,
            check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert mn_json(lab, "stats json")["ba_auth_failed"] == 0


def test_mobile_node_with_a_wrong_key_gets_no_binding(lab_wrong_key):
    lab = lab_wrong_key
    lab.move_cable("remote")
    wait_for(lambda: ha_stats(lab).get("BU authentication failed", 0) >= 2, 20, 0.2,
             "the HA to refuse the MN's BUs")
    assert ha_stats(lab).get("BA 146", 0) >= 2
    # the 146 is signed with the HA's key, which the MN does not have: it cannot
    # verify it and keeps trying; either way nothing is bound
    assert mn_json(lab, "stats json")["ba_auth_failed"] >= 1
    assert str(MN_HOME) not in bc(lab)
    assert all(e["state"] != "registered" for e in mn_json(lab, "bul json") or [])


# ----------------------------------------------- scapy's BUs, signed in this test

SCAPY_HOA = "2001:db8::a5"
NTP_OFFSET = 2208988800  # 1900 -> 1970, RFC 4285's NTP-format timestamps


@pytest.fixture
def ha_lab(tmp_path):
    """Our home agent alone; the mobile node is scapy at MN_COA."""
    lab = SeedLab()
    lab.build()
    lab.procs = []
    try:
        conf = tmp_path / "mip6d.ha.conf"
        conf.write_text(open(os.path.join(DATA, "mip6d.ha.conf")).read() + "\n"
                        + f'DenaliMnHaKey {SCAPY_HOA} {SPI} "{KEY}";\n')
        lab.start_daemon(str(conf), log_path=str(tmp_path / "ha.log"))
        lab.move_mn("remote")
        yield lab
    finally:
        stop_lab(lab, tmp_path)


def scapy_bu(seq, stamp, *, sign=True):
    """A BU as scapy lays it out, the authenticator computed here from RFC 4285
    section 5.2 with Python's hmac (not denali's code). Returns the bytes
    after the IPv6 header."""
    import hashlib
    import hmac

    from scapy.layers.inet6 import (HAO, IPv6, IPv6ExtHdrDestOpt, MIP6MH_BU, MIP6OptMsgAuth,
                                    MIP6OptReplayProtection)
    opts = []
    if stamp is not None:
        opts.append(MIP6OptReplayProtection(timestamp=int((stamp + NTP_OFFSET) * 2**32)))
    if sign:
        opts.append(MIP6OptMsgAuth(subtype=1, mspi=SPI, authdata=b"\0" * 12))
    pkt = (IPv6(src=str(MN_COA), dst=str(HA_HOME))
           / IPv6ExtHdrDestOpt(options=[HAO(hoa=SCAPY_HOA)])
           / MIP6MH_BU(seq=seq, flags="AH", mhtime=900, options=opts))
    if sign:
        mh = bytes(pkt[MIP6MH_BU])
        at = mh.index(bytes((9, 17, 1)) + SPI.to_bytes(4, "big"))
        data = mh[:4] + b"\0\0" + mh[6:at + 7]  # up to the SPI, checksum zero
        pkt[MIP6OptMsgAuth].authdata = hmac.new(
            bytes.fromhex(KEY), MN_COA.packed + HA_HOME.packed + data, hashlib.sha1).digest()[:12]
    return bytes(pkt)[40:]


def send_raw(lab, payload):
    r = run([sys.executable, PEER, "raw", json.dumps(dict(
        src=str(MN_COA), dst=str(HA_HOME), nh=60, payload=payload.hex(), sniff=True,
        wait=1.5))], lab.mn, timeout=60)
    return [p for p in json.loads(r.stdout.strip().splitlines()[-1]) if p["type"] == "BA"]


def test_replayed_stale_or_unstamped_bus_are_refused_with_145(ha_lab):
    import time

    lab = ha_lab
    now = time.time()  # a timestamp, not a wait: the HA's wall clock is this machine's
    good = scapy_bu(100, now)
    (ba,) = send_raw(lab, good)
    assert (ba["status"], ba["seq"]) == (0, 100)
    wait_for(lambda: bc(lab).get(SCAPY_HOA, {}).get("status") == "registered", 10, 0.2,
             "the binding")
    # the very same packet again: the timestamp is not newer than the last one
    (ba,) = send_raw(lab, good)
    assert ba["status"] == 145 and ba["timestamp"]  # MIPV6-MESG-ID-REQD, the HA's clock
    assert abs(ba["timestamp"] / 2**32 - NTP_OFFSET - time.time()) < 60
    # an hour old, then no replay option at all
    (ba,) = send_raw(lab, scapy_bu(101, now - 3600))
    assert ba["status"] == 145
    (ba,) = send_raw(lab, scapy_bu(102, None))
    assert ba["status"] == 145
    # and no authentication option: 146
    (ba,) = send_raw(lab, scapy_bu(103, time.time(), sign=False))
    assert ba["status"] == 146
    s = ha_stats(lab)
    assert s["BU replay check failed"] == 3 and s["BU authentication failed"] == 1
    assert bc(lab)[SCAPY_HOA]["status"] == "registered"
    # a fresh signed BU still works
    (ba,) = send_raw(lab, scapy_bu(104, time.time()))
    assert ba["status"] == 0
