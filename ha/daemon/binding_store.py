"""The binding cache on tmpfs, so that a killed daemon's successor keeps it.

A supervisor restarts denalid within a second or two of a crash (or the OOM
killer); without the cache the mobile nodes would be black-holed until their
next refresh, hours at the seed's lifetimes. So the registered bindings are
written to /run/denali/bindings (tmpfs: a reboot starts clean, which is
right, the tunnels are gone too) whenever they change, at most once per
SAVE_DELAY, atomically: a crash mid-write leaves the previous file.

Expiry times are kept as wall-clock seconds here; the core counts on the
monotonic clock, which does not survive the process, so both are converted
at the edge.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from ipaddress import IPv6Address

from ha.core.binding_cache import Binding

log = logging.getLogger("denali.ha")

DEFAULT_DIR = "/run/denali"
SAVE_DELAY = 0.2  # seconds: changes in a burst of registrations share one write
# A save costs time in proportion to the cache; the next one waits at least this many
# times as long as the last one took, so saving stays under a tenth of the daemon's time.
SAVE_BACKOFF = 10
HEADER = "denali-bindings 2"
_FLAGS = "HLKA"


def state_dir() -> str:
    return os.environ.get("DENALI_STATE_DIR") or DEFAULT_DIR


# One line per binding, fields separated by spaces, so that a save streams small
# strings instead of building a dict per binding (5,000 dicts held 10 MB of RSS):
#   hoa coa lifetime expires registered seq flags local
# expires and registered are wall-clock seconds, seq is '-' before the first BA 0,
# flags is a subset of HLKA, local is '-' when unset.

def _text(a: IPv6Address | None) -> str:
    # inet_ntop is ten times faster than str(IPv6Address) and prints the same
    return "-" if a is None else socket.inet_ntop(socket.AF_INET6, a.packed)


def _line(b: Binding, offset: float) -> str:
    flags = "".join(c for c, on in zip(_FLAGS, (b.home_registration, b.link_local_compat,
                                                b.key_management, b.ack)) if on) or "-"
    seq = "-" if b.sequence is None else str(b.sequence)
    return (f"{_text(b.hoa)} {_text(b.coa)} {b.lifetime} {b.expires_at + offset:.3f} "
            f"{b.registered_at + offset:.3f} {seq} {flags} {_text(b.local)}\n")


def _binding(line: str, offset: float) -> Binding:
    hoa, coa, lifetime, expires, registered, seq, flags, local = line.split()
    return Binding(hoa=IPv6Address(hoa), coa=IPv6Address(coa), lifetime=int(lifetime),
                   registered_at=float(registered) - offset, expires_at=float(expires) - offset,
                   sequence=None if seq == "-" else int(seq),
                   home_registration="H" in flags, link_local_compat="L" in flags,
                   key_management="K" in flags, ack="A" in flags,
                   local=None if local == "-" else IPv6Address(local))


class BindingStore:
    def __init__(self, directory: str | None = None, clock=time.monotonic):
        self.path = os.path.join(directory or state_dir(), "bindings")
        self.clock = clock
        self.last_save_seconds = 0.0

    def next_delay(self) -> float:
        return max(SAVE_DELAY, SAVE_BACKOFF * self.last_save_seconds)

    def load(self) -> list[Binding]:
        """The saved bindings, or [] (a missing, unreadable or foreign file is no error)."""
        try:
            with open(self.path, encoding="utf-8") as f:
                if f.readline().strip() != HEADER:
                    raise ValueError("not a denali binding file of this version")
                offset = time.time() - self.clock()  # wall-clock minus this process's clock
                return [_binding(line, offset) for line in f if line.strip()]
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as e:
            log.warning("ignoring saved bindings in %s: %s", self.path, e)
            return []

    def save(self, bindings) -> None:
        from ha.config.atomic import atomic_write
        started = time.perf_counter()
        offset = time.time() - self.clock()
        text = HEADER + "\n" + "".join(_line(b, offset) for b in bindings)
        try:
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            atomic_write(self.path, text, mode=0o600)
        except OSError as e:
            log.error("cannot save the binding cache to %s: %s", self.path, e)
        self.last_save_seconds = time.perf_counter() - started

    def clear(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("cannot remove %s: %s", self.path, e)
