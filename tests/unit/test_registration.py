"""One test (at least) per rule in ha/core/registration.py; time is just numbers."""

from ipaddress import IPv6Address, IPv6Network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ha.core.binding_cache import BindingCache, BindingState
from ha.wire.mobility import AlternateCareOfAddress, BAStatus, BindingRefreshAdvice, BindingUpdate
from ha.core.registration import (
    AddBinding, BUContext, DeleteBinding, HomeAgentConfig, MoveBinding, RefreshBinding, StartDAD,
    admin_add_binding,
    admin_delete_binding, dad_finished, expire, granted_lifetime_units, link_local_of,
    process_binding_update, sequence_is_newer,
)

A = IPv6Address
HA = A("2001:db8::")
HOA = A("2001:db8::beef")
COA = A("2001:db8:1::205:5dff:fef2:db2b")
COA2 = A("2001:db8:2::1")
HOME = IPv6Network("2001:db8::/64")
LL = A("fe80::beef")


def config(**kw) -> HomeAgentConfig:
    base = dict(served_prefixes=(HOME,), ha_addresses=(HA,), dad_enabled=False)
    base.update(kw)
    return HomeAgentConfig(**base)


def bu(seq=1, lifetime=1000, *, ack=True, h=True, l=False, options=()) -> BindingUpdate:
    return BindingUpdate(sequence=seq, lifetime=lifetime, ack=ack, home_registration=h,
                         link_local_compat=l, options=list(options))


def ctx(b: BindingUpdate, *, src=COA, hoa=HOA, dst=HA) -> BUContext:
    return BUContext(bu=b, src=src, dst=dst, hoa=hoa)


def send(cache, cfg, b, now=0.0, **kw):
    return process_binding_update(ctx(b, **kw), cache, cfg, now)


def registered(cache, cfg, seq=1, now=0.0, **kw):
    d = send(cache, cfg, bu(seq, **kw), now)
    assert d.status is BAStatus.ACCEPTED, d.reason
    return d


# ----------------------------------------------------------- sequence window


@pytest.mark.parametrize("last,new,newer", [
    (65535, 0, True),
    (15, 16, True),
    (15, 32782, True),
    (15, 0, False),
    (15, 14, False),
    (15, 15, False),
    (15, 32783, False),
    (15, 65535, False),
])
def test_sequence_comparison_modulo_2_16(last, new, newer):
    assert sequence_is_newer(new, last) is newer


@pytest.mark.parametrize("last,new,accepted", [
    (65535, 0, True), (15, 16, True), (15, 32782, True),
    (15, 0, False), (15, 14, False), (15, 15, False), (15, 32783, False), (15, 65535, False),
])
def test_out_of_window_gets_135_with_last_accepted_sequence(last, new, accepted):
    cache, cfg = BindingCache(10), config()
    registered(cache, cfg, seq=last)
    d = send(cache, cfg, bu(new), now=1.0)
    if accepted:
        assert d.status is BAStatus.ACCEPTED
        assert d.ack.sequence == new
        assert cache.get(HOA).sequence == new
    else:
        assert d.status is BAStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW
        assert d.ack.sequence == last
        assert d.actions == ()
        assert cache.get(HOA).sequence == last


def test_first_bu_accepts_any_sequence():
    cache, cfg = BindingCache(10), config()
    assert registered(cache, cfg, seq=40000).ack.sequence == 40000


# ------------------------------------------------------------ discard rules


def test_registration_without_home_address_option_is_discarded_silently():
    cache, cfg = BindingCache(10), config()
    d = send(cache, cfg, bu(), hoa=None)
    assert d.ack is None and d.actions == () and not d.pending
    assert len(cache) == 0


def test_deregistration_from_home_without_hao_is_accepted():
    # section 11.5.4: back home the MN sends from its home address, no HAO
    cache, cfg = BindingCache(10), config()
    registered(cache, cfg, seq=1)
    d = send(cache, cfg, bu(2, lifetime=0), src=HOA, hoa=None)
    assert d.status is BAStatus.ACCEPTED
    assert d.ack_to == HOA
    assert HOA not in cache


@pytest.mark.parametrize("bad", ["ff02::1", "fe80::1", "::1", "::", "::ffff:192.0.2.1"])
def test_home_address_not_unicast_routable_is_discarded(bad):
    cache, cfg = BindingCache(10), config(served_prefixes=(IPv6Network("::/0"),))
    d = send(cache, cfg, bu(), hoa=A(bad))
    assert d.ack is None and d.actions == ()
    assert len(cache) == 0


