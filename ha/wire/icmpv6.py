"""ICMPv6 (RFC 4443) and Neighbor Discovery (RFC 4861) codec, with the
Mobile IPv6 additions of RFC 6275 (sections 6.5-6.8 and 7.1-7.4), Route
Information (RFC 4191) and DNS options (RFC 8106).

Pure data and codec: no sockets, no clock. Decoders raise only
ha.wire.errors.CodecError. Receiver-side validity rules that depend on the IPv6
header (hop limit 255, code 0) are not applied while decoding; the receiver
calls `validate_nd` with what it saw.

Conventions:
- Router preference (RA Prf, RFC 4191 section 2.2, and Route Information
  Prf, section 2.3) is an int: 1 high, 0 medium, -1 low. The reserved value
  (binary 10) decodes to PRF_RESERVED (-2) so that decoding is lossless; the
  receiver treats it as medium in an RA and ignores a Route Information
  option that carries it (RFC 4191 sections 2.2 and 2.3).
- A malformed known option (wrong fixed length, a prefix length over 128,
  and so on) is a CodecError for the whole message.
- Encoders raise ValueError for values that do not fit their fields.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network

from ha.wire.checksum import checksum_valid, upper_layer_checksum
from ha.wire.errors import CodecError

ICMPV6 = 58

PRF_RESERVED = -2  # Prf bits 10, see the module docstring
INFINITY = 0xFFFFFFFF  # lifetime meaning "forever" in PIO, RIO, RDNSS, DNSSL


class ICMPv6Type(enum.IntEnum):
    DEST_UNREACHABLE = 1
    PACKET_TOO_BIG = 2
    TIME_EXCEEDED = 3
    PARAMETER_PROBLEM = 4
    ECHO_REQUEST = 128
    ECHO_REPLY = 129
    ROUTER_SOLICITATION = 133
    ROUTER_ADVERTISEMENT = 134
    NEIGHBOR_SOLICITATION = 135
    NEIGHBOR_ADVERTISEMENT = 136
    REDIRECT = 137
    DHAAD_REQUEST = 144
    DHAAD_REPLY = 145
    MOBILE_PREFIX_SOLICITATION = 146
    MOBILE_PREFIX_ADVERTISEMENT = 147


class NDOptionType(enum.IntEnum):
    SOURCE_LINK_LAYER_ADDRESS = 1
    TARGET_LINK_LAYER_ADDRESS = 2
    PREFIX_INFORMATION = 3
    MTU = 5
    ADVERTISEMENT_INTERVAL = 7
    HOME_AGENT_INFORMATION = 8
    ROUTE_INFORMATION = 24
    RDNSS = 25
    DNSSL = 31


# ---------------------------------------------------------------- options


@dataclass(slots=True, frozen=True)
class SourceLinkLayerAddress:
    # Decoded as the whole option data: 6 octets for Ethernet (length 1);
    # for longer link-layer addresses the padding cannot be told apart.
    address: bytes


@dataclass(slots=True, frozen=True)
class TargetLinkLayerAddress:
    address: bytes


@dataclass(slots=True, frozen=True)
class PrefixInformation:
    prefix: IPv6Network
    on_link: bool = True  # L
    autonomous: bool = True  # A
    router_address: bool = False  # R, RFC 6275 section 7.2
    valid_lifetime: int = 86400
    preferred_lifetime: int = 14400
    # With R set the prefix field holds the router's full global address
    # (RFC 6275 section 7.2); this is that address.
    router: IPv6Address | None = None


@dataclass(slots=True, frozen=True)
class MTU:
    mtu: int


@dataclass(slots=True, frozen=True)
class AdvertisementInterval:
    interval_ms: int  # RFC 6275 section 7.3


@dataclass(slots=True, frozen=True)
class HomeAgentInformation:
    preference: int  # signed 16 bit, higher is preferred (section 7.4)
    lifetime: int  # seconds, unsigned 16 bit
    mobile_router: bool = False  # R: the HA supports mobile routers (RFC 3963 section 7.1)


@dataclass(slots=True, frozen=True)
class RouteInformation:
    prefix: IPv6Network
    preference: int = 0  # 1 high, 0 medium, -1 low
    lifetime: int = 1800  # seconds; INFINITY means forever


@dataclass(slots=True, frozen=True)
class RecursiveDNSServer:
    lifetime: int
    servers: tuple[IPv6Address, ...]


@dataclass(slots=True, frozen=True)
class DNSSearchList:
    lifetime: int
    domains: tuple[str, ...]  # without the trailing dot


@dataclass(slots=True, frozen=True)
class UnknownNDOption:
    type: int
    data: bytes  # everything after the type and length octets


NDOption = (
    SourceLinkLayerAddress | TargetLinkLayerAddress | PrefixInformation | MTU
    | AdvertisementInterval | HomeAgentInformation | RouteInformation
    | RecursiveDNSServer | DNSSearchList | UnknownNDOption
)


# ---------------------------------------------------------------- messages


@dataclass(slots=True)
class RouterSolicitation:
    options: list = field(default_factory=list)


@dataclass(slots=True)
class RouterAdvertisement:
    cur_hop_limit: int = 64
    managed: bool = False  # M
    other: bool = False  # O
    home_agent: bool = False  # H, RFC 6275 section 7.1
    preference: int = 0  # Prf, RFC 4191 section 2.2
    router_lifetime: int = 1800
    reachable_time: int = 0
    retrans_timer: int = 0
    options: list = field(default_factory=list)


@dataclass(slots=True)
class NeighborSolicitation:
    target: IPv6Address
    options: list = field(default_factory=list)


@dataclass(slots=True)
class NeighborAdvertisement:
    target: IPv6Address
    router: bool
    solicited: bool
    override: bool
    options: list = field(default_factory=list)


@dataclass(slots=True)
class ParameterProblem:
    code: int
    pointer: int
    invoking: bytes  # as much of the invoking packet as fits


@dataclass(slots=True)
class EchoRequest:
    identifier: int
    sequence: int
    data: bytes = b""


@dataclass(slots=True)
class EchoReply:
    identifier: int
    sequence: int
    data: bytes = b""


@dataclass(slots=True)
class DHAADRequest:
    identifier: int  # RFC 6275 section 6.5


@dataclass(slots=True)
class DHAADReply:
    identifier: int  # section 6.6
    home_agents: tuple[IPv6Address, ...] = ()


@dataclass(slots=True)
class MobilePrefixSolicitation:
    identifier: int  # section 6.7


@dataclass(slots=True)
class MobilePrefixAdvertisement:
    identifier: int  # section 6.8
    managed: bool = False  # M
    other: bool = False  # O
    options: list = field(default_factory=list)


@dataclass(slots=True)
class UnknownICMPv6:
    type: int
    code: int
    body: bytes  # everything after the checksum


ICMPv6Message = (
    RouterSolicitation | RouterAdvertisement | NeighborSolicitation
    | NeighborAdvertisement | ParameterProblem | EchoRequest | EchoReply
    | DHAADRequest | DHAADReply | MobilePrefixSolicitation
    | MobilePrefixAdvertisement | UnknownICMPv6
)


def option(msg, kind):
    """The first option of class `kind` in `msg.options`, or None."""
    for opt in getattr(msg, "options", ()):
        if isinstance(opt, kind):
            return opt
    return None


_ND_TYPES = frozenset((133, 134, 135, 136, 137))
_MIP6_TYPES = frozenset((144, 145, 146, 147))


def validate_nd(msg_type: int, code: int, hop_limit: int) -> str | None:
    """Why a received message fails the header checks, or None if it passes.

    ND messages need hop limit 255 (proves they were not forwarded) and code
    0 (RFC 4861 sections 6.1.1, 6.1.2, 7.1.1, 7.1.2, 8.1). The Mobile IPv6
    ICMP messages need code 0 (RFC 6275 sections 6.5-6.8); they cross
    routers, so their hop limit is not checked.
    """
    if msg_type in _ND_TYPES:
        if hop_limit != 255:
            return f"ND message (type {msg_type}) with hop limit {hop_limit}, not 255"
        if code != 0:
            return f"ND message (type {msg_type}) with code {code}, not 0"
    elif msg_type in _MIP6_TYPES and code != 0:
        return f"Mobile IPv6 ICMP message (type {msg_type}) with code {code}, not 0"
    return None


# ------------------------------------------------------------ wire layouts

_HEADER = struct.Struct("!BBH")  # type, code, checksum (RFC 4443 section 2.1)
_RA = struct.Struct("!BBHII")  # hop limit, flags, lifetime, reachable, retrans
_NA_FLAGS = struct.Struct("!B3x")
_U32 = struct.Struct("!I")
_ID_SEQ = struct.Struct("!HH")
_ID_RES = struct.Struct("!H2x")
_ID_FLAGS = struct.Struct("!HBx")
_OPT_HEAD = struct.Struct("!BB")
_PIO = struct.Struct("!BBBBII4x16s")  # type, len, plen, flags, valid, pref, res2, prefix
_MTU = struct.Struct("!BB2xI")
_HAINFO = struct.Struct("!BBBxhH")
_HAINFO_R = 0x80  # RFC 3963 section 7.1: top bit of the first reserved octet
_RIO = struct.Struct("!BBBBI")  # type, len, plen, flags, lifetime; prefix follows
_LIFETIME_OPT = struct.Struct("!BB2xI")  # RDNSS and DNSSL head

# RA flags (RFC 4861 section 4.2, RFC 6275 section 7.1, RFC 4191 section 2.2)
_RA_M, _RA_O, _RA_H = 0x80, 0x40, 0x20
_PRF_SHIFT, _PRF_MASK = 3, 0x18
# NA flags (RFC 4861 section 4.4)
_NA_R, _NA_S, _NA_O = 0x80, 0x40, 0x20
# Prefix Information flags (RFC 4861 section 4.6.2, RFC 6275 section 7.2)
_PIO_L, _PIO_A, _PIO_R = 0x80, 0x40, 0x20
# Mobile Prefix Advertisement flags, first octet after the identifier (6.8)
_MPA_M, _MPA_O = 0x80, 0x40

# 2-bit Prf field value <-> preference
_PRF_FROM_BITS = (0, 1, PRF_RESERVED, -1)
_PRF_TO_BITS = {0: 0, 1: 1, PRF_RESERVED: 2, -1: 3}


def _prf_bits(preference: int) -> int:
    try:
        return _PRF_TO_BITS[preference]
    except KeyError:
        raise ValueError(f"preference {preference} is not one of -1, 0, 1") from None


# ------------------------------------------------------------- ND options


def _pad_option(type_: int, data: bytes) -> bytes:
    """Type, length and data padded with zeros to a multiple of 8 octets."""
    units = (len(data) + 2 + 7) // 8
    if units > 255:
        raise ValueError(f"ND option type {type_} too long ({len(data)} octets)")
    return _OPT_HEAD.pack(type_, units) + data + bytes(units * 8 - 2 - len(data))


def _encode_dns_name(name: str) -> bytes:
    # RFC 8106 section 5.2: names as in RFC 1035 section 3.1, no compression
    name = name.rstrip(".")
    if not name:
        raise ValueError("empty domain name in DNSSL")
    out = bytearray()
    for label in name.split("."):
        raw = label.encode("ascii")
        if not 1 <= len(raw) <= 63:
            raise ValueError(f"bad DNS label {label!r} in {name!r}")
        out.append(len(raw))
        out += raw
    out.append(0)
    if len(out) > 255:
        raise ValueError(f"domain name {name!r} longer than 255 octets")
    return bytes(out)


def _encode_option(opt) -> bytes:
    if isinstance(opt, SourceLinkLayerAddress):
        return _pad_option(1, opt.address)
    if isinstance(opt, TargetLinkLayerAddress):
        return _pad_option(2, opt.address)
    if isinstance(opt, PrefixInformation):
        flags = ((_PIO_L if opt.on_link else 0) | (_PIO_A if opt.autonomous else 0)
                 | (_PIO_R if opt.router_address else 0))
        if opt.router_address and opt.router is not None:
            field_ = opt.router.packed  # RFC 6275 section 7.2
        else:
            field_ = opt.prefix.network_address.packed
        return _PIO.pack(3, 4, opt.prefix.prefixlen, flags, opt.valid_lifetime,
                         opt.preferred_lifetime, field_)
    if isinstance(opt, MTU):
        return _MTU.pack(5, 1, opt.mtu)
    if isinstance(opt, AdvertisementInterval):
        return _MTU.pack(7, 1, opt.interval_ms)
    if isinstance(opt, HomeAgentInformation):
        return _HAINFO.pack(8, 1, _HAINFO_R if opt.mobile_router else 0, opt.preference,
                            opt.lifetime)
    if isinstance(opt, RouteInformation):
        # RFC 4191 section 2.3: length 1 for ::/0, 2 up to /64, else 3
        plen = opt.prefix.prefixlen
        units = 1 if plen == 0 else 2 if plen <= 64 else 3
        return (_RIO.pack(24, units, plen, _prf_bits(opt.preference) << _PRF_SHIFT,
                          opt.lifetime)
                + opt.prefix.network_address.packed[:(units - 1) * 8])
    if isinstance(opt, RecursiveDNSServer):
        if not opt.servers:
            raise ValueError("RDNSS needs at least one server (RFC 8106 section 5.1)")
        return (_LIFETIME_OPT.pack(25, 1 + 2 * len(opt.servers), opt.lifetime)
                + b"".join(a.packed for a in opt.servers))
    if isinstance(opt, DNSSearchList):
        if not opt.domains:
            raise ValueError("DNSSL needs at least one domain (RFC 8106 section 5.2)")
        names = b"".join(_encode_dns_name(d) for d in opt.domains)
        return _pad_option(31, _U32.pack(opt.lifetime).rjust(6, b"\0") + names)
    if isinstance(opt, UnknownNDOption):
        if (len(opt.data) + 2) % 8:
            raise ValueError("UnknownNDOption data must be 8n-2 octets long")
        return _pad_option(opt.type, opt.data)
    raise ValueError(f"not an ND option: {opt!r}")


def encode_nd_options(options) -> bytes:
    """The options, each padded to a multiple of 8 octets (RFC 4861 section 4.6)."""
    try:
        return b"".join(_encode_option(o) for o in options)
    except struct.error as exc:
        raise ValueError(f"ND option field out of range: {exc}") from None


def _fixed(length: int, want: int, name: str, offset: int) -> None:
    if length != want:
        raise CodecError(f"{name} option length {length}, must be {want}", offset)


def _decode_pio(data, start, units):
    _fixed(units, 4, "Prefix Information", start)
    _, _, plen, flags, valid, preferred, raw = _PIO.unpack_from(data, start)
    if plen > 128:
        raise CodecError(f"Prefix Information prefix length {plen} over 128", start + 2)
    addr = int.from_bytes(raw, "big")
    # Bits past the prefix length are ignored by the receiver (RFC 4861
    # section 4.6.2) unless R says the field is a full address (RFC 6275 7.2).
    prefix = IPv6Network((addr, plen), strict=False)
    router_flag = bool(flags & _PIO_R)
    return PrefixInformation(prefix, bool(flags & _PIO_L), bool(flags & _PIO_A), router_flag,
                             valid, preferred, IPv6Address(addr) if router_flag else None)


def _decode_lla(cls):
    def decode(data, start, units):
        return cls(bytes(data[start + 2:start + units * 8]))
    return decode


def _decode_mtu(data, start, units):
    _fixed(units, 1, "MTU", start)
    return MTU(_MTU.unpack_from(data, start)[2])


def _decode_advint(data, start, units):
    _fixed(units, 1, "Advertisement Interval", start)
    return AdvertisementInterval(_MTU.unpack_from(data, start)[2])


def _decode_hainfo(data, start, units):
    _fixed(units, 1, "Home Agent Information", start)
    _, _, flags, preference, lifetime = _HAINFO.unpack_from(data, start)
    return HomeAgentInformation(preference, lifetime, bool(flags & _HAINFO_R))


def _decode_rio(data, start, units):
    if units > 3:
        raise CodecError(f"Route Information option length {units}, over 3", start + 1)
    _, _, plen, flags, lifetime = _RIO.unpack_from(data, start)
    # RFC 4191 section 2.3: length 2 or 3 if the prefix length is over 0,
    # 3 if it is over 64
    if plen > 128 or (plen > 64 and units < 3) or (plen > 0 and units < 2):
        raise CodecError(
            f"Route Information prefix length {plen} does not fit option length {units}",
            start + 2)
    raw = bytes(data[start + 8:start + units * 8]).ljust(16, b"\0")
    prefix = IPv6Network((int.from_bytes(raw, "big"), plen), strict=False)
    return RouteInformation(prefix, _PRF_FROM_BITS[(flags & _PRF_MASK) >> _PRF_SHIFT], lifetime)


def _decode_rdnss(data, start, units):
    # RFC 8106 section 5.1: length 3, 5, 7 ... (at least one address)
    if units < 3 or not units & 1:
        raise CodecError(f"RDNSS option length {units}, must be odd and at least 3", start + 1)
    lifetime = _LIFETIME_OPT.unpack_from(data, start)[2]
    servers = tuple(IPv6Address(bytes(data[p:p + 16]))
                    for p in range(start + 8, start + units * 8, 16))
    return RecursiveDNSServer(lifetime, servers)


def _decode_dnssl(data, start, units):
    if units < 2:
        raise CodecError(f"DNSSL option length {units}, must be at least 2", start + 1)
    lifetime = _LIFETIME_OPT.unpack_from(data, start)[2]
    end = start + units * 8
    pos = start + 8
    domains = []
    while pos < end and data[pos]:
        labels = []
        name_start = pos
        while True:
            if pos >= end:
                raise CodecError("DNSSL domain name runs past the option", pos)
            n = data[pos]
            if n == 0:
                pos += 1
                break
            if n > 63:
                # compression pointers are not allowed here (RFC 8106 section 5.2)
                raise CodecError(f"DNSSL label length {n} over 63", pos)
            if pos + 1 + n > end:
                raise CodecError("DNSSL label runs past the option", pos)
            label = bytes(data[pos + 1:pos + 1 + n])
            if not label.isascii() or b"." in label:
                raise CodecError("DNSSL label is not an ASCII name label", pos)
            labels.append(label.decode("ascii"))
            pos += 1 + n
        if pos - name_start > 255:
            raise CodecError("DNSSL domain name longer than 255 octets", name_start)
        domains.append(".".join(labels))
    if not domains:
        # RFC 8106 section 5.2: one or more domain names
        raise CodecError("DNSSL option without a domain name", start + 8)
    if any(data[pos:end]):
        raise CodecError("DNSSL padding is not zero", pos)
    return DNSSearchList(lifetime, tuple(domains))


_OPTION_DECODERS = {
    1: _decode_lla(SourceLinkLayerAddress),
    2: _decode_lla(TargetLinkLayerAddress),
    3: _decode_pio,
    5: _decode_mtu,
    7: _decode_advint,
    8: _decode_hainfo,
    24: _decode_rio,
    25: _decode_rdnss,
    31: _decode_dnssl,
}


def decode_nd_options(data, offset: int = 0) -> list:
    """The ND options in data[offset:], which must hold whole options."""
    end = len(data)
    options = []
    pos = offset
    while pos < end:
        if end - pos < 2:
            raise CodecError("truncated ND option header", pos)
        type_, units = data[pos], data[pos + 1]
        if units == 0:
            # RFC 4861 section 4.6: a zero length makes the whole packet invalid
            raise CodecError(f"ND option type {type_} with length 0", pos + 1)
        if pos + units * 8 > end:
            raise CodecError(f"ND option type {type_} runs past the message", pos)
        decoder = _OPTION_DECODERS.get(type_)
        if decoder is None:
            options.append(UnknownNDOption(type_, bytes(data[pos + 2:pos + units * 8])))
        else:
            options.append(decoder(data, pos, units))
        pos += units * 8
    return options


# --------------------------------------------------------------- messages


def _encode_body(msg) -> tuple[int, int, bytes]:
    """(type, code, everything after the checksum) for one message."""
    if isinstance(msg, RouterAdvertisement):
        flags = ((_RA_M if msg.managed else 0) | (_RA_O if msg.other else 0)
                 | (_RA_H if msg.home_agent else 0)
                 | _prf_bits(msg.preference) << _PRF_SHIFT)
        return 134, 0, (_RA.pack(msg.cur_hop_limit, flags, msg.router_lifetime,
                                 msg.reachable_time, msg.retrans_timer)
                        + encode_nd_options(msg.options))
    if isinstance(msg, RouterSolicitation):
        return 133, 0, bytes(4) + encode_nd_options(msg.options)
    if isinstance(msg, NeighborSolicitation):
        return 135, 0, bytes(4) + msg.target.packed + encode_nd_options(msg.options)
    if isinstance(msg, NeighborAdvertisement):
        flags = ((_NA_R if msg.router else 0) | (_NA_S if msg.solicited else 0)
                 | (_NA_O if msg.override else 0))
        return 136, 0, (_NA_FLAGS.pack(flags) + msg.target.packed
                        + encode_nd_options(msg.options))
    if isinstance(msg, ParameterProblem):
        return 4, msg.code, _U32.pack(msg.pointer) + msg.invoking
    if isinstance(msg, EchoRequest):
        return 128, 0, _ID_SEQ.pack(msg.identifier, msg.sequence) + msg.data
    if isinstance(msg, EchoReply):
        return 129, 0, _ID_SEQ.pack(msg.identifier, msg.sequence) + msg.data
    if isinstance(msg, DHAADRequest):
        return 144, 0, _ID_RES.pack(msg.identifier)
    if isinstance(msg, DHAADReply):
        return 145, 0, (_ID_RES.pack(msg.identifier)
                        + b"".join(a.packed for a in msg.home_agents))
    if isinstance(msg, MobilePrefixSolicitation):
        return 146, 0, _ID_RES.pack(msg.identifier)
    if isinstance(msg, MobilePrefixAdvertisement):
        flags = (_MPA_M if msg.managed else 0) | (_MPA_O if msg.other else 0)
        return 147, 0, _ID_FLAGS.pack(msg.identifier, flags) + encode_nd_options(msg.options)
    if isinstance(msg, UnknownICMPv6):
        return msg.type, msg.code, msg.body
    raise ValueError(f"not an ICMPv6 message: {msg!r}")


def encode_icmpv6(msg, src: IPv6Address, dst: IPv6Address) -> bytes:
    """The ICMPv6 message with its checksum over the pseudo-header of src, dst."""
    try:
        type_, code, body = _encode_body(msg)
        head = _HEADER.pack(type_, code, 0)
    except struct.error as exc:
        raise ValueError(f"ICMPv6 field out of range in {type(msg).__name__}: {exc}") from None
    packet = head + body
    csum = upper_layer_checksum(src, dst, ICMPV6, packet)
    return head[:2] + csum.to_bytes(2, "big") + body


def _need(data, length: int, name: str) -> None:
    if len(data) < length:
        raise CodecError(f"{name} shorter than {length} octets ({len(data)})", len(data))


def _decode_ra(data, code):
    _need(data, 16, "Router Advertisement")
    hop, flags, lifetime, reachable, retrans = _RA.unpack_from(data, 4)
    preference = _PRF_FROM_BITS[(flags & _PRF_MASK) >> _PRF_SHIFT]
    return RouterAdvertisement(hop, bool(flags & _RA_M), bool(flags & _RA_O),
                               bool(flags & _RA_H), preference, lifetime, reachable, retrans,
                               decode_nd_options(data, 16))


def _decode_rs(data, code):
    _need(data, 8, "Router Solicitation")
    return RouterSolicitation(decode_nd_options(data, 8))


def _decode_ns(data, code):
    _need(data, 24, "Neighbor Solicitation")
    return NeighborSolicitation(IPv6Address(bytes(data[8:24])), decode_nd_options(data, 24))


def _decode_na(data, code):
    _need(data, 24, "Neighbor Advertisement")
    flags = data[4]
    return NeighborAdvertisement(IPv6Address(bytes(data[8:24])), bool(flags & _NA_R),
                                 bool(flags & _NA_S), bool(flags & _NA_O),
                                 decode_nd_options(data, 24))


def _decode_param_problem(data, code):
    _need(data, 8, "Parameter Problem")
    return ParameterProblem(code, _U32.unpack_from(data, 4)[0], bytes(data[8:]))


def _decode_echo(cls):
    def decode(data, code):
        _need(data, 8, cls.__name__)
        identifier, sequence = _ID_SEQ.unpack_from(data, 4)
        return cls(identifier, sequence, bytes(data[8:]))
    return decode


def _decode_dhaad_request(data, code):
    _need(data, 8, "DHAAD Request")
    return DHAADRequest(_ID_RES.unpack_from(data, 4)[0])


def _decode_dhaad_reply(data, code):
    _need(data, 8, "DHAAD Reply")
    if (len(data) - 8) % 16:
        raise CodecError("DHAAD Reply addresses are not whole 16-octet addresses",
                         8 + (len(data) - 8) // 16 * 16)
    agents = tuple(IPv6Address(bytes(data[p:p + 16])) for p in range(8, len(data), 16))
    return DHAADReply(_ID_RES.unpack_from(data, 4)[0], agents)


def _decode_mps(data, code):
    _need(data, 8, "Mobile Prefix Solicitation")
    return MobilePrefixSolicitation(_ID_RES.unpack_from(data, 4)[0])


def _decode_mpa(data, code):
    _need(data, 8, "Mobile Prefix Advertisement")
    identifier, flags = _ID_FLAGS.unpack_from(data, 4)
    return MobilePrefixAdvertisement(identifier, bool(flags & _MPA_M), bool(flags & _MPA_O),
                                     decode_nd_options(data, 8))


_MESSAGE_DECODERS = {
    4: _decode_param_problem,
    128: _decode_echo(EchoRequest),
    129: _decode_echo(EchoReply),
    133: _decode_rs,
    134: _decode_ra,
    135: _decode_ns,
    136: _decode_na,
    144: _decode_dhaad_request,
    145: _decode_dhaad_reply,
    146: _decode_mps,
    147: _decode_mpa,
}


def decode_icmpv6(data: bytes, src: IPv6Address | None = None,
                  dst: IPv6Address | None = None):
    """One ICMPv6 message; checks the checksum when both src and dst are given."""
    if len(data) < 4:
        raise CodecError(f"ICMPv6 message shorter than 4 octets ({len(data)})", len(data))
    if src is not None and dst is not None:
        # RFC 4443 section 2.3: the sum over the received checksum is then all ones
        if not checksum_valid(src, dst, ICMPV6, data):
            raise CodecError("ICMPv6 checksum mismatch", 2)
    type_, code = data[0], data[1]
    decoder = _MESSAGE_DECODERS.get(type_)
    if decoder is None:
        return UnknownICMPv6(type_, code, bytes(data[4:]))
    return decoder(data, code)
