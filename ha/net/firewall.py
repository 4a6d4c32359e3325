"""The nftables rules the home agent needs: keep Mobile IPv6 packets from the kernel.

The daemon reads Binding Updates, and every other packet that carries a
Home Address option, from an AF_PACKET socket, which sees a packet before
netfilter does. A kernel without CONFIG_IPV6_MIP6 that is handed such a
packet answers it with an ICMPv6 Parameter Problem: code 1 "unrecognized
Next Header" for a bare MH, code 2 pointing at the Home Address option
(type 201, whose top bits 11 say "discard and report", RFC 8200 section
4.2) for anything else. A mobile node takes that second answer to mean
that its home agent cannot do Mobile IPv6 (UMIP drops its binding when the
Mobile Prefix Solicitation it sends after the BA is answered so), so both
are dropped on input, where only packets for one of our own addresses
pass. Everything lives in its own table, `inet denali`, so removal is
`delete table` and touches nobody else's rules.

The same rules are installed on a kernel with MIP6 too. Its Home Address
option handler accepts a packet only when an XFRM state for that home
address exists (mip6's ipv6_dest_hao); we install none, so it discards the
packet silently, and the drop changes nothing there. Were such a state
present, the kernel would serve the packet a second time after the daemon
has (MPS answered twice), so the daemon stays the one reader on every
kernel, and no probing of the kernel's configuration is needed.
"""

from __future__ import annotations


TABLE = "denali"
IPPROTO_MH = 135
IPPROTO_DSTOPTS = 60
OPT_HOME_ADDRESS = 201

# Raw offsets in bits from the start of the IPv6 header (`@nh`): the
# Destination Options header right after the fixed 40 octets, which is
# where RFC 6275 section 6.3 puts it when there is no routing header, and
# where the daemon's packet socket filter looks (ha/net/sockets.py).
# nft can find a dst header anywhere (`exthdr dst`) but cannot walk its
# options, so the layouts mobile nodes send are spelled out:
#   - HAO at 8n+6 (section 6.3) after a 4-octet PadN: Linux's mip6 (UMIP),
#     scapy and our own mobile node; or after four Pad1;
#   - HAO as the first option, misaligned but still processed by a kernel.
_OPT0 = (40 + 2) * 8   # first option of the header
_OPT4 = (40 + 6) * 8   # option after 4 octets of padding
_MATCH = f"meta nfproto ipv6 ip6 nexthdr {IPPROTO_DSTOPTS}"

_RULESET = f"""\
table inet {TABLE} {{
    chain mh_input {{
        type filter hook input priority -300; policy accept;
        meta nfproto ipv6 meta l4proto {IPPROTO_MH} counter drop comment "MH is read from AF_PACKET"
        {_MATCH} @nh,{_OPT0},16 0x0102 @nh,{_OPT4},8 {OPT_HOME_ADDRESS} counter drop comment "PadN + HAO is read from AF_PACKET"
        {_MATCH} @nh,{_OPT0},32 0 @nh,{_OPT4},8 {OPT_HOME_ADDRESS} counter drop comment "4 Pad1 + HAO is read from AF_PACKET"
        {_MATCH} @nh,{_OPT0},8 {OPT_HOME_ADDRESS} counter drop comment "HAO is read from AF_PACKET"
    }}
}}
"""


def _nft(script: str) -> None:
    from ha.net.nft import apply
    apply(script)


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
