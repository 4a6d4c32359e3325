"""A 5 GHz HT20 cell and a WPA3-SAE cell on mac80211_hwsim, in qemu.

One guest boot runs guest_radio_modes.py (the wireless manager, real hostapd,
a station with iw and wpa_supplicant) and reports JSON; each test asserts one
part.  Needs tests/qemu/prepare.sh (qemu, the kernel, hostapd, iw,
wireless-regdb) and wpa_supplicant; skips with the reason when one is missing.
"""

from __future__ import annotations

import os
import shutil
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import harness  # noqa: E402


def _missing() -> str | None:
    why = harness.missing_reason()
    if why:
        return why
    for tool in ("hostapd", "iw", "ip", "wpa_supplicant", "wpa_cli"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            return f"{tool} is not installed (tests/qemu/prepare.sh installs it)"
    if not any(os.path.exists(p) for p in ("/lib/firmware/regulatory.db",
                                           "/usr/lib/firmware/regulatory.db")):
        return "wireless-regdb is not installed: no country rules for 5 GHz"
    try:
        import pyroute2  # noqa: F401
    except ImportError:
        return "pyroute2 is not installed for this python"
    return None


@pytest.fixture(scope="module")
def report():
    why = _missing()
    if why:
        pytest.skip(why)
    kernel = harness.find_kernel()
    script = (
        "export PYTHONDONTWRITEBYTECODE=1\n"
        f"exec {sys.executable} /run/src/tests/qemu/guest_radio_modes.py "
        f"--repo /run/src --kroot {kernel.root} 2>&1\n")
    log = os.environ.get("DENALI_QEMU_LOG")
    res = harness.run_guest(kernel, script, timeout=600, src=REPO, log_path=log)
    data = res.json()
    if data is None:
        pytest.fail(f"the guest reported nothing (rc {res.rc}); console tail:\n"
                    + res.console[-4000:])
    print(f"guest: {res.seconds:.1f} s end to end, checks {data.get('seconds')} s")
    return data


def step(report, name):
    assert not report["errors"], "\n".join(report["errors"])
    assert name in report["steps"], f"the guest never reached {name}: {sorted(report['steps'])}"
    return report["steps"][name]


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

