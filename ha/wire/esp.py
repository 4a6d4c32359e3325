"""ESP in transport mode for BU/BA (RFC 4303, RFC 3776): pure byte work, no clock.

What is here, in our words:

  ESP packet (RFC 4303 section 2, no ESN, NULL encryption so no IV):

      SPI (4) | Sequence Number (4) | payload | Padding (0-255) |
      Pad Length (1) | Next Header (1) | ICV

  - NULL encryption (RFC 2410) has a block size of 1, but section 2.4 still
    wants Pad Length and Next Header to end on a 4-octet boundary; padding is
    the default 1, 2, 3, ... of section 2.4 (what Linux writes too).
  - The ICV (section 2.8, 3.3.4) is the keyed HMAC over SPI through Next
    Header, truncated: HMAC-SHA1-96 (RFC 2404, 12 octets) or
    HMAC-SHA-256-128 (RFC 4868, 16 octets). It covers no IP header, so the
    Home Address option and the type 2 routing header around it do not enter
    it (RFC 3776 section 3.1 shows where ESP sits: after the HAO / RH2, before
    the Mobility Header).
  - Sequence numbers start at 1 for a new SA and never cycle (section 3.3.3).
  - The receiver's anti-replay window (section 3.4.3, Appendix A2's sliding
    bitmap): a number at or left of the window's bottom, or already seen, is
    dropped before the ICV is checked; the window moves only after the ICV
    has checked out.

Every decoder raises only `CodecError`; `EspAuthError` (a CodecError) says
the ICV did not check out, so callers can count forgery apart from damage.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field

from ha.wire.errors import CodecError

_HEAD = struct.Struct("!II")  # SPI, sequence number
ESP_HEADER_LEN = 8
MAX_SEQ = 0xFFFFFFFF

# name -> (hash, ICV octets, key octets): the names are iproute2's and setkey's
# spellings squeezed into one word, as in the DenaliIPsecSA line
AUTH_ALGORITHMS = {
    "hmac-sha1-96": (hashlib.sha1, 12, 20),      # RFC 2404
    "hmac-sha256-128": (hashlib.sha256, 16, 32),  # RFC 4868
}


class EspAuthError(CodecError):
    """The ICV is wrong: another key, or the packet was changed on the way."""


@dataclass(slots=True, frozen=True)
class EspKey:
    """One direction's integrity algorithm and key (manual keying, RFC 3776 4.1)."""

    auth: str
    key: bytes = field(repr=False)  # never in a log line or a traceback

    def __post_init__(self):
        if self.auth not in AUTH_ALGORITHMS:
            raise ValueError(f"integrity algorithm {self.auth!r}: use "
                             + " or ".join(AUTH_ALGORITHMS))
        want = AUTH_ALGORITHMS[self.auth][2]
        if len(self.key) != want:
            # RFC 2404 section 3 and RFC 4868 section 2.1.1: the key is the
            # hash's output length (what the kernel expects too)
            raise ValueError(f"{self.auth} takes a {want}-octet key "
                             f"({2 * want} hex digits), not {len(self.key)} octets")

    @property
    def icv_len(self) -> int:
        return AUTH_ALGORITHMS[self.auth][1]

    def icv(self, data: bytes) -> bytes:
        digest, n, _ = AUTH_ALGORITHMS[self.auth]
        return hmac.new(self.key, data, digest).digest()[:n]


def esp_spi(data: bytes) -> int:
    """The SPI of the ESP header at the start of `data` (to find the SA)."""
    if len(data) < ESP_HEADER_LEN:
        raise CodecError(f"ESP header truncated: {len(data)} of 8 octets", 0)
    return _HEAD.unpack_from(data)[0]


def esp_sequence(data: bytes) -> int:
    if len(data) < ESP_HEADER_LEN:
        raise CodecError(f"ESP header truncated: {len(data)} of 8 octets", 0)
    return _HEAD.unpack_from(data)[1]


