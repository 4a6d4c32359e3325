"""An independent mobile node for the tests: scapy builds and parses, not our codec.

Run inside a namespace:  python3 scapy_peer.py COMMAND JSON_ARGS
Prints one JSON object with what scapy decoded.

  bu      send a BU (Destination Options + HAO, MH checksum by scapy) and sniff the BA
  raw     send raw bytes (hex) as an IPv6 payload after a given header, sniff nothing
  dhaad   send a DHAAD request to the home-agents anycast address, sniff the reply
  mps     send a Mobile Prefix Solicitation with HAO, sniff the MPA
  sniff   sniff for `seconds` with a BPF filter, return the packets scapy decoded
"""

import ipaddress
import json
import sys
import threading
import time

from scapy.all import AsyncSniffer, conf, raw, send  # noqa: E402
from scapy.layers.inet6 import (HAO, ICMPv6HAADReply, ICMPv6HAADRequest, ICMPv6MPAdv,
                                ICMPv6MPSol, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrRouting)
from scapy.layers.inet6 import (MIP6MH_BA, MIP6MH_BE, MIP6MH_BU, MIP6OptAltCoA,
                                MIP6OptReplayProtection)

conf.verb = 0


def _collect(sniffer, timeout):
    """Packets of a capture started with `until`, waiting at most `timeout`."""
    sniffer.join(timeout)
    if sniffer.running:
        return sniffer.stop()
    return sniffer.results


def _sniffer(filt, iface=None, until=None):
    """A capture running in the background; with `until` it ends at the first
    packet of that layer, so answers are not waited for longer than they take."""
    if iface is None:
        # scapy's default interface follows the IPv4 default route, which the
        # test namespaces do not have: listen where IPv6 traffic goes
        iface = conf.route6.route("2001:db8::1")[0]
    kw = {}
    if until is not None:
        kw = {"stop_filter": lambda p: until in p}
    s = AsyncSniffer(filter=filt, iface=iface, store=True, **kw)
    s.start()
    time.sleep(0.3)  # let the capture attach before we send
    return s


