"""Firmware upgrade into the other A/B slot, streamed from a bundle.

    haconf upgrade SRC [--insecure] [--reboot]     SRC: a file, a device, - or http(s)://

The card has two slots (firmware/README.md): the running one and the other.
build.sh writes the bundle denali-ARCH.upgrade, a tar stream of

    manifest.json  manifest.json.sig  vmlinuz  initrd.img  denali-overlay.squashfs  root.squashfs

in that order. It is read once, front to back, in 256 KiB pieces: the board
has 12 MiB of tmpfs and the root alone is 30 MiB, so nothing is held whole.

First who made it, before a byte is written: the manifest must carry an
Ed25519 signature (RFC 8032), made by `build.sh --sign KEY`, that the
*running* firmware's public key (/usr/share/denali/upgrade.pub) accepts. A
checksum alone proves nothing: whoever can change the bundle can recompute
it. An unsigned manifest, or a firmware without a key, is refused unless
insecure=True (haconf upgrade --insecure), which says so; a signature that
does not verify is refused always. Then what it is: a denali manifest for
this architecture, whose parts fit the other slot.

Then each part goes where the other slot keeps it (the root squashfs
straight onto its partition, the small files into its directory on the
boot partition), hashed as it is written and compared with the manifest;
everything is read back from the card and hashed again. Only then does
denali-slot mark the slot tentative and switch the boot loader's DEFAULT to
it: the old slot comes back unless the new one reaches "home agent ready"
(denali-slot's header has the rules). A refused or broken bundle, or a power
cut on the way, leaves the running slot and the boot configuration as they
were; only the other slot is left half written, which nothing boots.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
from dataclasses import dataclass

CHUNK = 256 << 10
# the running firmware's upgrade key (build.sh --sign/--pubkey puts it there); the
# variable is for tests and for a board that keeps its key elsewhere
PUBKEY = "/usr/share/denali/upgrade.pub"
SLOT_TOOL = "/usr/sbin/denali-slot"
BOOT_DIR = "/media/denali/boot"
MANIFEST, SIGNATURE = "manifest.json", "manifest.json.sig"
ROOT_PART = "root.squashfs"
BOOT_FILES = ("vmlinuz", "initrd.img", "denali-overlay.squashfs")
PARTS = BOOT_FILES + (ROOT_PART,)
MAX_MANIFEST = 256 << 10
SLOTS = ("a", "b")


def pubkey_path() -> str:
    return os.environ.get("DENALI_UPGRADE_PUBKEY") or PUBKEY


def slot_tool() -> str:
    return os.environ.get("DENALI_SLOT_TOOL") or SLOT_TOOL


class UpgradeError(Exception):
    """The bundle or the card is not fit for the upgrade: the running slot is untouched."""


def machine_arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "i386": "i386", "i486": "i386", "i586": "i386",
            "i686": "i386"}.get(m, m)


# ------------------------------------------------------------------ the manifest

def check_signature(raw: bytes, sig: bytes | None, pubkey: str | None = None,
                    insecure: bool = False) -> str:
    """Check the Ed25519 signature *sig* of manifest *raw*; say what was found.

    Raises UpgradeError for a bad signature, and for a missing signature or
    key unless *insecure*.
    """
    key_file = pubkey or pubkey_path()
    try:
        with open(key_file) as f:
            key_text = f.read()
    except FileNotFoundError:
        if insecure:
            return f"NOT CHECKED: this firmware has no upgrade key ({key_file}); --insecure"
        raise UpgradeError(f"this firmware has no upgrade key ({key_file}), so it cannot tell "
                           "who made the bundle; haconf upgrade --insecure writes it "
                           "unchecked") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UpgradeError(f"the upgrade key {key_file} is unreadable: {e}") from None
    from ha.haconf import ed25519  # only now: haconf's other commands never pay for it
    try:
        key = ed25519.public_key_from_pem(key_text)
    except ValueError as e:
        raise UpgradeError(f"the upgrade key {key_file}: {e}") from None
    fingerprint = hashlib.sha256(key).hexdigest()[:16]
    if sig is None:
        if insecure:
            return f"UNSIGNED (no {SIGNATURE}), written because of --insecure"
        raise UpgradeError(f"the bundle's {MANIFEST} is not signed (no {SIGNATURE}): build it "
                           "with ./build.sh --sign KEY, or haconf upgrade --insecure to write "
                           "an unsigned one")
    if len(sig) != 64:
        raise UpgradeError(f"{SIGNATURE} is {len(sig)} bytes, not a 64-byte Ed25519 signature")
    if not ed25519.verify(key, raw, sig):
        # never written, --insecure or not: this is what tampering looks like
        raise UpgradeError(f"{MANIFEST} does not match its signature for this firmware's "
                           f"upgrade key {fingerprint}: changed since it was signed, or signed "
                           "with another key")
    return f"signed with the upgrade key {fingerprint}"


def parse_manifest(raw: bytes, arch: str | None = None) -> dict:
    """The manifest's fields an upgrade relies on, checked; raises UpgradeError."""
    try:
        m = json.loads(raw)
    except ValueError as e:
        raise UpgradeError(f"{MANIFEST} is unreadable: {e}") from None
    if not isinstance(m, dict) or m.get("name") != "denali":
        raise UpgradeError(f"{MANIFEST} is not a denali manifest")
    want = arch or machine_arch()
    if m.get("arch") != want:
        raise UpgradeError(f"the bundle is for {m.get('arch')}, this machine is {want}")
    order, contents = m.get("bundle"), m.get("contents")
    if not isinstance(contents, dict) or order != list(PARTS):
        raise UpgradeError(f"{MANIFEST} does not describe an upgrade bundle (it must list "
                           f"{', '.join(PARTS)} in that order; a disk image from an older "
                           "build is for a new card, not for haconf upgrade)")
    for name in PARTS:
        e = contents.get(name)
        if (not isinstance(e, dict) or not isinstance(e.get("size"), int) or e["size"] < 0
                or not re.fullmatch(r"[0-9a-f]{64}", str(e.get("sha256")))):
            raise UpgradeError(f"{MANIFEST} gives no size and sha256 for {name}")
    return m


