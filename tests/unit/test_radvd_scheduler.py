"""RA scheduler (radvd/scheduler.py): timing decisions with an injected clock and random.

No sleeps: time is a number the test moves forward.
"""

import random
from ipaddress import IPv6Address, IPv6Network

import pytest

from ha.wire.icmpv6 import (AdvertisementInterval, HomeAgentInformation, MTU, PrefixInformation,
                       RecursiveDNSServer, RouterAdvertisement, RouterSolicitation,
                       SourceLinkLayerAddress, decode_icmpv6, encode_icmpv6, option)
from radvd.config import parse
from radvd.scheduler import (ALL_NODES, MAX_INITIAL_RTR_ADVERT_INTERVAL, MAX_RA_DELAY_TIME,
                             Link, RAScheduler, advertisement_interval_ms, build_ra)

LL = IPv6Address("fe80::202:6fff:fe06:bcf")
MAC = bytes.fromhex("00026f060bcf")
MN_LL = IPv6Address("fe80::205:5dff:fef2:db2b")
LINK = Link("wlan0", LL, MAC, 1500, (IPv6Address("2001:db8::"),))


def iface(body: str):
    return parse("interface wlan0 {\n AdvSendAdvert on;\n" + body + "\n};\n").interfaces[0]


SEED_HA = iface("AdvIntervalOpt on; MaxRtrAdvInterval 10; MinRtrAdvInterval 1;"
                " MinDelayBetweenRAs 1; AdvHomeAgentFlag on;"
                " prefix 2001:db8::/64 { AdvOnLink on; AdvAutonomous on; AdvRouterAddr on; };")


class Recorder:
    """A random source that is seeded and remembers what it was asked."""

    def __init__(self, seed=1, fixed=None):
        self.r = random.Random(seed)
        self.fixed = fixed
        self.calls = []

    def uniform(self, a, b):
        v = self.fixed(a, b) if self.fixed else self.r.uniform(a, b)
        self.calls.append((a, b, v))
        return v


def run(sched, until, now=0.0, rs_at=()):
    """Drive the scheduler like the service does; return [(time, Transmit)]."""
    sent = []
    rs_at = sorted(rs_at)
    while True:
        t = sched.get_timer()
        if rs_at and (t is None or rs_at[0][0] < t):
            when, data, src, hop = rs_at.pop(0)
            if when > until:
                break
            sched.receive_rs(data, src, hop, when)
            continue
        if t is None or t > until:
            break
        now = max(now, t)
        sched.handle_timer(now)
        sent.extend((now, x) for x in sched.datagrams_to_send())
    return sent


def rs(src=MN_LL, slla=None, code=0):
    msg = RouterSolicitation([SourceLinkLayerAddress(slla)] if slla else [])
    data = bytearray(encode_icmpv6(msg, src, IPv6Address("ff02::2")))
    data[1] = code
    return bytes(data)


# ------------------------------------------------------------------ periodic timing


def gaps(sent):
    times = [t for t, x in sent if x.dst == ALL_NODES]
    return [b - a for a, b in zip(times, times[1:])]


def test_first_ra_at_start_then_initial_ras_at_most_16s_apart_then_within_bounds():
    c = iface("")        # radvd defaults: Max 600, Min 198
    s = RAScheduler(c, LINK, now=100.0, random=Recorder(7))
    assert s.get_timer() == 100.0
    sent = run(s, until=100.0 + 20000, now=100.0)
    assert sent[0][0] == 100.0
    g = gaps(sent)
    assert len(g) > 20
    # RFC 4861 §6.2.4: the first MAX_INITIAL_RTR_ADVERTISEMENTS come at most 16 s apart
    assert all(x <= MAX_INITIAL_RTR_ADVERT_INTERVAL for x in g[:2])
    for x in g[2:]:
        assert c.min_rtr_adv_interval <= x <= c.max_rtr_adv_interval


