"""Send one Binding Update and print the Binding Acknowledgement.

    python -m ha.lab.bu_probe --coa 2001:db8:1::100 --ha 2001:db8:: --hoa 2001:db8::beef
                          [--seq N] [--lifetime SECONDS] [--flags AH] [--timeout 3] [--json]

A small mobile-node tool built on the codec, for checking a home agent by
hand and for the seed scenario until the mobile-node mode lands. The BU goes
out whole through a header-included raw socket (Destination Options with the
Home Address option + MH, checksum over the home address); the BA is read
from an AF_PACKET socket, because a kernel without MIP6 drops a type 2
routing header with segments left 1 before any socket sees it.
Exit status: 0 when a BA arrived (whatever its status), 1 on timeout.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import sys
import time
from ipaddress import IPv6Address


def send_bu(coa, ha, hoa, seq, lifetime, flags="AH", options=()) -> None:
    from ha.wire.ipv6 import build_bu_packet
    from ha.wire.mobility import BindingUpdate, encode_mh
    bu = BindingUpdate(sequence=seq, lifetime=lifetime // 4, ack="A" in flags,
                       home_registration="H" in flags, link_local_compat="L" in flags,
                       key_management="K" in flags, options=list(options))
    mh = encode_mh(bu, hoa, ha)  # section 6.1.1: pseudo-header with the home address
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
    try:
        s.sendto(build_bu_packet(coa, ha, hoa, mh), (str(ha), 0))
    finally:
        s.close()


def open_ba_listener():
    """A packet socket for BAs (RH2 or plain MH first), on every link."""
    from ha.net.sockets import BA_FILTER, PacketSocket
    listener = PacketSocket(BA_FILTER, lambda data, _ifname: listener.received.append(data))
    listener.received = []
    return listener


def wait_ba(listener, hoa, timeout: float):
    """The first BA for `hoa` (its RH2 or outer destination), or None."""
    from ha.wire.errors import CodecError
    from ha.wire.mobility import BindingAck, decode_mh_packet
    deadline = time.monotonic() + timeout
    while True:
        while listener.received:
            data = listener.received.pop(0)
            try:
                got = decode_mh_packet(data)
            except CodecError:
                continue
            if got is None:
                continue
            pkt, msg = got
            if isinstance(msg, BindingAck) and (pkt.routing_address or pkt.header.dst) == hoa:
                return pkt, msg
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([listener], [], [], left)
        if not ready:
            return None
        listener.read_ready()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bu_probe", description=__doc__.split("\n")[0])
    p.add_argument("--coa", required=True, type=IPv6Address)
    p.add_argument("--ha", required=True, type=IPv6Address)
    p.add_argument("--hoa", required=True, type=IPv6Address)
    p.add_argument("--seq", type=int, default=int(time.time()) & 0xFFFF)
    p.add_argument("--lifetime", type=int, default=262140, help="seconds (default %(default)s)")
    p.add_argument("--flags", default="AH", help="any of A H L K (default %(default)s)")
    p.add_argument("--timeout", type=float, default=3.0)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    listener = open_ba_listener()
    send_bu(a.coa, a.ha, a.hoa, a.seq, a.lifetime, a.flags.upper())
    got = wait_ba(listener, a.hoa, a.timeout)
    if got is None:
        print(f"no BA from {a.ha} within {a.timeout} s", file=sys.stderr)
        return 1
    pkt, ba = got
    if a.json:
        print(json.dumps({"status": int(ba.status), "sequence": ba.sequence,
                          "lifetime": ba.lifetime_seconds, "src": str(pkt.header.src),
                          "dst": str(pkt.header.dst),
                          "rh2": str(pkt.routing_address) if pkt.routing_address else None}))
    else:
        print(f"BA status={int(ba.status)} seq#={ba.sequence} lifetime={ba.lifetime_seconds} "
              f"from {pkt.header.src} to {pkt.header.dst} rh2 {pkt.routing_address}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
