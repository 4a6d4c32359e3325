"""denalid's kernel datapath (ip6tnl) on Debian's stock kernel, in qemu.

This machine's kernel has neither ip6_tunnel nor CONFIG_IPV6_MIP6; Debian's
has both. One guest boot (tests/qemu/harness.py: the stock kernel, the host's
files over 9p) runs guest_kernel_datapath.py, and the tests below each assert
one part of its report. Skips with the reason when qemu or the kernel is
missing (tests/qemu/prepare.sh installs them).
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402


@pytest.fixture(scope="module")
def report():
    why = harness.missing_reason()
    if why:
        pytest.skip(why)
    data = harness.guest_report("guest_kernel_datapath.py", timeout=900, kroot=False)[0]
    assert not data["errors"], "\n".join(data["errors"]) + data.get("log", "")
    return data["steps"]


def test_the_daemon_chooses_the_kernel_backend_where_ip6_tunnel_exists(report):
    assert report["kernel"]["ip6_tunnel"]
    assert "datapath backend: kernel" in report["kernel"]["log"]


def test_registration_on_a_mip6_kernel_is_acknowledged(report):
    ba = report["register"]["ba"]
    assert ba.get("status") == 0, ba
    assert ba["rh2"] == "2001:db8::beef" and ba["dst"] == "2001:db8:1::100"


def test_registration_creates_an_ip6tnl_toward_the_care_of_address(report):
    tunnels = report["kernel"]["tunnels"]
    assert "remote 2001:db8:1::100" in tunnels and "local 2001:db8::" in tunnels
    assert "2001:db8::beef" in report["kernel"]["routes"]
    assert "2001:db8::beef" in report["kernel"]["proxy"]


def test_correspondent_ping_is_answered_through_the_kernel_tunnel(report):
    assert report["ping"]["rc"] == 0, report["ping"]["out"]


def test_deregistration_removes_the_tunnel(report):
    assert report["deregister"]["ba"].get("status") == 0
    assert "2001:db8:1::100" not in report["after_deregistration"]["tunnels"]
    assert "2001:db8::beef" not in report["after_deregistration"]["routes"]


def test_stop_leaves_no_tunnel_rule_or_firewall_table(report):
    stopped = report["stopped"]
    assert stopped["rc"] == 0
    assert "table inet denali" not in stopped["nft"]
    assert "6275" not in stopped["rules"]
    assert "dnt" not in stopped["links"]
