"""haconf upgrade: a bundle streamed into the other slot; refusals leave the boot untouched.

The card here is a directory standing for the boot partition (syslinux.cfg
from firmware/syslinux.cfg, denali/bootstate, slot a's files) and a file
standing for slot b's root partition; the real firmware/denali-slot switches
the boot loader. Bundles are made as build.sh makes them (a tar: manifest,
signature, parts) and signed with openssl as build.sh --sign signs, with a
key made for the session. The signature's own refusals are in
test_upgrade_signature.py; a test at the end streams the real built bundle.
"""

import hashlib
import http.server
import io
import json
import os
import subprocess
import tarfile
import threading

import pytest
from click.testing import CliRunner

from ha.haconf import cli as haconf
from ha.haconf import upgrade as U
from ha.haconf.upgrade import Target, UpgradeError, machine_arch, upgrade

MIB = 1 << 20
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SLOT_TOOL = os.path.join(REPO, "firmware", "denali-slot")


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
    """The running firmware's upgrade key is the session's public key; the slot tool the repo's."""
    monkeypatch.setenv("DENALI_UPGRADE_PUBKEY", keys[1])
    monkeypatch.setenv("DENALI_SLOT_TOOL", SLOT_TOOL)
    return keys[1]


def sign(manifest, key):
    """What build.sh --sign does: openssl's Ed25519 signature of the manifest, raw, beside it."""
    openssl("pkeyutl", "-sign", "-rawin", "-inkey", key, "-in", manifest, "-out",
            manifest + ".sig")


