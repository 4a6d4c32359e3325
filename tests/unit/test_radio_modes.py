"""Radios as people configure them now: 5 GHz, 802.11n, WPA2-PSK and WPA3-SAE.

The config rules (ha/config/regulatory.py through ha/config/model.py), the
start checks and hostapd.conf lines (ha/wireless/hostapd.py), and haconf's
generated passphrases and masking.  On real radios (mac80211_hwsim, real
hostapd and wpa_supplicant) it is tests/qemu/test_radio_modes_hwsim.py.
"""

import os
import re
import stat

import pytest
from click.testing import CliRunner

from ha.config import model as C
from ha.config.regulatory import key_rule
from ha.haconf import cli as haconf
from ha.wireless.hostapd import PhyInfo, RadioSpec, check_radios, hostapd_config, write_config

# one radio, the rest of the file the seed's defaults
BASE = """\
[ha]
    interface = wlan0
[radio]
    [[wlan0]]
        essid = home
        role = home
        address = 2001:db8::/64
"""


def conf(**radio):
    lines = "".join(f"        {k} = {v}\n" for k, v in radio.items())
    return BASE + lines


def refusals(text):
    with pytest.raises(C.DenaliConfError) as e:
        C.validate_text(text, "test.conf")
    return dict(e.value.errors)


def radio(text):
    return C.validate_text(text, "test.conf").radio("wlan0")


# --- config rules -----------------------------------------------------------------

@pytest.mark.parametrize("country,channel", [
    ("US", 36), ("US", 48), ("US", 144), ("US", 149), ("US", 165),
    ("DE", 36), ("DE", 64), ("DE", 140), ("FR", 100), ("JP", 52), ("CA", 157)])
def test_a_5ghz_channel_the_country_allows(country, channel):
    r = radio(conf(hw_mode="a", channel=channel, country=country))
    assert (r.hw_mode, r.channel, r.country) == ("a", channel, country)


@pytest.mark.parametrize("country,channel,allowed", [
    ("DE", 149, "use 36-64, 100-140"),
    ("DE", 144, "use 36-64, 100-140"),
    ("JP", 165, "use 36-64, 100-140"),
    ("US", 37, "not a 5 GHz channel (hw_mode a): use 36-64, 100-144, 149-165"),
    ("US", 6, "not a 5 GHz channel (hw_mode a)"),
])
def test_a_5ghz_channel_the_country_refuses_says_what_is_allowed(country, channel, allowed):
    errors = refusals(conf(hw_mode="a", channel=channel, country=country))
    assert allowed in errors["radio.wlan0.channel"]


def test_a_5ghz_channel_needs_hw_mode_a():
    errors = refusals(conf(channel=36))  # hw_mode g by default
    assert errors["radio.wlan0.channel"] == (
        "channel 36 is a 5 GHz channel: set hw_mode a, or use 1-14 with hw_mode b or g")


def test_no_channel_between_the_bands():
    errors = refusals(conf(channel=20))
    assert "use an integer 1-14 (2.4 GHz) or 36-165 (5 GHz" in errors["radio.wlan0.channel"]


def test_two_4ghz_rules_are_as_before():
    assert "use 1-11" in refusals(conf(channel=12, country="US"))["radio.wlan0.channel"]
    assert radio(conf(channel=13, country="DE")).channel == 13


def test_ht20_on_g_and_a_not_on_b():
    assert radio(conf(channel=6, ieee80211n="on")).ieee80211n is True
    assert radio(conf(channel=36, hw_mode="a", ieee80211n="on")).ieee80211n is True
    errors = refusals(conf(channel=6, hw_mode="b", ieee80211n="on"))
    assert "ieee80211n needs hw_mode g or a" in errors["radio.wlan0.ieee80211n"]


def test_5ghz_neighbours_do_not_warn_of_overlap():
    text = conf(hw_mode="a", channel=36) + \
        "    [[wlan1]]\n        essid = remote\n        hw_mode = a\n        channel = 40\n"
    assert C.validate_text(text, "t").warnings == []


@pytest.mark.parametrize("security,key,mode", [
    (None, None, "open"), (None, "a passphrase", "wpa2"), ("open", None, "open"),
    ("wpa2", "a passphrase", "wpa2"), ("sae", "a passphrase", "sae"),
    ("wpa2-sae", "a passphrase", "wpa2-sae"), ("wpa2", None, "wpa2")])
