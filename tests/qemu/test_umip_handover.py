"""The home agent's handover settings against UMIP's mip6d as the mobile node, in qemu.

bench/bench_handover_umip.py times these; here one guest boot (Debian's
kernel: CONFIG_IPV6_MIP6 for UMIP, ip6_tunnel for denalid's kernel datapath)
runs guest_umip_handover.py once with the README's handover settings at the
home agent (`DenaliTunnelDuringDad enabled`, RAs every 0.03-0.07 s with the
Advertisement Interval option) and "checks" on, so that it stops at each
state and records both ends' views:

  - away: UMIP registers; denalid's `bc` and UMIP's own `bul` list the one
    binding, pings go both ways through denalid's ip6tnl toward the care-of
    address;
  - home again (the cable moves to the home bridge): UMIP deregisters, the
    BA reaches it on the home link (RFC 6275 section 11.5.4: denalid sends
    it out of the home interface, not into the tunnel being torn down), so
    UMIP's list empties without a retransmission storm and denalid never
    has to refuse a BU for a binding it no longer holds (status 133);
  - away again: a new registration, forwarded while its DAD runs.

Asserts what the two daemons say and what gets through; no time is asserted.
Skips with the reason when qemu, the kernel or UMIP's build is missing.
"""

from __future__ import annotations

import json
import os
import sys
from ipaddress import IPv6Address, IPv6Network

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import umip_peer  # noqa: E402

HOA = IPv6Address("2001:db8::beef")
FOREIGN = IPv6Network("2001:db8:1::/64")
VARIANT = {"name": "tdd-checks", "extra": "DenaliTunnelDuringDad enabled;", "checks": True}


@pytest.fixture(scope="module")
def run():
    why = harness.missing_tools(("ip", "ping")) or umip_peer.mip6d_missing()
    if why:
        pytest.skip(why)
    with open(umip_peer.MIP6D, "rb") as f:
        mip6d = f.read()
    data, _ = harness.guest_report(
        "guest_umip_handover.py", timeout=900, memory_mb=768, files={"mip6d": mip6d},
        args=f"--mip6d /run/job/mip6d --moves 1 --rate 200 --variants '{json.dumps([VARIANT])}'")
    assert not data["errors"], "\n".join(data["errors"])
    (v,) = data["variants"]
    for name, c in (v.get("checks") or {}).items():
        print(f"{name}: UMIP said " + " | ".join(c["umip_log"][-6:]))
        print(f"{name}: denalid logged " + " | ".join(c["ha_events"][-6:]))
    return v


def check(run, name):
    checks = run.get("checks") or {}
    assert name in checks, (f"the guest never reached {name}: {sorted(checks)}\n"
                            + run.get("denalid_log_tail", ""))
    return checks[name]


def toward(tunnels, coa):
    """The ip6tnl devices whose remote end is *coa* (ip6tnl0, the kernel's own, has "any")."""
    def same(remote):
        try:
            return IPv6Address(remote) == IPv6Address(coa)
        except ValueError:
            return False
    return [n for n, t in tunnels.items() if same(t["remote"])]


def test_umip_registers_and_both_ends_list_the_binding(run):
    away = check(run, "away")
    assert away["settled"], away
    (b,) = away["bc"]
    assert b["status"] == "registered" and IPv6Address(b["coa"]) in FOREIGN
    (e,) = away["bul"]  # UMIP's own binding update list
    assert IPv6Address(e["hoa"]) == HOA
    assert IPv6Address(e["coa"]) == IPv6Address(b["coa"])
    assert IPv6Address(e["cn"]) == IPv6Address("2001:db8::")  # the home agent
    assert not any("NON_MIP" in line or "unable" in line for line in away["umip_log"])


def test_away_pings_go_both_ways_through_the_tunnel(run):
    away = check(run, "away")
    assert away["cn_to_mn"]["received"] >= 1, away["cn_to_mn"]
    assert away["mn_to_cn"]["received"] >= 1, away["mn_to_cn"]
    (name,) = toward(away["tunnels_after"], away["bc"][0]["coa"])
    before = away["tunnels_before"].get(name, {"rx": 0, "tx": 0})
    after = away["tunnels_after"][name]
    # echo requests in and replies out for cn->mn, and the reverse-tunnelled ones
    assert after["tx"] - before["tx"] >= away["cn_to_mn"]["received"]
    assert after["rx"] - before["rx"] >= away["mn_to_cn"]["received"]


def test_tunnel_during_dad_forwards_each_new_registration(run):
    again = check(run, "after home->remote")
    assert again["settled"], again
    stats = again["stats"]
    # the first registration and the one after coming home each started DAD
    assert stats.get("DAD started", 0) >= 2, stats
    assert stats.get("bindings forwarded during DAD", 0) >= 2, stats
    assert again["cn_to_mn"]["received"] >= 1 and again["mn_to_cn"]["received"] >= 1


def test_home_again_umip_deregisters_and_hears_the_ba_on_the_home_link(run):
    home = check(run, "after remote->home")
    assert home["settled"], home  # denalid's cache and UMIP's list both empty
    assert home["bc"] == [] and home["bul"] == []
    # UMIP took the BA of its deregistration (lifetime 0, so no care-of address)
    assert any("Got BA from 2001:db8:0:0:0:0:0:0" in line and "coa 0:0:0:0:0:0:0:0" in line
               and line.endswith("status 0") for line in home["umip_log"]), home["umip_log"]
    # no tunnel left toward the old care-of address, and the home link reaches it
    old_coa = check(run, "away")["bc"][0]["coa"]
    assert toward(home["tunnels_after"], old_coa) == [], home["tunnels_after"]
    assert home["cn_to_mn"]["received"] >= 1, home["cn_to_mn"]
    assert home["mn_to_cn"]["received"] >= 1, home["mn_to_cn"]


def test_deregistration_needs_no_retransmission_and_no_133(run):
    away, home = check(run, "away"), check(run, "after remote->home")
    # a BA that went astray would have UMIP retransmit its deregistration, and
    # denalid, the binding already gone, answer those with 133
    assert home["stats"].get("BA 133", 0) == 0, home["stats"]
    dereg_bus = [t for t in home["ha_events"] if t.startswith("BU from")]
    assert 1 <= len(dereg_bus) <= 2, home["ha_events"]
    accepted = [t for t in home["ha_events"] if t.startswith("BA status 0 ")]
    assert accepted, home["ha_events"]
    assert away["stats"].get("BA 133", 0) == 0