def new_parts(tag=b"new", root_mib=1):
    return {"vmlinuz": b"KERNEL-" + tag * 1000, "initrd.img": b"INITRD-" + tag * 500,
            "denali-overlay.squashfs": b"OVERLAY-" + tag * 3000,
            "root.squashfs": (b"ROOT-" + tag) * (root_mib * MIB // (5 + len(tag)))}


def manifest_for(parts, arch=None, version="9.9"):
    return {"name": "denali", "version": version, "arch": arch or machine_arch(),
            "kernel": "6.1.0-test", "bundle": list(U.PARTS),
            "contents": {n: {"size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
                         for n, d in parts.items()}}


def make_bundle(directory, parts=None, key=None, manifest=None, members=None, after_sign=None):
    """denali-test.upgrade in directory, as build.sh writes it; its path.

    after_sign changes the manifest's bytes once signed (what tampering does)."""
    parts = parts or new_parts()
    m = manifest or manifest_for(parts)
    mpath = os.path.join(str(directory), "manifest.json")
    with open(mpath, "w") as f:
        json.dump(m, f, indent=2)
    if key:
        sign(mpath, key)
    path = os.path.join(str(directory), "denali-test.upgrade")
    raw = open(mpath, "rb").read()
    order = [("manifest.json", after_sign(raw) if after_sign else raw)]
    if key:
        order.append(("manifest.json.sig", open(mpath + ".sig", "rb").read()))
    order += [(n, parts[n]) for n in (members or U.PARTS)]
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in order:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def make_card(directory, root_mib=2):
    """A boot directory on slot a, as build.sh leaves it, and slot b's root partition."""
    boot = os.path.join(str(directory), "boot")
    os.makedirs(os.path.join(boot, "a"))
    os.makedirs(os.path.join(boot, "denali"))
    tmpl = open(os.path.join(REPO, "firmware", "syslinux.cfg")).read()
    open(os.path.join(boot, "denali", "syslinux.in"), "w").write(tmpl)
    open(os.path.join(boot, "syslinux.cfg"), "w").write(tmpl.replace("@SLOT@", "a"))
    open(os.path.join(boot, "denali", "bootstate"), "w").write(
        "active=a\nprevious=\ntentative=0\ntries=0\nfailed=\n")
    for n in U.BOOT_FILES:
        open(os.path.join(boot, "a", n), "wb").write(b"OLD-" + n.encode())
    root_b = os.path.join(str(directory), "sda3")
    with open(root_b, "wb") as f:
        f.write(b"\0" * (root_mib * MIB))
    return Target(boot, "a", "b", root_b)


def snapshot(t):
    """Everything an upgrade must leave alone when it refuses: slot a and the boot config."""
    out = {}
    for sub in ("", "a", "denali"):
        d = os.path.join(t.boot_dir, sub)
        for n in sorted(os.listdir(d)):
            p = os.path.join(d, n)
            if os.path.isfile(p):
                out[os.path.join(sub, n)] = open(p, "rb").read()
    return out


def boots_ready(t, slot):
    """What S50denali does once the new slot's home agent is ready: mark it good."""
    subprocess.run([SLOT_TOOL, "-d", t.boot_dir, "-s", slot, "good"], check=True,
                   capture_output=True)


def state(t):
    return dict(line.split("=", 1) for line in
                open(os.path.join(t.boot_dir, "denali", "bootstate")).read().split())


@pytest.fixture
def card(tmp_path):
    return make_card(tmp_path / "card")


@pytest.fixture
def bundle(tmp_path, keys):
    d = tmp_path / "new"
    d.mkdir()
    return make_bundle(d, key=keys[0])


def test_a_good_bundle_fills_the_other_slot_then_switches_to_it_on_trial(card, bundle):
    said = []
    before = snapshot(card)
    m = upgrade(bundle, card, progress=said.append)
    parts = new_parts()
    for n in U.BOOT_FILES:
        assert open(os.path.join(card.boot_dir, "b", n), "rb").read() == parts[n]
        assert open(os.path.join(card.boot_dir, "a", n), "rb").read() == before[os.path.join("a", n)]
    root = open(card.root_device, "rb").read()
    assert root.startswith(parts["root.squashfs"]) and len(root) == 2 * MIB
    assert state(card) == {"active": "b", "previous": "a", "tentative": "1", "tries": "0",
                           "failed": ""}
    assert U.boot_default(card.boot_dir) == "b"
    cfg = open(os.path.join(card.boot_dir, "syslinux.cfg")).read()
    assert "KERNEL /b/vmlinuz" in cfg and "@SLOT@" not in cfg
    assert m["version"] == "9.9"
    assert any("read back" in line for line in said), said
    assert open(os.path.join(card.boot_dir, "b", "VERSION")).read().startswith("9.9 ")


def _corrupt(parts, name):
    bad = dict(parts)
    data = bytearray(bad[name])
    data[len(data) // 2] ^= 0xFF
    bad[name] = bytes(data)
    return bad


@pytest.mark.parametrize("name", ["vmlinuz", "root.squashfs"])
def test_a_part_that_does_not_match_its_hash_leaves_the_boot_untouched(tmp_path, card, keys, name):
    parts = new_parts()
    # signed manifest of the good parts, a bundle carrying a damaged one
    path = make_bundle(tmp_path, _corrupt(parts, name), key=keys[0], manifest=manifest_for(parts))
    before = snapshot(card)
    with pytest.raises(UpgradeError, match=f"{name} does not match its sha256"):
        upgrade(path, card)
    assert snapshot(card) == before
    assert U.boot_default(card.boot_dir) == "a"


def test_a_truncated_stream_leaves_the_boot_untouched(tmp_path, card, bundle):
    data = open(bundle, "rb").read()
    cut = str(tmp_path / "cut.upgrade")
    open(cut, "wb").write(data[:len(data) - MIB // 2])  # inside root.squashfs
    before = snapshot(card)
    with pytest.raises(UpgradeError, match="ended inside root.squashfs"):
        upgrade(cut, card)
    assert snapshot(card) == before


def test_a_missing_or_reordered_part_is_refused(tmp_path, card, keys):
    parts = new_parts()
    for members, words in ((U.PARTS[:3], "ended before root.squashfs"),
                           (("initrd.img", "vmlinuz") + U.PARTS[2:], "initrd.img where vmlinuz")):
        path = make_bundle(tmp_path, parts, key=keys[0], members=members)
        with pytest.raises(UpgradeError, match=words):
            upgrade(path, card)
        assert U.boot_default(card.boot_dir) == "a"


def test_not_a_bundle_is_refused(tmp_path, card):
    junk = tmp_path / "denali-i386.img"
    junk.write_bytes(b"\x55" * 4096)
    with pytest.raises(UpgradeError, match="not an upgrade bundle"):
        upgrade(str(junk), card)


def test_other_architecture_and_a_root_too_big_are_refused_before_writing(tmp_path, card, keys):
    parts = new_parts()
    path = make_bundle(tmp_path, parts, key=keys[0], manifest=manifest_for(parts, arch="mips"))
    with pytest.raises(UpgradeError, match="is for mips"):
        upgrade(path, card)
    big = new_parts(root_mib=3)
    path = make_bundle(tmp_path, big, key=keys[0])
    with pytest.raises(UpgradeError, match="needs a new card layout"):
        upgrade(path, card)
    assert not os.path.exists(os.path.join(card.boot_dir, "b"))
    assert open(card.root_device, "rb").read() == b"\0" * (2 * MIB)


def test_an_upgrade_is_refused_while_the_boot_loader_starts_the_other_slot(card, bundle):
    running_b = Target(card.boot_dir, "b", "a", card.root_device)
    with pytest.raises(UpgradeError, match="boot loader starts slot a, this system runs slot b"):
        upgrade(bundle, running_b)


def test_a_second_upgrade_writes_the_slot_the_first_one_left(tmp_path, card, keys):
    """a -> b, then (running b) b -> a: the previous slot is always the running one."""
    d = tmp_path / "one"
    d.mkdir()
    upgrade(make_bundle(d, key=keys[0]), card)
    boots_ready(card, "b")
    root_a = str(tmp_path / "sda2")
    open(root_a, "wb").write(b"\0" * (2 * MIB))
    running_b = Target(card.boot_dir, "b", "a", root_a)
    d = tmp_path / "two"
    d.mkdir()
    upgrade(make_bundle(d, new_parts(b"two"), key=keys[0]), running_b)
    assert state(card)["active"] == "a" and state(card)["previous"] == "b"
    assert open(os.path.join(card.boot_dir, "a", "vmlinuz"), "rb").read().startswith(b"KERNEL-two")
    assert open(os.path.join(card.boot_dir, "b", "vmlinuz"), "rb").read().startswith(b"KERNEL-new")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_a_bundle_streamed_over_http(tmp_path, card, bundle):
    handler = lambda *a, **kw: _Quiet(*a, directory=os.path.dirname(bundle), **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/{os.path.basename(bundle)}"
        upgrade(url, card)
        assert U.boot_default(card.boot_dir) == "b"
        boots_ready(card, "b")
        with pytest.raises(UpgradeError, match="cannot fetch .*404|cannot fetch .*Not Found"):
            upgrade(url + ".missing", Target(card.boot_dir, "b", "a", card.root_device))
    finally:
        server.shutdown()


def test_the_stream_is_never_held_whole(tmp_path, keys):
    """A 40 MiB root through a pipe: the upgrading process grows by far less than that."""
    d = tmp_path / "big"
    d.mkdir()
    path = make_bundle(d, new_parts(root_mib=40), key=keys[0])
    t = make_card(tmp_path / "card", root_mib=41)
    code = f"""
import resource, sys
from ha.haconf import upgrade as U
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
import tarfile, hashlib, json, urllib.request
t = U.Target({t.boot_dir!r}, "a", "b", {t.root_device!r})
U.upgrade(sys.stdin.buffer, t)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)
"""
    with open(path, "rb") as src:
        r = subprocess.run([os.sys.executable, "-c", code], stdin=src, capture_output=True,
                           text=True, env={**os.environ, "PYTHONPATH": REPO})
    assert r.returncode == 0, r.stderr
    grew_kib = int(r.stdout.split()[-1])
    assert grew_kib < 8 * 1024, f"RSS grew {grew_kib} KiB for a 40 MiB root"


def test_haconf_upgrade_command(tmp_path, card, bundle, monkeypatch):
    monkeypatch.setattr(U, "running_target", lambda: card)
    conf = str(tmp_path / "denali.conf")
    r = CliRunner().invoke(haconf.cli, ["--config", conf, "upgrade", bundle])
    assert r.exit_code == 0, r.stderr
    assert "slot b is on trial" in r.stdout and "reboot to run the new firmware" in r.stdout
    data = open(bundle, "rb").read()
    with open(bundle, "wb") as f:
        f.write(data[:len(data) // 2])
    running_b = Target(card.boot_dir, "b", "a", card.root_device)
    monkeypatch.setattr(U, "running_target", lambda: running_b)
    r = CliRunner().invoke(haconf.cli, ["--config", conf, "upgrade", bundle])
    assert r.exit_code == 2
    assert "upgrade refused, the running slot and the boot loader are untouched" in r.stderr


def test_running_target_reads_the_command_line_and_mounts(tmp_path):
    cmdline = tmp_path / "cmdline"
    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/sda1 /media/denali/boot vfat ro,relatime 0 0\n")
    cmdline.write_text("console=ttyS0 denali.slot=b denali.root=/dev/sda3\n")
    t = U.running_target(str(cmdline), str(mounts))
    assert (t.running, t.slot, t.root_device) == ("b", "a", "/dev/sda2")
    cmdline.write_text("console=ttyS0 denali.root=/dev/sda2\n")
    with pytest.raises(UpgradeError, match="not booted from an A/B slot"):
        U.running_target(str(cmdline), str(mounts))


def test_the_built_bundle_streams_into_a_card(tmp_path):
    out = os.path.join(REPO, "out")
    path = os.path.join(out, "denali-i386.upgrade")
    if not os.path.exists(path):
        pytest.skip("no built bundle in out/ (./build.sh makes one)")
    pub = os.path.join(out, "upgrade.pub")
    signed = os.path.exists(os.path.join(out, "manifest-i386.json.sig")) and os.path.exists(pub)
    how = {"pubkey": pub} if signed else {"insecure": True}
    m = json.load(open(os.path.join(out, "manifest-i386.json")))
    slot_mib = next(p["mib"] for p in m["partitions"] if p["n"] == 3)
    t = make_card(tmp_path / "card", root_mib=slot_mib)
    upgrade(path, t, arch="i386", **how)
    assert U.boot_default(t.boot_dir) == "b"
    assert hashlib.sha256(open(os.path.join(t.boot_dir, "b", "vmlinuz"), "rb").read()).hexdigest() \
        == m["contents"]["vmlinuz"]["sha256"]


def test_no_upgrade_while_the_running_slot_is_on_trial(card, bundle):
    # slot a runs on trial (an earlier upgrade, not yet "home agent ready"): slot b is
    # the only one known to boot, so writing it would leave nothing to fall back to
    open(os.path.join(card.boot_dir, "denali", "bootstate"), "w").write(
        "active=a\nprevious=b\ntentative=1\ntries=1\nfailed=\n")
    open(card.root_device, "wb").write(b"GOOD-B" + b"\0" * (2 * MIB - 6))
    before = snapshot(card)
    with pytest.raises(UpgradeError, match="on trial"):
        upgrade(bundle, card)
    assert snapshot(card) == before
    assert open(card.root_device, "rb").read(6) == b"GOOD-B"
