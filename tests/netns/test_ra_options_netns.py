"""RDNSS, DNSSL, a route and the router preference set in denali.conf reach a listener.

Two namespaces (tag ``rao``) joined by a veth pair: ``raoR`` runs denalid itself
on a denali.conf whose [ra] has [[[rdnss]]], [[[dnssl]]], [[[route ...]]] and
AdvDefaultPreference ([ha] off: only the RA sender runs); ``raoM`` listens with
radvdump (radvd's decoder, not ours) and a scapy sniffer.  The RA options are
read as those two decode them from the wire (RFC 8106 §5.1/§5.2, RFC 4191 §2.2/§2.3).
"""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from nslib import Topology, have_netns, kill_all, ra_pair, start_listener

pytestmark = pytest.mark.skipif(have_netns() is not None, reason=str(have_netns()))

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

DENALI_CONF = """\
[ha]
    enabled = off
    vt_port = 7791
[ra]
    [[wlan0]]
        AdvSendAdvert = on
        AdvIntervalOpt = on
        MaxRtrAdvInterval = 1
        MinRtrAdvInterval = 0.3
        MinDelayBetweenRAs = 0.1
        AdvHomeAgentFlag = on
        AdvDefaultPreference = high
        prefix = 2001:db8::/64
        [[[route 2001:db8:7::/48]]]
            AdvRoutePreference = low
            AdvRouteLifetime = 1800
        [[[rdnss]]]
            addresses = 2001:db8::53, 2001:db8::54
            AdvRDNSSLifetime = 30
        [[[dnssl]]]
            domains = example.com, lab.example
            AdvDNSSLLifetime = 40
"""

# in raoM: keep the RAs from the router for a few seconds
SNIFFER = textwrap.dedent("""
    import sys
    from scapy.all import sniff, wrpcap
    from scapy.layers.inet6 import ICMPv6ND_RA
    print("sniffing", flush=True)
    got = sniff(iface="wlan0", filter="icmp6", timeout=float(sys.argv[2]),
                lfilter=lambda p: ICMPv6ND_RA in p)
    wrpcap(sys.argv[1], got)
    print("done", len(got), flush=True)
""")


@pytest.fixture(scope="module")
def heard(tmp_path_factory):
    pytest.importorskip("scapy")
    pytest.importorskip("radvd.config", reason="radvd/config.py absent")
    if shutil.which("radvdump") is None:
        pytest.skip("needs radvdump (package radvd)")
    tmp = tmp_path_factory.mktemp("raopt")
    conf = tmp / "denali.conf"
    conf.write_text(DENALI_CONF)
    topo = Topology()
    procs = []
    try:
        rtr, mn = ra_pair(topo, "raoR", "raoM")
        dump_out = open(tmp / "radvdump.txt", "w")
        dump = mn.popen("radvdump", "-e", stdout=dump_out, stderr=subprocess.STDOUT)
        procs.append(dump)
        pcap = tmp / "ra.pcap"
        sniffer = start_listener(mn, procs, sys.executable, "-c", SNIFFER, str(pcap), "6")
        env = dict(os.environ, PYTHONPATH=ROOT, DENALI_STATE_DIR=str(tmp / "state"))
        daemon = rtr.popen(sys.executable, "-m", "ha.daemon.main", "-c", str(conf), "-d", "7",
                           stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        procs.append(daemon)
        sniff_out, sniff_err = sniffer.communicate(timeout=30)
        time.sleep(0.3)
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon_rc = daemon.wait(timeout=15)
        except subprocess.TimeoutExpired:
            daemon_rc = None
        log = daemon.stderr.read() if daemon_rc is not None else "(still running)"
        dump.terminate()
        dump.wait(timeout=5)
        dump_out.close()
        import scapy.layers.inet6  # noqa: F401  (dissectors for rdpcap)
        from scapy.utils import rdpcap
        yield dict(packets=rdpcap(str(pcap)) if pcap.exists() else [],
                   radvdump=(tmp / "radvdump.txt").read_text(), log=log,
                   daemon_rc=daemon_rc, sniff=sniff_out + sniff_err)
    finally:
        kill_all(procs)
        topo.teardown()


def why(heard):
    return f"{heard['sniff']}\n--- denalid -d 7 ---\n{heard['log'][-3000:]}"


def test_radvdump_decodes_rdnss_dnssl_route_and_preference(heard):
    text = heard["radvdump"]
    assert "RDNSS 2001:db8::53 2001:db8::54" in text, text + why(heard)
    for line in ("AdvRDNSSLifetime 30;", "DNSSL example.com lab.example",
                 "AdvDNSSLLifetime 40;", "route 2001:db8:7::/48", "AdvRoutePreference low;",
                 "AdvRouteLifetime 1800;", "AdvDefaultPreference high;"):
        assert line in text, line + "\n" + text


def test_scapy_reads_the_rdnss_option_from_the_wire(heard):
    from scapy.layers.inet6 import (ICMPv6ND_RA, ICMPv6NDOptDNSSL, ICMPv6NDOptRDNSS,
                                    ICMPv6NDOptRouteInfo)
    ras = [p for p in heard["packets"] if ICMPv6ND_RA in p and p[ICMPv6ND_RA].routerlifetime]
    assert ras, why(heard)
    p = ras[-1]
    assert p[ICMPv6ND_RA].prf == 1                    # high (RFC 4191 §2.2)
    rdnss = p[ICMPv6NDOptRDNSS]
    assert list(rdnss.dns) == ["2001:db8::53", "2001:db8::54"] and rdnss.lifetime == 30
    dnssl = p[ICMPv6NDOptDNSSL]
    assert [d.rstrip(b".").decode() if isinstance(d, bytes) else d.rstrip(".")
            for d in dnssl.searchlist] == ["example.com", "lab.example"]
    assert dnssl.lifetime == 40
    route = p[ICMPv6NDOptRouteInfo]
    assert (route.prefix, route.plen, route.prf, route.rtlifetime) == \
        ("2001:db8:7::", 48, 3, 1800)                 # low is 11 (RFC 4191 §2.1)


def test_denalid_stopped_cleanly(heard):
    assert heard["daemon_rc"] == 0, why(heard)
