"""The mobile node core (ha/core/mobile_node.py) driven by hand, as bytes: RAs
as ICMPv6 messages, BAs and BRRs as whole IPv6 packets, with a clock that is
just a number; datagrams (decoded back here by the wire codec) and actions
out. No sockets."""

import random
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Interface, IPv6Network

import pytest

from ha.core import mobile_node as mn
from ha.wire.icmpv6 import (INFINITY, AdvertisementInterval, NeighborAdvertisement,
                            PrefixInformation, RouterAdvertisement, RouterSolicitation,
                            TargetLinkLayerAddress, decode_icmpv6, encode_icmpv6)
from ha.wire.ipv6 import IPv6Header, build_ba_packet
from ha.wire.mobility import (BAStatus, BindingAck, BindingRefreshAdvice, BindingRefreshRequest,
                              BindingUpdate, decode_mh_packet, encode_mh)

HOA = IPv6Interface("2001:db8::beef/64")
HA = IPv6Address("2001:db8::")
HOME = IPv6Network("2001:db8::/64")
FOREIGN = IPv6Network("2001:db8:1::/64")
OTHER = IPv6Network("2001:db8:2::/64")
R_HOME = IPv6Address("fe80::a")
R_FOREIGN = IPv6Address("fe80::b")
R_OTHER = IPv6Address("fe80::c")
COA = IPv6Address("2001:db8:1::205:5dff:fef2:db2b")
COA2 = IPv6Address("2001:db8:2::205:5dff:fef2:db2b")
SEQ = 19428
MAC = bytes.fromhex("0205 5df2 db2b".replace(" ", ""))
ALL_NODES = IPv6Address("ff02::1")


@dataclass(frozen=True)
class SentBU:
    """A BU datagram, decoded back from its bytes."""
    message: BindingUpdate
    source: IPv6Address
    destination: IPv6Address
    home_address: IPv6Address
    home_address_option: bool


@dataclass(frozen=True)
class SentRS:
    pass


@dataclass(frozen=True)
class SentNA:
    address: IPv6Address


def decode_datagram(d: mn.Datagram):
    if d.icmpv6:
        msg = decode_icmpv6(d.data)
        if isinstance(msg, RouterSolicitation):
            assert d.destination == IPv6Address("ff02::2") and d.source is None
            return SentRS()
        assert isinstance(msg, NeighborAdvertisement)
        # section 11.5.4: override, not solicited, a host, our link-layer address
        assert msg.override and not msg.solicited and not msg.router
        assert msg.options == [TargetLinkLayerAddress(MAC)]
        assert d.destination == ALL_NODES and d.source == msg.target
        decode_icmpv6(d.data, d.source, d.destination)  # the checksum is right
        return SentNA(msg.target)
    pkt, bu = decode_mh_packet(d.data)  # checks the MH checksum over HAO / source
    assert isinstance(bu, BindingUpdate) and d.destination == pkt.header.dst
    return SentBU(bu, pkt.header.src, pkt.header.dst, pkt.home_address or pkt.header.src,
                  pkt.home_address is not None)


def hear(node, ra_msg, src, now, hop_limit=255):
    """An RA as the raw ICMPv6 socket gives it."""
    node.receive_icmpv6(encode_icmpv6(ra_msg, src, ALL_NODES), src, hop_limit, now)


def ba_packet(ba, src=HA, hoa=HOA.ip, coa=COA):
    """The BA as the packet socket sees it: HA -> CoA with the RH2 (6.1.8)."""
    return build_ba_packet(src, coa, hoa, encode_mh(ba, src, hoa))


def receive_ba(node, ba, src, hoa, now):
    node.receive_packet(ba_packet(ba, src, hoa), now)


def receive_brr(node, src, hoa, now):
    mh = encode_mh(BindingRefreshRequest(), src, hoa)
    node.receive_packet(IPv6Header(src, hoa, 135, len(mh)).encode() + mh, now)


