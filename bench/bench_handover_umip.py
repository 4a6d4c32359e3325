"""The handover blackout with UMIP's mip6d as the mobile node and denalid as its home agent.

    python3 bench/bench_handover_umip.py [--moves 3] [--ha base|tdd|both]
        [--optimistic-handoff] [--isolate-ha] [--control] [--keep-json FILE]

UMIP needs a kernel with CONFIG_IPV6_MIP6, which this host lacks, so the whole
bench runs in one qemu guest on Debian's stock kernel (tests/qemu/harness.py;
the guest side is tests/qemu/guest_umip_handover.py): the seed's lab in
namespaces, denalid as home agent with RAs every 0.03-0.07 s (Advertisement
Interval option, unicast answers to RSs), UMIP's mip6d (built by
../shared/peers/umip/build.sh) as the mobile node with the kernel's DAD on and
optimistic DAD (RFC 4429) allowed at its interface, a correspondent, and a UDP
probe stream at 1,000 datagrams/s each way. Each move is a reassociation: the
MN's port goes down, changes bridge, comes up.

Printed per direction (cn->mn, mn->cn) and per move (home->remote,
remote->home): the longest gap in received probes for each move and their
median; the breakdown from link-up to the BU and the BA denalid logged (-d 7),
to the stream resuming; and, as the reference measured in the same run, the
longest gap of the steady stream just before each move (what TCG's own jitter
costs). qemu TCG emulates every instruction: these are a lower bound on speed,
to be read beside bench/bench_handover.py's namespace figures, not against them.
When the home agent has a setting to tunnel while its DAD runs
(`DenaliTunnelDuringDad`), the run is made with it off and on (about 3-4
minutes here). --optimistic-handoff adds UMIP with `OptimisticHandoff enabled`
(it sends from its home address right after the BU instead of blackholing
until the BA); --isolate-ha adds that with the MN's kernel DAD off too, so
that what is left of the home->remote blackout is the home agent's side;
--control adds RAs without the Advertisement Interval option. Each added pair
costs about 2.5 minutes.

Figures only, nothing asserted; exits 0 with the reason when qemu, the guest
kernel or UMIP's build is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "qemu"))

import harness  # noqa: E402
import umip_peer  # noqa: E402

TDD_LINE = "DenaliTunnelDuringDad enabled;"
OH_LINE = "OptimisticHandoff enabled;"


def tunnel_during_dad_available() -> bool:
    """Whether ha/config knows the setting (it may land after this bench)."""
    for dirpath, _, names in os.walk(os.path.join(ROOT, "ha", "config")):
        for n in names:
            if n.endswith((".py", ".spec")):
                with open(os.path.join(dirpath, n), errors="replace") as f:
                    if "DenaliTunnelDuringDad" in f.read():
                        return True
    return False


def ms(v) -> str:
    return "-" if v is None else f"{v:.0f}"


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def report(data: dict, moves_each_way: int) -> None:
    print(f"guest clocksource: {data.get('clocksource')}")
    for V in data["variants"]:
        ra_min, ra_max, opt = V["ra"]
        label = (V["name"] + ": HA " + (V["extra"] or "the seed's mip6d.conf")
                 + f", RAs {ra_min}-{ra_max} s, Advertisement Interval option "
                 + ("on" if opt else "off")
                 + (f"; UMIP {V['mn_extra']}" if V.get("mn_extra") else "")
                 + ("" if V.get("mn_dad", True) else "; kernel DAD OFF at the MN"))
        print(f"\nvariant {label}\n  denalid up at {V.get('denalid_started')} s, "
              f"UMIP registered at {V.get('registered')} s, variant took {V.get('seconds')} s, "
              f"guest CPU busy {100 * V.get('cpu_busy', 0):.0f}% during the moves")
        for d, p in V.get("probes", {}).items():
            print(f"  probe {d}: {p['received']} received of {p['sent']} sent "
                  f"({p['send_errors']} send errors)")
        st = V.get("ha_stats") or {}
        if isinstance(st, dict):
            keys = ("BU received", "bindings forwarded during DAD")
            print("  home agent stats: " + ", ".join(f"{k} {st[k]}" for k in keys if k in st))
        for note in V.get("notes", []):
            print(f"  note: {note}")
        moves = V.get("moves", [])
        if not moves:
            print("  no moves were made")
            continue
        for way in ("home->remote", "remote->home"):
            these = [m for m in moves if m["move"] == way]
            for d in ("cn->mn", "mn->cn"):
                gaps = [m[d]["gap_ms"] for m in these if d in m]
                flags = ["" if m.get(d, {}).get("resumed") else "(no resume)" for m in these]
                listed = ", ".join(f"{g:.0f}{f}" for g, f in zip(gaps, flags))
                print(f"  umip mn  {way:13s} {d}  median {ms(med(gaps))} ms "
                      f"({len(gaps)} moves: {listed} ms)")
            print(f"  umip mn  {way:13s} breakdown, median ms from link-up: "
                  f"BU at HA {ms(med([m.get('bu_from_up_ms') for m in these]))}, "
                  f"BA {ms(med([m.get('ba_from_up_ms') for m in these]))}, "
                  f"cn->mn resumes {ms(med([m['cn->mn']['resume_from_up_ms'] for m in these if 'cn->mn' in m]))}, "
                  f"mn->cn resumes {ms(med([m['mn->cn']['resume_from_up_ms'] for m in these if 'mn->cn' in m]))}; "
                  f"BUs per move {[m.get('bu_count') for m in these]}")
            print(f"  umip mn  {way:13s} UMIP's side, median ms from link-up: movement "
                  f"detected {ms(med([m.get('umip_moved_ms') for m in these]))}, first BU sent "
                  f"{ms(med([m.get('umip_bu_ms') for m in these]))}, first BA taken "
                  f"{ms(med([m.get('umip_ba_ms') for m in these]))}; its router declared lost "
                  f"{[m.get('umip_router_expiries') for m in these]} times per move")
        base = [m[d]["baseline_gap_ms"] for m in moves for d in ("cn->mn", "mn->cn") if d in m]
        print(f"  reference: longest gap of the steady stream in the "
              f"second before each move, median {ms(med(base))} ms, max {ms(max(base, default=None))} ms"
              f" (TCG's own jitter); link down for {ms(med([m['link_down_ms'] for m in moves]))} ms"
              f" per move (the port's down/move/up)")
        print("  per move (ms from link-up): BU, BA; cn->mn gap [start, resume]; mn->cn gap [start, resume]")
        for m in moves:
            parts = []
            for d in ("cn->mn", "mn->cn"):
                if d in m:
                    g = m[d]
                    parts.append(f"{d} {g['gap_ms']:.0f} [{g['gap_from_up_ms']:.0f}, "
                                 f"{g['resume_from_up_ms']:.0f}] lost {g['lost']}")
            print(f"    {m['move']:13s} BU {ms(m.get('bu_from_up_ms'))} "
                  f"BA {ms(m.get('ba_from_up_ms'))}  " + "; ".join(parts))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--moves", type=int, default=3, help="moves each way (default 3)")
    p.add_argument("--rate", type=float, default=1000.0, help="probes per second each way")
    p.add_argument("--no-optimistic", action="store_true",
                   help="the MN's interface without optimistic DAD (RFC 4429)")
    p.add_argument("--ha", choices=("base", "tdd", "both"), default=None,
                   help="home agent without/with DenaliTunnelDuringDad (default: both when "
                        "the setting exists, else base)")
    p.add_argument("--optimistic-handoff", action="store_true",
                   help="also run UMIP with OptimisticHandoff enabled (it sends from its home "
                        "address right after the BU instead of waiting for the BA)")
    p.add_argument("--control", action="store_true",
                   help="also run the RAs without the Advertisement Interval option (UMIP "
                        "then keeps a router for its 1 s lifetime instead of 70 ms)")
    p.add_argument("--isolate-ha", action="store_true",
                   help="also run UMIP with OptimisticHandoff and the kernel's DAD off at the "
                        "MN, with and without DenaliTunnelDuringDad: what is left is the home "
                        "agent's side")
    p.add_argument("--variants-json", help="the variant list itself (see the guest script)")
    p.add_argument("--keep-json", help="write the guest's whole report here")
    p.add_argument("--log", help="the guest's serial console, as it comes")
    a = p.parse_args()

    why = harness.missing_reason() or umip_peer.mip6d_missing()
    if os.geteuid() != 0:
        why = "needs root (qemu's 9p export of /)"
    if why:
        print(f"bench_handover_umip: skipped: {why}")
        return 0
    has_tdd = tunnel_during_dad_available()
    ha = a.ha or ("both" if has_tdd else "base")
    if ha != "base" and not has_tdd:
        print("bench_handover_umip: ha/config has no DenaliTunnelDuringDad yet: base only")
        ha = "base"
    has = [("base", "")] if ha in ("base", "both") else []
    has += [("tdd", TDD_LINE)] if ha in ("tdd", "both") else []
    profiles = [("", [0.03, 0.07, True])] + ([("noivl-", [0.03, 0.07, False])]
                                              if a.control else [])
    mns = [("", "")] + ([("-oh", OH_LINE)] if a.optimistic_handoff else [])
    variants = [{"name": pre + name + mname, "extra": extra, "ra": ra, "mn_extra": mn_extra}
                for pre, ra in profiles for mname, mn_extra in mns for name, extra in has]
    if a.isolate_ha:
        variants += [{"name": name + "-oh-mn-nodad", "extra": extra, "mn_extra": OH_LINE,
                      "mn_dad": False} for name, extra in has]
    if a.variants_json:
        variants = json.loads(a.variants_json)
    kernel = harness.find_kernel()
    with open(umip_peer.MIP6D, "rb") as f:
        mip6d = f.read()
    args = f"--variants '{json.dumps(variants)}'"
    script = ("export PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=/run/src\n"
              f"exec {sys.executable} /run/src/tests/qemu/guest_umip_handover.py "
              f"--repo /run/src --mip6d /run/job/mip6d --kroot {kernel.root} "
              f"--moves {a.moves} --rate {a.rate} --optimistic {0 if a.no_optimistic else 1} "
              f"{args} 2>&1\n")
    print(f"UMIP mip6d as mobile node, denalid as home agent: qemu TCG, a lower bound on speed; "
          f"RAs 0.03-0.07 s, DAD on at the MN (optimistic {'off' if a.no_optimistic else 'on'}), "
          f"{a.rate:.0f} probes/s each way, {a.moves} moves each way; variants "
          + ", ".join(v["name"] for v in variants), flush=True)
    t0 = time.monotonic()
    res = harness.run_guest(kernel, script, files={"mip6d": mip6d}, timeout=600 * len(variants),
                            memory_mb=768, src=ROOT, log_path=a.log)
    data = res.json()
    if data is None:
        print(f"the guest reported nothing (rc {res.rc}); console tail:\n{res.console[-4000:]}")
        return 1
    if a.keep_json:
        with open(a.keep_json, "w") as f:
            json.dump(data, f, indent=1)
    report(data, a.moves)
    for e in data["errors"]:
        print(f"\nguest error: {e}")
    for V in data["variants"]:
        if not V.get("moves"):
            print(f"\n----- {V['name']}: denalid log tail\n{V.get('denalid_log_tail', '')}")
            print("----- UMIP log head\n" + "\n".join(V.get("umip_log_head", [])))
    print(f"\nguest boot to power-off {res.seconds:.0f} s (wall {time.monotonic() - t0:.0f} s)")
    return 0 if not data["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