@pytest.mark.parametrize("bad", ["ff02::1", "fe80::1", "::1", "::"])
def test_alternate_coa_not_unicast_routable_is_discarded(bad):
    cache, cfg = BindingCache(10), config()
    d = send(cache, cfg, bu(options=[AlternateCareOfAddress(A(bad))]))
    assert d.ack is None and d.actions == ()
    assert len(cache) == 0


def test_link_local_outer_source_is_discarded():
    cache, cfg = BindingCache(10), config()
    d = send(cache, cfg, bu(), src=A("fe80::2"))
    assert d.ack is None and len(cache) == 0


def test_alternate_coa_is_the_care_of_address_but_ba_goes_to_the_source():
    cache, cfg = BindingCache(10), config()
    d = send(cache, cfg, bu(options=[AlternateCareOfAddress(COA2)]))
    assert d.status is BAStatus.ACCEPTED
    assert d.coa == COA2 and cache.get(HOA).coa == COA2
    assert d.actions == (AddBinding(HOA, COA2, 4000),)
    assert d.ack_to == COA


def test_correspondent_registration_is_discarded():
    cache, cfg = BindingCache(10), config()
    d = send(cache, cfg, bu(h=False))
    assert d.ack is None and len(cache) == 0


# ----------------------------------------------------------- refusal rules


def test_home_registration_on_a_node_that_is_not_a_home_agent_gets_131():
    cache, cfg = BindingCache(10), config(home_agent=False)
    d = send(cache, cfg, bu())
    assert d.status is BAStatus.HOME_REGISTRATION_NOT_SUPPORTED
    assert len(cache) == 0


def test_home_address_off_served_prefixes_gets_132():
    cache, cfg = BindingCache(10), config()
    d = send(cache, cfg, bu(), hoa=A("2001:db8:99::beef"))
    assert d.status is BAStatus.NOT_HOME_SUBNET
    assert d.ack.sequence == 1 and len(cache) == 0


def test_home_prefix_with_no_valid_lifetime_left_gets_132():
    cache, cfg = BindingCache(10), config(prefix_valid_lifetime={HOME: 0})
    assert send(cache, cfg, bu()).status is BAStatus.NOT_HOME_SUBNET


def test_deregistering_an_unknown_home_address_gets_133():
    cache, cfg = BindingCache(10), config()
    d = send(cache, cfg, bu(lifetime=0))
    assert d.status is BAStatus.NOT_HOME_AGENT_FOR_THIS_MOBILE_NODE
    assert d.actions == ()


def test_coa_equal_to_hoa_is_a_deregistration():
    cache, cfg = BindingCache(10), config()
    d = send(cache, cfg, bu(options=[AlternateCareOfAddress(HOA)]))
    assert d.status is BAStatus.NOT_HOME_AGENT_FOR_THIS_MOBILE_NODE


def test_registration_type_change_gets_139():
    cache, cfg = BindingCache(10), config()
    registered(cache, cfg, seq=1)
    d = send(cache, cfg, bu(2, h=False))
    assert d.status is BAStatus.REGISTRATION_TYPE_CHANGE_DISALLOWED
    assert cache.get(HOA).sequence == 1


def test_acl_deny_gets_129_and_more_specific_rule_wins():
    cache = BindingCache(10)
    assert send(cache, config(acl={HOA: False}), bu()).status is \
        BAStatus.ADMINISTRATIVELY_PROHIBITED
    assert send(cache, config(acl_default_allow=False), bu()).status is \
        BAStatus.ADMINISTRATIVELY_PROHIBITED
    cfg = config(acl={HOA: False, (HOA, COA): True})
    assert send(cache, cfg, bu()).status is BAStatus.ACCEPTED
    assert send(cache, cfg, bu(2), src=COA2).status is BAStatus.ADMINISTRATIVELY_PROHIBITED


def test_acl_does_not_block_deregistration():
    cache = BindingCache(10)
    registered(cache, config(), seq=1)
    assert send(cache, config(acl={HOA: False}), bu(2, lifetime=0)).status is BAStatus.ACCEPTED


def test_full_cache_refuses_new_binding_with_130_but_serves_existing_ones():
    cache, cfg = BindingCache(1), config()
    registered(cache, cfg, seq=1)
    other = A("2001:db8::cafe")
    d = send(cache, cfg, bu(), hoa=other)
    assert d.status is BAStatus.INSUFFICIENT_RESOURCES and other not in cache
    assert send(cache, cfg, bu(2)).status is BAStatus.ACCEPTED  # refresh still fine


