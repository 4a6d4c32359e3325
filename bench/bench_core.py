"""The home agent's whole protocol path, BU bytes in to BA bytes out, per second.

    python3 bench/bench_core.py [N]

Drives ha.core.home_agent.HomeAgentCore as the daemon does, without sockets:
receive_packet(BU bytes), the AddBinding action reported done, the BA taken
from datagrams_to_send(). Beside it, in the same run: the codec alone
(parse_packet + decode_mh of the same BUs, encode_mh + build_ba_packet of the
BAs) and the rules alone (ha.core.registration on pre-decoded BUs), so the
ratios say what the engine adds over the parts it is made of.
"""

from __future__ import annotations

import os
import sys
import time
from ipaddress import IPv6Address, IPv6Network

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from ha.core import registration as reg  # noqa: E402
from ha.core.binding_cache import BindingCache  # noqa: E402
from ha.core.home_agent import HomeAgentCore, HomeAgentSettings  # noqa: E402
from ha.wire.ipv6 import build_ba_packet, build_bu_packet, parse_packet  # noqa: E402
from ha.wire.mobility import BindingAck, BindingUpdate, decode_mh, encode_mh  # noqa: E402

HA = IPv6Address("2001:db8::")
HOME = IPv6Network("2001:db8::/64")


def rules() -> reg.HomeAgentConfig:
    return reg.HomeAgentConfig(served_prefixes=(HOME,), ha_addresses=(HA,), dad_enabled=False)


def packets(n: int, seq: int) -> list[tuple[bytes, IPv6Address, IPv6Address]]:
    out = []
    for i in range(n):
        hoa = IPv6Address(int(HA) + 1 + i)
        coa = IPv6Address(int(IPv6Address("2001:db8:1::")) + 1 + i)
        bu = BindingUpdate(sequence=seq, lifetime=1000, ack=True, home_registration=True)
        out.append((build_bu_packet(coa, HA, hoa, encode_mh(bu, hoa, HA)), hoa, coa))
    return out


def run_core(core: HomeAgentCore, pkts) -> float:
    t = time.perf_counter()
    for data, _, _ in pkts:
        core.receive_packet(data, 1, 0.0)
        while (a := core.next_action()) is not None:
            core.action_done(a, 0.0)
        core.datagrams_to_send(0.0)
    return time.perf_counter() - t


def run_codec(pkts) -> float:
    t = time.perf_counter()
    for data, hoa, coa in pkts:
        p = parse_packet(data)
        bu = decode_mh(p.payload, *p.pseudo_header_addresses())
        ba = BindingAck(status=0, sequence=bu.sequence, lifetime=250)
        build_ba_packet(HA, coa, hoa, encode_mh(ba, HA, hoa))
    return time.perf_counter() - t


def run_rules(pkts, seq: int) -> float:
    cache, cfg = BindingCache(len(pkts) + 1), rules()
    ctxs = [reg.BUContext(BindingUpdate(sequence=seq, lifetime=1000, ack=True,
                                        home_registration=True), src=coa, dst=HA, hoa=hoa)
            for _, hoa, coa in pkts]
    t = time.perf_counter()
    for ctx in ctxs:
        reg.process_binding_update(ctx, cache, cfg, 0.0)
    return time.perf_counter() - t


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    import logging
    logging.disable(logging.INFO)  # as the daemon runs without -d
    first, refresh = packets(n, 1), packets(n, 2)
    core = HomeAgentCore(HomeAgentSettings(ha_address=HA, rules=rules()), capacity=n + 1)
    t_new = run_core(core, first)
    t_refresh = run_core(core, refresh)
    assert core.stats["BA 0"] == 2 * n, core.stats
    t_codec = run_codec(first)
    t_rules = run_rules(first, 1)
    print(f"python {sys.version.split()[0]}, {n:,} home addresses")
    print(f"{'core: new registration':32}{n / t_new:>12,.0f} BU->BA/s")
    print(f"{'core: refresh':32}{n / t_refresh:>12,.0f} BU->BA/s")
    print(f"{'codec alone (parse+decode+BA)':32}{n / t_codec:>12,.0f} /s")
    print(f"{'rules alone (registration.py)':32}{n / t_rules:>12,.0f} /s")
    print(f"core new / (codec + rules): {(t_codec + t_rules) / t_new:.2f} "
          f"(1.00 = the engine adds nothing to its parts)")


if __name__ == "__main__":
    main()
