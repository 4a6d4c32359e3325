"""Mobility Header (RFC 6275 section 6.1): types, messages and options.

Pure data and codec: no sockets, no clock. The encode/decode functions
live below the types.
"""

from __future__ import annotations

import enum
import logging
import struct
from dataclasses import dataclass, field
from ipaddress import IPv6Address

from ha.wire.checksum import checksum_valid, upper_layer_checksum
from ha.wire.errors import CodecError

IPPROTO_MH = 135
IPPROTO_NONE = 59  # Payload Proto of every MH message (section 6.1.1)


class MHType(enum.IntEnum):
    BINDING_REFRESH_REQUEST = 0
    HOME_TEST_INIT = 1
    CARE_OF_TEST_INIT = 2
    HOME_TEST = 3
    CARE_OF_TEST = 4
    BINDING_UPDATE = 5
    BINDING_ACK = 6
    BINDING_ERROR = 7


class MobilityOptionType(enum.IntEnum):
    PAD1 = 0
    PADN = 1
    BINDING_REFRESH_ADVICE = 2
    ALTERNATE_COA = 3
    NONCE_INDICES = 4
    BINDING_AUTH_DATA = 5
    MESG_AUTH = 9  # RFC 4285 section 5: Mobility Message Authentication
    REPLAY_PROTECTION = 10  # RFC 4285 section 6: Mobility Message Replay Protection


class BAStatus(enum.IntEnum):
    """Binding Acknowledgement status codes, RFC 6275 section 6.1.8."""

    ACCEPTED = 0
    ACCEPTED_PREFIX_DISCOVERY_NECESSARY = 1
    REASON_UNSPECIFIED = 128
    ADMINISTRATIVELY_PROHIBITED = 129
    INSUFFICIENT_RESOURCES = 130
    HOME_REGISTRATION_NOT_SUPPORTED = 131
    NOT_HOME_SUBNET = 132
    NOT_HOME_AGENT_FOR_THIS_MOBILE_NODE = 133
    DUPLICATE_ADDRESS_DETECTION_FAILED = 134
    SEQUENCE_NUMBER_OUT_OF_WINDOW = 135
    EXPIRED_HOME_NONCE_INDEX = 136
    EXPIRED_CARE_OF_NONCE_INDEX = 137
    EXPIRED_NONCES = 138
    REGISTRATION_TYPE_CHANGE_DISALLOWED = 139
    # RFC 4285 section 8
    MIPV6_ID_MISMATCH = 144
    MIPV6_MESG_ID_REQD = 145
    MIPV6_AUTH_FAIL = 146

    @property
    def accepted(self) -> bool:
        return self < 128


class BEStatus(enum.IntEnum):
    """Binding Error status codes, RFC 6275 section 6.1.9."""

    UNKNOWN_BINDING_FOR_HOME_ADDRESS_DESTINATION_OPTION = 1
    UNRECOGNIZED_MH_TYPE_VALUE = 2


# ---------------------------------------------------------------- options


@dataclass(slots=True, frozen=True)
class Pad1:
    pass


@dataclass(slots=True, frozen=True)
class PadN:
    length: int  # octets of the option data (total option size is length + 2)


@dataclass(slots=True, frozen=True)
class BindingRefreshAdvice:
    refresh_interval: int  # in 4-second units, as on the wire (section 6.2.4)


@dataclass(slots=True, frozen=True)
class AlternateCareOfAddress:
    address: IPv6Address


@dataclass(slots=True, frozen=True)
class NonceIndices:
    home_nonce_index: int
    care_of_nonce_index: int


@dataclass(slots=True, frozen=True)
class BindingAuthorizationData:
    authenticator: bytes


@dataclass(slots=True, frozen=True)
class MessageAuthentication:
    """RFC 4285 section 5: subtype 1 is MN-HA, 2 MN-AAA; the authenticator
    covers the message up to and including the SPI (ha/wire/auth.py)."""

    spi: int  # Mobility SPI, 32 bit
    authenticator: bytes
    subtype: int = 1


