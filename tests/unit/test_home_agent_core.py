"""HomeAgentCore driven with bytes and numbers: no sockets, no sleeps.

What goes in is wire bytes built by our encoders; what comes out is read
back by scapy (an independent dissector) as well as by our own parser.
"""

import dataclasses
import os
from ipaddress import IPv6Address, IPv6Network

import pytest

from ha.core import registration as reg
from ha.core.binding_cache import BindingState
from ha.core.home_agent import (Datagram, HomeAgentCore, HomeAgentSettings, JoinGroup,
                                LeaveGroup, solicited_node)
from ha.wire import icmpv6 as nd
from ha.wire.ipv6 import IPv6Header, Proto, build_bu_packet, dstopts_with_hao, parse_packet
from ha.wire.mobility import BAStatus, BindingUpdate, decode_mh, encode_mh

pytest.importorskip("scapy")
from scapy.layers.inet6 import IPv6 as ScapyIPv6, MIP6MH_BA, MIP6MH_BE  # noqa: E402

A = IPv6Address
HA = A("2001:db8::")
HOA = A("2001:db8::beef")
COA = A("2001:db8:1::5")
COA2 = A("2001:db8:2::7")
HOME = IPv6Network("2001:db8::/64")
IFINDEX = 3


def core(*, dad=False, **kw) -> HomeAgentCore:
    rules = reg.HomeAgentConfig(served_prefixes=(HOME,), ha_addresses=(HA,), dad_enabled=dad)
    return HomeAgentCore(HomeAgentSettings(ha_address=HA, home_ifindex=IFINDEX, rules=rules,
                                           **kw), capacity=100)


def bu_bytes(seq=1, lifetime=1000, *, coa=COA, hoa=HOA, ack=True) -> bytes:
    bu = BindingUpdate(sequence=seq, lifetime=lifetime, ack=ack, home_registration=True)
    return build_bu_packet(coa, HA, hoa, encode_mh(bu, hoa, HA))


def actions(c) -> list:
    out = []
    while (a := c.next_action()) is not None:
        out.append(a)
    return out


def ba_of(d: Datagram):
    """(status, sequence, lifetime units, hoa in the RH2) as scapy reads the packet."""
    p = ScapyIPv6(d.data)
    ba = p[MIP6MH_BA]
    # our own decoder agrees, checksum over (HA, HoA) included
    pkt = parse_packet(d.data)
    ours = decode_mh(pkt.payload, *pkt.pseudo_header_addresses())
    assert (ours.status, ours.sequence) == (ba.status, ba.seq)
    return ba.status, ba.seq, ba.mhtime, A(pkt.routing_address)


def test_ba_for_a_new_binding_waits_for_the_datapath():
    c = core()
    c.receive_packet(bu_bytes(7), IFINDEX, now=0.0)
    assert c.datagrams_to_send(0.0) == []  # nothing promised before the kernel has it
    (add,) = actions(c)
    assert add == reg.AddBinding(HOA, COA, 4000)
    c.action_done(add, 0.01)
    (d,) = c.datagrams_to_send(0.01)
    assert d.dst == COA and ba_of(d) == (0, 7, 1000, HOA)
    assert c.cache.get(HOA).state is BindingState.REGISTERED


def test_datapath_failure_is_refused_with_130_and_rolled_back():
    c = core()
    c.receive_packet(bu_bytes(7), IFINDEX, 0.0)
    (add,) = actions(c)
    c.action_failed(add, OSError(105, "No buffer space"), 0.01)
    (d,) = c.datagrams_to_send(0.01)
    assert ba_of(d)[:2] == (BAStatus.INSUFFICIENT_RESOURCES, 7)
    assert HOA not in c.cache
    # whatever part of the add reached the kernel is taken out again
    assert actions(c) == [reg.DeleteBinding(HOA, COA)]
    # and the next BU tries again instead of being taken for a refresh
    c.receive_packet(bu_bytes(8), IFINDEX, 1.0)
    assert actions(c) == [reg.AddBinding(HOA, COA, 4000)]


