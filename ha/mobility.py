"""Mobility Header (RFC 6275 section 6.1): types, messages and options.

Pure data and codec: no sockets, no clock. The encode/decode functions
live below the types.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from ipaddress import IPv6Address

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
class UnknownMobilityOption:
    type: int
    data: bytes


MobilityOption = (
    Pad1 | PadN | BindingRefreshAdvice | AlternateCareOfAddress | NonceIndices
    | BindingAuthorizationData | UnknownMobilityOption
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


@dataclass(slots=True)
class BindingUpdate:
    sequence: int  # 16 bit
    lifetime: int  # 16 bit, 4-second units; 0 means deregister
    ack: bool = False  # A
    home_registration: bool = False  # H
    link_local_compat: bool = False  # L
    key_management: bool = False  # K
    options: list = field(default_factory=list)

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
class BindingAck:
    status: BAStatus | int
    sequence: int
    lifetime: int  # 4-second units
    key_management: bool = False  # K
    options: list = field(default_factory=list)

    @property
    def lifetime_seconds(self) -> int:
        return self.lifetime * 4


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