@dataclass(slots=True, frozen=True)
class ReplayProtection:
    """RFC 4285 section 6: a 64-bit NTP-format timestamp (or identifier)."""

    timestamp: int


@dataclass(slots=True, frozen=True)
class UnknownMobilityOption:
    type: int
    data: bytes


MobilityOption = (
    Pad1 | PadN | BindingRefreshAdvice | AlternateCareOfAddress | NonceIndices
    | BindingAuthorizationData | MessageAuthentication | ReplayProtection
    | UnknownMobilityOption
)


# ---------------------------------------------------------------- messages
# Lifetimes are kept in wire units (4 seconds) to round-trip exactly;
# `lifetime_seconds` converts.


@dataclass(slots=True)
class BindingRefreshRequest:
    options: list = field(default_factory=list)


@dataclass(slots=True)
class HomeTestInit:
    home_init_cookie: bytes  # 8 octets
    options: list = field(default_factory=list)


@dataclass(slots=True)
class CareOfTestInit:
    care_of_init_cookie: bytes  # 8 octets
    options: list = field(default_factory=list)


@dataclass(slots=True)
class HomeTest:
    home_nonce_index: int
    home_init_cookie: bytes  # 8 octets
    home_keygen_token: bytes  # 8 octets
    options: list = field(default_factory=list)


@dataclass(slots=True)
class CareOfTest:
    care_of_nonce_index: int
    care_of_init_cookie: bytes
    care_of_keygen_token: bytes
    options: list = field(default_factory=list)


class _LifetimeAndOptions:
    """What a BU and a BA share: a lifetime in 4-second units and options."""

    __slots__ = ()

    @property
    def lifetime_seconds(self) -> int:
        return self.lifetime * 4

    def option(self, kind):
        """The first option of class `kind`, or None."""
        for opt in self.options:
            if isinstance(opt, kind):
                return opt
        return None


@dataclass(slots=True)
class BindingUpdate(_LifetimeAndOptions):
    sequence: int  # 16 bit
    lifetime: int  # 16 bit, 4-second units; 0 means deregister
    ack: bool = False  # A
    home_registration: bool = False  # H
    link_local_compat: bool = False  # L
    key_management: bool = False  # K
    options: list = field(default_factory=list)


@dataclass(slots=True)
class BindingAck(_LifetimeAndOptions):
    status: BAStatus | int
    sequence: int
    lifetime: int  # 4-second units
    key_management: bool = False  # K
    options: list = field(default_factory=list)


@dataclass(slots=True)
class BindingError:
    status: BEStatus | int
    home_address: IPv6Address
    options: list = field(default_factory=list)


MobilityMessage = (
    BindingRefreshRequest | HomeTestInit | CareOfTestInit | HomeTest | CareOfTest
    | BindingUpdate | BindingAck | BindingError
)


@dataclass(slots=True)
class UnknownMobilityMessage:
    """An MH type this code does not know: answered with BE status 2."""

    mh_type: int
    data: bytes


# ------------------------------------------------------------------ codec
# decode_mh(data, src, dst) -> MobilityMessage | UnknownMobilityMessage
# encode_mh(msg, src, dst) -> bytes   (src/dst: pseudo-header addresses, i.e.
#   the home address and the home agent; checksum filled in)
#
# Wire layout (RFC 6275 section 6.1.1): Payload Proto (59), Header Len (in
# 8-octet units, not counting the first 8), MH Type, Reserved, Checksum,
# then the type's fixed fields and the mobility options up to the end.
# Offsets in every CodecError count from the first octet of the MH, so they
# can serve as the Parameter Problem pointer relative to the MH (section 9.2).