def test_failed_move_keeps_the_old_care_of_address():
    c = core()
    c.receive_packet(bu_bytes(1), IFINDEX, 0.0)
    c.action_done(actions(c)[0], 0.0)
    c.datagrams_to_send(0.0)
    c.receive_packet(bu_bytes(2, coa=COA2), IFINDEX, 5.0)
    (move,) = actions(c)
    assert move == reg.MoveBinding(HOA, COA, COA2, 4000)
    c.action_failed(move, OSError("netlink"), 5.0)
    (d,) = c.datagrams_to_send(5.0)
    assert d.dst == COA2 and ba_of(d)[0] == BAStatus.INSUFFICIENT_RESOURCES
    b = c.cache.get(HOA)
    assert b.coa == COA and b.sequence == 1


def test_a_bit_clear_still_gets_a_ba():
    c = core()
    c.receive_packet(bu_bytes(3, ack=False), IFINDEX, 0.0)
    c.action_done(actions(c)[0], 0.0)
    (d,) = c.datagrams_to_send(0.0)
    assert ba_of(d)[:2] == (0, 3)


def test_refresh_is_answered_at_once():
    c = core()
    c.receive_packet(bu_bytes(1), IFINDEX, 0.0)
    c.action_done(actions(c)[0], 0.0)
    c.datagrams_to_send(0.0)
    c.receive_packet(bu_bytes(2, lifetime=10), IFINDEX, 3.0)
    assert actions(c) == []
    (d,) = c.datagrams_to_send(3.0)
    assert ba_of(d) == (0, 2, 10, HOA)


def test_expiry_is_driven_by_the_timer_not_a_poll():
    c = core()
    assert c.get_timer() is None
    c.receive_packet(bu_bytes(1, lifetime=25), IFINDEX, 100.0)  # 100 s
    c.action_done(actions(c)[0], 100.0)
    assert c.get_timer() == 200.0
    c.handle_timer(199.0)
    assert actions(c) == [] and HOA in c.cache
    c.handle_timer(200.0)
    assert actions(c) == [reg.DeleteBinding(HOA, COA)]
    assert HOA not in c.cache and c.get_timer() is None
    assert c.stats["bindings expired"] == 1


def test_deregistration_is_answered_and_torn_down():
    c = core()
    c.receive_packet(bu_bytes(1), IFINDEX, 0.0)
    c.action_done(actions(c)[0], 0.0)
    c.datagrams_to_send(0.0)
    c.receive_packet(bu_bytes(2, lifetime=0), IFINDEX, 1.0)
    assert actions(c) == [reg.DeleteBinding(HOA, COA)]
    (d,) = c.datagrams_to_send(1.0)
    assert ba_of(d) == (0, 2, 0, HOA)


# ---------------------------------------------------------------------- DAD


def ns_from_unspecified(target) -> bytes:
    return nd.encode_icmpv6(nd.NeighborSolicitation(target=target), A("::"), solicited_node(target))


def test_dad_joins_probes_and_answers_after_retrans_timer():
    c = core(dad=True)
    c.receive_packet(bu_bytes(5), IFINDEX, 0.0)
    (join,) = actions(c)
    assert join == JoinGroup(solicited_node(HOA)) == JoinGroup(A("ff02::1:ff00:beef"))
    assert c.datagrams_to_send(0.0) == []  # no probe before the group is joined
    c.action_done(join, 0.0)
    (probe,) = c.datagrams_to_send(0.0)
    p = ScapyIPv6(probe.data)
    assert p.src == "::" and p.dst == "ff02::1:ff00:beef" and p.hlim == 255
    assert p["ICMPv6ND_NS"].tgt == str(HOA) and probe.ifindex == IFINDEX
    assert c.cache.get(HOA).state is BindingState.DAD_PENDING
    assert c.get_timer() == 1.0
    c.handle_timer(1.0)
    acts = actions(c)
    assert acts == [LeaveGroup(solicited_node(HOA)), reg.AddBinding(HOA, COA, 4000)]
    c.action_done(acts[1], 1.0)
    (d,) = c.datagrams_to_send(1.0)
    assert ba_of(d)[:2] == (0, 5)


