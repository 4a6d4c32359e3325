"""One end of bench_handover.py's probe stream, run inside a namespace.

    python3 bench/handover_probe.py --port 9000 --peer ADDR [--peer ADDR ...]
                                    [--src ADDR ...] --rate 1000 --out FILE [--count]

Sends a numbered UDP datagram every 1/rate seconds from each --src (bound
with IPV6_FREEBIND, so the socket outlives its address leaving the
interface, as a home address does while the node moves) to each --peer, and
records the CLOCK_MONOTONIC arrival time of every datagram it receives on
--port. On SIGTERM it writes the arrival times (float64, native order) to
--out and the count of send errors to stderr, and exits. Monotonic time is
one clock for every namespace of the host, so the bench can set these
arrivals beside its own link events. With --count it also rewrites FILE.count
twice a second with how many have arrived so far, for a caller that waits
until the stream flows before it moves the node (tests/qemu/guest_on_air.py).
"""

from __future__ import annotations

import argparse
import array
import os
import select
import signal
import socket
import struct
import sys
import time

IPV6_FREEBIND = 78  # linux/in6.h


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--peer", action="append", required=True)
    p.add_argument("--src", action="append", default=[])
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--out", required=True)
    p.add_argument("--count", action="store_true",
                   help="rewrite OUT.count with the arrivals so far, twice a second")
    args = p.parse_args()

    rx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    rx.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
    rx.bind(("::", args.port))
    rx.setblocking(False)
    senders = []
    for src in args.src or [None]:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
        if src:
            s.bind((src, 0))
        s.setblocking(False)
        senders.append(s)
    arrivals = array.array("d")
    errors = 0
    stop = False

    def on_term(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    period = 1.0 / args.rate
    seq = 0
    count_fd = (os.open(args.out + ".count", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                if args.count else None)
    due = shown = time.monotonic()
    while not stop:
        now = time.monotonic()
        if count_fd is not None and now >= shown + 0.5:
            os.pwrite(count_fd, b"%12d\n" % len(arrivals), 0)
            shown = now
        if now >= due:
            payload = struct.pack("!Id", seq, now)
            for s in senders:
                for peer in args.peer:
                    try:
                        s.sendto(payload, (peer, args.port))
                    except OSError:
                        errors += 1
            seq += 1
            due += period
            if due < now - 0.05:  # fell behind (a stall): do not burst to catch up
                due = now + period
            continue
        try:
            r, _, _ = select.select([rx], [], [], due - now)
        except InterruptedError:
            continue
        if r:
            while True:
                try:
                    rx.recv(64)
                except (BlockingIOError, InterruptedError):
                    break
                arrivals.append(time.monotonic())
    with open(args.out + ".tmp", "wb") as f:
        arrivals.tofile(f)
    os.replace(args.out + ".tmp", args.out)
    print(f"sent {seq} x {len(senders) * len(args.peer)}, send errors {errors}, "
          f"received {len(arrivals)}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
