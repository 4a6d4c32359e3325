"""ha/net/nl80211.py against pyroute2's nl80211 parser, an independent codec.

This machine's kernel has no cfg80211, so the requests go to FakeKernelSocket
(a stand-in for a kernel with radios: it records what is sent and answers
with messages built here); pyroute2 decodes every request and every answer,
and both readings must agree. The real kernel is asked only what it can
answer here: that it has no nl80211. The hwsim radios themselves are
tests/qemu/test_wireless_hwsim.py and test_radio_modes_hwsim.py.
"""

from __future__ import annotations

import errno
import struct

import pytest

from ha.net import nl80211 as N

FAMILY = 0x1C


def pyroute2_decode(data: bytes):
    from pyroute2.netlink.nl80211 import nl80211cmd
    m = nl80211cmd(data)
    m.decode()
    return m


def answer(cmd: int, body: bytes, seq: int, flags: int = 0) -> bytes:
    return N.genl_message(FAMILY, cmd, body, flags, seq)


def done(seq: int) -> bytes:
    return struct.pack("=IHHII", 20, N.NLMSG_DONE, N.NLM_F_MULTI, seq, 0) + b"\0" * 4


def ack(seq: int, code: int = 0) -> bytes:
    return struct.pack("=IHHIIi", 36, N.NLMSG_ERROR, 0, seq, 0, code) + b"\0" * 16


class FakeKernelSocket:
    """Stands in for a kernel with radios: records requests, answers from a script."""

    def __init__(self, answers):
        self.sent: list[bytes] = []
        self.answers = answers  # seq -> list of datagrams

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        self.queue = self.answers(struct.unpack_from("=I", data, 8)[0], data)
        return len(data)

    def recv(self, n: int) -> bytes:
        return self.queue.pop(0)

    def close(self):
        pass


def client(answers) -> N.Nl80211:
    nl = N.Nl80211.__new__(N.Nl80211)
    nl.sock, nl.seq, nl.family = FakeKernelSocket(answers), 0, FAMILY
    return nl


def freq(mhz: int, *flags: int) -> bytes:
    return N.u32(N.FREQ_ATTR_FREQ, mhz) + b"".join(N.attr(f, b"") for f in flags)


def wiphy_parts(idx: int = 0):
    """A split NEW_WIPHY dump of one phy: name and modes first, then two bands."""
    iftypes = N.attr(N.ATTR_SUPPORTED_IFTYPES | 0x8000,
                     N.attr(N.IFTYPE_STATION, b"") + N.attr(N.IFTYPE_AP, b""))
    comb = N.attr(N.ATTR_INTERFACE_COMBINATIONS | 0x8000,
                  N.attr(1, N.u32(N.IFACE_COMB_RADAR_DETECT_WIDTHS, 0x3)))
    g = N.attr(0, N.attr(N.BAND_ATTR_FREQS, N.attr(0, freq(2412)) + N.attr(1, freq(2467, N.FREQ_ATTR_NO_IR))
                         + N.attr(2, freq(2484, N.FREQ_ATTR_DISABLED))))
    a = N.attr(1, N.attr(N.BAND_ATTR_FREQS,
                         N.attr(0, freq(5180)) + N.attr(1, freq(5260, N.FREQ_ATTR_NO_IR, N.FREQ_ATTR_RADAR))))
    head = N.u32(N.ATTR_WIPHY, idx) + N.attr(N.ATTR_WIPHY_NAME, f"phy{idx}".encode() + b"\0")
    return [head + iftypes + comb, N.u32(N.ATTR_WIPHY, idx) + N.attr(N.ATTR_WIPHY_BANDS | 0x8000, g + a)]


def test_wiphy_dump_request_is_what_pyroute2_reads():
    nl = client(lambda seq, req: [done(seq)])
    assert nl.wiphys() == {}
    m = pyroute2_decode(nl.sock.sent[0])
    assert m["cmd"] == 1  # NL80211_CMD_GET_WIPHY
    assert m["header"]["flags"] & N.NLM_F_DUMP == N.NLM_F_DUMP
    assert m.get_attr("NL80211_ATTR_SPLIT_WIPHY_DUMP") is not None


