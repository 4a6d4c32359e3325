"""Firmware upgrade from a denali disk image, like OpenWrt's sysupgrade.

    haconf upgrade IMAGE [--manifest FILE] [--device DEV] [--no-keep-config] [--reboot]

The image is checked before a byte is written. First who made it: the
manifest (manifest.json beside it, from build.sh) must carry an Ed25519
signature (RFC 8032) in manifest.json.sig, made by `build.sh --sign KEY` on
the build machine, that the public key of the *running* firmware
(/usr/share/denali/upgrade.pub, on the read-only root) accepts. A checksum
alone proves nothing: whoever can change the image can recompute it. An
unsigned manifest, or a firmware without a key, is refused unless the
caller says insecure=True (haconf upgrade --insecure), and then it says so;
a signature that does not verify is refused always. Then what it is: the
manifest must name the image, be for this machine's architecture, and give
its size and sha256, which must match; its partition table must be
readable. The device's partition table must have the image's boot and root
partitions at the same places (a different layout needs a full reflash of
the card, which this refuses to guess at). Then partitions 1 (boot) and 2
(root) are copied, and 3 (/etc/denali) only when the configuration is not
kept; each written range is read back and compared. A refused image changes
nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import struct
from dataclasses import dataclass

SECTOR = 512
CHUNK = 1 << 20
BOOT, ROOT, CONFIG = 1, 2, 3
# the running firmware's upgrade key (build.sh --sign/--pubkey puts it there); the
# variable is for tests and for a board that keeps its key elsewhere
PUBKEY = "/usr/share/denali/upgrade.pub"
SIG_SUFFIX = ".sig"


def pubkey_path() -> str:
    return os.environ.get("DENALI_UPGRADE_PUBKEY") or PUBKEY


class UpgradeError(Exception):
    """The image or the device is not fit for the upgrade; nothing was written."""


@dataclass(frozen=True, slots=True)
class Partition:
    n: int
    start: int  # bytes
    size: int  # bytes
    kind: int  # MBR partition type


def read_partitions(f) -> dict[int, Partition]:
    """The primary partitions of an MBR disk (file object positioned anywhere)."""
    f.seek(0)
    mbr = f.read(SECTOR)
    if len(mbr) < SECTOR or mbr[510:512] != b"\x55\xaa":
        raise UpgradeError("no MBR partition table (the 55 aa signature is missing)")
    out = {}
    for i in range(4):
        entry = mbr[446 + 16 * i: 462 + 16 * i]
        kind = entry[4]
        start, count = struct.unpack_from("<II", entry, 8)
        if kind and count:
            out[i + 1] = Partition(i + 1, start * SECTOR, count * SECTOR, kind)
    return out


def machine_arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "i386": "i386", "i486": "i386", "i586": "i386",
            "i686": "i386"}.get(m, m)


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest_path(image: str, manifest: str | None) -> str:
    return manifest or os.path.join(os.path.dirname(os.path.abspath(image)), "manifest.json")


def load_manifest(image: str, manifest: str | None) -> dict:
    return parse_manifest(manifest_path(image, manifest), read_manifest(image, manifest))


def read_manifest(image: str, manifest: str | None) -> bytes:
    path = manifest_path(image, manifest)
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise UpgradeError(f"no manifest at {path}: build.sh writes manifest.json beside "
                           "the image (or give --manifest)") from None
    except OSError as e:
        raise UpgradeError(f"manifest {path} is unreadable: {e}") from None


def parse_manifest(path: str, raw: bytes) -> dict:
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise UpgradeError(f"manifest {path} is unreadable: {e}") from None
    if not isinstance(data, dict) or data.get("name") != "denali" or "files" not in data:
        raise UpgradeError(f"{path} is not a denali manifest")
    return data


def check_signature(path: str, raw: bytes, pubkey: str | None = None,
                    insecure: bool = False) -> str:
    """Check the Ed25519 signature of manifest *raw* (read from *path*); what was found.

    Raises UpgradeError for a bad signature, and for a missing signature or
    key unless *insecure*.
    """
    key_file = pubkey or pubkey_path()
    sig_file = path + SIG_SUFFIX
    name = os.path.basename(path)
    try:
        with open(key_file) as f:
            key_text = f.read()
    except FileNotFoundError:
        if insecure:
            return f"NOT CHECKED: this firmware has no upgrade key ({key_file}); --insecure"
        raise UpgradeError(f"this firmware has no upgrade key ({key_file}), so it cannot tell "
                           f"who made the image; haconf upgrade --insecure writes it "
                           "unchecked") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UpgradeError(f"the upgrade key {key_file} is unreadable: {e}") from None
    from ha.haconf import ed25519  # only now: haconf's other commands never pay for it
    try:
        key = ed25519.public_key_from_pem(key_text)
    except ValueError as e:
        raise UpgradeError(f"the upgrade key {key_file}: {e}") from None
    fingerprint = hashlib.sha256(key).hexdigest()[:16]
    try:
        with open(sig_file, "rb") as f:
            sig = f.read()
    except FileNotFoundError:
        if insecure:
            return f"UNSIGNED (no {os.path.basename(sig_file)}), written because of --insecure"
        raise UpgradeError(f"{name} is not signed (no {sig_file}): build the image with "
                           "./build.sh --sign KEY, or haconf upgrade --insecure to write an "
                           "unsigned image") from None
    except OSError as e:
        raise UpgradeError(f"{sig_file} is unreadable: {e}") from None
    if len(sig) != 64:
        raise UpgradeError(f"{sig_file} is {len(sig)} bytes, not a 64-byte Ed25519 signature")
    if not ed25519.verify(key, raw, sig):
        # never written, --insecure or not: this is what tampering looks like
        raise UpgradeError(f"{name} does not match its signature for this firmware's upgrade "
                           f"key {fingerprint}: changed since it was signed, or signed with "
                           "another key")
    return f"signed with the upgrade key {fingerprint}"


def verify_image(image: str, manifest: str | None = None, arch: str | None = None, *,
                 pubkey: str | None = None, insecure: bool = False, progress=None) -> dict:
    """Check IMAGE's signature and its manifest; return the manifest, or raise UpgradeError."""
    path = manifest_path(image, manifest)
    raw = read_manifest(image, manifest)
    signed = check_signature(path, raw, pubkey, insecure)  # before any field is believed
    if progress:
        progress(f"manifest {signed}")
    m = parse_manifest(path, raw)
    name = os.path.basename(image)
    entry = m["files"].get(name)
    if entry is None:
        raise UpgradeError(f"the manifest does not list {name} "
                           f"(it lists {', '.join(sorted(m['files']))})")
    want_arch = arch or machine_arch()
    if m.get("arch") != want_arch:
        raise UpgradeError(f"{name} is for {m.get('arch')}, this machine is {want_arch}")
    try:
        size = os.path.getsize(image)
    except OSError as e:
        raise UpgradeError(f"{image}: {e.strerror}") from None
    if size != entry["size"]:
        raise UpgradeError(f"{name} is {size} bytes, the manifest says {entry['size']}: "
                           "truncated or not the image the manifest was made for")
    digest = sha256_of(image)
    if digest != entry["sha256"]:
        raise UpgradeError(f"{name} does not match its sha256 ({digest[:16]}... instead of "
                           f"{entry['sha256'][:16]}...): the image is corrupted")
    with open(image, "rb") as f:
        parts = read_partitions(f)
    for n in (BOOT, ROOT, CONFIG):
        if n not in parts:
            raise UpgradeError(f"{name} has no partition {n}")
        if parts[n].start + parts[n].size > size:
            raise UpgradeError(f"{name}: partition {n} runs past the end of the image")
    return m