def test_security_in_force(security, key, mode):
    kw = {"channel": 6}
    if security:
        kw["security"] = security
    if key:
        kw["key"] = f'"{key}"'
    assert radio(conf(**kw)).security == mode


@pytest.mark.parametrize("kw,why", [
    ({"security": "open", "key": "apassphrase"}, "security open takes no key"),
    ({"security": "sae", "key": "ab" * 32}, "needs a passphrase, not a 64-hex-digit PSK"),
    ({"security": "wpa2-sae", "key": '"pass|mac=00"'}, "a passphrase with '|'"),
])
def test_security_and_key_that_do_not_go_together(kw, why):
    errors = refusals(conf(channel=6, **kw))
    assert why in errors["radio.wlan0.security"]


def test_wpa_key_rule_unchanged():
    assert "8-63 printable ASCII" in refusals(conf(channel=6, key="short"))["radio.wlan0.key"]
    assert radio(conf(channel=6, key="ab" * 32)).security == "wpa2"


# --- start checks: DFS, keys ---------------------------------------------------------

FREQS_5 = {5000 + 5 * c: None for c in (36, 40, 44, 48, 52, 56, 60, 64, 100, 149)}


def phy(radar=frozenset({5260, 5280, 5300, 5320, 5500}), radar_detect=False, freqs=FREQS_5):
    return {"wlan0": PhyInfo("wlan0", "phy0", True, dict(freqs), radar=frozenset(radar),
                             radar_detect=radar_detect)}


def a_cell(channel, **kw):
    return RadioSpec("wlan0", "home", channel, hw_mode="a", country="DE", **kw)


def test_dfs_channel_refused_without_radar_detection():
    v = check_radios([a_cell(52)], phy())["wlan0"]
    assert not v.ok and not v.missing
    assert v.reason == ("channel 52 is a DFS channel (radar detection required) and "
                        "wlan0 (phy0) reports no radar detection: use 36-48 or 149-165")


def test_dfs_channel_allowed_when_the_driver_detects_radar():
    assert check_radios([a_cell(52)], phy(radar_detect=True))["wlan0"].ok


def test_dfs_by_the_band_even_when_the_phy_does_not_flag_it():
    v = check_radios([a_cell(100)], phy(radar=()))["wlan0"]
    assert "DFS channel" in v.reason


def test_a_channel_the_phy_flags_for_radar_is_dfs_too():
    # a regulatory domain may ask for radar detection where the band rule does not
    v = check_radios([a_cell(36)], phy(radar={5180}))["wlan0"]
    assert "channel 36 is a DFS channel" in v.reason


def test_unii1_and_unii3_need_no_radar_detection():
    for ch in (36, 48):
        assert check_radios([a_cell(ch)], phy())["wlan0"].ok
    us = RadioSpec("wlan0", "home", 149, hw_mode="a", country="US")
    assert check_radios([us], phy())["wlan0"].ok


def test_5ghz_channel_the_phy_lacks():
    v = check_radios([a_cell(44)], phy(freqs={5180: None}))["wlan0"]
    assert v.reason == "wlan0 (phy0) has no channel 44 (5220 MHz)"


def test_protected_cell_without_key_stays_down_saying_why():
    v = check_radios([RadioSpec("wlan0", "home", 6, security="wpa2")],
                     {"wlan0": PhyInfo("wlan0", "phy0", True, None)})["wlan0"]
    assert not v.ok
    assert v.reason.startswith("security wpa2 and no key: haconf set wlan0 key")


# --- hostapd.conf lines ---------------------------------------------------------------

def lines(spec):
    return hostapd_config(spec, "/run/ctrl").splitlines()


def test_open_cell_has_no_wpa_lines():
    out = lines(RadioSpec("wlan0", "home", 6, security="open"))
    assert not [x for x in out if re.match(r"(wpa|sae|ieee80211w|rsn)", x)]


def test_wpa2_psk_lines():
    out = lines(RadioSpec("wlan0", "home", 6, key="a passphrase", security="wpa2"))
    assert out[-4:] == ["wpa=2", "wpa_key_mgmt=WPA-PSK", "rsn_pairwise=CCMP",
                        "wpa_passphrase=a passphrase"]
    assert not [x for x in out if x.startswith(("sae", "ieee80211w"))]
    hexkey = lines(RadioSpec("wlan0", "home", 6, key="AB" * 32))
    assert hexkey[-1] == "wpa_psk=" + "ab" * 32


