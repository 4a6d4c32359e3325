"""tunnel_during_dad: the home agent intercepts and tunnels for a new binding
while its DAD runs, and sends the BA only when DAD has passed (RFC 6275
section 10.3.1 still holds: a collision is 134 and nothing of the binding stays)."""

from ipaddress import IPv6Address

import pytest

from ha.core import registration as reg
from ha.core.binding_cache import BindingState
from ha.core.home_agent import Datagram, JoinGroup, LeaveGroup, solicited_node
from ha.wire import icmpv6 as nd
from ha.wire.ipv6 import parse_packet
from ha.wire.mobility import BAStatus, decode_mh

from tests.unit.test_home_agent_core import (COA, COA2, HA, HOA, IFINDEX, actions, bu_bytes,
                                             core, ns_from_unspecified)

A = IPv6Address


def ba(d: Datagram):
    pkt = parse_packet(d.data)
    m = decode_mh(pkt.payload, *pkt.pseudo_header_addresses())
    return m.status, m.sequence


def bas(c, now):
    """The BAs among the datagrams (the rest are DAD probes and NAs: ICMPv6)."""
    return [ba(d) for d in c.datagrams_to_send(now) if d.data[6] != 58]


def started(c, seq=5, coa=COA, now=0.0):
    """A BU for a new binding; the group joined: the probe is out."""
    c.receive_packet(bu_bytes(seq, coa=coa), IFINDEX, now)
    acts = actions(c)
    join = next(a for a in acts if isinstance(a, JoinGroup))
    c.action_done(join, now)
    return [a for a in acts if not isinstance(a, JoinGroup)]


def only_probes(c, now):
    out = c.datagrams_to_send(now)
    assert all(d.data[40] == 135 for d in out), "nothing but NS probes before DAD ends"
    return out


def test_the_binding_is_set_up_as_dad_starts_and_the_ba_waits_for_dad():
    c = core(dad=True, tunnel_during_dad=True)
    (add,) = started(c)
    assert add == reg.AddBinding(HOA, COA, 4000)
    assert len(only_probes(c, 0.0)) == 1
    c.action_done(add, 0.01)  # tunnel, route and proxy are in: traffic flows
    assert c.datagrams_to_send(0.01) == []  # but no BA while DAD runs
    assert c.cache.get(HOA).state is BindingState.DAD_PENDING
    c.handle_timer(1.0)
    assert actions(c) == [LeaveGroup(solicited_node(HOA))]  # nothing more to ask the kernel
    (d,) = c.datagrams_to_send(1.0)
    assert ba(d) == (BAStatus.ACCEPTED, 5)
    assert c.cache.get(HOA).state is BindingState.REGISTERED


def test_without_the_setting_nothing_is_forwarded_before_dad_ends():
    c = core(dad=True)
    assert started(c) == []
    c.handle_timer(1.0)
    assert reg.AddBinding(HOA, COA, 4000) in actions(c)


def test_the_ba_waits_for_the_early_binding_if_dad_ends_first():
    c = core(dad=True, tunnel_during_dad=True)
    (add,) = started(c)
    c.handle_timer(1.0)
    actions(c)
    assert bas(c, 1.0) == []  # no BA yet
    c.action_done(add, 1.2)
    (d,) = c.datagrams_to_send(1.2)
    assert ba(d) == (BAStatus.ACCEPTED, 5)


def test_a_collision_still_gets_134_and_the_binding_is_torn_down():
    c = core(dad=True, tunnel_during_dad=True)
    (add,) = started(c)
    c.action_done(add, 0.01)
    only_probes(c, 0.01)
    # the owner answers the probe: an NA from another node on the home link
    na = nd.encode_icmpv6(nd.NeighborAdvertisement(HOA, False, False, True), A("fe80::9"),
                          A("ff02::1"))
    c.receive_icmpv6(na, A("fe80::9"), A("ff02::1"), 255, 0.3)
    assert reg.DeleteBinding(HOA, COA) in actions(c)
    (d,) = c.datagrams_to_send(0.3)
    assert ba(d)[0] == BAStatus.DUPLICATE_ADDRESS_DETECTION_FAILED
    assert HOA not in c.cache


def test_our_own_proxy_answering_the_probe_is_not_a_collision():
    c = core(dad=True, tunnel_during_dad=True)
    (add,) = started(c)
    c.action_done(add, 0.01)
    only_probes(c, 0.01)
    na = nd.encode_icmpv6(nd.NeighborAdvertisement(HOA, True, False, False), HA, A("ff02::1"))
    c.receive_icmpv6(na, HA, A("ff02::1"), 255, 0.5)
    assert c.cache.get(HOA).state is BindingState.DAD_PENDING
    c.handle_timer(1.0)
    actions(c)
    (d,) = c.datagrams_to_send(1.0)
    assert ba(d) == (BAStatus.ACCEPTED, 5)


def test_deregistration_during_dad_tears_the_early_binding_down():
    c = core(dad=True, tunnel_during_dad=True)
    (add,) = started(c)
    c.action_done(add, 0.01)
    c.receive_packet(bu_bytes(6, lifetime=0), IFINDEX, 0.5)
    acts = actions(c)
    assert reg.DeleteBinding(HOA, COA) in acts
    assert bas(c, 0.5) == [(BAStatus.ACCEPTED, 6)]
    assert c.get_timer() is None


def test_a_new_care_of_address_during_dad_moves_the_early_binding():
    c = core(dad=True, tunnel_during_dad=True)
    (add,) = started(c)
    c.action_done(add, 0.01)
    c.receive_packet(bu_bytes(6, coa=COA2), IFINDEX, 0.4)
    (move,) = actions(c)
    assert move == reg.MoveBinding(HOA, COA, COA2, 4000)
    c.action_done(move, 0.41)
    c.handle_timer(1.0)
    actions(c)
    assert bas(c, 1.0) == [(BAStatus.ACCEPTED, 6)]
    assert c.cache.get(HOA).coa == COA2


def test_a_failed_early_binding_leaves_the_registration_to_dad():
    c = core(dad=True, tunnel_during_dad=True)
    (add,) = started(c)
    c.action_failed(add, OSError(12, "Cannot allocate memory"), 0.01)
    assert actions(c) == [reg.DeleteBinding(HOA, COA)]  # whatever reached the kernel
    assert c.cache.get(HOA).state is BindingState.DAD_PENDING
    c.handle_timer(1.0)
    acts = actions(c)
    again = next(a for a in acts if isinstance(a, reg.AddBinding))
    c.action_done(again, 1.01)
    assert bas(c, 1.01) == [(BAStatus.ACCEPTED, 5)]


def test_stop_during_dad_removes_the_early_binding():
    c = core(dad=True, tunnel_during_dad=True)
    (add,) = started(c)
    c.action_done(add, 0.01)
    c.stop(0.2)
    assert reg.DeleteBinding(HOA, COA) in actions(c)
