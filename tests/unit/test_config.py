import os
import subprocess
import sys

import pytest

from ha.config import model as C
from ha.config.atomic import atomic_write

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def seed_with(**changes):
    """DEFAULT_TEXT with dotted keys replaced (value None deletes)."""
    obj = C.parse_text(C.DEFAULT_TEXT, "x")
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        node = obj
        for p in parents:
            node = node.setdefault(p, {})
        if value is None:
            node.pop(key, None)
        else:
            node[key] = value
    return "\n".join(obj.write()) + "\n"


def refused(text):
    # with the RA sender's rules, as haconf and denalid check
    from radvd.config import parse as ra_check
    with pytest.raises(C.ConfigError) as e:
        C.validate_text(text, "t.conf", ra_check)
    return e.value


# ---------------------------------------------------------------- defaults

def test_default_is_the_seed(tmp_path):
    cfg = C.load_config(str(tmp_path / "none.conf"))
    assert cfg.warnings == []
    h = cfg.ha
    assert h.enabled and h.interface == "wlan0"
    assert h.served_prefixes == ("2001:db8::/64",)
    assert h.served_prefixes_derived
    assert h.max_binding_lifetime == 262140
    assert not h.acl_default_allow and h.acl == {} and h.dad  # closed by default
    assert h.vt_port == 7777 and h.debug_level == 0
    assert (h.min_mob_pfx_adv_interval, h.max_mob_pfx_adv_interval) == (
        600, 86400)
    w0, w1 = cfg.radios
    assert (w0.name, w0.essid, w0.channel, w0.role, w0.country,
            w0.address) == ("wlan0", "home", 3, "home", "US",
                            "2001:db8::/64")
    assert (w1.name, w1.essid, w1.channel, w1.role,
            w1.address) == ("wlan1", "remote", 8, "foreign",
                            "2001:db8:1::/64")
    assert cfg.home_radio is w0 and cfg.radio("wlan1") is w1
    r0, r1 = cfg.ra_interfaces
    assert r0.name == "wlan0" and r0.adv_home_agent_flag
    assert not r1.adv_home_agent_flag
    for r in (r0, r1):
        assert r.adv_send_advert and r.adv_interval_opt
        assert (r.min_rtr_adv_interval, r.max_rtr_adv_interval,
                r.min_delay_between_ras) == (1, 10, 1)
        assert r.adv_default_lifetime == 30 and r.home_agent_lifetime == 30
        (p,) = r.prefixes
        assert p.adv_on_link and p.adv_autonomous and p.adv_router_addr
    assert r0.prefixes[0].prefix == "2001:db8::/64"
    assert r1.prefixes[0].prefix == "2001:db8:1::/64"


def test_env_and_explicit_path(tmp_path, monkeypatch):
    f = tmp_path / "d.conf"
    f.write_text(seed_with(ha__vt_port="7000"))
    monkeypatch.setenv("DENALI_CONF", str(f))
    assert C.load_config().ha.vt_port == 7000
    assert C.config_path() == str(f)
    assert C.load_config(str(tmp_path / "x")).ha.vt_port == 7777
    monkeypatch.delenv("DENALI_CONF")
    assert C.config_path() == "/etc/denali/denali.conf"


def test_settings_typed():
    text = seed_with(ha__served_prefix="2001:db8::/64, 2001:db8:5::/64",
                     ha__acl_default="deny", ha__dad="off",
                     ha__acl={"2001:DB8::BEEF": "allow", "2001:db8::2": "deny"},
                     radio__wlan0__key="correct horse",
                     radio__wlan0__txpower="17", radio__wlan0__hw_mode="b",
                     ra__wlan0__AdvValidLifetime="infinity",
                     ra__wlan0__MinRtrAdvInterval=None)
    cfg = C.validate_text(text)
    assert cfg.ha.served_prefixes == ("2001:db8::/64", "2001:db8:5::/64")
    assert not cfg.ha.served_prefixes_derived
    assert not cfg.ha.acl_default_allow and not cfg.ha.dad
    assert cfg.ha.acl == {"2001:db8::beef": True, "2001:db8::2": False}
    w0 = cfg.radio("wlan0")
    assert (w0.key, w0.txpower, w0.hw_mode) == ("correct horse", 17, "b")
    r0 = cfg.ra_interfaces[0]
    assert r0.prefixes[0].adv_valid_lifetime == C.INFINITY
    assert r0.min_rtr_adv_interval == pytest.approx(3.3)  # radvd: 0.33 x Max


