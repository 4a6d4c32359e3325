"""haconf's questions to the running denalid, over its console.

The console's Unix socket when it is there and haconf runs as root (changes
such as reload are served there only), loopback TCP otherwise (read-only):
ha.daemon.console_client picks.

The daemon listens on the vt_port of the config it last loaded, which a
just-committed change may have moved: each question tries the port of every
config file that might be the loaded one, in order.
"""

import os

from ha.haconf.errors import EXIT_FAILED, EXIT_NOT_RUNNING, HaconfError

DEFAULT_PORT = 7777


def _port_of(path):
    """[ha] vt_port of a denali.conf, read by a scan of its lines.

    Loading and validating the whole file (configobj, the RA checks) only to
    find a port made `haconf status` take seconds of CPU on the board while
    denalid served; the daemon itself has validated what it loaded. A file
    without the key, or with a value that is not a port, gives the default,
    as the daemon would.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
    except OSError:
        return DEFAULT_PORT
    section = None
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if text.startswith("["):
            depth = len(text) - len(text.lstrip("["))
            name = text.strip("[]").strip()
            section = name if depth == 1 else f"{section}/{name}"
            continue
        if section != "ha" or "=" not in text:
            continue
        key, value = (x.strip() for x in text.split("=", 1))
        if key == "vt_port":
            try:
                port = int(value.strip("\"'"))
            except ValueError:
                return DEFAULT_PORT
            return port if 0 < port < 65536 else DEFAULT_PORT
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
