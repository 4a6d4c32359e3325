"""ha/net/firewall.py on the real kernel: Home Address options never reach it.

A home agent namespace and a peer on its link. The peer (scapy, not our
codec) sends a packet with a Home Address option to the home agent's
address, then a plain echo request; the echo reply tells that the first
packet has been dealt with, so "no Parameter Problem" is read from what
came back before it, never from a wait. This kernel has no
CONFIG_IPV6_MIP6: without the rules it answers the option with a
Parameter Problem code 2 (the answer that makes UMIP abandon its binding).
"""

import contextlib
import ctypes
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from nslib import Topology, have_netns  # noqa: E402

pytestmark = pytest.mark.skipif(have_netns() is not None, reason=str(have_netns()))

HA = "2001:db8::"
PEER = "2001:db8::c"
HOA = "2001:db8::beef"

# Run in the peer: send each packet (hex, from its IPv6 header) through
# IPPROTO_RAW, then an echo request; collect ICMPv6 until its reply.
SENDER = r"""
import json, socket, sys, time
from scapy.all import AsyncSniffer, conf
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6ParamProblem, IPv6
conf.verb = 0
pkts, ha = json.loads(sys.argv[1]), sys.argv[2]
done = lambda p: ICMPv6EchoReply in p and p[ICMPv6EchoReply].id == 0x6275
sn = AsyncSniffer(iface="eth0", filter="icmp6", store=True, stop_filter=done)
sn.start()
time.sleep(0.3)  # the capture attaches asynchronously
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 255)
for p in pkts:
    s.sendto(bytes.fromhex(p), (ha, 0))
s.sendto(bytes(IPv6(src=sys.argv[3], dst=ha) / ICMPv6EchoRequest(id=0x6275)), (ha, 0))
sn.join(15)
got = sn.stop() if sn.running else sn.results
print(json.dumps({
    "answered": any(done(p) for p in got),
    "param_problems": [[p[ICMPv6ParamProblem].code, p[ICMPv6ParamProblem].ptr]
                       for p in got if ICMPv6ParamProblem in p],
    "echo_replies": [p[ICMPv6EchoReply].id for p in got if ICMPv6EchoReply in p],
}))
"""


def _layouts():
    from scapy.layers.inet6 import (HAO, ICMPv6EchoRequest, ICMPv6MPSol, IPv6,
                                    IPv6ExtHdrDestOpt, Pad1, PadN)
    ip = IPv6(src=PEER, dst=HA)
    hao = HAO(hoa=HOA)
    return {
        # what UMIP sends right after its BA (PadN(2) then HAO at 8n+6)
        "mps": (ip / IPv6ExtHdrDestOpt(options=[hao]) / ICMPv6MPSol(), 46),
        # an echo from the home address, as route optimisation sends it
        "echo": (ip / IPv6ExtHdrDestOpt(options=[hao]) / ICMPv6EchoRequest(id=1), 46),
        "pad1": (ip / IPv6ExtHdrDestOpt(options=[Pad1(), Pad1(), Pad1(), Pad1(), hao],
                                        autopad=0) / ICMPv6EchoRequest(id=2), 46),
        "first": (ip / IPv6ExtHdrDestOpt(options=[hao, PadN(optdata=b"\0\0")], autopad=0)
                  / ICMPv6EchoRequest(id=3), 42),
    }


@pytest.fixture
def net():
    topo = Topology()
    try:
        ha, peer = topo.host("ha"), topo.host("peer")
        topo.link(ha, "home0", peer, "eth0")
        ha.run("ip", "-6", "addr", "add", f"{HA}/64", "dev", "home0", "nodad")
        peer.run("ip", "-6", "addr", "add", f"{PEER}/64", "dev", "eth0", "nodad")
        # every error is answered, so "none" is the rule's doing, not the rate limit
        ha.sysctl("net.ipv6.icmp.ratelimit", "0")
        yield topo
    finally:
        topo.teardown()


def send(net, *packets):
    r = net.hosts["peer"].run(sys.executable, "-c", SENDER,
                              json.dumps([bytes(p).hex() for p in packets]), HA, PEER,
                              timeout=60)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["answered"], "the home agent did not answer the closing echo request"
    return out


@contextlib.contextmanager
def inside(ns):
    """Run the block in namespace `ns` (nft acts on the namespace of its caller)."""
    target = os.open(f"/run/netns/{ns.name}", os.O_RDONLY)
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        _setns(target)
        yield
    finally:
        _setns(own)
        os.close(target)
        os.close(own)


def _setns(fd):
    # os.setns is Python 3.12; this is 3.11's way (CLONE_NEWNET = 0x40000000)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, 0x40000000) != 0:
        raise OSError(ctypes.get_errno(), "setns")


@contextlib.contextmanager
def firewall(net):
    from ha.net.firewall import Firewall
    fw = Firewall()
    with inside(net.hosts["ha"]):
        fw.install()
    try:
        yield fw
    finally:
        with inside(net.hosts["ha"]):
            fw.remove()


@pytest.mark.parametrize("layout", ["mps", "echo", "pad1", "first"])
def test_home_address_option_gets_no_parameter_problem_with_the_rule(net, layout):
    packet, option_offset = _layouts()[layout]
    # the probe: what UMIP sends; a kernel with MIP6 answers it with nothing
    if not send(net, _layouts()["mps"][0])["param_problems"]:
        pytest.skip("this kernel handles the Home Address option itself (CONFIG_IPV6_MIP6)")
    without = send(net, packet)["param_problems"]
    assert without == [[2, option_offset]]  # code 2, pointing at the option
    with firewall(net):
        out = send(net, packet)
    assert out["param_problems"] == []
    assert out["echo_replies"] == [0x6275]  # the HAO echo was not answered by the kernel
    assert send(net, packet)["param_problems"] == [[2, option_offset]]
    assert "denali" not in net.hosts["ha"].run("nft", "list", "ruleset").stdout


def test_destination_options_without_a_home_address_still_reach_the_kernel(net):
    from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6, IPv6ExtHdrDestOpt, PadN
    from scapy.layers.inet6 import HBHOptUnknown
    ip = IPv6(src=PEER, dst=HA)
    # padding only, and a Tunnel Encapsulation Limit option (type 4, RFC 2473
    # section 5.1) as Linux's ip6ip6 tunnels put on reverse-tunnelled packets
    padded = ip / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\0\0\0\0")]) / ICMPv6EchoRequest(id=7)
    limit = ip / IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=4, optdata=b"\x04")]) \
        / ICMPv6EchoRequest(id=8)
    with firewall(net):
        out = send(net, padded, limit)
    assert out["param_problems"] == []
    assert sorted(out["echo_replies"]) == [7, 8, 0x6275]


def test_the_packet_socket_still_sees_what_the_rule_drops(net):
    # the daemon reads Home Address options from AF_PACKET, which taps before netfilter
    packet, _ = _layouts()["mps"]
    reader = net.hosts["ha"].popen(
        sys.executable, "-c",
        "import socket,sys\n"
        "s=socket.socket(socket.AF_PACKET,socket.SOCK_DGRAM,socket.htons(0x86dd))\n"
        "s.bind(('home0',0)); print('ready',flush=True)\n"
        "while True:\n"
        "    d=s.recv(65535)\n"
        "    if len(d)>46 and d[6]==60 and d[46]==201: print('hao',d[8:24].hex(),flush=True); break\n",
        stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "ready"
        with firewall(net):
            assert send(net, packet)["param_problems"] == []
        line = reader.stdout.readline().split()
        assert line[0] == "hao"
    finally:
        reader.kill()
        reader.wait()
