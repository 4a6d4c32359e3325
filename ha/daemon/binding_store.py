"""The binding cache on tmpfs, so that a killed daemon's successor keeps it.

A supervisor restarts denalid within a second or two of a crash (or the OOM
killer); without the cache the mobile nodes would be black-holed until their
next refresh, hours at the seed's lifetimes. So the registered bindings are
written to /run/denali/bindings.json (tmpfs: a reboot starts clean, which is
right, the tunnels are gone too) whenever they change, at most once per
SAVE_DELAY, atomically: a crash mid-write leaves the previous file.

Expiry times are kept as wall-clock seconds here; the core counts on the
monotonic clock, which does not survive the process, so both are converted
at the edge.
"""

from __future__ import annotations

import json
import logging
import os
import time
from ipaddress import IPv6Address

from ha.core.binding_cache import Binding

log = logging.getLogger("denali.ha")

DEFAULT_DIR = "/run/denali"
SAVE_DELAY = 0.2  # seconds: changes in a burst of registrations share one write
VERSION = 1


def state_dir() -> str:
    return os.environ.get("DENALI_STATE_DIR") or DEFAULT_DIR


def _to_dict(b: Binding, mono_now: float, wall_now: float) -> dict:
    return {"hoa": str(b.hoa), "coa": str(b.coa), "lifetime": b.lifetime,
            "expires": round(wall_now + (b.expires_at - mono_now), 3),
            "registered": round(wall_now + (b.registered_at - mono_now), 3),
            "seq": b.sequence, "H": b.home_registration, "L": b.link_local_compat,
            "K": b.key_management, "A": b.ack, "local": str(b.local) if b.local else None}


def _from_dict(d: dict, mono_now: float, wall_now: float) -> Binding:
    return Binding(hoa=IPv6Address(d["hoa"]), coa=IPv6Address(d["coa"]),
                   lifetime=int(d["lifetime"]),
                   registered_at=mono_now + (float(d["registered"]) - wall_now),
                   expires_at=mono_now + (float(d["expires"]) - wall_now),
                   sequence=None if d["seq"] is None else int(d["seq"]),
                   home_registration=bool(d["H"]), link_local_compat=bool(d["L"]),
                   key_management=bool(d["K"]), ack=bool(d["A"]),
                   local=IPv6Address(d["local"]) if d.get("local") else None)


class BindingStore:
    def __init__(self, directory: str | None = None, clock=time.monotonic):
        self.path = os.path.join(directory or state_dir(), "bindings.json")
        self.clock = clock

    def load(self) -> list[Binding]:
        """The saved bindings, or [] (a missing, unreadable or foreign file is no error)."""
        try:
            with open(self.path, encoding="utf-8") as f:
                doc = json.load(f)
            if doc.get("version") != VERSION:
                raise ValueError(f"version {doc.get('version')!r}")
            mono, wall = self.clock(), time.time()
            return [_from_dict(d, mono, wall) for d in doc["bindings"]]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            log.warning("ignoring saved bindings in %s: %s", self.path, e)
            return []

    def save(self, bindings) -> None:
        from ha.config.atomic import atomic_write
        mono, wall = self.clock(), time.time()
        doc = {"version": VERSION, "pid": os.getpid(),
               "bindings": [_to_dict(b, mono, wall) for b in bindings]}
        try:
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            atomic_write(self.path, json.dumps(doc, separators=(",", ":")), mode=0o600)
        except OSError as e:
            log.error("cannot save the binding cache to %s: %s", self.path, e)

    def clear(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("cannot remove %s: %s", self.path, e)
