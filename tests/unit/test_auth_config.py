"""RFC 4285 keys in the configuration files, carried to both roles."""

from ipaddress import IPv6Address

import pytest

from ha.config.mip6d_conf import Mip6dConfError, dump_mip6d, parse_mip6d
from ha.daemon.settings import load_settings
from ha.wire.auth import MnHaSecret

KEY = "00112233445566778899AABBCCDDEEFF"
LINE = f'DenaliMnHaKey 2001:db8::beef 256 "{KEY}";\n'
MN = """NodeConfig MN;
Interface "wlan0";
UseMnHaIPsec disabled;
MnHomeLink "wlan0" {
        HomeAddress 2001:db8::beef/64;
        HomeAgentAddress 2001:db8::;
}
"""
HA = 'NodeConfig HA;\nInterface "wlan0";\nUseMnHaIPsec disabled;\n'


def test_mip6d_key_line_reaches_both_roles(tmp_path):
    secret = MnHaSecret(256, bytes.fromhex(KEY))
    (tmp_path / "mn.conf").write_text(LINE + MN)
    (tmp_path / "ha.conf").write_text(HA + LINE)
    assert load_settings(str(tmp_path / "mn.conf")).mobile_node.secret == secret
    ha = load_settings(str(tmp_path / "ha.conf"))
    assert ha.auth == {IPv6Address("2001:db8::beef"): secret}
    assert "00112233" not in repr(ha) and "00112233" not in repr(secret)  # keys stay out of logs


def test_mip6d_key_line_round_trips_and_bad_ones_say_why():
    cfg = parse_mip6d(HA + LINE)
    assert parse_mip6d(dump_mip6d(cfg)) == cfg
    for bad, why in (('DenaliMnHaKey 2001:db8::beef 256 "abc";', "hex"),
                     ('DenaliMnHaKey 2001:db8::beef 4294967296 "aa";', "32-bit"),
                     ("DenaliMnHaKey 2001:db8::beef 256;", "DenaliMnHaKey <home address>"),
                     (LINE + LINE, "twice")):
        with pytest.raises(Mip6dConfError, match=why):
            parse_mip6d(HA + bad)


# ------------------------------------------------------------ denali.conf / haconf

HEX = "c0ffee" * 6 + "beef"  # 40 hex digits, 20 octets


def haconf(tmp_path, *args):
    from click.testing import CliRunner

    from ha.haconf import cli

    r = CliRunner().invoke(cli.cli, ["--config", str(tmp_path / "denali.conf"), *args])
    assert r.exit_code == 0, (r.stdout, r.stderr, r.exception)
    return r.stdout + r.stderr


def test_haconf_sets_a_key_never_prints_it_and_writes_it_0600(tmp_path):
    import stat

    out = haconf(tmp_path, "set", "auth.2001:db8::beef.spi", "256",
                 "auth.2001:db8::beef.key", HEX.upper())
    assert HEX not in out.lower() and "********" in out
    staged = tmp_path / "denali.conf.staged"
    assert stat.S_IMODE(staged.stat().st_mode) == 0o600
    assert HEX not in haconf(tmp_path, "changes").lower()
    haconf(tmp_path, "commit")
    conf = tmp_path / "denali.conf"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    shown = haconf(tmp_path, "show", "auth")
    assert "[[2001:db8::beef]]" in shown and "spi = 256" in shown
    assert "key = ********" in shown and HEX not in shown
    # the daemon gets the key itself
    s = load_settings(str(conf))
    assert s.auth == {IPv6Address("2001:db8::beef"): MnHaSecret(256, bytes.fromhex(HEX))}


def test_haconf_refuses_a_short_key_without_echoing_it(tmp_path):
    from click.testing import CliRunner

    from ha.haconf import cli

    r = CliRunner().invoke(cli.cli, ["--config", str(tmp_path / "denali.conf"), "set",
                                     "auth.2001:db8::beef.spi", "1",
                                     "auth.2001:db8::beef.key", "ab12cd34"])
    assert r.exit_code != 0
    assert "32 hex digits" in r.stdout + r.stderr and "ab12cd34" not in r.stdout + r.stderr
    assert not (tmp_path / "denali.conf.staged").exists()


def test_a_conf_without_auth_is_still_born_0600(tmp_path):
    """Every config file is 0600 by design (atomic_write's default), keys or not."""
    import stat

    haconf(tmp_path, "set", "ha.dad", "off")
    assert stat.S_IMODE((tmp_path / "denali.conf.staged").stat().st_mode) == 0o600
