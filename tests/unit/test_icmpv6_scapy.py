"""Cross-check the ICMPv6 / ND codec against scapy, an independent implementation.

Both directions: bytes we build are parsed by scapy (fields and checksum),
and bytes scapy builds are decoded by us with the checksum verified.
"""

from ipaddress import IPv6Address, IPv6Network

import pytest

scapy_inet6 = pytest.importorskip("scapy.layers.inet6")
from scapy.layers.inet6 import (  # noqa: E402
    IPv6, ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6HAADReply, ICMPv6HAADRequest,
    ICMPv6MPAdv, ICMPv6MPSol, ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6ND_RA, ICMPv6ND_RS,
    ICMPv6NDOptAdvInterval, ICMPv6NDOptDNSSL, ICMPv6NDOptDstLLAddr, ICMPv6NDOptHAInfo,
    ICMPv6NDOptMTU, ICMPv6NDOptPrefixInfo, ICMPv6NDOptRDNSS, ICMPv6NDOptRouteInfo,
    ICMPv6NDOptSrcLLAddr, ICMPv6ParamProblem, in6_chksum,
)

from ha.wire.icmpv6 import (  # noqa: E402
    MTU, AdvertisementInterval, DHAADReply, DHAADRequest, DNSSearchList, EchoReply,
    EchoRequest, HomeAgentInformation, MobilePrefixAdvertisement, MobilePrefixSolicitation,
    NeighborAdvertisement, NeighborSolicitation, ParameterProblem, PrefixInformation,
    RecursiveDNSServer, RouteInformation, RouterAdvertisement, RouterSolicitation,
    SourceLinkLayerAddress, TargetLinkLayerAddress, decode_icmpv6, encode_icmpv6,
)

LL = IPv6Address("fe80::1")
ALL_NODES = IPv6Address("ff02::1")
HA = IPv6Address("2001:db8::")
MN = IPv6Address("2001:db8::beef")
MAC = "02:00:00:00:00:01"
MAC_BYTES = bytes.fromhex("020000000001")


def to_scapy(msg, src, dst):
    """Our encoding inside an IPv6 header, parsed by scapy."""
    ours = encode_icmpv6(msg, src, dst)
    header = IPv6(src=str(src), dst=str(dst), nh=58, hlim=255, plen=len(ours))
    return IPv6(bytes(header) + ours), ours


def scapy_checksum_agrees(pkt, layer) -> bool:
    """Scapy computes the checksum over our bytes (field zeroed); it must match ours."""
    raw = bytes(pkt)[40:]
    theirs = in6_chksum(58, pkt[IPv6], raw[:2] + b"\0\0" + raw[4:])
    return theirs == pkt[layer].cksum == int.from_bytes(raw[2:4], "big")


def from_scapy(pkt):
    """Decode scapy-built bytes with our codec, checking the checksum."""
    raw = bytes(pkt)
    return decode_icmpv6(raw[40:], IPv6Address(pkt[IPv6].src), IPv6Address(pkt[IPv6].dst))


def full_ra():
    return RouterAdvertisement(
        cur_hop_limit=64, managed=False, other=True, home_agent=True, preference=1,
        router_lifetime=1800, reachable_time=30000, retrans_timer=1000, options=[
            SourceLinkLayerAddress(MAC_BYTES),
            MTU(1480),
            PrefixInformation(IPv6Network("2001:db8::/64"), router_address=True, router=HA,
                              valid_lifetime=86400, preferred_lifetime=14400),
            PrefixInformation(IPv6Network("2001:db8:5::/48"), on_link=False,
                              autonomous=False),
            AdvertisementInterval(3000),
            HomeAgentInformation(-5, 1800),
            RouteInformation(IPv6Network("2001:db8:1::/48"), -1, 900),
            RouteInformation(IPv6Network("2001:db8:1:2:3::/80"), 1, 0xFFFFFFFF),
            RecursiveDNSServer(600, (IPv6Address("2001:db8::53"), IPv6Address("2001:db8::54"))),
            DNSSearchList(600, ("home.example", "example.org")),
        ])


