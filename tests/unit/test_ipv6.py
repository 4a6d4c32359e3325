"""IPv6 fixed header, Destination Options with the Home Address option, type 2
Routing Header, IPv6-in-IPv6 and the packet walker (RFC 8200, RFC 6275 6.3/6.4)."""

from ipaddress import IPv6Address

import pytest

from ha.wire.errors import CodecError
from ha.wire.ipv6 import (
    DestinationOptions, HomeAddressOption, IPv6Header, Proto, RoutingHeaderType2,
    UnknownOption, build_ba_packet, build_bu_packet, decapsulate,
    decode_destination_options, decode_ipv6_header, decode_routing_header_type2,
    dstopts_with_hao, encapsulate, parse_packet,
)

HOA = IPv6Address("2001:db8::beef")
HA = IPv6Address("2001:db8::")
COA = IPv6Address("2001:db8:1::2")
CN = IPv6Address("2001:db8::c0")

HOA_HEX = "20010db8000000000000000000 00beef".replace(" ", "")
HA_HEX = "20010db8000000000000000000000000"
COA_HEX = "20010db8000100000000000000000002"
MH16 = bytes.fromhex("3b01050000001234c000009601020000")  # a BU, 16 octets


def test_fixed_header_vector():
    hdr = IPv6Header(COA, HA, 60, payload_length=40, hop_limit=64, traffic_class=0xb8,
                     flow_label=0x12345)
    wire = bytes.fromhex(
        "6b8"      # version 6, traffic class 0xb8 (its high nibble)
        "12345"    # flow label 0x12345 (after the low nibble 8 of the class)
        "0028"     # payload length 40
        "3c"       # next header 60 (destination options)
        "40"       # hop limit 64
        + COA_HEX + HA_HEX)
    assert hdr.encode() == wire
    assert decode_ipv6_header(wire) == hdr


def test_fixed_header_refusals():
    with pytest.raises(CodecError, match="truncated"):
        decode_ipv6_header(bytes(39))
    with pytest.raises(CodecError, match="version 4") as err:
        decode_ipv6_header(b"\x45" + bytes(39))
    assert err.value.offset == 0
    # the offset argument is honoured for both the check and the message
    with pytest.raises(CodecError) as err:
        decode_ipv6_header(bytes(10) + b"\x40" + bytes(39), offset=10)
    assert err.value.offset == 10


def test_dstopts_with_hao_vector():
    wire = dstopts_with_hao(HOA)
    assert wire == bytes.fromhex(
        "87"     # next header 135 (MH)
        "02"     # hdr ext len 2 -> 24 octets
        "0102 0000"  # PadN, 2 octets of data: the HAO starts at 6 = 8n+6
        "c9"     # option type 201 Home Address
        "10"     # option length 16
        + HOA_HEX)
    assert wire.index(b"\xc9\x10") % 8 == 6
    assert DestinationOptions(Proto.MH, [HomeAddressOption(HOA)]).encode() == wire
    opts, length = decode_destination_options(wire)
    assert length == 24
    assert opts == DestinationOptions(135, [HomeAddressOption(HOA)])
    assert opts.home_address() == HOA


def test_dstopts_hao_after_an_unknown_option_stays_at_8n_plus_6():
    opts = DestinationOptions(58, [UnknownOption(0x1e, b"abc"), HomeAddressOption(HOA)])
    wire = opts.encode()
    assert len(wire) % 8 == 0 and (wire[1] + 1) * 8 == len(wire)
    assert wire.index(b"\xc9\x10") % 8 == 6
    assert decode_destination_options(wire)[0] == opts
    assert UnknownOption(0x1e, b"").action == 0
    assert UnknownOption(0xc2, b"").action == 3


def test_dstopts_offset_and_refusals():
    wire = dstopts_with_hao(HOA)
    assert decode_destination_options(b"\0" * 8 + wire, 8)[0].home_address() == HOA
    bad = [
        (wire[:20], 1, "runs past"),  # header length beyond the data
        (wire[:6] + b"\xc9\x08" + wire[8:], 7, "length 8"),  # HAO length 8
        (bytes.fromhex("3b00 c904 00000000"), 3, "length 4"),
        (bytes.fromhex("3b00 0000 000000 01"), 7, "no length"),
        (bytes.fromhex("3b00 0105 00000000"), 3, "runs past"),
        (bytes(4), 0, "truncated"),
    ]
    for data, offset, words in bad:
        with pytest.raises(CodecError, match=words) as err:
            decode_destination_options(data)
        assert err.value.offset == offset, data.hex()
    two = DestinationOptions(59, [HomeAddressOption(HOA), HomeAddressOption(COA)]).encode()
    with pytest.raises(CodecError, match="second Home Address"):
        decode_destination_options(two)


