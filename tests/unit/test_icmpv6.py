"""ICMPv6 / Neighbor Discovery codec: byte vectors from the RFC layouts and round trips."""

from ipaddress import IPv6Address, IPv6Network

import pytest

from ha.wire.errors import CodecError
from ha.wire.icmpv6 import (
    ICMPV6, MTU, PRF_RESERVED, AdvertisementInterval, DHAADReply, DHAADRequest,
    DNSSearchList, EchoReply, EchoRequest, HomeAgentInformation, ICMPv6Type,
    MobilePrefixAdvertisement, MobilePrefixSolicitation, NDOptionType,
    NeighborAdvertisement, NeighborSolicitation, ParameterProblem, PrefixInformation,
    RecursiveDNSServer, RouteInformation, RouterAdvertisement, RouterSolicitation,
    SourceLinkLayerAddress, TargetLinkLayerAddress, UnknownICMPv6, UnknownNDOption,
    decode_icmpv6, decode_nd_options, encode_icmpv6, encode_nd_options, option,
    validate_nd,
)

LL = IPv6Address("fe80::1")
ALL_NODES = IPv6Address("ff02::1")
HA = IPv6Address("2001:db8::")
MN = IPv6Address("2001:db8::beef")
MAC = bytes.fromhex("020000000001")


def h(text: str) -> bytes:
    """Hex with comments (after #) and whitespace ignored."""
    return bytes.fromhex("".join(line.split("#")[0] for line in text.splitlines()))


def zero_checksum(packet: bytes) -> bytes:
    return packet[:2] + b"\0\0" + packet[4:]


def test_constants():
    assert ICMPV6 == 58
    assert ICMPv6Type.DHAAD_REQUEST == 144 and ICMPv6Type.MOBILE_PREFIX_ADVERTISEMENT == 147
    assert NDOptionType.HOME_AGENT_INFORMATION == 8 and NDOptionType.DNSSL == 31


# ------------------------------------------------------------ ND options
# Each vector: (option, wire bytes). Layouts from RFC 4861 section 4.6,
# RFC 6275 sections 7.2-7.4, RFC 4191 section 2.3, RFC 8106 section 5.

OPTION_VECTORS = [
    (SourceLinkLayerAddress(MAC), h("""
        01 01              # type 1 (Source LLA), length 1 (8 octets), section 4.6.1
        02 00 00 00 00 01  # link-layer address
     """)),
    (TargetLinkLayerAddress(MAC), h("""
        02 01              # type 2 (Target LLA), length 1
        02 00 00 00 00 01
     """)),
    (PrefixInformation(IPv6Network("2001:db8::/64")), h("""
        03 04              # type 3, length 4 (32 octets), RFC 4861 section 4.6.2
        40                 # prefix length 64
        c0                 # L=1 A=1 R=0, reserved1
        00 01 51 80        # valid lifetime 86400
        00 00 38 40        # preferred lifetime 14400
        00 00 00 00        # reserved2
        20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 00  # prefix 2001:db8::
     """)),
    (PrefixInformation(IPv6Network("2001:db8::/64"), router_address=True, router=MN,
                       valid_lifetime=0xFFFFFFFF, preferred_lifetime=0), h("""
        03 04 40
        e0                 # L=1 A=1 R=1 (RFC 6275 section 7.2)
        ff ff ff ff        # valid lifetime infinity
        00 00 00 00        # preferred lifetime 0
        00 00 00 00
        20 01 0d b8 00 00 00 00 00 00 00 00 00 00 be ef  # router's full address
     """)),
    (MTU(1500), h("""
        05 01              # type 5, length 1, RFC 4861 section 4.6.4
        00 00              # reserved
        00 00 05 dc        # MTU 1500
     """)),
    (AdvertisementInterval(3000), h("""
        07 01              # type 7, length 1, RFC 6275 section 7.3
        00 00              # reserved
        00 00 0b b8        # advertisement interval 3000 ms
     """)),
    (HomeAgentInformation(-2, 1800), h("""
        08 01              # type 8, length 1, RFC 6275 section 7.4
        00 00              # reserved
        ff fe              # home agent preference -2 (signed)
        07 08              # home agent lifetime 1800 s
     """)),
    (HomeAgentInformation(3, 600, mobile_router=True), h("""
        08 01              # type 8, length 1
        80 00              # R: mobile router support (RFC 3963 section 7.1), rest reserved
        00 03              # home agent preference 3
        02 58              # home agent lifetime 600 s
     """)),
    (RouteInformation(IPv6Network("::/0"), -1, 0xFFFFFFFF), h("""
        18 01              # type 24, length 1 (prefix length 0), RFC 4191 section 2.3
        00                 # prefix length 0
        18                 # Prf 11 = low, bits 3-4
        ff ff ff ff        # route lifetime infinity
     """)),
    (RouteInformation(IPv6Network("2001:db8:2::/48"), 1, 600), h("""
        18 02              # type 24, length 2 (prefix length <= 64)
        30                 # prefix length 48
        08                 # Prf 01 = high
        00 00 02 58        # route lifetime 600
        20 01 0d b8 00 02 00 00  # first 64 bits of the prefix
     """)),
    (RouteInformation(IPv6Network("2001:db8:2::80/121"), 0, 60), h("""
        18 03              # type 24, length 3 (prefix length > 64)
        79                 # prefix length 121
        00                 # Prf 00 = medium
        00 00 00 3c        # route lifetime 60
        20 01 0d b8 00 02 00 00 00 00 00 00 00 00 00 80
     """)),
    (RecursiveDNSServer(600, (IPv6Address("2001:db8::53"), IPv6Address("2001:db8::54"))), h("""
        19 05              # type 25, length 1 + 2*2, RFC 8106 section 5.1
        00 00              # reserved
        00 00 02 58        # lifetime 600
        20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 53
        20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 54
     """)),
    (DNSSearchList(600, ("example.com", "home.arpa")), h("""
        1f 04              # type 31, length 4 (32 octets), RFC 8106 section 5.2
        00 00              # reserved
        00 00 02 58        # lifetime 600
        07 65 78 61 6d 70 6c 65  03 63 6f 6d  00  # 7 example 3 com 0
        04 68 6f 6d 65  04 61 72 70 61  00        # 4 home 4 arpa 0 (ends on 32: no padding)
     """)),
    (UnknownNDOption(14, bytes.fromhex("0102030405ff")), h("""
        0e 01              # type 14 (Nonce, RFC 3971): not decoded here
        01 02 03 04 05 ff
     """)),
]


