"""The mobile node's rtnetlink requests, decoded by pyroute2's own parsers.

These replace the mobile node's `ip` calls (address, routes with a metric
or a table, the source rule), so each is checked against what an
independent decoder reads out of the same bytes.
"""

from __future__ import annotations

import struct
from ipaddress import IPv6Address, IPv6Network

from ha.net.rtnl import (RTM_DELADDR, RTM_DELROUTE, RTM_DELRULE, RTM_NEWADDR, RTM_NEWROUTE,
                         RTM_NEWRULE, address_msg, prefix_route_msg, source_rule_msg)

HOA = IPv6Address("2001:db8::beef")
ROUTER = IPv6Address("fe80::1")
DEFAULT = IPv6Network("::/0")


def decode(msg):
    from pyroute2.netlink.rtnl.fibmsg import fibmsg
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    from pyroute2.netlink.rtnl.rtmsg import rtmsg
    kind, flags, body = msg
    cls = {20: ifaddrmsg, 21: ifaddrmsg, 24: rtmsg, 25: rtmsg, 32: fibmsg, 33: fibmsg}[kind]
    m = cls(struct.pack("=IHHII", 16 + len(body), kind, flags | 1, 1, 0) + body)
    m.decode()
    assert m["header"]["length"] == 16 + len(body)
    return m


def test_home_address_goes_on_the_link_with_its_prefix_and_no_dad():
    m = decode(address_msg(RTM_NEWADDR, HOA, 64, 3))
    assert m["family"] == 10 and m["prefixlen"] == 64 and m["index"] == 3
    assert m.get_attr("IFA_LOCAL") == str(HOA) and m.get_attr("IFA_ADDRESS") == str(HOA)
    assert m.get_attr("IFA_FLAGS") & 0x02  # IFA_F_NODAD: the seed's `nodad`
    assert m["header"]["flags"] & 0x500 == 0x500  # CREATE | REPLACE: `ip addr replace`


def test_address_delete_names_the_prefix_length_the_kernel_matches_on():
    m = decode(address_msg(RTM_DELADDR, HOA, 64, 3))
    assert m["header"]["type"] == RTM_DELADDR and m["prefixlen"] == 64
    assert m.get_attr("IFA_LOCAL") == str(HOA) and m.get_attr("IFA_FLAGS") is None


def test_tunnel_default_route_has_the_seeds_metric_in_main():
    m = decode(prefix_route_msg(RTM_NEWROUTE, DEFAULT, 9, metric=128))
    assert m["dst_len"] == 0 and m.get_attr("RTA_DST") is None
    assert m.get_attr("RTA_OIF") == 9 and m.get_attr("RTA_PRIORITY") == 128
    assert m.get_attr("RTA_TABLE") == 254 and m["table"] == 254
    assert m["header"]["flags"] & 0x500 == 0x500


def test_route_into_a_big_table_uses_the_attribute():
    m = decode(prefix_route_msg(RTM_NEWROUTE, DEFAULT, 9, table=6276))
    assert m.get_attr("RTA_TABLE") == 6276 and m["table"] == 252  # RT_TABLE_COMPAT
    assert m.get_attr("RTA_PRIORITY") is None


def test_route_delete_via_a_router_matches_routes_learned_from_ras():
    m = decode(prefix_route_msg(RTM_DELROUTE, DEFAULT, 3, gateway=ROUTER))
    assert m["header"]["type"] == RTM_DELROUTE and m["proto"] == 0
    assert m.get_attr("RTA_GATEWAY") == str(ROUTER) and m.get_attr("RTA_OIF") == 3
    m = decode(prefix_route_msg(RTM_DELROUTE, IPv6Network("2001:db8:1::/64"), 3))
    assert m["dst_len"] == 64 and m.get_attr("RTA_DST") == "2001:db8:1::"


def test_source_rule_sends_the_home_address_to_the_tunnel_table():
    m = decode(source_rule_msg(RTM_NEWRULE, HOA, 6276, 1001))
    assert m["family"] == 10 and m["src_len"] == 128 and m["action"] == 1
    assert m.get_attr("FRA_SRC") == str(HOA)
    assert m.get_attr("FRA_TABLE") == 6276 and m.get_attr("FRA_PRIORITY") == 1001
    assert m["header"]["flags"] & 0x600 == 0x600  # CREATE | EXCL
    assert decode(source_rule_msg(RTM_DELRULE, HOA, 6276, 1001))["header"]["type"] == RTM_DELRULE