def test_rh2_vector_and_refusals():
    wire = RoutingHeaderType2(Proto.MH, HOA).encode()
    assert wire == bytes.fromhex(
        "87"        # next header 135
        "02"        # hdr ext len 2 (RFC 6275 6.4)
        "02"        # routing type 2
        "01"        # segments left 1
        "00000000"  # reserved
        + HOA_HEX)
    assert decode_routing_header_type2(wire) == (RoutingHeaderType2(135, HOA, 1), 24)
    cases = [
        (wire[:1] + b"\x04" + wire[2:] + bytes(16), 1, "length 4"),
        (wire[:2] + b"\x00" + wire[3:], 2, "routing type 0"),
        (wire[:3] + b"\x02" + wire[4:], 3, "segments left 2"),
        (wire[:23], 0, "truncated"),
    ]
    for data, offset, words in cases:
        with pytest.raises(CodecError, match=words) as err:
            decode_routing_header_type2(data)
        assert err.value.offset == offset


def test_build_bu_packet_layout_and_walk():
    pkt = build_bu_packet(COA, HA, HOA, MH16)
    assert pkt[:40] == IPv6Header(COA, HA, 60, 24 + 16, 64).encode()
    assert pkt[40:64] == dstopts_with_hao(HOA)
    assert pkt[64:] == MH16
    p = parse_packet(pkt)
    assert (p.header.src, p.header.dst, p.header.next_header) == (COA, HA, 60)
    assert p.home_address == HOA and p.routing_address is None
    assert (p.protocol, p.payload_offset, p.payload) == (135, 64, MH16)


def test_build_ba_packet_layout_and_walk():
    pkt = build_ba_packet(HA, COA, HOA, MH16, hop_limit=7)
    assert pkt[:40] == IPv6Header(HA, COA, 43, 24 + 16, 7).encode()
    assert pkt[40:64] == RoutingHeaderType2(135, HOA).encode()
    p = parse_packet(pkt)
    assert p.routing_address == HOA and p.home_address is None
    assert (p.protocol, p.payload_offset, p.payload, p.header.hop_limit) == (135, 64, MH16, 7)


def test_walk_full_chain():
    # hop-by-hop (router alert) -> dest opts (unknown opt) -> RH2 -> dest opts (HAO) -> ICMPv6
    hbh = bytes.fromhex("3c00 0502 0000 0100")  # nh 60, router alert, PadN(0)
    d1 = DestinationOptions(43, [UnknownOption(0x1e, b"\x01\x02")]).encode()
    rh2 = RoutingHeaderType2(60, HOA).encode()
    d2 = dstopts_with_hao(CN, 58)
    icmp = bytes.fromhex("8000 0000 0001 0002")
    body = hbh + d1 + rh2 + d2 + icmp
    pkt = IPv6Header(COA, HA, 0, len(body)).encode() + body + b"\0" * 6  # Ethernet padding
    p = parse_packet(pkt)
    assert (p.home_address, p.routing_address) == (CN, HOA)
    assert (p.protocol, p.payload) == (58, icmp)
    assert p.payload_offset == 40 + len(hbh + d1 + rh2 + d2)
    assert parse_packet(bytearray(pkt)) == p
    assert parse_packet(memoryview(pkt)) == p


@pytest.mark.parametrize("nh", [6, 17, 44, 50, 51, 58, 59, 41, 135])
def test_walk_stops_at_upper_layers(nh):
    body = b"\xaa" * 8
    p = parse_packet(IPv6Header(COA, HA, nh, 8).encode() + body)
    assert (p.protocol, p.payload_offset, p.payload) == (nh, 40, body)


def test_walk_skips_other_routing_types():
    rh0 = bytes.fromhex("3a02 0000 00000000") + HA.packed  # type 0, segments left 0
    p = parse_packet(IPv6Header(COA, HA, 43, 32).encode() + rh0 + bytes(8))
    assert p.routing_address is None and p.protocol == 58 and p.payload_offset == 64


