"""HomeAgentCore with RFC 4285 protected home addresses, driven with bytes.

The BAs are read back by scapy; their authenticator is recomputed here with
Python's hmac from the RFC's definition, not with the module under test.
"""

import hashlib
import hmac
import logging
from ipaddress import IPv6Address, IPv6Network

import pytest

from ha.core import registration as reg
from ha.core.home_agent import HomeAgentCore, HomeAgentSettings
from ha.wire import auth
from ha.wire.ipv6 import build_bu_packet, parse_packet
from ha.wire.mobility import (AlternateCareOfAddress, BAStatus, BindingUpdate, ReplayProtection,
                              decode_mh, encode_mh)

pytest.importorskip("scapy")
from scapy.layers.inet6 import (IPv6 as ScapyIPv6, MIP6MH_BA, MIP6OptMsgAuth,  # noqa: E402
                                MIP6OptReplayProtection)

A = IPv6Address
HA = A("2001:db8::")
HOA = A("2001:db8::beef")
OPEN_HOA = A("2001:db8::cafe")
COA = A("2001:db8:1::5")
COA2 = A("2001:db8:1::6")
EVIL = A("2001:db8:66::66")
VICTIM = A("2001:db8:77::77")
HOME = IPv6Network("2001:db8::/64")
IFINDEX = 3
KEY = bytes.fromhex("5ec2e7000000000000000000000000000000beef")
SPI = 256
WALL = 1_800_000_000.0  # the HA's wall clock at the start of each test


def core(**kw) -> HomeAgentCore:
    rules = reg.HomeAgentConfig(served_prefixes=(HOME,), ha_addresses=(HA,), dad_enabled=False)
    return HomeAgentCore(HomeAgentSettings(ha_address=HA, home_ifindex=IFINDEX, rules=rules,
                                           auth={HOA: auth.MnHaSecret(SPI, KEY)}, **kw),
                         capacity=100)


def signed_bu(seq, lifetime=1000, *, coa=COA, stamp=WALL, key=KEY, spi=SPI, options=()):
    opts = list(options)
    if stamp is not None:
        opts.append(ReplayProtection(auth.ntp_from_unix(stamp)))
    bu = BindingUpdate(sequence=seq, lifetime=lifetime, ack=True, home_registration=True,
                       options=opts)
    return build_bu_packet(coa, HA, HOA, auth.encode_signed(bu, key, spi, coa, HA, HOA, HA))


def plain_bu(seq, lifetime=1000, *, coa=COA, hoa=HOA, options=()):
    bu = BindingUpdate(sequence=seq, lifetime=lifetime, ack=True, home_registration=True,
                       options=list(options))
    return build_bu_packet(coa, HA, hoa, encode_mh(bu, hoa, HA))


def drain(c):
    out = []
    while (a := c.next_action()) is not None:
        out.append(a)
    return out


def ba(c, now=0.0):
    """(status, seq, replay timestamp, authenticator ok) of the one BA sent, via scapy."""
    (d,) = c.datagrams_to_send(now)
    p = ScapyIPv6(d.data)
    b = p[MIP6MH_BA]
    rp = p[MIP6OptReplayProtection] if p.haslayer(MIP6OptReplayProtection) else None
    ma = p[MIP6OptMsgAuth] if p.haslayer(MIP6OptMsgAuth) else None
    ok = None
    if ma is not None:
        pkt = parse_packet(d.data)
        mh = bytearray(pkt.payload)
        i = bytes(mh).index(bytes((9, 17, 1)) + SPI.to_bytes(4, "big"))
        data = bytes(mh[:4]) + b"\0\0" + bytes(mh[6:i + 7])
        want = hmac.new(KEY, d.dst.packed + HA.packed + data, hashlib.sha1).digest()[:12]
        ok = bytes(ma.authdata) == want and ma.mspi == SPI
        decode_mh(pkt.payload, *pkt.pseudo_header_addresses())  # checksum right too
    return b.status, b.seq, (rp.timestamp if rp is not None else None), ok


def register(c):
    c.receive_packet(signed_bu(7), IFINDEX, 0.0, WALL)
    (add,) = drain(c)
    assert add == reg.AddBinding(HOA, COA, 4000)
    c.action_done(add, 0.0)
    assert ba(c) == (0, 7, auth.ntp_from_unix(WALL), True)


def test_signed_bu_registers_and_the_ba_is_signed_with_the_echoed_timestamp():
    c = core()
    register(c)
    assert c.stats["BU authenticated"] == 1


