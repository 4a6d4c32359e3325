"""IPv6 fixed header and the extension headers Mobile IPv6 uses.

Pure codec, no sockets: the fixed header (RFC 8200 section 3), the
Destination Options header with the Home Address option (RFC 6275 section
6.3), the type 2 Routing Header (RFC 6275 section 6.4), IPv6-in-IPv6
encapsulation (RFC 2473), and `parse_packet`, the walker the daemon runs on
every captured frame to find the home address and the upper-layer payload.

Every decoder raises only `CodecError(what, offset)`; offsets count from the
start of the buffer handed in, so they can go straight into an ICMPv6
Parameter Problem pointer.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from ipaddress import IPv6Address

from ha.wire.errors import CodecError

IPV6_HEADER_LEN = 40

# One precompiled layout per header, unpacked in one call on the hot path.
_FIXED = struct.Struct("!IHBB16s16s")   # ver/tc/flow, payload len, nh, hlim, src, dst
_RH2 = struct.Struct("!BBBB4x16s")      # nh, len, type, segments left, reserved, address


class Proto(enum.IntEnum):
    """Next Header values the walker knows (IANA protocol numbers)."""

    HOPOPTS = 0
    IPV6 = 41
    ROUTING = 43
    FRAGMENT = 44
    ESP = 50
    AH = 51
    ICMPV6 = 58
    NONE = 59
    DSTOPTS = 60
    MH = 135


class IPv6OptionType(enum.IntEnum):
    """Option types of hop-by-hop and destination options (RFC 8200 4.2)."""

    PAD1 = 0
    PADN = 1
    HOME_ADDRESS = 201  # RFC 6275 section 6.3


class RoutingType(enum.IntEnum):
    TYPE2 = 2  # RFC 6275 section 6.4


# The per-packet loops compare plain ints: looking an enum member up on its
# class costs about 60 ns in CPython 3.11, a module-level int almost nothing.
_PAD1, _PADN, _HAO = (int(t) for t in IPv6OptionType)
_TYPE2 = int(RoutingType.TYPE2)

# Hdr Ext Len 2, PadN(2), HAO type and length: what dstopts_with_hao() writes
_CANONICAL_HAO = bytes((2, _PADN, 2, 0, 0, _HAO, 16))


# ------------------------------------------------------------ fixed header


@dataclass(slots=True)
class IPv6Header:
    src: IPv6Address
    dst: IPv6Address
    next_header: int
    payload_length: int = 0
    hop_limit: int = 64
    traffic_class: int = 0
    flow_label: int = 0
    version: int = 6

    def encode(self) -> bytes:
        first = (self.version << 28) | (self.traffic_class << 20) | self.flow_label
        return _FIXED.pack(first, self.payload_length, self.next_header, self.hop_limit,
                           self.src.packed, self.dst.packed)


def decode_ipv6_header(data: bytes, offset: int = 0) -> IPv6Header:
    """The 40-octet fixed header at `offset`; the version must be 6."""
    if len(data) - offset < IPV6_HEADER_LEN:
        raise CodecError(f"IPv6 header truncated: {len(data) - offset} of 40 octets", offset)
    first, plen, nh, hlim, src, dst = _FIXED.unpack_from(data, offset)
    if first >> 28 != 6:
        raise CodecError(f"IP version {first >> 28}, expected 6", offset)
    return IPv6Header(IPv6Address(src), IPv6Address(dst), nh, plen, hlim,
                      (first >> 20) & 0xFF, first & 0xFFFFF)


# ----------------------------------------------------- destination options


@dataclass(slots=True, frozen=True)
class HomeAddressOption:
    address: IPv6Address


@dataclass(slots=True, frozen=True)
class UnknownOption:
    type: int
    data: bytes

    @property
    def action(self) -> int:
        """What a node that does not know the option must do (RFC 8200 4.2):
        0 skip, 1 discard, 2 discard + ICMP, 3 discard + ICMP unless multicast."""
        return self.type >> 6


@dataclass(slots=True)
class DestinationOptions:
    """A Destination Options header (RFC 8200 section 4.6).

    Padding is not kept: the encoder inserts Pad1/PadN itself so each
    option lands on its alignment and the header ends on 8 octets.
    """

    next_header: int
    options: list = field(default_factory=list)

    def encode(self) -> bytes:
        out = bytearray(2)
        for opt in self.options:
            if isinstance(opt, HomeAddressOption):
                _pad_to(out, 8, 6)  # HAO alignment 8n+6 (RFC 6275 section 6.3)
                out += bytes((_HAO, 16)) + opt.address.packed
            elif isinstance(opt, UnknownOption):
                if not 0 <= len(opt.data) <= 255 or opt.type in (_PAD1, _PADN):
                    raise ValueError(f"cannot encode option {opt!r}")
                out += bytes((opt.type, len(opt.data))) + opt.data
            else:
                raise TypeError(f"not a destination option: {opt!r}")
        _pad_to(out, 8, 0)
        if len(out) > 2048:
            raise ValueError("destination options longer than 2048 octets")
        out[0] = self.next_header
        out[1] = len(out) // 8 - 1
        return bytes(out)

    def home_address(self) -> IPv6Address | None:
        for opt in self.options:
            if isinstance(opt, HomeAddressOption):
                return opt.address
        return None


def _pad_to(out: bytearray, modulus: int, remainder: int) -> None:
    """Append Pad1 or PadN so len(out) % modulus == remainder (RFC 8200 4.2)."""
    need = (remainder - len(out)) % modulus
    if need == 1:
        out.append(_PAD1)
    elif need:
        out += bytes((_PADN, need - 2)) + bytes(need - 2)


def _header_bounds(data: bytes, offset: int, what: str) -> int:
    """End offset of the extension header at `offset` (length in 8-octet
    units, excluding the first 8: RFC 8200 section 4)."""
    if len(data) - offset < 8:
        raise CodecError(f"{what} header truncated", offset)
    end = offset + (data[offset + 1] + 1) * 8
    if end > len(data):
        raise CodecError(f"{what} header length {end - offset} runs past the packet end "
                         f"({len(data) - offset} octets left)", offset + 1)
    return end


def _walk_options(data: bytes, start: int, end: int, what: str, keep: bool):
    """Check the TLV options between start and end; return (hao, options).

    With keep=False only the Home Address option is pulled out (the hot
    path); unknown options are not collected.
    """
    hao = None
    options = [] if keep else None
    i = start
    while i < end:
        otype = data[i]
        if otype == _PAD1:  # no length octet
            i += 1
            continue
        if i + 2 > end:
            raise CodecError(f"{what} option type {otype} has no length octet", i)
        olen = data[i + 1]
        nxt = i + 2 + olen
        if nxt > end:
            raise CodecError(f"{what} option type {otype} length {olen} runs past the header end",
                             i + 1)
        if otype == _HAO:
            if olen != 16:
                raise CodecError(f"Home Address option length {olen}, expected 16", i + 1)
            if hao is not None:
                # RFC 6275 section 6.3: at most one per packet
                raise CodecError("second Home Address option", i)
            hao = IPv6Address(data[i + 2:nxt])
            if keep:
                options.append(HomeAddressOption(hao))
        elif otype != _PADN and keep:
            options.append(UnknownOption(otype, bytes(data[i + 2:nxt])))
        i = nxt
    return hao, options


def decode_destination_options(data: bytes, offset: int = 0) -> tuple[DestinationOptions, int]:
    """Decode the Destination Options header at `offset`; return it and its length."""
    if type(data) is not bytes:
        data = bytes(data)
    end = _header_bounds(data, offset, "destination options")
    _, options = _walk_options(data, offset + 2, end, "destination options", True)
    return DestinationOptions(data[offset], options), end - offset


def dstopts_with_hao(hoa: IPv6Address, next_header: int = Proto.MH) -> bytes:
    """The 24-octet Destination Options header carrying only a Home Address
    option: PadN(2) first so the HAO sits at 8n+6 (RFC 6275 section 6.3).

    Meant as the IPV6_DSTOPTS ancillary data (RFC 3542 section 9.2), which
    carries the whole extension header; the kernel rewrites the Next Header
    octet, so `next_header` matters only when the bytes go on the wire as is.
    """
    return bytes((next_header,)) + _CANONICAL_HAO + hoa.packed


# --------------------------------------------------- type 2 routing header


@dataclass(slots=True)
class RoutingHeaderType2:
    """RFC 6275 section 6.4: exactly one address, the home address."""

    next_header: int
    home_address: IPv6Address
    segments_left: int = 1

    def encode(self) -> bytes:
        return _RH2.pack(self.next_header, 2, _TYPE2, self.segments_left, self.home_address.packed)


def decode_routing_header_type2(data: bytes, offset: int = 0) -> tuple[RoutingHeaderType2, int]:
    """Decode a type 2 Routing Header at `offset`; return it and its length (24)."""
    if len(data) - offset < 24:
        raise CodecError(f"type 2 routing header truncated: {len(data) - offset} of 24 octets",
                         offset)
    nh, hlen, rtype, left, addr = _RH2.unpack_from(data, offset)
    if rtype != _TYPE2:
        raise CodecError(f"routing type {rtype}, expected 2", offset + 2)
    if hlen != 2:
        raise CodecError(f"type 2 routing header length {hlen}, expected 2", offset + 1)
    if left > 1:
        # RFC 6275 section 6.4: one address, so segments left is 1 (or 0 once processed)
        raise CodecError(f"type 2 routing header segments left {left}, expected 1", offset + 3)
    return RoutingHeaderType2(nh, IPv6Address(addr), left), 24


# ----------------------------------------------------------------- walker


@dataclass(slots=True)
class Packet:
    """What `parse_packet` found in one IPv6 packet."""

    header: IPv6Header
    home_address: IPv6Address | None  # from the Home Address option
    routing_address: IPv6Address | None  # from a type 2 routing header
    protocol: int  # Next Header value of the first non-walked header
    payload_offset: int  # where that header starts in the buffer
    payload: bytes  # from payload_offset to the end of the IPv6 payload
    routing_segments_left: int = 0  # of the type 2 routing header, if any

    def pseudo_header_addresses(self) -> tuple[IPv6Address, IPv6Address]:
        """(source, destination) for an upper-layer checksum, as the packet
        is on the wire: the home address stands in for the source when an
        HAO is present (RFC 6275 section 6.3), and an RH2 not yet processed
        (segments left 1) holds the final destination (RFC 8200 section 8.1;
        RFC 6275 section 6.1.1)."""
        src = self.header.src if self.home_address is None else self.home_address
        dst = self.header.dst
        if self.routing_address is not None and self.routing_segments_left:
            dst = self.routing_address
        return src, dst


def parse_packet(data: bytes) -> Packet:
    """Walk the fixed header and the hop-by-hop, routing and destination
    options headers; stop at anything else (MH, ICMPv6, IPv6, fragment...).

    The payload is cut at the IPv6 Payload Length, so link-layer padding
    is dropped. Jumbograms (payload length 0) are refused.
    """
    if type(data) is not bytes:
        data = bytes(data)  # IPv6Address and slicing below want bytes
    n = len(data)
    if n < 40:
        raise CodecError(f"IPv6 header truncated: {n} of 40 octets", 0)
    first, plen, nh, hlim, src, dst = _FIXED.unpack_from(data, 0)
    if first >> 28 != 6:
        raise CodecError(f"IP version {first >> 28}, expected 6", 0)
    if plen == 0 and nh != 59:  # 59: an empty packet is legal
        raise CodecError("payload length 0 (jumbogram or empty) not supported", 4)
    end = 40 + plen
    if end > n:
        raise CodecError(f"payload length {plen} exceeds the {n - 40} octets captured", 4)
    if end < n:
        data = data[:end]
    hao = rh2 = None
    rh2_left = 0
    off = 40
    while True:
        if nh == 60 and data[off + 1:off + 8] == _CANONICAL_HAO and off + 24 <= end:
            # fast path: the 24-octet header every MN sends (PadN(2) + HAO)
            if hao is not None:
                raise CodecError("second Home Address option", off)
            hao = IPv6Address(data[off + 8:off + 24])
            hend = off + 24
        elif nh == 60:
            hend = _header_bounds(data, off, "destination options")
            found, _ = _walk_options(data, off + 2, hend, "destination options", False)
            if found is not None:
                if hao is not None:
                    raise CodecError("second Home Address option", off)
                hao = found
        elif nh == 43:
            hend = _header_bounds(data, off, "routing")
            if data[off + 2] == _TYPE2:
                if rh2 is not None:
                    raise CodecError("second type 2 routing header", off)
                rh2_header = decode_routing_header_type2(data, off)[0]
                rh2, rh2_left = rh2_header.home_address, rh2_header.segments_left
        elif nh == 0:
            if off != 40:
                # RFC 8200 section 4.3: only right after the IPv6 header
                raise CodecError("hop-by-hop options header not first", off)
            hend = _header_bounds(data, off, "hop-by-hop options")
            found, _ = _walk_options(data, off + 2, hend, "hop-by-hop options", False)
            if found is not None:
                raise CodecError("Home Address option in hop-by-hop options", off)
        else:
            break
        nh = data[off]
        off = hend
    header = IPv6Header(IPv6Address(src), IPv6Address(dst), data[6], plen, hlim,
                        (first >> 20) & 0xFF, first & 0xFFFFF)
    return Packet(header, hao, rh2, nh, off, data[off:], rh2_left)


# -------------------------------------------------------------- builders


def _ipv6(src: IPv6Address, dst: IPv6Address, nh: int, plen: int, hop_limit: int,
          traffic_class: int = 0, flow_label: int = 0) -> bytes:
    if plen > 0xFFFF:
        raise ValueError(f"payload of {plen} octets needs a jumbogram")
    return _FIXED.pack((6 << 28) | (traffic_class << 20) | flow_label, plen, nh, hop_limit,
                       src.packed, dst.packed)


def build_ba_packet(src_ha: IPv6Address, coa: IPv6Address, hoa: IPv6Address,
                    mh_bytes: bytes, hop_limit: int = 64, next_header: int = Proto.MH) -> bytes:
    """IPv6 header (HA -> CoA) + type 2 routing header carrying the home
    address + the MH, for a header-included raw socket (RFC 6275 6.1.8/6.4).
    `mh_bytes` must already carry the checksum over (HA, HoA). With
    next_header ESP, `mh_bytes` is the MH already in ESP (RFC 3776 3.1)."""
    rh2 = _RH2.pack(next_header, 2, _TYPE2, 1, hoa.packed)
    return _ipv6(src_ha, coa, Proto.ROUTING, 24 + len(mh_bytes), hop_limit) + rh2 + mh_bytes


def build_bu_packet(coa: IPv6Address, ha: IPv6Address, hoa: IPv6Address,
                    mh_bytes: bytes, hop_limit: int = 64) -> bytes:
    """IPv6 header (CoA -> HA) + destination options with the Home Address
    option + the MH (RFC 6275 section 11.7.1). `mh_bytes` must carry the
    checksum over (HoA, HA)."""
    dopt = dstopts_with_hao(hoa, Proto.MH)
    return _ipv6(coa, ha, Proto.DSTOPTS, 24 + len(mh_bytes), hop_limit) + dopt + mh_bytes


def encapsulate(inner: bytes, src: IPv6Address, dst: IPv6Address, hop_limit: int = 64,
                traffic_class: int = 0, flow_label: int = 0) -> bytes:
    """Prepend an outer IPv6 header, Next Header 41 (RFC 2473 section 3)."""
    return _ipv6(src, dst, Proto.IPV6, len(inner), hop_limit, traffic_class, flow_label) + inner


def decapsulate(data: bytes) -> tuple[IPv6Header, bytes]:
    """Outer header and inner packet of an IPv6-in-IPv6 packet.

    Extension headers before the inner packet are walked; the inner packet
    must itself start with an IPv6 version 6 header.
    """
    pkt = parse_packet(data)
    if pkt.protocol != Proto.IPV6:
        raise CodecError(f"next header {pkt.protocol}, expected 41 (IPv6-in-IPv6)",
                         pkt.payload_offset)
    inner = pkt.payload
    if len(inner) < 40:
        raise CodecError(f"inner IPv6 header truncated: {len(inner)} of 40 octets",
                         pkt.payload_offset)
    if inner[0] >> 4 != 6:
        raise CodecError(f"inner IP version {inner[0] >> 4}, expected 6", pkt.payload_offset)
    return pkt.header, inner
