"""Every wireless check in one guest boot; prints one 'DENALI-JSON {...}' line.

Run inside the qemu guest (tests/qemu/harness.py) by test_wireless_hwsim.py:

    python3 guest_wireless.py --repo /work/main --kroot /opt/denali-qemu/linux-image-...

It records what it sees and decides nothing: the test on the host asserts. Each
step is guarded so that one failure still reports the others.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
import traceback

from harness import REPORT as R, guest_main, mark, sh, wait_for


def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])


def parse_iw_dev(text):
    out, cur = {}, None
    for line in text.splitlines():
        line = line.strip()
        m = re.match(r"Interface (\S+)", line)
        if m:
            cur = out.setdefault(m.group(1), {})
        elif cur is not None:
            if line.startswith("type "):
                cur["type"] = line[5:]
            elif line.startswith("ssid "):
                cur["ssid"] = line[5:]
            elif line.startswith("channel "):
                m = re.match(r"channel (\d+) \((\d+) MHz\)", line)
                if m:
                    cur["channel"], cur["freq"] = int(m.group(1)), int(m.group(2))
    return out


async def main(args):
    from ha.wireless.manager import WirelessManager, read_phys_iw

    good = [dict(name="wlan0", essid="home", channel=3, role="home", country="US", txpower=15),
            dict(name="wlan1", essid="remote", channel=8, role="foreign", country="US")]
    run = "/run/denali-test/hostapd"
    wm = WirelessManager(good, runtime_dir=run, poll=0.5, backoff=0.5)

    async def row(name):
        return next(r for r in await wm.status() if r["radio"] == name)

    radvd = None
    R["rss_kb"] = {"before_start": rss_kb()}
    try:
        await wm.start()
        R["rss_kb"]["after_start"] = rss_kb()
        rows = await wm.status()
        mark("before_module", rows=[{k: r[k] for k in ("radio", "state", "reason")} for r in rows])

        rc, out = await sh("modprobe", "-d", args.kroot, "mac80211_hwsim", "radios=3")
        mark("modprobe", rc=rc, out=out.strip())

        async def both_up():
            rs = await wm.status()
            return all(r["mode"] == "AP" for r in rs)
        up = await wait_for(both_up, 90)
        rows = await wm.status()
        mark("picked_up", ok=bool(up), rows=rows)
        R["rss_kb"]["two_radios_up"] = rss_kb()
        rc, out = await sh("iw", "dev")
        R["iw_dev"] = parse_iw_dev(out)
        mark("iw_dev", parsed=R["iw_dev"])
        text = await wm._radios_command([])
        R["radios_text"] = text
        await asyncio.sleep(1)  # the transmit power is set once hostapd beacons
        R["wlan0_info"] = (await sh("iw", "dev", "wlan0", "info"))[1]
        mark("txpower")

        # our RA sender on both cells, the seed's radvd.conf and addresses
        await sh("ip", "-6", "addr", "add", "2001:db8::/64", "dev", "wlan0")
        await sh("ip", "-6", "addr", "add", "2001:db8:1::/64", "dev", "wlan1")
        env = dict(os.environ, PYTHONPATH=args.repo, PYTHONDONTWRITEBYTECODE="1")
        # the seed's radvd.conf, RAs at most 3 s apart (RFC 6275 7.5 allows this) to keep
        # the boot short
        seed = open(os.path.join(args.repo, "tests", "data", "radvd.seed.conf")).read()
        with open("/run/radvd-test.conf", "w") as f:
            f.write(seed.replace("MaxRtrAdvInterval 10;", "MaxRtrAdvInterval 3;"))
        radvd = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "radvd", "-C", "/run/radvd-test.conf", "-n", "-p",
            "/run/radvd-test.pid", env=env, stdout=sys.stderr, stderr=sys.stderr)

        # what nl80211 over pyroute2 and pyric each report on hwsim
        try:
            phys = await read_phys_iw()
            R["iw_inventory"] = {n: {"phy": p.phy, "ap": p.ap, "iftype": p.iftype,
                                     "nfreqs": len(p.freqs or {}),
                                     "f2422": (p.freqs or {}).get(2422, "absent"),
                                     "f2467": (p.freqs or {}).get(2467, "absent")}
                                 for n, p in phys.items()}
            # the fallback: pyric's phyinfo in place of the dump's frequencies
            from ha.wireless.hostapd import PhyInfo
            from ha.wireless.manager import fill_freqs_pyric
            alt = {n: PhyInfo(n, p.phy, p.ap, None) for n, p in phys.items()}
            fill_freqs_pyric(alt)
            a, b = phys["wlan0"].freqs or {}, alt["wlan0"].freqs or {}
            R["pyric_fallback"] = {
                "same_2ghz": ([f for f in sorted(a) if 2400 < f < 2500]
                              == [f for f in sorted(b) if 2400 < f < 2500]),
                "below_2ghz_iw": sum(1 for f in a if f < 2400),
                "n_iw": len(a), "n_pyric": len(b),
                "radar_iw": sum(1 for v in a.values() if v and "radar" in v),
                "radar_pyric": sum(1 for v in b.values() if v and "radar" in v),
                "no_ir_iw": sum(1 for v in a.values() if v and "no-IR" in v),
                "f2422": b.get(2422, "absent"), "f2467": b.get(2467, "absent"),
                "disagree": sorted(f"{f}: iw {a[f]!r} pyric {b.get(f)!r}" for f in a
                                   if a[f] != b.get(f))[:12]}
        except Exception as e:
            R["iw_inventory"] = {"error": repr(e)}
        pyric_r = {}
        try:
            import pyric.pyw as pyw
            pyric_r["winterfaces"] = sorted(pyw.winterfaces())
            card = pyw.getcard("wlan0")
            pyric_r["devinfo_mode"] = pyw.devinfo(card)["mode"]
            info = pyw.phyinfo(card)
            pyric_r["modes"] = info["modes"]
            pyric_r["bands"] = {b: len(v["rfs"] or []) for b, v in info["bands"].items()}
            pyric_r["regget"] = pyw.regget()
            try:
                pyric_r["chget"] = pyw.chget(card)
            except Exception as e:
                pyric_r["chget"] = repr(e)
        except Exception as e:
            pyric_r["error"] = repr(e)
        R["pyric"] = pyric_r
        mark("inventory", iw=R["iw_inventory"], pyric=pyric_r)

        # a station in its own namespace: connect to home, then move to remote
        sta_phy = open("/sys/class/net/wlan2/phy80211/name").read().strip()
        for cmd in (("ip", "netns", "add", "sta"),
                    ("iw", "phy", sta_phy, "set", "netns", "name", "sta")):
            rc, out = await sh(*cmd)
            if rc:
                R["errors"].append(f"{cmd}: {out}")
        await sh("ip", "link", "set", "wlan2", "up", ns="sta")

        async def linked(ssid):
            async def f():
                rc, out = await sh("iw", "dev", "wlan2", "link", ns="sta")
                return f"SSID: {ssid}" in out
            return f

        mark("station_ready")
        await sh("iw", "dev", "wlan2", "connect", "home", "2422", ns="sta")
        ok = await wait_for(await linked("home"), 30)
        mark("home_linked")

        async def count(name, n):
            async def f():
                return (await row(name))["station_count"] == n
            return f
        await wait_for(await count("wlan0", 1), 10)
        async def address(prefix):
            async def f():
                rc, out = await sh("ip", "-6", "-o", "addr", "show", "dev", "wlan2",
                                   "scope", "global", ns="sta")
                return re.findall(rf"inet6 ({prefix}[0-9a-f:]+)/64", out)
            return f
        home_addr = await wait_for(await address("2001:db8::"), 40)
        mark("connect_home", linked=bool(ok), address=home_addr, wlan0=(await row("wlan0"))["station_count"],
             wlan1=(await row("wlan1"))["station_count"],
             link=(await sh("iw", "dev", "wlan2", "link", ns="sta"))[1])

        await sh("iw", "dev", "wlan2", "disconnect", ns="sta")
        await sh("iw", "dev", "wlan2", "connect", "remote", "2447", ns="sta")
        ok = await wait_for(await linked("remote"), 30)
        mark("remote_linked")
        await wait_for(await count("wlan1", 1), 10)
        await wait_for(await count("wlan0", 0), 10)
        mark("remote_counted")
        foreign_addr = await wait_for(await address("2001:db8:1::"), 40)
        mark("connect_remote", linked=bool(ok), address=foreign_addr, wlan0=(await row("wlan0"))["station_count"],
             wlan1=(await row("wlan1"))["station_count"])

        # kill wlan0's hostapd: it comes back; the station on wlan1 stays
        old_pid = wm.children["wlan0"].pid
        wlan1_pid = wm.children["wlan1"].pid
        os.kill(old_pid, signal.SIGKILL)
        drops, wlan1_counts, samples = 0, set(), 0
        end = time.monotonic() + 60
        back = False
        while time.monotonic() < end:
            rc, out = await sh("iw", "dev", "wlan2", "link", ns="sta")
            samples += 1
            if "SSID: remote" not in out:
                drops += 1
            wlan1_counts.add((await row("wlan1"))["station_count"])
            r0 = await row("wlan0")
            if r0["mode"] == "AP" and r0["pid"] not in (None, old_pid):
                back = True
                if samples >= 10:
                    break
            await asyncio.sleep(0.2)
        r0 = await row("wlan0")
        mark("kill_hostapd", back=back, old_pid=old_pid, new_pid=r0["pid"],
             restarts=r0["restarts"], last_exit=r0["last_exit"], station_drops=drops,
             samples=samples, wlan1_counts=sorted(wlan1_counts),
             wlan1_pid_same=wm.children["wlan1"].pid == wlan1_pid)

        # a bad second radio (the first one's channel) is refused; wlan0 stays untouched
        pid0 = wm.children["wlan0"].pid
        bad = [dict(good[0]), dict(good[1], channel=3)]
        await wm.reload(bad)
        await asyncio.sleep(1)
        r0, r1 = await row("wlan0"), await row("wlan1")
        mark("bad_reload", wlan0_mode=r0["mode"], wlan0_pid_same=r0["pid"] == pid0,
             wlan1_mode=r1["mode"], wlan1_state=r1["state"], wlan1_reason=r1["reason"],
             text=await wm._radios_command([]))

        # back to a good config, wlan1 now WPA2-PSK and overlapping (a warning only)
        good2 = [dict(good[0]), dict(good[1], channel=6, key="correct horse battery")]
        await wm.reload(good2)

        async def wlan1_up():
            return (await row("wlan1"))["mode"] == "AP"
        await wait_for(wlan1_up, 30)
        r0, r1 = await row("wlan0"), await row("wlan1")
        cfg = ""
        try:
            cfg = await wm.children["wlan1"].ctrl.request("GET_CONFIG")
        except Exception as e:
            cfg = repr(e)
        mark("wpa_reload", wlan0_pid_same=r0["pid"] == pid0, wlan1_mode=r1["mode"],
             wlan1_channel=r1["channel"], wlan1_freq=r1["frequency"],
             wlan1_warnings=r1["warnings"], get_config=cfg)
        # a real WPA2-PSK association with wpa_supplicant, when it is installed
        if os.path.exists("/sbin/wpa_supplicant") or os.path.exists("/usr/sbin/wpa_supplicant"):
            await sh("iw", "dev", "wlan2", "disconnect", ns="sta")
            with open("/run/sta-wpa.conf", "w") as f:
                f.write('network={\n ssid="remote"\n psk="correct horse battery"\n'
                        ' key_mgmt=WPA-PSK\n}\n')
            rc, out = await sh("wpa_supplicant", "-B", "-D", "nl80211", "-i", "wlan2", "-c",
                               "/run/sta-wpa.conf", "-P", "/run/sta-wpa.pid", ns="sta")
            ok = await wait_for(await linked("remote"), 40)
            await wait_for(await count("wlan1", 1), 10)
            r1 = await row("wlan1")
            mark("wpa2_station", started=rc == 0, linked=bool(ok),
                 wlan1=r1["station_count"], security=r1["security"])
            try:
                os.kill(int(open("/run/sta-wpa.pid").read()), signal.SIGTERM)
            except (OSError, ValueError):
                pass
        else:
            mark("wpa2_station", skipped="wpa_supplicant is not installed")
        R["radios_json"] = json.loads(await wm._radios_command(["json"]))
        R["rss_kb"]["end"] = rss_kb()
    except Exception:
        R["errors"].append(traceback.format_exc())
    finally:
        if radvd is not None and radvd.returncode is None:
            radvd.terminate()
            await radvd.wait()
        pids = [c.pid for c in wm.children.values()]
        await wm.stop()
        alive = [p for p in pids if p and os.path.exists(f"/proc/{p}")]
        rc, out = await sh("iw", "dev")
        flags = {}
        for n in ("wlan0", "wlan1"):
            try:
                flags[n] = int(open(f"/sys/class/net/{n}/flags").read(), 16) & 1
            except OSError as e:
                flags[n] = repr(e)
        mark("stopped", alive=alive, iw_dev=parse_iw_dev(out), up_flags=flags)


if __name__ == "__main__":
    guest_main(main, 400)
