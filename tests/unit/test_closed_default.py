"""New installs are closed: the built-in denali.conf denies home addresses that are
not configured, haconf makes RFC 4285 keys and says how to put them on the mobile
node, and the seed scenario runs authenticated unless told --no-auth."""

import os
import re
import stat
from ipaddress import IPv6Address, IPv6Network

import pytest
from haconf_box import Box

from ha.config import model as C
from ha.config.mip6d_conf import parse_mip6d
from ha.core.binding_cache import BindingCache
from ha.core.registration import BUContext, HomeAgentConfig, process_binding_update
from ha.daemon.settings import load_settings
from ha.lab import scenario
from ha.wire.mobility import BAStatus, BindingUpdate

LINE = re.compile(r'^DenaliMnHaKey (\S+) (\d+) "([0-9a-f]+)";$', re.M)
SEED_HOA = "2001:db8::beef"


@pytest.fixture
def box(tmp_path):
    return Box(tmp_path)


def printed_key(out):
    """The mobile node's line as haconf printed it, read by mip6d.conf's own parser."""
    lines = LINE.findall(out)
    assert len(lines) == 1, out
    text = "UseMnHaIPsec disabled;\n" + LINE.search(out).group(0) + "\n"
    keys = parse_mip6d(text, "mn.conf").mn_ha_keys
    assert len(keys) == 1
    return keys[0]


# ------------------------------------------------------------- the default

def test_the_built_in_config_denies_home_addresses_that_are_not_configured(tmp_path):
    cfg = C.load_config(str(tmp_path / "none.conf"))
    assert not cfg.ha.acl_default_allow and cfg.ha.acl == {} and cfg.auth == {}
    assert "acl_default = deny" in C.DEFAULT_TEXT
    # the spec's own default is deny too: a file that does not say is closed
    spec = open(C.spec_path()).read()
    assert "acl_default = option(allow, deny, default=deny)" in spec
    bare = C.DEFAULT_TEXT.replace("    acl_default = deny\n", "")
    assert not C.validate_text(bare).ha.acl_default_allow


def bu_for(hoa, config):
    """What the registration rules answer a first BU for *hoa* from the remote cell."""
    b = BindingUpdate(sequence=1, lifetime=1000, ack=True, home_registration=True,
                      link_local_compat=False, options=[])
    ctx = BUContext(bu=b, src=IPv6Address("2001:db8:1::5"), dst=IPv6Address("2001:db8::"),
                    hoa=IPv6Address(hoa))
    return process_binding_update(ctx, BindingCache(10), config, 0.0).status


def rules_of(path):
    """The registration rules' config as denalid builds it from the file."""
    s = load_settings(path)
    return HomeAgentConfig(served_prefixes=(IPv6Network("2001:db8::/64"),),
                           ha_addresses=(IPv6Address("2001:db8::"),), dad_enabled=False,
                           acl_default_allow=s.acl_default_allow, acl=dict(s.acl))


KEY = "00112233445566778899aabbccddeeff"
AUTH = f"[auth]\n    [[{SEED_HOA}]]\n        spi = 256\n        key = {KEY}\n"


def test_default_deny_refuses_an_unconfigured_home_address_129(tmp_path):
    path = tmp_path / "denali.conf"
    path.write_text(C.DEFAULT_TEXT + AUTH)
    rules = rules_of(str(path))
    # keyed: configured, so served (its BUs must still be signed: the core checks that)
    assert bu_for(SEED_HOA, rules) is BAStatus.ACCEPTED
    # not configured: refused (RFC 6275 10.3.1, "administratively prohibited")
    assert bu_for("2001:db8::a1", rules) is BAStatus.ADMINISTRATIVELY_PROHIBITED
    # an [[acl]] allow configures one without a key; an [[acl]] deny beats a key
    acl = C.DEFAULT_TEXT.replace("    acl_default = deny\n", "    acl_default = deny\n"
                                 "    [[acl]]\n        2001:db8::a1 = allow\n"
                                 f"        {SEED_HOA} = deny\n")
    path.write_text(acl + AUTH)
    rules = rules_of(str(path))
    assert bu_for("2001:db8::a1", rules) is BAStatus.ACCEPTED
    assert bu_for(SEED_HOA, rules) is BAStatus.ADMINISTRATIVELY_PROHIBITED
    assert bu_for("2001:db8::a2", rules) is BAStatus.ADMINISTRATIVELY_PROHIBITED
    # acl_default = allow opens the home link again, as before
    path.write_text(C.DEFAULT_TEXT.replace("acl_default = deny", "acl_default = allow"))
    assert bu_for("2001:db8::a1", rules_of(str(path))) is BAStatus.ACCEPTED


