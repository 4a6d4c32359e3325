"""denali.conf [uplink]: the upstream interface, its address, routes and resolvers."""

import os
import subprocess
import sys

import pytest

from ha.config import model as C

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STATIC = """[uplink]
    interface = eth0
    address = 2001:db8:ff::2/64
    gateway = 2001:db8:ff::1
    routes = 2001:db8:9::/48 via fe80::1, 2001:db8:a::/48 via 2001:db8:ff::3
    dns = 2001:db8:ff::53, 2001:db8:ff::54
"""


def conf(uplink):
    return C.DEFAULT_TEXT + uplink


def refused(text):
    with pytest.raises(C.DenaliConfError) as e:
        C.validate_text(text)
    return e.value.errors


def test_no_uplink_section_means_no_uplink():
    cfg = C.validate_text(C.DEFAULT_TEXT)
    assert cfg.uplink is None
    assert cfg.values["uplink"]["interface"] is None  # haconf show prints the defaults


def test_a_static_uplink_is_typed():
    up = C.validate_text(conf(STATIC)).uplink
    assert up == C.UplinkSettings(
        interface="eth0", mode="static", address="2001:db8:ff::2/64",
        gateway="2001:db8:ff::1",
        routes=(C.UplinkRoute("2001:db8:9::/48", "fe80::1"),
                C.UplinkRoute("2001:db8:a::/48", "2001:db8:ff::3")),
        dns=("2001:db8:ff::53", "2001:db8:ff::54"))


def test_slaac_needs_no_address_and_a_single_route_is_a_list():
    up = C.validate_text(conf("[uplink]\ninterface = eth1\nmode = slaac\n"
                              "routes = 2001:db8:9::/48 via fe80::1\n")).uplink
    assert (up.mode, up.address, up.gateway) == ("slaac", None, None)
    assert up.routes == (C.UplinkRoute("2001:db8:9::/48", "fe80::1"),)


@pytest.mark.parametrize("body, key, words", [
    ("interface = wlan0\naddress = 2001:db8:ff::2/64", "uplink.interface", "is a cell"),
    ("interface = eth0", "uplink.address", "missing for mode = static"),
    ("interface = eth0\nmode = slaac\naddress = 2001:db8:ff::2/64", "uplink.address",
     "a static address with mode = slaac"),
    ("address = 2001:db8:ff::2/64", "uplink.address", "set without uplink.interface"),
    ("routes = 2001:db8:9::/48 via fe80::1", "uplink.routes", "set without uplink.interface"),
    ("interface = eth0\naddress = fe80::2/64", "uplink.address", "not a global unicast"),
    ("interface = eth0\naddress = 2001:db8:ff::2", "uplink.address",
     "not an IPv6 interface address"),
    ("interface = eth0\naddress = 2001:db8:ff::2/64\ngateway = 2001:db8:fe::1",
     "uplink.gateway", "not on the uplink's link 2001:db8:ff::/64"),
    ("interface = eth0\naddress = 2001:db8:ff::2/64\ngateway = 2001:db8:ff::2",
     "uplink.gateway", "uplink.address itself"),
    ("interface = eth0\naddress = 2001:db8:ff::2/64\ngateway = ff02::2",
     "uplink.gateway", "cannot be a gateway"),
    ("interface = eth0\naddress = 2001:db8:ff::2/64\ngateway = router", "uplink.gateway",
     "not an IPv6 address"),
    ("interface = eth0\naddress = 2001:db8:ff::2/64\nroutes = 2001:db8:9::1/48 via fe80::1",
     "uplink.routes", "no host bits"),
    ("interface = eth0\naddress = 2001:db8:ff::2/64\nroutes = 2001:db8:9::/48 fe80::1",
     "uplink.routes", "not a route: use prefix via gateway"),
    ("interface = eth0\naddress = 2001:db8:ff::2/64\nroutes = ::/0 via fe80::1",
     "uplink.routes", "set uplink.gateway instead"),
    ("interface = eth0\naddress = 2001:db8:ff::2/64\n"
     "routes = 2001:db8:9::/48 via fe80::1, 2001:db8:9::/48 via fe80::2",
     "uplink.routes", "given twice"),
    ("interface = eth0\naddress = 2001:db8:ff::2/64\n"
     "routes = 2001:db8:9::/48 via 2001:db8:7::1", "uplink.routes", "not on the uplink's link"),
    ("interface = eth0\nmode = dhcp", "uplink.mode", "use static or slaac"),
    ("interface = eth0 0", "uplink.interface", "not an interface name"),
    ("interface = eth0\naddress = 2001:db8:ff::2/64\ndns = 8.8.8.8", "uplink.dns",
     "not an IPv6 address"),
    ("interface = eth0\naddress = 2001:db8:ff::2/64\nmtu = 1500", "uplink.mtu",
     "unknown setting: use one of interface, mode, address, gateway, routes, dns"),
])
def test_refusals_say_what_is_allowed(body, key, words):
    errors = refused(conf("[uplink]\n" + body + "\n"))
    assert [k for k, _ in errors] == [key], errors
    assert words in errors[0][1], errors