def test_dad_collision_gets_134():
    c = core(dad=True)
    c.receive_packet(bu_bytes(5), IFINDEX, 0.0)
    c.action_done(actions(c)[0], 0.0)
    c.datagrams_to_send(0.0)
    # someone on the home link probes the same address
    c.receive_icmpv6(ns_from_unspecified(HOA), A("::"), solicited_node(HOA), 255, 0.4)
    assert actions(c) == [LeaveGroup(solicited_node(HOA))]
    (d,) = c.datagrams_to_send(0.4)
    assert ba_of(d)[0] == BAStatus.DUPLICATE_ADDRESS_DETECTION_FAILED
    assert HOA not in c.cache and c.get_timer() is None


def test_dad_ignores_nd_from_off_link():
    c = core(dad=True)
    c.receive_packet(bu_bytes(5), IFINDEX, 0.0)
    c.action_done(actions(c)[0], 0.0)
    na = nd.encode_icmpv6(nd.NeighborAdvertisement(HOA, False, False, True), A("fe80::9"),
                          A("ff02::1"))
    c.receive_icmpv6(na, A("fe80::9"), A("ff02::1"), 64, 0.5)  # hop limit 64: forged
    assert c.cache.get(HOA).state is BindingState.DAD_PENDING
    c.receive_icmpv6(na, A("fe80::9"), A("ff02::1"), 255, 0.6)
    assert HOA not in c.cache


def test_group_join_failure_refuses_with_130_and_leaves_nothing_pending():
    c = core(dad=True)
    c.receive_packet(bu_bytes(5), IFINDEX, 0.0)
    (join,) = actions(c)
    c.action_failed(join, OSError(105, "No buffer space available"), 0.0)
    (d,) = c.datagrams_to_send(0.0)
    assert ba_of(d)[:2] == (BAStatus.INSUFFICIENT_RESOURCES, 5)
    assert HOA not in c.cache and actions(c) == []
    # the mobile node's retransmission gets a fresh try
    c.receive_packet(bu_bytes(6), IFINDEX, 1.5)
    assert actions(c) == [JoinGroup(solicited_node(HOA))]


def test_concurrent_dad_is_bounded():
    c = core(dad=True, max_concurrent_dad=2)
    for i in range(3):
        c.receive_packet(bu_bytes(1, hoa=A(f"2001:db8::{i + 1:x}:1")), IFINDEX, 0.0)
    assert len([a for a in actions(c) if isinstance(a, JoinGroup)]) == 2
    (d,) = c.datagrams_to_send(0.0)
    assert ba_of(d)[0] == BAStatus.INSUFFICIENT_RESOURCES
    assert len(c.cache) == 2


def test_deregistration_during_dad_ends_the_probe():
    c = core(dad=True)
    c.receive_packet(bu_bytes(5), IFINDEX, 0.0)
    c.action_done(actions(c)[0], 0.0)
    c.datagrams_to_send(0.0)
    c.receive_packet(bu_bytes(6, lifetime=0), IFINDEX, 0.5)
    assert actions(c) == [LeaveGroup(solicited_node(HOA))]
    (d,) = c.datagrams_to_send(0.5)
    assert ba_of(d)[:2] == (0, 6)
    assert c.get_timer() is None


# ------------------------------------------------------------ errors (9.2, 9.3)