def ra(prefix, *, interval_ms=1500, lifetime=30, valid=86400, home_agent=False):
    options = [PrefixInformation(prefix, valid_lifetime=valid, preferred_lifetime=valid)]
    if interval_ms:
        options.append(AdvertisementInterval(interval_ms))
    return RouterAdvertisement(home_agent=home_agent, router_lifetime=lifetime, options=options)


def drain(node):
    """The actions, then the datagrams decoded."""
    out = []
    while (a := node.next_action()) is not None:
        out.append(a)
    return out + [decode_datagram(d) for d in node.datagrams_to_send(0.0)]


def of(actions, kind):
    return [a for a in actions if isinstance(a, kind)]


def new_node(**kw):
    return mn.MobileNode(mn.MobileNodeConfig(HOA, HA, "wlan0", link_layer_address=MAC, **kw),
                         initial_sequence=SEQ)


def at_home(now=0.0, **kw):
    node = new_node(**kw)
    hear(node, ra(HOME, home_agent=True), R_HOME, now)
    assert drain(node) == [mn.HomeAddressOnLink(HOA, True)]
    assert node.location is mn.Location.HOME and node.state is mn.RegState.IDLE
    return node


def move(node, now, prefix=FOREIGN, router=R_FOREIGN, coa=COA):
    """Hear the new router (no interval option, long lifetime: it stays), let
    the old one's grace run out, get the CoA; the BU goes at now + 1.6."""
    hear(node, ra(prefix, interval_ms=0, lifetime=1800), router, now)
    node.handle_timer(now + 1.5)
    node.set_addresses([coa], now + 1.6)
    return drain(node)