@pytest.mark.parametrize("opt,wire", OPTION_VECTORS, ids=lambda v: type(v).__name__)
def test_option_vectors(opt, wire):
    assert len(wire) % 8 == 0
    assert encode_nd_options([opt]) == wire
    assert decode_nd_options(wire) == [opt]


def test_options_in_sequence_and_offset():
    opts = [o for o, _ in OPTION_VECTORS]
    wire = encode_nd_options(opts)
    assert wire == b"".join(w for _, w in OPTION_VECTORS)
    assert decode_nd_options(b"\xaa" * 5 + wire, offset=5) == opts


def test_option_length_zero_is_an_error():
    # RFC 4861 section 4.6: nodes MUST silently discard a packet with a zero-length option
    with pytest.raises(CodecError) as err:
        decode_nd_options(h("05 01 0000 000005dc  01 00 000000000000"))
    assert err.value.offset == 9


@pytest.mark.parametrize("wire,offset", [
    (h("05 02 0000 000005dc"), 0),                  # claims 16 octets, has 8
    (h("05"), 0),                                   # header cut
    (h("05 02 0000 000005dc 0000000000000000"), 0),  # MTU must be length 1
    (h("03 04 81 c0" + "00" * 28), 2),              # prefix length 129
    (h("18 01 08 00 00000000"), 2),                 # RIO /8 in length 1
    (h("18 02 41 00 00000000 0000000000000000"), 2),  # RIO /65 in length 2
    (h("18 04 00 00 00000000" + "00" * 24), 1),    # RIO length 4
    (h("19 02 0000 00000000 0000000000000000"), 1),  # RDNSS even length
    (h("19 01 0000 00000000"), 1),                  # RDNSS without address
    (h("1f 01 0000 00000000"), 1),                  # DNSSL too short for a name
    (h("1f 02 0000 00000000 0000000000000000"), 8),  # DNSSL with padding only
    (h("1f 02 0000 00000000 08 616263 00000000"), 8),  # label runs past the option
    (h("1f 02 0000 00000000 c0 0c 00 00 00 00 00 00"), 8),  # compression pointer
    (h("1f 02 0000 00000000 00 01 00 00 00 00 00 00"), 8),  # junk in padding
    (h("1f 02 0000 00000000 03 61 62 63 01 61 01 61"), 16),  # name never ends
])
def test_bad_options(wire, offset):
    with pytest.raises(CodecError) as err:
        decode_nd_options(wire)
    assert err.value.offset == offset


