"""haconf upgrade --insecure, through the command line (click's CliRunner).

--insecure lets an unsigned manifest, or a firmware without an upgrade key,
be written, and says so; it never lets a signature that fails be written.
The disks and keys are test_upgrade.py's (openssl-made, per session).
"""

import os
import sys

from click.testing import CliRunner

from ha.haconf import cli as haconf

sys.path.insert(0, os.path.dirname(__file__))
from test_upgrade import firmware_key, keys, make_disk, manifest_for, part  # noqa: E402,F401


def _disks(tmp_path, key=None):
    new_dir = tmp_path / "new"
    new_dir.mkdir()
    image = str(new_dir / "denali-test.img")
    make_disk(image, {1: b"BOOT-new", 2: b"ROOT-new", 3: b"CONF-new"})
    manifest = manifest_for(image, key=key)
    device = str(tmp_path / "cf-card")
    make_disk(device, {1: b"BOOT-old", 2: b"ROOT-old", 3: b"CONF-old"})
    return image, manifest, device


def _run(tmp_path, *args):
    conf = str(tmp_path / "denali.conf")
    return CliRunner().invoke(haconf.cli, ["--config", conf, "upgrade", *args])


def test_an_unsigned_image_is_refused_then_written_with_insecure(tmp_path):
    image, manifest, device = _disks(tmp_path)
    if os.path.exists(manifest + ".sig"):
        os.unlink(manifest + ".sig")
    before = open(device, "rb").read()
    r = _run(tmp_path, image, "--device", device)
    assert r.exit_code == 2
    assert "upgrade refused, nothing written" in r.stderr and "--insecure" in r.stderr
    assert open(device, "rb").read() == before
    r = _run(tmp_path, image, "--device", device, "--insecure")
    assert r.exit_code == 0, r.stderr
    out = r.stdout + r.stderr
    assert "UNSIGNED" in out and "because of --insecure" in out
    assert "wrote partitions 1, 2" in out
    assert part(device, 2) == part(image, 2)


def test_a_firmware_without_a_key_writes_only_with_insecure(tmp_path, keys, monkeypatch):
    image, _, device = _disks(tmp_path, key=keys[0])
    monkeypatch.setenv("DENALI_UPGRADE_PUBKEY", str(tmp_path / "no-such.pub"))
    r = _run(tmp_path, image, "--device", device)
    assert r.exit_code == 2 and "no upgrade key" in r.stderr
    r = _run(tmp_path, image, "--device", device, "--insecure")
    assert r.exit_code == 0, r.stderr
    assert "NOT CHECKED" in r.stdout + r.stderr
    assert part(device, 1) == part(image, 1)


def test_insecure_does_not_write_a_signature_that_fails(tmp_path, keys):
    image, manifest, device = _disks(tmp_path, key=keys[0])
    with open(manifest, "a") as f:  # changed after signing
        f.write(" ")
    before = open(device, "rb").read()
    r = _run(tmp_path, image, "--device", device, "--insecure")
    assert r.exit_code == 2
    assert "upgrade refused, nothing written" in r.stderr and "signature" in r.stderr
    assert open(device, "rb").read() == before


def test_help_names_insecure():
    r = CliRunner().invoke(haconf.cli, ["upgrade", "--help"])
    assert r.exit_code == 0 and "--insecure" in r.stdout and "unsigned" in r.stdout
