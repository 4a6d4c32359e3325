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