def test_pio_reserved_prefix_bits_ignored_without_r():
    # RFC 4861 section 4.6.2: bits past the prefix length are ignored
    wire = h("03 04 40 c0 00015180 00003840 00000000 20010db8000000000000000000000001")
    (pio,) = decode_nd_options(wire)
    assert pio.prefix == IPv6Network("2001:db8::/64") and pio.router is None


def test_pio_r_flag_without_router_encodes_the_prefix():
    pio = PrefixInformation(IPv6Network("2001:db8::/64"), router_address=True)
    (back,) = decode_nd_options(encode_nd_options([pio]))
    assert back.router == HA and back.prefix == pio.prefix and back.router_address


def test_rio_reserved_preference_is_kept():
    (rio,) = decode_nd_options(h("18 01 00 10 00000000"))
    assert rio.preference == PRF_RESERVED
    assert encode_nd_options([rio]) == h("18 01 00 10 00000000")


def test_lla_longer_than_six():
    opt = SourceLinkLayerAddress(bytes(range(8)))
    wire = encode_nd_options([opt])
    assert wire == h("01 02 0001020304050607 000000000000")
    assert decode_nd_options(wire) == [SourceLinkLayerAddress(bytes(range(8)) + bytes(6))]


@pytest.mark.parametrize("bad", [
    RouteInformation(IPv6Network("::/0"), preference=2),
    RecursiveDNSServer(1, ()),
    DNSSearchList(1, ()),
    DNSSearchList(1, ("a..b",)),
    DNSSearchList(1, ("x" * 64 + ".com",)),
    UnknownNDOption(99, b"abc"),
    MTU(1 << 32),
    HomeAgentInformation(40000, 1),
    "not an option",
])
def test_encode_rejects_values_that_do_not_fit(bad):
    with pytest.raises(ValueError):
        encode_nd_options([bad])


def test_dnssl_trailing_dot_and_name_ending_on_boundary():
    # "abcd.ef" encodes as 4 abcd 2 ef 0 = 9 octets + 6 = 15, padded to 16
    opt = DNSSearchList(5, ("abcd.ef.",))
    wire = encode_nd_options([opt])
    assert len(wire) == 24 and wire[-1] == 0
    assert decode_nd_options(wire) == [DNSSearchList(5, ("abcd.ef",))]
    exact = DNSSearchList(5, ("abcdefghi.j",))  # 1+9+1+1+1 = 13 ... +6 = 19, pad to 24
    assert decode_nd_options(encode_nd_options([exact])) == [exact]


# ------------------------------------------------------------ RS and RA

RA_VECTOR = h("""
    86                 # type 134, Router Advertisement (RFC 4861 section 4.2)
    00                 # code 0
    ffff               # checksum (patched below)
    40                 # cur hop limit 64
    e8                 # M=1 O=1 H=1 (RFC 6275 section 7.1), Prf=01 high (RFC 4191 section 2.2)
    0708               # router lifetime 1800
    0000ea60           # reachable time 60000 ms
    000003e8           # retrans timer 1000 ms
    0101 020000000001  # Source LLA option
    0701 0000 00000bb8 # Advertisement Interval 3000 ms
    0801 0000 000a 0e10  # Home Agent Information: preference 10, lifetime 3600
""")


def test_ra_vector():
    ra = RouterAdvertisement(64, True, True, True, 1, 1800, 60000, 1000, [
        SourceLinkLayerAddress(MAC), AdvertisementInterval(3000),
        HomeAgentInformation(10, 3600)])
    wire = encode_icmpv6(ra, LL, ALL_NODES)
    assert zero_checksum(wire) == zero_checksum(RA_VECTOR)
    assert decode_icmpv6(wire, LL, ALL_NODES) == ra
    assert decode_icmpv6(wire) == ra
    assert option(ra, HomeAgentInformation).preference == 10
    assert option(ra, MTU) is None


def test_ra_defaults_and_low_preference():
    ra = RouterAdvertisement(preference=-1)
    wire = encode_icmpv6(ra, LL, ALL_NODES)
    assert wire[4:] == h("40 18 0708 00000000 00000000")  # Prf 11 = low
    assert decode_icmpv6(wire) == ra


def test_ra_reserved_prf_and_unknown_flags():
    # Prf 10 is reserved (kept as PRF_RESERVED); the P flag (0x04) is not modelled
    ra = decode_icmpv6(h("8600 0000 40 14 0000 00000000 00000000"))
    assert ra.preference == PRF_RESERVED and not ra.managed


