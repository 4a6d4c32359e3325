"""The scenario runs the seed's own files, not a tidied copy."""

import os

from ha.lab import scenario
from ha.config.mip6d_conf import parse_mip6d
from radvd.config import parse

DATA = os.path.join(os.path.dirname(__file__), "..", "data")


def read(name):
    with open(os.path.join(DATA, name)) as f:
        return f.read()


def test_scenario_radvd_conf_is_the_seed_file_verbatim():
    assert scenario.SEED_RADVD == read("radvd.seed.conf")


def test_scenario_mip6d_conf_means_what_the_seed_file_means():
    ours = parse_mip6d(scenario.SEED_MIP6D_HA, "scenario").with_defaults()
    seed = parse_mip6d(read("mip6d.ha.conf"), "seed").with_defaults()
    assert ours == seed
    assert ours.node_config == "HA" and ours.interfaces == ["wlan0"]


def test_scenario_radvd_conf_parses_to_two_cells_with_the_ha_flag_on_home_only():
    cfg = parse(scenario.SEED_RADVD, "radvd.conf")
    flags = {i.name: i.adv_home_agent_flag for i in cfg.interfaces}
    assert flags == {"wlan0": True, "wlan1": False}
