"""ha/config/pd.py: carving a delegated prefix, the renumbering schedule, the
denali.conf it makes; [uplink] prefix_delegation and [system] in the model."""

from ipaddress import IPv6Interface as I, IPv6Network as N

import pytest

from ha.config import model as C
from ha.config import pd

CELLS = {"wlan0": 0, "wlan1": 1}
CONFIGURED = {"wlan0": "2001:db8::/64", "wlan1": "2001:db8:1::1/64"}
UPLINK = "[uplink]\n    interface = eth0\n    mode = slaac\n    prefix_delegation = on\n"


def lease(prefix, pl=3000, vl=6000, at=1000.0):
    return pd.Lease(N(prefix), pl, vl, at)


def test_carve_gives_each_sub_prefix_id_its_64():
    assert pd.carve(N("2001:db8:100::/56"), 0) == N("2001:db8:100::/64")
    assert pd.carve(N("2001:db8:100::/56"), 1) == N("2001:db8:100:1::/64")
    assert pd.carve(N("2001:db8:100::/56"), 255) == N("2001:db8:100:ff::/64")
    with pytest.raises(ValueError, match="0-255"):
        pd.carve(N("2001:db8:100::/56"), 256)
    with pytest.raises(ValueError, match="longer than /64"):
        pd.carve(N("2001:db8:100::/80"), 0)


def test_cells_keep_their_interface_identifier():
    assert pd.cell_address(N("2001:db8:100:1::/64"), "2001:db8:1::1/64") == \
        I("2001:db8:100:1::1/64")
    assert pd.cell_address(N("2001:db8:100::/64"), "2001:db8::/64") == I("2001:db8:100::/64")


def test_first_delegation_retires_the_configured_prefixes_for_two_hours():
    st = pd.renumber(pd.PdState(), lease("2001:db8:100::/56"), CELLS, CONFIGURED, 1000.0)
    assert pd.plan(st, CELLS, CONFIGURED) == {"wlan0": I("2001:db8:100::/64"),
                                              "wlan1": I("2001:db8:100:1::1/64")}
    # RFC 7084 L-13: the lower of what is left (forever) and two hours
    assert {(r.address, r.valid_until) for r in st.retired} == {
        (I("2001:db8::/64"), 1000.0 + 7200), (I("2001:db8:1::1/64"), 1000.0 + 7200)}


def test_a_renewal_changes_nothing_a_new_prefix_retires_the_old_with_what_is_left():
    st = pd.renumber(pd.PdState(), lease("2001:db8:100::/56", vl=600), CELLS, CONFIGURED, 1000.0)
    same = pd.renumber(st, lease("2001:db8:100::/56", vl=590, at=1010.0), CELLS, CONFIGURED,
                       1010.0)
    assert same.retired == st.retired and same.lease.valid == 590
    new = pd.renumber(same, lease("2001:db8:200::/56", at=1100.0), CELLS, CONFIGURED, 1100.0)
    old = {r.address: r.valid_until for r in new.retired}
    assert old[I("2001:db8:100::/64")] == 1010.0 + 590  # its own valid end, under 2 h
    assert old[I("2001:db8:100:1::1/64")] == 1010.0 + 590
    # and once that has passed, it is gone
    assert I("2001:db8:100::/64") not in {r.address for r in pd.expire(new, 1601.0).retired}
    assert pd.next_change(new) == 1600.0


def test_a_withdrawn_delegation_brings_the_configured_prefixes_back():
    st = pd.renumber(pd.PdState(), lease("2001:db8:100::/56"), CELLS, CONFIGURED, 1000.0)
    gone = pd.renumber(st, None, CELLS, CONFIGURED, 1500.0)
    assert gone.lease is None
    assert pd.plan(gone, CELLS, CONFIGURED)["wlan0"] == I("2001:db8::/64")
    assert I("2001:db8::/64") not in {r.address for r in gone.retired}
    assert I("2001:db8:100::/64") in {r.address for r in gone.retired}


