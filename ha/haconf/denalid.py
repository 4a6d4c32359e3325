"""haconf's questions to the running denalid, over its console.

The console's Unix socket when it is there and haconf runs as root (changes
such as reload are served there only), loopback TCP otherwise (read-only):
ha.daemon.console_client picks.

The daemon listens on the vt_port of the config it last loaded, which a
just-committed change may have moved: each question tries the port of every
config file that might be the loaded one, in order.
"""

import os

from ha.config import model as C
from ha.haconf.errors import EXIT_FAILED, EXIT_NOT_RUNNING, HaconfError
from ha.haconf.translate import ra_check

DEFAULT_PORT = 7777


def _port_of(path):
    try:
        return C.load_config(path, ra_check).ha.vt_port
    except C.DenaliConfError:
        return DEFAULT_PORT


def ports(*paths):
    """Console ports of the existing config files, in order, no repeats."""
    out = []
    for p in paths:
        port = _port_of(p) if os.path.exists(p) else None
        if port is not None and port not in out:
            out.append(port)
    return out or [DEFAULT_PORT]


def request(line, ports):
    """The answer's lines from the first port that answers (DaemonNotRunning if none)."""
    from ha.daemon import console_client as cc
    for port in ports:
        try:
            return cc.request(line, port)
        except cc.DaemonNotRunning:
            pass
    raise cc.DaemonNotRunning(cc.DEFAULT_HOST, ports[0])


def ask(paths, line):
    """Ask the daemon running *paths*' config; HaconfError when it cannot answer."""
    from ha.daemon import console_client as cc
    try:
        return request(line, ports(paths.conf, paths.prev))
    except cc.DaemonNotRunning as e:
        raise HaconfError(str(e), EXIT_NOT_RUNNING) from None
    except OSError as e:
        raise HaconfError(f"console: {e}", EXIT_FAILED) from None


def is_error(lines):
    from ha.daemon.console_client import is_error
    return is_error(lines)
