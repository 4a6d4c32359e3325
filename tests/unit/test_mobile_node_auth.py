"""RFC 4285 at both ends: our mobile node core against our home agent core,
bytes passed by hand, each with its own wall clock (numbers, no sleeps)."""

from ipaddress import IPv6Network

from ha.core import mobile_node as mn
from ha.core import registration as reg
from ha.core.home_agent import HomeAgentCore, HomeAgentSettings
from ha.wire import auth
from ha.wire.ipv6 import build_ba_packet, parse_packet
from ha.wire.mobility import BAStatus, BindingAck, ReplayProtection, decode_mh, encode_mh
from tests.unit import test_mobile_node as mn_tests
from tests.unit.test_mobile_node import COA, HA, HOA, R_FOREIGN, at_home, hear, ra

HOME = IPv6Network("2001:db8::/64")
FOREIGN = IPv6Network("2001:db8:1::/64")
KEY = bytes.fromhex("0123456789abcdef0123456789abcdef")
SPI = 0x1000
WALL = 1_800_000_000.0


def home_agent(key=KEY):
    rules = reg.HomeAgentConfig(served_prefixes=(HOME,), ha_addresses=(HA,), dad_enabled=False)
    return HomeAgentCore(HomeAgentSettings(ha_address=HA, rules=rules,
                                           auth={HOA.ip: auth.MnHaSecret(SPI, key)}),
                         capacity=10)


def away_node(key=KEY, wall_offset=0.0):
    """At home, then moved to FOREIGN: the first BU is waiting to go out."""
    node = at_home(0.0, secret=auth.MnHaSecret(SPI, key))
    node.set_wall_clock(WALL + wall_offset, 0.0)
    hear(node, ra(FOREIGN, interval_ms=0, lifetime=1800), R_FOREIGN, 1.0)
    node.handle_timer(2.5)
    node.set_addresses([COA], 2.6)
    while node.next_action() is not None:
        pass
    return node


def bus(node, now):
    return [d.data for d in node.datagrams_to_send(now) if not d.icmpv6]


def exchange(node, ha, now, wall):
    """Every BU the node has out goes to the HA; the HA's actions are done and
    its BAs go back. Returns the BA statuses."""
    statuses = []
    for data in bus(node, now):
        ha.receive_packet(data, 0, now, wall)
        while (a := ha.next_action()) is not None:
            ha.action_done(a, now)
        for d in ha.datagrams_to_send(now):
            pkt = parse_packet(d.data)
            statuses.append(decode_mh(pkt.payload).status)
            node.receive_packet(d.data, now)
    return statuses


def test_signed_registration_between_our_two_cores():
    node, ha = away_node(), home_agent()
    (bu,) = bus(node, 2.6)
    pkt = parse_packet(bu)
    assert auth.verify_mh(pkt.payload, KEY, SPI, COA, HA) is None  # signed over the CoA
    ha.receive_packet(bu, 0, 2.6, WALL + 2.6)
    ha.action_done(ha.next_action(), 2.6)
    for d in ha.datagrams_to_send(2.6):
        node.receive_packet(d.data, 2.6)
    assert node.state is mn.RegState.REGISTERED and node.counters["ba_accepted"] == 1
    assert ha.cache.get(HOA.ip).coa == COA


def test_wrong_key_registers_nothing_and_the_mn_ignores_the_ba_it_cannot_verify():
    node, ha = away_node(key=b"guess"), home_agent()
    assert exchange(node, ha, 2.6, WALL + 2.6) == [BAStatus.MIPV6_AUTH_FAIL]
    assert HOA.ip not in ha.cache
    assert node.state is mn.RegState.REGISTERING and node.counters["ba_auth_failed"] == 1


def test_a_mobile_node_with_a_wrong_clock_resynchronises_on_145():
    node, ha = away_node(wall_offset=-3600.0), home_agent()
    # 145 with the HA's clock; the MN sends again at once with a corrected stamp
    assert exchange(node, ha, 2.6, WALL + 2.6) == [BAStatus.MIPV6_MESG_ID_REQD]
    assert node.counters["ba_145_resync"] == 1
    assert exchange(node, ha, 2.7, WALL + 2.7) == [BAStatus.ACCEPTED]
    assert node.state is mn.RegState.REGISTERED


def test_a_forged_or_replayed_ba_is_ignored():
    node = away_node()
    b = node.bul
    # unsigned: what anyone on the path could send
    ba = BindingAck(BAStatus.ACCEPTED, b.sequence, b.lifetime // 4,
                    options=[ReplayProtection(b.stamp)])
    node.receive_packet(build_ba_packet(HA, COA, HOA.ip, encode_mh(ba, HA, HOA.ip)), 3.0)
    # signed but with an old timestamp (a BA recorded earlier)
    old = BindingAck(BAStatus.ACCEPTED, b.sequence, b.lifetime // 4,
                     options=[ReplayProtection(b.stamp - 1)])
    mh = auth.encode_signed(old, KEY, SPI, COA, HA, HA, HOA.ip)
    node.receive_packet(build_ba_packet(HA, COA, HOA.ip, mh), 3.0)
    assert node.state is mn.RegState.REGISTERING
    assert node.counters["ba_auth_failed"] == 2 and node.counters["ba_accepted"] == 0


def test_deregistration_from_home_is_signed_and_its_ba_verified():
    # section 11.5.4: from the home address, no HAO; RFC 4285's care-of address
    # is then the home address at both ends
    node, ha = away_node(), home_agent()
    assert exchange(node, ha, 2.6, WALL + 2.6) == [BAStatus.ACCEPTED]
    hear(node, ra(HOME, home_agent=True), mn_tests.R_HOME, 10.0)
    node.handle_timer(11.5)
    while node.next_action() is not None:
        pass
    assert exchange(node, ha, 11.5, WALL + 11.5) == [BAStatus.ACCEPTED]
    assert HOA.ip not in ha.cache
    assert node.state is mn.RegState.IDLE and node.counters["ba_auth_failed"] == 0
