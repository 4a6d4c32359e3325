"""System floor: upgrades of the built image in qemu, as the board lives them.

Two signed builds (build.sh --sign with a key made for the test; the second with
DENALI_VERSION changed, so its overlay differs) and a third bundle made from the
second whose denalid exits at once. One card (a private copy of the first image)
goes through, in order:

  (b) a power cut: qemu killed while `haconf upgrade /dev/sdX` (the bundle on a
      second disk, as on a USB stick) writes the root; the next boot is the old slot;
  (a) `haconf upgrade http://...` from the host (qemu user networking, restrict=on,
      one guestfwd address to a server on this machine's loopback), reboot: the new
      slot runs the new version, the `haconf set` made before is still there, and
      reaching "home agent ready" makes the slot good;
  (c) the broken bundle: two boots that never get ready (the watchdog reboots each),
      then the initramfs goes back to the slot that worked;
and last the boot menu's `factory` entry reformats the config partition.

DENALI_BUILD_IMAGE=1 builds the images (cached stages: the second build costs the
overlay and the image); without it, the builds of an earlier run are used if they are
in build/upgrade-test, else the tests skip and say so.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from denali_vm import FIGURES, DenaliVM, qemu_missing  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK = os.path.join(REPO, "build", "upgrade-test")
ARCH = "i386"
GUEST_HTTP = "10.0.2.100"
RELAY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tcp_relay.py")


def figure(name: str, value: str) -> None:
    FIGURES[name] = value
    print(f"{name}: {value}")


def setup_version() -> str:
    text = open(os.path.join(REPO, "setup.py")).read()
    return re.search(r'version="([^"]+)"', text).group(1)


V1 = setup_version()
V2 = V1 + "+upgrade"
V3 = V1 + "+broken"


def build(version: str, out: str, key: str) -> None:
    env = {**os.environ, "DENALI_VERSION": version}
    t0 = time.monotonic()
    r = subprocess.run([os.path.join(REPO, "build.sh"), "--arch", ARCH, "--out", out, "--sign", key],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, f"build.sh for {version} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    figure(f"build.sh {version}", f"{time.monotonic() - t0:.0f} s")


def broken_bundle(good: str, out: str, key: str) -> str:
    """The bundle of `good` with a denalid that exits at once, re-signed: an image that
    boots and never gets ready."""
    os.makedirs(out, exist_ok=True)
    parts = {}
    with tarfile.open(good) as tar:
        for m in tar.getmembers():
            parts[m.name] = tar.extractfile(m).read()
    tree = os.path.join(out, "overlay")
    shutil.rmtree(tree, ignore_errors=True)
    ovl = os.path.join(out, "overlay.squashfs")
    open(ovl, "wb").write(parts["denali-overlay.squashfs"])
    subprocess.run(["unsquashfs", "-q", "-n", "-d", tree, ovl], check=True, capture_output=True)
    with open(os.path.join(tree, "usr/bin/denalid"), "w") as f:
        f.write("#!/bin/sh\necho 'denalid: broken on purpose (system test)' >&2\nexit 1\n")
    open(os.path.join(tree, "usr/share/denali/VERSION"), "w").write(V3 + "\n")
    os.unlink(ovl)
    subprocess.run(["mksquashfs", tree, ovl, "-noappend", "-comp", "xz", "-all-root", "-no-progress"],
                   check=True, capture_output=True)
    shutil.rmtree(tree)
    parts["denali-overlay.squashfs"] = open(ovl, "rb").read()
    m = json.loads(parts["manifest.json"])
    m["version"] = V3
    m["contents"]["denali-overlay.squashfs"] = {
        "size": len(parts["denali-overlay.squashfs"]),
        "sha256": hashlib.sha256(parts["denali-overlay.squashfs"]).hexdigest()}
    mpath = os.path.join(out, "manifest.json")
    open(mpath, "w").write(json.dumps(m, indent=2) + "\n")
    subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", key, "-in", mpath,
                    "-out", mpath + ".sig"], check=True)
    parts["manifest.json"] = open(mpath, "rb").read()
    parts["manifest.json.sig"] = open(mpath + ".sig", "rb").read()
    path = os.path.join(out, f"denali-{ARCH}.upgrade")
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name in ["manifest.json", "manifest.json.sig", *m["bundle"]]:
            info = tarfile.TarInfo(name)
            info.size = len(parts[name])
            tar.addfile(info, io.BytesIO(parts[name]))
    return path


@pytest.fixture(scope="module")
def builds():
    why = qemu_missing(ARCH)
    if why:
        pytest.skip(why)
    v1, v2, v3 = (os.path.join(WORK, v) for v in ("v1", "v2", "v3"))
    key = os.path.join(WORK, "test.key")
    if os.environ.get("DENALI_BUILD_IMAGE") == "1":
        os.makedirs(WORK, exist_ok=True)
        if not os.path.exists(key):
            subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", key], check=True)
            os.chmod(key, 0o600)
        build(V1, v1, key)
        build(V2, v2, key)
        broken_bundle(os.path.join(v2, f"denali-{ARCH}.upgrade"), v3, key)
    for d in (v1, v2, v3):
        if not os.path.exists(os.path.join(d, f"denali-{ARCH}.upgrade")):
            pytest.skip(f"no test builds in {WORK}: run with DENALI_BUILD_IMAGE=1 "
                        "(builds two signed images)")
    img = os.path.join(v1, f"denali-{ARCH}.img")
    figure("image (A/B, 4 partitions)", f"{os.path.getsize(img) / 1048576:.0f} MiB "
           f"({os.stat(img).st_blocks * 512 / 1048576:.0f} MiB allocated: slot b is a hole)")
    figure("upgrade bundle", f"{os.path.getsize(os.path.join(v2, f'denali-{ARCH}.upgrade')) / 1048576:.1f} MiB")
    return {"v1": v1, "v2": v2, "v3": v3}


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def http_server():
    """A plain http server on this machine's loopback, serving build/upgrade-test."""
    handler = lambda *a, **kw: _Quiet(*a, directory=WORK, **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port
    server.shutdown()


class Card:
    """One CF card (a file) that survives qemu being killed; boots it with a USB-stick disk."""

    def __init__(self, image: str, path: str, port: int):
        shutil.copyfile(image, path)
        self.path = path
        self.port = port
        self.vm: DenaliVM | None = None
        self.log = os.environ.get("DENALI_VM_LOG") or os.path.join(REPO, "build", "system-console.log")

    def power_on(self, stick: str) -> DenaliVM:
        nic = (f"user,model=e1000,restrict=on,"
               f"guestfwd=tcp:{GUEST_HTTP}:80-cmd:{sys.executable} {RELAY} 127.0.0.1 {self.port}")
        self.vm = DenaliVM(self.path, memory_mb=64, log_path=self.log, copy=False, extra_args=[
            "-drive", f"file={stick},format=raw,if=ide,index=2,media=disk,snapshot=on",
            "-nic", nic])
        self.vm.start()
        return self.vm

    def power_cut(self) -> None:
        self.vm.proc.kill()
        self.vm.stop()


def slot_state(vm) -> dict:
    out = vm.check("denali-slot show")
    return dict(line.split("=", 1) for line in out.split() if "=" in line)


def stick(vm) -> str:
    """The USB-stick disk: the one without partitions (disk names follow probe order)."""
    out = vm.check("for d in /dev/sd[a-z]; do [ -b ${d}1 ] || echo $d; done")
    assert len(out.split()) == 1, out
    return out.strip()


def boot_and_login(vm, timeout=300) -> float:
    seconds = vm.wait_for_login(timeout=timeout)
    vm.login()
    return seconds


@pytest.fixture(scope="module")
def card(builds, http_server, tmp_path_factory):
    c = Card(os.path.join(builds["v1"], f"denali-{ARCH}.img"),
             str(tmp_path_factory.mktemp("card") / "cf.img"), http_server)
    yield c
    if c.vm:
        c.vm.stop()


def test_power_cut_during_the_write_boots_the_old_slot(card, builds):
    vm = card.power_on(os.path.join(builds["v2"], f"denali-{ARCH}.upgrade"))
    boot_and_login(vm)
    assert slot_state(vm)["active"] == "a"
    out, rc = vm.run("haconf set essid kept-across-upgrades && haconf commit", timeout=180)
    assert rc == 0, out
    vm.sendline(f"haconf upgrade {stick(vm)}")
    vm.expect(b"writing root.squashfs", timeout=300)
    vm.expect(re.compile(rb"\d+ of \d+ MiB"), timeout=300)   # in the middle of the root
    card.power_cut()
    vm = card.power_on(os.path.join(builds["v3"], f"denali-{ARCH}.upgrade"))
    boot_and_login(vm)
    assert "denali.slot=a" in vm.check("cat /proc/cmdline")
    assert vm.check("cat /usr/share/denali/VERSION").strip() == V1
    s = slot_state(vm)
    assert (s["active"], s["tentative"]) == ("a", "0"), s
    assert "kept-across-upgrades" in vm.check("haconf get essid --committed", timeout=180)


def test_upgrade_over_http_then_reboot_into_the_new_slot(card, builds):
    vm = card.vm
    vm.check("ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0")
    t0 = time.monotonic()
    out, rc = vm.run(f"haconf upgrade http://{GUEST_HTTP}/v2/denali-{ARCH}.upgrade", timeout=900)
    assert rc == 0, out
    figure("haconf upgrade over http (TCG, 38 MiB bundle)", f"{time.monotonic() - t0:.0f} s")
    assert "signed with the upgrade key" in out and "slot b is on trial" in out, out
    assert re.search(r"read back: .*root.squashfs match", out), out
    s = slot_state(vm)
    assert (s["active"], s["previous"], s["tentative"]) == ("b", "a", "1"), s
    vm.reboot()
    seconds = boot_and_login(vm)
    figure("reboot into the new slot to login prompt", f"{seconds:.0f} s")
    assert "denali.slot=b" in vm.check("cat /proc/cmdline")
    assert vm.check("cat /usr/share/denali/VERSION").strip() == V2
    assert f"denali home agent {V2}" in vm.check("cat /etc/issue") or V2 in vm.check("cat /etc/issue")
    assert "kept-across-upgrades" in vm.check("haconf get essid --committed", timeout=180)
    # "home agent ready" makes the slot good
    deadline = time.monotonic() + 400
    while slot_state(vm)["tentative"] != "0":
        assert time.monotonic() < deadline, "slot b was never marked good"
        time.sleep(5)
    assert slot_state(vm)["active"] == "b"


def test_an_image_that_never_gets_ready_falls_back_after_two_tries(card, builds):
    vm = card.vm
    out, rc = vm.run(f"haconf upgrade {stick(vm)}", timeout=900)   # the broken bundle
    assert rc == 0, out
    assert "into slot a" in out
    t0 = time.monotonic()
    vm.reboot()
    vm.expect(b"slot a on trial after an upgrade (boot 1 of 2)", timeout=300)
    vm.expect(b"denalid exited", timeout=300)
    vm.expect(b"rebooting", timeout=300)
    vm.expect(b"slot a on trial after an upgrade (boot 2 of 2)", timeout=400)
    vm.expect(b"slot a did not become ready in two boots: back to slot b", timeout=400)
    seconds = boot_and_login(vm, timeout=400)
    figure("broken upgrade: reboot to login on the old slot (2 tries, fallback)",
           f"{time.monotonic() - t0:.0f} s")
    assert "denali.slot=b" in vm.check("cat /proc/cmdline")
    assert vm.check("cat /usr/share/denali/VERSION").strip() == V2
    s = slot_state(vm)
    assert (s["active"], s["previous"], s["tentative"], s["failed"]) == ("b", "a", "0", "a"), s
    assert "slot a did not become ready after the upgrade" in vm.check("logread | grep denali")
    assert "kept-across-upgrades" in vm.check("haconf get essid --committed", timeout=180)


def test_the_factory_boot_entry_gives_a_new_install(card, builds):
    """The boot menu's factory entry: the config partition is reformatted, the slot is kept."""
    vm = card.vm
    if vm is None or not vm.alive():  # run alone: a fresh card
        vm = card.power_on(os.path.join(builds["v2"], f"denali-{ARCH}.upgrade"))
        boot_and_login(vm)
        out, rc = vm.run("haconf set essid kept-across-upgrades && haconf commit", timeout=180)
        assert rc == 0, out
    slot = slot_state(vm)["active"]
    assert "kept-across-upgrades" in vm.check("haconf get essid --committed", timeout=180)
    vm.check("echo 'mac80211_hwsim radios=2' > /etc/denali/modules")
    # what typing factory at the boot: prompt picks, made the default for one boot
    # (typed input did not reach syslinux's prompt under qemu's stdio serial here)
    cfg = "/media/denali/boot/syslinux.cfg"
    vm.check(f"mount -o remount,rw /media/denali/boot && sed -i 's/^DEFAULT .*/DEFAULT factory/' {cfg}"
             " && mount -o remount,ro /media/denali/boot")
    vm.reboot()
    vm.expect(b"factory defaults: reformatting the config partition", timeout=300)
    vm.expect(b"new install is closed", timeout=300)
    boot_and_login(vm)
    assert "denali.factory" in vm.check("cat /proc/cmdline")
    assert slot_state(vm)["active"] == slot        # the firmware is the one that ran
    assert not vm.check("ls /etc/denali/modules 2>/dev/null || true").strip()
    assert "kept-across-upgrades" not in vm.check("haconf get essid --committed", timeout=180)
    vm.check(f"mount -o remount,rw /media/denali/boot && sed -i 's/^DEFAULT .*/DEFAULT {slot}/' {cfg}"
             " && mount -o remount,ro /media/denali/boot")
