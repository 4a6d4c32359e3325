"""denalid refuses to run open when a mip6d.conf asks for IPsec it has no
setup for, and says so when it runs unauthenticated (issue 12).

RFC 6275 section 5.1 wants BUs and BAs protected. UMIP does it with IPsec
(RFC 3776), and `UseMnHaIPsec enabled` is its default. denali's home agent
does ESP for the home addresses of an IPsecPolicySet with DenaliIPsecSA keys
(tests/unit/test_ipsec.py); a file that asks for IPsec, explicitly or by
leaving the line out, without that setup (or for denali's mobile node, which
has no IPsec) is refused with the way out; `UseMnHaIPsec disabled;` runs, with
a warning at start for every home address left without a key.
"""

import os
import subprocess
import sys

import pytest

from ha.config.model import DEFAULT_TEXT
from ha.daemon.settings import SettingsError, load_settings

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEY = "00112233445566778899aabbccddeeff"
UNAUTH = ("bindings for home addresses without a key are unauthenticated "
          "(RFC 6275 5.1 requires protection)")
HA = 'NodeConfig HA;\nInterface "wlan0";\n'
MN = '''NodeConfig MN;
Interface "wlan0";
MnHomeLink "wlan0" {
        HomeAddress 2001:db8::beef/64;
        HomeAgentAddress 2001:db8::;
}
'''


def write(tmp_path, text, name="mip6d.conf"):
    f = tmp_path / name
    f.write_text(text)
    return str(f)


def refusal(path):
    with pytest.raises(SettingsError) as e:
        load_settings(path)
    return e.value


def assert_says_the_way_out(message):
    assert ("IPsec (RFC 3776) for BU/BA needs an IPsecPolicySet block" in message
            or "IPsec (RFC 3776) for BU/BA is not available in denali's mobile node" in message)
    assert "`UseMnHaIPsec disabled;` with DenaliMnHaKey lines for RFC 4285" in message
    assert "`UseMnHaIPsec disabled;` alone to run unauthenticated" in message


@pytest.mark.parametrize("text", [HA, MN])
def test_an_explicit_enabled_is_refused_at_its_line(tmp_path, text):
    lines = text.splitlines(keepends=True)
    path = write(tmp_path, "".join(lines[:2]) + "UseMnHaIPsec enabled;\n" + "".join(lines[2:]))
    e = refusal(path)
    assert (e.path, e.line) == (path, 3)
    assert str(e).startswith(f"{path}:3: UseMnHaIPsec enabled: ")
    assert_says_the_way_out(e.message)


@pytest.mark.parametrize("text", [HA, MN])
def test_leaving_the_line_out_is_umips_default_and_refused(tmp_path, text):
    path = write(tmp_path, text)
    e = refusal(path)
    assert e.line is None and str(e).startswith(f"{path}: UseMnHaIPsec is not given")
    assert "defaults to enabled" in e.message
    assert_says_the_way_out(e.message)


def test_keys_do_not_stand_in_for_the_ipsec_line(tmp_path):
    # RFC 4285 keys are not IPsec: the file must still say disabled
    path = write(tmp_path, HA + f'DenaliMnHaKey 2001:db8::beef 256 "{KEY}";\n')
    assert "not given" in refusal(path).message


def test_the_last_line_wins_as_in_umip(tmp_path):
    path = write(tmp_path, HA + "UseMnHaIPsec disabled;\nUseMnHaIPsec enabled;\n")
    assert refusal(path).line == 4
    path = write(tmp_path, HA + "UseMnHaIPsec enabled;\nUseMnHaIPsec disabled;\n")
    assert load_settings(path).node == "HA"


def test_disabled_without_keys_runs_with_a_warning(tmp_path):
    s = load_settings(write(tmp_path, HA + "UseMnHaIPsec disabled;\n"))
    assert s.ha_interface == "wlan0" and s.auth == {}
    assert s.warnings == [f"{s.source}: {UNAUTH}: no DenaliMnHaKey line"]


def test_a_mobile_node_without_its_key_is_warned_with_keys_it_is_not(tmp_path):
    s = load_settings(write(tmp_path, "UseMnHaIPsec disabled;\n" + MN))
    assert s.warnings == [f"{s.source}: {UNAUTH}: no key for the home address 2001:db8::beef"]
    s = load_settings(write(tmp_path, "UseMnHaIPsec disabled;\n"
                            f'DenaliMnHaKey 2001:db8::beef 256 "{KEY}";\n' + MN))
    assert s.mobile_node.secret is not None and s.warnings == []
    # a key for another home address does not protect this one
    s = load_settings(write(tmp_path, "UseMnHaIPsec disabled;\n"
                            f'DenaliMnHaKey 2001:db8::1 256 "{KEY}";\n' + MN))
    assert s.mobile_node.secret is None and "2001:db8::beef" in s.warnings[0]