def cmd_bu(a):
    # "retransmit": more sequence numbers sent `gap` seconds apart, as a mobile
    # node retransmits; then every answer within `wait` is collected
    later = a.get("retransmit", [])
    sn = _sniffer("ip6 and (ip6[6] == 43 or ip6[6] == 135)", a.get("iface"),
                  until=None if later else MIP6MH_BA)
    flags = a.get("flags", "AH")

    def bu_packet(seq):
        # "alt_coa": an Alternate Care-of Address option (RFC 6275 section 6.2.5)
        opts = [MIP6OptAltCoA(acoa=a["alt_coa"])] if a.get("alt_coa") else []
        bu = MIP6MH_BU(seq=seq, flags="".join(c for c in flags if c in "AHLK") or 0,
                       mhtime=a["lifetime"] // 4, options=opts)
        return (IPv6(src=a["coa"], dst=a["ha"])
                / IPv6ExtHdrDestOpt(options=[HAO(hoa=a["hoa"])]) / bu)

    for _ in range(a.get("count", 1)):
        send(bu_packet(a["seq"]))
    for seq in later:
        time.sleep(a.get("gap", 0.3))
        send(bu_packet(seq))
    if later:
        time.sleep(a.get("wait", 3.0))
        got = sn.stop()
    else:
        got = _collect(sn, a.get("wait", 5.0))
    out = []
    for p in got:
        if MIP6MH_BA in p:
            ba = p[MIP6MH_BA]
            rh = p[IPv6ExtHdrRouting] if IPv6ExtHdrRouting in p else None
            # scapy recomputes the checksum when we rebuild with chksum unset
            sent = ba.cksum
            fresh = p[IPv6].copy()
            del fresh[MIP6MH_BA].cksum
            good = IPv6(raw(fresh))[MIP6MH_BA].cksum == sent
            out.append({"type": "BA", "status": ba.status, "seq": ba.seq,
                        "lifetime": ba.mhtime * 4, "src": p[IPv6].src, "dst": p[IPv6].dst,
                        "rh2": rh.addresses[0] if rh is not None and rh.addresses else None,
                        "rh_type": rh.type if rh is not None else None,
                        "checksum_ok": good})
        elif MIP6MH_BE in p:
            be = p[MIP6MH_BE]
            out.append({"type": "BE", "status": be.status, "hoa": be.ha, "dst": p[IPv6].dst})
    return out


def cmd_burst(a):
    """BUs for `count` home addresses from `first` upward, sent back to back; the BAs by home address."""
    base = int(ipaddress.IPv6Address(a["first"]))
    hoas = [str(ipaddress.IPv6Address(base + i)) for i in range(a["count"])]
    sn = _sniffer("ip6 and ip6[6] == 43", a.get("iface"))
    send([IPv6(src=a["coa"], dst=a["ha"]) / IPv6ExtHdrDestOpt(options=[HAO(hoa=h)])
          / MIP6MH_BU(seq=a.get("seq", 1), flags="AH", mhtime=a.get("lifetime", 3600) // 4)
          for h in hoas])
    time.sleep(a.get("wait", 4.0))
    out = {}
    for p in sn.stop():
        if MIP6MH_BA in p and IPv6ExtHdrRouting in p:
            out[p[IPv6ExtHdrRouting].addresses[0]] = p[MIP6MH_BA].status
    return out


def cmd_raw(a):
    pkt = IPv6(src=a["src"], dst=a["dst"], nh=a["nh"]) / bytes.fromhex(a["payload"])
    # BAs come with a type 2 routing header (43), BEs without (135)
    sn = (_sniffer("ip6 and (ip6[6] == 43 or ip6[6] == 135)", a.get("iface"))
          if a.get("sniff") else None)
    send(pkt)
    time.sleep(a.get("wait", 0.5))
    if sn is None:
        return []
    out = []
    for p in sn.stop():
        if MIP6MH_BE in p:
            out.append({"type": "BE", "status": p[MIP6MH_BE].status, "hoa": p[MIP6MH_BE].ha})
        elif MIP6MH_BA in p:
            rp = p[MIP6OptReplayProtection] if MIP6OptReplayProtection in p else None
            out.append({"type": "BA", "status": p[MIP6MH_BA].status, "seq": p[MIP6MH_BA].seq,
                        "timestamp": rp.timestamp if rp is not None else None})
    return out


def cmd_dhaad(a):
    sn = _sniffer("icmp6", a.get("iface"))
    send(IPv6(src=a["src"], dst=a["anycast"]) / ICMPv6HAADRequest(id=a.get("id", 4242)))
    time.sleep(a.get("wait", 1.5))
    return [{"id": p[ICMPv6HAADReply].id, "addresses": list(p[ICMPv6HAADReply].addresses),
             "src": p[IPv6].src, "dst": p[IPv6].dst}
            for p in sn.stop() if ICMPv6HAADReply in p]


def cmd_mps(a):
    sn = _sniffer("ip6", a.get("iface"))
    send(IPv6(src=a["coa"], dst=a["ha"]) / IPv6ExtHdrDestOpt(options=[HAO(hoa=a["hoa"])])
         / ICMPv6MPSol(id=a.get("id", 77)))
    time.sleep(a.get("wait", 1.5))
    out = []
    for p in sn.stop():
        if ICMPv6MPAdv in p:
            prefixes = []
            layer = p[ICMPv6MPAdv].payload
            while layer and layer.name != "NoPayload":
                if hasattr(layer, "prefix"):
                    prefixes.append(f"{layer.prefix}/{layer.prefixlen}")
                layer = layer.payload
            out.append({"id": p[ICMPv6MPAdv].id, "prefixes": prefixes, "dst": p[IPv6].dst})
    return out


def cmd_tunnelled(a):
    """A reverse-tunnelled echo request: outer CoA -> HA, inner HoA -> CN."""
    from scapy.layers.inet6 import ICMPv6EchoRequest
    inner = IPv6(src=a["hoa"], dst=a["cn"]) / ICMPv6EchoRequest(id=a.get("id", 99), seq=1)
    send(IPv6(src=a["outer_src"], dst=a["ha"], nh=41) / inner)
    return []


def cmd_unknown_mh(a):
    """An MH of a type nobody defined, checksum by scapy; sniff the BE."""
    from scapy.layers.inet6 import MIP6MH_Generic
    sn = _sniffer("ip6 and ip6[6] == 135", a.get("iface"))
    send(IPv6(src=a["src"], dst=a["dst"]) / MIP6MH_Generic(mhtype=a["mhtype"], msg=b"\0" * 2))
    time.sleep(a.get("wait", 1.0))
    return [{"type": "BE", "status": p[MIP6MH_BE].status, "hoa": p[MIP6MH_BE].ha,
             "dst": p[IPv6].dst} for p in sn.stop() if MIP6MH_BE in p]


def cmd_hao_echo(a):
    """An echo request carrying a Home Address option; sniff the BE."""
    from scapy.layers.inet6 import ICMPv6EchoRequest
    sn = _sniffer("ip6 and ip6[6] == 135", a.get("iface"))
    send(IPv6(src=a["coa"], dst=a["ha"]) / IPv6ExtHdrDestOpt(options=[HAO(hoa=a["hoa"])])
         / ICMPv6EchoRequest())
    time.sleep(a.get("wait", 1.0))
    return [{"type": "BE", "status": p[MIP6MH_BE].status, "hoa": p[MIP6MH_BE].ha,
             "dst": p[IPv6].dst} for p in sn.stop() if MIP6MH_BE in p]


def cmd_sniff(a):
    sn = _sniffer(a["filter"], a.get("iface"))
    print("ready", flush=True)  # the caller waits for this before it makes traffic
    time.sleep(a["seconds"])
    out = []
    for p in sn.stop():
        ip = p[IPv6] if IPv6 in p else None
        if ip is None:
            continue
        d = {"src": ip.src, "dst": ip.dst, "nh": ip.nh, "hlim": ip.hlim}
        if ip.nh == 41 and IPv6 in ip.payload:
            d["inner_src"], d["inner_dst"] = ip.payload.src, ip.payload.dst
        from scapy.layers.inet6 import ICMPv6ParamProblem
        if ICMPv6ParamProblem in p:
            d["param_problem"] = {"code": p[ICMPv6ParamProblem].code,
                                  "pointer": p[ICMPv6ParamProblem].ptr}
        out.append(d)
    return out


if __name__ == "__main__":
    command, args = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(globals()[f"cmd_{command}"](args)))