# ------------------------------------------------------------------ the card

@dataclass(frozen=True, slots=True)
class Target:
    """Where the other slot lives: its directory on the boot partition and its root."""
    boot_dir: str      # the boot partition (FAT), mounted
    running: str       # the slot this system runs, a or b
    slot: str          # the other one, which the upgrade writes
    root_device: str   # the other slot's root partition (or a file, in tests)

    @property
    def slot_dir(self) -> str:
        return os.path.join(self.boot_dir, self.slot)


def other_slot(slot: str) -> str:
    return "b" if slot == "a" else "a"


def boot_default(boot_dir: str) -> str | None:
    """The slot syslinux.cfg starts by default."""
    try:
        with open(os.path.join(boot_dir, "syslinux.cfg")) as f:
            for line in f:
                m = re.match(r"\s*DEFAULT\s+(\S+)", line, re.I)
                if m:
                    return m.group(1)
    except OSError:
        pass
    return None


def running_target(cmdline: str = "/proc/cmdline", mounts: str = "/proc/mounts") -> Target:
    """The other slot of the card this system booted from; raises UpgradeError."""
    try:
        args = dict(a.split("=", 1) if "=" in a else (a, "") for a in open(cmdline).read().split())
    except OSError as e:
        raise UpgradeError(f"cannot read {cmdline}: {e}") from None
    running = args.get("denali.slot")
    if running not in SLOTS:
        raise UpgradeError("this system was not booted from an A/B slot (no denali.slot= on "
                           "the kernel command line): an older card layout is upgraded by "
                           "writing the new disk image to the card")
    boot = None
    try:
        with open(mounts) as f:
            for line in f:
                dev, where = line.split()[:2]
                if where == BOOT_DIR:
                    boot = dev
    except OSError:
        pass
    if boot is None or not boot.startswith("/dev/"):
        raise UpgradeError(f"the boot partition is not mounted on {BOOT_DIR}")
    disk = boot.rstrip("0123456789")
    slot = other_slot(running)
    return Target(BOOT_DIR, running, slot, disk + ("2" if slot == "a" else "3"))


def _device_size(path: str) -> int:
    with open(path, "rb") as f:
        return f.seek(0, os.SEEK_END)


