"""haconf backup, restore and reset: the config directory as one file, and back.

    haconf backup [-o FILE]     /etc/denali in one tar, mode 0600; prints its path
    haconf restore FILE         checks everything in it, then replaces /etc/denali's files
    haconf reset --yes          /etc/denali as a new install has it

What lives in /etc/denali (the ext4 partition upgrades keep): denali.conf
with its [auth] keys and the radios' passphrases, its staged edit
(.staged), yesterday's (.prev, .rollback), root.passwd (`haconf passwd`),
modules (extra kernel modules), and whatever else was put there. The backup
holds every regular file but the transient ones (a pending `apply
--confirm` token, temp files), after an index member, denali-backup.json,
with each file's sha256.

A restore believes nothing before it has checked all of it: the index
first, every name plain (no directories, no ..), every file's size and
sha256, denali.conf (and a staged edit) through the model's full
validation, root.passwd a single crypt(3) line. Only then are the files
written, each to a temp file and renamed into place, and the files the
backup does not have removed: a refused backup changes nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import time

INDEX = "denali-backup.json"
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,99}")
MAX_FILE = 1 << 20
MAX_TOTAL = 4 << 20
KEEP_OUT = re.compile(r"(.*\.confirm|\..*\.tmp|lost\+found)$")
DEFAULTS = "/usr/share/denali/defaults"


class BackupRefused(Exception):
    """The backup file is not fit to restore: nothing was changed."""


def config_files(conf_dir: str) -> list[str]:
    """The regular files of the config directory a backup holds, sorted."""
    out = []
    for name in sorted(os.listdir(conf_dir)):
        p = os.path.join(conf_dir, name)
        if KEEP_OUT.fullmatch(name) or not NAME.fullmatch(name):
            continue
        if os.path.isfile(p) and not os.path.islink(p):
            out.append(name)
    return out


def make_backup(conf_dir: str, version: str = "unknown", now: float | None = None) -> bytes:
    """The tar of conf_dir's files, index first."""
    import tarfile
    files = {}
    for name in config_files(conf_dir):
        with open(os.path.join(conf_dir, name), "rb") as f:
            files[name] = f.read()
    stamp = int(time.time() if now is None else now)
    index = json.dumps({"name": "denali-backup", "firmware": version,
                        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp)),
                        "files": {n: {"size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
                                  for n, d in files.items()}}, indent=1).encode() + b"\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in [(INDEX, index), *files.items()]:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o600, stamp
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def read_backup(path: str) -> dict[str, bytes]:
    """The files of backup *path*, every one checked against the index; raises BackupRefused."""
    import tarfile
    try:
        size = os.path.getsize(path)
        if size > MAX_TOTAL + (1 << 20):
            raise BackupRefused(f"{path} is {size >> 10} KiB: a denali backup is a few KiB")
        tar = tarfile.open(path, mode="r:")
    except OSError as e:
        raise BackupRefused(f"{path}: {e.strerror or e}") from None
    except tarfile.TarError as e:
        raise BackupRefused(f"{path} is not a backup from haconf backup (a tar): {e}") from None
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, EOFError) as e:
            raise BackupRefused(f"{path} is damaged: {e}") from None
        if not members or members[0].name != INDEX:
            raise BackupRefused(f"{path} is not a backup from haconf backup (no {INDEX} first)")
        try:
            index = json.loads(tar.extractfile(members[0]).read())
            listed = index["files"]
            assert index.get("name") == "denali-backup" and isinstance(listed, dict)
        except Exception:
            raise BackupRefused(f"{path}: its {INDEX} is unreadable") from None
        files = {}
        for m in members[1:]:
            if not m.isfile() or not NAME.fullmatch(m.name):
                raise BackupRefused(f"{path} holds {m.name!r}: only plain file names, no "
                                    "directories, links or paths")
            if not isinstance(listed.get(m.name), dict):
                raise BackupRefused(f"{path} holds {m.name}, which its index does not list")
            if m.size > MAX_FILE:
                raise BackupRefused(f"{m.name} in {path} is {m.size >> 10} KiB: too big")
            data = tar.extractfile(m).read()
            if hashlib.sha256(data).hexdigest() != listed[m.name].get("sha256"):
                raise BackupRefused(f"{m.name} in {path} does not match its sha256: the file "
                                    "is damaged")
            files[m.name] = data
    missing = sorted(set(listed) - set(files))
    if missing:
        raise BackupRefused(f"{path} lacks {', '.join(missing)}, which its index lists")
    return files


def check_files(files: dict[str, bytes], conf_name: str = "denali.conf") -> None:
    """The model's validation of the config (and its staged edit); raises BackupRefused."""
    from ha.config import model as C
    from ha.haconf.translate import ra_check
    if conf_name not in files:
        raise BackupRefused(f"the backup has no {conf_name}")
    for name in (conf_name, conf_name + ".staged"):
        if name not in files:
            continue
        try:
            C.validate_text(files[name].decode("utf-8"), name, ra_check)
        except UnicodeDecodeError:
            raise BackupRefused(f"{name} in the backup is not UTF-8 text") from None
        except C.DenaliConfError as e:
            raise BackupRefused(f"{name} in the backup is not a valid config: {e}") from None
    if "root.passwd" in files:
        lines = files["root.passwd"].decode("utf-8", "replace").splitlines()
        if len(lines) != 1 or ":" in lines[0] or not lines[0].startswith("$"):
            raise BackupRefused("root.passwd in the backup is not one crypt(3) hash line")


def restore(conf_dir: str, files: dict[str, bytes]) -> list[str]:
    """Replace conf_dir's files by *files* (already checked); the names written."""
    from ha.config.atomic import atomic_write
    old = config_files(conf_dir)
    for name in sorted(files, key=lambda n: n.endswith(".conf")):  # the config itself last
        atomic_write(os.path.join(conf_dir, name), files[name])
    for name in old + [n for n in os.listdir(conf_dir) if n.endswith(".confirm")]:
        if name not in files:
            try:
                os.unlink(os.path.join(conf_dir, name))
            except FileNotFoundError:
                pass
    return sorted(files)


def reset(conf_dir: str, defaults: str = DEFAULTS) -> list[str]:
    """Empty conf_dir as a new install has it, the image's defaults copied in; names removed."""
    import shutil
    gone = []
    for name in sorted(os.listdir(conf_dir)):
        p = os.path.join(conf_dir, name)
        if name == "lost+found" or not os.path.isfile(p):
            continue
        os.unlink(p)
        gone.append(name)
    if os.path.isdir(defaults):
        for name in sorted(os.listdir(defaults)):
            shutil.copy2(os.path.join(defaults, name), os.path.join(conf_dir, name))
    return gone
