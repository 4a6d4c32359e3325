"""The wireless manager's pure parts, and its supervision, without radios.

hostapd config writer and checks are pure; the control-socket client talks to a
socket served here; the supervisor and the manager run a stand-in `hostapd`
script (a real child process) with radios described by a stand-in inventory.
The real thing (hwsim radios, real hostapd) is tests/qemu/test_wireless_hwsim.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys

import pytest

from ha.wireless.hostapd import (HostapdChild, HostapdControl, PhyInfo, RadioSpec, channel_frequency,
                        check_radios, hostapd_config, parse_station, parse_status)
from ha.wireless.manager import WirelessManager, format_radios

HOME = RadioSpec("wlan0", "home", 3, role="home")
REMOTE = RadioSpec("wlan1", "remote", 8)
FREQS = {2407 + 5 * c: None for c in range(1, 12)} | {2467: "no-IR", 2472: "disabled"}


def phys(*names, ap=True, freqs=FREQS):
    return {n: PhyInfo(n, f"phy{i}", ap, dict(freqs) if freqs else None)
            for i, n in enumerate(names)}


# --- RadioSpec --------------------------------------------------------------------

def test_spec_from_dict_and_from_config_radio():
    from ha.config.model import load_config
    cfg = load_config(None)  # the seed's default
    specs = [RadioSpec.of(r) for r in cfg.radios]
    # new installs' cells are WPA2 (haconf init gives them a passphrase)
    assert specs == [RadioSpec("wlan0", "home", 3, "g", "US", None, "home", None,
                               security="wpa2"),
                     RadioSpec("wlan1", "remote", 8, "g", "US", None, "foreign", None,
                               security="wpa2")]
    d = RadioSpec.of({"name": "wlan1", "essid": "remote", "channel": "8", "key": "k" * 8})
    assert (d.channel, d.hw_mode, d.key) == (8, "g", "k" * 8)


def test_spec_without_name_or_essid_is_refused():
    with pytest.raises(ValueError, match="no name"):
        RadioSpec.of({"essid": "x", "channel": 1})
    with pytest.raises(ValueError, match="wlan0 has no essid"):
        RadioSpec.of({"name": "wlan0", "channel": 1})


def test_bad_key_or_essid_refused_by_the_checks():
    v = check_radios([HOME, RadioSpec("wlan1", "remote", 8, key="short")],
                     phys("wlan0", "wlan1"))
    assert v["wlan0"].ok
    assert v["wlan1"].reason == ("a WPA2-PSK key is 8-63 printable ASCII characters "
                                 "or 64 hex digits")
    v = check_radios([RadioSpec("wlan0", "x" * 33, 3)], phys("wlan0"))
    assert "33 bytes: use 1-32 bytes" in v["wlan0"].reason


@pytest.mark.parametrize("radio, key", [
    ({"channel": "13"}, "channel"), ({"country": "JP", "channel": "14"}, "channel"),
    ({"key": "short"}, "key"), ({"essid": "x" * 33}, "essid")])
def test_config_check_and_radio_check_refuse_in_the_same_words(radio, key):
    # one rule set: a radio the manager keeps down is one haconf would refuse, with the same reason
    from ha.config import model
    obj = model.parse_text(model.DEFAULT_TEXT, "denali.conf")
    obj["radio"]["wlan0"].update(radio)
    text = "\n".join(obj.write()) + "\n"
    with pytest.raises(model.ConfigError) as e:
        model.validate_text(text)
    assert e.value.key == f"radio.wlan0.{key}"
    spec = RadioSpec.of({"name": "wlan0", "essid": "home", "channel": 3} | radio)
    assert check_radios([spec], phys("wlan0"))["wlan0"].reason == e.value.rule


# --- channels ---------------------------------------------------------------------

@pytest.mark.parametrize("ch,mhz", [(1, 2412), (3, 2422), (8, 2447), (13, 2472), (14, 2484)])
def test_channel_frequency(ch, mhz):
    assert channel_frequency(ch) == mhz


@pytest.mark.parametrize("ch", [0, 15, 36])
def test_channel_frequency_refuses_other_bands(ch):
    with pytest.raises(ValueError):
        channel_frequency(ch)


# --- checks -------------------------------------------------------------------------

def test_seed_layout_passes():
    v = check_radios([HOME, REMOTE], phys("wlan0", "wlan1"))
    assert v["wlan0"].ok and v["wlan1"].ok
    assert v["wlan0"].warnings == v["wlan1"].warnings == ()


def test_second_radio_on_the_same_channel_is_refused_first_kept():
    bad = RadioSpec("wlan1", "remote", 3)
    v = check_radios([HOME, bad], phys("wlan0", "wlan1"))
    assert v["wlan0"].ok
    assert not v["wlan1"].ok
    assert v["wlan1"].reason == ("channel 3 is already used by wlan0: use another channel, "
                                 "at best 5 or more apart")


def test_running_radio_keeps_its_channel_against_a_newcomer_listed_first():
    newcomer = RadioSpec("wlan0", "home", 8)
    v = check_radios([newcomer, REMOTE], phys("wlan0", "wlan1"), running={"wlan1"})
    assert v["wlan1"].ok
    assert not v["wlan0"].ok and "already used by wlan1" in v["wlan0"].reason
    assert list(v) == ["wlan0", "wlan1"]  # reported in config order


def test_same_essid_is_refused():
    v = check_radios([HOME, RadioSpec("wlan1", "home", 11)], phys("wlan0", "wlan1"))
    assert v["wlan0"].ok
    assert "ESSID 'home' is already the ESSID of wlan0" in v["wlan1"].reason


def test_overlapping_channels_only_warn():
    v = check_radios([HOME, RadioSpec("wlan1", "remote", 6)], phys("wlan0", "wlan1"))
    assert v["wlan1"].ok
    assert v["wlan1"].warnings == ("wlan1 channel 6 overlaps wlan0 channel 3 "
                                   "(less than 5 apart)",)
    far = check_radios([HOME, RadioSpec("wlan1", "remote", 8)], phys("wlan0", "wlan1"))
    assert far["wlan1"].warnings == ()


def test_missing_radio_waits_and_does_not_block_the_other():
    v = check_radios([HOME, REMOTE], phys("wlan0"))
    assert v["wlan0"].ok
    assert not v["wlan1"].ok and v["wlan1"].missing
    assert "waiting for it to appear" in v["wlan1"].reason


def test_radio_without_ap_mode_is_refused():
    v = check_radios([HOME], phys("wlan0", ap=False))
    assert not v["wlan0"].ok and not v["wlan0"].missing
    assert v["wlan0"].reason == "wlan0 (phy0) does not support AP mode"


def test_channel_the_radio_may_not_use_for_an_ap():
    # channel 12 is legal in GB but the phy reports it no-IR; 13 disabled
    v = check_radios([RadioSpec("wlan0", "home", 12, country="GB")], phys("wlan0"))
    assert "cannot start an AP on channel 12 (2467 MHz): no-IR" in v["wlan0"].reason
    v = check_radios([RadioSpec("wlan0", "home", 13, country="GB")], phys("wlan0"))
    assert "disabled" in v["wlan0"].reason
    v = check_radios([RadioSpec("wlan0", "home", 14, country="JP", hw_mode="b")], phys("wlan0"))
    assert v["wlan0"].reason == "wlan0 (phy0) has no channel 14 (2484 MHz)"


def test_country_rules():
    v = check_radios([RadioSpec("wlan0", "home", 12, country="US")], phys("wlan0"))
    assert v["wlan0"].reason == "channel 12 is not allowed for country US: use 1-11"
    v = check_radios([RadioSpec("wlan0", "home", 14, country="JP")], phys("wlan0"))
    assert "only with hw_mode b" in v["wlan0"].reason


def test_unknown_frequencies_are_not_held_against_the_radio():
    v = check_radios([HOME], phys("wlan0", freqs=None))
    assert v["wlan0"].ok


def test_refused_radio_does_not_take_the_channel():
    # wlan1 is refused (no AP mode), so its channel 8 stays free for wlan2
    specs = [HOME, RadioSpec("wlan1", "remote", 8), RadioSpec("wlan2", "third", 8)]
    p = phys("wlan0", "wlan1", "wlan2")
    p["wlan1"].ap = False
    v = check_radios(specs, p)
    assert v["wlan0"].ok and not v["wlan1"].ok and v["wlan2"].ok


# --- hostapd.conf ---------------------------------------------------------------------

def lines(text):
    return [ln for ln in text.splitlines() if not ln.startswith("#")]


def test_config_open_network_as_in_the_seed():
    assert lines(hostapd_config(HOME, "/run/denali/hostapd/ctrl")) == [
        "interface=wlan0", "driver=nl80211", "ctrl_interface=/run/denali/hostapd/ctrl",
        "ssid=home", "hw_mode=g", "channel=3", "beacon_int=100", "auth_algs=1",
        "ignore_broadcast_ssid=0", "wmm_enabled=1", "country_code=US", "ieee80211d=1"]


def test_config_without_regdb_leaves_the_country_to_the_kernel():
    text = hostapd_config(HOME, "/c", country=False)
    assert "country_code" not in text and "ieee80211d" not in text


def test_config_wpa2_psk_passphrase_and_hex_key():
    spec = RadioSpec("wlan1", "remote", 8, key="correct horse battery")
    text = lines(hostapd_config(spec, "/c"))
    assert text[-4:] == ["wpa=2", "wpa_key_mgmt=WPA-PSK", "rsn_pairwise=CCMP",
                         "wpa_passphrase=correct horse battery"]
    hexkey = "AB" * 32
    text = hostapd_config(RadioSpec("wlan1", "remote", 8, key=hexkey), "/c")
    assert f"wpa_psk={hexkey.lower()}" in text and "wpa_passphrase" not in text


def test_config_refuses_a_bad_key():
    with pytest.raises(ValueError, match="8-63"):
        hostapd_config(RadioSpec("wlan1", "remote", 8, key="short"), "/c")


@pytest.mark.parametrize("essid,line", [
    ("my home", "ssid=my home"),
    (" lead", "ssid2=206c656164"),
    ("café", "ssid2=636166c3a9\nutf8_ssid=1"),
    ("two\nlines", "ssid2=74776f0a6c696e6573"),
])
def test_config_essid_that_cannot_break_the_file(essid, line):
    text = hostapd_config(RadioSpec("wlan0", essid, 3), "/c")
    assert line in text
    assert "\nlines" not in text.replace(line, "")


# --- control socket replies ---------------------------------------------------------

STATUS = """state=ENABLED
phy=phy0
freq=2422
channel=3
num_sta[0]=1
ssid[0]=home
"""


def test_parse_status():
    st = parse_status(STATUS)
    assert (st["state"], st["freq"], st["channel"], st["ssid[0]"]) == ("ENABLED", "2422", "3",
                                                                       "home")


def test_parse_station():
    assert parse_station("02:00:00:00:02:00\nflags=[AUTH][ASSOC]\naid=1\n") == (
        "02:00:00:00:02:00", {"flags": "[AUTH][ASSOC]", "aid": "1"})
    assert parse_station("") is None
    assert parse_station("FAIL\n") is None


def test_control_client_against_a_served_socket(tmp_path):
    path = str(tmp_path / "wlan0")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    stations = ["02:00:00:00:02:00", "02:00:00:00:03:00"]
    seen = []

    async def serve():
        loop = asyncio.get_running_loop()
        server.setblocking(False)
        while True:
            data, peer = await loop.sock_recvfrom(server, 4096)
            cmd = data.decode()
            seen.append(cmd)
            # an unsolicited event first: the client must skip it
            server.sendto(b"<3>AP-STA-CONNECTED 02:00:00:00:03:00", peer)
            if cmd == "STATUS":
                reply = STATUS
            elif cmd == "STA-FIRST":
                reply = stations[0] + "\naid=1\n"
            elif cmd.startswith("STA-NEXT "):
                i = stations.index(cmd.split()[1]) + 1
                reply = stations[i] + "\naid=2\n" if i < len(stations) else ""
            else:
                reply = "UNKNOWN COMMAND\n"
            server.sendto(reply.encode(), peer)

    async def main():
        task = asyncio.create_task(serve())
        ctrl = HostapdControl(path)
        try:
            st = await ctrl.status()
            stas = await ctrl.stations()
        finally:
            ctrl.close()
            task.cancel()
        return st, stas

    st, stas = asyncio.run(main())
    server.close()
    assert st["ssid[0]"] == "home"
    assert [m for m, _ in stas] == stations
    assert seen == ["STATUS", "STA-FIRST", f"STA-NEXT {stations[0]}", f"STA-NEXT {stations[1]}"]
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".denalid")]  # cleaned up


def test_control_client_without_hostapd_raises_control_error(tmp_path):
    from ha.wireless.hostapd import ControlError

    async def main():
        return await HostapdControl(str(tmp_path / "nothing")).status()
    with pytest.raises(ControlError):
        asyncio.run(main())


# --- supervision and the manager, with a stand-in hostapd ---------------------------

def fake_hostapd(tmp_path, body):
    p = tmp_path / "hostapd"
    p.write_text("#!/bin/sh\n" + body + "\n")
    p.chmod(0o755)
    return str(p)


async def until(pred, limit=400):
    for _ in range(limit):
        if pred():
            return True
        await asyncio.sleep(0.02)
    return False


def test_child_that_dies_is_restarted_and_why_is_kept(tmp_path, caplog):
    exe = fake_hostapd(tmp_path, 'echo "nl80211: Could not configure driver mode"; exit 1')

    async def main():
        child = HostapdChild(HOME, str(tmp_path / "x.conf"), str(tmp_path), hostapd=exe,
                             backoff=0.01, backoff_max=0.03)
        child.start()
        ok = await until(lambda: child.restarts >= 4)
        await child.stop()
        return ok, child
    caplog.set_level("ERROR", logger="denali.wireless")
    ok, child = asyncio.run(main())
    assert ok
    assert child.last_exit == "exit status 1: nl80211: Could not configure driver mode"
    delays = [r.getMessage().rsplit("restarting in ", 1)[1] for r in caplog.records
              if "hostapd died" in r.getMessage()]
    assert delays[:4] == ["0.01 s", "0.02 s", "0.03 s", "0.03 s"]  # doubles up to the cap
    assert "radio wlan0: hostapd died (exit status 1: nl80211: Could not" in caplog.text
    assert child.pid is None


def test_child_stop_terminates_hostapd(tmp_path):
    exe = fake_hostapd(tmp_path, "exec sleep 600")

    async def main():
        child = HostapdChild(HOME, str(tmp_path / "x.conf"), str(tmp_path), hostapd=exe)
        child.start()
        await until(lambda: child.pid is not None)
        pid = child.pid
        await child.stop()
        return pid, child
    pid, child = asyncio.run(main())
    assert pid and _gone(pid)
    assert child.restarts == 0 and child.last_exit is None


def _gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] == "Z"  # dead, not yet reaped
    except OSError:
        return True


# test radios use names no real interface has: stop() sets links down
A = {"name": "dnlt0", "essid": "home", "channel": 3, "role": "home"}
B = {"name": "dnlt1", "essid": "remote", "channel": 8}


def manager(tmp_path, present, **kw):
    sysfs = tmp_path / "sys"
    for n in present:
        (sysfs / n / "phy80211").mkdir(parents=True)

    async def read_phys():
        return phys(*[n for n in ("dnlt0", "dnlt1") if (sysfs / n / "phy80211").exists()])
    exe = fake_hostapd(tmp_path, f'echo "$@" >> {tmp_path}/started; exec sleep 600')
    return WirelessManager(kw.pop("radios", [A, B]), runtime_dir=str(tmp_path / "run"),
                           hostapd=exe, read_phys=read_phys, sysfs=str(sysfs), poll=0.02,
                           **kw), sysfs


def test_manager_bad_second_radio_keeps_the_first_up(tmp_path):
    wm, _ = manager(tmp_path, ["dnlt0", "dnlt1"], radios=[A, dict(B, channel=3)])

    async def main():
        await wm.start()
        await until(lambda: wm.children["dnlt0"].pid is not None)
        rows = await wm.status()
        text = await wm._radios_command([])
        js = json.loads(await wm._radios_command(["json"]))
        await wm.stop()
        return rows, text, js
    rows, text, js = asyncio.run(main())
    assert list(wm.children) == []
    assert rows[0]["radio"] == "dnlt0" and rows[0]["pid"]
    assert rows[1]["state"] == "down"
    assert rows[1]["reason"].startswith("channel 3 is already used by dnlt0")
    assert "dnlt1      down  remote" in text and "already used by dnlt0" in text
    assert [(r["radio"], r["state"], r["reason"]) for r in js] == [
        (r["radio"], r["state"], r["reason"]) for r in rows]
    conf = (tmp_path / "run" / "dnlt0.conf").read_text()
    assert "interface=dnlt0" in conf and "ssid=home" in conf
    assert not (tmp_path / "run" / "dnlt1.conf").exists()


def test_manager_reload_restarts_only_the_changed_radio(tmp_path):
    wm, _ = manager(tmp_path, ["dnlt0", "dnlt1"])

    async def main():
        await wm.start()
        await until(lambda: all(c.pid for c in wm.children.values()))
        pids = {n: c.pid for n, c in wm.children.items()}
        await wm.reload([A, dict(B, channel=11, key="correct horse battery")])
        await until(lambda: all(c.pid for c in wm.children.values()))
        after = {n: c.pid for n, c in wm.children.items()}
        await wm.reload([A])  # wlan1 removed from the config
        left = set(wm.children)
        await wm.stop()
        return pids, after, left
    pids, after, left = asyncio.run(main())
    assert after["dnlt0"] == pids["dnlt0"]
    assert after["dnlt1"] != pids["dnlt1"]
    assert "wpa_passphrase=correct horse battery" in (tmp_path / "run" / "dnlt1.conf").read_text()
    assert left == {"dnlt0"}


def test_manager_reload_takes_a_settings_object(tmp_path):
    from types import SimpleNamespace
    wm, _ = manager(tmp_path, ["dnlt0", "dnlt1"])

    async def main():
        await wm.start()
        await wm.reload(SimpleNamespace(radios=[A]))
        names = set(wm.children)
        await wm.stop()
        return names
    assert asyncio.run(main()) == {"dnlt0"}


def test_manager_keeps_going_when_the_runtime_dir_is_unusable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    wm, _ = manager(tmp_path, ["dnlt0"], radios=[A])
    wm.runtime_dir = str(blocker / "run")  # below a regular file: cannot exist
    wm.ctrl_dir = str(blocker / "run" / "ctrl")

    async def main():
        await wm.start()
        rows = await wm.status()
        await wm.stop()
        return rows
    rows = asyncio.run(main())
    assert rows[0]["state"] == "down" and rows[0]["reason"].startswith("cannot write")


def test_manager_picks_up_a_radio_that_appears_later(tmp_path):
    wm, sysfs = manager(tmp_path, ["dnlt0"])

    async def main():
        await wm.start()
        before = set(wm.children), wm.verdicts["dnlt1"].reason
        (sysfs / "dnlt1" / "phy80211").mkdir(parents=True)
        ok = await until(lambda: "dnlt1" in wm.children)
        # and one that goes away is stopped
        os.rmdir(sysfs / "dnlt0" / "phy80211")
        gone = await until(lambda: "dnlt0" not in wm.children)
        await wm.stop()
        return before, ok, gone
    before, ok, gone = asyncio.run(main())
    assert before == ({"dnlt0"}, "no radio dnlt1 (waiting for it to appear)")
    assert ok and gone


def test_manager_survives_a_malformed_radio_entry(tmp_path):
    wm, _ = manager(tmp_path, ["dnlt0"], radios=[A, {"name": "dnlt9", "essid": "x",
                                                      "channel": "eleven"}])

    async def main():
        await wm.start()
        rows = await wm.status()
        await wm.stop()
        return rows
    rows = asyncio.run(main())
    assert "dnlt0" in [r["radio"] for r in rows]
    bad = [r for r in rows if r["radio"] == "dnlt9"][0]
    assert bad["state"] == "down" and bad["reason"].startswith("bad radio config")


def test_radios_console_command_registered():
    from ha.daemon.console import Console
    c = Console(0)
    wm = WirelessManager([])
    wm.register_commands(c)
    assert asyncio.run(c.run_command("radios")) == "no radios configured"
    assert asyncio.run(c.run_command("radios json")) == "[]"


def test_format_radios_shows_warnings():
    rows = [{"interface": "wlan0", "mode": "AP", "essid": "home", "channel": 3,
             "frequency": 2422, "station_count": 1, "state": "enabled", "reason": None,
             "warnings": ["wlan1 channel 6 overlaps wlan0 channel 3 (less than 5 apart)"]}]
    text = format_radios(rows).splitlines()
    assert text[1].split() == ["wlan0", "AP", "home", "3", "2422", "1", "enabled"]
    assert "warning: wlan1 channel 6 overlaps" in text[2]


def test_no_pyroute2_at_import():
    import subprocess
    code = ("import sys, ha.wireless.manager, ha.wireless.hostapd; "
            "print(any(m.startswith(('pyroute2', 'pyric')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert out.stdout.strip() == "False", out.stderr
