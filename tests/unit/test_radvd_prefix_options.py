"""RA sender settings that change what the prefix and home agent options say.

radvd's `prefix ::/64`, DecrementLifetimes (radvd.conf(5)) and AdvMobRtrSupportFlag
(RFC 3963 section 7.1), checked on the encoded RA as a host would decode it.
No sleeps: the clock is a number the test moves.
"""

from ipaddress import IPv6Address, IPv6Interface, IPv6Network

from ha.wire.icmpv6 import HomeAgentInformation, PrefixInformation, decode_icmpv6, option
from radvd.config import INFINITY, parse
from radvd.scheduler import Link, RAScheduler

LL = IPv6Address("fe80::1")
MAC = bytes.fromhex("020000000001")


def iface(body: str):
    return parse("interface wlan0 {\n AdvSendAdvert on;\n" + body + "\n};\n").interfaces[0]


def link(*addrs: str) -> Link:
    nets = tuple(IPv6Interface(a) for a in addrs)
    return Link("wlan0", LL, MAC, 1500, tuple(a.ip for a in nets), nets)


class Fixed:
    """Intervals at their upper bound: a predictable schedule."""

    def uniform(self, a, b):
        return b


def ra_at(s: RAScheduler, now: float):
    """Advance to `now`, answering every timer on the way; the last RA sent."""
    last = None
    while (t := s.get_timer()) is not None and t <= now:
        s.handle_timer(t)
        for x in s.datagrams_to_send():
            last = x
    return last


def pios(x):
    msg = decode_icmpv6(x.data, x.src, x.dst)
    return [o for o in msg.options if isinstance(o, PrefixInformation)]


# ------------------------------------------------------------------ prefix ::/64

def test_all_zero_prefix_advertises_each_prefix_of_the_interface():
    c = iface("prefix ::/64 { AdvOnLink on; AdvAutonomous off; AdvValidLifetime 3600;"
              " AdvPreferredLifetime 1800; };")
    s = RAScheduler(c, link("2001:db8:1::1/64", "2001:db8:1::2/64", "2001:db8:2::5/56",
                            "fd00:7::9/64"), now=0.0, random=Fixed())
    s.handle_timer(0.0)
    (x,) = s.datagrams_to_send()
    got = pios(x)
    # one option per prefix (two addresses in 2001:db8:1::/64 give one), their own lengths
    assert [p.prefix for p in got] == [IPv6Network("2001:db8:1::/64"),
                                       IPv6Network("2001:db8:2::/56"),
                                       IPv6Network("fd00:7::/64")]
    assert all(p.on_link and not p.autonomous and (p.valid_lifetime, p.preferred_lifetime)
               == (3600, 1800) for p in got)
    assert IPv6Network("::/64") not in [p.prefix for p in got]


def test_all_zero_prefix_with_router_address_carries_our_address():
    c = iface("AdvHomeAgentFlag on; prefix ::/64 { AdvRouterAddr on; };")
    s = RAScheduler(c, link("2001:db8::1/64"), now=0.0, random=Fixed())
    s.handle_timer(0.0)
    (p,) = pios(s.datagrams_to_send()[0])
    assert p.router_address and p.router == IPv6Address("2001:db8::1")    # RFC 6275 §7.2


def test_all_zero_prefix_leaves_a_listed_prefix_to_its_own_stanza():
    c = iface("prefix 2001:db8:1::/64 { AdvAutonomous off; }; prefix ::/64 { };")
    s = RAScheduler(c, link("2001:db8:1::1/64", "2001:db8:2::1/64"), now=0.0, random=Fixed())
    s.handle_timer(0.0)
    got = pios(s.datagrams_to_send()[0])
    assert [(p.prefix, p.autonomous) for p in got] == [(IPv6Network("2001:db8:1::/64"), False),
                                                      (IPv6Network("2001:db8:2::/64"), True)]


def test_all_zero_prefix_follows_the_interface_addresses():
    c = iface("prefix ::/64 { };")
    s = RAScheduler(c, link(), now=0.0, random=Fixed())
    s.handle_timer(0.0)
    assert pios(s.datagrams_to_send()[0]) == []        # no global address yet: no prefix
    s.set_link(link("2001:db8:9::1/64"))
    x = ra_at(s, 1000.0)
    assert [p.prefix for p in pios(x)] == [IPv6Network("2001:db8:9::/64")]


# ------------------------------------------------------------------ DecrementLifetimes

def lifetimes_sent(s, start=10.0, until=2000):
    """(seconds since start, [(valid, preferred) of each PIO]) for every RA the
    scheduler sends, driven by its own timer up to `until`."""
    seen = []
    t = s.get_timer()
    while t is not None and t < until:
        s.handle_timer(t)
        for x in s.datagrams_to_send():
            seen.append((t - start, [(p.valid_lifetime, p.preferred_lifetime) for p in pios(x)]))
        t = s.get_timer()
    return seen


