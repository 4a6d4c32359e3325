"""Mobility Header codec: byte vectors written from RFC 6275 section 6.1/6.2,
round trips of every message and option, and the refusals of section 9.2."""

import struct
from ipaddress import IPv6Address

import pytest
from hypothesis import given, settings, strategies as st

from ha.wire.checksum import upper_layer_checksum
from ha.wire.errors import CodecError
from ha.wire.mobility import (
    AlternateCareOfAddress, BAFlag, BAStatus, BEStatus, BindingAck, BindingAuthorizationData,
    BindingError, BindingRefreshAdvice, BindingRefreshRequest, BindingUpdate, BUFlag,
    CareOfTest, CareOfTestInit, HomeTest, HomeTestInit, MHType, NonceIndices, Pad1, PadN,
    UnknownMobilityMessage, UnknownMobilityOption, decode_mh, encode_mh, mh_checksum,
    mh_checksum_valid, mh_parameter_problem,
)

HOA = IPv6Address("2001:db8::beef")
HA = IPv6Address("2001:db8::")
COA = IPv6Address("2001:db8:1::2")


def h(text: str) -> bytes:
    """Hex with spaces and comments stripped: one field per line below."""
    lines = (line.split("#")[0] for line in text.splitlines())
    return bytes.fromhex("".join(lines).replace(" ", ""))


# Each vector: (message, (pseudo src, pseudo dst), wire bytes). Checksums were
# computed over the pseudo-header with HoA and HA (section 6.1.1) and are
# cross-checked below against ha.wire.checksum and, in test_mobility_scapy, scapy.
VECTORS = {
    "bu": (
        BindingUpdate(0x1234, 0x96, ack=True, home_registration=True), (HOA, HA), h("""
        3b          # Payload Proto 59 (no next header)
        01          # Header Len: 1 -> 16 octets
        05          # MH Type 5 Binding Update
        00          # Reserved
        d138        # Checksum
        1234        # Sequence #
        c000        # A=0x8000 H=0x4000, L K clear, reserved 0
        0096        # Lifetime 150 units = 600 s
        01 02 0000  # PadN, 2 octets of data, to the 8-octet boundary
        """)),
    "bu_kl": (
        BindingUpdate(1, 0, link_local_compat=True, key_management=True), (HOA, HA), h("""
        3b 01 05 00 # proto, len 1, BU, reserved
        7402        # Checksum
        0001        # Sequence # 1
        3000        # L=0x2000 K=0x1000
        0000        # Lifetime 0: deregistration
        01 02 0000  # PadN(2)
        """)),
    "ba": (
        BindingAck(BAStatus.ACCEPTED, 0x1234, 0x96, key_management=True), (HA, HOA), h("""
        3b 01 06 00 # proto, len 1, MH Type 6 Binding Acknowledgement, reserved
        8fb9        # Checksum
        00          # Status 0 accepted
        80          # K flag (0x80), reserved
        1234        # Sequence #
        0096        # Lifetime 150 units
        01 02 0000  # PadN(2)
        """)),
    "ba_bra": (
        BindingAck(BAStatus.ADMINISTRATIVELY_PROHIBITED, 1, 0,
                   options=[BindingRefreshAdvice(15)]), (HA, HOA), h("""
        3b 01 06 00 # proto, len 1, BA, reserved
        20f3        # Checksum
        81          # Status 129 administratively prohibited
        00          # no K
        0001        # Sequence # 1
        0000        # Lifetime 0
        02 02 000f  # Binding Refresh Advice (at offset 12, 2n), 15 units
        """)),
    "be": (
        BindingError(BEStatus.UNRECOGNIZED_MH_TYPE_VALUE, HOA), (HA, HOA), h("""
        3b 02 07 00 # proto, len 2 -> 24 octets, MH Type 7 Binding Error, reserved
        b453        # Checksum
        02          # Status 2 unrecognized MH Type value
        00          # Reserved
        20010db8000000000000000000 00beef  # Home Address 2001:db8::beef
        """)),
    "brr": (
        BindingRefreshRequest(), (HA, HOA), h("""
        3b 00 00 00 # proto, len 0 -> 8 octets, MH Type 0 BRR, reserved
        aa0e        # Checksum
        0000        # Reserved
        """)),
    "hoti": (
        HomeTestInit(bytes(range(1, 9))), (HOA, HA), h("""
        3b 01 01 00 # proto, len 1, MH Type 1 HoTI, reserved
        98f1        # Checksum
        0000        # Reserved
        0102030405060708  # Home Init Cookie
        """)),
    "hot": (
        HomeTest(7, bytes(range(1, 9)), bytes(range(0x11, 0x19))), (HOA, HA), h("""
        3b 02 03 00 # proto, len 2, MH Type 3 HoT, reserved
        468d        # Checksum
        0007        # Home Nonce Index
        0102030405060708  # Home Init Cookie
        1112131415161718  # Home Keygen Token
        """)),
    "bu_ni_bad": (
        BindingUpdate(2, 0x10, home_registration=True,
                      options=[NonceIndices(4, 3), BindingAuthorizationData(bytes(range(12)))]),
        (HOA, HA), h("""
        3b 03 05 00 # proto, len 3 -> 32 octets, BU, reserved
        3da6        # Checksum
        0002 4000 0010     # Sequence 2, H, Lifetime 16
        04 04 0004 0003    # Nonce Indices at 12 (2n): home 4, care-of 3
        05 0c              # Binding Authorization Data at 18 = 8*2+2
        000102030405060708090a0b  # 96-bit authenticator
        """)),
    "bu_acoa": (
        BindingUpdate(7, 100, ack=True, home_registration=True,
                      options=[AlternateCareOfAddress(COA)]), (HOA, HA), h("""
        3b 03 05 00 # proto, len 3, BU, reserved
        b2bb        # Checksum
        0007 c000 0064     # Sequence 7, A H, Lifetime 100
        01 00              # PadN with no data: moves the next option to 14
        03 10              # Alternate Care-of Address at 14 = 8n+6
        20010db8000100000000000000000002  # 2001:db8:1::2
        """)),
}


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_encode_matches_vector(name):
    msg, (src, dst), wire = VECTORS[name]
    assert encode_mh(msg, src, dst) == wire


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_decode_vector(name):
    msg, (src, dst), wire = VECTORS[name]
    assert decode_mh(wire, src, dst) == msg
    assert decode_mh(wire) == msg  # checksum skipped without addresses


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_vector_checksum_agrees_with_word_by_word_rfc1071(name):
    _, (src, dst), wire = VECTORS[name]
    zeroed = wire[:4] + b"\0\0" + wire[6:]
    assert _rfc1071_word_sum(src, dst, 135, zeroed) == int.from_bytes(wire[4:6], "big")
    assert mh_checksum(zeroed, src, dst) == int.from_bytes(wire[4:6], "big")
    assert mh_checksum_valid(wire, src, dst)


