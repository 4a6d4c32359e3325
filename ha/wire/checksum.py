"""The Internet checksum over the IPv6 pseudo-header (RFC 8200 section 8.1).

Used by ICMPv6 and the Mobility Header. For MH the caller passes the home
address (from the Home Address option or the type 2 routing header) as the
source or destination, not the outer care-of address (RFC 6275 section 6.1.1).
"""

from __future__ import annotations

import struct
from ipaddress import IPv6Address


def internet_checksum(data: bytes) -> int:
    """One's-complement sum of 16-bit words, complemented."""
    if len(data) & 1:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def pseudo_header(src: IPv6Address, dst: IPv6Address, next_header: int, length: int) -> bytes:
    return src.packed + dst.packed + struct.pack("!I3xB", length, next_header)


def upper_layer_checksum(src: IPv6Address, dst: IPv6Address, next_header: int,
                         payload: bytes) -> int:
    """Checksum of `payload` (its checksum field zeroed by the caller)."""
    return internet_checksum(pseudo_header(src, dst, next_header, len(payload)) + payload)