def test_lifetimes_count_down_in_each_ra_then_the_prefix_goes():
    c = iface("MaxRtrAdvInterval 200; MinRtrAdvInterval 100;"
              " prefix 2001:db8::/64 { DecrementLifetimes on; AdvValidLifetime 1000;"
              " AdvPreferredLifetime 500; };")
    seen = lifetimes_sent(RAScheduler(c, link("2001:db8::1/64"), now=10.0, random=Fixed()))
    # three initial RAs 16 s apart (RFC 4861 §6.2.4), then every 200 s
    assert seen[:5] == [(0.0, [(1000, 500)]), (16.0, [(984, 484)]), (32.0, [(968, 468)]),
                        (232.0, [(768, 268)]), (432.0, [(568, 68)])]
    # the RA after the preferred lifetime ran out says 0 once, later ones leave it out
    assert seen[5] == (632.0, [(368, 0)])
    assert seen[6][1] == [] and seen[7][1] == []


def test_a_prefix_deprecated_from_the_start_is_sent_until_its_valid_lifetime_ends():
    # denali retiring a renumbered prefix (RFC 7084 L-13): preferred 0 at once,
    # the valid lifetime counted down in every RA, then left out
    c = iface("MaxRtrAdvInterval 200; MinRtrAdvInterval 100;"
              " prefix 2001:db8::/64 { DecrementLifetimes on; AdvValidLifetime 500;"
              " AdvPreferredLifetime 0; };")
    seen = lifetimes_sent(RAScheduler(c, link("2001:db8::1/64"), now=10.0, random=Fixed()))
    assert seen[:5] == [(0.0, [(500, 0)]), (16.0, [(484, 0)]), (32.0, [(468, 0)]),
                        (232.0, [(268, 0)]), (432.0, [(68, 0)])]
    assert seen[5] == (632.0, [(0, 0)])  # once at 0, then gone
    assert seen[6][1] == []


def test_without_decrement_the_lifetimes_stay():
    c = iface("prefix 2001:db8::/64 { AdvValidLifetime 1000; AdvPreferredLifetime 500; };")
    s = RAScheduler(c, link(), now=0.0, random=Fixed())
    x = ra_at(s, 5000.0)
    assert [(p.valid_lifetime, p.preferred_lifetime) for p in pios(x)] == [(1000, 500)]


def test_infinite_lifetimes_do_not_count_down():
    c = iface("prefix 2001:db8::/64 { DecrementLifetimes on; AdvValidLifetime infinity;"
              " AdvPreferredLifetime 700; };")
    s = RAScheduler(c, link(), now=0.0, random=Fixed())
    x = ra_at(s, 600.0)
    (p,) = pios(x)
    assert p.valid_lifetime == INFINITY and 0 < p.preferred_lifetime < 700


def test_reload_keeps_the_countdown_of_an_unchanged_prefix_and_restarts_a_changed_one():
    body = ("MaxRtrAdvInterval 200; MinRtrAdvInterval 100;"
            " prefix 2001:db8::/64 { DecrementLifetimes on; AdvValidLifetime 1000;"
            " AdvPreferredLifetime 900; };")
    s = RAScheduler(iface(body), link(), now=0.0, random=Fixed())
    ra_at(s, 300.0)
    s.reconfigure(iface(body + " AdvManagedFlag on;"), 300.0)
    x = ra_at(s, 500.0)
    assert x is not None
    ((valid, _),) = [(p.valid_lifetime, p.preferred_lifetime) for p in pios(x)]
    assert valid < 800                       # still counting from 0, not from the reload
    s.reconfigure(iface(body.replace("AdvValidLifetime 1000", "AdvValidLifetime 2000")), 500.0)
    x = ra_at(s, 700.0)
    ((valid, _),) = [(p.valid_lifetime, p.preferred_lifetime) for p in pios(x)]
    assert 1800 <= valid < 2000              # a new stanza starts a new countdown


def test_final_ras_deprecate_with_the_counted_down_valid_lifetime():
    c = iface("prefix 2001:db8::/64 { DecrementLifetimes on; DeprecatePrefix on;"
              " AdvValidLifetime 7300; AdvPreferredLifetime 7000; };")
    s = RAScheduler(c, link(), now=0.0, random=Fixed())
    ra_at(s, 1000.0)
    s.stop(1000.0)
    x = ra_at(s, 1100.0)
    assert x.kind == "final"
    (p,) = pios(x)
    assert p.preferred_lifetime == 0 and p.valid_lifetime <= 7300 - 1000    # under 7201


# ------------------------------------------------------------------ AdvMobRtrSupportFlag

def test_mobile_router_support_sets_the_r_flag():
    c = iface("AdvHomeAgentFlag on; AdvHomeAgentInfo on; AdvMobRtrSupportFlag on;")
    s = RAScheduler(c, link(), now=0.0, random=Fixed())
    s.handle_timer(0.0)
    (x,) = s.datagrams_to_send()
    hai = option(decode_icmpv6(x.data, x.src, x.dst), HomeAgentInformation)
    # sent although preference and lifetime are the defaults: the R flag must be told
    assert hai is not None and hai.mobile_router
    c = iface("AdvHomeAgentFlag on; AdvHomeAgentInfo on; HomeAgentPreference 3;")
    s = RAScheduler(c, link(), now=0.0, random=Fixed())
    s.handle_timer(0.0)
    hai = option(decode_icmpv6(s.datagrams_to_send()[0].data), HomeAgentInformation)
    assert hai == HomeAgentInformation(3, c.adv_default_lifetime, mobile_router=False)