def test_home_address_that_is_our_own_address_gets_134():
    cache, cfg = BindingCache(10), config()
    assert send(cache, cfg, bu(), hoa=HA).status is BAStatus.DUPLICATE_ADDRESS_DETECTION_FAILED


def test_refusals_send_a_ba_even_without_the_a_bit():
    cache, cfg = BindingCache(10), config(home_agent=False)
    d = send(cache, cfg, bu(ack=False))
    assert d.status is BAStatus.HOME_REGISTRATION_NOT_SUPPORTED
    assert d.ack_to == COA and d.ack.key_management is False


# --------------------------------------------------------------- acceptance


def test_new_registration_without_dad_adds_binding_proxy_and_tunnel():
    cache, cfg = BindingCache(10), config()
    d = send(cache, cfg, bu(7, lifetime=1000), now=100.0)
    assert d.status is BAStatus.ACCEPTED and d.ack.sequence == 7 and d.ack.lifetime == 1000
    assert d.actions == (AddBinding(HOA, COA, 4000),)
    b = cache.get(HOA)
    assert b.state is BindingState.REGISTERED and b.expires_at == 4100.0 and b.local == HA
    assert b.home_registration and not b.key_management


def test_home_registration_gets_a_ba_whatever_the_a_bit_says():
    # section 10.3.1: "Regardless of the setting of the Acknowledge (A) bit"
    cache, cfg = BindingCache(10), config()
    d = send(cache, cfg, bu(ack=False))
    assert d.status is BAStatus.ACCEPTED and d.ack_to == COA
    assert d.actions == (AddBinding(HOA, COA, 4000),)
    d = send(cache, cfg, bu(2, lifetime=0, ack=False))  # section 10.3.2 likewise
    assert d.status is BAStatus.ACCEPTED and d.ack.lifetime == 0


def test_refresh_same_coa_gives_refresh_action():
    cache, cfg = BindingCache(10), config()
    registered(cache, cfg, seq=1)
    d = send(cache, cfg, bu(2, lifetime=500), now=10.0)
    assert d.actions == (RefreshBinding(HOA, COA, 2000),)
    assert cache.get(HOA).expires_at == 2010.0


def test_move_to_new_coa_gives_tunnel_move():
    cache, cfg = BindingCache(10), config()
    registered(cache, cfg, seq=1)
    d = send(cache, cfg, bu(2), src=COA2)
    assert d.actions == (MoveBinding(HOA, COA, COA2, 4000),)
    assert cache.get(HOA).coa == COA2 and d.ack_to == COA2


def test_deregistration_tears_everything_down():
    cache, cfg = BindingCache(10), config()
    registered(cache, cfg, seq=1, l=True)
    d = send(cache, cfg, bu(2, lifetime=0))
    assert d.status is BAStatus.ACCEPTED and d.ack.lifetime == 0
    assert d.actions == (DeleteBinding(HOA, COA, LL),)
    assert HOA not in cache


# ----------------------------------------------------------------- lifetime


def test_granted_lifetime_is_capped_by_max_binding_lifetime():
    cache, cfg = BindingCache(10), config(max_binding_lifetime=100)
    d = send(cache, cfg, bu(lifetime=1000))
    assert d.ack.lifetime == 25 and cache.get(HOA).lifetime == 100


def test_granted_lifetime_is_capped_by_home_prefix_and_rounds_down_to_4s():
    cfg = config(prefix_valid_lifetime={HOME: 1003})
    assert granted_lifetime_units(65535 * 4, HOA, False, cfg, 0.0) == 250
    by_time = config(prefix_valid_lifetime=lambda p, now: 2000 - now)
    assert granted_lifetime_units(65535 * 4, HOA, False, by_time, 1000.0) == 250


def test_granted_lifetime_with_l_bit_is_capped_by_link_local_prefix():
    cfg = config(prefix_valid_lifetime={IPv6Network("fe80::/64"): 40})
    assert granted_lifetime_units(4000, HOA, True, cfg, 0.0) == 10
    assert granted_lifetime_units(4000, HOA, False, cfg, 0.0) == 1000


def test_requested_lifetime_below_the_caps_is_granted_as_is():
    cache, cfg = BindingCache(10), config()
    assert send(cache, cfg, bu(lifetime=3)).ack.lifetime == 3