class BUFlag(enum.IntFlag):
    """Flag bits of the Binding Update's 16-bit flags word (section 6.1.7)."""

    ACK = 0x8000  # A
    HOME_REGISTRATION = 0x4000  # H
    LINK_LOCAL_COMPAT = 0x2000  # L
    KEY_MANAGEMENT = 0x1000  # K


class BAFlag(enum.IntFlag):
    """Flag bits of the Binding Acknowledgement's flag octet (section 6.1.8)."""

    KEY_MANAGEMENT = 0x80  # K


_MH_HDR = struct.Struct("!BBBBH")  # payload proto, header len, type, reserved, checksum
_BU = struct.Struct("!BBBBHHHH")  # header + sequence, flags, lifetime
_BA = struct.Struct("!BBBBHBBHH")  # header + status, flags, sequence, lifetime
_BE = struct.Struct("!BBBBHBB16s")  # header + status, reserved, home address
_BRR = struct.Struct("!BBBBH2x")  # header + reserved
_TI = struct.Struct("!BBBBH2x8s")  # HoTI / CoTI: header + reserved, init cookie
_T = struct.Struct("!BBBBHH8s8s")  # HoT / CoT: header + nonce index, cookie, keygen token
_U16 = struct.Struct("!H")
_U16X2 = struct.Struct("!HH")

# Fixed part of each message, header included (section 6.1.2 - 6.1.9). Header
# Len may not describe less than this rounded up to 8 (section 9.2).
_FIXED_LEN = {0: 8, 1: 16, 2: 16, 3: 24, 4: 24, 5: 12, 6: 12, 7: 24}

# Option alignment (modulus, remainder) from section 6.2.
_ALIGN = {
    BindingRefreshAdvice: (2, 0),
    AlternateCareOfAddress: (8, 6),
    NonceIndices: (2, 0),
    BindingAuthorizationData: (8, 2),
    MessageAuthentication: (4, 1),  # RFC 4285 section 5: 4n+1, so the SPI is 4-aligned
    ReplayProtection: (8, 2),  # RFC 4285 section 6: 8n+2
}
# Plain ints for the per-option loop (an enum member looked up on its class
# costs about 60 ns in CPython 3.11); the names are MobilityOptionType's.
(_PAD1, _PADN, _REFRESH_ADVICE, _ALT_COA, _NONCE_INDICES,
 _AUTH_DATA, _MESG_AUTH, _REPLAY) = (int(t) for t in MobilityOptionType)
# Option Length a known option must carry (section 6.2.4 - 6.2.6); BAD varies.
_OPT_LEN = {_REFRESH_ADVICE: 2, _ALT_COA: 16, _NONCE_INDICES: 4, _REPLAY: 8}
_U8U32 = struct.Struct("!BI")  # RFC 4285 auth option: subtype, Mobility SPI
_U64 = struct.Struct("!Q")
# type and length octets of the fixed-size options
_REFRESH_ADVICE_HEAD = bytes((_REFRESH_ADVICE, 2))
_ALT_COA_HEAD = bytes((_ALT_COA, 16))
_NONCE_INDICES_HEAD = bytes((_NONCE_INDICES, 4))

_BA_STATUS = {s.value: s for s in BAStatus}
_BE_STATUS = {s.value: s for s in BEStatus}

_log = logging.getLogger(__name__)


def mh_checksum(data: bytes, src: IPv6Address, dst: IPv6Address) -> int:
    """MH checksum over the pseudo-header (section 6.1.1): `data` is the
    whole MH with its checksum field zero; src/dst are the home address and
    the correspondent or home agent, never the care-of address."""
    return upper_layer_checksum(src, dst, IPPROTO_MH, data)


def mh_checksum_valid(data: bytes, src: IPv6Address, dst: IPv6Address) -> bool:
    """True when the checksum already in `data` is right."""
    return checksum_valid(src, dst, IPPROTO_MH, data)


# ------------------------------------------------------------- decoding


