"""haconf's quick path (ha/haconf/quick.py) prints what the click CLI prints.

The console script answers `status`, `bc`, `bul`, `log` (and --json) without
loading click or the config model; each is compared with the CLI's own output
against the same stand-in daemon, and when no daemon answers.
"""

import os
import sys

import pytest

from ha.haconf import quick

sys.path.insert(0, os.path.dirname(__file__))
from test_haconf import Box, FakeDaemon, conf_with_port, free_port  # noqa: E402

ANSWERS = {
    "status json": ['{"pid": 197, "services": {"wireless": "up", "ra": "up", "ha": "up"}, '
                    '"bindings": 1000, "boot": {"process": 19.2, "main": 21.1, "ready": 28.6, '
                    '"first_ra": 36.4}, "radios": [{"radio": "wlan0", "essid": "home", '
                    '"state": "enabled", "reason": null}]}'],
    "bc": ["hoa 2001:db8::beef status registered", ".hidden"],
    "bc json": ['[{"hoa": "2001:db8::beef"}]'],
    "bul": ["(mobile node mode is off)"],
    "bul json": ["[]"],
    "log": ["10:00 started"],
}


class JsonBox(Box):
    def run(self, *args):  # a --json answer is one long line: no 80-column check here
        from click.testing import CliRunner
        from ha.haconf import cli
        return CliRunner().invoke(cli.cli, ["--config", self.conf, *args])


@pytest.fixture
def box(tmp_path):
    return JsonBox(tmp_path)


@pytest.mark.parametrize("argv", [list(k) for k in quick.QUESTIONS])
def test_same_output_as_the_cli(box, argv, monkeypatch):
    d = FakeDaemon(dict(ANSWERS))
    try:
        box.write(conf_with_port(d.port))
        monkeypatch.setenv("DENALI_CONF", box.conf)
        want = box.run(*argv)
        text, code, to_stderr = quick.answer(argv)
        assert not to_stderr
        assert text + "\n" == want.stdout and code == want.exit_code
    finally:
        d.close()


def test_an_error_answer_exits_1_as_the_cli(box, monkeypatch):
    d = FakeDaemon({})
    try:
        box.write(conf_with_port(d.port))
        monkeypatch.setenv("DENALI_CONF", box.conf)
        want = box.run("bc")
        text, code, _ = quick.answer(["bc"])
        assert (text + "\n", code) == (want.stdout, want.exit_code) and code == 1
    finally:
        d.close()


def test_not_running_says_so_on_stderr_with_status_3(box, monkeypatch):
    port = free_port()
    box.write(conf_with_port(port))
    monkeypatch.setenv("DENALI_CONF", box.conf)
    want = box.run("status")
    text, code, to_stderr = quick.answer(["status"])
    assert to_stderr and code == 3 == want.exit_code
    assert text + "\n" == want.stderr


@pytest.mark.parametrize("argv", [["status", "-h"], ["--config", "x", "status"], ["show"], []])
def test_anything_else_goes_to_the_cli(argv):
    assert quick.answer(argv) is None