def encode_esp(spi: int, seq: int, payload: bytes, next_header: int, key: EspKey) -> bytes:
    """ESP header, payload, trailer and ICV around `payload` (transport mode)."""
    if not 256 <= spi <= 0xFFFFFFFF:
        # RFC 4303 section 2.1: 1-255 are reserved by IANA, 0 is local use only
        raise ValueError(f"SPI {spi} is not one an SA may use (256 to 2^32-1)")
    if not 1 <= seq <= MAX_SEQ:
        raise ValueError(f"sequence number {seq} out of 1..2^32-1")
    pad = -(len(payload) + 2) % 4
    body = (_HEAD.pack(spi, seq) + payload + bytes(range(1, pad + 1))
            + bytes((pad, next_header)))
    return body + key.icv(body)


def decode_esp(data: bytes, key: EspKey) -> tuple[int, int, int, bytes]:
    """(spi, seq, next_header, payload) of an ESP packet whose ICV checks out
    with `key`; EspAuthError when it does not, CodecError when malformed."""
    n = key.icv_len
    if len(data) < ESP_HEADER_LEN + 2 + n:
        raise CodecError(f"ESP packet of {len(data)} octets is shorter than its header, "
                         f"trailer and {n}-octet ICV", 0)
    body, got = data[:-n], data[-n:]
    if not hmac.compare_digest(key.icv(body), got):
        raise EspAuthError("ESP ICV wrong", len(body))
    spi, seq = _HEAD.unpack_from(body)
    pad, nh = body[-2], body[-1]
    end = len(body) - 2 - pad
    if end < ESP_HEADER_LEN:
        raise CodecError(f"ESP pad length {pad} runs into the header", len(body) - 2)
    if body[end:end + pad] != bytes(range(1, pad + 1)):
        # section 2.4: with the default padding the receiver checks it
        raise CodecError("ESP padding is not 1, 2, 3, ...", end)
    return spi, seq, nh, bytes(body[ESP_HEADER_LEN:end])


class ReplayWindow:
    """RFC 4303 section 3.4.3 and Appendix A2: the receiver's sliding window.

    `top` is the highest sequence number accepted so far; bit i of `bitmap`
    says that top - i has been seen. check() before the ICV, accept() after.
    """

    __slots__ = ("size", "top", "bitmap")

    def __init__(self, size: int = 64):
        if not 32 <= size <= 1024:
            raise ValueError(f"replay window {size}: use 32 to 1024")  # section 3.4.3: >= 32
        self.size = size
        self.top = 0
        self.bitmap = 0

    def check(self, seq: int) -> str | None:
        """None when `seq` may be new; otherwise why it is dropped."""
        if seq == 0:
            return "sequence number 0 (never sent: counting starts at 1)"
        if seq > self.top:
            return None
        if self.top - seq >= self.size:
            return f"sequence number {seq} left of the window (top {self.top})"
        if self.bitmap >> (self.top - seq) & 1:
            return f"sequence number {seq} seen already (a replay)"
        return None

    def accept(self, seq: int) -> None:
        """Mark `seq` seen (its ICV has checked out), sliding the window if it is new top."""
        if seq > self.top:
            shift = seq - self.top
            self.bitmap = ((self.bitmap << shift) | 1) & ((1 << self.size) - 1)
            self.top = seq
        else:
            self.bitmap |= 1 << (self.top - seq)


@dataclass(slots=True, frozen=True)
class MnHaIPsecSA:
    """The pair of manually keyed SAs of one home address (RFC 3776 section
    4.1): selectors home address <-> home agent address, protocol MH. The
    SPIs and keys are named by direction, so one DenaliIPsecSA line reads
    the same in a home agent's file and a mobile node's."""

    spi_to_ha: int  # BUs: the mobile node's outbound SA, our inbound one
    spi_to_mn: int  # BAs: ours outbound
    key_to_ha: EspKey
    key_to_mn: EspKey

    def __post_init__(self):
        for spi in (self.spi_to_ha, self.spi_to_mn):
            if not 256 <= spi <= 0xFFFFFFFF:
                raise ValueError(f"SPI {spi}: use 256 to 4294967295 "
                                 "(RFC 4303 section 2.1 reserves 1-255)")
        if self.spi_to_ha == self.spi_to_mn:
            raise ValueError(f"SPI {self.spi_to_ha} for both directions: give each its own")