def _decode_options(data: bytes, i: int, end: int) -> list:
    """Mobility options between i and end (section 6.2.1); padding dropped."""
    options = []
    while i < end:
        otype = data[i]
        if otype == _PAD1:  # a single octet, no length field
            i += 1
            continue
        if i + 2 > end:
            raise CodecError(f"mobility option type {otype} has no length octet", i)
        olen = data[i + 1]
        start = i + 2
        nxt = start + olen
        if nxt > end:
            raise CodecError(f"mobility option type {otype} length {olen} runs past the "
                             f"message end", i + 1)
        want = _OPT_LEN.get(otype)
        if want is not None and olen != want:
            raise CodecError(f"mobility option type {otype} length {olen}, expected {want}",
                             i + 1)
        if otype == _PADN:
            pass  # contents ignored by the receiver (section 6.2.2)
        elif otype == _REFRESH_ADVICE:
            options.append(BindingRefreshAdvice(_U16.unpack_from(data, start)[0]))
        elif otype == _ALT_COA:
            options.append(AlternateCareOfAddress(IPv6Address(bytes(data[start:nxt]))))
        elif otype == _NONCE_INDICES:
            options.append(NonceIndices(*_U16X2.unpack_from(data, start)))
        elif otype == _AUTH_DATA:
            options.append(BindingAuthorizationData(bytes(data[start:nxt])))
        elif otype == _MESG_AUTH:
            if olen < 5:  # RFC 4285 section 5: subtype and SPI at least
                raise CodecError(f"authentication option length {olen}, at least 5 needed",
                                 i + 1)
            subtype, spi = _U8U32.unpack_from(data, start)
            options.append(MessageAuthentication(spi, bytes(data[start + 5:nxt]), subtype))
        elif otype == _REPLAY:
            options.append(ReplayProtection(_U64.unpack_from(data, start)[0]))
        else:
            options.append(UnknownMobilityOption(otype, bytes(data[start:nxt])))
        i = nxt
    return options


def decode_mh(data: bytes, src: IPv6Address | None = None, dst: IPv6Address | None = None):
    """Decode one Mobility Header message.

    `data` is the MH and nothing after it. When both `src` and `dst` are
    given (home address and HA, section 6.1.1) the checksum is verified and a
    mismatch is a CodecError; otherwise it is not checked. An MH Type this
    code does not know gives UnknownMobilityMessage, which the HA answers
    with a Binding Error, status 2 (section 9.2).
    """
    n = len(data)
    if n < 8:
        raise CodecError(f"mobility header truncated: {n} octets, at least 8 needed", n)
    proto, hlen, mhtype = data[0], data[1], data[2]
    if proto != IPPROTO_NONE:
        # section 9.2: Parameter Problem code 0 points at this field
        raise CodecError(f"MH Payload Proto {proto}, expected 59", 0)
    total = (hlen + 1) * 8
    if total != n:
        if total > n:
            raise CodecError(f"MH Header Len says {total} octets, only {n} present", 1)
        raise CodecError(f"{n - total} octets after the {total}-octet mobility header", total)
    if src is not None and dst is not None and not checksum_valid(src, dst, IPPROTO_MH, data):
        raise CodecError(f"MH checksum 0x{data[4] << 8 | data[5]:04x} wrong for "
                         f"{src} -> {dst}", 4)
    fixed = _FIXED_LEN.get(mhtype)
    if fixed is None:
        _log.debug("unknown MH Type %d, %d octets", mhtype, n)
        return UnknownMobilityMessage(mhtype, bytes(data[6:]))
    if total < fixed:
        raise CodecError(f"MH Header Len {hlen} too short for MH Type {mhtype}", 1)

    if mhtype == 5:
        seq, flags, life = _BU.unpack_from(data)[5:]
        return BindingUpdate(seq, life, bool(flags & 0x8000), bool(flags & 0x4000),
                             bool(flags & 0x2000), bool(flags & 0x1000),
                             _decode_options(data, 12, n))
    if mhtype == 6:
        status, flags, seq, life = _BA.unpack_from(data)[5:]
        return BindingAck(_BA_STATUS.get(status, status), seq, life, bool(flags & 0x80),
                          _decode_options(data, 12, n))
    if mhtype == 7:
        status, _, hoa = _BE.unpack_from(data)[5:]
        return BindingError(_BE_STATUS.get(status, status), IPv6Address(hoa),
                            _decode_options(data, 24, n))
    if mhtype == 0:
        return BindingRefreshRequest(_decode_options(data, 8, n))
    if mhtype in (1, 2):
        cookie = _TI.unpack_from(data)[5]
        cls = HomeTestInit if mhtype == 1 else CareOfTestInit
        return cls(cookie, _decode_options(data, 16, n))
    index, cookie, token = _T.unpack_from(data)[5:]
    cls = HomeTest if mhtype == 3 else CareOfTest
    return cls(index, cookie, token, _decode_options(data, 24, n))


