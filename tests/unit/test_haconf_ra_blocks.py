"""haconf set/get/unset reach every [ra] key: an interface's, and its blocks' (prefix,
route, rdnss, dnssl), typed at the serial console as the file nests them.

Each check reads the staged file back with the model (what denalid would run)
and, for the blocks, the radvd.conf that `haconf export` makes of it.
"""

import pytest
from haconf_box import Box as _Box

from ha.config import model as C


class Box(_Box):
    def staged_config(self):
        return C.validate_text(open(self.staged).read())


@pytest.fixture
def box(tmp_path):
    return Box(tmp_path)


def wlan0(cfg):
    return next(r for r in cfg.ra_interfaces if r.name == "wlan0")


def test_interface_key_after_ra(box):
    r = box.ok("set", "ra", "wlan0", "AdvDefaultPreference", "high")
    assert "ra.wlan0.AdvDefaultPreference = high" in r.stdout
    assert box.ok("get", "ra", "wlan0", "advdefaultpreference").stdout == "high\n"
    # the same key by the older forms
    assert box.ok("get", "ra.wlan0.AdvDefaultPreference").stdout == "high\n"
    assert "AdvDefaultPreference high;" in box.ok("export", "--staged", "--format", "radvd").stdout


def test_prefix_block_made_and_its_options_set(box):
    r = box.ok("set", "ra", "wlan0", "prefix", "2001:db8:5::/64",
               "AdvPreferredLifetime", "600", "AdvValidLifetime", "1200")
    assert "ra.wlan0 [[[prefix 2001:db8:5::/64]]] AdvPreferredLifetime = 600" in r.stdout
    text = open(box.staged).read()
    assert "[[[prefix 2001:db8:5::/64]]]" in text
    p = [p for p in wlan0(box.staged_config()).prefixes if p.prefix == "2001:db8:5::/64"]
    assert len(p) == 1 and (p[0].adv_preferred_lifetime, p[0].adv_valid_lifetime) == (600, 1200)
    # the interface's own prefix is untouched
    assert wlan0(box.staged_config()).prefixes[0].prefix == "2001:db8::/64"
    # the same block, however the prefix is spelled; and a key of its own
    box.ok("set", "ra", "wlan0", "prefix", "2001:db8:5:0:0::/64", "DecrementLifetimes", "on")
    assert open(box.staged).read().count("[[[prefix") == 1
    assert box.ok("get", "ra", "wlan0", "prefix", "2001:db8:5::/64",
                  "DecrementLifetimes", "AdvOnLink").stdout == "on\non\n"  # on: default


def test_options_of_the_interfaces_own_prefix(box):
    box.ok("set", "ra", "wlan0", "prefix", "2001:db8::/64", "AdvPreferredLifetime", "600")
    text = open(box.staged).read()
    assert "[[[prefix" not in text  # no block beside prefix = 2001:db8::/64
    own = wlan0(box.staged_config()).prefixes[0]
    assert own.prefix == "2001:db8::/64" and own.adv_preferred_lifetime == 600
    # `prefix P` with no prefix option after it is still the interface's prefix = P
    box.ok("set", "ra", "wlan0", "prefix", "2001:db8:9::/64", "MaxRtrAdvInterval", "20")
    cfg = box.staged_config()
    assert wlan0(cfg).prefixes[0].prefix == "2001:db8:9::/64"
    assert "[[[prefix" not in open(box.staged).read()


def test_route_rdnss_dnssl_blocks_reach_the_radvd_conf(box):
    box.ok("set", "ra", "wlan0", "route", "2001:db8:7::/48", "AdvRoutePreference", "low",
           "AdvRouteLifetime", "1800")
    box.ok("set", "ra", "wlan0", "rdnss", "addresses", "2001:db8::53, 2001:db8::54",
           "AdvRDNSSLifetime", "30")
    box.ok("set", "ra", "wlan0", "dnssl", "domains", "example.com",
           "wlan1", "AdvDefaultPreference", "low")  # then another interface's key
    box.ok("set", "ra", "wlan0", "rdnss", "2", "addresses", "2001:db8::55")
    r = wlan0(box.staged_config())
    assert [(x.prefix, x.adv_route_preference, x.adv_route_lifetime) for x in r.routes] == [
        ("2001:db8:7::/48", "low", 1800)]
    assert [x.addresses for x in r.rdnss] == [("2001:db8::53", "2001:db8::54"),
                                              ("2001:db8::55",)]
    assert [x.domains for x in r.dnssl] == [("example.com",)]
    assert box.ok("get", "ra", "wlan1", "AdvDefaultPreference").stdout == "low\n"
    out = box.ok("export", "--staged", "--format", "radvd").stdout
    for line in ("route 2001:db8:7::/48", "AdvRoutePreference low;", "AdvRouteLifetime 1800;",
                 "RDNSS 2001:db8::53 2001:db8::54", "RDNSS 2001:db8::55",
                 "DNSSL example.com"):
        assert line in out, out