def test_a_home_agent_with_keys_warns_while_it_serves_other_addresses(tmp_path):
    keyed = HA + "UseMnHaIPsec disabled;\n" + f'DenaliMnHaKey 2001:db8::beef 256 "{KEY}";\n'
    s = load_settings(write(tmp_path, keyed))
    assert len(s.warnings) == 1 and s.warnings[0].startswith(f"{s.source}: {UNAUTH}: ")
    assert "any other home address is served unsigned" in s.warnings[0]
    assert "DefaultBindingAclPolicy deny;" in s.warnings[0]
    # only keyed addresses allowed: every binding is authenticated, nothing to say
    s = load_settings(write(tmp_path, keyed + "DefaultBindingAclPolicy deny;\n"
                            "BindingAclPolicy 2001:db8::beef allow;\n"))
    assert s.warnings == []
    # an allowed address without a key is named
    s = load_settings(write(tmp_path, keyed + "DefaultBindingAclPolicy deny;\n"
                            "BindingAclPolicy 2001:db8::beef allow;\n"
                            "BindingAclPolicy 2001:db8::7 2001:db8:1::5 allow;\n"
                            "BindingAclPolicy 2001:db8::9 deny;\n"))
    assert s.warnings == [f"{s.source}: {UNAUTH}: no key for 2001:db8::7"]


def test_the_seed_files_run_and_warn(tmp_path):
    for name in ("mip6d.ha.conf", "mip6d.mn.conf"):
        s = load_settings(os.path.join(REPO, "tests", "data", name))
        assert len(s.warnings) == 1 and UNAUTH in s.warnings[0]


def denali_conf(tmp_path, extra=""):
    return write(tmp_path, DEFAULT_TEXT + extra, "denali.conf")


def test_denali_conf_with_an_empty_auth_is_warned(tmp_path):
    s = load_settings(denali_conf(tmp_path))
    assert s.warnings == [f"{s.source}: {UNAUTH}: [auth] is empty"]
    s = load_settings(denali_conf(tmp_path, "[auth]\n"))
    assert s.warnings == [f"{s.source}: {UNAUTH}: [auth] is empty"]


def test_denali_conf_keys_and_acl(tmp_path):
    auth = f"[auth]\n    [[2001:db8::beef]]\n        spi = 256\n        key = {KEY}\n"
    # acl_default = allow (the default is deny): any other home address is served
    opened = DEFAULT_TEXT.replace("acl_default = deny", "acl_default = allow")
    s = load_settings(write(tmp_path, opened + auth, "denali.conf"))
    assert len(s.warnings) == 1 and "acl_default = deny" in s.warnings[0]
    text = DEFAULT_TEXT.replace("    acl_default = deny\n",
                                "    acl_default = deny\n"
                                "    [[acl]]\n        2001:db8::beef = allow\n"
                                "        2001:db8::5 = allow\n")
    assert text != DEFAULT_TEXT
    s = load_settings(write(tmp_path, text + auth, "denali.conf"))
    assert s.warnings == [f"{s.source}: {UNAUTH}: no key for 2001:db8::5"]
    s = load_settings(write(tmp_path, text.replace("        2001:db8::5 = allow\n", "") + auth,
                            "denali.conf"))
    assert s.warnings == []


def test_denali_conf_without_a_home_agent_says_nothing(tmp_path):
    text = DEFAULT_TEXT.replace("[ha]\n", "[ha]\n    enabled = no\n")
    assert load_settings(write(tmp_path, text, "denali.conf")).warnings == []


# denalid itself: the refusal on stderr with exit status 2, before anything
# starts; the warning in its log at start. The Daemon is replaced by a stand-in
# (named so) that returns at once: what is tested is main()'s start-up.
CHILD = r"""
import sys
import ha.daemon.service as service

class StandInDaemon:
    def __init__(self, settings, args):
        pass
    async def run(self):
        return 0

service.Daemon = StandInDaemon
from ha.daemon.main import main
sys.exit(main(sys.argv[1:]))
"""


def denalid(conf):
    return subprocess.run([sys.executable, "-c", CHILD, "-c", conf, "-n"], capture_output=True,
                          text=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO),
                          timeout=120)


def test_denalid_refuses_ipsec_and_warns_when_unauthenticated(tmp_path):
    r = denalid(write(tmp_path, HA + "UseMnHaIPsec enabled;\n"))
    assert r.returncode == 2
    assert (f"denalid: {tmp_path}/mip6d.conf:3: UseMnHaIPsec enabled: no IPsecPolicySet block: "
            "IPsec (RFC 3776)") in r.stderr
    r = denalid(write(tmp_path, HA + "UseMnHaIPsec disabled;\n"))
    assert r.returncode == 0, r.stderr
    assert f"denali: {tmp_path}/mip6d.conf: {UNAUTH}: no DenaliMnHaKey line" in r.stderr