def test_intervals_are_drawn_from_min_max():
    rec = Recorder(3)
    s = RAScheduler(SEED_HA, LINK, now=0.0, random=rec)
    run(s, until=1000)
    draws = [(a, b) for a, b, _ in rec.calls]
    assert set(draws) == {(1.0, 10.0)}
    # the values actually spread over the range (uniform, not a constant)
    values = [v for _, _, v in rec.calls]
    assert min(values) < 3 and max(values) > 8


def test_mobile_ipv6_fast_intervals_and_min_delay_between_ras():
    c = iface("AdvHomeAgentFlag on; MaxRtrAdvInterval 0.07; MinRtrAdvInterval 0.03;"
              " MinDelayBetweenRAs 0.05;")
    s = RAScheduler(c, LINK, now=0.0, random=Recorder(5))
    g = gaps(run(s, until=60.0))
    assert len(g) > 500
    assert min(g) >= 0.05 - 1e-9         # MinDelayBetweenRAs wins over MinRtrAdvInterval
    assert max(g) <= 0.07 + 1e-9


def test_unicast_only_sends_no_periodic_ras():
    s = RAScheduler(iface("UnicastOnly on;"), LINK, now=0.0, random=Recorder())
    assert s.get_timer() is None
    s.receive_rs(rs(), MN_LL, 255, 5.0)
    t = s.get_timer()
    assert 5.0 <= t <= 5.0 + MAX_RA_DELAY_TIME
    s.handle_timer(t)
    (x,) = s.datagrams_to_send()
    assert x.dst == MN_LL and x.kind == "unicast"


def test_adv_send_advert_off_sends_nothing():
    s = RAScheduler(iface("AdvSendAdvert off;"), LINK, now=0.0, random=Recorder())
    assert s.get_timer() is None
    s.receive_rs(rs(), MN_LL, 255, 1.0)
    assert s.get_timer() is None and s.rs_ignored == 1


# ------------------------------------------------------------------ solicitations


def multicast_reply_iface(extra=""):
    return iface("AdvRASolicitedUnicast off; MaxRtrAdvInterval 600; MinDelayBetweenRAs 3;"
                 + extra)


def test_rs_answered_within_max_ra_delay():
    s = RAScheduler(multicast_reply_iface(), LINK, now=0.0, random=Recorder(11))
    run(s, until=60.0)                      # the initial RAs, then the next is >= 198 s away
    assert s.get_timer() > 200.0
    s.receive_rs(rs(), MN_LL, 255, 100.0)   # long after the last: no rate limit applies
    t = s.get_timer()
    assert 100.0 <= t <= 100.0 + MAX_RA_DELAY_TIME
    s.handle_timer(t)
    (x,) = s.datagrams_to_send()
    assert x.dst == ALL_NODES and x.kind == "solicited"
    # the periodic timer restarts from the solicited RA
    assert s.get_timer() - t >= s.config.min_rtr_adv_interval


def test_rs_right_after_an_ra_waits_min_delay_between_ras_plus_the_delay():
    rec = Recorder(fixed=lambda a, b: b if b == MAX_RA_DELAY_TIME else a)
    s = RAScheduler(multicast_reply_iface(), LINK, now=0.0, random=rec)
    run(s, until=0.0)
    s.receive_rs(rs(), MN_LL, 255, 1.0)
    assert s.get_timer() == pytest.approx(0.0 + 3 + MAX_RA_DELAY_TIME)


def test_rs_coalesced_into_the_next_ra_when_it_is_due_sooner():
    c = iface("AdvRASolicitedUnicast off; AdvHomeAgentFlag on; MaxRtrAdvInterval 0.07;"
              " MinRtrAdvInterval 0.03; MinDelayBetweenRAs 0.03;")
    s = RAScheduler(c, LINK, now=0.0, random=Recorder(2, fixed=lambda a, b: b))
    run(s, until=0.0)
    due = s.get_timer()
    s.receive_rs(rs(), MN_LL, 255, 0.01)
    assert s.get_timer() == due             # the RS rides on the RA already scheduled
    s.handle_timer(due)
    assert len(s.datagrams_to_send()) == 1


