"""haconf upgrade --insecure, through the command line (click's CliRunner).

--insecure lets an unsigned manifest, or a firmware without an upgrade key,
be written, and says so; it never lets a signature that fails be written.
The bundles, cards and keys are test_upgrade.py's (openssl-made keys, per session).
"""

import os
import sys

from click.testing import CliRunner

from ha.haconf import cli as haconf
from ha.haconf import upgrade as U

sys.path.insert(0, os.path.dirname(__file__))
from test_upgrade import firmware_key, keys, make_bundle, make_card, new_parts  # noqa: E402,F401


def _run(tmp_path, card, monkeypatch, *args):
    monkeypatch.setattr(U, "running_target", lambda: card)
    conf = str(tmp_path / "denali.conf")
    return CliRunner().invoke(haconf.cli, ["--config", conf, "upgrade", *args])


def test_an_unsigned_bundle_is_refused_then_written_with_insecure(tmp_path, monkeypatch):
    card = make_card(tmp_path / "card")
    path = make_bundle(tmp_path)
    r = _run(tmp_path, card, monkeypatch, path)
    assert r.exit_code == 2
    assert "upgrade refused, the running slot and the boot loader are untouched" in r.stderr
    assert "--insecure" in r.stderr
    assert U.boot_default(card.boot_dir) == "a"
    r = _run(tmp_path, card, monkeypatch, path, "--insecure")
    assert r.exit_code == 0, r.stderr
    out = r.stdout + r.stderr
    assert "UNSIGNED" in out and "because of --insecure" in out
    assert "slot b is on trial" in out
    assert U.boot_default(card.boot_dir) == "b"


def test_a_firmware_without_a_key_writes_only_with_insecure(tmp_path, keys, monkeypatch):
    card = make_card(tmp_path / "card")
    path = make_bundle(tmp_path, key=keys[0])
    monkeypatch.setenv("DENALI_UPGRADE_PUBKEY", str(tmp_path / "no-such.pub"))
    r = _run(tmp_path, card, monkeypatch, path)
    assert r.exit_code == 2 and "no upgrade key" in r.stderr
    r = _run(tmp_path, card, monkeypatch, path, "--insecure")
    assert r.exit_code == 0, r.stderr
    assert "NOT CHECKED" in r.stdout + r.stderr
    assert open(os.path.join(card.boot_dir, "b", "vmlinuz"), "rb").read() == new_parts()["vmlinuz"]


def test_insecure_does_not_write_a_signature_that_fails(tmp_path, keys, monkeypatch):
    card = make_card(tmp_path / "card")
    path = make_bundle(tmp_path, key=keys[0], after_sign=lambda raw: raw + b" ")
    r = _run(tmp_path, card, monkeypatch, path, "--insecure")
    assert r.exit_code == 2
    assert "upgrade refused" in r.stderr and "signature" in r.stderr
    assert not os.path.exists(os.path.join(card.boot_dir, "b"))


def test_help_names_insecure():
    r = CliRunner().invoke(haconf.cli, ["upgrade", "--help"])
    assert r.exit_code == 0 and "--insecure" in r.stdout and "unsigned" in r.stdout