def test_three_packet_hijack_fails_against_a_protected_address():
    c = core()
    register(c)
    # 1: a BU out of the window. Unprotected this earns 135 with our last
    # sequence number; here the authenticator is checked first: 146, seq as sent
    c.receive_packet(plain_bu(40000, coa=EVIL), IFINDEX, 1.0, WALL + 1)
    status, seq, _, signed = ba(c, 1.0)
    assert (status, seq, signed) == (BAStatus.MIPV6_AUTH_FAIL, 40000, True)
    # 2: seq + 1 with an Alternate CoA pointing at a third party
    c.receive_packet(plain_bu(8, coa=EVIL, options=[AlternateCareOfAddress(VICTIM)]),
                     IFINDEX, 2.0, WALL + 2)
    assert ba(c, 2.0)[0] == BAStatus.MIPV6_AUTH_FAIL
    # 3: lifetime 0 to delete it
    c.receive_packet(plain_bu(9, lifetime=0, coa=EVIL), IFINDEX, 3.0, WALL + 3)
    assert ba(c, 3.0)[0] == BAStatus.MIPV6_AUTH_FAIL
    assert drain(c) == []
    b = c.cache.get(HOA)
    assert (b.coa, b.sequence) == (COA, 7)
    assert c.stats["BU authentication failed"] == 3


def test_the_same_hijack_works_on_an_unprotected_address():
    # what the protection is for: without a key the three packets succeed
    c = core()
    c.receive_packet(plain_bu(7, hoa=OPEN_HOA), IFINDEX, 0.0, WALL)
    c.action_done(drain(c)[0], 0.0)
    c.datagrams_to_send(0.0)
    c.receive_packet(plain_bu(40000, coa=EVIL, hoa=OPEN_HOA), IFINDEX, 1.0, WALL)
    (d,) = c.datagrams_to_send(1.0)
    assert ScapyIPv6(d.data)[MIP6MH_BA].seq == 7  # the leak
    c.receive_packet(plain_bu(8, coa=EVIL, hoa=OPEN_HOA,
                              options=[AlternateCareOfAddress(VICTIM)]), IFINDEX, 2.0, WALL)
    drain(c)
    assert c.cache.get(OPEN_HOA).coa == VICTIM


def test_wrong_key_or_spi_is_146_and_changes_nothing():
    c = core()
    register(c)
    c.receive_packet(signed_bu(8, coa=COA2, key=b"not the key"), IFINDEX, 1.0, WALL + 1)
    assert ba(c, 1.0)[0] == BAStatus.MIPV6_AUTH_FAIL
    c.receive_packet(signed_bu(8, coa=COA2, spi=SPI + 1), IFINDEX, 1.0, WALL + 1)
    assert ba(c, 1.0)[0] == BAStatus.MIPV6_AUTH_FAIL
    assert drain(c) == [] and c.cache.get(HOA).coa == COA


def test_a_replayed_bu_gets_145_with_our_clock():
    c = core()
    register(c)
    # the very same packet again, a second later: same timestamp
    c.receive_packet(signed_bu(7), IFINDEX, 1.0, WALL + 1)
    status, _, stamp, signed = ba(c, 1.0)
    assert (status, signed) == (BAStatus.MIPV6_MESG_ID_REQD, True)
    assert stamp == auth.ntp_from_unix(WALL + 1)
    assert c.stats["BU replay check failed"] == 1
    # a fresh one moves the binding
    c.receive_packet(signed_bu(8, coa=COA2, stamp=WALL + 2), IFINDEX, 2.0, WALL + 2)
    assert drain(c) == [reg.MoveBinding(HOA, COA, COA2, 4000)]


def test_timestamp_outside_the_window_or_missing_is_145():
    c = core(replay_window=7.0)
    c.receive_packet(signed_bu(1, stamp=WALL - 30), IFINDEX, 0.0, WALL)
    status, _, stamp, _ = ba(c)
    assert status == BAStatus.MIPV6_MESG_ID_REQD and stamp == auth.ntp_from_unix(WALL)
    c.receive_packet(signed_bu(1, stamp=None), IFINDEX, 0.0, WALL)
    assert ba(c)[0] == BAStatus.MIPV6_MESG_ID_REQD
    # within the window, a mobile node a few seconds behind is fine
    c.receive_packet(signed_bu(1, stamp=WALL - 5), IFINDEX, 0.0, WALL)
    assert drain(c) == [reg.AddBinding(HOA, COA, 4000)]


def test_without_a_wall_clock_a_protected_bu_is_dropped():
    c = core()
    c.receive_packet(signed_bu(1), IFINDEX, 0.0)
    assert c.datagrams_to_send(0.0) == [] and drain(c) == []
    assert c.stats["BU dropped, no wall clock"] == 1


def test_refusals_are_logged_once_per_source_per_minute(caplog):
    c = core()
    caplog.set_level(logging.WARNING, logger="denali.ha")
    for t in (0.0, 10.0, 59.0, 61.0):
        c.receive_packet(plain_bu(1, coa=EVIL), IFINDEX, t, WALL + t)
    c.receive_packet(plain_bu(1, coa=COA2), IFINDEX, 61.0, WALL + 61)
    lines = [r for r in caplog.records if "refused 146" in r.getMessage()]
    assert len(lines) == 3  # EVIL at 0 and 61, COA2 once
    assert c.stats["BU authentication failed"] == 5
