"""The one nftables rule the home agent needs: drop Mobility Header on input.

The daemon reads Binding Updates from an AF_PACKET socket, which sees a
packet before netfilter does. Without a drop, a kernel without
CONFIG_IPV6_MIP6 then answers every BU with ICMPv6 Parameter Problem
(code 1 "unrecognized Next Header" for a bare MH, code 2 for the Home
Address option in the destination options). `meta l4proto` is the
transport protocol found after the extension headers, so one match covers
both. Everything lives in its own table, `inet denali`, so removal is
`delete table` and touches nobody else's rules.
"""

from __future__ import annotations

import subprocess

TABLE = "denali"
IPPROTO_MH = 135

_RULESET = f"""\
table inet {TABLE} {{
    chain mh_input {{
        type filter hook input priority -300; policy accept;
        meta nfproto ipv6 meta l4proto {IPPROTO_MH} counter drop comment "MH is read from AF_PACKET"
    }}
}}
"""


def _nft(script: str) -> None:
    r = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True,
                       timeout=10)
    if r.returncode != 0:
        raise OSError(f"nft failed: {r.stderr.strip()}")


class Firewall:
    """install() adds the table (replacing a leftover one); remove() deletes it."""

    def __init__(self):
        self.installed = False

    def install(self) -> None:
        # add-then-delete makes the delete valid whether or not a leftover exists;
        # nft -f applies the whole script as one transaction
        _nft(f"table inet {TABLE}\ndelete table inet {TABLE}\n" + _RULESET)
        self.installed = True

    def remove(self) -> None:
        if self.installed:
            _nft(f"table inet {TABLE}\ndelete table inet {TABLE}\n")
            self.installed = False