def test_rs_unicast_reply_to_the_soliciter():
    s = RAScheduler(SEED_HA, LINK, now=0.0, random=Recorder(4))   # radvd default: unicast on
    run(s, until=0.0)
    s.receive_rs(rs(slla=bytes(6)), MN_LL, 255, 0.2)
    t = s.get_timer()
    assert 0.2 <= t <= 0.2 + MAX_RA_DELAY_TIME
    s.handle_timer(t)
    (x,) = s.datagrams_to_send()
    assert x.dst == MN_LL and x.src == LL and x.kind == "unicast"
    # a second RS from the same node while one reply is pending makes no second reply
    s.receive_rs(rs(), MN_LL, 255, 0.3)
    s.receive_rs(rs(), MN_LL, 255, 0.31)
    s.handle_timer(0.9)
    assert len(s.datagrams_to_send()) == 1


def test_rs_from_unspecified_gets_a_multicast_reply():
    s = RAScheduler(iface("MaxRtrAdvInterval 600;"), LINK, now=0.0, random=Recorder(4))
    run(s, until=40.0)
    assert s.get_timer() > 51.0
    s.receive_rs(rs(src=IPv6Address("::")), IPv6Address("::"), 255, 50.0)
    t = s.get_timer()
    assert 50.0 <= t <= 50.5
    s.handle_timer(t)
    assert [x.dst for x in s.datagrams_to_send()] == [ALL_NODES]


@pytest.mark.parametrize("data,src,hop,why", [
    (rs(), MN_LL, 64, "hop limit not 255"),
    (rs(code=1), MN_LL, 255, "code not 0"),
    (rs()[:3], MN_LL, 255, "truncated"),
    (rs() + b"\x01", MN_LL, 255, "option overrun"),
    (rs()[:8] + b"\x01\x00" + bytes(6), MN_LL, 255, "zero-length option"),
    (rs(src=IPv6Address("::"), slla=MAC), IPv6Address("::"), 255, "SLLA from ::"),
])
def test_malformed_rs_counted_and_dropped(data, src, hop, why):
    s = RAScheduler(SEED_HA, LINK, now=0.0, random=Recorder())
    run(s, until=0.0)
    before = s.get_timer()
    s.receive_rs(data, src, hop, 0.5)
    assert s.rs_received == 1 and s.rs_dropped_malformed == 1, why
    assert s.get_timer() == before


def test_non_rs_is_not_counted():
    s = RAScheduler(SEED_HA, LINK, now=0.0, random=Recorder())
    s.receive_rs(b"\x86\x00\x00\x00", MN_LL, 255, 0.0)
    s.receive_rs(b"", MN_LL, 255, 0.0)
    assert s.rs_received == 0


def test_clients_list_gets_unicast_periodic_ras_and_others_are_refused():
    c = iface("MaxRtrAdvInterval 600; clients { fe80::1; fe80::2; };")
    s = RAScheduler(c, LINK, now=0.0, random=Recorder())
    s.handle_timer(0.0)
    assert [x.dst for x in s.datagrams_to_send()] == [IPv6Address("fe80::1"),
                                                      IPv6Address("fe80::2")]
    s.receive_rs(rs(), MN_LL, 255, 1.0)
    assert s.rs_ignored == 1


# ------------------------------------------------------------------ stop and reload


def test_stop_sends_three_final_ras_with_router_lifetime_zero():
    s = RAScheduler(SEED_HA, LINK, now=0.0, random=Recorder(9))
    sent = run(s, until=25.0)
    last = sent[-1][0]
    s.stop(25.0)
    assert not s.finished
    finals = run(s, until=1e9, now=25.0)
    assert s.finished and s.get_timer() is None
    assert len(finals) == 3
    assert all(x.kind == "final" and x.dst == ALL_NODES for _, x in finals)
    for _, x in finals:
        ra = decode_icmpv6(x.data, x.src, x.dst)
        assert ra.router_lifetime == 0
    times = [last] + [t for t, _ in finals]
    assert all(b - a >= SEED_HA.min_delay_between_ras - 1e-9 for a, b in zip(times, times[1:]))


