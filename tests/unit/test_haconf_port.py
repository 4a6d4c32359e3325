"""haconf finds denalid's console port by a scan of denali.conf, agreeing with the model."""

import pytest

from ha.config import model as C
from ha.haconf.denalid import DEFAULT_PORT, _port_of
from ha.haconf.translate import ra_check

CASES = [
    "",                                                     # the default config
    "[ha]\n    vt_port = 7100\n",
    "[ha]\n    interface = wlan0  # home\n    vt_port = 7200 # moved\n",
    "[ha]\n    [[acl]]\n        2001:db8::1 = allow\n[ra]\n",
    "# vt_port = 1\n[ha]\n    acl_default = allow\n    vt_port = '7300'\n",
    "[ra]\n    [[wlan0]]\n        AdvSendAdvert = on\n[ha]\n    vt_port = 7400\n",
]


@pytest.mark.parametrize("text", CASES)
def test_scan_agrees_with_the_model(tmp_path, text):
    p = tmp_path / "denali.conf"
    p.write_text(text)
    assert _port_of(str(p)) == C.load_config(str(p), ra_check).ha.vt_port


def test_missing_or_broken_gives_the_default(tmp_path):
    assert _port_of(str(tmp_path / "none.conf")) == DEFAULT_PORT
    p = tmp_path / "denali.conf"
    p.write_text("[ha]\n    vt_port = seven\n")
    assert _port_of(str(p)) == DEFAULT_PORT