def test_unknown_mh_type_gets_binding_error_2():
    c = core()
    mh = bytearray(encode_mh(BindingUpdate(sequence=1, lifetime=1), HOA, HA))
    mh[2] = 42  # an MH type nobody defined
    mh[4:6] = b"\0\0"
    from ha.wire.checksum import upper_layer_checksum
    mh[4:6] = upper_layer_checksum(HOA, HA, Proto.MH, bytes(mh)).to_bytes(2, "big")
    dopt = dstopts_with_hao(HOA, Proto.MH)
    pkt = IPv6Header(COA, HA, Proto.DSTOPTS, len(dopt) + len(mh), 64).encode() + dopt + mh
    c.receive_packet(pkt, IFINDEX, 0.0)
    (d,) = c.datagrams_to_send(0.0)
    be = ScapyIPv6(d.data)[MIP6MH_BE]
    assert be.status == 2 and d.dst == COA and be.ha == str(HOA)


def test_hao_without_binding_gets_binding_error_1_rate_limited():
    c = core()
    body = nd.encode_icmpv6(nd.EchoRequest(1, 1, b"x"), HOA, HA)
    dopt = dstopts_with_hao(HOA, Proto.ICMPV6)
    pkt = IPv6Header(COA, HA, Proto.DSTOPTS, len(dopt) + len(body), 64).encode() + dopt + body
    c.receive_packet(pkt, IFINDEX, 0.0)
    c.receive_packet(pkt, IFINDEX, 0.1)  # within the per-destination second: not answered
    (d,) = c.datagrams_to_send(0.1)
    assert ScapyIPv6(d.data)[MIP6MH_BE].status == 1
    assert c.stats["HAO without binding"] == 2 and c.stats["errors rate limited"] == 1


def test_bad_mh_header_length_gets_parameter_problem_pointing_at_it():
    c = core()
    raw = bytearray(bu_bytes(1))
    mh_at = 40 + 24  # after the fixed header and the 24-octet destination options
    raw[mh_at + 1] = 0  # Header Len 0: shorter than a BU can be
    c.receive_packet(bytes(raw), IFINDEX, 0.0)
    (d,) = c.datagrams_to_send(0.0)
    p = ScapyIPv6(d.data)
    pp = p["ICMPv6ParamProblem"]
    assert pp.code == 0 and pp.ptr == mh_at + 1 and d.dst == COA
    assert c.stats["malformed dropped"] == 1


def test_truncated_packet_is_counted_and_dropped():
    c = core()
    c.receive_packet(bu_bytes(1)[:50], IFINDEX, 0.0)
    assert c.datagrams_to_send(0.0) == [] and actions(c) == []
    assert c.stats["malformed dropped"] == 1


# ------------------------------------------------------- discovery (10.5, 10.6)


def test_dhaad_request_on_the_anycast_address_is_answered_with_us():
    c = core()
    anycast = A("2001:db8::fdff:ffff:ffff:fffe")
    req = nd.encode_icmpv6(nd.DHAADRequest(identifier=99), COA, anycast)
    c.receive_icmpv6(req, COA, anycast, 64, 0.0)
    (d,) = c.datagrams_to_send(0.0)
    p = ScapyIPv6(d.data)
    assert p.src == str(HA) and p.dst == str(COA)
    rep = p["ICMPv6HAADReply"]
    assert rep.id == 99 and rep.addresses == [str(HA)]
    # a request to some other address is not ours to answer
    c.receive_icmpv6(req, COA, A("2001:db8:5::fdff:ffff:ffff:fffe"), 64, 1.0)
    assert c.datagrams_to_send(1.0) == []


def test_mobile_prefix_solicitation_gets_the_prefix_lifetimes_via_rh2():
    c = core(prefix_lifetimes={HOME: (7200, 3600)})
    c.receive_packet(bu_bytes(1), IFINDEX, 0.0)
    c.action_done(actions(c)[0], 0.0)
    c.datagrams_to_send(0.0)
    body = nd.encode_icmpv6(nd.MobilePrefixSolicitation(identifier=5), HOA, HA)
    dopt = dstopts_with_hao(HOA, Proto.ICMPV6)
    pkt = IPv6Header(COA, HA, Proto.DSTOPTS, len(dopt) + len(body), 64).encode() + dopt + body
    c.receive_packet(pkt, IFINDEX, 1.0)
    (d,) = c.datagrams_to_send(1.0)
    p = ScapyIPv6(d.data)
    assert p.dst == str(COA) and p["IPv6ExtHdrRouting"].addresses == [str(HOA)]
    mpa = p["ICMPv6MPAdv"]
    assert mpa.id == 5
    pio = p["ICMPv6NDOptPrefixInfo"]
    assert (pio.validlifetime, pio.preferredlifetime) == (7200, 3600)
    assert pio.R == 1 and pio.prefix == str(HA)  # section 7.2: the router's whole address