def test_stop_before_any_ra_sends_nothing():
    s = RAScheduler(SEED_HA, LINK, now=0.0, random=Recorder())
    s.stop(0.0)
    assert s.finished and s.get_timer() is None


def test_reload_keeps_the_schedule():
    s = RAScheduler(SEED_HA, LINK, now=0.0, random=Recorder(1))
    run(s, until=30.0)
    due = s.get_timer()
    new = iface("AdvIntervalOpt on; MaxRtrAdvInterval 10; MinRtrAdvInterval 1;"
                " MinDelayBetweenRAs 1; AdvHomeAgentFlag on; AdvHomeAgentInfo on;"
                " HomeAgentPreference 5;")
    s.reconfigure(new, 30.0)
    assert s.get_timer() == due
    s.handle_timer(due)
    (x,) = s.datagrams_to_send()
    assert option(decode_icmpv6(x.data), HomeAgentInformation) == HomeAgentInformation(5, 30)


def test_reload_with_shorter_max_brings_the_next_ra_forward():
    s = RAScheduler(iface(""), LINK, now=0.0, random=Recorder(1))
    run(s, until=100.0)
    s.reconfigure(iface("MaxRtrAdvInterval 4; MinRtrAdvInterval 3;"), 100.0)
    assert s.get_timer() <= 104.0


# ------------------------------------------------------------------ content


def test_seed_ra_content():
    ra = build_ra(SEED_HA, LINK)
    assert isinstance(ra, RouterAdvertisement)
    assert ra.home_agent and ra.router_lifetime == 30 and ra.cur_hop_limit == 64
    pio = option(ra, PrefixInformation)
    assert pio.prefix == IPv6Network("2001:db8::/64")
    assert pio.router_address and pio.router == IPv6Address("2001:db8::")
    assert option(ra, AdvertisementInterval) == AdvertisementInterval(10000)
    assert option(ra, SourceLinkLayerAddress) == SourceLinkLayerAddress(MAC)
    assert option(ra, HomeAgentInformation) is None      # AdvHomeAgentInfo off in the seed
    assert option(ra, MTU) is None


def test_full_ra_content_and_options():
    c = iface("AdvHomeAgentFlag on; AdvHomeAgentInfo on; HomeAgentPreference 10;"
              " HomeAgentLifetime 600; MaxRtrAdvInterval 0.07; MinRtrAdvInterval 0.03;"
              " MinDelayBetweenRAs 0.03; AdvIntervalOpt on; AdvLinkMTU 1400;"
              " AdvDefaultLifetime 1800; AdvSourceLLAddress off; AdvManagedFlag on;"
              " AdvDefaultPreference high;"
              " prefix 2001:db8:0:1::/64 { AdvRouterAddr on; };"
              " prefix 2001:db8:0:2::7/64 { AdvRouterAddr on; };"
              " RDNSS 2001:db8::53 { };")
    ra = build_ra(c, LINK)
    assert ra.managed and ra.preference == 1
    assert option(ra, HomeAgentInformation) == HomeAgentInformation(10, 600)
    assert option(ra, AdvertisementInterval).interval_ms == 90   # 70 ms + 20 (radvd)
    assert option(ra, MTU) == MTU(1400)
    assert option(ra, SourceLinkLayerAddress) is None
    pios = [o for o in ra.options if isinstance(o, PrefixInformation)]
    assert pios[0].router is None            # no address of ours in that prefix
    assert pios[1].router == IPv6Address("2001:db8:0:2::7")
    assert option(ra, RecursiveDNSServer).lifetime == 1    # 2 * 0.07 -> at least 1
    final = build_ra(c, LINK, final=True)
    assert final.router_lifetime == 0 and final.preference == 0
    assert option(final, HomeAgentInformation) is None
    assert option(final, RecursiveDNSServer).lifetime == 0


