"""The seed document's scenario, run on this machine in network namespaces.

    python3 -m ha.lab.scenario [--keep-logs DIR] [--no-auth]

Builds the seed's network (denali with its home and remote links, a
correspondent on the home link, the laptop raven at home) and runs both ends
from the seed's own files: denalid in denali's namespace with the home
agent's mip6d.conf and radvd.conf, denalid in raven's namespace with the
mobile node's mip6d.conf. Then it does what the article does: moves raven to
the remote cell (its cable changes bridge, as `iwconfig wlan0 essid remote`
changed cell), waits for raven to notice, form a care-of address and
register, prints raven's `bul` and denali's `bc`, pings through the tunnel
both ways, brings raven home, and tears everything down. Needs root
(namespaces) and the tools ./setup.sh installs.

Authenticated by default, as a new install is closed: each run makes a fresh
RFC 4285 key (os.urandom, 128 bits) and adds it to both files with denali's
``DenaliMnHaKey`` line; the home agent's file also gets
``DefaultBindingAclPolicy deny;`` and ``BindingAclPolicy <raven> allow;``, so
it serves raven's home address alone and only from signed BUs. ``--no-auth``
runs the seed's files exactly as printed (unauthenticated, UMIP's allow).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

# The seed's files, as printed in the article (the brace-less radvd.conf too).
SEED_MIP6D_HA = """\
NodeConfig HA;

## If set to > 0, will not detach from tty
DebugLevel 0;

## List of interfaces where we serve as Home Agent
Interface "wlan0";
UseMnHaIPsec disabled;
"""

SEED_MIP6D_MN = """\
NodeConfig MN;

DebugLevel 7;

UseMnHaIPsec disabled;
DoRouteOptimizationMN disabled;
DoRouteOptimizationCN disabled;