# ------------------------------------------------------------------ haconf

def test_auth_add_generates_a_key_and_prints_the_mobile_nodes_line(box):
    out = box.ok("auth", "add", SEED_HOA).stdout
    k = printed_key(out)
    assert k.hoa == SEED_HOA and k.spi == 256 and len(k.key) == 32  # 128 bits
    assert "mip6d.conf" in out and "MnHomeLink" in out
    box.ok("commit")
    cfg = C.load_config(box.conf)
    assert cfg.auth == {SEED_HOA: (256, k.key)}
    assert cfg.ha.acl == {SEED_HOA: True}  # a key configures its home address
    assert stat.S_IMODE(os.stat(box.conf).st_mode) == 0o600
    # the next one gets the next free SPI and another key; an address twice is refused
    k2 = printed_key(box.ok("auth", "add", "2001:DB8::2").stdout)
    assert (k2.hoa, k2.spi) == ("2001:db8::2", 257) and k2.key != k.key
    r = box.run("auth", "add", "2001:db8:0::beef")
    assert r.exit_code == 2 and "already has a key" in r.stderr
    assert box.run("auth", "add", "raven").exit_code == 2
    assert printed_key(box.ok("auth", "add", "2001:db8::9", "--spi", "999").stdout).spi == 999


def test_auth_show_prints_the_line_again(box):
    r = box.run("auth", "show")
    assert r.exit_code == 2 and "haconf auth add" in r.stderr
    k = printed_key(box.ok("auth", "add", SEED_HOA).stdout)
    assert printed_key(box.ok("auth", "show", "2001:DB8::BEEF").stdout) == k
    assert box.run("auth", "show", "--committed").exit_code == 2  # staged only, so far
    box.ok("commit")
    assert printed_key(box.ok("auth", "show", "--committed").stdout) == k
    r = box.run("auth", "show", "2001:db8::1")
    assert r.exit_code == 2 and "no key for 2001:db8::1" in r.stderr


def test_set_key_generate_makes_a_key_with_the_next_free_spi(box):
    box.ok("auth", "add", SEED_HOA)
    out = box.ok("set", "auth.2001:db8::7.key", "generate").stdout
    k = printed_key(out)
    assert (k.hoa, k.spi) == ("2001:db8::7", 257)
    assert k.key not in out.replace(LINE.search(out).group(0), "")  # only in the line
    box.ok("commit")
    assert C.load_config(box.conf).auth["2001:db8::7"] == (257, k.key)
    # generating again replaces the key, keeping the SPI
    k2 = printed_key(box.ok("set", "auth.2001:db8::7.key", "generate").stdout)
    assert k2.spi == 257 and k2.key != k.key


def test_show_masks_keys_and_show_secrets_prints_them(box):
    k = printed_key(box.ok("auth", "add", SEED_HOA).stdout)
    shown = box.ok("show", "auth").stdout
    assert k.key not in shown and "key = ********" in shown
    assert k.key not in box.ok("changes").stdout
    assert f"key = {k.key}" in box.ok("show", "--secrets", "auth").stdout
    box.ok("commit")
    assert f"key = {k.key}" in box.ok("show", "--committed", "--secrets").stdout
    assert k.key not in box.ok("show", "--committed").stdout