def test_binding_refresh_advice_only_when_shorter_than_lifetime():
    cache = BindingCache(10)
    d = send(cache, config(refresh_advice=400), bu(lifetime=1000))
    assert d.ack.options == [BindingRefreshAdvice(refresh_interval=100)]
    d = send(cache, config(refresh_advice=400), bu(2, lifetime=50))
    assert d.ack.options == []


# ---------------------------------------------------------------------- DAD


def test_new_binding_starts_dad_and_answers_later():
    cache, cfg = BindingCache(10), config(dad_enabled=True)
    d = send(cache, cfg, bu(5), now=0.0)
    assert d.pending and d.ack is None and d.actions == (StartDAD(HOA, None),)
    assert cache.get(HOA).state is BindingState.DAD_PENDING
    d = dad_finished(HOA, True, cache, cfg, now=1.0)
    assert d.status is BAStatus.ACCEPTED and d.ack.sequence == 5 and d.ack_to == COA
    assert d.actions == (AddBinding(HOA, COA, 4000),)
    b = cache.get(HOA)
    assert b.state is BindingState.REGISTERED and b.sequence == 5 and b.expires_at == 4001.0


def test_dad_with_l_bit_covers_the_link_local_address():
    cache, cfg = BindingCache(10), config(dad_enabled=True)
    assert link_local_of(A("2001:db8::1234:5678:9abc:def0")) == A("fe80::1234:5678:9abc:def0")
    d = send(cache, cfg, bu(l=True))
    assert d.actions == (StartDAD(HOA, LL),)
    assert dad_finished(HOA, True, cache, cfg, 1.0).actions == (AddBinding(HOA, COA, 4000, LL),)


def test_failed_dad_gets_134_and_drops_the_entry():
    cache, cfg = BindingCache(10), config(dad_enabled=True)
    send(cache, cfg, bu(ack=False))
    d = dad_finished(HOA, False, cache, cfg, now=1.0)
    assert d.status is BAStatus.DUPLICATE_ADDRESS_DETECTION_FAILED and d.ack.sequence == 1
    assert d.actions == () and HOA not in cache


def test_refresh_and_move_do_not_repeat_dad():
    cache, cfg = BindingCache(10), config(dad_enabled=True)
    send(cache, cfg, bu(1))
    dad_finished(HOA, True, cache, cfg, 1.0)
    d = send(cache, cfg, bu(2), now=2.0, src=COA2)
    assert not d.pending and d.status is BAStatus.ACCEPTED
    assert not any(isinstance(a, StartDAD) for a in d.actions)


def test_bu_during_dad_supersedes_the_pending_one():
    cache, cfg = BindingCache(10), config(dad_enabled=True)
    send(cache, cfg, bu(10), now=0.0)
    d = send(cache, cfg, bu(11), now=1.5, src=COA2)  # MN retransmits from a new CoA
    assert d.pending and d.ack is None and d.actions == ()
    d = send(cache, cfg, bu(11), now=1.6)  # duplicate of the pending one: dropped
    assert d.pending and d.ack is None
    d = dad_finished(HOA, True, cache, cfg, now=2.0)
    assert d.ack.sequence == 11 and d.ack_to == COA2
    assert d.actions == (AddBinding(HOA, COA2, 4000),)
    # only one answer per DAD run
    assert dad_finished(HOA, True, cache, cfg, now=2.1).ack is None


def test_deregistration_during_dad_cancels_it():
    cache, cfg = BindingCache(10), config(dad_enabled=True)
    send(cache, cfg, bu(1))
    d = send(cache, cfg, bu(2, lifetime=0))
    assert d.status is BAStatus.ACCEPTED and d.actions == ()
    assert dad_finished(HOA, True, cache, cfg, 1.0).ack is None


# ------------------------------------------------------------------- expiry


def test_expire_at_the_right_moment_with_teardown():
    cache, cfg = BindingCache(10), config()
    registered(cache, cfg, seq=1, lifetime=25, now=100.0)  # 100 s
    assert expire(cache, 199.9) == []
    (d,) = expire(cache, 200.0)
    assert d.ack is None
    assert d.actions == (DeleteBinding(HOA, COA),)
    assert HOA not in cache


def test_refresh_postpones_expiry():
    cache, cfg = BindingCache(10), config()
    registered(cache, cfg, seq=1, lifetime=25, now=0.0)
    send(cache, cfg, bu(2, lifetime=25), now=90.0)
    assert expire(cache, 100.0) == []
    assert cache.next_expiry() == 190.0
    assert len(expire(cache, 190.0)) == 1