def test_ra_ours_parsed_by_scapy():
    pkt, _ = to_scapy(full_ra(), LL, ALL_NODES)
    ra = pkt[ICMPv6ND_RA]
    assert (ra.chlim, ra.M, ra.O, ra.H, ra.prf) == (64, 0, 1, 1, 1)
    assert (ra.routerlifetime, ra.reachabletime, ra.retranstimer) == (1800, 30000, 1000)
    assert scapy_checksum_agrees(pkt, ICMPv6ND_RA)
    assert pkt[ICMPv6NDOptSrcLLAddr].lladdr == MAC
    assert pkt[ICMPv6NDOptMTU].mtu == 1480
    pio1 = pkt[ICMPv6NDOptPrefixInfo]
    assert (pio1.prefixlen, pio1.L, pio1.A, pio1.R, pio1.prefix) == (64, 1, 1, 1, "2001:db8::")
    assert (pio1.validlifetime, pio1.preferredlifetime) == (86400, 14400)
    pio2 = pkt.getlayer(ICMPv6NDOptPrefixInfo, 2)
    assert (pio2.prefixlen, pio2.L, pio2.A, pio2.R, pio2.prefix) == (48, 0, 0, 0, "2001:db8:5::")
    assert pkt[ICMPv6NDOptAdvInterval].advint == 3000
    hai = pkt[ICMPv6NDOptHAInfo]
    assert (hai.pref, hai.lifetime) == (0x10000 - 5, 1800)  # scapy reads it unsigned
    rio1 = pkt[ICMPv6NDOptRouteInfo]
    assert (rio1.plen, rio1.prf, rio1.rtlifetime, rio1.prefix) == (48, 3, 900, "2001:db8:1::")
    rio2 = pkt.getlayer(ICMPv6NDOptRouteInfo, 2)
    assert (rio2.len, rio2.plen, rio2.prf, rio2.prefix) == (3, 80, 1, "2001:db8:1:2:3::")
    assert pkt[ICMPv6NDOptRDNSS].dns == ["2001:db8::53", "2001:db8::54"]
    assert pkt[ICMPv6NDOptRDNSS].lifetime == 600
    assert pkt[ICMPv6NDOptDNSSL].searchlist == ["home.example.", "example.org."]
    assert pkt[ICMPv6NDOptDNSSL].lifetime == 600


def test_ra_scapy_parsed_by_ours():
    pkt = (IPv6(src=str(LL), dst=str(ALL_NODES), hlim=255)
           / ICMPv6ND_RA(chlim=32, M=1, O=0, H=1, prf=3, routerlifetime=600,
                         reachabletime=1, retranstimer=2)
           / ICMPv6NDOptSrcLLAddr(lladdr=MAC)
           / ICMPv6NDOptMTU(mtu=1500)
           / ICMPv6NDOptPrefixInfo(prefixlen=64, L=1, A=1, R=1, validlifetime=100,
                                   preferredlifetime=50, prefix="2001:db8::beef")
           / ICMPv6NDOptAdvInterval(advint=1500)
           / ICMPv6NDOptHAInfo(pref=7, lifetime=900)
           / ICMPv6NDOptRouteInfo(plen=64, prf=1, rtlifetime=77, prefix="2001:db8:9:9::")
           / ICMPv6NDOptRDNSS(lifetime=10, dns=["2001:db8::53"])
           / ICMPv6NDOptDNSSL(lifetime=20, searchlist=["a.example.", "b.example."]))
    ra = from_scapy(pkt)
    assert ra == RouterAdvertisement(32, True, False, True, -1, 600, 1, 2, [
        SourceLinkLayerAddress(MAC_BYTES),
        MTU(1500),
        PrefixInformation(IPv6Network("2001:db8::/64"), True, True, True, 100, 50, MN),
        AdvertisementInterval(1500),
        HomeAgentInformation(7, 900),
        RouteInformation(IPv6Network("2001:db8:9:9::/64"), 1, 77),
        RecursiveDNSServer(10, (IPv6Address("2001:db8::53"),)),
        DNSSearchList(20, ("a.example", "b.example")),
    ])


def test_rs_both_ways():
    pkt, _ = to_scapy(RouterSolicitation([SourceLinkLayerAddress(MAC_BYTES)]), LL,
                      IPv6Address("ff02::2"))
    assert pkt.haslayer(ICMPv6ND_RS) and pkt[ICMPv6NDOptSrcLLAddr].lladdr == MAC
    assert scapy_checksum_agrees(pkt, ICMPv6ND_RS)
    theirs = IPv6(src=str(LL), dst="ff02::2") / ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=MAC)
    assert from_scapy(theirs) == RouterSolicitation([SourceLinkLayerAddress(MAC_BYTES)])


def test_ns_both_ways():
    pkt, _ = to_scapy(NeighborSolicitation(MN, [SourceLinkLayerAddress(MAC_BYTES)]), HA,
                      IPv6Address("ff02::1:ffff:beef"))
    assert pkt[ICMPv6ND_NS].tgt == str(MN) and pkt[ICMPv6NDOptSrcLLAddr].lladdr == MAC
    assert scapy_checksum_agrees(pkt, ICMPv6ND_NS)
    theirs = (IPv6(src="::", dst="ff02::1:ffff:beef") / ICMPv6ND_NS(tgt=str(MN)))
    assert from_scapy(theirs) == NeighborSolicitation(MN, [])