def test_snake_names_match_radvd_config():
    assert C.snake("MinDelayBetweenRAs") == "min_delay_between_ras"
    assert C.snake("AdvSourceLLAddress") == "adv_source_ll_address"
    assert C.snake("AdvLinkMTU") == "adv_link_mtu"
    assert C.snake("MaxRtrAdvInterval") == "max_rtr_adv_interval"


# ---------------------------------------------------------------- refusals

@pytest.mark.parametrize("changes, key, words", [
    ({"radio__wlan0__channel": "14"}, "radio.wlan0.channel",
     "channel 14 is not allowed for country US: use 1-11"),
    ({"radio__wlan0__channel": "12"}, "radio.wlan0.channel", "use 1-11"),
    ({"radio__wlan0__channel": "14", "radio__wlan0__country": "DE"},
     "radio.wlan0.channel", "not allowed for country DE: use 1-13"),
    ({"radio__wlan0__channel": "14", "radio__wlan0__country": "JP"},
     "radio.wlan0.channel", "only with hw_mode b"),
    ({"radio__wlan0__channel": "15"}, "radio.wlan0.channel",
     "use an integer 1-14"),
    ({"radio__wlan0__country": "XX"}, "radio.wlan0.country", "use one of"),
    ({"radio__wlan0__essid": "x" * 33}, "radio.wlan0.essid",
     "33 bytes: use 1-32 bytes"),
    ({"radio__wlan0__essid": "é" * 17}, "radio.wlan0.essid", "34 bytes"),
    ({"radio__wlan0__essid": None}, "radio.wlan0.essid", "missing"),
    ({"radio__wlan1__essid": "home"}, "radio.wlan1.essid",
     "already the ESSID of wlan0"),
    ({"radio__wlan1__channel": "3"}, "radio.wlan1.channel",
     "already used by wlan0"),
    ({"radio__wlan0__address": "2001:db8::zz/64"}, "radio.wlan0.address",
     "not an IPv6 interface address"),
    ({"radio__wlan0__address": "10.0.0.1/24"}, "radio.wlan0.address",
     "IPv6"),
    ({"radio__wlan0__key": "short"}, "radio.wlan0.key", "8-63"),
    ({"radio__wlan0__hw_mode": "n"}, "radio.wlan0.hw_mode", "use b or g"),
    ({"radio__wlan0__role": "x"}, "radio.wlan0.role", "use home or foreign"),
    ({"ra__wlan0__prefix": "2001:db8::1/64"}, "ra.wlan0.prefix",
     "no host bits"),
    ({"ra__wlan0__prefix": "2001:db8::"}, "ra.wlan0.prefix", "IPv6 prefix"),
    ({"ra__wlan0__AdvSendAdvert": "maybe"}, "ra.wlan0.AdvSendAdvert",
     "use on or off"),
    ({"ra__wlan0__MaxRtrAdvInterval": "0.01"}, "ra.wlan0.MaxRtrAdvInterval",
     "0.07-65535"),
    ({"ra__wlan0__MinRtrAdvInterval": "9"}, "ra.wlan0.MinRtrAdvInterval",
     "use at most 7.5"),
    ({"ra__wlan0__AdvPreferredLifetime": "100000"},
     "ra.wlan0.AdvPreferredLifetime", "at most 86400"),
    ({"ra__wlan0__AdvValidLifetime": "forever"}, "ra.wlan0.AdvValidLifetime",
     "or infinity"),
    ({"ra__wlan0__AdvDefaultLifetime": "5"}, "ra.wlan0.AdvDefaultLifetime",
     "at least 10"),
    ({"ra__wlan0__AdvHomeAgentInfo": "on", "ra__wlan0__AdvHomeAgentFlag": "off"},
     "ra.wlan0", "AdvHomeAgentInfo needs AdvHomeAgentFlag on"),
    ({"ra__wlan0__AdvLinkMTU": "1000"}, "ra.wlan0", "at least 1280"),
    ({"ra__wlan1__AdvIntervalOpt": "off", "ra__wlan1__AdvRouterAddr": "off"},
     "ra.wlan1", "needs Mobile IPv6"),
    ({"ra__wlan0__Bogus": "1"}, "ra.wlan0.Bogus", "unknown setting"),
    ({"ha__max_binding_lifetime": "262144"}, "ha.max_binding_lifetime",
     "4-262140"),
    ({"ha__acl_default": "maybe"}, "ha.acl_default", "use allow or deny"),
    ({"ha__acl": {"2001:db8::1": "ok"}}, "ha.acl.2001:db8::1",
     "use allow or deny"),
    ({"ha__acl": {"beef": "allow"}}, "ha.acl.beef", "home addresses"),
    ({"ha__acl": {"2001:db8::1": "allow", "2001:DB8::0:1": "deny"}},
     "ha.acl.2001:DB8::0:1", "the same address as 2001:db8::1"),
    ({"ha__served_prefix": "2001:db8::/64, nope"}, "ha.served_prefix",
     "not an IPv6 prefix"),
    ({"ha__interface": "a b"}, "ha.interface", "interface name"),
    ({"ha__min_mob_pfx_adv_interval": "900",
      "ha__max_mob_pfx_adv_interval": "800"},
     "ha.min_mob_pfx_adv_interval", "min <= max"),
    ({"ha__vt_port": "0"}, "ha.vt_port", "1-65535"),
    ({"bogus": {"a": "1"}}, "bogus", "unknown section"),
])
def test_refusals_say_what_is_allowed(changes, key, words):
    err = refused(seed_with(**changes))
    assert (key, True) in [(k, words in r) for k, r in err.errors], err.errors
    assert err.filename == "t.conf" and str(err).startswith("t.conf: ")


