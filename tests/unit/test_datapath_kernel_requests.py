"""The netlink requests the datapath builds, decoded by pyroute2's own parsers.

This machine's kernel has no ip6_tunnel, so the kernel backend's requests
are recorded by FakeRtnl (the stand-in for a kernel that has ip6_tunnel)
instead of sent; each one is then decoded by pyroute2, an independent
encoder/decoder of the same structures, and checked field by field.
"""

from __future__ import annotations

import asyncio
import errno
import struct
from ipaddress import IPv6Address

import pytest

from ha.datapath.kernel import KernelDatapath
from ha.datapath.proxy_nd import build_unsolicited_na
from ha.net.rtnl import (RTM_DELLINK, RTM_DELNEIGH, RTM_DELROUTE, RTM_DELRULE, RTM_NEWLINK,
                         RTM_NEWNEIGH, RTM_NEWROUTE, RTM_NEWRULE, NetlinkError, ip6tnl_add_msg,
                         proxy_entry_msg, route_msg, rule_msg)

HA = IPv6Address("2001:db8::")
HOA, HOA2 = IPv6Address("2001:db8::beef"), IPv6Address("2001:db8::b0b")
COA, COA2 = IPv6Address("2001:db8:1::100"), IPv6Address("2001:db8:1::101")
HOME_IFINDEX = 7


def decode(msg):
    """(type, flags, body) -> the pyroute2 message object for it, decoded."""
    from pyroute2.netlink.rtnl.fibmsg import fibmsg
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    from pyroute2.netlink.rtnl.ndmsg import ndmsg
    from pyroute2.netlink.rtnl.rtmsg import rtmsg
    kind, flags, body = msg
    cls = {16: ifinfmsg, 17: ifinfmsg, 24: rtmsg, 25: rtmsg, 28: ndmsg, 29: ndmsg,
           32: fibmsg, 33: fibmsg}[kind]
    m = cls(struct.pack("=IHHII", 16 + len(body), kind, flags | 1, 1, 0) + body)
    m.decode()
    assert m["header"]["length"] == 16 + len(body)
    return m


class FakeRtnl:
    """Records batches instead of sending them: stands in for a kernel with ip6_tunnel."""

    def __init__(self):
        self.batches: list[list] = []
        self.fail_next: int | None = None

    def submit(self, msgs):
        fut = asyncio.get_running_loop().create_future()
        if msgs:
            self.batches.append(list(msgs))
        if self.fail_next is not None and msgs:
            fut.set_exception(NetlinkError(self.fail_next, "refused"))
            self.fail_next = None
        else:
            fut.set_result(None)
        return fut

    def kinds(self):
        return [[m[0] for m in batch] for batch in self.batches]


def fake_ifindex(name: str) -> int:
    return 100 + int(name.removeprefix("dnt"))  # dnt0 -> 100, dnt1 -> 101


def make():
    rtnl = FakeRtnl()
    return rtnl, KernelDatapath(HOME_IFINDEX, HA, rtnl=rtnl, ifindex_of=fake_ifindex)


def run(coro):
    return asyncio.run(coro)


# -- the encoders, one by one ------------------------------------------------------------

def test_route_add_is_a_replace_of_a_128_into_our_table():
    m = decode(route_msg(RTM_NEWROUTE, HOA, 42, 6275))
    assert m["family"] == 10 and m["dst_len"] == 128 and m["type"] == 1
    assert m.get_attr("RTA_DST") == str(HOA)
    assert m.get_attr("RTA_OIF") == 42
    assert m.get_attr("RTA_TABLE") == 6275
    assert m["header"]["flags"] & 0x500 == 0x500  # CREATE | REPLACE


def test_route_delete_names_table_and_destination():
    m = decode(route_msg(RTM_DELROUTE, HOA, 42, 6275))
    assert m.get_attr("RTA_DST") == str(HOA) and m.get_attr("RTA_TABLE") == 6275
    assert m.get_attr("RTA_OIF") is None


def test_proxy_entry_is_what_ip_neigh_add_proxy_sends():
    m = decode(proxy_entry_msg(True, HOA, HOME_IFINDEX))
    assert m["family"] == 10 and m["ifindex"] == HOME_IFINDEX
    assert m["flags"] == 0x08  # NTF_PROXY
    assert m["state"] == 0x80  # NUD_PERMANENT
    assert m.get_attr("NDA_DST") == str(HOA)
    assert decode(proxy_entry_msg(False, HOA, HOME_IFINDEX))["header"]["type"] == RTM_DELNEIGH


def test_rule_looks_up_our_table_at_our_priority():
    m = decode(rule_msg(RTM_NEWRULE, 6275, 1000))
    assert m["family"] == 10 and m["action"] == 1  # FR_ACT_TO_TBL
    assert m.get_attr("FRA_TABLE") == 6275 and m.get_attr("FRA_PRIORITY") == 1000
    assert decode(rule_msg(RTM_DELRULE, 6275, 1000))["header"]["type"] == RTM_DELRULE


