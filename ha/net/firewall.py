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


# ---------------------------------------------------------------- the appliance's own

APPLIANCE_TABLE = "denali_fw"
IPPROTO_ESP = 50
IPPROTO_IPV6 = 41
# RFC 4890 section 4.4: what a router must take in for itself. ND and RA/RS
# (RFC 4861), MLD (RFC 3810 reports 143, RFC 2710 query/report/done), echo,
# the errors that path MTU discovery and ping need, and RFC 6275's DHAAD and
# prefix discovery (144-147), which travel as ICMPv6 too.
_ICMPV6_IN = ("destination-unreachable, packet-too-big, time-exceeded, parameter-problem, "
              "echo-request, echo-reply, mld-listener-query, mld-listener-report, "
              "mld-listener-done, mld2-listener-report, nd-router-solicit, nd-router-advert, "
              "nd-neighbor-solicit, nd-neighbor-advert, 144, 145, 146, 147")


def appliance_ruleset(uplink: str, console_port: int = 7777) -> str:
    """The `inet denali_fw` table: what reaches the appliance itself.

    Input only: established traffic, loopback, the ICMPv6 a router needs and
    the home agent's own protocols (MH, ESP, IPv6-in-IPv6) from anywhere; the
    console's TCP port from nowhere but loopback; from the uplink, DHCPv6
    server replies to the client's port (link-local: a reply to a multicast
    Solicit is no conntrack flow) and nothing else new. The cells reach the router's services as before. Forwarding is
    not filtered here: the appliance is a router between cells and uplink.
    """
    return f"""\
table inet {APPLIANCE_TABLE} {{
    chain input {{
        type filter hook input priority 0; policy accept;
        ct state established,related accept
        iif lo accept
        meta nfproto ipv6 icmpv6 type {{ {_ICMPV6_IN} }} accept
        meta nfproto ipv6 meta l4proto {{ {IPPROTO_MH}, {IPPROTO_ESP}, {IPPROTO_IPV6} }} accept comment "the home agent's own traffic"
        tcp dport {console_port} counter drop comment "the console is for loopback"
        iifname "{uplink}" ip6 saddr fe80::/10 udp sport 547 udp dport 546 accept comment "DHCPv6 replies to the prefix delegation client (RFC 8415 section 7.2)"
        iifname "{uplink}" counter drop comment "no inbound management from the uplink"
    }}
}}
"""


class ApplianceFirewall:
    """The appliance's own input rules in their own table, `inet denali_fw`.

    Beside `inet denali` (the MH table above), never in it: either can be
    removed without touching the other. install() replaces a leftover table
    in one transaction; remove() deletes it.
    """

    def __init__(self, uplink: str, console_port: int = 7777):
        self.uplink = uplink
        self.console_port = console_port
        self.installed = False

    def install(self) -> None:
        _nft(f"table inet {APPLIANCE_TABLE}\ndelete table inet {APPLIANCE_TABLE}\n"
             + appliance_ruleset(self.uplink, self.console_port))
        self.installed = True

    def remove(self) -> None:
        if self.installed:
            _nft(f"table inet {APPLIANCE_TABLE}\ndelete table inet {APPLIANCE_TABLE}\n")
            self.installed = False