def test_rs_vector():
    rs = RouterSolicitation([SourceLinkLayerAddress(MAC)])
    wire = encode_icmpv6(rs, LL, IPv6Address("ff02::2"))
    assert zero_checksum(wire) == h("""
        85 00 0000         # type 133, code 0, checksum
        00000000           # reserved (RFC 4861 section 4.1)
        0101 020000000001  # Source LLA
    """)
    assert decode_icmpv6(wire, LL, IPv6Address("ff02::2")) == rs
    assert decode_icmpv6(encode_icmpv6(RouterSolicitation(), LL, ALL_NODES)) == \
        RouterSolicitation()


def test_checksum_known_value():
    # RS with no options from fe80::1 to ff02::2; sum computed by hand below
    wire = encode_icmpv6(RouterSolicitation(), LL, IPv6Address("ff02::2"))
    # pseudo-header words: fe80 + 0001 + ff02 + 0002 + 0008 (length) + 003a (next header)
    # + message word 8500 = 0x282c7 -> folded 0x82c9 -> complement 0x7d36
    assert wire == h("8500 7d36 00000000")


def test_checksum_mismatch():
    wire = bytearray(encode_icmpv6(RouterAdvertisement(), LL, ALL_NODES))
    wire[5] ^= 0x80
    with pytest.raises(CodecError) as err:
        decode_icmpv6(bytes(wire), LL, ALL_NODES)
    assert err.value.offset == 2
    decode_icmpv6(bytes(wire))  # without addresses no check
    with pytest.raises(CodecError):
        decode_icmpv6(encode_icmpv6(RouterAdvertisement(), LL, ALL_NODES), LL, HA)


def test_ra_too_short_and_bad_option():
    with pytest.raises(CodecError):
        decode_icmpv6(h("8600 0000 40 00 0708 00000000 000000"))
    with pytest.raises(CodecError) as err:
        decode_icmpv6(h("8600 0000 40 00 0708 00000000 00000000 0500 0000 00000000"))
    assert err.value.offset == 17


# ------------------------------------------------------------ NS and NA


def test_ns_vector():
    ns = NeighborSolicitation(MN, [SourceLinkLayerAddress(MAC)])
    wire = encode_icmpv6(ns, HA, IPv6Address("ff02::1:ffff:beef"))
    assert zero_checksum(wire) == h("""
        87 00 0000         # type 135, code 0, checksum (RFC 4861 section 4.3)
        00000000           # reserved
        20010db800000000 000000000000beef  # target address
        0101 020000000001  # Source LLA
    """)
    assert decode_icmpv6(wire, HA, IPv6Address("ff02::1:ffff:beef")) == ns


@pytest.mark.parametrize("r,s,o,flags", [
    (True, False, True, "a0"),   # the unsolicited proxy NA of RFC 6275 section 10.4.1
    (True, True, True, "e0"),
    (False, True, False, "40"),
    (False, False, False, "00"),
])
def test_na_flags(r, s, o, flags):
    na = NeighborAdvertisement(MN, r, s, o, [TargetLinkLayerAddress(MAC)])
    wire = encode_icmpv6(na, HA, ALL_NODES)
    assert zero_checksum(wire) == h(f"""
        88 00 0000         # type 136, code 0, checksum (RFC 4861 section 4.4)
        {flags} 000000     # R 0x80, S 0x40, O 0x20, reserved
        20010db800000000 000000000000beef  # target address
        0201 020000000001  # Target LLA
    """)
    assert decode_icmpv6(wire, HA, ALL_NODES) == na


def test_ns_na_too_short():
    for t in (0x87, 0x88):
        with pytest.raises(CodecError):
            decode_icmpv6(bytes([t]) + bytes(22))


# ------------------------------------------------- RFC 6275 section 6.5-6.8


def test_dhaad_request_vector():
    wire = encode_icmpv6(DHAADRequest(0x1234), MN, IPv6Address("2001:db8::fdff:ffff:ffff:fffe"))
    assert zero_checksum(wire) == h("""
        90 00 0000  # type 144, code 0, checksum (section 6.5)
        1234        # identifier
        0000        # reserved
    """)
    assert decode_icmpv6(wire) == DHAADRequest(0x1234)