def ack(node, now, status=BAStatus.ACCEPTED, lifetime=None, seq=None, options=()):
    b = node.bul
    ba = BindingAck(status, b.sequence if seq is None else seq,
                    (b.lifetime if lifetime is None else lifetime) // 4, options=list(options))
    receive_ba(node, ba, HA, HOA.ip, now)
    return drain(node)


def registered(now=0.0):
    node = at_home(now)
    move(node, now + 1)
    acts = ack(node, now + 3)
    assert acts == [mn.TunnelUp(HOA.ip, COA, HA)]
    return node


# ------------------------------------------------------------ movement


def test_ra_from_a_new_router_is_a_hint_the_old_one_gets_one_interval():
    node = at_home(0.0)
    assert node.get_timer() == pytest.approx(4.5)  # three intervals of 1.5 s
    hear(node, ra(FOREIGN), R_FOREIGN, 1.0)
    assert drain(node) == [] and node.location is mn.Location.HOME
    assert node.get_timer() == pytest.approx(2.5)  # now one interval of the home router
    node.handle_timer(2.49)
    assert drain(node) == []
    node.handle_timer(2.5)
    acts = drain(node)
    assert acts == [mn.ForgetRouter(R_HOME, (HOME,)), mn.HomeAddressOnLink(HOA, False)]
    assert node.location is mn.Location.AWAY and node.counters["movements"] == 1
    assert node.state is mn.RegState.IDLE  # no care-of address yet: SLAAC has not run


def test_the_care_of_address_comes_from_the_interface_and_triggers_the_bu():
    node = at_home()
    acts = move(node, 10.0)
    bu = of(acts, SentBU)
    assert len(bu) == 1
    send = bu[0]
    assert (send.source, send.destination, send.home_address) == (COA, HA, HOA.ip)
    assert send.home_address_option
    m = send.message
    assert m.ack and m.home_registration and not m.link_local_compat
    assert m.sequence == SEQ
    # the smaller remaining valid lifetime, in 4 s units: the home prefix, heard at 0
    # (86400 - 11.6 s), not the CoA prefix heard at 10 (86400 - 1.6 s); both under 262140
    assert m.lifetime_seconds == 86388
    assert node.state is mn.RegState.REGISTERING


def test_addresses_outside_the_routers_prefixes_and_the_hoa_are_not_a_coa():
    node = at_home()
    hear(node, ra(FOREIGN), R_FOREIGN, 10.0)
    node.handle_timer(11.5)
    drain(node)
    node.set_addresses([HOA.ip, IPv6Address("2001:db8::1234"), COA2], 12.0)
    assert of(drain(node), SentBU) == []
    node.set_addresses([COA2, COA], 13.0)
    assert of(drain(node), SentBU)[0].source == COA


def test_two_routers_heard_on_one_link_are_not_movement():
    node = at_home()
    for t in range(1, 30):
        hear(node, ra(HOME, home_agent=True), R_HOME, t)
        hear(node, ra(OTHER), R_OTHER, t + 0.5)
        node.handle_timer(t + 0.9)
    assert node.location is mn.Location.HOME
    assert of(drain(node), mn.HomeAddressOnLink) == []


def test_a_silent_router_is_lost_after_missed_advertisements():
    node = at_home(0.0)
    assert node.get_timer() == pytest.approx(3 * 1.5)  # under its 30 s router lifetime
    hear(node, ra(HOME, interval_ms=0, lifetime=30), R_HOME, 1.0)
    assert node.get_timer() == pytest.approx(31.0)  # no interval option: router lifetime
    node.handle_timer(31.0)
    assert drain(node) == [mn.ForgetRouter(R_HOME, (HOME,))]
    assert node.default_router is None and node.location is mn.Location.HOME  # unchanged


def test_router_lifetime_zero_removes_the_router_and_the_other_takes_over():
    node = at_home()
    hear(node, ra(FOREIGN), R_FOREIGN, 1.0)  # hint, both alive
    hear(node, ra(HOME, lifetime=0), R_HOME, 1.2)
    acts = drain(node)
    assert acts[0] == mn.ForgetRouter(R_HOME, (HOME,))
    assert node.default_router == R_FOREIGN and node.location is mn.Location.AWAY


def test_forget_router_names_only_prefixes_no_live_router_announces():
    node = at_home()
    hear(node, ra(OTHER), R_OTHER, 0.5)
    hear(node, ra(OTHER), R_FOREIGN, 0.6)
    hear(node, ra(OTHER, interval_ms=0, lifetime=1800), R_FOREIGN, 4)
    node.handle_timer(5.0)  # the home router and R_OTHER are lost, R_FOREIGN lives
    acts = drain(node)
    assert mn.ForgetRouter(R_HOME, (HOME,)) in acts
    assert mn.ForgetRouter(R_OTHER, ()) in acts  # OTHER is still announced by R_FOREIGN


def test_ra_from_a_global_source_is_ignored():
    node = new_node()
    hear(node, ra(HOME), IPv6Address("2001:db8::1"), 0.0)
    assert drain(node) == [] and node.counters["ra_ignored"] == 1


def test_link_up_solicits_and_shortens_every_router():
    node = at_home()
    node.link_up(2.0)
    assert drain(node) == [SentRS()]
    assert node.get_timer() == pytest.approx(3.5)


def test_link_down_forgets_routers_but_keeps_the_binding():
    node = registered()
    node.link_down(5.0)
    assert of(drain(node), mn.TunnelDown) == []
    assert node.state is mn.RegState.REGISTERED and node.routers == {}


def test_start_away_registers_with_no_home_router_ever_heard():
    node = new_node()
    node.set_addresses([COA], 0.0)
    hear(node, ra(FOREIGN), R_FOREIGN, 0.1)
    acts = drain(node)
    assert acts[0] == mn.HomeAddressOnLink(HOA, False)
    assert of(acts, SentBU)[0].source == COA


# -------------------------------------------------------- registration


def test_first_registration_retransmits_from_1_5_s_doubling_to_32_with_new_sequences():
    node = at_home()
    move(node, 0.0)  # BU sent at 1.6
    t = 1.6
    gaps, seqs = [], [node.bul.sequence]
    for _ in range(9):
        nxt = node.get_timer()
        gaps.append(round(nxt - t, 6))
        t = nxt
        node.handle_timer(t)
        (send,) = of(drain(node), SentBU)
        seqs.append(send.message.sequence)
    assert gaps == [1.5, 3.0, 6.0, 12.0, 24.0, 32.0, 32.0, 32.0, 32.0]
    assert seqs == list(range(SEQ, SEQ + 10))
    assert node.bul.resends == 9


def test_accepted_ba_brings_the_tunnel_up_and_schedules_the_refresh():
    node = registered(0.0)
    b = node.bul
    assert node.state is mn.RegState.REGISTERED and not b.outstanding
    assert b.granted == 86396 and b.expires_at == pytest.approx(2.6 + 86396)
    assert b.refresh_at == pytest.approx(2.6 + 86396 - 8639.6)
    assert node.get_timer() == pytest.approx(1801.0)  # the foreign router's lifetime first
    # heard again late with the longest router lifetime (9000 s, RFC 4861 section 6.2.1)
    hear(node, ra(FOREIGN, interval_ms=0, lifetime=9000), R_FOREIGN, 70000)
    assert node.get_timer() == pytest.approx(b.refresh_at)


def test_ba_granting_less_counts_from_the_bu():
    node = at_home()
    move(node, 0.0)
    ack(node, 2.0, lifetime=40)
    b = node.bul
    assert b.granted == 40 and b.expires_at == pytest.approx(41.6)
    assert b.refresh_at == pytest.approx(41.6 - 4.0)


def test_binding_refresh_advice_brings_the_refresh_earlier():
    node = at_home()
    move(node, 0.0)
    ack(node, 2.0, options=[BindingRefreshAdvice(5)])
    assert node.bul.refresh_at == pytest.approx(1.6 + 20)


@pytest.mark.parametrize("src,hoa,seq", [
    (IPv6Address("2001:db8::1"), HOA.ip, None),    # not our home agent
    (HA, IPv6Address("2001:db8::bee"), None),      # not our home address
    (HA, HOA.ip, SEQ + 7),                         # not the BU outstanding
])
def test_bas_that_do_not_match_are_ignored(src, hoa, seq):
    node = at_home()
    move(node, 0.0)
    ba = BindingAck(BAStatus.ACCEPTED, SEQ if seq is None else seq, 100)
    receive_ba(node, ba, src, hoa, 2.0)
    assert drain(node) == [] and node.state is mn.RegState.REGISTERING
    assert node.counters["ba_ignored"] == 1


def test_status_135_resends_with_the_bas_sequence_plus_one():
    node = at_home()
    move(node, 0.0)
    acts = ack(node, 2.0, status=BAStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW, seq=40000)
    (send,) = of(acts, SentBU)
    assert send.message.sequence == 40001 and node.state is mn.RegState.REGISTERING
    assert ack(node, 2.5) == [mn.TunnelUp(HOA.ip, COA, HA)]


@pytest.mark.parametrize("status", [129, 130, 132, 133, 134, 139])
def test_refusal_stops_retransmission(status):
    node = at_home()
    move(node, 0.0)
    assert ack(node, 2.0, status=status) == []
    assert node.state is mn.RegState.REFUSED and not node.bul.outstanding
    node.handle_timer(1000.0)
    assert of(drain(node), SentBU) == []
    assert node.binding_update_list(1000.0)[0]["last_status"] == status


def test_after_a_refusal_the_next_movement_registers_again():
    node = at_home()
    move(node, 0.0)
    ack(node, 2.0, status=129)
    acts = move(node, 10.0, OTHER, R_OTHER, COA2)
    assert of(acts, SentBU)[0].source == COA2


def test_refresh_goes_out_before_expiry_and_keeps_the_tunnel():
    node = at_home()
    move(node, 0.0)
    ack(node, 2.0, lifetime=40)
    hear(node, ra(FOREIGN, lifetime=1800, interval_ms=0), R_FOREIGN, 3)
    assert node.get_timer() == pytest.approx(37.6)
    node.handle_timer(37.6)
    (send,) = of(drain(node), SentBU)
    assert send.message.sequence == SEQ + 1 and node.state is mn.RegState.REGISTERED
    assert node.binding_update_list(37.6)[0]["ack"] == "pending"
    assert node.get_timer() == pytest.approx(38.6)  # INITIAL_BINDING_ACK_TIMEOUT: binding exists
    assert ack(node, 38.0, lifetime=40) == []
    assert node.bul.expires_at == pytest.approx(37.6 + 40)


def test_expiry_without_answer_drops_the_tunnel_and_registers_afresh():
    node = at_home()
    move(node, 0.0)
    ack(node, 2.0, lifetime=8)
    hear(node, ra(FOREIGN, lifetime=1800, interval_ms=0), R_FOREIGN, 3)
    assert node.bul.refresh_at == pytest.approx(6.6)  # margin min(8 / 2, max(0.8, 3)) = 3
    node.handle_timer(6.6)
    assert of(drain(node), SentBU)
    node.handle_timer(7.6)  # one retransmission, next in 2 s
    drain(node)
    node.handle_timer(9.6)  # expiry, and the second retransmission is due too
    acts = drain(node)
    assert mn.TunnelDown(HOA.ip) in acts
    assert node.state is mn.RegState.REGISTERING and node.bul.granted == 0
    assert node.bul.timeout == mn.INITIAL_BINDING_ACK_TIMEOUT_FIRSTREG


def test_moving_on_while_registered_rebinds_with_the_short_timeout():
    node = registered(0.0)
    acts = move(node, 10.0, OTHER, R_OTHER, COA2)
    assert mn.TunnelDown(HOA.ip) in acts
    (send,) = of(acts, SentBU)
    assert send.source == COA2 and node.state is mn.RegState.REGISTERING
    # the home agent holds a binding (no DAD): INITIAL_BINDING_ACK_TIMEOUT
    assert node.bul.retransmit_at == pytest.approx(11.6 + 1.0)
    assert ack(node, 12.0) == [mn.TunnelUp(HOA.ip, COA2, HA)]


def test_lifetime_is_bounded_by_prefix_lifetimes_and_the_maximum():
    node = new_node(max_lifetime=262140)
    hear(node, ra(HOME, valid=600), R_HOME, 0.0)
    drain(node)
    move(node, 100.0)  # BU at 101.6: the home prefix has 498.4 s left
    assert node.bul.lifetime == 496
    node2 = at_home()
    node2.home_prefix_valid_until = None
    hear(node2, ra(FOREIGN, valid=INFINITY), R_FOREIGN, 1.0)
    node2.handle_timer(2.5)
    node2.set_addresses([COA], 3.0)
    assert node2.bul.lifetime == 262140


def test_sequence_wraps_modulo_2_16():
    node = mn.MobileNode(mn.MobileNodeConfig(HOA, HA), initial_sequence=0xFFFF)
    hear(node, ra(FOREIGN), R_FOREIGN, 0.0)
    node.set_addresses([COA], 0.1)
    assert node.bul.sequence == 0xFFFF
    node.handle_timer(node.get_timer())
    assert of(drain(node), SentBU)[-1].message.sequence == 0


# ------------------------------------------------------- returning home


def test_returning_home_deregisters_from_the_home_address_without_hao():
    node = registered(0.0)
    hear(node, ra(HOME, home_agent=True), R_HOME, 10.0)
    node.handle_timer(11.5)
    acts = drain(node)
    assert acts[:3] == [mn.ForgetRouter(R_FOREIGN, (FOREIGN,)), mn.HomeAddressOnLink(HOA, True),
                        mn.TunnelDown(HOA.ip)]
    (send,) = of(acts, SentBU)
    assert (send.source, send.destination, send.home_address) == (HOA.ip, HA, HOA.ip)
    assert not send.home_address_option
    assert send.message.lifetime == 0 and send.message.home_registration and send.message.ack
    assert node.state is mn.RegState.DEREGISTERING
    assert node.get_timer() == pytest.approx(12.5)
    node.handle_timer(12.5)  # retransmitted, still lifetime 0
    (again,) = of(drain(node), SentBU)
    assert again.message.lifetime == 0 and again.message.sequence == send.message.sequence + 1
    assert ack(node, 13.0) == [SentNA(HOA.ip)]
    assert node.state is mn.RegState.IDLE and node.binding_update_list(13.0) == []
    assert node.get_timer() is not None and node.get_timer() > 13.0  # only routers now


def test_deregistration_answered_133_ends_the_entry():
    node = registered(0.0)
    hear(node, ra(HOME), R_HOME, 10.0)
    node.handle_timer(11.5)
    drain(node)
    assert ack(node, 12.0, status=133) == [SentNA(HOA.ip)]
    assert node.state is mn.RegState.IDLE


def test_coming_home_without_a_binding_sends_nothing():
    node = at_home()
    hear(node, ra(FOREIGN), R_FOREIGN, 1.0)
    node.handle_timer(2.5)  # away, no CoA yet
    hear(node, ra(HOME), R_HOME, 3.0)
    node.handle_timer(4.5)
    acts = drain(node)
    assert of(acts, SentBU) == []
    assert acts[-1] == mn.HomeAddressOnLink(HOA, True) and node.state is mn.RegState.IDLE


# ------------------------------------------------------------ the table


def test_every_effect_in_the_table_exists():
    for (state, event), (nxt, effects) in mn._TRANSITIONS.items():
        assert isinstance(state, mn.RegState) and isinstance(nxt, mn.RegState)
        for name in effects:
            assert callable(getattr(mn.MobileNode, "_do_" + name)), name


def test_bul_view_while_registered():
    node = registered(0.0)
    (e,) = node.binding_update_list(101.6)
    assert e["hoa"] == "2001:db8::beef" and e["coa"] == str(COA) and e["ha"] == "2001:db8::"
    assert e["state"] == "registered" and e["ack"] == "ready" and e["remaining"] == int(2.6 + 86396 - 101.6)
    assert e["sequence"] == SEQ and e["last_coa"] == str(COA)


def test_binding_refresh_request_from_the_home_agent_refreshes_now():
    node = registered(0.0)
    receive_brr(node, IPv6Address("2001:db8::1"), HOA.ip, 50.0)
    assert drain(node) == []  # not our home agent
    receive_brr(node, HA, HOA.ip, 50.0)
    (send,) = of(drain(node), SentBU)
    assert send.message.sequence == SEQ + 1 and node.bul.outstanding
    receive_brr(node, HA, HOA.ip, 50.2)  # one refresh at a time
    assert drain(node) == []


# ------------------------------------------------------- the BU's bytes


def sent_bytes(node):
    while node.next_action() is not None:
        pass
    return [d.data for d in node.datagrams_to_send(0.0) if not d.icmpv6]


def test_bu_packet_away_carries_the_hao_and_a_checksum_over_the_home_address():
    from ha.wire.ipv6 import parse_packet
    from ha.wire.mobility import decode_mh
    node = at_home()
    node.receive_icmpv6(encode_icmpv6(ra(FOREIGN, interval_ms=0, lifetime=1800), R_FOREIGN,
                                      ALL_NODES), R_FOREIGN, 255, 0.0)
    node.handle_timer(1.5)
    node.set_addresses([COA], 1.6)
    (data,) = sent_bytes(node)
    pkt = parse_packet(data)
    assert (pkt.header.src, pkt.header.dst, pkt.home_address) == (COA, HA, HOA.ip)
    assert pkt.protocol == 135
    bu = decode_mh(pkt.payload, HOA.ip, HA)  # raises if the checksum were over the CoA
    assert isinstance(bu, BindingUpdate) and bu.sequence == SEQ and bu.ack
    assert bu.home_registration


def test_bu_packet_at_home_is_plain_from_the_home_address():
    from ha.wire.ipv6 import parse_packet
    from ha.wire.mobility import decode_mh
    node = registered(0.0)
    hear(node, ra(HOME), R_HOME, 10.0)
    node.handle_timer(11.5)
    (data,) = sent_bytes(node)
    pkt = parse_packet(data)
    assert (pkt.header.src, pkt.header.dst, pkt.home_address) == (HOA.ip, HA, None)
    assert pkt.header.next_header == 135 and decode_mh(pkt.payload, HOA.ip, HA).lifetime == 0


def test_undecodable_packets_and_ras_are_counted_and_change_nothing():
    node = registered(0.0)
    good = ba_packet(BindingAck(BAStatus.ACCEPTED, node.bul.sequence, 100))
    node.receive_packet(good[:-3], 5.0)  # truncated
    bad_sum = bytearray(good)
    bad_sum[-1] ^= 0xFF
    node.receive_packet(bytes(bad_sum), 5.0)
    node.receive_icmpv6(b"\x86\x00\x00\x00\x40", R_HOME, 255, 5.0)  # an RA cut short
    assert node.counters["malformed"] == 3
    assert drain(node) == [] and node.state is mn.RegState.REGISTERED


def test_an_ra_that_was_forwarded_is_not_heard():
    node = new_node()
    hear(node, ra(HOME), R_HOME, 0.0, hop_limit=254)  # RFC 4861 section 6.1.2
    assert node.routers == {} and node.counters["ra_ignored"] == 1


def test_the_first_sequence_number_comes_from_the_callers_rng():
    config = mn.MobileNodeConfig(HOA, HA)
    a = mn.MobileNode(config, rng=random.Random(7))
    b = mn.MobileNode(config, rng=random.Random(7))
    assert a.bul.sequence == b.bul.sequence
    with pytest.raises(TypeError):
        mn.MobileNode(config)


def test_bul_text_follows_the_seeds_listing():
    from ha.daemon.mobile_node import format_bul
    node = registered(0.0)
    text = format_bul(node.binding_update_list(102.6), "wlan0").splitlines()
    assert text[0] == "Home address    2001:db8:0:0:0:0:0:beef"
    assert text[1] == "Care-of address 2001:db8:1:0:205:5dff:fef2:db2b"
    assert text[2] == "CN address      2001:db8:0:0:0:0:0:0"
    assert text[3] == f" lifetime = 86396,  delay = {int((86396 - 8639.6) * 1000)}"
    assert text[4] == " ack ready"
    assert text[5] == " dev wlan0 last_coa 2001:db8:1:0:205:5dff:fef2:db2b"
    assert text[6] == (" lifetime 86296 / 86396 seq 19428 resend 0 delay 77756(after 77656s)"
                       " expires 86296")
    assert format_bul([], "wlan0") == ""


# ------------------------------------------------- races between moves and BAs


def test_home_again_before_the_ba_deregisters_and_the_late_ba_is_ignored():
    node = at_home()
    move(node, 0.0)
    first = node.bul.sequence
    hear(node, ra(HOME), R_HOME, 2.0)
    node.handle_timer(3.5)  # the hint gave the foreign router HINT_GRACE
    acts = drain(node)
    (send,) = of(acts, SentBU)
    assert send.message.lifetime == 0 and node.state is mn.RegState.DEREGISTERING
    assert mn.TunnelDown(HOA.ip) not in acts  # it never came up
    receive_ba(node, BindingAck(BAStatus.ACCEPTED, first, 100), HA, HOA.ip, 3.6)
    assert drain(node) == [] and node.state is mn.RegState.DEREGISTERING
    assert ack(node, 3.7) == [SentNA(HOA.ip)]


def test_leaving_again_while_deregistering_registers_the_new_coa():
    node = registered(0.0)
    hear(node, ra(HOME), R_HOME, 10.0)
    node.handle_timer(11.5)
    drain(node)
    assert node.state is mn.RegState.DEREGISTERING
    acts = move(node, 12.0, OTHER, R_OTHER, COA2)
    send = of(acts, SentBU)[-1]  # after a dereg retransmission that was due
    assert send.source == COA2 and send.message.lifetime > 0
    assert node.state is mn.RegState.REGISTERING
    assert ack(node, 14.0) == [mn.TunnelUp(HOA.ip, COA2, HA)]
