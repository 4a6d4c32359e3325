"""RFC 4285 MN-HA authentication of BU and BA: pure byte work, no clock.

What this follows (RFC 4285 section 5.2, in our words):

  Authenticator = First(96, HMAC_SHA1(MN-HA shared key, Mobility Data))
  Mobility Data = care-of address | home agent address | MH Data

MH Data is the Mobility Header from its first octet up to and including the
Mobility SPI field of the authentication option, taken with the MH checksum
field set to zero and Header Len as it will be sent (the whole message). The
authentication option is the last option of the message (section 5); only
padding to the 8-octet boundary may follow it.

The care-of address is the one on the packet: the IPv6 source of a BU and the
IPv6 destination of a BA (with a Home Address option / type 2 routing header
the home address sits in those instead). A BU sent from home has its home
address there, and that is what goes in. The home agent address is the BU's
destination or the BA's source.

Timestamps of the replay option (section 6) are 64-bit NTP format: seconds
since 1900 in the high 32 bits, a binary fraction in the low 32.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import struct
from dataclasses import dataclass, field
from ipaddress import IPv6Address

from ha.wire.checksum import upper_layer_checksum
from ha.wire.mobility import MessageAuthentication, encode_mh

AUTH_LEN = 12  # First(96, ...): octets of authenticator
SUBTYPE_MN_HA = 1
NTP_UNIX_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01
_MESG_AUTH = 9
_PAD1, _PADN = 0, 1
_FIXED = {5: 12, 6: 12}  # BU, BA: where options start (RFC 6275 sections 6.1.7, 6.1.8)
_IPPROTO_MH = 135


def ntp_from_unix(t: float) -> int:
    """Unix seconds -> 64-bit NTP timestamp."""
    secs = int(t // 1)
    frac = int((t - secs) * (1 << 32)) & 0xFFFFFFFF
    return ((secs + NTP_UNIX_OFFSET) & 0xFFFFFFFF) << 32 | frac


def unix_from_ntp(ts: int) -> float:
    """64-bit NTP timestamp -> Unix seconds (era 0, i.e. before 2036)."""
    return (ts >> 32) - NTP_UNIX_OFFSET + (ts & 0xFFFFFFFF) / (1 << 32)


def compute_authenticator(key: bytes, coa: IPv6Address, ha: IPv6Address,
                          mh_data: bytes) -> bytes:
    """The 96-bit authenticator over `mh_data` (already cut after the SPI,
    checksum zero)."""
    mac = hmac.new(key, coa.packed + ha.packed + mh_data, hashlib.sha1).digest()
    return mac[:AUTH_LEN]


def auth_option_offset(mh: bytes) -> int | None:
    """Offset in `mh` of the authentication option when it is the last
    option (only padding after it), None when there is none or it is not last."""
    start = _FIXED.get(mh[2]) if len(mh) > 2 else None
    if start is None:
        return None
    i, found, n = start, None, len(mh)
    while i < n:
        t = mh[i]
        if t == _PAD1:
            i += 1
            continue
        if i + 2 > n:
            return None
        if t != _PADN:
            found = i if t == _MESG_AUTH else None
        i += 2 + mh[i + 1]
    if found is None or i != n or mh[found + 1] < 5:
        return None
    return found


def mobility_data_end(offset: int) -> int:
    """End of MH Data for the option at `offset`: just after its SPI (type,
    length, subtype, 4 SPI octets)."""
    return offset + 7


def _mh_data(mh: bytes, offset: int) -> bytes:
    data = bytearray(mh[:mobility_data_end(offset)])
    data[4] = data[5] = 0  # section 5.2: checksum zero while computing
    return bytes(data)


def sign_mh(mh: bytes, key: bytes, coa: IPv6Address, ha: IPv6Address,
            pseudo_src: IPv6Address, pseudo_dst: IPv6Address) -> bytes:
    """`mh` encoded with a MessageAuthentication(spi, 12 zero octets) last:
    the same bytes with the authenticator and then the MH checksum (over the
    pseudo-header pseudo_src/pseudo_dst, RFC 6275 section 6.1.1) filled in."""
    off = auth_option_offset(mh)
    if off is None or mh[off + 1] != 5 + AUTH_LEN:
        raise ValueError("the message's last option is not a 12-octet authentication option")
    out = bytearray(mh)
    end = mobility_data_end(off)
    out[end:end + AUTH_LEN] = compute_authenticator(key, coa, ha, _mh_data(mh, off))
    out[4] = out[5] = 0
    csum = upper_layer_checksum(pseudo_src, pseudo_dst, _IPPROTO_MH, out)
    struct.pack_into("!H", out, 4, csum)
    return bytes(out)


def verify_mh(mh: bytes, key: bytes, spi: int, coa: IPv6Address, ha: IPv6Address) -> str | None:
    """None when `mh` ends with an MN-HA authentication option for `spi`
    whose authenticator is right; otherwise why not, in a few words."""
    off = auth_option_offset(mh)  # never reads past the end: lengths checked as it walks
    if off is None:
        return "no authentication option last"
    subtype, got_spi = struct.unpack_from("!BI", mh, off + 2)
    if subtype != SUBTYPE_MN_HA:
        return f"authentication subtype {subtype}, not MN-HA"
    if got_spi != spi:
        return f"SPI {got_spi}, expected {spi}"
    end = mobility_data_end(off)
    got = bytes(mh[end:off + 2 + mh[off + 1]])
    want = compute_authenticator(key, coa, ha, _mh_data(mh, off))
    if not hmac.compare_digest(got, want):
        return "authenticator wrong"
    return None


def encode_signed(msg, key: bytes, spi: int, coa: IPv6Address, ha: IPv6Address,
                  pseudo_src: IPv6Address, pseudo_dst: IPv6Address) -> bytes:
    """Encode a BU or BA with the MN-HA authentication option appended last
    (RFC 4285 section 5) and signed; `msg.options` is left as it was."""
    placeholder = MessageAuthentication(spi, bytes(AUTH_LEN), SUBTYPE_MN_HA)
    unsigned = encode_mh(dataclasses.replace(msg, options=[*msg.options, placeholder]),
                         pseudo_src, pseudo_dst)
    return sign_mh(unsigned, key, coa, ha, pseudo_src, pseudo_dst)


@dataclass(slots=True, frozen=True)
class MnHaSecret:
    """One mobile node's MN-HA security association (RFC 4285 section 5.1):
    the Mobility SPI both ends put in the option and the shared key."""

    spi: int
    key: bytes = field(repr=False)  # never in a log line or a traceback

    def __post_init__(self):
        if not 0 <= self.spi <= 0xFFFFFFFF:
            raise ValueError(f"Mobility SPI {self.spi} is not a 32-bit number")
        if not self.key:
            raise ValueError("an MN-HA key may not be empty")


# RFC 4285 section 6 asks that the timestamp be close to the receiver's clock
# without fixing how close: ours is a setting, 7 seconds by default (an NTP-
# synchronised MN is far closer; a BU in flight takes well under a second).
DEFAULT_REPLAY_WINDOW = 7.0
