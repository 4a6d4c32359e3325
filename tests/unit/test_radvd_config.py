"""radvd.conf parser, validator and writer (radvd/config.py)."""

import os
import shutil
import subprocess
from ipaddress import IPv6Address, IPv6Network

import pytest

from radvd.config import (INFINITY, ConfigError, Config,
                          RouteConfig, RDNSSConfig, DNSSLConfig, dump, load, parse,
                          validate_interface)

DATA = os.path.join(os.path.dirname(__file__), "..", "data")
SEED = os.path.join(DATA, "radvd.seed.conf")

BRACED = """\
# the seed's configuration in radvd's own grammar
interface wlan0 {
        AdvSendAdvert on;
        AdvIntervalOpt on;
        MaxRtrAdvInterval 10;
        MinRtrAdvInterval 1;
        MinDelayBetweenRAs 1;
        AdvHomeAgentFlag on;
        prefix 2001:db8::/64 {
                AdvOnLink on;
                AdvAutonomous on;
                AdvRouterAddr on;
        };
};
interface wlan1 {
        AdvSendAdvert on;
        AdvIntervalOpt on;
        MaxRtrAdvInterval 10;
        MinRtrAdvInterval 1;
        MinDelayBetweenRAs 1;
        AdvHomeAgentFlag off;
        prefix 2001:db8:1::/64 {
                AdvOnLink on;
                AdvAutonomous on;
                AdvRouterAddr on;
        };
};
"""


def check_seed(config: Config) -> None:
    assert [i.name for i in config.interfaces] == ["wlan0", "wlan1"]
    w0, w1 = config.interfaces
    for i in (w0, w1):
        assert i.adv_send_advert is True
        assert i.adv_interval_opt is True
        assert i.max_rtr_adv_interval == 10
        assert i.min_rtr_adv_interval == 1
        assert i.min_delay_between_ras == 1
        assert i.mobile_ipv6
        # defaults from radvd.conf(5)
        assert i.adv_default_lifetime == 30          # 3 * MaxRtrAdvInterval
        assert i.home_agent_lifetime == 30           # = AdvDefaultLifetime
        assert i.home_agent_preference == 0
        assert i.adv_home_agent_info is False
        assert i.adv_source_ll_address is True
        assert i.adv_link_mtu == 0
        assert i.adv_cur_hop_limit == 64
        assert i.adv_reachable_time == 0 and i.adv_retrans_timer == 0
        assert i.adv_managed_flag is False and i.adv_other_config_flag is False
        assert i.adv_default_preference == 0
        assert i.ignore_if_missing is True and i.unicast_only is False
        assert i.adv_mob_rtr_support_flag is False
        assert len(i.prefixes) == 1
        p = i.prefixes[0]
        assert p.adv_on_link and p.adv_autonomous and p.adv_router_addr
        assert p.adv_valid_lifetime == 86400 and p.adv_preferred_lifetime == 14400
        assert i.routes == [] and i.rdnss == [] and i.dnssl == []
    assert w0.adv_home_agent_flag is True
    assert w1.adv_home_agent_flag is False
    assert w0.prefixes[0].prefix == IPv6Network("2001:db8::/64")
    assert w1.prefixes[0].prefix == IPv6Network("2001:db8:1::/64")


def test_seed_file_is_the_article_text():
    text = open(SEED).read()
    # the article lost the braces: the file must be kept as printed there
    assert "{" not in text and "}" not in text
    assert text.startswith("interface wlan0\n")


def test_seed_file_as_printed():
    check_seed(load(SEED))


def test_braces_and_semicolons():
    check_seed(parse(BRACED, "radvd.conf"))


def test_both_grammars_give_the_same_config():
    assert parse(open(SEED).read(), "seed") == parse(BRACED, "braced")


def test_mixed_braces_brace_less_prefix_inside_braced_interface():
    c = parse("interface eth0 {\n AdvSendAdvert on;\n prefix 2001:db8::/64\n AdvOnLink off;\n"
              " MaxRtrAdvInterval 20;\n};\n")
    i = c.interfaces[0]
    assert i.max_rtr_adv_interval == 20 and i.prefixes[0].adv_on_link is False


