"""The mobile node's fast handover: OptimisticHandoff (the tunnel with the BU)
and the rtnetlink events that tell it of a link change at once."""

import struct

from ha.core import mobile_node as mn
from ha.net.link_events import (IFF_RUNNING, RTM_DELADDR, RTM_NEWADDR, RTM_NEWLINK,
                                parse_events)
from ha.wire.mobility import BAStatus

from tests.unit.test_mobile_node import COA, HA, HOA, ack, at_home, drain, move, of


def test_optimistic_handoff_brings_the_tunnel_up_with_the_bu():
    node = at_home(optimistic_handoff=True)
    acts = move(node, 1.0)
    assert of(acts, mn.TunnelUp) == [mn.TunnelUp(HOA.ip, COA, HA)]
    assert node.state is mn.RegState.REGISTERING  # the BA is still awaited
    assert ack(node, 3.0) == []  # the accepting BA changes nothing in the kernel
    assert node.state is mn.RegState.REGISTERED


def test_without_it_the_tunnel_waits_for_the_ba():
    node = at_home()
    assert of(move(node, 1.0), mn.TunnelUp) == []
    assert ack(node, 3.0) == [mn.TunnelUp(HOA.ip, COA, HA)]


def test_a_refusal_takes_the_optimistic_tunnel_down():
    node = at_home(optimistic_handoff=True)
    move(node, 1.0)
    acts = ack(node, 2.0, status=BAStatus.ADMINISTRATIVELY_PROHIBITED)
    assert of(acts, mn.TunnelDown) == [mn.TunnelDown(HOA.ip)]
    assert node.state is mn.RegState.REFUSED


def test_returning_home_before_the_ba_takes_the_optimistic_tunnel_down():
    from tests.unit.test_mobile_node import HOME, R_HOME, hear, ra
    node = at_home(optimistic_handoff=True)
    move(node, 1.0)
    node.link_down(2.0)
    node.link_up(2.1)
    hear(node, ra(HOME, home_agent=True), R_HOME, 2.2)
    acts = drain(node)
    assert mn.TunnelDown(HOA.ip) in acts and mn.HomeAddressOnLink(HOA, True) in acts
    assert node.state is mn.RegState.DEREGISTERING


def _nlmsg(kind: int, body: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body


def test_link_events_are_read_in_order_for_our_interface_only():
    down = _nlmsg(RTM_NEWLINK, struct.pack("=BxHiII", 10, 1, 7, 0x1003, 0))
    other = _nlmsg(RTM_NEWLINK, struct.pack("=BxHiII", 10, 1, 8, 0x1043, 0))
    up = _nlmsg(RTM_NEWLINK, struct.pack("=BxHiII", 10, 1, 7, 0x1003 | IFF_RUNNING, 0))
    assert parse_events(down + other + up, 7) == ([False, True], False)
    addr = _nlmsg(RTM_NEWADDR, struct.pack("=BBBBI", 10, 64, 0, 0, 7))
    addr4 = _nlmsg(RTM_DELADDR, struct.pack("=BBBBI", 2, 24, 0, 0, 7))
    assert parse_events(addr4, 7) == ([], False)
    assert parse_events(addr, 7) == ([], True)
    assert parse_events(addr, 8) == ([], False)
    # a truncated message ends the read without an exception
    assert parse_events(up[:20], 7) == ([], False)
