"""Limits that hold under attack, in the pure core: the rate of new bindings per
source /64 and overall, a full binding cache, the bounded home agent list.

Bytes in, BAs out (read back with our decoder), `now` passed in: no sleeps.
"""

import logging
from ipaddress import IPv6Address, IPv6Network

import pytest

from ha.core import registration as reg
from ha.core.binding_cache import BindingCache
from ha.core.discovery import HomeAgentList
from ha.core.home_agent import HomeAgentCore, HomeAgentSettings
from ha.core.rate_limit import NewBindingLimiter, TokenBucket
from ha.wire import icmpv6 as nd
from ha.wire.ipv6 import build_bu_packet, parse_packet
from ha.wire.mobility import BAStatus, BindingUpdate, decode_mh, encode_mh

A = IPv6Address
HA = A("2001:db8::")
HOME = IPv6Network("2001:db8::/64")
ATTACKER = A("2001:db8:1::66")  # one foreign /64
LEGIT = A("2001:db8:2::5")  # another foreign /64
IFINDEX = 3


def core(capacity=1000, **kw) -> HomeAgentCore:
    rules = reg.HomeAgentConfig(served_prefixes=(HOME,), ha_addresses=(HA,), dad_enabled=False)
    return HomeAgentCore(HomeAgentSettings(ha_address=HA, home_ifindex=IFINDEX, rules=rules,
                                           **kw), capacity=capacity)


LIMITS = dict(new_bindings_per_prefix_rate=20, new_bindings_per_prefix_burst=50,
              new_bindings_rate=100, new_bindings_burst=200)


def bu(hoa, coa, seq=1, lifetime=1000) -> bytes:
    m = BindingUpdate(sequence=seq, lifetime=lifetime, ack=True, home_registration=True)
    return build_bu_packet(coa, HA, hoa, encode_mh(m, hoa, HA))


def serve(c, now):
    """Carry every datapath action out and return the BA statuses by home address."""
    while (a := c.next_action()) is not None:
        c.action_done(a, now)
    out = {}
    for d in c.datagrams_to_send(now):
        p = parse_packet(d.data)
        ba = decode_mh(p.payload, *p.pseudo_header_addresses())
        out[A(p.routing_address)] = ba.status
    return out


def hoa(i):
    return A(int(HA) + 0x1_0000 + i)


# ------------------------------------------------------------ token buckets


def test_bucket_holds_a_burst_then_refills_at_its_rate():
    b = TokenBucket(rate=10, burst=5)
    assert [b.take(0.0) for _ in range(6)] == [True] * 5 + [False]
    assert not b.take(0.05)  # half a token
    assert b.take(0.1) and not b.take(0.1)
    assert b.level(100.0) == 5  # never above the burst


def test_limiter_per_prefix_refusal_leaves_the_global_bucket_alone():
    lim = NewBindingLimiter(per_prefix_rate=20, per_prefix_burst=50, rate=100, burst=60)
    got = [lim.admit(A(int(ATTACKER) + i), 0.0) for i in range(1000)]  # same /64
    assert got.count(True) == 50 and got.count(NewBindingLimiter.OVER_PREFIX) == 950
    # the flood spent only 50 of the 60 global tokens: other links still get theirs
    others = [lim.admit(A(f"2001:db8:{i + 10:x}::1"), 0.0) for i in range(11)]
    assert others == [True] * 10 + [NewBindingLimiter.OVER_GLOBAL]
    # one second on: 20 more from the flooding /64
    assert [lim.admit(ATTACKER, 1.0) for _ in range(21)].count(True) == 20


def test_limiter_rate_zero_is_off_and_memory_is_bounded():
    assert all(NewBindingLimiter(0, 0, 0, 0).admit(ATTACKER, 0.0) is True for _ in range(10_000))
    lim = NewBindingLimiter(per_prefix_rate=1, per_prefix_burst=1, rate=0, burst=0, remember=100)
    for i in range(1000):
        assert lim.admit(A(f"2001:db8:{i:x}::1"), 0.0) is True
    assert len(lim) == 100
    with pytest.raises(ValueError):
        NewBindingLimiter(-1, 1, 1, 1)


# ------------------------------------------------ the rule in registration.py