def test_checksum_uses_home_address_not_care_of():
    _, _, wire = VECTORS["bu"]
    with pytest.raises(CodecError) as err:
        decode_mh(wire, COA, HA)  # what a naive kernel checksum would use
    assert err.value.offset == 4
    assert "checksum" in str(err.value)


def test_flags_bits_match_enums():
    wire = encode_mh(BindingUpdate(1, 1, ack=True, home_registration=True,
                                   link_local_compat=True, key_management=True), HOA, HA)
    assert int.from_bytes(wire[8:10], "big") == (
        BUFlag.ACK | BUFlag.HOME_REGISTRATION | BUFlag.LINK_LOCAL_COMPAT | BUFlag.KEY_MANAGEMENT)
    for flag, attr in [(BUFlag.ACK, "ack"), (BUFlag.HOME_REGISTRATION, "home_registration"),
                       (BUFlag.LINK_LOCAL_COMPAT, "link_local_compat"),
                       (BUFlag.KEY_MANAGEMENT, "key_management")]:
        wire = encode_mh(BindingUpdate(1, 1, **{attr: True}), HOA, HA)
        assert int.from_bytes(wire[8:10], "big") == flag
        assert getattr(decode_mh(wire), attr) is True
    ba = encode_mh(BindingAck(0, 1, 1, key_management=True), HA, HOA)
    assert ba[7] == BAFlag.KEY_MANAGEMENT


def test_status_decodes_to_enum_and_unknown_status_stays_int():
    ba = decode_mh(encode_mh(BindingAck(135, 9, 0), HA, HOA))
    assert ba.status is BAStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW
    ba = decode_mh(encode_mh(BindingAck(200, 9, 0), HA, HOA))
    assert ba.status == 200 and not isinstance(ba.status, BAStatus)
    be = decode_mh(encode_mh(BindingError(9, HOA), HA, HOA))
    assert be.status == 9


def test_lifetime_kept_in_wire_units():
    bu = decode_mh(encode_mh(BindingUpdate(0xFFFF, 0xFFFF), HOA, HA))
    assert (bu.sequence, bu.lifetime, bu.lifetime_seconds) == (0xFFFF, 0xFFFF, 0xFFFF * 4)