def test_init_writes_a_closed_config_with_a_key_once(box):
    assert not os.path.exists(box.conf)
    r = box.ok("init")
    k = printed_key(r.stdout)
    assert k.hoa == SEED_HOA and k.spi == 256
    assert "warning" not in r.stderr
    assert stat.S_IMODE(os.stat(box.conf).st_mode) == 0o600
    cfg = C.load_config(box.conf)
    assert not cfg.ha.acl_default_allow and cfg.auth == {SEED_HOA: (256, k.key)}
    before = open(box.conf).read()
    r = box.ok("init")  # the next boot: nothing changes, no key printed
    assert "nothing done" in r.stdout and not LINE.search(r.stdout)
    assert open(box.conf).read() == before


def test_init_keeps_an_existing_auth_and_takes_the_staged_edit(box):
    box.ok("set", "ha.max_binding_lifetime", "400")
    box.ok("auth", "add", "2001:db8::5")
    r = box.ok("init")
    assert not LINE.search(r.stdout)  # [auth] was not empty: no key for the seed's address
    cfg = C.load_config(box.conf)
    assert list(cfg.auth) == ["2001:db8::5"] and cfg.ha.max_binding_lifetime == 400
    assert not os.path.exists(box.conf + ".staged")


def test_commit_warns_while_no_home_address_is_configured(box):
    box.ok("set", "essid", "home", "channel", "3")
    r = box.ok("commit")
    assert "no home address is configured" in r.stderr
    assert f"haconf auth add {SEED_HOA}" in " ".join(r.stderr.split())
    box.ok("auth", "add", SEED_HOA)
    assert "no home address" not in box.ok("commit").stderr
    box.ok("set", "ha.acl_default", "allow")
    assert "no home address" not in box.ok("commit").stderr


def test_import_of_a_umip_file_without_a_policy_keeps_umips_allow(box, tmp_path):
    f = tmp_path / "mip6d.conf"
    f.write_text('NodeConfig HA;\nInterface "wlan0";\nUseMnHaIPsec disabled;\n')
    r = box.ok("import", str(f))
    assert "DefaultBindingAclPolicy not given" in " ".join(r.stderr.split())
    box.ok("commit")
    assert C.load_config(box.conf).ha.acl_default_allow
    f.write_text('NodeConfig HA;\nInterface "wlan0";\nUseMnHaIPsec disabled;\n'
                 "DefaultBindingAclPolicy deny;\n")
    box.ok("import", str(f))
    box.ok("commit")
    assert not C.load_config(box.conf).ha.acl_default_allow


# ---------------------------------------------------------------- scenario

def test_the_scenario_files_carry_one_key_in_both_roles(tmp_path):
    ha, mn = scenario.with_auth(scenario.SEED_MIP6D_HA, scenario.SEED_MIP6D_MN, SEED_HOA, KEY)
    assert ha.startswith(scenario.SEED_MIP6D_HA)
    h, m = parse_mip6d(ha, "ha.conf"), parse_mip6d(mn, "mn.conf")
    assert h.default_binding_acl_policy == "deny"
    assert [(a.hoa, a.allow) for a in h.binding_acl] == [(SEED_HOA, True)]
    assert h.mn_ha_keys == m.mn_ha_keys and m.mn_ha_keys[0].key == KEY
    # the line lands before the seed's open MnHomeLink block, which stays as printed
    assert mn.endswith(scenario.SEED_MIP6D_MN[scenario.SEED_MIP6D_MN.index("MnHomeLink"):])
    assert m.home_links[0].home_address == "2001:db8::beef/64"
    for name, text in (("ha.conf", ha), ("mn.conf", mn)):
        (tmp_path / name).write_text(text)
    s_ha, s_mn = load_settings(str(tmp_path / "ha.conf")), load_settings(str(tmp_path / "mn.conf"))
    assert s_ha.warnings == [] and s_mn.warnings == []  # nothing unauthenticated left
    assert s_ha.auth[IPv6Address(SEED_HOA)] == s_mn.mobile_node.secret