def mh_parameter_problem(data: bytes) -> int | None:
    """For an MH that failed to decode: the offset, within the MH, that an
    ICMPv6 Parameter Problem code 0 should point at, or None when the
    message is just dropped (bad checksum, bad options, truncation).

    Section 9.2 asks for the ICMP error when Payload Proto is not 59
    (pointer to that field) or Header Len is below the message type's
    minimum (pointer to Header Len). The caller adds the MH's offset in the
    packet to make the pointer packet-relative.
    """
    if len(data) < 3:
        return None
    if data[0] != IPPROTO_NONE:
        return 0
    fixed = _FIXED_LEN.get(data[2])
    if fixed is not None and (data[1] + 1) * 8 < fixed:
        return 1
    return None


# ------------------------------------------------------------- encoding


def _pad(out: bytearray, modulus: int, remainder: int) -> None:
    """Append Pad1 or PadN until len(out) % modulus == remainder (6.2.1)."""
    need = (remainder - len(out)) % modulus
    if need == 1:
        out.append(_PAD1)
    elif need:
        out += bytes((_PADN, need - 2)) + bytes(need - 2)


def _encode_options(out: bytearray, options) -> None:
    for opt in options:
        align = _ALIGN.get(type(opt))
        if align is not None:
            _pad(out, *align)
        if isinstance(opt, BindingRefreshAdvice):
            out += _REFRESH_ADVICE_HEAD + _U16.pack(opt.refresh_interval)
        elif isinstance(opt, AlternateCareOfAddress):
            out += _ALT_COA_HEAD + opt.address.packed
        elif isinstance(opt, NonceIndices):
            out += _NONCE_INDICES_HEAD + _U16X2.pack(opt.home_nonce_index, opt.care_of_nonce_index)
        elif isinstance(opt, BindingAuthorizationData):
            out += bytes((_AUTH_DATA, len(opt.authenticator))) + opt.authenticator
        elif isinstance(opt, MessageAuthentication):
            out += (bytes((_MESG_AUTH, 5 + len(opt.authenticator)))
                    + _U8U32.pack(opt.subtype, opt.spi) + opt.authenticator)
        elif isinstance(opt, ReplayProtection):
            out += bytes((_REPLAY, 8)) + _U64.pack(opt.timestamp)
        elif isinstance(opt, UnknownMobilityOption):
            out += bytes((opt.type, len(opt.data))) + opt.data
        elif isinstance(opt, PadN):
            out += bytes((_PADN, opt.length)) + bytes(opt.length)
        elif isinstance(opt, Pad1):
            out.append(_PAD1)
        else:
            raise TypeError(f"not a mobility option: {opt!r}")


def _check_bytes(value: bytes, size: int, name: str) -> bytes:
    if len(value) != size:
        raise ValueError(f"{name} must be {size} octets, got {len(value)}")
    return value


