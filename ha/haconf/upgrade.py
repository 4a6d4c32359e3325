"""Firmware upgrade from a denali disk image, like OpenWrt's sysupgrade.

    haconf upgrade IMAGE [--manifest FILE] [--device DEV] [--no-keep-config] [--reboot]

The image is checked before a byte is written: its manifest (manifest.json
beside it, from build.sh) must name it, be for this machine's architecture,
and give its size and sha256, which must match; its partition table must be
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


def load_manifest(image: str, manifest: str | None) -> dict:
    path = manifest or os.path.join(os.path.dirname(os.path.abspath(image)), "manifest.json")
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise UpgradeError(f"no manifest at {path}: build.sh writes manifest.json beside "
                           "the image (or give --manifest)") from None
    except (OSError, ValueError) as e:
        raise UpgradeError(f"manifest {path} is unreadable: {e}") from None
    if not isinstance(data, dict) or data.get("name") != "denali" or "files" not in data:
        raise UpgradeError(f"{path} is not a denali manifest")
    return data


def verify_image(image: str, manifest: str | None = None, arch: str | None = None) -> dict:
    """Check IMAGE against its manifest; return the manifest, or raise UpgradeError."""
    m = load_manifest(image, manifest)
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
            arch: str | None = None, progress=None) -> list[Partition]:
    """Verify, then copy; returns what was written. Raises UpgradeError before writing."""
    verify_image(image, manifest, arch)
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
