"""The home agent on a kernel that has mip6 and ip6_tunnel, in one guest boot.

Run inside the qemu guest (tests/qemu/harness.py) by test_kernel_datapath.py:

    python3 guest_kernel_datapath.py --repo /run/src

It builds the seed's lab (ha/lab/topology.py) in namespaces of the guest, starts
denalid with the datapath it chooses by itself (the kernel backend, since
ip6_tunnel loads here), registers raven with ha.lab.bu_probe, and records what
the kernel holds: the ip6tnl device toward the care-of address, the route of
the home address, a ping from the correspondent answered by raven through a
real ip6tnl at raven's end; then the deregistration and the teardown. It
records and decides nothing: the test on the host asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

R: dict = {"steps": {}, "errors": []}


def mark(name, **kw):
    R["steps"][name] = kw
    print(f"guest: {name}: {json.dumps(kw)[:300]}", file=sys.stderr, flush=True)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--repo", required=True)
    a = p.parse_args()
    sys.path.insert(0, a.repo)
    os.chdir(a.repo)
    from ha.lab.topology import CN_ADDRESS, HA_HOME, MN_COA, MN_HOME, SeedLab, run

    def probe(lifetime):
        r = run([sys.executable, "-m", "ha.lab.bu_probe", "--coa", str(MN_COA), "--ha",
                 str(HA_HOME), "--hoa", str(MN_HOME), "--lifetime", str(lifetime),
                 "--timeout", "10", "--json"], lab.mn, check=False, timeout=60)
        return json.loads(r.stdout) if r.returncode == 0 else {"error": r.stderr[-500:]}

    t0 = time.monotonic()
    lab = SeedLab()
    try:
        lab.build()
        lab.start_daemon(os.path.join(a.repo, "tests", "data", "mip6d.ha.conf"),
                         log_path="/tmp/denalid.log")
        mark("started", seconds=round(time.monotonic() - t0, 1))
        lab.move_mn("remote")
        mark("register", ba=probe(3600))
        mark("kernel", tunnels=run(["ip", "-6", "tunnel", "show"], lab.ha).stdout,
             routes=run(["ip", "-6", "route", "show", "table", "all"], lab.ha).stdout,
             proxy=run(["ip", "-6", "neigh", "show", "proxy"], lab.ha).stdout,
             modules=open("/proc/modules").read().split("\n").__len__(),
             ip6_tunnel=os.path.isdir("/sys/module/ip6_tunnel"),
             log=open("/tmp/denalid.log").read()[-1500:])
        # raven's end of the tunnel is a real ip6tnl too: its home address on it
        for cmd in (["ip", "-6", "tunnel", "add", "ip6tnl1", "mode", "ip6ip6", "local",
                     str(MN_COA), "remote", str(HA_HOME)],
                    ["ip", "link", "set", "ip6tnl1", "up"],
                    ["ip", "addr", "add", f"{MN_HOME}/128", "dev", "ip6tnl1", "nodad"],
                    ["ip", "-6", "rule", "add", "from", str(MN_HOME), "table", "100"],
                    ["ip", "-6", "route", "add", "default", "dev", "ip6tnl1", "table", "100"]):
            run(cmd, lab.mn)
        ping = run(["ping", "-6", "-c", "3", "-i", "0.3", "-w", "15", str(MN_HOME)], lab.cn,
                   check=False, timeout=30)
        stats = json.loads(lab.console("stats json"))
        mark("ping", rc=ping.returncode, out=ping.stdout[-300:], stats=stats)
        mark("deregister", ba=probe(0))
        time.sleep(1)
        mark("after_deregistration",
             tunnels=run(["ip", "-6", "tunnel", "show"], lab.ha).stdout,
             routes=run(["ip", "-6", "route", "show", "table", "all"], lab.ha).stdout)
        rc = lab.stop_daemon()
        mark("stopped", rc=rc, nft=run(["nft", "list", "ruleset"], lab.ha, check=False).stdout,
             links=run(["ip", "-o", "link"], lab.ha).stdout,
             rules=run(["ip", "-6", "rule"], lab.ha).stdout)
    except Exception:
        R["errors"].append(traceback.format_exc())
        try:
            R["log"] = open("/tmp/denalid.log").read()[-3000:]
        except OSError:
            pass
    finally:
        lab.teardown()
    R["seconds"] = round(time.monotonic() - t0, 1)
    print("DENALI-JSON " + json.dumps(R), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
