"""The process around a daemon: where its log goes, and leaving the terminal.

One copy for denalid (ha.daemon.main) and the stand-alone RA sender
(python -m radvd): syslog when detached, stderr in the foreground, each with
its own line format and its own -d scale (mip6d's for denalid, radvd's for
the RA sender). Only logging and os are imported: this runs before the
daemon's real imports, and the board has 64 MB.
"""

from __future__ import annotations

import logging
import os
import sys

TRACE = 5                      # below DEBUG: every packet (radvd's `-d 3` and up)


def mip6d_level(debug: int) -> int:
    """mip6d's -d scale: 0 quiet (warnings only), 1..3 informational, 4 and up debug."""
    return logging.WARNING if debug <= 0 else logging.INFO if debug < 4 else logging.DEBUG


def radvd_level(debug: int) -> int:
    """radvd's -d scale: 0 informational, 1..2 debug, 3 and up every packet."""
    logging.addLevelName(TRACE, "TRACE")
    return logging.INFO if debug <= 0 else logging.DEBUG if debug < 3 else TRACE


def setup_logging(level: int, method: str, *, logger: str = "",
                  stderr_format: str, date_format: str | None = None,
                  syslog_format: str) -> logging.Logger:
    """Send `logger` (the root if empty) to "stderr", "syslog" or "none" at `level`.

    A named logger stops propagating, so its lines are written once, in its
    own format, whatever the root does.
    """
    if method not in ("stderr", "syslog", "none"):
        raise ValueError(f"log method {method!r}: stderr, syslog or none")
    target = logging.getLogger(logger)
    target.setLevel(level)
    if logger:
        target.propagate = False
    h: logging.Handler
    if method == "none":
        h = logging.NullHandler()
    elif method == "syslog":
        from logging.handlers import SysLogHandler
        try:
            h = SysLogHandler(address="/dev/log", facility=SysLogHandler.LOG_DAEMON)
        except OSError:
            h = logging.NullHandler()       # no syslogd (a bare initramfs): stay quiet, run on
        h.setFormatter(logging.Formatter(syslog_format))
    else:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter(stderr_format, date_format))
    target.addHandler(h)
    return target


def detach() -> None:
    """Classic double fork: leave the terminal and the session, stdio on /dev/null.

    The first child's setsid() drops the controlling terminal; the second fork
    makes sure the daemon, no longer a session leader, can never reacquire one.
    """
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    fd = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(fd, std)
    if fd > 2:
        os.close(fd)