def test_dhaad_reply_vector():
    reply = DHAADReply(0x1234, (HA, IPv6Address("2001:db8::2")))
    wire = encode_icmpv6(reply, HA, MN)
    assert zero_checksum(wire) == h("""
        91 00 0000  # type 145, code 0, checksum (section 6.6)
        1234 0000   # identifier, reserved
        20010db8000000000000000000000000  # home agent addresses, in preference order
        20010db8000000000000000000000002
    """)
    assert decode_icmpv6(wire, HA, MN) == reply
    assert decode_icmpv6(encode_icmpv6(DHAADReply(7), HA, MN)) == DHAADReply(7, ())
    with pytest.raises(CodecError) as err:
        decode_icmpv6(wire[:-1])
    assert err.value.offset == 24


def test_mobile_prefix_solicitation_vector():
    wire = encode_icmpv6(MobilePrefixSolicitation(0xbeef), MN, HA)
    assert zero_checksum(wire) == h("92 00 0000  beef 0000")  # section 6.7
    assert decode_icmpv6(wire, MN, HA) == MobilePrefixSolicitation(0xbeef)


def test_mobile_prefix_advertisement_vector():
    mpa = MobilePrefixAdvertisement(0xbeef, True, False, [
        PrefixInformation(IPv6Network("2001:db8::/64"), router_address=True, router=HA)])
    wire = encode_icmpv6(mpa, HA, MN)
    assert zero_checksum(wire) == h("""
        93 00 0000  # type 147, code 0, checksum (section 6.8)
        beef        # identifier
        80 00       # M=1 O=0, reserved
        0304 40 e0 00015180 00003840 00000000 20010db8000000000000000000000000
    """)
    assert decode_icmpv6(wire, HA, MN) == mpa
    both = MobilePrefixAdvertisement(1, True, True)
    assert encode_icmpv6(both, HA, MN)[4:] == h("0001 c0 00")
    assert decode_icmpv6(encode_icmpv6(both, HA, MN)) == both


# ------------------------------------------------------- error and echo


def test_parameter_problem_vector():
    pp = ParameterProblem(2, 40, bytes.fromhex("6000000000083c40"))
    wire = encode_icmpv6(pp, HA, MN)
    assert zero_checksum(wire) == h("""
        04 02 0000         # type 4, code 2 (unrecognised option), RFC 4443 section 3.4
        00000028           # pointer 40
        6000000000083c40   # start of the invoking packet
    """)
    assert decode_icmpv6(wire, HA, MN) == pp


def test_echo():
    for cls, t in ((EchoRequest, 128), (EchoReply, 129)):
        msg = cls(0x0102, 0x0304, b"ping")
        wire = encode_icmpv6(msg, HA, MN)
        assert zero_checksum(wire) == bytes([t]) + h("00 0000 0102 0304") + b"ping"
        assert decode_icmpv6(wire, HA, MN) == msg
        with pytest.raises(CodecError):
            decode_icmpv6(wire[:7])


def test_unknown_message_and_other_codes():
    for msg in (UnknownICMPv6(1, 4, bytes(4) + b"invoking"), UnknownICMPv6(200, 9, b"")):
        assert decode_icmpv6(encode_icmpv6(msg, HA, MN), HA, MN) == msg
    # a nonzero code on an RA decodes; validate_nd is where it is refused
    ra = bytearray(encode_icmpv6(RouterAdvertisement(), LL, ALL_NODES))
    ra[1] = 1
    assert decode_icmpv6(bytes(ra)) == RouterAdvertisement()
    with pytest.raises(CodecError):
        decode_icmpv6(b"\x86\x00\x00")


def test_encode_out_of_range():
    for bad in (EchoRequest(1 << 16, 0, b""), RouterAdvertisement(cur_hop_limit=256),
                RouterAdvertisement(preference=5), "nope"):
        with pytest.raises(ValueError):
            encode_icmpv6(bad, HA, MN)


# ------------------------------------------------------------ validate_nd


@pytest.mark.parametrize("msg_type,code,hop_limit,bad", [
    (134, 0, 255, False),
    (134, 0, 254, True),    # RFC 4861 section 6.1.2
    (133, 1, 255, True),    # section 6.1.1
    (135, 0, 64, True),     # section 7.1.1
    (136, 0, 255, False),
    (137, 0, 1, True),      # section 8.1
    (144, 0, 64, False),    # DHAAD crosses routers: hop limit not checked
    (147, 3, 255, True),    # RFC 6275 section 6.8: code 0
    (128, 5, 1, False),     # not ND
])
def test_validate_nd(msg_type, code, hop_limit, bad):
    reason = validate_nd(msg_type, code, hop_limit)
    assert (reason is not None) == bad
    if bad:
        assert isinstance(reason, str) and reason
