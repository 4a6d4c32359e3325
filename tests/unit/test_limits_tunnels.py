"""The tunnel cap of the kernel datapath: one ip6tnl per care-of address, at most
max_tunnels of them; past that a binding fails (the core answers 130) and
bindings on existing tunnels go on.

This machine's kernel has no ip6_tunnel: RecordingRtnl stands in for one that
has (it records the requests and acknowledges them)."""

import asyncio
from ipaddress import IPv6Address, IPv6Network

import pytest

from ha.core import registration as reg
from ha.core.home_agent import HomeAgentCore, HomeAgentSettings
from ha.datapath.kernel import MAX_TUNNELS, KernelDatapath, TooManyTunnels
from ha.net.rtnl import RTM_NEWLINK
from ha.wire.ipv6 import build_bu_packet, parse_packet
from ha.wire.mobility import BAStatus, BindingUpdate, decode_mh, encode_mh

A = IPv6Address
HA = A("2001:db8::")


class RecordingRtnl:
    """Stands in for a kernel with ip6_tunnel: every batch acknowledged, and kept."""

    def __init__(self):
        self.batches = []

    def submit(self, msgs):
        fut = asyncio.get_running_loop().create_future()
        if msgs:
            self.batches.append(list(msgs))
        fut.set_result(None)
        return fut

    def links_made(self):
        return sum(1 for b in self.batches for m in b if m[0] == RTM_NEWLINK)


def make(cap):
    rtnl = RecordingRtnl()
    dp = KernelDatapath(7, HA, rtnl=rtnl, ifindex_of=lambda n: 100 + int(n[3:]))
    dp.max_tunnels = cap
    return rtnl, dp


def test_default_cap_is_the_specs():
    from ha.config.model import load_config
    from ha.daemon.settings import Settings
    assert KernelDatapath(7, HA, rtnl=RecordingRtnl()).max_tunnels == MAX_TUNNELS
    assert Settings(source="x", kind="denali").max_tunnels == MAX_TUNNELS
    assert load_config(None).ha.max_tunnels == MAX_TUNNELS


def test_past_the_cap_a_new_care_of_address_fails_and_shared_tunnels_go_on():
    rtnl, dp = make(3)

    async def go():
        for i in range(3):
            await dp.add_binding(A(f"2001:db8::{i + 1:x}"), A(f"2001:db8:1::{i + 1:x}"))
        with pytest.raises(TooManyTunnels) as e:
            await dp.add_binding(A("2001:db8::99"), A("2001:db8:1::99"))
        assert "3 tunnels in use" in str(e.value)
        # a second home address on a care-of address that has its tunnel is fine
        await dp.add_binding(A("2001:db8::42"), A("2001:db8:1::1"))
        # a move to a new care-of address is refused too, and keeps the old one
        with pytest.raises(TooManyTunnels):
            await dp.move_binding(A("2001:db8::2"), A("2001:db8:1::2"), A("2001:db8:1::98"))
        assert dp.bindings()[A("2001:db8::2")] == A("2001:db8:1::2")
        # once a tunnel is gone, there is room again
        await dp.remove_binding(A("2001:db8::3"), A("2001:db8:1::3"))
        await dp.add_binding(A("2001:db8::99"), A("2001:db8:1::99"))
    asyncio.run(go())
    assert rtnl.links_made() == 4
    assert dp.counters["tunnels_refused"] == 2


def test_the_core_answers_130_when_the_tunnel_is_refused():
    rules = reg.HomeAgentConfig(served_prefixes=(IPv6Network("2001:db8::/64"),),
                                ha_addresses=(HA,), dad_enabled=False)
    core = HomeAgentCore(HomeAgentSettings(ha_address=HA, rules=rules), capacity=10)
    rtnl, dp = make(1)
    hoas = [A("2001:db8::a"), A("2001:db8::b")]
    for i, h in enumerate(hoas):
        m = BindingUpdate(sequence=1, lifetime=100, ack=True, home_registration=True)
        core.receive_packet(build_bu_packet(A(f"2001:db8:1::{i + 1:x}"), HA, h,
                                            encode_mh(m, h, HA)), 0, 0.0)

    async def carry_out():
        while (a := core.next_action()) is not None:
            try:
                if isinstance(a, reg.AddBinding):
                    await dp.add_binding(a.hoa, a.coa, a.link_local)
                elif isinstance(a, reg.DeleteBinding):
                    await dp.remove_binding(a.hoa, a.coa, a.link_local)
            except OSError as e:
                core.action_failed(a, e, 0.0)
            else:
                core.action_done(a, 0.0)
    asyncio.run(carry_out())
    got = {}
    for d in core.datagrams_to_send(0.0):
        p = parse_packet(d.data)
        got[A(p.routing_address)] = decode_mh(p.payload, *p.pseudo_header_addresses()).status
    assert got == {hoas[0]: 0, hoas[1]: BAStatus.INSUFFICIENT_RESOURCES}
    assert hoas[1] not in core.cache and hoas[0] in core.cache
