"""Files holding secrets are 0600 in 0700 directories, from the moment they exist.

denali.conf holds RFC 4285 keys ([auth]) and WPA keys ([radio]); its staged,
previous and rollback copies hold the same or older ones; a hostapd.conf holds
the passphrase. Every write path is run here on real files, under a permissive
umask (0), so the modes cannot come from the umask: they are the code's.
"""

import os
import stat
import tempfile

import pytest
from click.testing import CliRunner

from ha.config import atomic
from ha.haconf import cli as haconf
from ha.haconf import staging

DATA = os.path.join(os.path.dirname(__file__), "..", "data")
HEX = "00112233445566778899aabbccddeeff"


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def births(monkeypatch):
    """Permissive umask, and the mode every temporary file had when it was created."""
    seen = []
    real = tempfile.mkstemp

    def mkstemp(*a, **kw):
        fd, name = real(*a, **kw)
        seen.append((name, stat.S_IMODE(os.fstat(fd).st_mode)))
        return fd, name

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    old = os.umask(0)
    yield seen
    os.umask(old)


def run(conf, *args):
    r = CliRunner().invoke(haconf.cli, ["--config", conf, *args])
    assert r.exit_code == 0, (r.stdout, r.stderr, r.exception)
    return r


def private(paths, births):
    for p in paths:
        assert mode(p) == 0o600, (p, oct(mode(p)))
    for name, born in births:
        assert born == 0o600, (name, oct(born))  # never wider, not even for a moment


def test_set_commit_revert_keep_every_copy_private(tmp_path, births):
    etc = tmp_path / "etc" / "denali"  # not there yet: haconf makes it, 0700
    conf = str(etc / "denali.conf")
    run(conf, "set", "radio.wlan0.key", "correct horse battery")
    assert mode(etc) == 0o700
    private([conf + ".staged"], births)
    run(conf, "commit")
    private([conf, conf + ".prev"], births)
    run(conf, "set", "auth.2001:db8::beef.spi", "256", "auth.2001:db8::beef.key", HEX)
    run(conf, "commit")  # replaces an existing denali.conf and .prev
    private([conf, conf + ".prev"], births)
    run(conf, "set", "ha.dad", "off")  # no secret in the edit: still 0600
    private([conf + ".staged"], births)
    run(conf, "revert")
    assert not os.path.exists(conf + ".staged")
    assert sorted(os.listdir(etc)) == ["denali.conf", "denali.conf.prev"]
    private([conf, conf + ".prev"], births)


def test_import_writes_the_staged_file_private(tmp_path, births):
    conf = str(tmp_path / "d" / "denali.conf")
    run(conf, "import", os.path.join(DATA, "mip6d.ha.conf"), os.path.join(DATA, "radvd.seed.conf"))
    assert mode(tmp_path / "d") == 0o700
    private([conf + ".staged"], births)
    run(conf, "commit")
    private([conf, conf + ".prev"], births)


def test_apply_confirm_rollback_files_are_private(tmp_path, births):
    # the apply --confirm write path without a daemon: what cli.apply calls around "reload"
    conf = str(tmp_path / "denali.conf")
    run(conf, "set", "radio.wlan0.key", "correct horse battery")
    run(conf, "commit")
    run(conf, "set", "radio.wlan0.channel", "6")
    run(conf, "commit")
    paths = staging.Paths(conf)
    staging.prepare_rollback(paths)
    staging.arm_rollback(paths, "t0k3n", 1)
    private([paths.rollback, paths.confirm], births)
    assert staging.fire_rollback(paths, "t0k3n")
    private([conf, paths.prev], births)
    assert "channel = 6" not in open(conf).read()


def test_hostapd_config_with_a_passphrase_is_private(tmp_path, births):
    from ha.wireless.hostapd import RadioSpec, hostapd_config, write_config

    spec = RadioSpec("wlan0", "home", 3, role="home", key="correct horse battery")
    text = hostapd_config(spec, str(tmp_path / "run" / "ctrl"))
    assert "wpa_passphrase=correct horse battery" in text
    path = str(tmp_path / "run" / "hostapd" / "wlan0.conf")
    write_config(path, text)
    assert mode(tmp_path / "run" / "hostapd") == 0o700
    private([path], births)
    with open(path, "w") as f:  # a world-readable leftover is replaced, not reused
        f.write("old\n")
    os.chmod(path, 0o644)
    write_config(path, text)
    private([path], births)
    assert open(path).read() == text


def test_atomic_write_default_is_private_and_wider_modes_are_asked_for(tmp_path, births):
    p = tmp_path / "f"
    atomic.atomic_write(p, "x")
    assert mode(p) == 0o600
    atomic.atomic_write(p, "y", mode=0o644)  # a pid file, say
    assert mode(p) == 0o644 and p.read_text() == "y"
    assert all(born == 0o600 for _, born in births)


def test_private_dir_leaves_a_shared_directory_alone(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    atomic.private_dir(shared)
    assert mode(shared) == 0o1777
    assert mode(atomic.private_dir(shared / "a" / "b")) == 0o700
    assert mode(shared / "a") == 0o700