@pytest.mark.parametrize("r,s,o", [(1, 0, 1), (1, 1, 0), (0, 1, 1), (0, 0, 0)])
def test_na_both_ways(r, s, o):
    na = NeighborAdvertisement(MN, bool(r), bool(s), bool(o), [TargetLinkLayerAddress(MAC_BYTES)])
    pkt, _ = to_scapy(na, HA, ALL_NODES)
    got = pkt[ICMPv6ND_NA]
    assert (got.R, got.S, got.O, got.tgt) == (r, s, o, str(MN))
    assert pkt[ICMPv6NDOptDstLLAddr].lladdr == MAC
    assert scapy_checksum_agrees(pkt, ICMPv6ND_NA)
    theirs = (IPv6(src=str(HA), dst=str(ALL_NODES)) / ICMPv6ND_NA(R=r, S=s, O=o, tgt=str(MN))
              / ICMPv6NDOptDstLLAddr(lladdr=MAC))
    assert from_scapy(theirs) == na


def test_dhaad_both_ways():
    pkt, _ = to_scapy(DHAADRequest(0x4242), MN, IPv6Address("2001:db8::fdff:ffff:ffff:fffe"))
    assert pkt[ICMPv6HAADRequest].id == 0x4242
    assert scapy_checksum_agrees(pkt, ICMPv6HAADRequest)
    # scapy sets the NEMO R bit (RFC 3963) by default; RFC 6275 calls it reserved
    theirs = IPv6(src=str(MN), dst=str(HA)) / ICMPv6HAADRequest(id=7)
    assert from_scapy(theirs) == DHAADRequest(7)

    reply = DHAADReply(0x4242, (HA, IPv6Address("2001:db8::2")))
    pkt, _ = to_scapy(reply, HA, MN)
    assert pkt[ICMPv6HAADReply].id == 0x4242
    assert pkt[ICMPv6HAADReply].addresses == [str(HA), "2001:db8::2"]
    assert scapy_checksum_agrees(pkt, ICMPv6HAADReply)
    theirs = IPv6(src=str(HA), dst=str(MN)) / ICMPv6HAADReply(id=9, R=0, addresses=[str(HA)])
    assert from_scapy(theirs) == DHAADReply(9, (HA,))


def test_mobile_prefix_both_ways():
    pkt, _ = to_scapy(MobilePrefixSolicitation(0x99), MN, HA)
    assert pkt[ICMPv6MPSol].id == 0x99
    assert scapy_checksum_agrees(pkt, ICMPv6MPSol)
    assert from_scapy(IPv6(src=str(MN), dst=str(HA)) / ICMPv6MPSol(id=3)) == \
        MobilePrefixSolicitation(3)

    mpa = MobilePrefixAdvertisement(0x99, managed=False, other=True, options=[
        PrefixInformation(IPv6Network("2001:db8::/64"), router_address=True, router=HA)])
    pkt, _ = to_scapy(mpa, HA, MN)
    assert (pkt[ICMPv6MPAdv].id, pkt[ICMPv6MPAdv].flags) == (0x99, 1)  # 1 = O in scapy
    assert pkt[ICMPv6NDOptPrefixInfo].R == 1
    assert scapy_checksum_agrees(pkt, ICMPv6MPAdv)
    theirs = (IPv6(src=str(HA), dst=str(MN)) / ICMPv6MPAdv(id=5, flags=2)
              / ICMPv6NDOptPrefixInfo(prefix="2001:db8::", R=0, validlifetime=9,
                                      preferredlifetime=8))
    assert from_scapy(theirs) == MobilePrefixAdvertisement(5, True, False, [
        PrefixInformation(IPv6Network("2001:db8::/64"), True, True, False, 9, 8)])


def test_error_and_echo_both_ways():
    pp = ParameterProblem(2, 40, b"\x60" + bytes(39) + b"\x87\x00")
    pkt, _ = to_scapy(pp, HA, MN)
    assert (pkt[ICMPv6ParamProblem].code, pkt[ICMPv6ParamProblem].ptr) == (2, 40)
    assert scapy_checksum_agrees(pkt, ICMPv6ParamProblem)
    theirs = IPv6(src=str(HA), dst=str(MN)) / ICMPv6ParamProblem(code=1, ptr=6)
    assert from_scapy(theirs) == ParameterProblem(1, 6, b"")

    for ours_cls, theirs_cls in ((EchoRequest, ICMPv6EchoRequest), (EchoReply, ICMPv6EchoReply)):
        pkt, _ = to_scapy(ours_cls(5, 6, b"hello"), HA, MN)
        got = pkt[theirs_cls]
        assert (got.id, got.seq, got.data) == (5, 6, b"hello")
        assert scapy_checksum_agrees(pkt, theirs_cls)
        assert from_scapy(IPv6(src=str(MN), dst=str(HA)) / theirs_cls(id=1, seq=2, data=b"x")) \
            == ours_cls(1, 2, b"x")