@pytest.mark.parametrize("text, key, words", [
    ("x = 1\n[ha]\n", "x", "outside a section"),
    ("[ra]\nAdvSendAdvert = on\n", "ra.AdvSendAdvert", "e.g. [[wlan0]]"),
])
def test_misplaced_settings(text, key, words):
    err = refused(text)
    assert (key, True) in [(k, words in r) for k, r in err.errors], err.errors


def test_served_prefix_is_the_64_of_the_home_address():
    cfg = C.validate_text(seed_with(radio__wlan0__address="2001:db8::1/128"))
    assert cfg.ha.served_prefixes == ("2001:db8::/64",)


def test_syntax_error_is_config_error():
    err = refused("[ha\nx = 1\n")
    assert "configobj syntax" in err.rule


def test_overlap_is_a_warning():
    cfg = C.validate_text(seed_with(radio__wlan1__channel="6"))
    assert cfg.warnings == ["radio.wlan0.channel 3 and radio.wlan1.channel 6 "
                            "overlap (less than 5 apart)"]


@pytest.mark.parametrize("country, channel, mode", [
    ("US", 11, "g"), ("CA", 1, "g"), ("DE", 13, "g"), ("EU", 13, "g"),
    ("FR", 12, "b"), ("GB", 13, "g"), ("JP", 13, "g"), ("JP", 14, "b")])
def test_legal_channels(country, channel, mode):
    assert C.channel_rule(channel, country, mode) is None
    cfg = C.validate_text(seed_with(radio__wlan0__country=country,
                                    radio__wlan0__channel=str(channel),
                                    radio__wlan0__hw_mode=mode,
                                    radio__wlan1__channel="1" if channel > 5
                                    else "11"))
    assert cfg.radio("wlan0").channel == channel


def test_utf8_essid_of_32_bytes():
    cfg = C.validate_text(seed_with(radio__wlan0__essid="é" * 16))
    assert cfg.radio("wlan0").essid == "é" * 16


