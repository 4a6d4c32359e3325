"""The Internet checksum (RFC 1071) over the IPv6 pseudo-header (RFC 8200 section 8.1).

The one copy, for ICMPv6 (RFC 4443 section 2.3) and the Mobility Header
(RFC 6275 section 6.1.1). For an MH the caller passes the home address (from
the Home Address option or the type 2 routing header) as the source or
destination, never the outer care-of address.

The one's-complement sum is taken modulo 0xFFFF: since 2**16 == 1 (mod
0xFFFF), a run of 16-bit words read as one big integer is congruent to the
sum of its words, so the whole sum is a few big-integer additions done in C
with no pseudo-header bytes built. The residue 0 stands for the sum 0xFFFF
("negative zero"); the pseudo-header's non-zero Next Header rules out a true
zero sum, so the result is the checksum RFC 1071's word-by-word folding gives.
"""

from __future__ import annotations

from ipaddress import IPv6Address


def pseudo_header_sum(src: IPv6Address, dst: IPv6Address, next_header: int,
                      data: bytes) -> int:
    """One's-complement sum of pseudo-header and `data`, as a residue modulo 0xFFFF."""
    length = len(data)
    if length & 1:
        data = bytes(data) + b"\0"   # RFC 1071: an odd last octet is padded for summing only
    # pseudo-header: src, dst, 32-bit upper-layer length, 3 zero octets, Next Header
    return (int(src) + int(dst) + length + next_header
            + int.from_bytes(data, "big")) % 0xFFFF


def upper_layer_checksum(src: IPv6Address, dst: IPv6Address, next_header: int,
                         payload: bytes) -> int:
    """The checksum to write into `payload`, whose checksum field is zero."""
    return -pseudo_header_sum(src, dst, next_header, payload) % 0xFFFF


def checksum_valid(src: IPv6Address, dst: IPv6Address, next_header: int,
                   data: bytes) -> bool:
    """True when the checksum already in `data` is right: the whole sum is then 0xFFFF."""
    return pseudo_header_sum(src, dst, next_header, data) == 0