# ------------------------------------------------ tshark, a third opinion

TSHARK_FIELDS = [
    "icmpv6.type", "icmpv6.checksum.status", "icmpv6.nd.ra.flag.h", "icmpv6.nd.ra.flag.prf",
    "icmpv6.opt.advertisement_interval", "icmpv6.opt.home_agent_preference",
    "icmpv6.opt.home_agent_lifetime", "icmpv6.opt.prefix.flag.r", "icmpv6.opt.rdnss",
    "icmpv6.opt.dnssl", "icmpv6.mip6.identifier", "icmpv6.mip6.home_agent_address",
    "icmpv6.mip6.flag.m", "icmpv6.nd.na.flag.r", "icmpv6.nd.na.flag.o",
]


def test_tshark_dissects_ours(tmp_path):
    import shutil
    import subprocess

    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark not installed")
    sent = [
        (full_ra(), LL, ALL_NODES),
        (DHAADReply(0x4242, (HA, MN)), HA, MN),
        (MobilePrefixAdvertisement(9, True, False, [
            PrefixInformation(IPv6Network("2001:db8::/64"), router_address=True, router=HA)]),
         HA, MN),
        (NeighborAdvertisement(MN, True, False, True, [TargetLinkLayerAddress(MAC_BYTES)]),
         HA, ALL_NODES),
    ]
    frames = [Ether(src=MAC, dst="33:33:00:00:00:01") / to_scapy(m, s, d)[0] for m, s, d in sent]
    pcap = tmp_path / "ours.pcap"
    wrpcap(str(pcap), frames)
    cmd = [tshark, "-n", "-r", str(pcap), "-T", "fields", "-E", "separator=|",
           "-E", "occurrence=a", "-E", "aggregator=,"]
    for name in TSHARK_FIELDS:
        cmd += ["-e", name]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = [dict(zip(TSHARK_FIELDS, line.split("|"))) for line in out.splitlines()]
    assert len(rows) == 4

    def flag(value):  # tshark prints booleans as 1/0 or True/False by version
        return {"1": True, "True": True, "0": False, "False": False}[value]

    ra, reply, mpa, na = rows
    assert all(r["icmpv6.checksum.status"] in ("1", "Good") for r in rows)  # 1 = good
    assert ra["icmpv6.type"] == "134" and flag(ra["icmpv6.nd.ra.flag.h"])
    assert ra["icmpv6.nd.ra.flag.prf"] == "1"
    assert ra["icmpv6.opt.advertisement_interval"] == "3000"
    assert ra["icmpv6.opt.home_agent_preference"] == str(0x10000 - 5)  # printed unsigned
    assert ra["icmpv6.opt.home_agent_lifetime"] == "1800"
    assert [flag(v) for v in ra["icmpv6.opt.prefix.flag.r"].split(",")] == [True, False]
    assert ra["icmpv6.opt.rdnss"] == "2001:db8::53,2001:db8::54"
    assert ra["icmpv6.opt.dnssl"] == "home.example,example.org"
    assert reply["icmpv6.mip6.identifier"] == str(0x4242)
    assert reply["icmpv6.mip6.home_agent_address"] == "2001:db8::,2001:db8::beef"
    assert mpa["icmpv6.type"] == "147" and flag(mpa["icmpv6.mip6.flag.m"])
    assert flag(mpa["icmpv6.opt.prefix.flag.r"])
    assert flag(na["icmpv6.nd.na.flag.r"]) and flag(na["icmpv6.nd.na.flag.o"])


def test_home_agent_information_r_flag_both_ways():
    # RFC 3963 section 7.1: scapy keeps the flags in its 16-bit "res" field, R is its top bit
    ra = RouterAdvertisement(64, False, False, True, 0, 1800, 0, 0, [
        HomeAgentInformation(2, 900, mobile_router=True)])
    pkt, _ = to_scapy(ra, LL, ALL_NODES)
    assert pkt[ICMPv6NDOptHAInfo].res == 0x8000
    assert (pkt[ICMPv6NDOptHAInfo].pref, pkt[ICMPv6NDOptHAInfo].lifetime) == (2, 900)
    pkt, _ = to_scapy(RouterAdvertisement(64, False, False, True, 0, 1800, 0, 0, [
        HomeAgentInformation(2, 900)]), LL, ALL_NODES)
    assert pkt[ICMPv6NDOptHAInfo].res == 0
    theirs = (IPv6(src=str(LL), dst=str(ALL_NODES)) / ICMPv6ND_RA(H=1)
              / ICMPv6NDOptHAInfo(res=0x8000, pref=1, lifetime=60))
    assert from_scapy(theirs).options == [HomeAgentInformation(1, 60, mobile_router=True)]