def test_a_key_the_block_lacks_goes_back_to_the_interface(box):
    r = box.ok("set", "ra", "wlan0", "rdnss", "MaxRtrAdvInterval", "20")
    assert r.stdout.splitlines()[0] == "ra.wlan0.MaxRtrAdvInterval = 20"
    assert "[[[rdnss" not in open(box.staged).read()  # a block is made by its keys only


def test_unset_a_block_key_and_a_whole_block(box):
    box.ok("set", "ra", "wlan0", "route", "2001:db8:7::/48", "AdvRoutePreference", "low",
           "AdvRouteLifetime", "1800")
    box.ok("unset", "ra", "wlan0", "route", "2001:db8:7::/48", "AdvRouteLifetime")
    assert wlan0(box.staged_config()).routes[0].adv_route_lifetime == 30  # 3 x MaxRtrAdvInterval 10
    r = box.ok("unset", "ra", "wlan0", "route", "2001:db8:7::/48")
    assert "ra.wlan0 [[[route 2001:db8:7::/48]]] unset" in r.stdout
    assert wlan0(box.staged_config()).routes == ()
    assert "is not set" in box.refused("unset", "ra", "wlan0", "route", "2001:db8:7::/48")


def test_get_of_a_block_that_is_not_there(box):
    r = box.run("get", "ra", "wlan0", "route", "2001:db8:9::/48", "AdvRouteLifetime")
    assert r.exit_code == 2
    assert "no block [[[route 2001:db8:9::/48]]] in [ra] wlan0" in " ".join(r.stderr.split())


BAD = [
    (["ra"], "ra: which interface? e.g. haconf set ra wlan0 AdvDefaultPreference high"),
    (["ra", "wlan0"], "ra wlan0: which setting?"),
    (["ra", "AdvSendAdvert", "on"], "which interface? name it first"),
    (["ra", "wlan0", "route"], "which prefix? e.g. haconf set ra wlan0 route 2001:db8:7::/48"),
    (["ra", "wlan0", "route", "2001:db8:7::1/48", "AdvRoutePreference", "low"],
     "has host bits: a route is a prefix, e.g. 2001:db8:7::/48"),
    (["ra", "wlan0", "route", "2001:db8:7::/48", "Frob", "1"],
     "unknown setting 'Frob': route has AdvRoutePreference, AdvRouteLifetime, RemoveRoute"),
    (["ra", "wlan0", "route", "2001:db8:7::/48", "AdvRoutePreference", "lowest"],
     "use low or medium or high"),
    (["ra", "wlan0", "route", "2001:db8:7::/48", "AdvRoutePreference"], "missing value"),
    (["ra", "wlan0", "rdnss", "addresses", "2001:db8::zz"], "is not an IPv6 address"),
    (["ra", "wlan0", "rdnss"], "rdnss has: addresses, AdvRDNSSLifetime, FlushRDNSS"),
    (["ra", "wlan0", "prefix", "2001:db8::/64", "DeprecatePrefix", "on"],
     "the interface's own prefix (prefix =) takes AdvOnLink"),
    (["ra", "wlan0", "prefix", "2001:db8:5::/64", "AdvPreferredLifetime", "90000"],
     "greater than AdvValidLifetime: use at most 86400"),
    (["ra", "wlan0", "prefix", "2001:db8:5::/129", "AdvOnLink", "on"], "not an IPv6 prefix"),
    (["ra", "wlan0", "Frob", "1"], "ra wlan0: unknown setting 'Frob': an interface has"),
    (["ra", "wlan0", "AdvDefaultPreference", "highest"], "use low or medium or high"),
    (["ra", "wlan0!", "AdvDefaultPreference", "high"], "not an interface name"),
    (["ra.wlan0.route.AdvRoutePreference", "low"], "reached by words, e.g."),
]


@pytest.mark.parametrize("args, words", BAD)
def test_refused_ra_words_name_what_is_allowed(box, args, words):
    box.ok("set", "txpower", "10")  # a staged file to keep
    assert words in box.refused("set", *args)
