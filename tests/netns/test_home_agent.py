"""denalid as the seed's home agent, on the real kernel, checked by scapy.

One lab (the seed's topology in namespaces) and one daemon, started with the
seed's mip6d.conf unchanged, serve the tests of this module; each test uses
its own home address so that the order does not matter. The mobile node
and its packets are scapy's (tests/netns/scapy_peer.py), not our codec.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from ipaddress import IPv6Address

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from nslib import have_netns, wait_for  # noqa: E402

from ha.lab.topology import CN_ADDRESS, HA_HOME, MN_COA, MN_HOME, SeedLab, run  # noqa: E402

pytestmark = pytest.mark.skipif(have_netns() is not None, reason=str(have_netns()))

PEER = os.path.join(os.path.dirname(__file__), "scapy_peer.py")
SEED_HA_CONF = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "mip6d.ha.conf")
ANYCAST = "2001:db8::fdff:ffff:ffff:fffe"


def peer(lab, ns, command, **args):
    r = run([sys.executable, PEER, command, json.dumps(args)], ns, timeout=60)
    return json.loads(r.stdout.strip().splitlines()[-1])


def bu(lab, hoa, seq, lifetime=3600, flags="AH", coa=str(MN_COA), **kw):
    got = peer(lab, lab.mn, "bu", coa=coa, ha=str(HA_HOME), hoa=str(hoa), seq=seq,
               lifetime=lifetime, flags=flags, **kw)
    return [p for p in got if p["type"] == "BA"]


def start_sniff(ns, filt, seconds=3):
    """A scapy capture in `ns`, running when this returns; finish() reads it."""
    proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, PEER, "sniff",
                             json.dumps({"filter": filt, "seconds": seconds})],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def finish(proc):
    return json.loads(proc.communicate(timeout=30)[0].strip().splitlines()[-1])


def stats(lab):
    return json.loads(lab.console("stats json"))


def bc(lab):
    return {b["hoa"]: b for b in json.loads(lab.console("bc json"))}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ha")
    conf = tmp / "mip6d.conf"
    shutil.copy(SEED_HA_CONF, conf)  # the seed's file, unchanged
    lab = SeedLab()
    lab.build()
    try:
        lab.conf_path = str(conf)
        lab.log_path = str(tmp / "denalid.log")
        lab.start_daemon(str(conf), log_path=lab.log_path)
        lab.move_mn("remote")
        for extra in ("2001:db8:1::200", "2001:db8:1::201", "2001:db8:1::202"):
            run(["ip", "addr", "add", f"{extra}/64", "dev", "wlan0", "nodad"], lab.mn)
        yield lab
    finally:
        lab.teardown()
        if os.path.exists(lab.log_path):
            sys.stderr.write(open(lab.log_path).read()[-4000:])


def test_seed_registration_is_acknowledged_through_a_type_2_routing_header(lab):
    (ba,) = bu(lab, MN_HOME, 54814, lifetime=262140)
    assert ba["status"] == 0
    assert ba["seq"] == 54814
    assert ba["lifetime"] == 262140
    assert ba["src"] == str(HA_HOME) and ba["dst"] == str(MN_COA)
    assert ba["rh_type"] == 2 and ba["rh2"] == str(MN_HOME)
    assert ba["checksum_ok"], "scapy disagrees with our MH checksum"
    text = lab.console("bc")
    assert "hoa 2001:db8:0:0:0:0:0:beef status registered" in text
    assert " coa 2001:db8:1:0:0:0:0:100 flags AH--" in text
    assert " local 2001:db8:0:0:0:0:0:0" in text


def test_refresh_keeps_the_binding_without_dad(lab):
    hoa = "2001:db8::10"
    assert bu(lab, hoa, 100)[0]["status"] == 0
    dad_before = stats(lab).get("DAD started", 0)
    (ba,) = bu(lab, hoa, 101, lifetime=7200)
    assert ba["status"] == 0 and ba["seq"] == 101 and ba["lifetime"] == 7200
    assert stats(lab).get("DAD started", 0) == dad_before
    assert bc(lab)[hoa]["granted"] == 7200


def test_old_sequence_is_refused_with_135_and_the_last_accepted_sequence(lab):
    hoa = "2001:db8::11"
    assert bu(lab, hoa, 500)[0]["status"] == 0
    (ba,) = bu(lab, hoa, 499)
    assert ba["status"] == 135
    assert ba["seq"] == 500


def test_home_address_off_the_home_prefix_is_refused_with_132(lab):
    (ba,) = bu(lab, "2001:db8:5::1", 1)
    assert ba["status"] == 132
    assert "2001:db8:5::1" not in bc(lab)


def test_changing_the_registration_type_is_refused_with_139(lab):
    hoa = "2001:db8::12"
    assert bu(lab, hoa, 7)[0]["status"] == 0
    (ba,) = bu(lab, hoa, 8, flags="A")
    assert ba["status"] == 139


def test_deregistering_an_unknown_binding_is_refused_with_133(lab):
    (ba,) = bu(lab, "2001:db8::13", 1, lifetime=0)
    assert ba["status"] == 133


def test_dad_collision_with_a_host_on_the_home_link_is_refused_with_134(lab):
    (ba,) = bu(lab, str(CN_ADDRESS), 1)
    assert ba["status"] == 134
    assert str(CN_ADDRESS) not in bc(lab)


def test_retransmission_during_dad_gets_one_ba_for_the_latest_sequence(lab):
    # a real mobile node retransmits with a new sequence while DAD runs (about 1 s)
    bas = bu(lab, "2001:db8::21", 40, retransmit=[41, 42], gap=0.25, wait=2.5)
    assert [(b["status"], b["seq"]) for b in bas] == [(0, 42)]
    assert bc(lab)["2001:db8::21"]["seq"] == 42


def test_console_is_not_reachable_from_other_addresses(lab):
    code = ("import socket, sys\n"
            "try:\n"
            "    socket.create_connection((sys.argv[1], 7777), timeout=2).close()\n"
            "    print('open')\n"
            "except OSError as e:\n"
            "    print('refused', e)\n")
    for where, addr in ((lab.cn, str(HA_HOME)), (lab.ha, str(HA_HOME))):
        out = run([sys.executable, "-c", code, addr], where).stdout
        assert out.startswith("refused"), (where, out)
    assert lab.console("help") is not None  # while loopback is served


def test_tshark_decodes_the_registration(lab):
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (setup.sh installs it)")
    cap = subprocess.Popen(
        ["ip", "netns", "exec", lab.mn, "tshark", "-l", "-i", "wlan0", "-a", "duration:6",
         "-f", "ip6 and (ip6[6] == 60 or ip6[6] == 43)", "-Y", "mip6.mhtype",
         "-T", "fields", "-e", "mip6.mhtype", "-e", "mip6.bu.seqnr", "-e", "mip6.ba.seqnr",
         "-e", "mip6.ba.status", "-e", "ipv6.routing.type", "-e", "_ws.expert"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while "Capturing on" not in (line := cap.stderr.readline()):
        assert line, "tshark did not start"
    run([sys.executable, "-m", "ha.lab.bu_probe", "--coa", str(MN_COA), "--ha", str(HA_HOME),
         "--hoa", "2001:db8::22", "--seq", "777"], lab.mn)
    rows = [line.split("\t") for line in cap.communicate(timeout=30)[0].splitlines()]
    bu_rows = [r for r in rows if r[0] == "5"]
    ba_rows = [r for r in rows if r[0] == "6"]
    assert bu_rows and bu_rows[0][1] == "777", rows
    assert ba_rows and ba_rows[0][2] == "777" and ba_rows[0][3] == "0", rows
    assert ba_rows[0][4] == "2", "the BA does not carry a type 2 routing header"
    assert all(not r[5] for r in bu_rows + ba_rows), f"tshark flagged: {rows}"


def test_deregistration_removes_binding_and_proxy_entry(lab):
    hoa = "2001:db8::14"
    assert bu(lab, hoa, 1)[0]["status"] == 0
    proxies = run(["ip", "-6", "neigh", "show", "proxy"], lab.ha).stdout
    assert hoa in proxies
    (ba,) = bu(lab, hoa, 2, lifetime=0)
    assert ba["status"] == 0 and ba["lifetime"] == 0
    assert hoa not in bc(lab)
    wait_for(lambda: hoa not in run(["ip", "-6", "neigh", "show", "proxy"], lab.ha).stdout,
             what="proxy entry removed")


def test_binding_expires_at_its_granted_lifetime(lab):
    hoa = "2001:db8::15"
    (ba,) = bu(lab, hoa, 1, lifetime=4)
    assert ba["status"] == 0 and ba["lifetime"] == 4
    assert hoa in bc(lab)
    wait_for(lambda: hoa not in bc(lab), timeout=10, what="binding expiry")
    wait_for(lambda: hoa not in run(["ip", "-6", "neigh", "show", "proxy"], lab.ha).stdout,
             what="proxy entry removed at expiry")
    assert stats(lab)["bindings expired"] >= 1


def test_correspondent_reaches_the_away_home_address_through_the_tunnel(lab):
    hoa = str(MN_HOME)
    assert bu(lab, hoa, 60000, lifetime=3600)[0]["status"] == 0
    sniff = start_sniff(lab.mn, "ip6 and ip6[6] == 41")
    run(["ping", "-c", "3", "-i", "0.2", "-W", "1", hoa], lab.cn, check=False)
    got = finish(sniff)
    tunnelled = [p for p in got if p.get("inner_dst") == hoa]
    assert tunnelled, f"no tunnelled packet reached the care-of address: {got}"
    assert tunnelled[0]["src"] == str(HA_HOME) and tunnelled[0]["dst"] == str(MN_COA)
    assert tunnelled[0]["inner_src"] == str(CN_ADDRESS)
    # proxy ND: the correspondent resolved the home address to the home agent
    ha_mac = run(["cat", "/sys/class/net/wlan0/address"], lab.ha).stdout.strip()
    neigh = run(["ip", "-6", "neigh", "show", hoa], lab.cn).stdout
    assert ha_mac in neigh


def test_reverse_tunnel_accepts_only_the_registered_care_of_address(lab):
    hoa = "2001:db8::16"
    assert bu(lab, hoa, 1)[0]["status"] == 0
    sniff = start_sniff(lab.cn, "icmp6 and ip6[40] == 128")
    before = stats(lab).get("datapath dropped_bad_source", 0)
    peer(lab, lab.mn, "tunnelled", outer_src=str(MN_COA), ha=str(HA_HOME), hoa=hoa,
         cn=str(CN_ADDRESS), id=1)
    peer(lab, lab.mn, "tunnelled", outer_src="2001:db8:1::201", ha=str(HA_HOME), hoa=hoa,
         cn=str(CN_ADDRESS), id=2)
    got = finish(sniff)
    assert any(p["src"] == hoa for p in got), "the reverse-tunnelled packet did not arrive"
    assert len([p for p in got if p["src"] == hoa]) == 1, "the spoofed one got through"
    assert stats(lab)["datapath dropped_bad_source"] == before + 1


def test_dhaad_request_to_the_anycast_address_lists_this_home_agent(lab):
    got = peer(lab, lab.mn, "dhaad", src=str(MN_COA), anycast=ANYCAST, id=4242)
    assert got, "no DHAAD reply"
    assert got[0]["id"] == 4242
    assert str(HA_HOME) in got[0]["addresses"]
    assert got[0]["dst"] == str(MN_COA)


def test_mobile_prefix_solicitation_is_answered_with_the_home_prefix(lab):
    hoa = "2001:db8::17"
    assert bu(lab, hoa, 1)[0]["status"] == 0
    got = peer(lab, lab.mn, "mps", coa=str(MN_COA), ha=str(HA_HOME), hoa=hoa, id=77)
    assert got, "no MPA"
    assert got[0]["id"] == 77
    assert "2001:db8::/64" in got[0]["prefixes"]


def test_unknown_mh_type_gets_binding_error_2(lab):
    got = peer(lab, lab.mn, "unknown_mh", src=str(MN_COA), dst=str(HA_HOME), mhtype=42)
    assert got and got[0]["status"] == 2
    assert got[0]["dst"] == str(MN_COA)


def test_home_address_option_without_binding_gets_binding_error_1(lab):
    got = peer(lab, lab.mn, "hao_echo", coa=str(MN_COA), ha=str(HA_HOME), hoa="2001:db8::77")
    assert got and got[0]["status"] == 1
    assert got[0]["hoa"] == "2001:db8::77"


def test_malformed_packets_are_counted_and_service_goes_on(lab):
    before = stats(lab).get("malformed dropped", 0)
    # an MH whose header length runs past the packet, and one with a bad checksum
    for payload in ("3b0f0500ffff00000000", "3b0105001234" "0000" "c000" "0001" "00000000"):
        peer(lab, lab.mn, "raw", src=str(MN_COA), dst=str(HA_HOME), nh=135, payload=payload)
    wait_for(lambda: stats(lab).get("malformed dropped", 0) >= before + 2,
             what="malformed packets counted")
    assert bu(lab, "2001:db8::18", 1)[0]["status"] == 0


def test_bad_payload_proto_gets_a_parameter_problem_pointing_at_it(lab):
    sniff = start_sniff(lab.mn, f"icmp6 and ip6[40] == 4 and src host {HA_HOME}")
    # RFC 6275 9.2: Payload Proto 6 instead of 59; the error points at that octet
    peer(lab, lab.mn, "raw", src="2001:db8:1::202", dst=str(HA_HOME), nh=135,
         payload="06010500" "0000" "0000" "c000" "0001" "00000000")
    got = finish(sniff)
    assert [p["param_problem"] for p in got] == [{"code": 0, "pointer": 40}]


def test_no_parameter_problem_reaches_the_mobile_node(lab):
    sniff = start_sniff(lab.mn, f"icmp6 and ip6[40] == 4 and src host {HA_HOME}")
    assert bu(lab, "2001:db8::19", 1)[0]["status"] == 0
    got = finish(sniff)
    assert got == [], f"the kernel answered the BU with a Parameter Problem: {got}"


def test_console_bc_add_and_del_go_through_the_registration_rules(lab):
    out = lab.console("bc add hoa 2001:db8::20 coa 2001:db8:1::202 lifetime 600")
    assert "DAD" in out or "registered" in out
    wait_for(lambda: bc(lab).get("2001:db8::20", {}).get("status") == "registered",
             what="console binding registered")
    assert "refused 132" in lab.console("bc add hoa 2001:db8:9::1 coa 2001:db8:1::202 lifetime 60")
    assert "deregistered" in lab.console("bc del hoa 2001:db8::20")
    assert "2001:db8::20" not in bc(lab)


def test_reload_applies_a_new_access_policy(lab):
    with open(lab.conf_path, "a") as f:
        f.write("BindingAclPolicy 2001:db8::bad deny;\n")
    lab.daemon.send_signal(1)  # SIGHUP
    wait_for(lambda: "reloaded" in lab.console("log 20"), what="reload logged")
    (ba,) = bu(lab, "2001:db8::bad", 1)
    assert ba["status"] == 129


def kernel_state(ns):
    return {
        "routes": run(["ip", "-6", "route", "show", "table", "all"], ns).stdout,
        "rules": run(["ip", "-6", "rule"], ns).stdout,
        "proxy": run(["ip", "-6", "neigh", "show", "proxy"], ns).stdout,
        "links": run(["ip", "-o", "link"], ns).stdout,
        "nft": run(["nft", "list", "ruleset"], ns).stdout,
    }


def test_sigterm_leaves_nothing_behind_in_the_kernel(tmp_path):
    conf = tmp_path / "mip6d.conf"
    shutil.copy(SEED_HA_CONF, conf)
    with SeedLab() as lab:
        lab.move_mn("remote")
        before = kernel_state(lab.ha)
        lab.start_daemon(str(conf), log_path=str(tmp_path / "denalid.log"))
        for i, hoa in enumerate(("2001:db8::beef", "2001:db8::42")):
            assert bu(lab, hoa, 10 + i)[0]["status"] == 0
        during = kernel_state(lab.ha)
        assert "2001:db8::beef" in during["proxy"] and "denali0" in during["links"]
        assert "table inet denali" in during["nft"]
        assert lab.stop_daemon() == 0
        after = kernel_state(lab.ha)
        # link-local and kernel-made routes come back the same; nothing of ours stays
        for key in ("rules", "proxy", "nft"):
            assert after[key] == before[key], key
        assert "denali0" not in after["links"]
        assert "2001:db8::beef" not in after["routes"] and "table 6275" not in after["routes"]


def test_l_bit_binding_proxies_the_link_local_address_too(lab):
    # section 10.3.1: with L = 1 the home agent defends fe80::<interface id> as well
    hoa = "2001:db8::41"
    assert bu(lab, hoa, 1, flags="AHL")[0]["status"] == 0
    proxies = run(["ip", "-6", "neigh", "show", "proxy"], lab.ha).stdout
    assert hoa in proxies and "fe80::41" in proxies
    assert bu(lab, hoa, 2, lifetime=0, flags="AHL")[0]["status"] == 0
    proxies = run(["ip", "-6", "neigh", "show", "proxy"], lab.ha).stdout
    assert hoa not in proxies and "fe80::41" not in proxies