def test_admit_is_asked_only_about_new_bindings():
    cache, cfg = BindingCache(10), reg.HomeAgentConfig(served_prefixes=(HOME,), ha_addresses=(HA,),
                                                       dad_enabled=False)
    asked = []

    def admit(src):
        asked.append(src)
        return len(asked) == 1

    def ctx(h, seq, lifetime=250, src=LEGIT):
        return reg.BUContext(BindingUpdate(sequence=seq, lifetime=lifetime, ack=True,
                                           home_registration=True), src=src, dst=HA, hoa=h)
    d = reg.process_binding_update(ctx(hoa(1), 1), cache, cfg, 0.0, admit)
    assert d.status is BAStatus.ACCEPTED and asked == [LEGIT]
    d = reg.process_binding_update(ctx(hoa(2), 1), cache, cfg, 0.0, admit)
    assert d.status is BAStatus.INSUFFICIENT_RESOURCES and "new_binding_admitted" in d.reason
    assert hoa(2) not in cache
    # a refresh, a move and a deregistration are never charged
    for c in (ctx(hoa(1), 2), ctx(hoa(1), 3, src=ATTACKER), ctx(hoa(1), 4, lifetime=0)):
        assert reg.process_binding_update(c, cache, cfg, 1.0, admit).status is BAStatus.ACCEPTED
    # a BU refused for another reason first (132: not our prefix) is not charged either
    d = reg.process_binding_update(ctx(A("2001:db8:9::1"), 1), cache, cfg, 1.0, admit)
    assert d.status is BAStatus.NOT_HOME_SUBNET
    assert len(asked) == 2


# ------------------------------------------------------------------ the core


def test_a_flood_from_one_prefix_is_refused_while_others_register_and_refresh(caplog):
    c = core(**LIMITS)
    c.receive_packet(bu(hoa(0), LEGIT), IFINDEX, 0.0)
    assert serve(c, 0.0) == {hoa(0): 0}
    caplog.set_level(logging.WARNING, "denali.ha")
    for i in range(1, 401):  # 400 new home addresses from one /64, half a second later
        c.receive_packet(bu(hoa(i), A(int(ATTACKER) + i)), IFINDEX, 0.0 if i <= 200 else 0.5)
    got = serve(c, 0.5)
    statuses = list(got.values())
    assert len(got) == 400
    assert statuses.count(0) == 50 + 10  # the burst, then 20/s for 0.5 s
    assert statuses.count(BAStatus.INSUFFICIENT_RESOURCES) == 400 - 60
    assert c.stats["BU refused, new bindings over the per-prefix rate"] == 340
    assert len(c.cache) == 61
    # logged once for that /64, not per packet
    lines = [r for r in caplog.records if "over 20/s" in r.getMessage()]
    assert len(lines) == 1 and "2001:db8:1::/64" in lines[0].getMessage()
    # the mobile node with a binding refreshes as if nothing happened; a new
    # one from another link registers
    c.receive_packet(bu(hoa(0), LEGIT, seq=2), IFINDEX, 0.5)
    c.receive_packet(bu(hoa(9999), A("2001:db8:3::1")), IFINDEX, 0.5)
    assert serve(c, 0.5) == {hoa(0): 0, hoa(9999): 0}


def test_the_global_bucket_bounds_many_prefixes():
    c = core(**LIMITS)
    for i in range(300):  # 300 /64s, one new binding each, at once
        c.receive_packet(bu(hoa(i), A(int(A("2001:db8:100::1")) + (i << 80))), IFINDEX, 0.0)
    statuses = list(serve(c, 0.0).values())
    assert statuses.count(0) == 200 and statuses.count(130) == 100
    assert c.stats["BU refused, new bindings over the global rate"] == 100


def test_full_cache_refuses_new_bindings_and_serves_refreshes(caplog):
    c = core(capacity=3)
    for i in range(3):
        c.receive_packet(bu(hoa(i), LEGIT), IFINDEX, 0.0)
    assert set(serve(c, 0.0).values()) == {0}
    caplog.set_level(logging.WARNING, "denali.ha")
    for i in range(3, 10):
        c.receive_packet(bu(hoa(i), ATTACKER), IFINDEX, 1.0)
    assert set(serve(c, 1.0).values()) == {BAStatus.INSUFFICIENT_RESOURCES}
    assert c.stats["BU refused, binding cache full"] == 7
    assert len([r for r in caplog.records if "cache full" in r.getMessage()]) == 1
    c.receive_packet(bu(hoa(1), LEGIT, seq=2), IFINDEX, 2.0)
    c.receive_packet(bu(hoa(2), ATTACKER, seq=2), IFINDEX, 2.0)  # a move is no new binding
    assert serve(c, 2.0) == {hoa(1): 0, hoa(2): 0}
    assert len(c.cache) == 3


def test_reload_with_other_limits_takes_them():
    c = core(**LIMITS)
    for i in range(60):
        c.receive_packet(bu(hoa(i), ATTACKER), IFINDEX, 0.0)
    assert list(serve(c, 0.0).values()).count(0) == 50
    c.reload(HomeAgentSettings(ha_address=HA, home_ifindex=IFINDEX, rules=c.rules), 0.0)
    for i in range(60, 200):  # limits off now
        c.receive_packet(bu(hoa(i), ATTACKER), IFINDEX, 0.0)
    assert set(serve(c, 0.0).values()) == {0}


# ------------------------------------------------------- home agent list


def ra(preference=0, lifetime=1800):
    return nd.RouterAdvertisement(home_agent=True, router_lifetime=1800, options=[
        nd.HomeAgentInformation(preference=preference, lifetime=lifetime)])


