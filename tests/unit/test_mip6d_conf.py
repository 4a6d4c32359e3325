import os

import pytest
from hypothesis import given, strategies as st

from ha.config.mip6d_conf import (BindingAcl, HomeLink, Mip6dConfError, Mip6dConfig,
                           dump_mip6d, parse_mip6d)

DATA = os.path.join(os.path.dirname(__file__), "..", "data")


def read(name):
    with open(os.path.join(DATA, name)) as f:
        return f.read()


def test_seed_ha_file():
    cfg = parse_mip6d(read("mip6d.ha.conf"), "mip6d.ha.conf")
    assert cfg.node_config == "HA"
    assert cfg.debug_level == 0
    assert cfg.interfaces == ["wlan0"]
    assert cfg.use_mn_ha_ipsec is False
    assert cfg.warnings == []


def test_seed_mn_file_with_missing_brace():
    cfg = parse_mip6d(read("mip6d.mn.conf"), "mip6d.mn.conf")
    assert cfg.node_config == "MN"
    assert cfg.debug_level == 7
    assert cfg.do_route_optimization_mn is False
    assert cfg.do_route_optimization_cn is False
    assert cfg.home_links == [HomeLink("wlan0", "2001:db8::beef/64",
                                       "2001:db8::")]
    assert len(cfg.warnings) == 1 and "not closed" in cfg.warnings[0]


@pytest.mark.parametrize("name", ["mip6d.ha.conf", "mip6d.mn.conf"])
def test_round_trip(name):
    cfg = parse_mip6d(read(name), name)
    again = parse_mip6d(dump_mip6d(cfg), "dumped")
    assert again == cfg
    assert again.warnings == []


def test_all_keywords():
    text = """# full HA
NodeConfig HA; DebugLevel 3;
Interface "wlan0" { MnIfPreference 2; }
Interface "eth0";
HaMaxBindingLife 1000;
DefaultBindingAclPolicy deny;
BindingAclPolicy 2001:db8::beef allow;
BindingAclPolicy 2001:db8::bad 2001:db8:1::1 deny;
SendMobPfxAdvs enabled; SendMobPfxSols disabled;
MinMobPfxAdvInterval 60; MaxMobPfxAdvInterval 600;
HaServedPrefix 2001:db8::/64;
DoRouteOptimizationMN enabled; DoRouteOptimizationCN disabled;
MnMaxHaBindingLife 100; MnMaxCnBindingLife 50; KeyMngMobCapability disabled;
"""
    cfg = parse_mip6d(text, "x")
    assert cfg.interfaces == ["wlan0", "eth0"]
    assert cfg.interface_preference == {"wlan0": 2}
    assert cfg.ha_max_binding_life == 1000
    assert cfg.default_binding_acl_policy == "deny"
    assert cfg.binding_acl == [
        BindingAcl("2001:db8::beef", None, True),
        BindingAcl("2001:db8::bad", "2001:db8:1::1", False)]
    assert cfg.send_mob_pfx_advs is True and cfg.send_mob_pfx_sols is False
    assert (cfg.min_mob_pfx_adv_interval, cfg.max_mob_pfx_adv_interval) == (
        60, 600)
    assert cfg.ha_served_prefixes == ["2001:db8::/64"]
    assert cfg.mn_max_ha_binding_life == 100
    assert parse_mip6d(dump_mip6d(cfg), "d") == cfg


def test_defaults_give_meaning():
    a = parse_mip6d("NodeConfig HA;", "a").with_defaults()
    b = parse_mip6d("NodeConfig HA; HaMaxBindingLife 262140; "
                    "DefaultBindingAclPolicy allow;", "b").with_defaults()
    assert a == b


