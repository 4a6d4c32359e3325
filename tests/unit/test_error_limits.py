from ipaddress import IPv6Address

from ha.core.error_limits import ErrorLimiter

A, B = IPv6Address("2001:db8:1::1"), IPv6Address("2001:db8:1::2")


def test_one_error_per_destination_per_second():
    lim = ErrorLimiter()
    assert lim.allow(A, 100.0)
    assert not lim.allow(A, 100.5)
    assert lim.allow(B, 100.5)  # another destination is not held back
    assert lim.allow(A, 101.0)


def test_overall_cap_per_second_window():
    lim = ErrorLimiter(overall=3)
    sent = [lim.allow(IPv6Address(f"2001:db8:1::{i:x}"), 50.0) for i in range(1, 6)]
    assert sent == [True, True, True, False, False]
    assert lim.allow(IPv6Address("2001:db8:1::99"), 51.0)  # a new window


def test_memory_of_destinations_is_bounded():
    lim = ErrorLimiter(remember=10, overall=1000)
    for i in range(100):
        assert lim.allow(IPv6Address(f"2001:db8:2::{i:x}"), 7.0)
    assert len(lim._last) <= 10