def test_radvd_text_of_seed():
    cfg = C.validate_text(C.DEFAULT_TEXT)
    text = C.ra_as_radvd_text(cfg)
    assert cfg.ra_as_radvd_text() == text
    assert text.startswith("interface wlan0\n{\n")
    assert "\tAdvHomeAgentFlag on;\n" in text
    assert "\tprefix 2001:db8:1::/64\n\t{\n\t\tAdvOnLink on;" in text
    assert text.count("interface ") == 2 and text.endswith("};\n")


def test_radvd_config_objects():
    from ha.haconf.translate import ra_as_radvd_config
    rc = ra_as_radvd_config(C.validate_text(C.DEFAULT_TEXT))
    assert [i.name for i in rc.interfaces] == ["wlan0", "wlan1"]
    assert rc.interfaces[0].adv_home_agent_flag


def test_radvd_text_parses_with_radvd_config():
    radvd = pytest.importorskip(
        "radvd.config", reason="radvd/config.py (another engineer) not here")
    cfg = C.validate_text(C.DEFAULT_TEXT)
    rc = radvd.parse(C.ra_as_radvd_text(cfg), "denali-ra")
    by_name = {i.name: i for i in rc.interfaces}
    for ra in cfg.ra_interfaces:
        i = by_name[ra.name]
        assert i.max_rtr_adv_interval == ra.max_rtr_adv_interval
        assert i.adv_home_agent_flag == ra.adv_home_agent_flag
        assert str(i.prefixes[0].prefix) == ra.prefixes[0].prefix


# ------------------------------------------------------------ atomic write

def test_atomic_write_replaces(tmp_path):
    f = tmp_path / "a.conf"
    atomic_write(str(f), "one\n")
    atomic_write(str(f), b"two\n", mode=0o600)
    assert f.read_bytes() == b"two\n"
    assert (f.stat().st_mode & 0o777) == 0o600
    assert os.listdir(tmp_path) == ["a.conf"]


def test_atomic_write_cleans_up_on_error(tmp_path, monkeypatch):
    f = tmp_path / "a.conf"
    f.write_text("old\n")

    def boom(*a):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write(str(f), "new\n")
    assert f.read_text() == "old\n" and os.listdir(tmp_path) == ["a.conf"]


def test_writer_killed_before_rename_leaves_old_file(tmp_path):
    f = tmp_path / "denali.conf"
    f.write_text(C.DEFAULT_TEXT)
    script = (
        "import os, sys\n"
        "from ha.config.atomic import atomic_write\n"
        "os.replace = lambda *a: os._exit(9)  # die between fsync and rename\n"
        "atomic_write(sys.argv[1], '[ha]\\n    vt_port = 1\\n')\n")
    p = subprocess.run([sys.executable, "-c", script, str(f)], cwd=ROOT,
                       capture_output=True)
    assert p.returncode == 9, p.stderr
    assert f.read_text() == C.DEFAULT_TEXT
    assert C.load_config(str(f)).ha.vt_port == 7777
    leftovers = [n for n in os.listdir(tmp_path) if n != "denali.conf"]
    assert all(n.startswith(".denali.conf.") for n in leftovers)


def test_the_config_wing_leaves_radvd_to_its_callers():
    # radvd imports ha; ha.config checks the RA sender's rules only when handed them
    code = ("import sys\n"
            "from ha.config import model as C\n"
            "text = C.DEFAULT_TEXT.replace('[[wlan1]]', 'AdvLinkMTU = 1000\\n[[wlan1]]', 1)\n"
            "C.validate_text(text)\n"
            "print('radvd' in sys.modules)\n"
            "from radvd.config import parse\n"
            "try:\n"
            "    C.validate_text(text, 'd.conf', parse)\n"
            "except C.ConfigError as e:\n"
            "    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.stdout.splitlines() == [
        "False",
        "d.conf: ra.wlan0: AdvLinkMTU (1000) must be 0 or at least 1280"], \
        out.stderr


