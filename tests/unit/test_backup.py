"""haconf backup / restore / reset, through the command line (click's CliRunner).

The config directory is a tmp dir holding what /etc/denali holds on the board:
the config made by `haconf init` (a key, passphrases), a staged edit, root.passwd
and a modules file. A backup must come back whole; a damaged or invalid one must be
refused with the directory untouched.
"""

import io
import json
import os
import shutil
import stat
import subprocess
import tarfile

import pytest
from click.testing import CliRunner

from ha.haconf import backup as B
from ha.haconf import cli as haconf

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def hc(conf, *args):
    return CliRunner().invoke(haconf.cli, ["--config", conf, *args])


@pytest.fixture
def etc(tmp_path):
    d = tmp_path / "etc-denali"
    d.mkdir(mode=0o700)
    conf = str(d / "denali.conf")
    r = hc(conf, "init")
    assert r.exit_code == 0, r.stderr
    r = hc(conf, "set", "essid", "before-backup")
    assert r.exit_code == 0, r.stderr
    (d / "root.passwd").write_text("$6$salt$abcdefghijklmnop\n")
    (d / "modules").write_text("mac80211_hwsim radios=2\n")
    (d / "denali.conf.confirm").write_text("123 token\n")  # transient: not backed up
    return d, conf


def contents(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def test_backup_then_restore_gives_back_every_file(etc, tmp_path):
    d, conf = etc
    out = str(tmp_path / "b.tar")
    r = hc(conf, "backup", "-o", out)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == out
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    saved = {k: v for k, v in contents(d).items() if not k.endswith(".confirm")}
    assert {"denali.conf", "denali.conf.staged", "root.passwd", "modules"} <= set(saved)
    # everything changes, then the backup comes back
    assert hc(conf, "commit").exit_code == 0
    (d / "modules").unlink()
    (d / "stray").write_text("x")
    r = hc(conf, "restore", out)
    assert r.exit_code == 0, r.stderr
    assert contents(d) == saved
    assert "before-backup" in hc(conf, "get", "essid").stdout


def test_the_default_path_is_in_tmp_and_printed(etc):
    d, conf = etc
    r = hc(conf, "backup")
    assert r.exit_code == 0, r.stderr
    path = r.stdout.strip().splitlines()[-1]
    try:
        assert path.startswith("/tmp/denali-backup-") and tarfile.is_tarfile(path)
    finally:
        os.unlink(path)


def _rewrite(path, change):
    """The backup's members, changed by change(name, data) -> data or None (dropped)."""
    with tarfile.open(path) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            data = change(name, data)
            if data is None:
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _reindex(path):
    """Recompute the index so that only the content checks can refuse."""
    import hashlib
    with tarfile.open(path) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()[1:]}

    def change(name, data):
        if name != B.INDEX:
            return data
        idx = json.loads(data)
        idx["files"] = {n: {"size": len(v), "sha256": hashlib.sha256(v).hexdigest()}
                        for n, v in files.items()}
        return json.dumps(idx).encode()
    _rewrite(path, change)


BAD = [
    ("a flipped byte", lambda n, d: d[:-2] + b"X\n" if n == "denali.conf" else d, False,
     "does not match its sha256"),
    ("a config the model refuses", lambda n, d: d + b"\n[ha]\nacl_default = sometimes\n"
     if n == "denali.conf" else d, True, "not a valid config"),
    ("no config", lambda n, d: None if n == "denali.conf" else d, True, "has no denali.conf"),
    ("a path", lambda n, d: d, None, "only plain file names"),
    ("a bad root.passwd", lambda n, d: b"root:x:0\n" if n == "root.passwd" else d, True,
     "not one crypt"),
]


@pytest.mark.parametrize("what, change, reindex, words", BAD, ids=[b[0] for b in BAD])
def test_a_bad_backup_is_refused_and_nothing_changes(etc, tmp_path, what, change, reindex, words):
    d, conf = etc
    out = str(tmp_path / "b.tar")
    assert hc(conf, "backup", "-o", out).exit_code == 0
    if reindex is None:  # a member that would land outside /etc/denali
        with tarfile.open(out, "a") as tar:
            info = tarfile.TarInfo("../escape")
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    else:
        _rewrite(out, change)
        if reindex:
            _reindex(out)
    before = contents(d)
    r = hc(conf, "restore", out)
    assert r.exit_code == 2, r.stdout
    said = " ".join(r.stderr.split())  # haconf wraps at 79 columns
    assert "restore refused, nothing changed" in said and words in said, r.stderr
    assert contents(d) == before
    assert not (tmp_path / "escape").exists()


def test_not_a_backup_is_refused(etc, tmp_path):
    d, conf = etc
    junk = tmp_path / "junk"
    junk.write_bytes(b"\0" * 3000 + b"hello")
    r = hc(conf, "restore", str(junk))
    assert r.exit_code == 2 and "restore refused" in r.stderr


def test_reset_needs_yes_then_gives_a_new_install(etc):
    d, conf = etc
    old_key = (d / "denali.conf").read_text()
    r = hc(conf, "reset")
    assert r.exit_code == 2 and "--yes" in r.stderr
    assert (d / "root.passwd").exists()
    r = hc(conf, "reset", "--yes")
    assert r.exit_code == 0, r.stderr
    assert sorted(p.name for p in d.iterdir()) == ["denali.conf"]
    assert (d / "denali.conf").read_text() != old_key  # a new key, printed once
    assert "DenaliMnHaKey" in r.stdout or "key" in r.stdout


@pytest.mark.skipif(shutil.which("mke2fs") is None or shutil.which("debugfs") is None,
                    reason="e2fsprogs (mke2fs, debugfs) not installed")
def test_factory_reformats_the_config_partition(tmp_path):
    """denali-slot factory: what rcS runs for the boot menu's factory entry."""
    part = tmp_path / "cfg.part"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-m", "0", str(part), "8M"], check=True)
    subprocess.run(["debugfs", "-w", "-R", "write /etc/hostname denali.conf", str(part)],
                   check=True, capture_output=True)
    assert "denali.conf" in subprocess.run(["debugfs", "-R", "ls /", str(part)],
                                           capture_output=True, text=True).stdout
    r = subprocess.run(["sh", os.path.join(REPO, "firmware", "denali-slot"), "factory", str(part)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    listing = subprocess.run(["debugfs", "-R", "ls /", str(part)], capture_output=True, text=True).stdout
    assert "denali.conf" not in listing and "lost+found" in listing
    label = subprocess.run(["e2label", str(part)], capture_output=True, text=True).stdout.strip()
    assert label == "DENALICFG"