def test_home_agent_list_is_bounded_and_keeps_this_node():
    hal = HomeAgentList(limit=8)
    own = A("fe80::1")
    hal.update_from_ra(own, ra(preference=-5), 0.0, own=True)
    for i in range(100):  # a host sending H-flag RAs from 100 link-local sources
        hal.update_from_ra(A(f"fe80::100:{i:x}"), ra(), 0.0)
    assert len(hal) == 8
    assert own in {e.link_local for e in hal}  # the least preferred, but ours
    # a better home agent displaces a worse one; a worse one is left out
    hal.update_from_ra(A("fe80::2"), ra(preference=10), 1.0)
    hal.update_from_ra(A("fe80::3"), ra(preference=-100), 1.0)
    held = {e.link_local for e in hal}
    assert len(hal) == 8 and A("fe80::2") in held and A("fe80::3") not in held and own in held
    # our own RA refreshes our entry even with the list full
    assert hal.update_from_ra(own, ra(preference=-5), 2.0, own=True) is not None


def test_core_bounds_the_list_from_its_settings():
    c = core(max_home_agents=4)
    for i in range(20):
        msg = nd.encode_icmpv6(ra(), A(f"fe80::{i + 10:x}"), A("ff02::1"))
        c.receive_icmpv6(msg, A(f"fe80::{i + 10:x}"), A("ff02::1"), 255, float(i))
    assert len(c.home_agents) == 4


# ------------------------------------------------------------------ settings


def test_limits_from_denali_conf_and_mip6d_conf(tmp_path):
    from ha.config.model import DEFAULT_TEXT
    from ha.config.mip6d_conf import dump_mip6d, parse_mip6d
    from ha.daemon.settings import SettingsError, load_settings
    conf = tmp_path / "denali.conf"
    conf.write_text(DEFAULT_TEXT)
    s = load_settings(str(conf))
    assert (s.capacity, s.new_bindings_per_prefix_rate, s.new_bindings_per_prefix_burst,
            s.new_bindings_rate, s.new_bindings_burst, s.max_tunnels) == (4096, 20, 100,
                                                                          100, 500, 64)
    conf.write_text(DEFAULT_TEXT.replace("[ha]\n", "[ha]\n    capacity = 10\n"
                                         "    new_bindings_per_prefix_rate = 0\n"
                                         "    new_bindings_rate = 2.5\n    max_tunnels = 3\n", 1))
    s = load_settings(str(conf))
    assert (s.capacity, s.new_bindings_per_prefix_rate, s.new_bindings_rate,
            s.max_tunnels) == (10, 0, 2.5, 3)
    conf.write_text(DEFAULT_TEXT.replace("[ha]\n", "[ha]\n    capacity = 0\n", 1))
    with pytest.raises(SettingsError, match="capacity"):
        load_settings(str(conf))

    text = ('NodeConfig HA;\nUseMnHaIPsec disabled;\nInterface "wlan0";\n'
            "DenaliCapacity 7;\nDenaliNewBindingsPerPrefixRate 5;\n"
            "DenaliNewBindingsPerPrefixBurst 9;\nDenaliNewBindingsRate 0;\n"
            "DenaliNewBindingsBurst 11;\nDenaliMaxTunnels 2;\n")
    cfg = parse_mip6d(text)
    assert parse_mip6d(dump_mip6d(cfg)) == cfg
    mip6d = tmp_path / "mip6d.conf"
    mip6d.write_text(text)
    s = load_settings(str(mip6d))
    assert (s.capacity, s.new_bindings_per_prefix_rate, s.new_bindings_per_prefix_burst,
            s.new_bindings_rate, s.new_bindings_burst, s.max_tunnels) == (7, 5, 9, 0, 11, 2)
    mip6d.write_text(text.replace("DenaliMaxTunnels 2", "DenaliMaxTunnels 0"))
    with pytest.raises(SettingsError, match="max_tunnels 0"):
        load_settings(str(mip6d))


def test_a_source_over_its_packet_rate_is_dropped_unread_and_others_are_not():
    c = core(packets_per_source_rate=200, packets_per_source_burst=400, **LIMITS)
    c.receive_packet(bu(hoa(0), LEGIT), IFINDEX, 0.0)
    serve(c, 0.0)
    for i in range(1, 2001):  # 2,000 BUs from one address at once
        c.receive_packet(bu(hoa(i), ATTACKER), IFINDEX, 0.0)
    got = serve(c, 0.0)
    assert len(got) == 400  # the burst is read (and answered); the rest never parsed
    assert c.stats["packets dropped, source over its rate"] == 1600
    assert c.stats["BU received"] == 401
    c.receive_packet(bu(hoa(0), LEGIT, seq=2), IFINDEX, 0.0)  # another address: served
    assert serve(c, 0.0) == {hoa(0): 0}
