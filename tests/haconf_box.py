"""A directory holding one denali.conf for haconf's unit tests, run through click's runner.

Every line haconf prints must fit the serial console's 80 columns.
"""

from __future__ import annotations

import os

from click.testing import CliRunner

from ha.haconf import cli as haconf


class Box:
    def __init__(self, path):
        self.dir = path
        self.conf = str(path / "denali.conf")
        self.staged = self.conf + ".staged"

    def run(self, *args):
        r = CliRunner().invoke(haconf.cli, ["--config", self.conf, *args])
        for line in (r.stdout + r.stderr).splitlines():
            assert len(line) <= 80, line  # the serial console's width
        return r

    def ok(self, *args):
        r = self.run(*args)
        assert r.exit_code == 0, (r.stdout, r.stderr, r.exception)
        return r

    def files(self):
        return {n: (self.dir / n).read_bytes() for n in sorted(os.listdir(self.dir))}

    def refused(self, *args):
        """haconf's refusal of *args* (exit 2, no file changed), its words unwrapped."""
        before = self.files()
        r = self.run(*args)
        assert r.exit_code == 2, (r.stdout, r.stderr)
        assert self.files() == before  # nothing written
        return " ".join(r.stderr.split())
