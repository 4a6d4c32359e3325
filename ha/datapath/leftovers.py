"""What a killed daemon left in the kernel, cleaned at the next start.

`kill -9` or the OOM killer gives the datapath no chance to close(): ip6tnl
devices (`dnt*`), proxy neighbour entries for away home addresses and the
routes through them stay. The next daemon must not trip over them (a tunnel
name that exists already fails with EEXIST) nor keep answering for a home
address whose binding it does not restore (its owner may be home by now).
So at start, before the saved bindings are put back: every `dnt*` device
goes (the restored bindings make their tunnels anew, and the routes go with
the devices), and every proxy entry on the home link whose address is not
about to be restored is deleted. Start-up only, so `ip` is good enough.
"""

from __future__ import annotations

import logging
import socket
import subprocess
from ipaddress import IPv6Address

log = logging.getLogger("denali.datapath")

TUNNEL_PREFIX = "dnt"


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)


def clean_leftovers(home_ifname: str, keep: set[IPv6Address],
                    tunnel_prefix: str = TUNNEL_PREFIX) -> dict:
    """Delete leftover tunnels and proxy entries not in `keep`; how many of each."""
    gone = {"tunnels": 0, "proxy entries": 0}
    for _index, name in socket.if_nameindex():
        if name.startswith(tunnel_prefix) and name[len(tunnel_prefix):].isdigit():
            if _ip("link", "del", name).returncode == 0:
                gone["tunnels"] += 1
    r = _ip("-6", "neigh", "show", "proxy", "dev", home_ifname)
    for line in r.stdout.splitlines():
        try:
            addr = IPv6Address(line.split()[0])
        except (IndexError, ValueError):
            continue
        if addr not in keep and _ip("-6", "neigh", "del", "proxy", str(addr),
                                    "dev", home_ifname).returncode == 0:
            gone["proxy entries"] += 1
    if any(gone.values()):
        log.warning("removed what a previous run left behind: %d tunnels, %d proxy entries",
                    gone["tunnels"], gone["proxy entries"])
    return gone