def test_interval_option_value():
    assert advertisement_interval_ms(10) == 10000
    assert advertisement_interval_ms(0.07) == 90
    assert advertisement_interval_ms(0.2) == 200


def test_transmit_bytes_decode_in_scapy():
    scapy = pytest.importorskip("scapy.layers.inet6")
    c = iface("AdvHomeAgentFlag on; AdvHomeAgentInfo on; HomeAgentPreference 10;"
              " AdvIntervalOpt on; MaxRtrAdvInterval 10; MinRtrAdvInterval 1;"
              " MinDelayBetweenRAs 1; AdvLinkMTU 1400;"
              " prefix 2001:db8::/64 { AdvRouterAddr on; };")
    s = RAScheduler(c, LINK, now=0.0, random=Recorder())
    s.handle_timer(0.0)
    (x,) = s.datagrams_to_send()
    pkt = scapy.IPv6(src=str(x.src), dst=str(x.dst), hlim=255) / scapy.ICMPv6ND_RA(x.data)
    pkt = scapy.IPv6(bytes(pkt))
    ra = pkt[scapy.ICMPv6ND_RA]
    assert ra.H == 1 and ra.routerlifetime == 30
    # the checksum we computed is the one scapy computes
    fresh = scapy.IPv6(src=str(x.src), dst=str(x.dst)) / scapy.ICMPv6ND_RA(x.data)
    del fresh[scapy.ICMPv6ND_RA].cksum
    assert scapy.IPv6(bytes(fresh))[scapy.ICMPv6ND_RA].cksum == ra.cksum
    assert pkt[scapy.ICMPv6NDOptPrefixInfo].R == 1
    assert pkt[scapy.ICMPv6NDOptPrefixInfo].prefix == "2001:db8::"
    assert pkt[scapy.ICMPv6NDOptAdvInterval].advint == 10000
    assert pkt[scapy.ICMPv6NDOptHAInfo].pref == 10
    assert pkt[scapy.ICMPv6NDOptHAInfo].lifetime == 30
    assert pkt[scapy.ICMPv6NDOptMTU].mtu == 1400
    assert pkt[scapy.ICMPv6NDOptSrcLLAddr].lladdr == "00:02:6f:06:0b:cf"


def test_late_timer_does_not_stretch_the_schedule_but_min_delay_holds():
    c = iface("AdvHomeAgentFlag on; MaxRtrAdvInterval 0.07; MinRtrAdvInterval 0.03;"
              " MinDelayBetweenRAs 0.03;")
    s = RAScheduler(c, LINK, now=0.0, random=Recorder(8))
    sends, lateness = [], 0.004       # the caller always wakes 4 ms late
    for _ in range(300):
        t = s.get_timer() + lateness
        s.handle_timer(t)
        if s.datagrams_to_send():
            sends.append(t)
    g = [b - a for a, b in zip(sends, sends[1:])]
    assert min(g) >= 0.03 - 1e-9
    # the mean gap stays the mean of [Min, Max], not shifted by the lateness
    assert abs(sum(g) / len(g) - 0.05) < 0.003


def test_very_late_timer_restarts_from_now():
    s = RAScheduler(SEED_HA, LINK, now=0.0, random=Recorder(2))
    s.handle_timer(0.0)
    s.datagrams_to_send()
    due = s.get_timer()
    s.handle_timer(due + 100.0)      # e.g. the board was suspended
    assert s.get_timer() >= due + 100.0 + SEED_HA.min_rtr_adv_interval


