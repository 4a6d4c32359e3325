"""[ra] blocks in denali.conf: RDNSS, DNSSL, routes, more prefixes, clients,
AdvDefaultPreference, UnicastOnly: checked, typed, and rendered into radvd.conf
text that the RA sender's own parser (radvd.config) reads back to the same meaning."""

import ipaddress

import pytest

from ha.config import model as C

R = pytest.importorskip("radvd.config", reason="radvd/config.py absent")


def ra_check(text, filename):
    R.parse(text, filename)


WLAN0_TAIL = "        AdvRouterAddr = on\n    [[wlan1]]"


def seed_with(extra):
    """The seed's DEFAULT_TEXT with *extra* lines at the end of [[wlan0]]."""
    assert C.DEFAULT_TEXT.count(WLAN0_TAIL) == 1
    return C.DEFAULT_TEXT.replace(WLAN0_TAIL, "        AdvRouterAddr = on\n"
                                  + extra.rstrip("\n") + "\n    [[wlan1]]")


FULL = """\
        AdvDefaultPreference = high
        UnicastOnly = on
        clients = fe80::1, FE80::0:2
        [[[prefix 2001:db8:5::/64]]]
            AdvAutonomous = off
            AdvValidLifetime = infinity
            AdvPreferredLifetime = 3600
            DeprecatePrefix = on
        [[[prefix 2001:db8:6::1/64]]]
            AdvRouterAddr = on
        [[[route 2001:db8:7::/48]]]
            AdvRoutePreference = low
            AdvRouteLifetime = 1800
        [[[route 2001:db8:8::/48]]]
        [[[rdnss]]]
            addresses = 2001:db8::53, 2001:db8::54
            AdvRDNSSLifetime = 30
        [[[rdnss 2]]]
            addresses = 2001:db8::1:53
            FlushRDNSS = off
        [[[dnssl]]]
            domains = example.com, lab.example.
            AdvDNSSLLifetime = infinity
"""


def load(extra, check=ra_check):
    return C.validate_text(seed_with(extra), "denali.conf", check)


def refused(extra, check=ra_check):
    with pytest.raises(C.DenaliConfError) as e:
        load(extra, check)
    return e.value


def test_the_seed_has_none_of_them_and_renders_as_before():
    cfg = C.validate_text(C.DEFAULT_TEXT, "denali.conf", ra_check)
    w0 = cfg.ra_interfaces[0]
    assert (w0.routes, w0.rdnss, w0.dnssl, w0.clients) == ((), (), (), ())
    assert w0.adv_default_preference == "medium" and not w0.unicast_only
    text = cfg.ra_as_radvd_text()
    for word in ("RDNSS", "DNSSL", "route", "clients", "UnicastOnly",
                 "AdvDefaultPreference"):
        assert word not in text
    assert len(R.parse(text).interface("wlan0").prefixes) == 1


def test_every_block_typed():
    w0 = load(FULL).ra_interfaces[0]
    assert w0.adv_default_preference == "high" and w0.unicast_only
    assert w0.clients == ("fe80::1", "fe80::2")
    assert [p.prefix for p in w0.prefixes] == ["2001:db8::/64", "2001:db8:5::/64",
                                                "2001:db8:6::1/64"]
    p5 = w0.prefixes[1]
    assert (p5.adv_autonomous, p5.adv_valid_lifetime, p5.adv_preferred_lifetime,
            p5.deprecate_prefix) == (False, C.INFINITY, 3600, True)
    assert w0.routes == (C.RaRoute("2001:db8:7::/48", "low", 1800, True),
                         # unset: 3 x MaxRtrAdvInterval (10 s), as radvd derives it
                         C.RaRoute("2001:db8:8::/48", "medium", 30, True))
    assert w0.rdnss == (C.RaRdnss(("2001:db8::53", "2001:db8::54"), 30, True),
                        C.RaRdnss(("2001:db8::1:53",), 20, False))
    assert w0.dnssl == (C.RaDnssl(("example.com", "lab.example."), C.INFINITY, True),)


def test_rendered_text_means_the_same_to_the_ra_sender():
    cfg = load(FULL)
    w0 = cfg.ra_interfaces[0]
    got = R.parse(cfg.ra_as_radvd_text(), "rendered").interface("wlan0")
    assert got.adv_default_preference == R.PREFERENCES["high"] and got.unicast_only
    assert got.clients == [ipaddress.IPv6Address("fe80::1"), ipaddress.IPv6Address("fe80::2")]
    shown = [f"{p.address}/{p.prefix.prefixlen}" if p.address else str(p.prefix)
             for p in got.prefixes]
    assert shown == [p.prefix for p in w0.prefixes]
    assert [(str(r.prefix), r.adv_route_preference, r.adv_route_lifetime, r.remove_route)
            for r in got.routes] == [(r.prefix, R.PREFERENCES[r.adv_route_preference],
                                      r.adv_route_lifetime, r.remove_route)
                                     for r in w0.routes]
    assert [(tuple(map(str, r.servers)), r.adv_rdnss_lifetime, r.flush_rdnss)
            for r in got.rdnss] == [(r.addresses, r.adv_rdnss_lifetime, r.flush_rdnss)
                                    for r in w0.rdnss]
    assert [(d.domains, d.adv_dnssl_lifetime, d.flush_dnssl) for d in got.dnssl] == \
        [(d.domains, d.adv_dnssl_lifetime, d.flush_dnssl) for d in w0.dnssl]
    assert got.prefixes[1].deprecate_prefix and got.prefixes[2].adv_router_addr


