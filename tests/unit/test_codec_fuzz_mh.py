"""Hostile bytes: every decoder of ha.wire.mobility and ha.wire.ipv6 raises only
CodecError, whatever it is fed (random, truncated, mutated, structured)."""

from ipaddress import IPv6Address

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ha.wire.errors import CodecError
from ha.wire.ipv6 import (
    DestinationOptions, HomeAddressOption, IPv6Header, RoutingHeaderType2, UnknownOption,
    build_ba_packet, build_bu_packet, decapsulate, decode_destination_options,
    decode_ipv6_header, decode_routing_header_type2, encapsulate, parse_packet,
)
from ha.wire.mobility import (
    AlternateCareOfAddress, BAStatus, BEStatus, BindingAck, BindingAuthorizationData,
    BindingError, BindingRefreshAdvice, BindingRefreshRequest, BindingUpdate, CareOfTest,
    CareOfTestInit, HomeTest, HomeTestInit, NonceIndices, UnknownMobilityMessage,
    UnknownMobilityOption, decode_mh, encode_mh,
)

HOA = IPv6Address("2001:db8::beef")
HA = IPv6Address("2001:db8::")
COA = IPv6Address("2001:db8:1::2")

FAST = settings(max_examples=250, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

MESSAGES = [
    BindingRefreshRequest(),
    HomeTestInit(b"\x01" * 8, options=[UnknownMobilityOption(99, b"abc")]),
    CareOfTestInit(b"\x02" * 8),
    HomeTest(1, b"\x03" * 8, b"\x04" * 8),
    CareOfTest(2, b"\x05" * 8, b"\x06" * 8, options=[NonceIndices(1, 2)]),
    BindingUpdate(7, 100, ack=True, home_registration=True, options=[
        AlternateCareOfAddress(COA), NonceIndices(1, 2), BindingAuthorizationData(b"\x07" * 12)]),
    BindingAck(BAStatus.ACCEPTED, 7, 100, options=[BindingRefreshAdvice(30)]),
    BindingError(BEStatus.UNRECOGNIZED_MH_TYPE_VALUE, HOA),
    UnknownMobilityMessage(99, b"\0\0" + bytes(8)),
]
WIRES = [encode_mh(m, HOA, HA) for m in MESSAGES]

PACKETS = [
    build_bu_packet(COA, HA, HOA, WIRES[5]),
    build_ba_packet(HA, COA, HOA, WIRES[6]),
    encapsulate(build_bu_packet(COA, HA, HOA, WIRES[0]), HA, COA),
]


def only_codec_error(fn, *args):
    """Run a decoder; any exception but CodecError fails the test."""
    try:
        return fn(*args)
    except CodecError as err:
        assert isinstance(err.offset, int) and err.what
        return None


def _all_ipv6_decoders(data: bytes, offset: int = 0):
    only_codec_error(parse_packet, data)
    only_codec_error(decapsulate, data)
    only_codec_error(decode_ipv6_header, data, offset)
    only_codec_error(decode_destination_options, data, offset)
    only_codec_error(decode_routing_header_type2, data, offset)


# ---------------------------------------------------------------- random


@FAST
@given(st.binary(max_size=300))
def test_decode_mh_random_bytes(data):
    only_codec_error(decode_mh, data)
    only_codec_error(decode_mh, data, HOA, HA)


@FAST
@given(st.integers(0, 255), st.integers(0, 12), st.binary(max_size=120))
def test_decode_mh_structured(mhtype, hlen, body):
    # A plausible header (proto 59, Header Len matching the length) so the
    # fuzzing reaches the type and option parsers instead of the first check.
    body = (body + bytes(8 * (hlen + 1)))[:8 * (hlen + 1) - 6]
    data = bytes((59, hlen, mhtype, 0, 0, 0)) + body
    msg = only_codec_error(decode_mh, data)
    if msg is not None:
        # anything that decodes re-encodes to a message that decodes the same
        assert decode_mh(encode_mh(msg, HOA, HA), HOA, HA) == msg


@FAST
@given(st.binary(max_size=300), st.integers(0, 310))
def test_ipv6_decoders_random_bytes(data, offset):
    _all_ipv6_decoders(data, offset)


@FAST
@given(st.lists(st.sampled_from([0, 43, 60, 41, 58, 135, 44, 59]), max_size=4),
       st.binary(max_size=160))
def test_parse_packet_structured(chain, body):
    # A valid fixed header announcing ext headers, followed by random bytes
    # in which the walker has to find lengths and options.
    nh = chain[0] if chain else 59
    data = IPv6Header(COA, HA, nh, len(body)).encode() + body
    only_codec_error(parse_packet, data)
    only_codec_error(decapsulate, data)


# ------------------------------------------------ truncation and mutation


@pytest.mark.parametrize("wire", WIRES, ids=[type(m).__name__ for m in MESSAGES])
def test_every_truncation_of_every_message_is_a_codec_error(wire):
    for cut in range(len(wire)):
        with pytest.raises(CodecError):
            decode_mh(wire[:cut])
        with pytest.raises(CodecError):
            decode_mh(wire[:cut], HOA, HA)


@pytest.mark.parametrize("pkt", PACKETS, ids=["bu", "ba", "tunnel"])
def test_every_truncation_of_every_packet_is_a_codec_error(pkt):
    for cut in range(len(pkt)):
        with pytest.raises(CodecError):
            parse_packet(pkt[:cut])
        _all_ipv6_decoders(pkt[:cut])
        _all_ipv6_decoders(pkt[:cut], 40)


def test_every_truncation_of_ext_headers_is_a_codec_error():
    dopt = DestinationOptions(135, [UnknownOption(7, b"xy"), HomeAddressOption(HOA)]).encode()
    rh2 = RoutingHeaderType2(135, HOA).encode()
    for cut in range(len(dopt)):
        with pytest.raises(CodecError):
            decode_destination_options(dopt[:cut])
    for cut in range(len(rh2)):
        with pytest.raises(CodecError):
            decode_routing_header_type2(rh2[:cut])


@FAST
@given(st.sampled_from(WIRES), st.data())
def test_mutated_messages(wire, data):
    mutated = bytearray(wire)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(wire) - 1))
        mutated[pos] = data.draw(st.integers(0, 255))
    only_codec_error(decode_mh, bytes(mutated))
    only_codec_error(decode_mh, bytes(mutated), HOA, HA)


@FAST
@given(st.sampled_from(PACKETS), st.data())
def test_mutated_packets(pkt, data):
    mutated = bytearray(pkt)
    for _ in range(data.draw(st.integers(1, 4))):
        # bias towards the headers, where the lengths live
        pos = data.draw(st.integers(0, min(len(pkt), 90) - 1))
        mutated[pos] = data.draw(st.integers(0, 255))
    res = only_codec_error(parse_packet, bytes(mutated))
    only_codec_error(decapsulate, bytes(mutated))
    if res is not None and res.protocol == 135:
        only_codec_error(decode_mh, res.payload)
        only_codec_error(decode_mh, res.payload, *res.pseudo_header_addresses())