def test_service_counters_on_the_console_before_any_interface():
    """RAService's `ra` console command (the real ha.daemon.console), no sockets needed."""
    import asyncio
    import json
    console_mod = pytest.importorskip("ha.daemon.console")
    from radvd.service import RAService
    svc = RAService(parse("interface wlan0 { AdvSendAdvert on; };"))
    console = console_mod.Console(0)
    svc.register_commands(console)
    text = asyncio.run(console.run_command("ra"))
    assert text.splitlines()[0].startswith("wlan0 waiting ras_sent 0 rs_received 0 "
                                           "rs_dropped_malformed 0")
    data = json.loads(asyncio.run(console.run_command("ra json")))
    assert data["total"]["ras_sent"] == 0 and data["wlan0"]["advertising"] is False


def test_rs_flood_from_many_sources_keeps_bounded_state():
    from radvd.scheduler import MAX_PENDING_UNICAST
    s = RAScheduler(iface("UnicastOnly on;"), LINK, now=0.0, random=Recorder())
    for i in range(MAX_PENDING_UNICAST + 50):
        src = IPv6Address(f"fe80::{i + 1:x}")
        s.receive_rs(rs(src=src), src, 255, 0.0)
    assert s.rs_received == MAX_PENDING_UNICAST + 50
    assert s.rs_ignored == 50
    s.handle_timer(1.0)
    assert len(s.datagrams_to_send()) == MAX_PENDING_UNICAST


# ------------------------------------------------------------------ MaxRADelay (fast answers)


def test_max_ra_delay_defaults_to_rfc_4861_and_draws_the_delay_from_0_to_half_a_second():
    assert SEED_HA.max_ra_delay == MAX_RA_DELAY_TIME == 0.5
    rec = Recorder(9)
    s = RAScheduler(SEED_HA, LINK, now=0.0, random=rec)
    run(s, until=0.0)
    rec.calls.clear()
    for i in range(40):
        src = IPv6Address(f"fe80::{i + 1:x}")
        s.receive_rs(rs(src=src), src, 255, 0.2)
        assert s.datagrams_to_send() == []        # nothing at once: the random delay first
    assert [(a, b) for a, b, _ in rec.calls] == [(0.0, 0.5)] * 40
    dues = sorted(s._pending_unicast.values())
    assert 0.2 <= dues[0] and dues[-1] <= 0.7 and dues[-1] - dues[0] > 0.2


def test_max_ra_delay_0_unicast_answer_leaves_in_the_same_call():
    c = iface("AdvHomeAgentFlag on; MaxRtrAdvInterval 10; MinRtrAdvInterval 1;"
              " MinDelayBetweenRAs 1; MaxRADelay 0;")
    rec = Recorder(3)
    s = RAScheduler(c, LINK, now=0.0, random=rec)
    run(s, until=0.0)
    rec.calls.clear()
    next_multicast = s.get_timer()
    s.receive_rs(rs(slla=bytes.fromhex("00055df2db2b")), MN_LL, 255, 0.004)
    (x,) = s.datagrams_to_send()                 # RS in at t, RA out at t
    assert x.dst == MN_LL and x.kind == "unicast" and x.src == LL
    ra = decode_icmpv6(x.data, LL, MN_LL)        # checksum right for the unicast address
    assert isinstance(ra, RouterAdvertisement) and ra.home_agent
    assert rec.calls == []                       # no delay drawn
    assert s.get_timer() == next_multicast       # the periodic schedule is untouched


def test_unicast_answer_is_not_held_back_by_min_delay_between_ras():
    c = iface("MaxRtrAdvInterval 600; MinDelayBetweenRAs 3; MaxRADelay 0;")
    s = RAScheduler(c, LINK, now=0.0, random=Recorder(1))
    run(s, until=0.0)                            # a multicast RA at 0
    s.receive_rs(rs(), MN_LL, 255, 0.01)         # 10 ms later, well inside the 3 s
    assert [x.dst for x in s.datagrams_to_send()] == [MN_LL]
    other = IPv6Address("fe80::99")
    s.receive_rs(rs(src=other), other, 255, 0.02)
    assert [x.dst for x in s.datagrams_to_send()] == [other]


