"""The hook dhcpcd runs (ha/daemon/pd_client.hook_script), run by a real sh: what
it leaves in lease.env for denalid, for a delegation and for its end."""

import os
import subprocess

from ha.config import pd
from ha.daemon.pd_client import hook_script, read_lease_env


def run_hook(tmp_path, **env):
    script = tmp_path / "hook.sh"
    # pid 0 would signal our own process group: a pid that cannot exist instead
    script.write_text(hook_script(str(tmp_path), 2 ** 22 + 1))
    clean = {"PATH": os.environ["PATH"], **env}
    subprocess.run(["sh", str(script)], env=clean, check=True)
    return read_lease_env(str(tmp_path / "lease.env"))


def test_a_delegation_reaches_lease_env(tmp_path):
    got = run_hook(tmp_path, reason="BOUND6", new_dhcp6_ia_pd1_prefix1="2001:db8:100::",
                   new_dhcp6_ia_pd1_prefix1_length="56", new_dhcp6_ia_pd1_prefix1_pltime="3000",
                   new_dhcp6_ia_pd1_prefix1_vltime="6000")
    assert got["reason"] == "BOUND6"
    assert str(pd.lease_from_env(got, 0.0).prefix) == "2001:db8:100::/56"


def test_the_end_of_a_delegation_replaces_the_old_lease(tmp_path):
    run_hook(tmp_path, reason="BOUND6", new_dhcp6_ia_pd1_prefix1="2001:db8:100::",
             new_dhcp6_ia_pd1_prefix1_length="56", new_dhcp6_ia_pd1_prefix1_pltime="3000",
             new_dhcp6_ia_pd1_prefix1_vltime="6000")
    # EXPIRE6 carries no prefix variables: lease.env must say so, not keep BOUND6's
    got = run_hook(tmp_path, reason="EXPIRE6")
    assert got["reason"] == "EXPIRE6"
    assert pd.lease_from_env(got, 0.0) is None
    assert sorted(os.listdir(tmp_path)) == ["hook.sh", "lease.env"]  # no temp file left