def test_router_advertisements_feed_the_home_agent_list_only_from_the_link():
    c = core()
    ra = nd.encode_icmpv6(nd.RouterAdvertisement(home_agent=True, router_lifetime=600),
                          A("fe80::2"), A("ff02::1"))
    c.receive_icmpv6(ra, A("fe80::2"), A("ff02::1"), 64, 0.0)
    assert len(c.home_agents) == 0
    c.receive_icmpv6(ra, A("fe80::2"), A("ff02::1"), 255, 0.0)
    assert len(c.home_agents) == 1 and c.get_timer() == 600.0
    c.handle_timer(600.0)
    assert len(c.home_agents) == 0


def test_stop_tears_every_binding_down():
    c = core()
    for i, hoa in enumerate((HOA, A("2001:db8::2"))):
        c.receive_packet(bu_bytes(1, hoa=hoa), IFINDEX, 0.0)
    for a in actions(c):
        c.action_done(a, 0.0)
    c.stop(1.0)
    assert sorted(a.hoa for a in actions(c)) == sorted((HOA, A("2001:db8::2")))
    assert len(c.cache) == 0


def test_mpa_lifetimes_are_read_from_the_ra_senders_configuration():
    from ha.daemon.service import advertised_lifetimes
    from ha.daemon.settings import Settings
    text = ("interface wlan0 { AdvSendAdvert on; AdvHomeAgentFlag on;\n"
            "  prefix 2001:db8::/64 { AdvValidLifetime 7200; AdvPreferredLifetime 3600; }; };\n"
            "interface wlan1 { AdvSendAdvert on; prefix ::/64 { }; };\n")
    s = Settings(source="t", kind="mip6d", ha_interface="wlan0", radvd_text=text)
    assert advertised_lifetimes(s) == {HOME: (7200, 3600)}
    s.ha_interface = "wlan1"  # radvd's ::/64: every prefix of the interface
    assert advertised_lifetimes(s) == {None: (86400, 14400)}


def test_restored_bindings_are_rebuilt_without_a_ba_and_bad_ones_dropped(tmp_path):
    from ha.core.binding_cache import Binding
    from ha.daemon.binding_store import BindingStore
    clock = [1000.0]
    store = BindingStore(str(tmp_path), clock=lambda: clock[0])
    keep = Binding(HOA, COA, 4000, registered_at=900.0, expires_at=4900.0, sequence=41)
    stale = Binding(A("2001:db8::2"), COA, 4, registered_at=0.0, expires_at=4.0, sequence=1)
    foreign = Binding(A("2001:db8:9::1"), COA, 4000, registered_at=900.0, expires_at=4900.0,
                      sequence=1)
    store.save([keep, stale, foreign])
    assert oct(os.stat(store.path).st_mode & 0o777) == "0o600"
    clock[0] = 50.0  # the next process: another monotonic origin, the same wall clock
    loaded = store.load()
    assert [b.hoa for b in loaded] == [HOA, A("2001:db8::2"), A("2001:db8:9::1")]
    assert abs(loaded[0].expires_at - 3950.0) < 1.0
    c = core()
    assert c.restore(loaded, 50.0) == 1
    assert actions(c) == [reg.AddBinding(HOA, COA, 4000)]
    assert c.datagrams_to_send(50.0) == []  # nobody asked: no BA
    assert c.cache.get(HOA).sequence == 41
    # the mobile node's next refresh is in sequence, as if nothing had happened
    c.receive_packet(bu_bytes(42), IFINDEX, 60.0)
    (d,) = c.datagrams_to_send(60.0)
    assert ba_of(d)[:2] == (0, 42)