def test_max_ra_delay_0_multicast_answer_at_once_unless_a_multicast_ra_was_recent():
    c = iface("AdvRASolicitedUnicast off; AdvHomeAgentFlag on; MaxRtrAdvInterval 10;"
              " MinRtrAdvInterval 3; MinDelayBetweenRAs 0.03; MaxRADelay 0;")
    s = RAScheduler(c, LINK, now=0.0, random=Recorder(6))
    run(s, until=0.0)
    s.receive_rs(rs(), MN_LL, 255, 0.01)         # 10 ms after the last multicast RA
    assert s.datagrams_to_send() == []
    # RFC 4861 §6.2.6 with RFC 6275 §7.5's MinDelayBetweenRAs: 30 ms after the last one
    assert s.get_timer() == pytest.approx(0.03)
    s.handle_timer(s.get_timer())
    (x,) = s.datagrams_to_send()
    assert x.dst == ALL_NODES and x.kind == "solicited"
    s.receive_rs(rs(), MN_LL, 255, 1.0)          # long after: out in the same call
    (y,) = s.datagrams_to_send()
    assert y.dst == ALL_NODES and y.kind == "solicited"
    assert s.last_multicast == 1.0 and s.get_timer() >= 1.0 + 3


def test_multicast_ras_keep_min_delay_between_ras_after_a_reload():
    fast = ("AdvHomeAgentFlag on; MaxRtrAdvInterval 0.07; MinRtrAdvInterval 0.03;"
            " MinDelayBetweenRAs {};")
    s = RAScheduler(iface(fast.format(0.03)), LINK, now=0.0, random=Recorder(4))
    sent = run(s, until=1.0)
    s.reconfigure(iface(fast.format(0.05)), 1.0)
    sent += run(s, until=3.0, now=1.0)
    times = [t for t, x in sent if x.dst == ALL_NODES]
    g = [b - a for a, b in zip(times, times[1:])]
    assert min(g) >= 0.03 - 1e-9
    assert min(g[len([t for t in times if t <= 1.0]):]) >= 0.05 - 1e-6


def test_max_ra_delay_is_checked_and_written_back():
    from radvd.config import dump, validate
    cfg = parse("interface wlan0 { AdvSendAdvert on; MaxRADelay 0.05; };")
    assert cfg.interfaces[0].max_ra_delay == 0.05 and validate(cfg) == []
    assert "MaxRADelay 0.05;" in dump(cfg)
    assert parse(dump(cfg)).interfaces[0].max_ra_delay == 0.05
    assert "MaxRADelay" not in dump(parse("interface wlan0 { AdvSendAdvert on; };"))
    from radvd.config import RadvdConfError
    with pytest.raises(RadvdConfError) as e:
        parse("interface wlan0 {\n AdvSendAdvert on;\n MaxRADelay 0.6;\n};")
    assert e.value.line == 3 and "MaxRADelay (0.6) must be between 0 and 0.5" in str(e.value)


def test_encoded_ra_reused_until_the_link_changes():
    s = RAScheduler(SEED_HA, LINK, now=0.0, random=Recorder(2))
    sent = run(s, until=30.0)
    datas = {x.data for _, x in sent if x.dst == ALL_NODES}
    assert len(datas) == 1 and len(sent) > 3
    assert len({id(x.data) for _, x in sent}) == 1           # built once, not per RA
    s.set_link(Link("wlan0", LL, bytes.fromhex("00026f060bd0"), 1500,
                    (IPv6Address("2001:db8::"),)))
    s.handle_timer(s.get_timer())
    (x,) = s.datagrams_to_send()
    assert x.data not in datas
    assert option(decode_icmpv6(x.data), SourceLinkLayerAddress).address == \
        bytes.fromhex("00026f060bd0")
