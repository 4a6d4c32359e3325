"""denalid -p FILE: the pid file is 0644 (readable by init scripts and tools
run as other users), holds the pid while the daemon runs and is gone after.

denalid's main() runs in a child process with the Daemon replaced by a
stand-in (named so) that looks at the pid file and returns: what is tested
is main()'s own handling, not the services.
"""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = r"""
import os, stat, sys
import ha.daemon.service as service

class StandInDaemon:
    def __init__(self, settings, args):
        self.pidfile = args.pidfile
    async def run(self):
        st = os.stat(self.pidfile)
        print(oct(stat.S_IMODE(st.st_mode)), open(self.pidfile).read().strip(), os.getpid())
        return 0

service.Daemon = StandInDaemon
from ha.daemon.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_pid_file_is_0644_while_running_and_removed_after(tmp_path):
    pidfile = tmp_path / "denalid.pid"
    r = subprocess.run([sys.executable, "-c", CHILD, "-c", str(tmp_path / "denali.conf"),
                        "-n", "-p", str(pidfile)], capture_output=True, text=True,
                       cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), timeout=120)
    assert r.returncode == 0, r.stderr
    mode, written, pid = r.stdout.split()
    assert mode == "0o644"
    assert written == pid
    assert not pidfile.exists()
