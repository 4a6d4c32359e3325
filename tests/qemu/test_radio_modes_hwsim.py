"""A 5 GHz HT20 cell and a WPA3-SAE cell on mac80211_hwsim, in qemu.

One guest boot runs guest_radio_modes.py (the wireless manager, real hostapd,
a station with iw and wpa_supplicant) and reports JSON; each test asserts one
part.  Needs tests/qemu/prepare.sh (qemu, the kernel, hostapd, iw,
wireless-regdb) and wpa_supplicant; skips with the reason when one is missing.
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
    why = harness.missing_tools(("hostapd", "iw", "ip", "wpa_supplicant", "wpa_cli"), regdb=True)
    if why:
        pytest.skip(why)
    return harness.guest_report("guest_radio_modes.py", timeout=600)[0]


def test_5ghz_cell_beacons_on_channel_36_with_ht20(report):
    f = step(report, "five_up")
    assert f["up"], f["reason"]
    assert (f["mode"], f["channel"], f["frequency"]) == ("AP", 36, 5180)
    assert "country DE" in f["reg"]
    assert "channel 36 (5180 MHz)" in f["info"]
    assert f["ieee80211n"] == "1"  # hostapd's STATUS: HT on
    conf = f["conf"].splitlines()
    assert "hw_mode=a" in conf and "ht_capab=" in conf and "country_code=DE" in conf


def test_station_sees_and_joins_the_5ghz_cell(report):
    s = step(report, "five_station")
    assert s["seen"], "the scan on 5180 MHz did not list ESSID five"
    assert s["linked"] and "freq: 5180" in s["link"]
    assert s["stations"] == 1


def test_dfs_channel_follows_the_radios_radar_detection(report):
    d = step(report, "dfs")
    assert 5260 in d["radar"]  # DE: 52-64 need radar detection
    if d["radar_detect"]:
        assert d["ok"], d["reason"]
    else:
        assert not d["ok"]
        assert "channel 52 is a DFS channel (radar detection required)" in d["reason"]
        assert "reports no radar detection" in d["reason"]


def test_sae_cell_config(report):
    s = step(report, "sae_up")
    assert s["up"], s["reason"]
    assert s["security"] == "wpa3-sae"
    assert "key_mgmt=SAE" in s["get_config"]
    assert s["conf_mode"] == "0o600"


def test_station_associates_with_sae(report):
    s = step(report, "sae_station")
    assert s["started"], s["start_out"]
    assert s["linked"] and s["stations"] == 1
    assert "key_mgmt=SAE" in s["wpa_status"] and "wpa_state=COMPLETED" in s["wpa_status"]
    assert any("[MFP]" in f for f in s["sta_flags"]), s["sta_flags"]