def test_defaults_without_options():
    i = parse("interface eth0 { };").interfaces[0]
    assert i.adv_send_advert is False
    assert i.max_rtr_adv_interval == 600
    assert i.min_rtr_adv_interval == pytest.approx(198)
    assert i.min_delay_between_ras == 3
    assert i.adv_default_lifetime == 1800
    assert i.home_agent_lifetime == 1800


def test_all_keywords_and_blocks():
    text = """
interface eth1 {
    IgnoreIfMissing off; AdvSendAdvert on; UnicastOnly on; AdvRASolicitedUnicast off;
    MaxRtrAdvInterval 0.07; MinRtrAdvInterval 0.03; MinDelayBetweenRAs 0.03;
    AdvManagedFlag on; AdvOtherConfigFlag on; AdvLinkMTU 1400; AdvReachableTime 30000;
    AdvRetransTimer 1000; AdvCurHopLimit 32; AdvDefaultLifetime 0;
    AdvDefaultPreference high; AdvSourceLLAddress off; AdvHomeAgentFlag on;
    AdvHomeAgentInfo on; HomeAgentLifetime 1000; HomeAgentPreference -5;
    AdvMobRtrSupportFlag on; AdvIntervalOpt on;
    prefix 2001:db8::1/64 { AdvRouterAddr on; AdvValidLifetime infinity;
                            AdvPreferredLifetime 600; DeprecatePrefix on; };
    route 2001:db8:5::/48 { AdvRoutePreference low; AdvRouteLifetime 100; RemoveRoute off; };
    RDNSS 2001:db8::53 2001:db8::54 { AdvRDNSSLifetime 20; FlushRDNSS off; };
    DNSSL example.org lab.example.org { AdvDNSSLLifetime 30; };
    clients { fe80::1; fe80::2; };
};
"""
    i = parse(text).interfaces[0]
    assert (i.ignore_if_missing, i.unicast_only, i.adv_ra_solicited_unicast) == (False, True, False)
    assert (i.max_rtr_adv_interval, i.min_rtr_adv_interval, i.min_delay_between_ras) == \
        (0.07, 0.03, 0.03)
    assert i.adv_managed_flag and i.adv_other_config_flag
    assert (i.adv_link_mtu, i.adv_reachable_time, i.adv_retrans_timer, i.adv_cur_hop_limit) == \
        (1400, 30000, 1000, 32)
    assert i.adv_default_lifetime == 0 and i.adv_default_preference == 1
    assert i.adv_source_ll_address is False
    assert i.adv_home_agent_flag and i.adv_home_agent_info and i.adv_mob_rtr_support_flag
    assert (i.home_agent_lifetime, i.home_agent_preference) == (1000, -5)
    p = i.prefixes[0]
    assert p.prefix == IPv6Network("2001:db8::/64") and p.address == IPv6Address("2001:db8::1")
    assert p.adv_valid_lifetime == INFINITY and p.adv_preferred_lifetime == 600
    assert p.deprecate_prefix
    assert i.routes == [RouteConfig(IPv6Network("2001:db8:5::/48"), 100, -1, False)]
    assert i.rdnss == [RDNSSConfig((IPv6Address("2001:db8::53"), IPv6Address("2001:db8::54")),
                                   20, False)]
    assert i.dnssl == [DNSSLConfig(("example.org", "lab.example.org"), 30, True)]
    assert i.clients == [IPv6Address("fe80::1"), IPv6Address("fe80::2")]
    assert parse(dump(Config([i]))).interfaces[0] == i


def test_derived_lifetimes_of_routes_and_dns():
    i = parse("interface e { AdvSendAdvert on; MaxRtrAdvInterval 100;\n"
              " route 2001:db8::/48 {}; RDNSS 2001:db8::53 {}; DNSSL x.org {}; };").interfaces[0]
    assert i.routes[0].adv_route_lifetime == 300
    assert i.rdnss[0].adv_rdnss_lifetime == 200
    assert i.dnssl[0].adv_dnssl_lifetime == 200


# ------------------------------------------------------------------ round trip