def test_ip6tnl_request_is_an_ip6ip6_tunnel_to_the_care_of_address():
    m = decode(ip6tnl_add_msg("dnt0", HA, COA))
    assert m.get_attr("IFLA_IFNAME") == "dnt0"
    assert m["flags"] & 1 and m["change"] & 1  # created up
    info = m.get_attr("IFLA_LINKINFO")
    assert info.get_attr("IFLA_INFO_KIND") == "ip6tnl"
    data = info.get_attr("IFLA_INFO_DATA")
    assert data.get_attr("IFLA_IP6TNL_LOCAL") == str(HA)
    assert data.get_attr("IFLA_IP6TNL_REMOTE") == str(COA)
    assert data.get_attr("IFLA_IP6TNL_PROTO") == 41
    assert data.get_attr("IFLA_IP6TNL_FLAGS") == 1  # IP6_TNL_F_IGN_ENCAP_LIMIT
    assert data.get_attr("IFLA_IP6TNL_TTL") == 64
    assert m["header"]["flags"] & 0x600 == 0x600  # CREATE | EXCL: never reuse a stranger's


def test_unsolicited_na_has_override_only_and_the_ha_mac():
    from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr
    na = ICMPv6ND_NA(build_unsolicited_na(HOA, bytes.fromhex("020000000001")))
    assert (na.R, na.S, na.O) == (0, 0, 1)
    assert na.tgt == str(HOA)
    assert na[ICMPv6NDOptDstLLAddr].lladdr == "02:00:00:00:00:01"


# -- the kernel backend's sequences ------------------------------------------------------

def test_first_binding_to_a_care_of_address_creates_its_tunnel_then_route_and_proxy():
    rtnl, dp = make()
    run(dp.add_binding(HOA, COA))
    assert rtnl.kinds() == [[RTM_NEWLINK], [RTM_NEWROUTE, RTM_NEWNEIGH]]
    route = decode(rtnl.batches[1][0])
    assert route.get_attr("RTA_OIF") == 100 and route.get_attr("RTA_DST") == str(HOA)
    assert decode(rtnl.batches[1][1])["ifindex"] == HOME_IFINDEX


def test_second_home_address_on_the_same_care_of_address_reuses_the_tunnel():
    rtnl, dp = make()

    async def both():
        await asyncio.gather(dp.add_binding(HOA, COA), dp.add_binding(HOA2, COA))
    run(both())
    assert [k for b in rtnl.kinds() for k in b].count(RTM_NEWLINK) == 1
    assert dp.counters["tunnels_created"] == 1


def test_move_replaces_the_route_and_deletes_the_unused_tunnel():
    rtnl, dp = make()

    async def go():
        await dp.add_binding(HOA, COA)
        rtnl.batches.clear()
        await dp.move_binding(HOA, COA, COA2)
    run(go())
    assert rtnl.kinds() == [[RTM_NEWLINK], [RTM_NEWROUTE], [RTM_DELLINK]]
    assert decode(rtnl.batches[0][0]).get_attr("IFLA_LINKINFO").get_attr(
        "IFLA_INFO_DATA").get_attr("IFLA_IP6TNL_REMOTE") == str(COA2)
    assert decode(rtnl.batches[1][0]).get_attr("RTA_OIF") == 101
    assert decode(rtnl.batches[2][0])["index"] == 100
    assert dp.bindings() == {HOA: COA2}


def test_remove_stops_proxying_and_deletes_the_last_tunnel_with_its_route():
    rtnl, dp = make()

    async def go():
        await dp.add_binding(HOA, COA)
        await dp.add_binding(HOA2, COA)
        rtnl.batches.clear()
        await dp.remove_binding(HOA2, COA)   # tunnel still used: delete the route
        await dp.remove_binding(HOA, COA)    # last user: the tunnel goes, and its route
    run(go())
    assert rtnl.kinds() == [[RTM_DELROUTE, RTM_DELNEIGH], [RTM_DELNEIGH, RTM_DELLINK]]
    assert dp.bindings() == {}


def test_close_removes_proxies_tunnels_and_the_rule_in_one_batch():
    rtnl, dp = make()

    async def go():
        await dp.add_binding(HOA, COA)
        await dp.add_binding(HOA2, COA2)
        rtnl.batches.clear()
        await dp.close()
    run(go())
    assert rtnl.kinds() == [[RTM_DELNEIGH, RTM_DELNEIGH, RTM_DELLINK, RTM_DELLINK, RTM_DELRULE]]
    assert {decode(m)["index"] for m in rtnl.batches[0][2:4]} == {100, 101}


def test_a_refused_tunnel_leaves_no_state_and_the_next_add_retries():
    rtnl, dp = make()
    rtnl.fail_next = errno.EOPNOTSUPP  # what a kernel without ip6_tunnel answers
    with pytest.raises(NetlinkError):
        run(dp.add_binding(HOA, COA))
    assert dp.bindings() == {} and dp._tunnels == {}
    run(dp.add_binding(HOA, COA))
    assert dp.bindings() == {HOA: COA}


def test_link_local_or_multicast_addresses_are_refused():
    _, dp = make()
    with pytest.raises(ValueError):
        run(dp.add_binding(IPv6Address("fe80::1"), COA))
    with pytest.raises(ValueError):
        run(dp.add_binding(HOA, IPv6Address("ff02::1")))