ALL_MESSAGES = [
    BindingRefreshRequest(options=[UnknownMobilityOption(200, b"xyz")]),
    HomeTestInit(b"\x01" * 8, options=[NonceIndices(1, 2)]),
    CareOfTestInit(b"\x02" * 8),
    HomeTest(0xFFFF, b"\x03" * 8, b"\x04" * 8),
    CareOfTest(5, b"\x05" * 8, b"\x06" * 8, options=[BindingRefreshAdvice(3)]),
    BindingUpdate(65535, 1, ack=True, options=[
        AlternateCareOfAddress(COA), NonceIndices(1, 2),
        BindingAuthorizationData(b"\xaa" * 12), UnknownMobilityOption(42, b"")]),
    BindingAck(BAStatus.ACCEPTED_PREFIX_DISCOVERY_NECESSARY, 3, 4,
               options=[BindingRefreshAdvice(1), BindingAuthorizationData(b"\x01" * 12)]),
    BindingError(BEStatus.UNKNOWN_BINDING_FOR_HOME_ADDRESS_DESTINATION_OPTION, HOA,
                 options=[AlternateCareOfAddress(COA)]),
]


@pytest.mark.parametrize("msg", ALL_MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip_every_message(msg):
    wire = encode_mh(msg, HOA, HA)
    assert len(wire) % 8 == 0 and (wire[1] + 1) * 8 == len(wire)
    assert wire[0] == 59
    assert decode_mh(wire, HOA, HA) == msg
    assert encode_mh(decode_mh(wire), HOA, HA) == wire


def test_every_message_type_is_covered():
    wires = {encode_mh(m, HOA, HA)[2] for m in ALL_MESSAGES}
    assert wires == {t.value for t in MHType}


@pytest.mark.parametrize("msg", ALL_MESSAGES, ids=lambda m: type(m).__name__)
def test_option_alignment(msg):
    # Walk the encoded options by hand and check section 6.2's alignments.
    wire = encode_mh(msg, HOA, HA)
    fixed = {0: 8, 1: 16, 2: 16, 3: 24, 4: 24, 5: 12, 6: 12, 7: 24}[wire[2]]
    align = {2: (2, 0), 3: (8, 6), 4: (2, 0), 5: (8, 2)}
    i, seen = fixed, []
    while i < len(wire):
        if wire[i] == 0:
            i += 1
            continue
        if wire[i] in align:
            mod, rem = align[wire[i]]
            assert i % mod == rem, f"option {wire[i]} at {i}"
        if wire[i] == 1:
            assert wire[i + 2:i + 2 + wire[i + 1]] == bytes(wire[i + 1])  # PadN zero-filled
        else:
            seen.append(wire[i])
        i += 2 + wire[i + 1]
    assert i == len(wire)
    assert len(seen) == len(msg.options)


def test_explicit_padding_is_encoded_and_dropped_on_decode():
    msg = BindingUpdate(1, 2, options=[Pad1(), PadN(3), BindingRefreshAdvice(4)])
    wire = encode_mh(msg, HOA, HA)
    # Pad1 at 12, PadN(3) at 13..17, BRA at 18 (already 2n), PadN(0) to reach 24
    assert wire[12:18] == b"\x00\x01\x03\x00\x00\x00"
    assert wire[18:22] == b"\x02\x02\x00\x04"
    assert wire[22:] == b"\x01\x00"
    assert decode_mh(wire).options == [BindingRefreshAdvice(4)]


def test_option_helper():
    bu = decode_mh(VECTORS["bu_acoa"][2])
    assert bu.option(AlternateCareOfAddress).address == COA
    assert bu.option(NonceIndices) is None
    ba = decode_mh(VECTORS["ba_bra"][2])
    assert ba.option(BindingRefreshAdvice).refresh_interval == 15


def test_unknown_mh_type_is_a_message_not_an_error():
    wire = h("3b 01 2a 00 0000 0102030405060708 0a0b")  # MH Type 42, 10 octets of data
    msg = decode_mh(wire)
    assert msg == UnknownMobilityMessage(42, bytes.fromhex("0102030405060708 0a0b"))
    again = encode_mh(msg, HOA, HA)
    assert again[6:] == wire[6:] and decode_mh(again, HOA, HA) == msg


# ----------------------------------------------------------- refusals (9.2)

def _fixsum(wire: bytes, src=HOA, dst=HA) -> bytes:
    zeroed = wire[:4] + b"\0\0" + wire[6:]
    return wire[:4] + mh_checksum(zeroed, src, dst).to_bytes(2, "big") + wire[6:]


@pytest.mark.parametrize("wire, offset, words", [
    (h("3b 01 05 00 0000"), 6, "truncated"),
    (h("3a 01 05 00 0000 0000 0000 0000 01020000"), 0, "Payload Proto"),
    (h("3b 02 05 00 0000 0000 0000 0000 01020000"), 1, "Header Len"),
    (h("3b 01 05 00 0000 0000 0000 0000 01020000 00000000 00000000"), 16, "after"),
    # BU needs 12 octets: Header Len 0 (8 octets) is too short
    (h("3b 00 05 00 0000 0000"), 1, "too short"),
    # BE needs 24 octets
    (h("3b 01 07 00 0000 0200 20010db800000000"), 1, "too short"),
    # Alternate CoA option with length 8 instead of 16
    (h("3b 02 05 00 0000 0000 0000 0000 0100 0308 2001 0db8 0000 0000"), 15,
     "length 8"),
    # option length runs past the end
    (h("3b 01 05 00 0000 0000 0000 0000 01 05 0000"), 13, "runs past"),
    # type octet in the last position with no room for its length octet
    (h("3b 01 05 00 0000 0000 0000 0000 000000 07"), 15, "no length"),
    # Nonce Indices with length 2
    (h("3b 01 05 00 0000 0000 0000 0000 0402 0000"), 13, "length 2"),
    # BRA with length 4
    (h("3b 02 06 00 0000 0000 0000 0000 0204 0000 0000 0102 0000 0000"), 13, "length 4"),
])
def test_bad_headers_raise_codec_error(wire, offset, words):
    with pytest.raises(CodecError) as err:
        decode_mh(_fixsum(wire), HOA, HA)
    assert err.value.offset == offset
    assert words in str(err.value)


def test_encode_refuses_wrong_cookie_size():
    with pytest.raises(ValueError):
        encode_mh(HomeTestInit(b"short"), HOA, HA)


def _rfc1071_word_sum(src: IPv6Address, dst: IPv6Address, next_header: int, data: bytes) -> int:
    """RFC 1071 done the long way, as a reference: build the RFC 8200 8.1
    pseudo-header, add 16-bit words, fold the carries, complement."""
    buf = src.packed + dst.packed + struct.pack("!I3xB", len(data), next_header) + data
    if len(buf) & 1:
        buf += b"\0"
    total = sum(struct.unpack(f"!{len(buf) // 2}H", buf))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=96), st.integers(0, 2**128 - 1), st.integers(0, 2**128 - 1),
       st.sampled_from([135, 58]))