def check_room(m: dict, t: Target) -> None:
    """Refuse a bundle whose parts do not fit the other slot, before writing."""
    c = m["contents"]
    try:
        room = _device_size(t.root_device)
    except OSError as e:
        raise UpgradeError(f"the root partition {t.root_device} of slot {t.slot}: "
                           f"{e.strerror}") from None
    if c[ROOT_PART]["size"] > room:
        raise UpgradeError(f"{ROOT_PART} is {c[ROOT_PART]['size'] >> 20} MiB, slot {t.slot}'s "
                           f"partition {t.root_device} holds {room >> 20} MiB: this release "
                           "needs a new card layout (write its disk image)")
    st = os.statvfs(t.boot_dir)
    free = st.f_bavail * st.f_frsize
    for name in BOOT_FILES:  # the other slot's old files are replaced
        try:
            free += os.path.getsize(os.path.join(t.slot_dir, name))
        except OSError:
            pass
    need = sum(c[n]["size"] for n in BOOT_FILES) + 64 * 1024
    if need > free:
        raise UpgradeError(f"the boot partition has {free >> 10} KiB for slot {t.slot}, the "
                           f"bundle's kernel, initramfs and overlay need {need >> 10} KiB")


# ------------------------------------------------------------------ the stream

def open_source(src: str):
    """A binary stream of the bundle: a file or device path, '-' (stdin), or an http(s) URL."""
    if src == "-":
        import sys
        return sys.stdin.buffer
    if re.match(r"https?://", src):
        import urllib.error
        import urllib.request  # only here: the other commands never load http
        try:
            return urllib.request.urlopen(src, timeout=60)
        except urllib.error.HTTPError as e:
            raise UpgradeError(f"cannot fetch {src}: HTTP {e.code} {e.reason}") from None
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise UpgradeError(f"cannot fetch {src}: {getattr(e, 'reason', e)}") from None
    if os.path.isdir(src):
        raise UpgradeError(f"{src} is a directory: name the bundle in it "
                           "(denali-ARCH.upgrade)")
    try:
        return open(src, "rb")
    except OSError as e:
        raise UpgradeError(f"{src}: {e.strerror}") from None


def _read_small(tar, member, limit: int) -> bytes:
    if member.size > limit:
        raise UpgradeError(f"{member.name} in the bundle is {member.size} bytes: too big")
    return tar.extractfile(member).read()


def _write_part(tar, member, dest: str, expect: dict, progress, truncate: bool) -> None:
    """Copy one member to dest, hashing as it goes; raises UpgradeError on a mismatch."""
    h = hashlib.sha256()
    src = tar.extractfile(member)
    done, step = 0, 8 << 20
    with open(dest, "wb" if truncate else "r+b") as out:
        while True:
            chunk = src.read(CHUNK)
            if not chunk:
                break
            out.write(chunk)
            h.update(chunk)
            done += len(chunk)
            if progress and done >= step and member.size >= (16 << 20):
                progress(f"  {done >> 20} of {member.size >> 20} MiB")
                step += 8 << 20
        out.flush()
        os.fsync(out.fileno())
    if done != member.size:
        raise UpgradeError(f"the bundle ended inside {member.name}")
    if h.hexdigest() != expect["sha256"]:
        raise UpgradeError(f"{member.name} does not match its sha256 in the manifest "
                           f"({h.hexdigest()[:16]}... instead of {expect['sha256'][:16]}...): "
                           "the bundle is corrupted")


