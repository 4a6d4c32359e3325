"""What the RA sender takes from /proc/net/if_inet6 for an interface.

Only addresses that passed DAD count: a tentative or DAD-failed link-local
address must not become the RA's source (RFC 4861 §6.2.2 wants a usable
link-local one), nor such a global one the R-flag prefix (RFC 6275 §7.2).
"""

from ipaddress import IPv6Address

from radvd.service import read_link_state

# address, ifindex, prefix length, scope, flags, name (the kernel's columns)
IF_INET6 = """\
00000000000000000000000000000001 01 80 10 80       lo
fe800000000000000000000000000001 01 40 20 c0       lo
fe800000000000000000000000000002 01 40 20 88       lo
fe800000000000000000000000000003 01 40 20 80       lo
fe800000000000000000000000000004 01 40 20 80       lo
20010db8000500000000000000000001 01 40 00 40       lo
20010db8000500000000000000000002 01 40 00 00       lo
20010db8000600000000000000000009 02 40 00 00     eth9
not an address line
"""


def test_only_addresses_past_dad_on_this_interface_count():
    state = read_link_state("lo", IF_INET6)
    assert state.exists and state.up and state.ready
    assert state.link.link_local == IPv6Address("fe80::3")     # first usable one
    assert state.link.addresses == (IPv6Address("2001:db8:5::2"),)


def test_no_usable_link_local_means_not_ready():
    tentative_only = "fe800000000000000000000000000001 01 40 20 c0       lo\n"
    state = read_link_state("lo", tentative_only)
    assert state.exists and state.link is None and not state.ready


def test_a_missing_interface_is_reported_as_such():
    assert not read_link_state("nosuch0", IF_INET6).exists


def test_global_addresses_keep_their_prefix_length():
    # `prefix ::/64` advertises the interface's prefixes: it needs their lengths
    from ipaddress import IPv6Interface
    state = read_link_state("lo", IF_INET6)
    assert state.link.networks == (IPv6Interface("2001:db8:5::2/64"),)


def test_rtnetlink_messages_that_make_the_sender_read_its_interfaces_again():
    import struct
    from radvd.service import RTM_NEWLINK, netlink_concerns

    def msg(kind, index):
        body = struct.pack("=BBBBI", 10, 64, 0, 0, index)     # ifaddrmsg / ifinfomsg shape
        return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body
    RTM_NEWADDR, RTM_DELADDR = 20, 21
    assert netlink_concerns(msg(RTM_NEWADDR, 3), {3})           # our interface's address
    assert not netlink_concerns(msg(RTM_NEWADDR, 7) + msg(RTM_DELADDR, 8), {3})
    assert netlink_concerns(msg(RTM_DELADDR, 7) + msg(RTM_DELADDR, 3), {3})
    assert netlink_concerns(msg(RTM_NEWLINK, 9), set())         # maybe our interface appeared
    garbled = struct.pack("=IHHII", 48, RTM_NEWADDR, 0, 0, 0) + bytes(8)   # claims 48 octets
    assert netlink_concerns(garbled, set())                     # cannot tell: look anyway
