"""RFC 4285 options and the MN-HA authenticator, checked against an HMAC
computed here from the RFC's definition with Python's hmac, and against scapy."""

import hashlib
import hmac
import struct
from ipaddress import IPv6Address

import pytest

from ha.wire import auth
from ha.wire.errors import CodecError
from ha.wire.mobility import (BAStatus, BindingAck, BindingUpdate, MessageAuthentication,
                              ReplayProtection, decode_mh, encode_mh, mh_checksum_valid)

A = IPv6Address
HA = A("2001:db8::")
HOA = A("2001:db8::beef")
COA = A("2001:db8:1::5")
KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
SPI = 256


def independent_authenticator(mh: bytes, coa, ha) -> bytes:
    """RFC 4285 section 5.2 written out again: find the option by hand."""
    i = 12
    while mh[i] != 9:
        i += 1 if mh[i] == 0 else 2 + mh[i + 1]
    data = bytearray(mh[:i + 7])  # type, length, subtype, 4 octets of SPI
    data[4:6] = b"\0\0"
    return hmac.new(KEY, coa.packed + ha.packed + bytes(data), hashlib.sha1).digest()[:12]


def test_options_round_trip_with_their_alignment():
    bu = BindingUpdate(sequence=9, lifetime=100, ack=True, home_registration=True,
                       options=[ReplayProtection(0x1122334455667788),
                                MessageAuthentication(SPI, b"x" * 12)])
    mh = encode_mh(bu, HOA, HA)
    back = decode_mh(mh, HOA, HA)
    assert back.options == bu.options
    replay_at = mh.index(bytes((10, 8)))
    assert replay_at % 8 == 2  # RFC 4285 section 6: 8n+2
    auth_at = auth.auth_option_offset(mh)
    assert auth_at % 4 == 1 and mh[auth_at + 1] == 17  # section 5: 4n+1, SPI + subtype + 12


def test_signed_bu_matches_an_independent_hmac_and_verifies():
    bu = BindingUpdate(sequence=9, lifetime=100, ack=True, home_registration=True,
                       options=[ReplayProtection(auth.ntp_from_unix(1_800_000_000.5))])
    mh = auth.encode_signed(bu, KEY, SPI, COA, HA, HOA, HA)
    assert mh_checksum_valid(mh, HOA, HA)
    off = auth.auth_option_offset(mh)
    assert mh[off + 7:off + 19] == independent_authenticator(mh, COA, HA)
    assert auth.verify_mh(mh, KEY, SPI, COA, HA) is None
    assert auth.verify_mh(mh, b"wrong key", SPI, COA, HA) == "authenticator wrong"
    assert "SPI" in auth.verify_mh(mh, KEY, SPI + 1, COA, HA)
    # the care-of address is covered: a replay from elsewhere does not verify
    assert auth.verify_mh(mh, KEY, SPI, A("2001:db8:9::1"), HA) == "authenticator wrong"
    # so is every field: flip the lifetime
    bad = bytearray(mh)
    bad[11] ^= 1
    assert auth.verify_mh(bytes(bad), KEY, SPI, COA, HA) == "authenticator wrong"


def test_unsigned_or_not_last_is_refused():
    plain = encode_mh(BindingUpdate(sequence=1, lifetime=1), HOA, HA)
    assert auth.verify_mh(plain, KEY, SPI, COA, HA) == "no authentication option last"
    late = encode_mh(BindingUpdate(sequence=1, lifetime=1, options=[
        MessageAuthentication(SPI, bytes(12)), ReplayProtection(5)]), HOA, HA)
    assert auth.verify_mh(late, KEY, SPI, COA, HA) == "no authentication option last"


def test_short_authentication_option_is_a_codec_error():
    mh = bytearray(encode_mh(BindingUpdate(sequence=1, lifetime=1, options=[
        MessageAuthentication(SPI, bytes(12))]), HOA, HA))
    off = mh.index(bytes((9, 17)))
    mh[off + 1] = 3
    mh[off + 2:] = bytes((1, len(mh) - off - 4)) + bytes(len(mh) - off - 4)  # keep the length
    with pytest.raises(CodecError):
        decode_mh(bytes(mh))


def test_ntp_conversion():
    assert auth.ntp_from_unix(0) == 2208988800 << 32
    assert auth.ntp_from_unix(1.5) == (2208988801 << 32) | 0x80000000
    assert auth.unix_from_ntp(auth.ntp_from_unix(1_800_000_000.25)) == 1_800_000_000.25


def test_status_codes():
    assert (BAStatus.MIPV6_ID_MISMATCH, BAStatus.MIPV6_MESG_ID_REQD,
            BAStatus.MIPV6_AUTH_FAIL) == (144, 145, 146)


def test_scapy_reads_our_options():
    pytest.importorskip("scapy")
    from scapy.layers.inet6 import MIP6MH_BA, MIP6OptMsgAuth, MIP6OptReplayProtection

    ba = BindingAck(status=BAStatus.ACCEPTED, sequence=4, lifetime=10,
                    options=[ReplayProtection(0x0102030405060708)])
    mh = auth.encode_signed(ba, KEY, SPI, COA, HA, HA, HOA)
    p = MIP6MH_BA(mh)
    rp = p[MIP6OptReplayProtection]
    assert rp.timestamp == 0x0102030405060708
    ma = p[MIP6OptMsgAuth]
    assert (ma.subtype, ma.mspi) == (1, SPI)
    assert bytes(ma.authdata) == independent_authenticator(mh, COA, HA)
    assert struct.unpack("!H", mh[4:6])[0] != 0