def test_split_wiphy_dump_merges_modes_and_channels_as_pyroute2_reads_them():
    parts = wiphy_parts()
    nl = client(lambda seq, req: [b"".join(answer(N.CMD_GET_WIPHY, p, seq, N.NLM_F_MULTI)
                                           for p in parts), done(seq)])
    w = nl.wiphys()[0]
    assert w.name == "phy0" and w.ap and w.radar_detect
    assert w.freqs == {2412: None, 2467: "no-IR (regulatory: may not transmit first)",
                       2484: "disabled", 5180: None, 5260: None}
    assert w.radar == {5260}
    # the same bytes through pyroute2: same interface types and frequencies
    first = pyroute2_decode(answer(N.CMD_GET_WIPHY, parts[0], 1))
    assert set(first.get_attr("NL80211_ATTR_SUPPORTED_IFTYPES")) >= {"station", "ap"}
    second = pyroute2_decode(answer(N.CMD_GET_WIPHY, parts[1], 1))
    seen = set()
    for band in second.get_attr("NL80211_ATTR_WIPHY_BANDS"):
        for fa in band.get_attr("NL80211_BAND_ATTR_FREQS") or ():
            seen.add(fa.get_attr("NL80211_FREQUENCY_ATTR_FREQ"))
    assert seen == set(w.freqs)


def test_interface_dump():
    def answers(seq, req):
        body = (N.u32(N.ATTR_IFINDEX, 5) + N.attr(N.ATTR_IFNAME, b"wlan0\0")
                + N.u32(N.ATTR_WIPHY, 0) + N.u32(N.ATTR_IFTYPE, N.IFTYPE_AP))
        return [answer(7, body, seq, N.NLM_F_MULTI) + done(seq)]
    nl = client(answers)
    assert nl.interfaces() == [("wlan0", 0, N.IFTYPE_AP)]
    assert pyroute2_decode(answer(7, N.attr(N.ATTR_IFNAME, b"wlan0\0"), 1)).get_attr(
        "NL80211_ATTR_IFNAME") == "wlan0"


@pytest.mark.parametrize("call, cmd, want", [
    (lambda nl: nl.req_set_reg("DE"), 27, {"NL80211_ATTR_REG_ALPHA2": "DE"}),
    (lambda nl: nl.set_interface_type(9, N.IFTYPE_STATION), 6,
     {"NL80211_ATTR_IFINDEX": 9, "NL80211_ATTR_IFTYPE": 2}),
    (lambda nl: nl.set_tx_power(9, N.TX_POWER_FIXED, 1500), 2,
     {"NL80211_ATTR_IFINDEX": 9, "NL80211_ATTR_WIPHY_TX_POWER_SETTING": 2,
      "NL80211_ATTR_WIPHY_TX_POWER_LEVEL": 1500}),
])
def test_setting_requests_decode_in_pyroute2_and_wait_for_the_ack(call, cmd, want):
    nl = client(lambda seq, req: [ack(seq)])
    call(nl)
    m = pyroute2_decode(nl.sock.sent[0])
    assert m["cmd"] == cmd and m["header"]["type"] == FAMILY
    assert m["header"]["flags"] & N.NLM_F_ACK
    for name, value in want.items():
        assert m.get_attr(name) == value, name


def test_a_refusal_names_the_kernels_reason():
    nl = client(lambda seq, req: [ack(seq, -errno.EBUSY)])
    with pytest.raises(N.Nl80211Error) as e:
        nl.set_interface_type(9, N.IFTYPE_STATION)
    assert e.value.errno == errno.EBUSY and "busy" in str(e.value).lower()


def test_get_reg_skips_a_late_answer_to_an_earlier_request():
    def answers(seq, req):
        return [answer(N.CMD_GET_REG, N.attr(N.ATTR_REG_ALPHA2, b"US\0"), seq - 1)
                + answer(N.CMD_GET_REG, N.attr(N.ATTR_REG_ALPHA2, b"DE\0"), seq)]
    assert client(answers).get_reg() == "DE"


def test_a_kernel_without_cfg80211_says_so():
    """This machine's kernel: the generic netlink controller answers, nl80211 is not there."""
    try:
        nl = N.Nl80211()
    except N.Nl80211Error as e:
        assert e.errno == errno.ENOENT and "cfg80211" in str(e)
    else:  # a host with a wireless driver: then it lists its radios
        with nl:
            assert isinstance(nl.wiphys(), dict)