def test_sae_lines():
    out = lines(RadioSpec("wlan0", "home", 6, key="a passphrase", security="sae"))
    assert out[-5:] == ["wpa=2", "wpa_key_mgmt=SAE", "rsn_pairwise=CCMP", "ieee80211w=2",
                        "sae_password=a passphrase"]
    assert not [x for x in out if x.startswith(("wpa_passphrase", "wpa_psk"))]


def test_wpa2_sae_transition_lines():
    out = lines(RadioSpec("wlan0", "home", 6, key="a passphrase", security="wpa2-sae"))
    assert out[-7:] == ["wpa=2", "wpa_key_mgmt=WPA-PSK SAE", "rsn_pairwise=CCMP",
                        "ieee80211w=1", "sae_require_mfp=1",
                        "wpa_passphrase=a passphrase", "sae_password=a passphrase"]


def test_protected_cell_without_key_is_never_written_open():
    with pytest.raises(ValueError, match="security sae needs a key"):
        hostapd_config(RadioSpec("wlan0", "home", 6, security="sae"), "/run/ctrl")


def test_5ghz_ht20_lines():
    out = lines(RadioSpec("wlan0", "home", 36, hw_mode="a", country="DE", ieee80211n=True))
    for want in ("hw_mode=a", "channel=36", "ieee80211n=1", "ht_capab=",
                 "country_code=DE", "ieee80211d=1", "ieee80211h=1"):
        assert want in out
    g = lines(RadioSpec("wlan0", "home", 6, ieee80211n=True))
    assert "hw_mode=g" in g and "ieee80211n=1" in g and "ieee80211h=1" not in g
    assert "ieee80211n=1" not in lines(RadioSpec("wlan0", "home", 6))


def test_config_radio_reaches_hostapd_lines():
    r = radio(conf(hw_mode="a", channel=36, country="DE", ieee80211n="on",
                   security="sae", key='"a passphrase"'))
    out = lines(RadioSpec.of(r))
    assert "wpa_key_mgmt=SAE" in out and "ieee80211n=1" in out and "hw_mode=a" in out


