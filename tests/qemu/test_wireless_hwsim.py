"""The wireless manager on mac80211_hwsim radios with real hostapd, in qemu.

One guest boot (Debian's stock kernel, the host's files over 9p) runs
guest_wireless.py, which does every check and reports JSON; the tests below
each assert one part of that report. Needs tests/qemu/prepare.sh (qemu, the
kernel, busybox-static, hostapd, iw, wireless-regdb); skips with the reason
when something is missing.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import step  # noqa: E402


@pytest.fixture(scope="module")
def report():
    why = harness.missing_tools(("hostapd", "iw", "ip"))
    if why:
        pytest.skip(why)
    return harness.guest_report("guest_wireless.py", timeout=900)[0]


def test_radio_that_appears_later_is_picked_up(report):
    before = step(report, "before_module")["rows"]
    assert all(r["state"] == "down" and "waiting for it to appear" in r["reason"]
               for r in before)
    assert step(report, "modprobe")["rc"] == 0
    assert step(report, "picked_up")["ok"]


def test_seed_layout_iw_dev_shows_two_access_points(report):
    iw = step(report, "iw_dev")["parsed"]
    assert iw["wlan0"] == {"type": "AP", "ssid": "home", "channel": 3, "freq": 2422}
    assert iw["wlan1"] == {"type": "AP", "ssid": "remote", "channel": 8, "freq": 2447}


def test_radios_command_shows_both_cells(report):
    text = report["radios_text"].splitlines()
    assert text[0].split()[:6] == ["interface", "mode", "ESSID", "ch", "MHz", "sta"]
    assert text[1].split()[:6] == ["wlan0", "AP", "home", "3", "2422", "0"]
    assert text[2].split()[:6] == ["wlan1", "AP", "remote", "8", "2447", "0"]


def test_nl80211_inventory_over_pyroute2(report):
    inv = report["iw_inventory"]
    assert inv["wlan0"]["ap"] and inv["wlan0"]["iftype"] == "ap"
    assert inv["wlan0"]["f2422"] is None  # channel 3 usable
    assert inv["wlan2"]["iftype"] == "station"


def test_pyric_reads_hwsim(report):
    p = report["pyric"]
    assert "error" not in p, p.get("error")
    assert p["winterfaces"] == ["wlan0", "wlan1", "wlan2"]
    assert p["devinfo_mode"] == "AP" and "AP" in p["modes"]
    assert p["bands"]["2GHz"] == 14
    assert p["chget"] == 3


def test_pyric_frequencies_as_fallback(report):
    # pyric sees the 2.4 GHz channels as nl80211 does, disabled ones included;
    # it drops the radar and no-IR flags (the report says so, the manager uses
    # pyric only when the wiphy dump has no frequencies)
    fb = report["pyric_fallback"]
    assert fb["same_2ghz"] and fb["f2422"] is None and fb["f2467"] == "disabled"


def test_station_connects_to_home_then_moves_to_remote(report):
    home = step(report, "connect_home")
    assert home["linked"] and (home["wlan0"], home["wlan1"]) == (1, 0)
    remote = step(report, "connect_remote")
    assert remote["linked"] and (remote["wlan0"], remote["wlan1"]) == (0, 1)


def test_station_gets_an_address_on_each_prefix_from_our_ra_sender(report):
    home = step(report, "connect_home")
    assert home["address"], "no 2001:db8::/64 address from RAs on the home cell"
    remote = step(report, "connect_remote")
    assert remote["address"], "no 2001:db8:1::/64 address from RAs on the foreign cell"


def test_txpower_is_set_over_nl80211(report):
    assert "txpower 15.00 dBm" in report["wlan0_info"], report["wlan0_info"]


def test_wpa2_station_associates(report):
    w = step(report, "wpa2_station")
    if "skipped" in w:
        pytest.skip(w["skipped"])
    assert w["started"] and w["linked"]
    assert (w["wlan1"], w["security"]) == (1, "wpa2-psk")


def test_killed_hostapd_comes_back_and_the_other_cell_keeps_its_station(report):
    k = step(report, "kill_hostapd")
    assert k["back"] and k["new_pid"] != k["old_pid"]
    assert k["restarts"] == 1 and k["last_exit"].startswith("signal 9")
    assert k["station_drops"] == 0 and k["samples"] >= 10
    assert k["wlan1_counts"] == [1] and k["wlan1_pid_same"]


def test_bad_second_radio_refused_first_stays_up(report):
    b = step(report, "bad_reload")
    assert b["wlan0_mode"] == "AP" and b["wlan0_pid_same"]
    assert b["wlan1_mode"] == "down"
    assert "channel 3 is already used by wlan0" in b["wlan1_reason"]
    assert "down: channel 3 is already used by wlan0" in b["text"]


def test_reload_to_wpa2_restarts_only_the_changed_radio(report):
    w = step(report, "wpa_reload")
    assert w["wlan0_pid_same"]
    assert (w["wlan1_mode"], w["wlan1_channel"], w["wlan1_freq"]) == ("AP", 6, 2437)
    assert any("overlaps wlan0" in x for x in w["wlan1_warnings"])
    assert "key_mgmt=WPA-PSK" in w["get_config"] and "wpa=2" in w["get_config"]


def test_stop_brings_radios_down(report):
    s = step(report, "stopped")
    assert s["alive"] == []
    assert s["up_flags"] == {"wlan0": 0, "wlan1": 0}
    assert all(v.get("type") != "AP" for k, v in s["iw_dev"].items() if k in ("wlan0", "wlan1"))