Interface "wlan0";
MnHomeLink "wlan0" {
        HomeAddress 2001:db8::beef/64;
        HomeAgentAddress 2001:db8::;
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


def with_auth(ha_text: str, mn_text: str, hoa: str, key_hex: str, spi: int = 256):
    """The seed's two files with raven's MN-HA key (RFC 4285) in both.

    The home agent's file denies by default and allows raven's home address
    (a mip6d.conf key line does not admit its address by itself); the mobile
    node's line goes before its MnHomeLink block, which the seed leaves open.
    """
    line = f'DenaliMnHaKey {hoa} {spi} "{key_hex}";\n'
    ha = ha_text + ("DefaultBindingAclPolicy deny;\n"
                    f"BindingAclPolicy {hoa} allow;\n" + line)
    head, sep, tail = mn_text.partition("MnHomeLink")
    if not sep:
        raise ValueError("the mobile node's file has no MnHomeLink block")
    return ha, head + line + "\n" + sep + tail


def say(msg: str) -> None:
    print(f"[scenario] {msg}", flush=True)


def wait(what: str, predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise TimeoutError(f"{what}: nothing after {timeout:.0f} s")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m ha.lab.scenario", description=__doc__.split("\n")[0])
    p.add_argument("--keep-logs", metavar="DIR", help="keep the daemons' logs and configs here")
    p.add_argument("--no-auth", action="store_true",
                   help="run the seed's files as printed, without an RFC 4285 key")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("scenario: needs root to make network namespaces", file=sys.stderr)
        return 2
    from ha.lab.topology import HA_HOME, MN_HOME, SeedLab, run

    workdir = args.keep_logs or tempfile.mkdtemp(prefix="denali-scenario-")
    os.makedirs(workdir, exist_ok=True)
    ha_text, mn_text = SEED_MIP6D_HA, SEED_MIP6D_MN
    if not args.no_auth:
        ha_text, mn_text = with_auth(ha_text, mn_text, str(MN_HOME), os.urandom(16).hex())
    files = {}
    for name, text in (("mip6d-ha.conf", ha_text), ("radvd.conf", SEED_RADVD),
                       ("mip6d-mn.conf", mn_text)):
        files[name] = os.path.join(workdir, name)
        # 0600 from birth: the files hold the key
        fd = os.open(files[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
    if args.no_auth:
        say("the seed's files as printed: BUs and BAs unauthenticated")
    else:
        say(f"a fresh RFC 4285 key for {MN_HOME}, SPI 256, in both files "
            "(DenaliMnHaKey); denali denies other home addresses")

    lab = SeedLab()
    say("building the seed's network: denali (home agent), cn, raven; cells home and remote")
    lab.build()
    ok = False
    try:
        say(f"denali# denalid -c mip6d-ha.conf -C radvd.conf -d 7   (logs in {workdir})")
        lab.start_daemon(files["mip6d-ha.conf"], "-C", files["radvd.conf"],
                         log_path=os.path.join(workdir, "denali.log"))
        say("raven# denalid -c mip6d-mn.conf -d 7")
        lab.spawn(lab.mn, [sys.executable, "-m", "ha.daemon.main", "-c", files["mip6d-mn.conf"],
                           "-d", "7", "--vt-port", "7777"], os.path.join(workdir, "raven.log"))

        def raven(line):
            out = lab.console(line, check=False, ns=lab.mn, port=7777)
            return json.loads(out) if out and line.endswith("json") else out

        wait("raven at home", lambda: (raven("md json") or {}).get("location") == "home", 30)
        say("raven is at home with 2001:db8::beef; denali's binding cache is empty")
        say("raven# iwconfig wlan0 essid remote   (its cable moves to the remote cell)")
        lab.move_cable("remote")
        start = time.monotonic()
        binding = wait("denali's binding for raven", lambda: [
            b for b in json.loads(lab.console("bc json")) if b["hoa"] == str(MN_HOME)
            and b["status"] == "registered"], 60)[0]
        say(f"raven noticed the new router, formed care-of address {binding['coa']} and "
            f"registered in {time.monotonic() - start:.1f} s")
        stats = json.loads(lab.console("stats json"))
        signed = stats.get("BU authenticated", 0)
        failed = stats.get("BU authentication failed", 0)
        if not args.no_auth:
            say(f"denali authenticated {signed} BU(s) from raven (RFC 4285), "
                f"refused {failed}")
        say("raven# telnet localhost 7777 ... mip6d> bul")
        print(raven("bul"))
        say("denali# telnet localhost 7777 ... mip6d> bc")
        print(lab.console("bc"))
        say(f"raven# ping6 {HA_HOME}   (from its home address, through the tunnel)")
        r = run(["ping", "-6", "-c", "3", "-i", "0.3", "-w", "10", str(HA_HOME)], lab.mn,
                check=False)
        print("\n".join(r.stdout.strip().splitlines()[-2:]))
        say(f"cn# ping6 {MN_HOME}   (the correspondent reaches raven's home address)")
        r2 = run(["ping", "-6", "-c", "3", "-i", "0.3", "-w", "10", str(MN_HOME)], lab.cn,
                 check=False)
        print("\n".join(r2.stdout.strip().splitlines()[-2:]))
        say("raven# iwconfig wlan0 essid home   (back to the home cell)")
        lab.move_cable("home")
        wait("the deregistration", lambda: json.loads(lab.console("bc json")) == [], 60)
        say("raven is home again: it deregistered and denali's binding cache is empty")
        say("stopping both daemons (SIGTERM)")
        rc = lab.stop_daemon()
        leftovers = run(["ip", "-6", "route", "show", "table", "6275"], lab.ha,
                        check=False).stdout.strip()
        say(f"denalid exited with {rc}; routes left in its table: {leftovers or 'none'}")
        ok = rc == 0 and not leftovers and r.returncode == 0 and r2.returncode == 0 \
            and (args.no_auth or (signed > 0 and failed == 0))
        return 0 if ok else 1
    except TimeoutError as e:
        say(f"failed waiting for {e}; see the logs in {workdir}")
        return 1
    finally:
        lab.teardown()
        say("namespaces removed" + ("" if ok else f"; logs in {workdir}"))


if __name__ == "__main__":
    sys.exit(main())
