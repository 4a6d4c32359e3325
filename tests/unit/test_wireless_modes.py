"""The wireless manager's runtime directory and hostapd configs are private.

A hostapd.conf may carry the WPA passphrase: the manager makes its runtime
directory (/run/denali/hostapd on the board) 0700 and writes each config
0600, also when the directory's parents are missing. The stand-in hostapd
and the manager are test_wireless.py's (a shell script; no radio needed).
"""

import asyncio
import os
import stat
import sys

sys.path.insert(0, os.path.dirname(__file__))
from test_wireless import A, manager, until  # noqa: E402


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_runtime_dir_is_0700_and_configs_0600(tmp_path):
    old = os.umask(0o022)  # a usual umask: without private_dir the dir would be 0755
    try:
        wm, _ = manager(tmp_path, ["dnlt0"], radios=[A])
        wm.runtime_dir = str(tmp_path / "run" / "denali" / "hostapd")
        wm.ctrl_dir = os.path.join(wm.runtime_dir, "ctrl")

        async def main():
            await wm.start()
            ok = await until(lambda: (tmp_path / "started").exists())
            await wm.stop()
            return ok
        assert asyncio.run(main())
    finally:
        os.umask(old)
    assert _mode(tmp_path / "run" / "denali") == 0o700
    assert _mode(wm.runtime_dir) == 0o700
    assert _mode(wm.ctrl_dir) == 0o750
    assert _mode(os.path.join(wm.runtime_dir, "dnlt0.conf")) == 0o600
    started = (tmp_path / "started").read_text()
    assert os.path.join(wm.runtime_dir, "dnlt0.conf") in started