@pytest.mark.parametrize("text, line, what", [
    ("NodeConfig HA;\nFooBar 1;", 2, "unknown keyword 'FooBar'"),
    ("NodeConfig XX;", 1, "use HA, MN or CN"),
    ("DebugLevel x;", 1, "non-negative integer"),
    ("UseMnHaIPsec yes;", 1, "use enabled or disabled"),
    ("NodeConfig HA", 1, "missing ';'"),
    ('Interface wlan0;', 1, "quoted interface name"),
    ("HaServedPrefix 2001:db8::1/64;", 1, "IPv6 prefix"),
    ("BindingAclPolicy 2001:db8::zz allow;", 1, "IPv6 address"),
    ("BindingAclPolicy 2001:db8::1 maybe;", 1, "use allow or deny"),
    ("BindingAclPolicy;", 1, "use: BindingAclPolicy"),
    ("}", 1, "'}' without '{'"),
    ('\n\nInterface "a\n";', 3, "unterminated string"),
    ('MnHomeLink "wlan0" { Foo 1; }', 1, "in MnHomeLink block"),
    ('MnHomeLink "wlan0" { HomeAddress 2001:db8::1; }', 1, "address/length"),
    ('MnHomeLink "wlan0";', 1, "needs a '{ ... }' block"),
    ("DebugLevel 1 { }", 1, "takes no"),
    ("MinMobPfxAdvInterval 10; MaxMobPfxAdvInterval 5;", 0, "min <= max"),
    ("DebugLevel \u00b2;", 1, "use a non-negative integer"),
    ("HaMaxBindingLife \u0663;", 1, "use a non-negative integer"),
])
def test_refusals(text, line, what):
    with pytest.raises(Mip6dConfError) as e:
        parse_mip6d(text, "bad.conf")
    assert e.value.line == line
    assert what in str(e.value)
    assert str(e.value).startswith(f"bad.conf:{line}:")


def test_empty_file():
    assert parse_mip6d("# nothing\n", "e") == Mip6dConfig()


_addr = st.integers(0, 2**128 - 1).map(
    lambda n: __import__("ipaddress").IPv6Address(n).compressed)
_name = st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True)
_bool = st.none() | st.booleans()
_int = st.none() | st.integers(0, 10**6)


@given(st.builds(
    Mip6dConfig,
    node_config=st.none() | st.sampled_from(["HA", "MN", "CN"]),
    debug_level=_int, interfaces=st.lists(_name, unique=True, max_size=3),
    use_mn_ha_ipsec=_bool, do_route_optimization_mn=_bool,
    ha_max_binding_life=_int,
    default_binding_acl_policy=st.none() | st.sampled_from(["allow", "deny"]),
    binding_acl=st.lists(st.builds(BindingAcl, _addr, st.none() | _addr,
                                   st.booleans()), max_size=3),
    send_mob_pfx_advs=_bool,
    home_links=st.lists(st.builds(
        HomeLink, _name, st.none() | _addr.map(lambda a: a + "/64"),
        st.none() | _addr), max_size=2)))
def test_dump_parse_round_trip(cfg):
    assert parse_mip6d(dump_mip6d(cfg), "d") == cfg


def test_a_care_of_address_rule_never_widens_the_policy(tmp_path):
    # BindingAclPolicy HOA COA allow: that pair only, not the home address from anywhere
    from ipaddress import IPv6Address as A, IPv6Network
    from ha.core.binding_cache import BindingCache
    from ha.core.registration import BUContext, HomeAgentConfig, process_binding_update
    from ha.daemon.settings import load_settings
    from ha.wire.mobility import BAStatus, BindingUpdate
    f = tmp_path / "mip6d.conf"
    f.write_text('NodeConfig HA;\nInterface "wlan0";\nUseMnHaIPsec disabled;\n'
                 'DefaultBindingAclPolicy deny;\n'
                 'BindingAclPolicy 2001:db8::beef 2001:db8:1::5 allow;\n')
    s = load_settings(str(f))
    assert s.acl == {(A("2001:db8::beef"), A("2001:db8:1::5")): True}
    cfg = HomeAgentConfig(served_prefixes=(IPv6Network("2001:db8::/64"),), ha_addresses=(A("2001:db8::"),), acl=s.acl,
                          acl_default_allow=s.acl_default_allow, dad_enabled=False)

    def status(coa):
        bu = BindingUpdate(sequence=1, lifetime=100, ack=True, home_registration=True)
        ctx = BUContext(bu, src=A(coa), dst=A("2001:db8::"), hoa=A("2001:db8::beef"))
        return process_binding_update(ctx, BindingCache(4), cfg, 0.0).status
    assert status("2001:db8:1::5") is BAStatus.ACCEPTED
    assert status("2001:db8:2::9") is BAStatus.ADMINISTRATIVELY_PROHIBITED
