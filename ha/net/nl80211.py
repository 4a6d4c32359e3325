"""nl80211 for the wireless manager: the five requests it makes, packed with struct.

The manager asks the kernel four things about radios (the wiphy dump, the
interface dump, the regulatory domain, and two settings: interface type and
transmit power). pyroute2's IW does them too, but importing it costs about
10 MB of RSS and seconds of CPU on the board; with 64 MB and two hostapd that
import, made when a radio appears, is what pushed the board into page-cache
thrash. This module is a plain generic-netlink socket (no thread, no import
beyond the standard library) that reads the same attributes.

    with Nl80211() as nl:
        wiphys = nl.wiphys()          # {index: Wiphy}
        ifaces = nl.interfaces()      # [(ifname, wiphy index, iftype number)]
        nl.req_set_reg("DE"); nl.get_reg()
        nl.set_interface_type(ifindex, IFTYPE_STATION)
        nl.set_tx_power(ifindex, TX_POWER_FIXED, 1500)

tests/unit/test_nl80211.py checks the requests with pyroute2's own nl80211
parser and parses messages pyroute2 encodes, so the two cannot drift apart.
Constants are from linux/nl80211.h and linux/genetlink.h.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from dataclasses import dataclass, field

NETLINK_GENERIC = 16
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME = 1, 2

NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x2, 0x4, 0x300
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER

CMD_GET_WIPHY, CMD_SET_WIPHY = 1, 2
CMD_GET_INTERFACE, CMD_SET_INTERFACE = 5, 6
CMD_REQ_SET_REG, CMD_GET_REG = 27, 31

ATTR_WIPHY, ATTR_WIPHY_NAME, ATTR_IFINDEX, ATTR_IFNAME, ATTR_IFTYPE = 1, 2, 3, 4, 5
ATTR_WIPHY_BANDS = 22
ATTR_SUPPORTED_IFTYPES = 32
ATTR_REG_ALPHA2 = 33
ATTR_WIPHY_TX_POWER_SETTING, ATTR_WIPHY_TX_POWER_LEVEL = 97, 98
ATTR_INTERFACE_COMBINATIONS = 120
ATTR_SPLIT_WIPHY_DUMP = 174

BAND_ATTR_FREQS = 1
FREQ_ATTR_FREQ, FREQ_ATTR_DISABLED, FREQ_ATTR_NO_IR, FREQ_ATTR_RADAR = 1, 2, 3, 5
IFACE_COMB_RADAR_DETECT_WIDTHS = 5

IFTYPE_STATION, IFTYPE_AP = 2, 3
IFTYPE_NAMES = {0: "unspecified", 1: "adhoc", 2: "station", 3: "ap", 4: "ap_vlan", 5: "wds",
                6: "monitor", 7: "mesh_point", 8: "p2p_client", 9: "p2p_go",
                10: "p2p_device", 11: "ocb", 12: "nan"}
TX_POWER_AUTOMATIC, TX_POWER_LIMITED, TX_POWER_FIXED = 0, 1, 2

_NLMSGHDR = struct.Struct("=IHHII")
_GENLHDR = struct.Struct("=BBH")
_NLA = struct.Struct("=HH")


class Nl80211Error(OSError):
    pass


def attr(kind: int, payload: bytes) -> bytes:
    n = _NLA.size + len(payload)
    return _NLA.pack(n, kind) + payload + b"\0" * (-n & 3)


def u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def attrs(data: bytes, offset: int = 0) -> list[tuple[int, bytes]]:
    """[(type, payload)] of the netlink attributes in data[offset:] (flags masked off)."""
    out = []
    end = len(data)
    while offset + _NLA.size <= end:
        n, kind = _NLA.unpack_from(data, offset)
        if n < _NLA.size or offset + n > end:
            break
        out.append((kind & NLA_TYPE_MASK, data[offset + _NLA.size:offset + n]))
        offset += (n + 3) & ~3
    return out


def genl_message(family: int, cmd: int, body: bytes, flags: int, seq: int,
                 version: int = 1) -> bytes:
    payload = _GENLHDR.pack(cmd, version, 0) + body
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(payload), family, flags, seq, 0) + payload


def _str(payload: bytes) -> str:
    return payload.split(b"\0", 1)[0].decode("utf-8", "replace")


def _u32(payload: bytes) -> int:
    return struct.unpack_from("=I", payload)[0] if len(payload) >= 4 else 0


@dataclass
class Wiphy:
    """One radio (phy) as the wiphy dump describes it, merged over its split parts."""
    index: int
    name: str = ""
    iftypes: set = field(default_factory=set)       # interface type numbers it can be
    freqs: dict = field(default_factory=dict)       # MHz -> None, or why an AP may not use it
    radar: set = field(default_factory=set)         # MHz that need radar detection (DFS)
    radar_detect: bool = False                      # a combination lists radar detect widths

    @property
    def ap(self) -> bool:
        return IFTYPE_AP in self.iftypes


def freq_verdict(payload: bytes) -> tuple[int, str | None, bool]:
    """(MHz, why an AP may not use it or None, radar detection required) of one
    NL80211_BAND_ATTR_FREQS entry."""
    a = dict(attrs(payload))
    mhz = _u32(a.get(FREQ_ATTR_FREQ, b""))
    radar = FREQ_ATTR_RADAR in a
    if FREQ_ATTR_DISABLED in a:
        return mhz, "disabled", radar
    if FREQ_ATTR_NO_IR in a and not radar:
        # a DFS channel is no-IR until its channel availability check: the radar
        # rule (hostapd.check_radios) decides those
        return mhz, "no-IR (regulatory: may not transmit first)", radar
    return mhz, None, radar


def merge_wiphy(wiphys: dict, body: list[tuple[int, bytes]]) -> None:
    """Fold one (part of a split) NEW_WIPHY message's attributes into *wiphys*."""
    a = {}
    for kind, payload in body:
        a.setdefault(kind, payload)
    if ATTR_WIPHY not in a:
        return
    idx = _u32(a[ATTR_WIPHY])
    w = wiphys.setdefault(idx, Wiphy(idx, f"phy{idx}"))
    if ATTR_WIPHY_NAME in a:
        w.name = _str(a[ATTR_WIPHY_NAME]) or w.name
    if ATTR_SUPPORTED_IFTYPES in a:
        w.iftypes.update(kind for kind, _ in attrs(a[ATTR_SUPPORTED_IFTYPES]))
    for _, comb in attrs(a.get(ATTR_INTERFACE_COMBINATIONS, b"")):
        widths = dict(attrs(comb)).get(IFACE_COMB_RADAR_DETECT_WIDTHS)
        if widths and _u32(widths):
            w.radar_detect = True
    for _, band in attrs(a.get(ATTR_WIPHY_BANDS, b"")):
        for kind, payload in attrs(band):
            if kind != BAND_ATTR_FREQS:
                continue
            for _, fa in attrs(payload):
                mhz, why, radar = freq_verdict(fa)
                if mhz:
                    w.freqs[mhz] = why
                    if radar:
                        w.radar.add(mhz)