def test_haconf_sets_gets_and_shows_the_uplink(tmp_path):
    path = tmp_path / "denali.conf"
    path.write_text(C.DEFAULT_TEXT)
    env = {**os.environ, "DENALI_CONF": str(path), "PYTHONPATH": ROOT}

    def haconf(*args):
        return subprocess.run([sys.executable, "-m", "ha.haconf.cli", *args], env=env,
                              capture_output=True, text=True, timeout=60)

    r = haconf("set", "uplink.interface", "eth0", "uplink.address", "2001:db8:ff::2/64",
               "uplink.gateway", "fe80::1",
               "uplink.routes", "2001:db8:9::/48 via fe80::1, 2001:db8:a::/48 via fe80::2")
    assert r.returncode == 0, r.stderr
    assert haconf("commit").returncode == 0
    cfg = C.load_config(str(path))
    assert cfg.uplink.routes[1] == C.UplinkRoute("2001:db8:a::/48", "fe80::2")
    got = haconf("get", "uplink.gateway", "uplink.mode").stdout.split()
    assert got == ["fe80::1", "static"]
    shown = haconf("show", "uplink").stdout
    assert "[uplink]" in shown and "interface = eth0" in shown
    assert "mode = static  # default" in shown
    bad = haconf("set", "uplink.mode", "dhcp")
    assert bad.returncode != 0 and "uplink.mode: 'dhcp' is not allowed" in bad.stderr
    bad = haconf("set", "uplink.mtu", "1500")
    assert bad.returncode != 0 and "[uplink] has: interface, mode" in bad.stderr


def test_what_the_daemon_puts_in_the_kernel_for_each_mode():
    from ipaddress import IPv6Address, IPv6Interface, IPv6Network
    from ha.daemon.uplink import desired_items
    assert desired_items(None) == []
    up = C.validate_text(conf(STATIC)).uplink
    assert desired_items(up) == [
        ("addr", "eth0", IPv6Interface("2001:db8:ff::2/64")),
        ("route", "eth0", IPv6Network("::/0"), IPv6Address("2001:db8:ff::1")),
        ("route", "eth0", IPv6Network("2001:db8:9::/48"), IPv6Address("fe80::1")),
        ("route", "eth0", IPv6Network("2001:db8:a::/48"), IPv6Address("2001:db8:ff::3"))]
    slaac = C.validate_text(conf("[uplink]\ninterface = eth1\nmode = slaac\n")).uplink
    # a forwarding interface takes RAs only with accept_ra = 2
    assert desired_items(slaac) == [("sysctl", "eth1", "accept_ra", "2"),
                                    ("sysctl", "eth1", "autoconf", "1")]


def test_the_appliance_table_names_the_uplink_and_the_console_port():
    from ha.net.firewall import APPLIANCE_TABLE, TABLE, appliance_ruleset
    text = appliance_ruleset("eth0", 7000)
    assert APPLIANCE_TABLE != TABLE  # beside the MH table, never in it
    assert f"table inet {APPLIANCE_TABLE}" in text
    assert "tcp dport 7000 counter drop" in text
    assert 'iifname "eth0" counter drop' in text
    # the drops come after what is accepted from anywhere
    assert text.index("l4proto { 135, 50, 41 } accept") < text.index("tcp dport 7000")