def test_walk_refusals():
    good = build_bu_packet(COA, HA, HOA, MH16)
    cases = [
        (good[:39], "truncated"),
        (b"\x40" + good[1:], "version 4"),
        (good[:-1], "exceeds"),  # payload length says more than captured
        (good[:4] + b"\0\0" + good[6:], "jumbogram"),
        (good[:40] + good[40:64].replace(b"\x01\x02", b"\x01\x03", 1) + good[64:], "runs past"),
    ]
    for data, words in cases:
        with pytest.raises(CodecError, match=words):
            parse_packet(data)
    # hop-by-hop anywhere but first (RFC 8200 4.3)
    d = DestinationOptions(0, []).encode() + bytes.fromhex("3b00 0104 00000000")
    with pytest.raises(CodecError, match="not first"):
        parse_packet(IPv6Header(COA, HA, 60, len(d)).encode() + d)
    # two Home Address options in two headers (RFC 6275 6.3: at most one)
    d = dstopts_with_hao(HOA, 60) + dstopts_with_hao(HOA, 59)
    with pytest.raises(CodecError, match="second Home Address"):
        parse_packet(IPv6Header(COA, HA, 60, len(d)).encode() + d)
    # two RH2
    r = RoutingHeaderType2(43, HOA).encode() + RoutingHeaderType2(59, HOA).encode()
    with pytest.raises(CodecError, match="second type 2"):
        parse_packet(IPv6Header(COA, HA, 43, len(r)).encode() + r)
    # RH2 with a bad length inside a packet
    r = RoutingHeaderType2(59, HOA).encode()
    r = r[:1] + b"\x03" + r[2:] + bytes(8)
    with pytest.raises(CodecError, match="length 3"):
        parse_packet(IPv6Header(COA, HA, 43, len(r)).encode() + r)


def test_encapsulate_round_trip():
    inner = build_bu_packet(COA, HA, HOA, MH16)
    outer = encapsulate(inner, HA, COA, hop_limit=5, traffic_class=3, flow_label=9)
    assert outer[6] == 41 and len(outer) == 40 + len(inner)
    hdr, got = decapsulate(outer)
    assert got == inner
    assert (hdr.src, hdr.dst, hdr.hop_limit, hdr.traffic_class, hdr.flow_label,
            hdr.payload_length) == (HA, COA, 5, 3, 9, len(inner))


def test_decapsulate_refusals():
    with pytest.raises(CodecError, match="expected 41"):
        decapsulate(build_bu_packet(COA, HA, HOA, MH16))
    with pytest.raises(CodecError, match="inner IPv6 header truncated"):
        decapsulate(encapsulate(bytes(20), HA, COA))
    with pytest.raises(CodecError, match="inner IP version 4"):
        decapsulate(encapsulate(b"\x45" + bytes(39), HA, COA))


def test_walk_finds_hao_in_any_layout():
    # the walker has a shortcut for dstopts_with_hao()'s layout; other layouts
    # (an unknown option first, Pad1s) must give the same answer
    layouts = [
        dstopts_with_hao(HOA, 135),
        DestinationOptions(135, [UnknownOption(0x1e, b"abc"), HomeAddressOption(HOA)]).encode(),
        bytes.fromhex("8702 0000 0000 c910") + HOA.packed,  # Pad1 x4 instead of PadN
    ]
    for d in layouts:
        p = parse_packet(IPv6Header(COA, HA, 60, len(d) + 16).encode() + d + MH16)
        assert (p.home_address, p.protocol, p.payload) == (HOA, 135, MH16), d.hex()
    # a second HAO is refused whichever path found the first
    for first, second in [(layouts[0], layouts[1]), (layouts[1], layouts[0])]:
        d = bytes([60]) + first[1:] + second
        with pytest.raises(CodecError, match="second Home Address"):
            parse_packet(IPv6Header(COA, HA, 60, len(d)).encode() + d)
    # the shortcut still honours the payload length
    d = dstopts_with_hao(HOA, 135)
    with pytest.raises(CodecError):
        parse_packet(IPv6Header(COA, HA, 60, 20).encode() + d)


def test_pseudo_header_addresses():
    # BU: HoA (from the HAO) -> HA; BA: HA -> HoA (from the RH2); neither the CoA
    assert parse_packet(build_bu_packet(COA, HA, HOA, MH16)).pseudo_header_addresses() == \
        (HOA, HA)
    assert parse_packet(build_ba_packet(HA, COA, HOA, MH16)).pseudo_header_addresses() == \
        (HA, HOA)
    plain = parse_packet(IPv6Header(COA, HA, 58, 8).encode() + bytes(8))
    assert plain.pseudo_header_addresses() == (COA, HA)


def test_pseudo_header_after_rh2_processed():
    # segments left 0: the IPv6 destination already is the final one (RFC 8200 8.1)
    r = RoutingHeaderType2(135, HOA, segments_left=0).encode()
    p = parse_packet(IPv6Header(HA, HOA, 43, len(r) + 16).encode() + r + MH16)
    assert p.routing_address == HOA and p.routing_segments_left == 0
    assert p.pseudo_header_addresses() == (HA, HOA)
    r = RoutingHeaderType2(135, CN, segments_left=0).encode()
    p = parse_packet(IPv6Header(HA, HOA, 43, len(r) + 16).encode() + r + MH16)
    assert p.pseudo_header_addresses() == (HA, HOA)  # not CN
    assert parse_packet(build_ba_packet(HA, COA, HOA, MH16)).routing_segments_left == 1