class Nl80211:
    """A generic-netlink socket bound to nl80211, one request at a time (blocking,
    with a timeout: the kernel answers these from its own tables at once)."""

    def __init__(self, timeout: float = 5.0):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        try:
            self.sock.settimeout(timeout)
            self.sock.bind((0, 0))
            self.seq = 0
            self.family = self._family_id("nl80211")
        except BaseException:
            self.sock.close()
            raise

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Nl80211":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----------------------------------------------------------------- transport
    def request(self, family: int, cmd: int, body: bytes = b"", *, dump: bool = False,
                ack: bool = False) -> list[list[tuple[int, bytes]]]:
        """Send one request; the attributes of every answer until the end (a dump's
        NLMSG_DONE, or the ack / the one reply). A kernel refusal raises Nl80211Error."""
        self.seq += 1
        flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else 0) | (NLM_F_ACK if ack else 0)
        self.sock.send(genl_message(family, cmd, body, flags, self.seq))
        out = []
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except socket.timeout:
                raise Nl80211Error(errno.ETIMEDOUT, "nl80211 did not answer") from None
            off = 0
            while off + _NLMSGHDR.size <= len(data):
                n, kind, mflags, seq, _ = _NLMSGHDR.unpack_from(data, off)
                if n < _NLMSGHDR.size:
                    break
                msg = data[off + _NLMSGHDR.size:off + n]
                off += (n + 3) & ~3
                if seq != self.seq:
                    continue  # a late answer to an earlier request
                if kind == NLMSG_DONE:
                    return out
                if kind == NLMSG_ERROR:
                    code = struct.unpack_from("=i", msg)[0]
                    if code:
                        raise Nl80211Error(-code, os.strerror(-code))
                    return out  # the ack
                out.append(attrs(msg, _GENLHDR.size))
                if not dump and not (mflags & NLM_F_MULTI) and not ack:
                    return out

    def _family_id(self, name: str) -> int:
        try:
            answers = self.request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY,
                                   attr(CTRL_ATTR_FAMILY_NAME, name.encode() + b"\0"))
        except Nl80211Error as e:
            if e.errno == errno.ENOENT:
                raise Nl80211Error(errno.ENOENT, f"the kernel has no {name} (no cfg80211: "
                                   "no wireless driver loaded)") from None
            raise
        for a in answers:
            for kind, payload in a:
                if kind == CTRL_ATTR_FAMILY_ID:
                    return struct.unpack_from("=H", payload)[0]
        raise Nl80211Error(errno.ENOENT, f"no generic netlink family {name}")

    # ----------------------------------------------------------------- requests
    def wiphys(self) -> dict[int, Wiphy]:
        out: dict[int, Wiphy] = {}
        for body in self.request(self.family, CMD_GET_WIPHY,
                                 attr(ATTR_SPLIT_WIPHY_DUMP, b""), dump=True):
            merge_wiphy(out, body)
        return out

    def interfaces(self) -> list[tuple[str, int, int]]:
        out = []
        for body in self.request(self.family, CMD_GET_INTERFACE, dump=True):
            a = dict(body)
            out.append((_str(a.get(ATTR_IFNAME, b"")), _u32(a.get(ATTR_WIPHY, b"")),
                        _u32(a.get(ATTR_IFTYPE, b""))))
        return out

    def req_set_reg(self, alpha2: str) -> None:
        self.request(self.family, CMD_REQ_SET_REG,
                     attr(ATTR_REG_ALPHA2, alpha2.encode() + b"\0"), ack=True)

    def get_reg(self) -> str | None:
        for body in self.request(self.family, CMD_GET_REG):
            a = dict(body)
            if ATTR_REG_ALPHA2 in a:
                return _str(a[ATTR_REG_ALPHA2])
        return None

    def set_interface_type(self, ifindex: int, iftype: int) -> None:
        self.request(self.family, CMD_SET_INTERFACE,
                     u32(ATTR_IFINDEX, ifindex) + u32(ATTR_IFTYPE, iftype), ack=True)

    def set_tx_power(self, ifindex: int, setting: int, mbm: int | None = None) -> None:
        body = u32(ATTR_IFINDEX, ifindex) + u32(ATTR_WIPHY_TX_POWER_SETTING, setting)
        if mbm is not None:
            body += u32(ATTR_WIPHY_TX_POWER_LEVEL, mbm)
        self.request(self.family, CMD_SET_WIPHY, body, ack=True)