@pytest.mark.parametrize("extra, key, words", [
    ("        [[[rdnss]]]\n            AdvRDNSSLifetime = 30\n",
     "ra.wlan0.rdnss.addresses", "missing: use IPv6 addresses"),
    ("        [[[rdnss]]]\n            addresses = 2001:db8::53, dns.example\n",
     "ra.wlan0.rdnss.addresses", "'dns.example' is not an IPv6 address"),
    ("        [[[rdnss]]]\n            addresses = 2001:db8::53\n"
     "            AdvRDNSSLifetime = 5\n",
     "ra.wlan0.rdnss.AdvRDNSSLifetime", "less than MaxRtrAdvInterval 10"),
    ("        [[[dnssl]]]\n            domains = ex{ample.com\n",
     "ra.wlan0.dnssl.domains", "not a domain name"),
    ("        [[[dnssl]]]\n            domains = example.com\n"
     "            AdvDNSSLLifetime = soon\n",
     "ra.wlan0.dnssl.AdvDNSSLLifetime", "not a lifetime"),
    ("        [[[route 2001:db8:7::1/48]]]\n", "ra.wlan0.route 2001:db8:7::1/48",
     "has host bits"),
    ("        [[[route]]]\n", "ra.wlan0.route", "route without a prefix"),
    ("        [[[route 2001:db8:7::/48]]]\n            AdvRoutePreference = urgent\n",
     "ra.wlan0.route 2001:db8:7::/48.AdvRoutePreference", "use low or medium or high"),
    ("        [[[route 2001:db8:7::/48]]]\n            Bogus = 1\n",
     "ra.wlan0.route 2001:db8:7::/48.Bogus", "unknown setting: use one of "
     "AdvRoutePreference, AdvRouteLifetime, RemoveRoute"),
    ("        [[[prefix 2001:db8::/64]]]\n", "ra.wlan0.prefix 2001:db8::/64",
     "already given by prefix"),
    ("        [[[prefix nope]]]\n", "ra.wlan0.prefix nope", "not an IPv6 prefix"),
    ("        [[[prefix 2001:db8:5::/64]]]\n            AdvValidLifetime = 60\n",
     "ra.wlan0.prefix 2001:db8:5::/64.AdvPreferredLifetime",
     "greater than AdvValidLifetime"),
    ("        [[[nat64prefix 64:ff9b::/96]]]\n", "ra.wlan0.nat64prefix 64:ff9b::/96",
     "unknown block: use [[[prefix"),
    ("        AdvDefaultPreference = highest\n", "ra.wlan0.AdvDefaultPreference",
     "use low or medium or high"),
    ("        clients = fe80::1, nobody\n", "ra.wlan0.clients", "'nobody' is not an IPv6"),
])
def test_refusals_name_the_setting_and_what_is_allowed(extra, key, words):
    err = refused(extra)
    assert (key, True) in [(k, words in r) for k, r in err.errors], err.errors
    assert f"denali.conf: {key}: " in str(err)


def test_the_ra_senders_rule_inside_a_block_names_the_block():
    def sender(text, filename):  # a stand-in rule, at the line of the route
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip().startswith("AdvRouteLifetime"):
                raise R.RadvdConfError(filename, n, "AdvRouteLifetime refused here")
    err = refused("        [[[route 2001:db8:7::/48]]]\n            AdvRouteLifetime = 9\n",
                  sender)
    assert err.errors == [("ra.wlan0.route 2001:db8:7::/48", "AdvRouteLifetime refused here")]


def test_a_block_without_the_ra_sender_is_still_typed():
    w0 = load(FULL, check=None).ra_interfaces[0]
    assert len(w0.rdnss) == 2 and len(w0.routes) == 2


def test_blocks_of_one_interface_leave_the_others_alone():
    cfg = load(FULL)
    w1 = cfg.ra_interfaces[1]
    assert (w1.routes, w1.rdnss, w1.dnssl, len(w1.prefixes)) == ((), (), (), 1)
    assert "RDNSS" not in cfg.ra_as_radvd_text().split("interface wlan1")[1]