def test_config_import_is_light():
    code = ("import sys, ha.config.model, ha.haconf.cli\n"
            "bad = {'asyncio', 'pyroute2', 'configobj'} & set(sys.modules)\n"
            "print(sorted(bad))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr


# ------------------------------------------------------------ one error family

def test_every_config_reader_refuses_with_one_error_family(tmp_path):
    # a caller catching ha.config.errors.ConfigError hears every reader, file:line first
    from ha.config.errors import ConfigError
    from ha.config.mip6d_conf import parse_mip6d
    from ha.daemon.settings import load_settings
    from radvd.config import parse as parse_radvd

    def caught(fn, *args):
        with pytest.raises(ConfigError) as e:
            fn(*args)
        return e.value

    e = caught(parse_mip6d, "NodeConfig HA;\nDebugLevel loud;\n", "ha.conf")
    assert (e.path, e.line) == ("ha.conf", 2) and str(e).startswith("ha.conf:2: ")
    e = caught(parse_radvd, "interface wlan0 {\n  AdvSendAdvert maybe;\n};\n", "r.conf")
    assert (e.path, e.line) == ("r.conf", 2)
    assert str(e) == "r.conf:2: AdvSendAdvert expects on or off, got 'maybe'"
    e = caught(C.validate_text, seed_with(radio__wlan0__channel="12"), "d.conf")
    assert e.path == "d.conf" and e.line is None
    assert str(e) == "d.conf: radio.wlan0.channel: channel 12 is not allowed " \
                     "for country US: use 1-11"
    mn = tmp_path / "mn.conf"
    mn.write_text('NodeConfig MN;\nInterface "wlan0";\n')
    e = caught(load_settings, str(mn))
    assert str(e) == f'{mn}: a mobile node needs MnHomeLink "if" {{ ... }}'
    e = caught(load_settings, str(tmp_path))
    assert str(e) == f"{tmp_path}: Is a directory"


def test_denalid_refuses_a_file_that_is_not_utf8(tmp_path):
    from ha.daemon.settings import SettingsError, load_settings
    for name in ("mip6d.conf", "denali.conf"):
        f = tmp_path / name
        f.write_bytes(b"NodeConfig HA;\n\xff\xfe HaMaxBindingLife 1;\n")
        with pytest.raises(SettingsError) as e:
            load_settings(str(f))
        assert str(e.value) == f"{f}: not UTF-8 text"
    ok = tmp_path / "ok.conf"
    ok.write_text(C.DEFAULT_TEXT)
    with pytest.raises(SettingsError) as e:
        load_settings(str(ok), radvd_conf=str(f))
    assert str(e.value) == f"{f}: not UTF-8 text"


# ------------------------------------------------------------ [ra] MaxRADelay

def test_max_ra_delay_carried_into_the_ra_senders_text():
    from radvd.config import parse as ra_check
    assert C.snake("MaxRADelay") == "max_ra_delay"
    default = C.validate_text(C.DEFAULT_TEXT, "t.conf", ra_check)
    assert {r.max_ra_delay for r in default.ra_interfaces} == {0.5}
    assert "MaxRADelay" not in C.ra_as_radvd_text(default)   # unset: RFC 4861's 0.5
    cfg = C.validate_text(seed_with(ra__wlan0__MaxRADelay="0"), "t.conf", ra_check)
    by_name = {r.name: r for r in cfg.ra_interfaces}
    assert by_name["wlan0"].max_ra_delay == 0 and by_name["wlan1"].max_ra_delay == 0.5
    text = C.ra_as_radvd_text(cfg)
    assert "\tMaxRADelay 0;\n" in text
    assert ra_check(text, "denali-ra").interface("wlan0").max_ra_delay == 0


@pytest.mark.parametrize("value, words", [("0.6", "0.5"), ("-1", "0"), ("soon", "use a number 0-0.5")])
def test_max_ra_delay_refused_outside_0_to_half_a_second(value, words):
    err = refused(seed_with(ra__wlan0__MaxRADelay=value))
    assert ("ra.wlan0.MaxRADelay", True) in [(k, words in r) for k, r in err.errors], \
        err.errors