def test_fast_checksum_equals_word_by_word_rfc1071(data, src, dst, next_header):
    # ha.wire.checksum sums with big-integer arithmetic modulo 0xFFFF
    src, dst = IPv6Address(src), IPv6Address(dst)
    assert upper_layer_checksum(src, dst, next_header, data) == \
        _rfc1071_word_sum(src, dst, next_header, data)
    if next_header == 135:
        assert mh_checksum(data, src, dst) == _rfc1071_word_sum(src, dst, 135, data)


@pytest.mark.parametrize("msg", [
    BindingUpdate(1 << 16, 0), BindingAck(0, 1, 1 << 16), BindingError(256, HOA),
    BindingUpdate(1, 1, options=[BindingRefreshAdvice(1 << 16)]),
    BindingUpdate(1, 1, options=[BindingAuthorizationData(bytes(256))]),
    BindingUpdate(1, 1, options=[UnknownMobilityOption(7, bytes(255))] * 9),  # > 2048 octets
])
def test_encode_refuses_out_of_range_fields_with_value_error(msg):
    with pytest.raises(ValueError):
        encode_mh(msg, HOA, HA)


@pytest.mark.parametrize("wire, pointer", [
    (h("3a 01 05 00 0000 0000 0000 0000 01020000"), 0),  # Payload Proto 58
    (h("3b 00 05 00 0000 0000"), 1),  # BU in 8 octets: Header Len too small
    (h("3b 01 07 00 0000 0200 20010db800000000"), 1),  # BE in 16 octets
    (h("3b 01 05 00 0000 0000 0000 0000 01 05 0000"), None),  # bad option: silent drop
    (h("3b 01 05 00 0000"), None),  # truncated: silent drop
    (h("3b"), None),
])
def test_parameter_problem_pointer(wire, pointer):
    # section 9.2: which decode failures deserve an ICMPv6 Parameter Problem
    with pytest.raises(CodecError):
        decode_mh(wire)
    assert mh_parameter_problem(wire) == pointer


def test_bad_checksum_is_a_silent_drop():
    wire = VECTORS["bu"][2]
    with pytest.raises(CodecError):
        decode_mh(wire, COA, HA)
    assert mh_parameter_problem(wire) is None