def test_lease_from_dhcpcd_variables():
    env = {"reason": "BOUND6", "new_dhcp6_ia_pd1_prefix1": "2001:db8:100::",
           "new_dhcp6_ia_pd1_prefix1_length": "56", "new_dhcp6_ia_pd1_prefix1_pltime": "30",
           "new_dhcp6_ia_pd1_prefix1_vltime": "60"}
    assert pd.lease_from_env(env, 5.0) == pd.Lease(N("2001:db8:100::/56"), 30, 60, 5.0)
    # lifetime 0: the server withdrew it (RFC 8415 section 18.2.10.1)
    assert pd.lease_from_env({**env, "new_dhcp6_ia_pd1_prefix1_vltime": "0"}, 5.0) is None
    with pytest.raises(ValueError):
        pd.lease_from_env({**env, "new_dhcp6_ia_pd1_prefix1": "nonsense"}, 5.0)


def test_state_round_trips_through_json():
    st = pd.renumber(pd.PdState(), lease("2001:db8:100::/56"), CELLS, CONFIGURED, 1000.0)
    assert pd.state_from_json(pd.state_to_json(st)) == st
    with pytest.raises(ValueError, match="not a prefix delegation state"):
        pd.state_from_json("{\"lease\": 5}")


def test_overlay_numbers_the_cells_deprecates_the_old_and_serves_both_home_prefixes():
    cfg = C.validate_text(C.DEFAULT_TEXT + UPLINK, "d.conf")
    st = pd.renumber(pd.PdState(), lease("2001:db8:100::/56", 40, 60), CELLS, CONFIGURED,
                     1000.0)
    new = C.rebuild(pd.overlay(cfg.values, st, CELLS, 1000.0), "d.conf")
    assert new.radio("wlan0").address == "2001:db8:100::/64"
    assert new.radio("wlan1").address == "2001:db8:100:1::/64"
    wlan0 = {p.prefix: p for p in next(r for r in new.ra_interfaces if r.name == "wlan0").prefixes}
    cur, old = wlan0["2001:db8:100::/64"], wlan0["2001:db8::/64"]
    # the lease bounds the current prefix's lifetimes; the old one: preferred 0, 2 h left
    assert (cur.adv_valid_lifetime, cur.adv_preferred_lifetime) == (60, 40)
    assert (old.adv_valid_lifetime, old.adv_preferred_lifetime) == (7200, 0)
    assert old.decrement_lifetimes
    assert new.ha.served_prefixes == ("2001:db8:100::/64", "2001:db8::/64")


def test_model_refuses_bad_delegation_and_system_settings():
    with pytest.raises(C.DenaliConfError) as e:
        C.validate_text(C.DEFAULT_TEXT + UPLINK + "    pd_hint = /40\n", "d.conf")
    assert "48-64" in str(e.value)
    with pytest.raises(C.DenaliConfError) as e:
        C.validate_text(C.DEFAULT_TEXT + UPLINK + "    pd_hint = 62\n    pd_foreign_id = 4\n",
                        "d.conf")
    assert "does not fit a /62: use 0-3" in str(e.value)
    with pytest.raises(C.DenaliConfError) as e:
        C.validate_text(C.DEFAULT_TEXT + "[uplink]\n    prefix_delegation = on\n", "d.conf")
    assert "set without uplink.interface" in str(e.value)
    with pytest.raises(C.DenaliConfError) as e:
        C.validate_text(C.DEFAULT_TEXT + "[system]\n    syslog_host = logs:99999\n", "d.conf")
    assert "port is not 1-65535" in str(e.value)
    with pytest.raises(C.DenaliConfError) as e:
        C.validate_text(C.DEFAULT_TEXT + "[system]\n    ntp_servers = ok.example, -bad\n",
                        "d.conf")
    assert "'-bad' is not a host" in str(e.value)


def test_system_settings_typed():
    cfg = C.validate_text(C.DEFAULT_TEXT + "[system]\n    ntp_servers = pool.ntp.org, "
                          "2001:db8::123\n    syslog_host = 2001:db8::5\n", "d.conf")
    assert cfg.system.ntp_servers == ("pool.ntp.org", "2001:db8::123")
    assert cfg.system.syslog_host == "[2001:db8::5]:514"
    assert C.validate_text(C.DEFAULT_TEXT, "d.conf").system == C.SystemSettings()
