"""The seed document's scenario, run on this machine in network namespaces.

    python3 -m ha.scenario [--keep-logs DIR]

Builds the seed's network (denali with its home and remote links, a
correspondent on the home link, the laptop raven at home), starts denalid
in denali's namespace with the seed's own mip6d.conf and radvd.conf, moves
raven to the remote link, lets it register its care-of address, prints the
binding cache as the seed's `bc` shows it, sends a ping from the
correspondent to raven's home address through the tunnel, and tears it all
down. Needs root (namespaces) and the tools ./setup.sh installs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

# The seed's files, as printed in the article (the brace-less radvd.conf too).
SEED_MIP6D_HA = """\
NodeConfig HA;

## If set to > 0, will not detach from tty
DebugLevel 0;

## List of interfaces where we serve as Home Agent
Interface "wlan0";
UseMnHaIPsec disabled;
"""

SEED_RADVD = """\
interface wlan0
        AdvSendAdvert on;
        AdvIntervalOpt on;

        MaxRtrAdvInterval 10;
        MinRtrAdvInterval 1;
        MinDelayBetweenRAs 1;
        AdvHomeAgentFlag on;

        prefix 2001:db8::/64
        AdvOnLink on;
        AdvAutonomous on;
        AdvRouterAddr on;

interface wlan1
        AdvSendAdvert on;
        AdvIntervalOpt on;

        MaxRtrAdvInterval 10;
        MinRtrAdvInterval 1;
        MinDelayBetweenRAs 1;
        AdvHomeAgentFlag off;

        prefix 2001:db8:1::/64
        AdvOnLink on;
        AdvAutonomous on;
        AdvRouterAddr on;
"""


def say(msg: str) -> None:
    print(f"[scenario] {msg}", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m ha.scenario", description=__doc__.split("\n")[0])
    p.add_argument("--keep-logs", metavar="DIR", help="keep the daemon log and configs here")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("scenario: needs root to make network namespaces", file=sys.stderr)
        return 2
    from ha.lab import CN_ADDRESS, HA_HOME, MN_COA, MN_HOME, SeedLab, run

    workdir = args.keep_logs or tempfile.mkdtemp(prefix="denali-scenario-")
    os.makedirs(workdir, exist_ok=True)
    mip6d = os.path.join(workdir, "mip6d.conf")
    radvd = os.path.join(workdir, "radvd.conf")
    log_path = os.path.join(workdir, "denalid.log")
    with open(mip6d, "w") as f:
        f.write(SEED_MIP6D_HA)
    with open(radvd, "w") as f:
        f.write(SEED_RADVD)

    lab = SeedLab()
    say("building the seed's network: denali (home agent), cn, raven; links home and remote")
    lab.build()
    try:
        say(f"starting denalid -c {mip6d} -C {radvd} -d 7 in {lab.ha}")
        lab.start_daemon(mip6d, "-C", radvd, log_path=log_path)
        say("raven is at home with 2001:db8::beef; moving it to the remote cell")
        lab.move_mn("remote")
        say(f"raven's care-of address is {MN_COA}; sending its Binding Update to {HA_HOME}")
        r = run([sys.executable, "-m", "ha.bu_probe", "--coa", str(MN_COA), "--ha",
                 str(HA_HOME), "--hoa", str(MN_HOME), "--lifetime", "262140",
                 "--timeout", "5"], lab.mn, check=False)
        print(r.stdout.strip() or r.stderr.strip())
        if r.returncode != 0:
            say("no Binding Acknowledgement: see the daemon log " + log_path)
            return 1
        say("denali's binding cache (mip6d> bc):")
        print(lab.console("bc"))
        say(f"ping from the correspondent {CN_ADDRESS} to raven's home address {MN_HOME}:")
        ping = run(["ping", "-c", "2", "-i", "0.5", "-W", "1", str(MN_HOME)], lab.cn,
                   check=False)
        counters = json.loads(lab.console("stats json"))
        tunnelled = counters.get("datapath tunnelled_packets", 0)
        say(f"{tunnelled} packets went through the home agent's tunnel to {MN_COA}"
            " (raven answers once its own mobile-node mode decapsulates them)"
            if "0 received" in ping.stdout else "ping answered through the tunnel")
        say("stopping denalid (SIGTERM): bindings, proxy entries and the tunnel go away")
        rc = lab.stop_daemon()
        leftovers = run(["ip", "-6", "route", "show", "table", "6275"], lab.ha,
                        check=False).stdout.strip()
        say(f"denalid exited with {rc}; routes left in its table: {leftovers or 'none'}")
        return 0 if rc == 0 and not leftovers else 1
    finally:
        lab.teardown()
        say(f"namespaces removed; daemon log: {log_path}")


if __name__ == "__main__":
    sys.exit(main())