@pytest.mark.parametrize("text", [open(SEED).read(), BRACED,
                                  "interface e { MaxRtrAdvInterval 0.07; MinRtrAdvInterval 0.03;"
                                  " MinDelayBetweenRAs 0.03; AdvHomeAgentFlag on; "
                                  "AdvHomeAgentInfo on; HomeAgentPreference 10; "
                                  "HomeAgentLifetime 600; AdvLinkMTU 1280;"
                                  " prefix 2001:db8::/64 { AdvValidLifetime infinity; }; };"])
def test_dump_parse_round_trip(text):
    c = parse(text)
    again = parse(dump(c), "dumped")
    assert again == c
    assert dump(again) == dump(c)


@pytest.mark.skipif(shutil.which("radvd") is None, reason="needs the real radvd")
def test_real_radvd_accepts_what_dump_writes(tmp_path):
    path = tmp_path / "radvd.conf"
    path.write_text(dump(load(SEED)))
    r = subprocess.run(["radvd", "-c", "-C", str(path)], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 0, r.stderr


# ------------------------------------------------------------------ include


def test_include_relative_and_glob(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "a.conf").write_text("interface a { AdvSendAdvert on; };\n")
    (tmp_path / "conf.d" / "b.conf").write_text("interface b\n AdvSendAdvert on;\n")
    main = tmp_path / "radvd.conf"
    main.write_text('include "conf.d/*.conf";\ninterface c { };\n')
    c = load(str(main))
    assert [i.name for i in c.interfaces] == ["a", "b", "c"]


def test_include_errors_name_the_included_file(tmp_path):
    (tmp_path / "bad.conf").write_text("interface a {\n  AdvSendAdvert maybe;\n};\n")
    main = tmp_path / "radvd.conf"
    main.write_text("include bad.conf;\n")
    with pytest.raises(ConfigError) as e:
        load(str(main))
    assert e.value.filename.endswith("bad.conf") and e.value.line == 2


def test_include_missing_file(tmp_path):
    main = tmp_path / "radvd.conf"
    main.write_text("\ninclude nothere.conf;\n")
    with pytest.raises(ConfigError) as e:
        load(str(main))
    assert e.value.line == 2 and "nothere.conf" in str(e.value)


def test_include_loop_is_an_error_not_a_crash(tmp_path):
    main = tmp_path / "radvd.conf"
    main.write_text("include radvd.conf;\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load(str(main))


def test_load_missing_file():
    with pytest.raises(ConfigError, match="cannot read"):
        load("/nonexistent/radvd.conf")


# ------------------------------------------------------------------ validation messages

MIP = "AdvHomeAgentFlag on; "


@pytest.mark.parametrize("body,line_of,message", [
    (MIP + "MaxRtrAdvInterval 0.07;\nMinRtrAdvInterval 0.02; MinDelayBetweenRAs 0.03;",
     2, "MinRtrAdvInterval must be at least 0.03 when Mobile IPv6 is on"),
    ("MaxRtrAdvInterval 10;\nMinRtrAdvInterval 1;",
     2, "MinRtrAdvInterval must be at least 3 (0.03 needs Mobile IPv6"),
    ("MaxRtrAdvInterval 10;\nMinRtrAdvInterval 8;",
     2, "MinRtrAdvInterval (8) must be no more than 0.75 * MaxRtrAdvInterval (7.5)"),
    (MIP + "\nMaxRtrAdvInterval 0.05; MinRtrAdvInterval 0.03; MinDelayBetweenRAs 0.03;",
     2, "MaxRtrAdvInterval must be at least 0.07 when Mobile IPv6 is on"),
    ("\nMaxRtrAdvInterval 3.5; MinRtrAdvInterval 3;",
     2, "MaxRtrAdvInterval must be at least 4 (0.07 needs Mobile IPv6"),
    ("\nMaxRtrAdvInterval 70000;",
     2, "MaxRtrAdvInterval must be no more than 65535 (RFC 8319)"),
    (MIP + "MaxRtrAdvInterval 1; MinRtrAdvInterval 0.5;\nMinDelayBetweenRAs 0.01;",
     2, "MinDelayBetweenRAs must be at least 0.03 when Mobile IPv6 is on"),
    ("\nMinDelayBetweenRAs 1;",
     2, "MinDelayBetweenRAs must be at least 3 (0.03 needs Mobile IPv6"),
    ("\nAdvHomeAgentInfo on;", 2, "AdvHomeAgentInfo needs AdvHomeAgentFlag on"),
    (MIP + "AdvHomeAgentInfo on;\nHomeAgentLifetime 0;",
     2, "HomeAgentLifetime (0) must be between 1 and 65520"),
    (MIP + "AdvHomeAgentInfo on;\nHomeAgentLifetime 65521;",
     2, "HomeAgentLifetime (65521) must be between 1 and 65520"),
    (MIP + "\nAdvMobRtrSupportFlag on;", 2, "AdvMobRtrSupportFlag needs AdvHomeAgentInfo on"),
    ("\nprefix 2001:db8::/64 { AdvValidLifetime 100; AdvPreferredLifetime 200; };",
     2, "AdvPreferredLifetime (200) must not be more than AdvValidLifetime (100)"),
    ("\nAdvLinkMTU 1000;", 2, "AdvLinkMTU (1000) must be 0 or at least 1280"),
    ("\nAdvReachableTime 3600001;", 2, "AdvReachableTime must be no more than 3600000"),
    ("\nDNSSL a..b { };", 2, "DNSSL 'a..b' is not a domain name"),
    ("\nAdvCurHopLimit 256;", 2, "AdvCurHopLimit must be no more than 255"),
    ("MaxRtrAdvInterval 100;\nAdvDefaultLifetime 50;",
     2, "AdvDefaultLifetime (50) must be 0 or between MaxRtrAdvInterval (100) and 65535"),
])
def test_validation_messages(body, line_of, message):
    text = "interface eth0 {\n" + body + "\n};\n"
    # the body starts on line 2 of the file; the offending option sits on body line line_of
    with pytest.raises(ConfigError) as e:
        parse(text, "radvd.conf")
    assert message in str(e.value)
    assert str(e.value).startswith(f"radvd.conf:{line_of + 1}: ")


def test_exact_message_format():
    text = ("interface eth0 {\n AdvHomeAgentFlag on;\n MaxRtrAdvInterval 0.07;\n"
            " MinDelayBetweenRAs 0.03;\n MinRtrAdvInterval 0.01;\n};\n")
    with pytest.raises(ConfigError) as e:
        parse(text, "radvd.conf")
    assert str(e.value) == ("radvd.conf:5: MinRtrAdvInterval must be at least 0.03 when "
                            "Mobile IPv6 is on")
    assert (e.value.filename, e.value.line) == ("radvd.conf", 5)


def test_r_flag_prefix_turns_mobile_ipv6_on():
    i = parse("interface e { MaxRtrAdvInterval 0.07; MinRtrAdvInterval 0.03; "
              "MinDelayBetweenRAs 0.03; prefix 2001:db8::/64 { AdvRouterAddr on; }; };")
    assert i.interfaces[0].mobile_ipv6


def test_default_min_is_checked_like_radvd():
    # 0.33 * 0.07 < 0.03: radvd refuses this too; the line is MaxRtrAdvInterval's
    with pytest.raises(ConfigError, match=r"^x:3: MinRtrAdvInterval must be at least 0.03"):
        parse("interface e {\n AdvIntervalOpt on; MinDelayBetweenRAs 0.03;\n"
              " MaxRtrAdvInterval 0.07;\n};", "x")


def test_link_mtu_checked_against_interface_mtu():
    i = parse("interface e {\n AdvLinkMTU 1500;\n};").interfaces[0]
    assert validate_interface(i, "f", link_mtu=1500) == []
    errs = validate_interface(i, "f", link_mtu=1400)
    assert [str(x) for x in errs] == ["f:2: AdvLinkMTU (1500) is above the MTU of e (1400)"]


# ------------------------------------------------------------------ syntax errors


@pytest.mark.parametrize("text,line,message", [
    ("interface e {\n  AdvSendAdvert on;\n  AdvFoo on;\n};", 3, "unknown keyword 'AdvFoo'"),
    ("interface e {\n  AdvSendAdvert maybe;\n};", 2, "AdvSendAdvert expects on or off"),
    ("interface e {\n  MaxRtrAdvInterval ten;\n};", 2, "MaxRtrAdvInterval expects a number"),
    ("interface e {\n  AdvLinkMTU 1400.5;\n};", 2, "decimal values are only allowed"),
    ("interface e {\n  AdvDefaultPreference highest;\n};", 2, "expects low, medium or high"),
    ("interface e {\n  prefix 2001:zz::/64 { };\n};", 2, "'2001:zz::/64' is not an IPv6 prefix"),
    ("interface e {\n  prefix 2001:db8:: { };\n};", 2, "needs a length"),
    ("interface e {\n  AdvSendAdvert on;\n", 1, "missing '}' for interface"),
    ("interface e {\n};\n};", 3, "unexpected '}'"),
    ("AdvSendAdvert on;", 1, "not allowed outside any interface"),
    ("interface e {\n AdvOnLink on;\n};", 2, "'AdvOnLink' is a prefix option"),
    ("interface e {\n AdvSendAdvert;\n};", 2, "AdvSendAdvert needs a value"),
    ("interface e {\n abro fe80::1/64 { };\n};", 2, "does not support"),
    ("interface e { };\ninterface e { };", 2, "interface e is defined twice (first at line 1)"),
    ("interface e {\n RDNSS { };\n};", 2, "RDNSS needs at least one address"),
    ("interface e {\n RDNSS 2001:db8::zz { };\n};", 2, "not an IPv6 address"),
    ('interface "e', 1, "unterminated quoted string"),
    ("interface e {\n interface f { };\n};", 2, "'interface' inside interface"),
    ("interface e {\n clients { fe80::zz; };\n};", 2, "not an IPv6 address (in clients)"),
])
def test_syntax_errors(text, line, message):
    with pytest.raises(ConfigError) as e:
        parse(text, "radvd.conf")
    assert message in e.value.message
    assert e.value.line == line
    assert str(e.value).startswith(f"radvd.conf:{line}: ")


def test_garbage_never_crashes():
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import given, settings, strategies as st

    alphabet = st.sampled_from(["interface", "e", "{", "}", ";", "prefix", "2001:db8::/64",
                                "AdvOnLink", "on", "off", "MaxRtrAdvInterval", "0.07", "1e9",
                                "nan", "-1", "\n", " ", "#", '"', "RDNSS", "::1", "clients",
                                "include", "x"])

    @settings(max_examples=300, deadline=None)
    @given(st.lists(alphabet, max_size=30))
    def run(words):
        try:
            parse(" ".join(words), "fuzz")
        except ConfigError:
            pass

    run()
    assert hypothesis


# ------------------------------------------------------------------ python -m radvd -c

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def configtest(path):
    import sys
    return subprocess.run([sys.executable, "-m", "radvd", "-c", "-C", str(path)],
                          capture_output=True, text=True, timeout=30, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT))


def test_configtest_accepts_the_seed():
    r = configtest(SEED)
    assert r.returncode == 0, r.stderr
    assert "syntax ok" in r.stderr


def test_configtest_refuses_with_file_and_line(tmp_path):
    bad = tmp_path / "radvd.conf"
    bad.write_text("interface wlan0 {\n AdvHomeAgentInfo on;\n};\n")
    r = configtest(bad)
    assert r.returncode == 1
    assert f"{bad}:2: AdvHomeAgentInfo needs AdvHomeAgentFlag on" in r.stderr
    assert "Traceback" not in r.stderr


def test_configtest_missing_file():
    r = configtest("/nonexistent/radvd.conf")
    assert r.returncode == 1 and "cannot read" in r.stderr and "Traceback" not in r.stderr


def test_importing_radvd_does_no_work():
    import sys
    code = ("import sys, radvd, radvd.config, radvd.scheduler; "
            "bad = [m for m in ('pyroute2', 'asyncio', 'scapy') if m in sys.modules]; "
            "print(bad)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=30, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.stdout.strip() == "[]", r.stdout + r.stderr
