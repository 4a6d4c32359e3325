from ipaddress import IPv6Address

import pytest

from ha.core.binding_cache import Binding, BindingCache, BindingState, CacheFull

COA = IPv6Address("2001:db8:1::1")


def hoa(i: int) -> IPv6Address:
    return IPv6Address(0x20010DB8 << 96 | i)


def binding(i: int, expires_at: float, now: float = 0.0) -> Binding:
    return Binding(hoa=hoa(i), coa=COA, lifetime=int(expires_at - now),
                   registered_at=now, expires_at=expires_at, sequence=i & 0xFFFF)


def test_lookup_len_contains_and_capacity():
    cache = BindingCache(3)
    assert cache.capacity == 3 and len(cache) == 0 and not cache.full
    cache.put(binding(1, 100.0))
    cache.put(binding(2, 100.0))
    assert len(cache) == 2
    assert hoa(1) in cache and hoa(9) not in cache
    assert cache.get(hoa(2)).hoa == hoa(2)
    assert cache.get(hoa(9)) is None


def test_put_beyond_capacity_raises_but_replacing_is_allowed():
    cache = BindingCache(1)
    cache.put(binding(1, 100.0))
    assert cache.full
    cache.put(binding(1, 200.0))  # same home address: a replacement, not a new entry
    assert cache.get(hoa(1)).expires_at == 200.0
    with pytest.raises(CacheFull):
        cache.put(binding(2, 100.0))
    assert len(cache) == 1


def test_iteration_is_sorted_by_home_address():
    cache = BindingCache(10)
    for i in (5, 1, 3):
        cache.put(binding(i, 10.0))
    assert [b.hoa for b in cache] == [hoa(1), hoa(3), hoa(5)]


def test_expired_returns_only_bindings_whose_lifetime_ran_out_and_removes_them():
    cache = BindingCache(10)
    cache.put(binding(1, 10.0))
    cache.put(binding(2, 20.0))
    cache.put(binding(3, 30.0))
    assert cache.expired(9.999) == []
    assert [b.hoa for b in cache.expired(20.0)] == [hoa(1), hoa(2)]  # 20.0 is the expiry itself
    assert len(cache) == 1
    assert cache.expired(25.0) == []
    assert [b.hoa for b in cache.expired(1e9)] == [hoa(3)]
    assert len(cache) == 0


def test_refresh_moves_expiry_and_old_heap_entry_is_ignored():
    cache = BindingCache(10)
    b = binding(1, 10.0)
    cache.put(b)
    b.expires_at = 50.0
    cache.put(b)  # reschedule
    assert cache.expired(10.0) == []
    assert cache.next_expiry() == 50.0
    assert cache.expired(50.0) == [b]


def test_removed_binding_never_comes_out_of_expired():
    cache = BindingCache(10)
    cache.put(binding(1, 10.0))
    assert cache.remove(hoa(1)).hoa == hoa(1)
    assert cache.remove(hoa(1)) is None
    assert cache.expired(100.0) == []
    assert cache.next_expiry() is None


def test_readded_binding_with_the_same_time_expires_once():
    cache = BindingCache(10)
    cache.put(binding(1, 10.0))
    cache.remove(hoa(1))
    cache.put(binding(1, 10.0))
    assert len(cache.expired(10.0)) == 1
    assert len(cache) == 0


def test_heap_stays_bounded_under_many_refreshes():
    cache = BindingCache(1000)
    bindings = [binding(i, 100.0) for i in range(1000)]
    for b in bindings:
        cache.put(b)
    for round_ in range(20):
        for b in bindings:
            b.expires_at = 100.0 + round_
            cache.put(b)
    assert len(cache._heap) <= 2 * len(cache) + 64
    assert len(cache.expired(118.0)) == 0
    assert len(cache.expired(119.0)) == 1000


def test_state_defaults_to_registered_and_pending_fields_are_empty():
    b = binding(1, 10.0)
    assert b.state is BindingState.REGISTERED
    assert b.pending_sequence is None and b.pending_ack_to is None
    assert b.remaining(4.0) == 6.0 and b.remaining(11.0) == 0.0
