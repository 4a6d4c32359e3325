"""haconf against a real running denalid: apply, and apply --confirm rolling back.

The daemon runs the project's own config in the seed's lab; haconf is run
inside the home agent's namespace, as on the board's serial console. What a
user notices is what is checked: the lifetime the home agent grants to a
mobile node changes with the applied config and comes back when the change
is not confirmed.
"""

import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from nslib import have_netns, wait_for  # noqa: E402

from ha.config.model import DEFAULT_TEXT  # noqa: E402
from ha.lab.topology import HA_HOME, MN_COA, SeedLab, run  # noqa: E402

pytestmark = pytest.mark.skipif(have_netns() is not None, reason=str(have_netns()))

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def haconf(lab, conf, *args, check=True):
    # the lab's daemon keeps its state, and its console socket (changes go there), in the
    # lab's own directory, as the board's does in /run/denali
    r = run([sys.executable, "-m", "ha.haconf.cli", "--config", conf, *args], lab.ha, check=False,
            cwd=ROOT, env={**os.environ, "DENALI_STATE_DIR": lab.state_dir})
    if check:
        assert r.returncode == 0, f"haconf {' '.join(args)}: {r.stdout}{r.stderr}"
    return r


def granted(lab, hoa, seq=1):
    """Register `hoa` asking for an hour; the lifetime the home agent grants."""
    r = run([sys.executable, "-m", "ha.lab.bu_probe", "--coa", str(MN_COA), "--ha", str(HA_HOME),
             "--hoa", hoa, "--seq", str(seq), "--lifetime", "3600", "--json"], lab.mn,
            cwd=ROOT)
    ba = json.loads(r.stdout)
    assert ba["status"] == 0
    return ba["lifetime"]


@pytest.fixture
def lab(tmp_path):
    conf = tmp_path / "denali.conf"
    # the built-in config is closed (acl_default = deny): allow the home addresses used here
    acl = "".join(f"        2001:db8::{h} = allow\n" for h in ("a1", "a2", "b1", "b2", "c1", "d1"))
    conf.write_text(DEFAULT_TEXT.replace("[ha]\n", "[ha]\n    dad = off\n", 1).replace(
        "    acl_default = deny\n", "    acl_default = deny\n    [[acl]]\n" + acl, 1))
    with SeedLab() as lab:
        lab.conf = str(conf)
        lab.start_daemon(lab.conf, log_path=str(tmp_path / "denalid.log"))
        lab.move_mn("remote")
        yield lab


def test_apply_reloads_the_running_daemon(lab):
    assert granted(lab, "2001:db8::a1") == 3600
    haconf(lab, lab.conf, "set", "ha.max_binding_lifetime", "400")
    haconf(lab, lab.conf, "commit")
    out = haconf(lab, lab.conf, "apply").stdout
    assert "reloaded" in out
    assert granted(lab, "2001:db8::a2") == 400


def test_unconfirmed_apply_rolls_back_and_reloads(lab):
    before = open(lab.conf).read()
    haconf(lab, lab.conf, "set", "ha.max_binding_lifetime", "400")
    haconf(lab, lab.conf, "commit")
    haconf(lab, lab.conf, "apply", "--confirm", "3")
    assert granted(lab, "2001:db8::b1") == 400
    # nobody confirms: the previous file comes back and the daemon reloads it
    wait_for(lambda: open(lab.conf).read() == before, timeout=15, what="the rollback")
    wait_for(lambda: granted(lab, "2001:db8::b2") == 3600, timeout=10, interval=0.5,
             what="the daemon running the previous config")


def test_confirmed_apply_stays(lab):
    haconf(lab, lab.conf, "set", "ha.max_binding_lifetime", "800")
    haconf(lab, lab.conf, "commit")
    haconf(lab, lab.conf, "apply", "--confirm", "3")
    haconf(lab, lab.conf, "confirm")
    subprocess.run(["sleep", "4"])  # past the confirm window: nothing may change now
    assert "max_binding_lifetime = 800" in open(lab.conf).read()
    assert granted(lab, "2001:db8::c1") == 800


def test_status_and_bc_answer_from_the_daemon(lab):
    granted(lab, "2001:db8::d1")
    status = haconf(lab, lab.conf, "status").stdout
    assert "bindings" in status
    bc = json.loads(haconf(lab, lab.conf, "bc", "--json").stdout)
    assert [b["hoa"] for b in bc] == ["2001:db8::d1"]