def test_pending_dad_entry_that_expires_needs_no_teardown():
    cache, cfg = BindingCache(10), config(dad_enabled=True)
    send(cache, cfg, bu(lifetime=1))
    (d,) = expire(cache, 4.0)
    assert d.actions == () and HOA not in cache


# ------------------------------------------------------------------ console


def test_console_add_and_delete_go_through_the_rules():
    cache, cfg = BindingCache(10), config()
    d = admin_add_binding(HOA, COA, 3600, cache, cfg, now=0.0)
    assert d.status is BAStatus.ACCEPTED and d.ack_to is None and d.ack.lifetime == 900
    assert d.actions == (AddBinding(HOA, COA, 3600),)
    d = admin_add_binding(HOA, COA2, 3600, cache, cfg, now=1.0)
    assert d.actions == (MoveBinding(HOA, COA, COA2, 3600),)
    assert admin_add_binding(A("2001:db8:5::1"), COA, 60, cache, cfg, 2.0).status is \
        BAStatus.NOT_HOME_SUBNET
    d = admin_delete_binding(HOA, cache, cfg, now=2.0)
    assert d.status is BAStatus.ACCEPTED and d.actions == (DeleteBinding(HOA, COA2),)
    assert admin_delete_binding(HOA, cache, cfg, now=3.0).status is \
        BAStatus.NOT_HOME_AGENT_FOR_THIS_MOBILE_NODE


def test_console_add_with_dad_never_sends_the_later_ba():
    cache, cfg = BindingCache(10), config(dad_enabled=True)
    assert admin_add_binding(HOA, COA, 3600, cache, cfg, 0.0).pending
    d = dad_finished(HOA, True, cache, cfg, 1.0)
    assert d.status is BAStatus.ACCEPTED and d.ack_to is None


# ----------------------------------------------------------------- property

HOAS = [A("2001:db8::1"), A("2001:db8::2"), A("2001:db8::3")]
event = st.one_of(
    st.tuples(st.just("bu"), st.sampled_from(HOAS), st.integers(0, 0xFFFF),
              st.integers(0, 0xFFFF), st.sampled_from([COA, COA2]), st.booleans()),
    st.tuples(st.just("dad"), st.sampled_from(HOAS), st.booleans()),
    st.tuples(st.just("tick"), st.floats(0, 300000)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(event, max_size=40), st.booleans(), st.integers(4, 300000))
def test_property_lifetimes_bounded_and_sequences_increase(events, dad, max_life):
    cfg = config(dad_enabled=dad, max_binding_lifetime=max_life)
    cache = BindingCache(2)
    now = 0.0
    last: dict = {}  # hoa -> last accepted sequence while bound
    for ev in events:
        if ev[0] == "tick":
            now += ev[1]
            expire(cache, now)
        elif ev[0] == "dad":
            dad_finished(ev[1], ev[2], cache, cfg, now)
        else:
            _, hoa, seq, lifetime, coa, ack = ev
            process_binding_update(ctx(bu(seq, lifetime, ack=ack), src=coa, hoa=hoa),
                                   cache, cfg, now)
        for b in cache:
            if b.state is not BindingState.REGISTERED:
                last.pop(b.hoa, None)  # a pending entry is a new binding
                continue
            if b.hoa in last and b.sequence != last[b.hoa]:
                assert sequence_is_newer(b.sequence, last[b.hoa])
            last[b.hoa] = b.sequence
        for hoa in [h for h in last if h not in cache]:
            del last[hoa]
        for b in cache:
            assert b.expires_at <= now + cfg.max_binding_lifetime
            assert b.lifetime <= cfg.max_binding_lifetime and b.lifetime % 4 == 0


def test_deregistration_without_hao_from_off_home_source_is_discarded():
    cache, cfg = BindingCache(10), config()
    registered(cache, cfg, seq=1)
    d = send(cache, cfg, bu(2, lifetime=0), src=COA2, hoa=None)
    assert d.ack is None and HOA in cache


def test_correspondent_bu_for_a_correspondent_binding_is_not_treated_as_home():
    # a non-home entry (none is created here, but the cache allows it) is left alone
    cache, cfg = BindingCache(10), config()
    registered(cache, cfg, seq=1)
    cache.get(HOA).home_registration = False
    d = send(cache, cfg, bu(2, h=False))
    assert d.ack is None and d.actions == ()
