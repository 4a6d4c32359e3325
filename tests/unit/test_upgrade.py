"""haconf upgrade: checked against the manifest, refusals write nothing.

The images here are small disks made by the test (an MBR and three
partitions with recognisable contents) with a manifest like build.sh's,
signed as build.sh --sign signs it (openssl, a key made for the session);
the "device" is a file holding the old image, as a CF card would. A test at
the end uses the real built image when there is one. The signature's own
refusals are in test_upgrade_signature.py.
"""

import hashlib
import json
import os
import shutil
import struct
import subprocess

import pytest
from click.testing import CliRunner

from ha.haconf import cli as haconf
from ha.haconf.upgrade import UpgradeError, machine_arch, read_partitions, upgrade, verify_image

MIB = 1 << 20
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_disk(path, fill, layout=((1, 1), (2, 2), (3, 1))):
    """A disk of MiB-sized partitions after a 1 MiB gap, partition n filled with fill[n]."""
    mbr = bytearray(512)
    start = 1
    for i, (n, mib) in enumerate(layout):
        struct.pack_into("<B3xB3xII", mbr, 446 + 16 * i, 0x80 if n == 1 else 0,
                         (0x0C, 0x83, 0x83)[i], start * 2048, mib * 2048)
        start += mib
    mbr[510:512] = b"\x55\xaa"
    with open(path, "wb") as f:
        f.write(mbr + bytes(MIB - 512))
        for n, mib in layout:
            f.write(fill[n] * (mib * MIB // len(fill[n])))


def openssl(*args):
    r = subprocess.run(["openssl", *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    """An Ed25519 key pair made by openssl: (private PEM path, public PEM path)."""
    d = tmp_path_factory.mktemp("keys")
    key, pub = str(d / "build.key"), str(d / "upgrade.pub")
    openssl("genpkey", "-algorithm", "ed25519", "-out", key)
    openssl("pkey", "-in", key, "-pubout", "-out", pub)
    return key, pub


@pytest.fixture(autouse=True)
def firmware_key(keys, monkeypatch):
    """The running firmware's upgrade key is the session's public key."""
    monkeypatch.setenv("DENALI_UPGRADE_PUBKEY", keys[1])
    return keys[1]


SIGNING_KEY = []  # set by the keys fixture's users: manifest_for signs with it


def sign(manifest, key):
    """What build.sh --sign does: openssl's Ed25519 signature of the manifest, raw, beside it."""
    openssl("pkeyutl", "-sign", "-rawin", "-inkey", key, "-in", manifest, "-out",
            manifest + ".sig")


def manifest_for(image, arch=None, key=None):
    data = open(image, "rb").read()
    m = {"name": "denali", "version": "9.9", "arch": arch or machine_arch(),
         "files": {os.path.basename(image): {"size": len(data),
                                             "sha256": hashlib.sha256(data).hexdigest()}}}
    path = os.path.join(os.path.dirname(image), "manifest.json")
    with open(path, "w") as f:
        json.dump(m, f)
    key = key or (SIGNING_KEY[0] if SIGNING_KEY else None)
    if key:
        sign(path, key)
    return path


@pytest.fixture
def disks(tmp_path, keys):
    SIGNING_KEY[:] = [keys[0]]
    new_dir = tmp_path / "new"
    new_dir.mkdir()
    image = str(new_dir / "denali-test.img")
    make_disk(image, {1: b"BOOT-new", 2: b"ROOT-new", 3: b"CONF-new"})
    manifest_for(image)
    device = str(tmp_path / "cf-card")
    make_disk(device, {1: b"BOOT-old", 2: b"ROOT-old", 3: b"CONF-old"})
    return image, device


def part(path, n):
    with open(path, "rb") as f:
        p = read_partitions(f)[n]
        f.seek(p.start)
        return f.read(p.size)


def test_good_image_replaces_boot_and_root_and_keeps_the_config(disks):
    image, device = disks
    written = upgrade(image, device)
    assert [p.n for p in written] == [1, 2]
    assert part(device, 1) == part(image, 1) and part(device, 2) == part(image, 2)
    assert part(device, 3).startswith(b"CONF-old")


def test_no_keep_config_replaces_the_config_too(disks):
    image, device = disks
    upgrade(image, device, keep_config=False)
    assert part(device, 3).startswith(b"CONF-new")


@pytest.mark.parametrize("damage, words", [
    ("flip", "corrupted"),
    ("truncate", "truncated"),
])
def test_corrupted_or_truncated_image_is_refused_and_nothing_written(disks, damage, words):
    image, device = disks
    before = open(device, "rb").read()
    with open(image, "r+b") as f:
        if damage == "flip":
            f.seek(3 * MIB + 17)
            b = f.read(1)
            f.seek(3 * MIB + 17)
            f.write(bytes([b[0] ^ 0xFF]))
        else:
            f.truncate(2 * MIB)
    with pytest.raises(UpgradeError, match=words):
        upgrade(image, device)
    assert open(device, "rb").read() == before


def test_other_architecture_is_refused(disks):
    image, device = disks
    manifest_for(image, arch="mips")
    with pytest.raises(UpgradeError, match="is for mips"):
        upgrade(image, device)


def test_missing_manifest_is_refused(disks):
    image, device = disks
    os.unlink(os.path.join(os.path.dirname(image), "manifest.json"))
    with pytest.raises(UpgradeError, match="no manifest"):
        verify_image(image)


def test_a_device_with_another_layout_is_refused_untouched(disks, tmp_path):
    image, _ = disks
    device = str(tmp_path / "other-card")
    make_disk(device, {1: b"b", 2: b"r", 3: b"c"}, layout=((1, 2), (2, 2), (3, 1)))
    before = open(device, "rb").read()
    with pytest.raises(UpgradeError, match="layout changed"):
        upgrade(image, device)
    assert open(device, "rb").read() == before


def test_haconf_upgrade_command(disks, tmp_path):
    image, device = disks
    conf = str(tmp_path / "denali.conf")
    r = CliRunner().invoke(haconf.cli, ["--config", conf, "upgrade", image,
                                        "--device", device])
    assert r.exit_code == 0, r.stderr
    assert "wrote partitions 1, 2" in r.stdout and "configuration kept" in r.stdout
    with open(image, "r+b") as f:
        f.truncate(MIB)
    r = CliRunner().invoke(haconf.cli, ["--config", conf, "upgrade", image,
                                        "--device", device])
    assert r.exit_code == 2
    assert "upgrade refused, nothing written" in r.stderr


def test_the_built_image_verifies_against_its_manifest(tmp_path):
    img = os.path.join(REPO, "out", "denali-i386.img")
    if not os.path.exists(img) or not os.path.exists(os.path.join(REPO, "out", "manifest.json")):
        pytest.skip("no built image in out/ (./build.sh makes one)")
    manifest = json.load(open(os.path.join(REPO, "out", "manifest.json")))
    if "denali-i386.img" not in manifest["files"]:
        pytest.skip("out/manifest.json is for another architecture")
    # build.sh --sign leaves the public key beside the image; an unsigned build is
    # checked for everything else
    pub = os.path.join(REPO, "out", "upgrade.pub")
    signed = os.path.exists(os.path.join(REPO, "out", "manifest.json.sig"))
    how = {"pubkey": pub} if signed and os.path.exists(pub) else {"insecure": True}
    verify_image(img, arch="i386", **how)
    device = str(tmp_path / "card")
    shutil.copy(img, device)
    written = upgrade(img, device, arch="i386", **how)
    assert [p.n for p in written] == [1, 2]