def encode_mh(msg, src: IPv6Address, dst: IPv6Address) -> bytes:
    """Encode `msg` with options aligned (section 6.2), padded to a multiple
    of 8 octets, and the checksum over (src, dst) filled in (6.1.1).

    A field out of its range (a 17-bit sequence, say) is a ValueError.
    """
    try:
        out = _encode_body(msg)
    except struct.error as err:
        raise ValueError(f"cannot encode {msg!r}: {err}") from None
    if len(out) > 2048:
        raise ValueError(f"mobility header of {len(out)} octets does not fit Header Len")
    out[1] = len(out) // 8 - 1
    csum = upper_layer_checksum(src, dst, IPPROTO_MH, out)
    out[4] = csum >> 8
    out[5] = csum & 0xFF
    return bytes(out)


def _encode_body(msg) -> bytearray:
    """The whole message with Header Len and Checksum still zero."""
    if isinstance(msg, BindingUpdate):
        flags = ((0x8000 if msg.ack else 0) | (0x4000 if msg.home_registration else 0)
                 | (0x2000 if msg.link_local_compat else 0)
                 | (0x1000 if msg.key_management else 0))
        out = bytearray(_BU.pack(59, 0, 5, 0, 0, msg.sequence, flags, msg.lifetime))
    elif isinstance(msg, BindingAck):
        out = bytearray(_BA.pack(59, 0, 6, 0, 0, msg.status, 0x80 if msg.key_management else 0,
                                 msg.sequence, msg.lifetime))
    elif isinstance(msg, BindingError):
        out = bytearray(_BE.pack(59, 0, 7, 0, 0, msg.status, 0, msg.home_address.packed))
    elif isinstance(msg, BindingRefreshRequest):
        out = bytearray(_BRR.pack(59, 0, 0, 0, 0))
    elif isinstance(msg, (HomeTestInit, CareOfTestInit)):
        cookie = (msg.home_init_cookie if isinstance(msg, HomeTestInit)
                  else msg.care_of_init_cookie)
        out = bytearray(_TI.pack(59, 0, 1 if isinstance(msg, HomeTestInit) else 2, 0, 0,
                                 _check_bytes(cookie, 8, "init cookie")))
    elif isinstance(msg, HomeTest):
        out = bytearray(_T.pack(59, 0, 3, 0, 0, msg.home_nonce_index,
                                _check_bytes(msg.home_init_cookie, 8, "init cookie"),
                                _check_bytes(msg.home_keygen_token, 8, "keygen token")))
    elif isinstance(msg, CareOfTest):
        out = bytearray(_T.pack(59, 0, 4, 0, 0, msg.care_of_nonce_index,
                                _check_bytes(msg.care_of_init_cookie, 8, "init cookie"),
                                _check_bytes(msg.care_of_keygen_token, 8, "keygen token")))
    elif isinstance(msg, UnknownMobilityMessage):
        out = bytearray(_MH_HDR.pack(59, 0, msg.mh_type, 0, 0)) + msg.data
        if len(out) % 8:
            raise ValueError("unknown MH message data must make the message a multiple of 8")
    else:
        raise TypeError(f"not a mobility message: {msg!r}")
    if not isinstance(msg, UnknownMobilityMessage):
        _encode_options(out, msg.options)
        _pad(out, 8, 0)  # section 6.1.1: the MH is a multiple of 8 octets
    return out


def decode_mh_packet(data: bytes):
    """(packet, message) for a whole IPv6 packet carrying a Mobility Header,
    None for any other packet; CodecError when it does not decode. The MH
    checksum is checked over the addresses the packet implies (HAO, RH2)."""
    from ha.wire.ipv6 import parse_packet
    pkt = parse_packet(data)
    if pkt.protocol != IPPROTO_MH:
        return None
    return pkt, decode_mh(pkt.payload, *pkt.pseudo_header_addresses())
