#!/usr/bin/env python3
"""Codec throughput: Binding Update / Binding Acknowledgement per second.

Prints each figure beside references measured in the same run on the same
bytes: a bare struct.unpack of the BU's fixed fields (the floor any Python
decoder pays) and scapy's dissection of the same packet (a general-purpose
parser). Nothing here is asserted; the daemon's target is >= 20,000 BU/s.

    python3 bench/bench_codec.py [--seconds 0.5] [--no-scapy]
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import time
from ipaddress import IPv6Address

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from ha.wire.ipv6 import build_ba_packet, build_bu_packet, parse_packet  # noqa: E402
from ha.wire.mobility import (  # noqa: E402
    AlternateCareOfAddress, BAStatus, BindingAck, BindingRefreshAdvice, BindingUpdate,
    decode_mh, encode_mh,
)

HOA = IPv6Address("2001:db8::beef")
HA = IPv6Address("2001:db8::")
COA = IPv6Address("2001:db8:1::2")


def rate(fn, seconds: float) -> float:
    """Calls of fn() per second, best of three runs of ~seconds/3 each."""
    n = 1
    while True:  # size a batch to about 20 ms
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt > 0.02:
            break
        n *= 2
    best = 0.0
    for _ in range(3):
        count, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 3:
            for _ in range(n):
                fn()
            count += n
        best = max(best, count / (time.perf_counter() - t0))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.6, help="time per figure")
    ap.add_argument("--no-scapy", action="store_true", help="skip the scapy reference")
    args = ap.parse_args()
    s = args.seconds

    bu = BindingUpdate(0x1234, 150, ack=True, home_registration=True)
    bu_acoa = BindingUpdate(0x1234, 150, ack=True, home_registration=True,
                            options=[AlternateCareOfAddress(COA)])
    ba = BindingAck(BAStatus.ACCEPTED, 0x1234, 150, options=[BindingRefreshAdvice(140)])
    bu_mh = encode_mh(bu, HOA, HA)
    bu_acoa_mh = encode_mh(bu_acoa, HOA, HA)
    ba_mh = encode_mh(ba, HA, HOA)
    bu_pkt = build_bu_packet(COA, HA, HOA, bu_mh)

    def daemon_bu_path():
        # what the HA runs per captured frame: walk, then decode with checksum
        p = parse_packet(bu_pkt)
        return decode_mh(p.payload, *p.pseudo_header_addresses())

    def daemon_ba_path():
        return build_ba_packet(HA, COA, HOA, encode_mh(ba, HA, HOA))

    unpack = struct.Struct("!BBBBHHHH").unpack_from

    rows = [
        ("reference: struct.unpack of the BU's 12 fixed octets", lambda: unpack(bu_mh)),
        ("decode_mh BU, no checksum", lambda: decode_mh(bu_mh)),
        ("decode_mh BU, checksum verified", lambda: decode_mh(bu_mh, HOA, HA)),
        ("decode_mh BU + Alt-CoA, checksum verified", lambda: decode_mh(bu_acoa_mh, HOA, HA)),
        ("parse_packet + decode_mh BU (daemon receive path)", daemon_bu_path),
        ("encode_mh BU", lambda: encode_mh(bu, HOA, HA)),
        ("decode_mh BA, checksum verified", lambda: decode_mh(ba_mh, HA, HOA)),
        ("encode_mh BA + BRA", lambda: encode_mh(ba, HA, HOA)),
        ("encode_mh BA + build_ba_packet (daemon send path)", daemon_ba_path),
    ]
    if not args.no_scapy:
        try:
            from scapy.layers.inet6 import IPv6
        except ImportError:
            print("scapy not installed: no scapy reference")
        else:
            rows.append(("reference: scapy IPv6() dissection of the same BU packet",
                         lambda: IPv6(bu_pkt)))

    print(f"python {sys.version.split()[0]}, {s:.1f} s per figure, best of 3")
    figures = {}
    ref = None
    for name, fn in rows:
        r = rate(fn, s)
        figures[name] = r
        if ref is None:
            ref = r
        print(f"{r:>12,.0f} /s  {r / ref:6.3f} x struct  {name}")
    scapy_name = rows[-1][0]
    if scapy_name.startswith("reference: scapy"):
        daemon = figures["parse_packet + decode_mh BU (daemon receive path)"]
        print(f"daemon BU receive path is {daemon / figures[scapy_name]:.0f}x scapy's "
              f"dissection of the same packet")


if __name__ == "__main__":
    main()