def test_sae_config_file_is_0600(tmp_path):
    path = tmp_path / "run" / "wlan0.conf"
    write_config(str(path), hostapd_config(
        RadioSpec("wlan0", "home", 6, key="a passphrase", security="sae"), "/run/ctrl"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


# --- haconf init: generated passphrases; show masks them ---------------------------

class Box:
    def __init__(self, path):
        self.conf = str(path / "denali.conf")

    def ok(self, *args):
        r = CliRunner().invoke(haconf.cli, ["--config", self.conf, *args])
        assert r.exit_code == 0, (r.stdout, r.stderr, r.exception)
        for line in (r.stdout + r.stderr).splitlines():
            assert len(line) <= 80, line  # the serial console's width
        return r.stdout


def _wpa2_cells(box):
    """The cells WPA2 before the first init (as the built-in ones are; said again
    so that the tests hold if the default changes)."""
    box.ok("set", "wlan0", "security", "wpa2")
    box.ok("set", "wlan1", "security", "wpa2")


def test_init_generates_a_passphrase_per_protected_cell_printed_once(tmp_path):
    box = Box(tmp_path)
    _wpa2_cells(box)
    out = box.ok("init")
    cfg = C.load_config(box.conf)
    keys = {r.name: r.key for r in cfg.radios}
    assert set(keys) == {"wlan0", "wlan1"}
    assert all(r.security == "wpa2" for r in cfg.radios)
    assert keys["wlan0"] != keys["wlan1"]
    for name, key in keys.items():
        assert key_rule(key) is None and len(key) >= 20
        assert f"radio {name} (" in out
        assert out.splitlines().count(key) == 1  # alone on its line: copyable
    assert stat.S_IMODE(os.stat(box.conf).st_mode) == 0o600
    # once: a second init does nothing and prints no key
    again = box.ok("init")
    assert "nothing done" in again
    assert not any(k in again for k in keys.values())
    assert {r.name: r.key for r in C.load_config(box.conf).radios} == keys


def test_init_leaves_an_open_cell_open(tmp_path):
    box = Box(tmp_path)
    box.ok("set", "wlan0", "security", "wpa2")
    box.ok("set", "wlan1", "security", "open")  # staged before the first init
    out = box.ok("init")
    cfg = C.load_config(box.conf)
    assert (cfg.radio("wlan1").security, cfg.radio("wlan1").key) == ("open", None)
    assert cfg.radio("wlan0").key and "radio wlan1" not in out


def test_show_masks_radio_keys_and_secrets_prints_them(tmp_path):
    box = Box(tmp_path)
    _wpa2_cells(box)
    box.ok("init")
    key = C.load_config(box.conf).radio("wlan0").key
    shown = box.ok("show", "radio")
    assert key not in shown
    assert re.search(r"^\s+key = \*+$", shown, re.M)
    assert key not in box.ok("show")
    assert f"key = {key}" in box.ok("show", "--secrets", "radio.wlan0")


# --- the manager: the country's rules before a 5 GHz check ---------------------------

def test_manager_sets_the_country_before_checking_a_5ghz_cell(tmp_path, monkeypatch):
    # the stand-ins are at the boundary this machine lacks (no cfg80211 here):
    # nl80211's regulatory request and wiphy dump, and hostapd (a shell script)
    import asyncio
    import sys
    import ha.wireless.manager as M
    sys.path.insert(0, os.path.dirname(__file__))
    from test_wireless import fake_hostapd, until

    monkeypatch.setattr(M, "regdb_present", lambda: True)
    calls = []
    sysfs = tmp_path / "sys"
    (sysfs / "dnlt0" / "phy80211").mkdir(parents=True)

    async def set_reg(alpha2):
        calls.append(("set_reg", alpha2))
        return alpha2

    async def read_phys():
        calls.append(("read_phys",))
        return {"dnlt0": PhyInfo("dnlt0", "phy0", True, dict(FREQS_5))}
    exe = fake_hostapd(tmp_path, f'cat "$1" > {tmp_path}/conf; exec sleep 600')
    cell = {"name": "dnlt0", "essid": "five", "channel": 36, "hw_mode": "a",
            "country": "DE", "ieee80211n": True, "security": "open"}
    wm = M.WirelessManager([cell], runtime_dir=str(tmp_path / "run"), hostapd=exe,
                           read_phys=read_phys, set_reg=set_reg, sysfs=str(sysfs), poll=0.02)

    async def main():
        await wm.start()
        ok = await until(lambda: (tmp_path / "conf").exists() and
                         "channel=36" in (tmp_path / "conf").read_text())
        await wm.reload([dict(cell, channel=40)])
        ok2 = await until(lambda: "channel=40" in (tmp_path / "conf").read_text())
        rows = await wm.status()
        await wm.stop()
        return ok and ok2, rows
    ok, rows = asyncio.run(main())
    assert ok, rows
    assert calls[:2] == [("set_reg", "DE"), ("read_phys",)]
    assert calls.count(("set_reg", "DE")) == 1  # asked once, not on every check
    conf = (tmp_path / "conf").read_text().splitlines()
    assert "hw_mode=a" in conf and "ieee80211n=1" in conf and "country_code=DE" in conf


def test_set_radio_key_generate_makes_a_passphrase_and_changes_masks_it(tmp_path):
    """`haconf set wlan1 key generate` stages a real passphrase, not the word, and
    `haconf changes` shows it masked."""
    from click.testing import CliRunner
    from ha.config import model as C
    from ha.haconf import cli as haconf
    conf = tmp_path / "denali.conf"
    conf.write_text(C.DEFAULT_TEXT)
    r = CliRunner().invoke(haconf.cli, ["--config", str(conf), "set", "wlan1", "key",
                                         "generate"])
    assert r.exit_code == 0, r.output
    staged = (tmp_path / "denali.conf.staged").read_text()
    key = next(line.split("=", 1)[1].strip() for line in staged.splitlines()
               if line.strip().startswith("key") and "generate" not in line)
    assert len(key) >= 8 and key != "generate"
    r = CliRunner().invoke(haconf.cli, ["--config", str(conf), "changes"])
    assert r.exit_code == 0 and key not in r.output, r.output