def plan(image_parts: dict, device_parts: dict, keep_config: bool) -> list[Partition]:
    """The partitions to copy; refuses when the device's layout differs."""
    wanted = [BOOT, ROOT] + ([] if keep_config else [CONFIG])
    for n in wanted:
        src, dst = image_parts[n], device_parts.get(n)
        if dst is None or (dst.start, dst.size) != (src.start, src.size):
            where = "missing" if dst is None else f"at {dst.start} for {dst.size} bytes"
            raise UpgradeError(f"the device's partition {n} is {where}, the image's at "
                               f"{src.start} for {src.size} bytes: the layout changed, "
                               "write the whole image to the card instead")
    return [image_parts[n] for n in wanted]


def running_device() -> str | None:
    """The disk the running image booted from (the boot partition's disk), if any."""
    try:
        with open("/proc/mounts") as f:
            for line in f:
                dev, where = line.split()[:2]
                if where == "/media/denali/boot" and dev.startswith("/dev/"):
                    base = dev.rstrip("0123456789")
                    return base[:-1] if base.endswith("p") and base[-2:-1].isdigit() else base
    except OSError:
        pass
    return None


def upgrade(image: str, device: str, *, manifest: str | None = None, keep_config: bool = True,
            arch: str | None = None, progress=None, pubkey: str | None = None,
            insecure: bool = False) -> list[Partition]:
    """Verify, then copy; returns what was written. Raises UpgradeError before writing."""
    verify_image(image, manifest, arch, pubkey=pubkey, insecure=insecure, progress=progress)
    with open(image, "rb") as src:
        image_parts = read_partitions(src)
    try:
        dst = open(device, "r+b")
    except OSError as e:
        raise UpgradeError(f"{device}: {e.strerror}") from None
    with dst, open(image, "rb") as src:
        todo = plan(image_parts, read_partitions(dst), keep_config)
        for p in todo:
            if progress:
                progress(f"writing partition {p.n} ({p.size >> 20} MiB)")
            _copy(src, dst, p)
        dst.flush()
        os.fsync(dst.fileno())
        for p in todo:
            if _digest(src, p) != _digest(dst, p):
                raise OSError(f"partition {p.n} reads back different from the image")
    return todo


def _copy(src, dst, p: Partition) -> None:
    src.seek(p.start)
    dst.seek(p.start)
    left = p.size
    while left:
        chunk = src.read(min(CHUNK, left))
        if not chunk:
            raise OSError(f"the image ended inside partition {p.n}")
        dst.write(chunk)
        left -= len(chunk)


def _digest(f, p: Partition) -> str:
    h = hashlib.sha256()
    f.seek(p.start)
    left = p.size
    while left:
        chunk = f.read(min(CHUNK, left))
        if not chunk:
            break
        h.update(chunk)
        left -= len(chunk)
    return h.hexdigest()