def test_a_damaged_state_file_is_ignored(tmp_path):
    from ha.daemon.binding_store import BindingStore
    store = BindingStore(str(tmp_path))
    with open(store.path, "w") as f:
        f.write("denali-bindings 2\nnot-an-address 2001:db8:1::5 4000 1.0 0.0 1 HA -\n")
    assert store.load() == []
    with open(store.path, "w") as f:
        f.write('{"version": 1, "bindings": []}')  # a file of another format
    assert store.load() == []


def registered_core(**kw):
    c = core(**kw)
    c.receive_packet(bu_bytes(1, lifetime=0xFFFF), IFINDEX, 0.0)
    c.action_done(actions(c)[0], 0.0)
    c.datagrams_to_send(0.0)
    return c


def mpa_of(d: Datagram):
    p = ScapyIPv6(d.data)
    assert p.dst == str(COA) and p["IPv6ExtHdrRouting"].addresses == [str(HOA)]
    pio = p["ICMPv6NDOptPrefixInfo"]
    return pio.prefix, pio.validlifetime, pio.preferredlifetime


def test_unsolicited_mpas_follow_the_schedule_of_10_6_2():
    c = registered_core(prefix_lifetimes={HOME: (7200, 3600)})
    due = c.get_timer()
    # MinMobPfxAdvInterval (600) plus up to MIN(MaxMobPfxAdvInterval, preferred) - 600
    assert 600.0 <= due <= 3600.0
    c.handle_timer(due - 1)
    assert c.datagrams_to_send(due - 1) == []
    c.handle_timer(due)
    (d,) = c.datagrams_to_send(due)
    assert mpa_of(d) == (str(HA), 7200, 3600)
    assert due + 600 <= c.get_timer() <= due + 3600  # and the next one is scheduled


def test_changed_prefix_lifetimes_reach_away_nodes_at_once():
    c = registered_core(prefix_lifetimes={HOME: (7200, 3600)})
    c.reload(dataclasses.replace(c.settings, prefix_lifetimes={HOME: (600, 0)}), 5.0)
    (d,) = c.datagrams_to_send(5.0)
    assert mpa_of(d) == (str(HA), 600, 0)  # a deprecated home prefix
    c.reload(dataclasses.replace(c.settings), 6.0)  # nothing changed: nothing sent
    assert c.datagrams_to_send(6.0) == []


def test_no_unsolicited_mpa_when_send_mob_pfx_advs_is_off():
    c = registered_core(send_mob_pfx_advs=False)
    assert c.get_timer() == c.cache.get(HOA).expires_at


def test_ba_to_a_mobile_node_back_home_has_no_routing_header():
    c = core()
    c.receive_packet(bu_bytes(1), IFINDEX, 0.0)
    c.action_done(actions(c)[0], 0.0)
    c.datagrams_to_send(0.0)
    # section 11.5.4: from the home address itself, no Home Address option
    bu = BindingUpdate(sequence=2, lifetime=0, ack=True, home_registration=True)
    mh = encode_mh(bu, HOA, HA)
    c.receive_packet(IPv6Header(HOA, HA, Proto.MH, len(mh), 64).encode() + mh, IFINDEX, 1.0)
    (d,) = c.datagrams_to_send(1.0)
    p = ScapyIPv6(d.data)
    assert p.dst == str(HOA) and p.nh == 135 and "IPv6ExtHdrRouting" not in p
    assert p[MIP6MH_BA].status == 0 and p[MIP6MH_BA].seq == 2
    pkt = parse_packet(d.data)
    assert decode_mh(pkt.payload, *pkt.pseudo_header_addresses()).sequence == 2  # checksum ok