def _read_back(path: str, size: int) -> str:
    """sha256 of the first size bytes of path as the card has them (cache dropped first)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        try:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        except (AttributeError, OSError):
            pass
        left = size
        while left:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def _remount(boot_dir: str, mode: str) -> bool:
    """Remount the boot partition rw or ro when it is a mount point; whether it was."""
    if not os.path.ismount(boot_dir):
        return False
    import subprocess
    r = subprocess.run(["mount", "-o", f"remount,{mode}", boot_dir], capture_output=True, text=True)
    if r.returncode != 0:
        raise OSError(f"cannot remount {boot_dir} {mode}: {r.stderr.strip()}")
    return True


def upgrade(src, target: Target, *, pubkey: str | None = None, insecure: bool = False,
            arch: str | None = None, progress=None) -> dict:
    """Stream the bundle *src* (a path, URL or binary stream) into target's slot.

    Returns the manifest. Raises UpgradeError when the bundle is refused
    (the boot configuration untouched), OSError when the card fails.
    """
    import tarfile
    from http.client import HTTPException  # an http source that drops mid-stream
    ended = (tarfile.TarError, EOFError, HTTPException)
    say = progress or (lambda _line: None)
    default = boot_default(target.boot_dir)
    if default != target.running:
        raise UpgradeError(f"the boot loader starts slot {default}, this system runs slot "
                           f"{target.running}: writing slot {target.slot} now could leave "
                           f"nothing good to boot; reboot into slot {default} first")
    st = slot_state(target.boot_dir)
    if st.get("active") == target.running and st.get("tentative") == "1":
        # the other slot is the only one known to work: it is the fallback
        raise UpgradeError(f"slot {target.running} is still on trial (not yet \"home agent "
                           f"ready\"): slot {target.slot} is the one to fall back to, so it "
                           f"is not overwritten; upgrade once this slot is marked good")
    stream = open_source(src) if isinstance(src, str) else src
    remounted = False
    try:
        try:
            tar = tarfile.open(fileobj=stream, mode="r|")
            members = iter(tar)
            first = next(members, None)
        except (*ended, OSError) as e:
            raise UpgradeError(f"not an upgrade bundle (a tar stream): {e}") from None
        if first is None or first.name != MANIFEST:
            raise UpgradeError(f"not an upgrade bundle: it must start with {MANIFEST}, not "
                               f"{first.name if first else 'nothing'}")
        try:
            raw = _read_small(tar, first, MAX_MANIFEST)
            nxt = next(members, None)
            sig = None
            if nxt is not None and nxt.name == SIGNATURE:
                sig = _read_small(tar, nxt, 1024)
                nxt = next(members, None)
        except ended as e:
            raise UpgradeError(f"the bundle ended inside its manifest: {e}") from None
        say(f"manifest {check_signature(raw, sig, pubkey, insecure)}")  # before any field is believed
        m = parse_manifest(raw, arch)
        check_room(m, target)
        say(f"denali {m.get('version')} for {m.get('arch')} (kernel {m.get('kernel')}) "
            f"into slot {target.slot}; slot {target.running} keeps running")
        remounted = _remount(target.boot_dir, "rw")
        os.makedirs(target.slot_dir, exist_ok=True)
        written = {}
        for name in PARTS:
            if nxt is None:
                raise UpgradeError(f"the bundle ended before {name}")
            if nxt.name != name:
                raise UpgradeError(f"the bundle holds {nxt.name} where {name} belongs")
            expect = m["contents"][name]
            if nxt.size != expect["size"]:
                raise UpgradeError(f"{name} is {nxt.size} bytes in the bundle, the manifest "
                                   f"says {expect['size']}")
            if name == ROOT_PART:
                dest, truncate = target.root_device, False
            else:
                dest, truncate = os.path.join(target.slot_dir, name), True
            say(f"writing {name} ({expect['size'] / 1048576:.1f} MiB) to {dest}")
            try:
                _write_part(tar, nxt, dest, expect, say, truncate)
                written[name] = dest
                nxt = next(members, None)
            except ended as e:
                raise UpgradeError(f"the bundle ended inside {name}: {e}") from None
        for name, dest in written.items():
            if _read_back(dest, m["contents"][name]["size"]) != m["contents"][name]["sha256"]:
                raise OSError(f"{name} reads back from {dest} different from what was written")
        say(f"read back: {', '.join(written)} match the manifest")
        with open(os.path.join(target.slot_dir, "VERSION"), "w") as f:
            f.write(f"{m.get('version')} {m.get('kernel')}\n")
        _switch(target)
        say(f"slot {target.slot} is on trial: the boot loader starts it from the next boot; "
            f"back to slot {target.running} unless its home agent gets ready within two boots")
        return m
    finally:
        if stream is not src:
            stream.close()
        if remounted:
            try:
                _remount(target.boot_dir, "ro")
            except OSError:
                pass


def _switch(target: Target) -> None:
    import subprocess
    r = subprocess.run([slot_tool(), "-d", target.boot_dir, "-s", target.running,
                        "tentative", target.slot, target.running],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise OSError(f"denali-slot could not switch to slot {target.slot}: "
                      f"{(r.stderr or r.stdout).strip()}")


def slot_state(target_dir: str = BOOT_DIR) -> dict:
    """The boot state as denali-slot keeps it (key=value lines), for haconf status."""
    out = {}
    try:
        with open(os.path.join(target_dir, "denali", "bootstate")) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                out[k] = v
    except OSError:
        pass
    return out
