"""5 GHz, HT20 and WPA3-SAE cells on mac80211_hwsim; prints one 'DENALI-JSON {...}' line.

Run inside the qemu guest by test_radio_modes_hwsim.py:

    python3 guest_radio_modes.py --repo /run/src --kroot /opt/denali-qemu/linux-image-...

Two hwsim radios: wlan0 is the cell (the wireless manager, real hostapd),
wlan1 the station in its own namespace (iw for the open 5 GHz cell,
wpa_supplicant for the SAE one).  It records what it sees; the test on the
host asserts.  Each step is guarded so that one failure still reports the others.
"""

from __future__ import annotations

import os
import signal
import traceback

from harness import REPORT as R, guest_main, mark, sh, wait_for


NS = "rmsta"
SAE_PASS = "correct horse battery staple"


async def main(args):
    from ha.wireless.hostapd import RadioSpec, check_radios
    from ha.wireless.manager import WirelessManager, read_phys_iw

    five = dict(name="wlan0", essid="five", channel=36, hw_mode="a", country="DE",
                ieee80211n=True, role="home", security="open")
    wm = WirelessManager([five], runtime_dir="/run/denali-test/hostapd", poll=0.5,
                         backoff=0.5)

    async def row():
        return next(r for r in await wm.status() if r["radio"] == "wlan0")

    async def ap_up():
        return (await row())["mode"] == "AP"

    try:
        rc, out = await sh("modprobe", "-d", args.kroot, "mac80211_hwsim", "radios=2")
        mark("modprobe", rc=rc, out=out.strip())
        sta_phy = open("/sys/class/net/wlan1/phy80211/name").read().strip()
        for cmd in (("ip", "netns", "add", NS), ("iw", "phy", sta_phy, "set", "netns", "name", NS)):
            rc, out = await sh(*cmd)
            if rc:
                R["errors"].append(f"{cmd}: {out}")
        await sh("ip", "link", "set", "wlan1", "up", ns=NS)

        # the 5 GHz cell: channel 36, HT20, country DE
        await wm.start()
        up = await wait_for(ap_up, 40)
        r = await row()
        info = (await sh("iw", "dev", "wlan0", "info"))[1]
        cfg = ""
        try:
            cfg = await wm.children["wlan0"].ctrl.request("GET_CONFIG")
            st = await wm.children["wlan0"].ctrl.status()
        except Exception as e:
            cfg, st = repr(e), {}
        mark("five_up", up=bool(up), mode=r["mode"], channel=r["channel"],
             frequency=r["frequency"], reason=r["reason"], reg=(await sh("iw", "reg", "get"))[1],
             info=info, get_config=cfg, ieee80211n=st.get("ieee80211n"),
             conf=open("/run/denali-test/hostapd/wlan0.conf").read())  # open: no secret

        # what nl80211 says of hwsim's 5 GHz channels, and the DFS verdict on it
        phys = await read_phys_iw()
        p = phys.get("wlan0")
        dfs = check_radios([RadioSpec("wlan0", "dfs", 52, hw_mode="a", country="DE")],
                           {"wlan0": p})["wlan0"]
        mark("dfs", radar_detect=p.radar_detect, radar=sorted(p.radar),
             f5180=(p.freqs or {}).get(5180, "absent"), f5260=(p.freqs or {}).get(5260, "absent"),
             ok=dfs.ok, reason=dfs.reason)

        # a station sees the 5 GHz cell and associates
        rc, scan = await sh("iw", "dev", "wlan1", "scan", "freq", "5180", ns=NS, timeout=40)
        seen = "SSID: five" in scan and "freq: 5180" in scan
        await sh("iw", "dev", "wlan1", "connect", "five", "5180", ns=NS)

        async def linked(ssid):
            rc, out = await sh("iw", "dev", "wlan1", "link", ns=NS)
            return f"SSID: {ssid}" in out and out

        link = await wait_for(lambda: linked("five"), 30)

        async def one_station():
            return (await row())["station_count"] == 1
        await wait_for(one_station, 10)
        mark("five_station", scan_rc=rc, seen=seen, linked=bool(link), link=link or "",
             stations=(await row())["station_count"])
        await sh("iw", "dev", "wlan1", "disconnect", ns=NS)

        # the WPA3-SAE cell (2.4 GHz channel 6, HT20): hostapd restarts on reload
        sae = dict(name="wlan0", essid="wpa3", channel=6, hw_mode="g", country="DE",
                   ieee80211n=True, role="home", security="sae", key=SAE_PASS)
        old_pid = wm.children["wlan0"].pid
        await wm.reload([sae])

        async def sae_up():
            r = await row()
            return r["mode"] == "AP" and r["pid"] not in (None, old_pid) and r["channel"] == 6
        up = await wait_for(sae_up, 30)
        try:
            cfg = await wm.children["wlan0"].ctrl.request("GET_CONFIG")
        except Exception as e:
            cfg = repr(e)
        conf_mode = oct(os.stat("/run/denali-test/hostapd/wlan0.conf").st_mode & 0o777)
        r = await row()
        mark("sae_up", up=bool(up), security=r["security"], get_config=cfg,
             conf_mode=conf_mode, reason=r["reason"])

        with open("/run/sta-sae.conf", "w") as f:
            f.write('network={\n ssid="wpa3"\n key_mgmt=SAE\n'
                    f' sae_password="{SAE_PASS}"\n ieee80211w=2\n}}\n')
        rc, out = await sh("wpa_supplicant", "-B", "-D", "nl80211", "-i", "wlan1", "-c",
                           "/run/sta-sae.conf", "-P", "/run/sta-sae.pid",
                           "-C", "/run/sta-sae-ctrl", ns=NS)
        link = await wait_for(lambda: linked("wpa3"), 40)
        await wait_for(one_station, 10)
        wpa = (await sh("wpa_cli", "-p", "/run/sta-sae-ctrl", "-i", "wlan1", "status",
                        ns=NS))[1]
        stas = []
        try:
            stas = await wm.children["wlan0"].ctrl.stations()
        except Exception as e:
            R["errors"].append(f"STA-FIRST: {e!r}")
        mark("sae_station", started=rc == 0, start_out=out.strip()[-300:], linked=bool(link),
             wpa_status=wpa, stations=(await row())["station_count"],
             sta_flags=[d.get("flags", "") for _, d in stas],
             sta_akm=[d.get("AKMSuiteSelector", "") for _, d in stas])
        try:
            os.kill(int(open("/run/sta-sae.pid").read()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
    except Exception:
        R["errors"].append(traceback.format_exc())
    finally:
        await wm.stop()
        mark("stopped", children=list(wm.children))


if __name__ == "__main__":
    guest_main(main, 200)
