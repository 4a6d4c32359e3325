"""denalid: one asyncio process for every service of the appliance.

    denalid -c FILE [-C RADVD_CONF] [-d LEVEL] [--vt-port 7777]

FILE is either the project's own config (configobj, /etc/denali/denali.conf)
or a MIPL/UMIP mip6d.conf read as-is. With -d above 0 the daemon stays in
the foreground and logs to stderr, as `mip6d -d 7` does; otherwise it
detaches and logs to syslog. SIGTERM stops it cleanly (every binding torn
down, nothing left in the kernel); SIGHUP reloads the configuration.

Each service is a component with start(), reload(config) and stop(); this
module wires them and owns the event loop. Imports are deferred to the
functions that need them so that start-up loads only what runs.
"""

from __future__ import annotations

import time

STARTED = time.monotonic()  # CLOCK_MONOTONIC: seconds since boot (the boot figures)

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from ha.daemon import process

log = logging.getLogger("denali")

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="denalid", description="denali home agent daemon")
    p.add_argument("-c", dest="config", default=os.environ.get("DENALI_CONF",
                                                                "/etc/denali/denali.conf"),
                   help="denali.conf or mip6d.conf (default %(default)s)")
    p.add_argument("-C", dest="radvd_conf", help="radvd.conf for the built-in RA sender")
    p.add_argument("-d", dest="debug", type=int, default=None,
                   help="debug level; above 0 stays in the foreground logging to stderr")
    p.add_argument("--vt-port", type=int, default=None, help="console port on loopback")
    p.add_argument("-n", "--foreground", action="store_true",
                   help="stay in the foreground even at debug level 0")
    p.add_argument("-p", "--pidfile", default=None, help="write the pid here")
    p.add_argument("--backend", choices=("auto", "kernel", "user"), default="auto",
                   help="datapath backend (default: chosen by what the kernel offers)")
    p.add_argument("--no-firewall", action="store_true",
                   help="do not install the Mobility Header drop rule (the kernel has MIP6)")
    return p.parse_args(argv)


def setup_logging(level: int, foreground: bool) -> None:
    """The root logger at mip6d's -d `level`: stderr in the foreground, else syslog."""
    process.setup_logging(process.mip6d_level(level), "stderr" if foreground else "syslog",
                          # milliseconds: a handover is judged in them (bench/bench_handover.py)
                          stderr_format="%(asctime)s.%(msecs)03d %(name)s: %(message)s",
                          date_format="%H:%M:%S",
                          syslog_format="denalid[%(process)d]: %(name)s: %(message)s")
    # pyroute2 (the wireless manager's nl80211) logs every message at debug:
    # at -d 7 it would bury mip6d's own lines
    logging.getLogger("pyroute2").setLevel(logging.WARNING)
    from ha.daemon.logbuffer import RecentLog
    logging.getLogger().addHandler(RecentLog.install())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from ha.daemon.settings import SettingsError, load_settings
    try:
        settings = load_settings(args.config, radvd_conf=args.radvd_conf)
    except SettingsError as e:
        print(f"denalid: {e}", file=sys.stderr)
        return 2
    level = args.debug if args.debug is not None else settings.debug_level
    if args.vt_port is not None:
        settings.vt_port = args.vt_port
    foreground = level > 0 or args.foreground
    if not foreground:
        process.detach()
    setup_logging(level, foreground)
    for warning in settings.warnings:  # e.g. home addresses without an RFC 4285 key
        log.warning("%s", warning)
    if args.pidfile:
        from ha.config.atomic import atomic_write
        # no secret in a pid: 0644, so init scripts and tools run as other users can read it
        atomic_write(args.pidfile, f"{os.getpid()}\n", mode=0o644)
    # until the event loop takes the signals over, SIGTERM ends start-up at once
    # (imports alone take seconds on the board)
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    import asyncio
    from ha.daemon.service import Daemon
    daemon = Daemon(settings, args)
    try:
        return asyncio.run(daemon.run())
    except KeyboardInterrupt:
        return 0
    finally:
        if args.pidfile:
            try:
                os.unlink(args.pidfile)
            except OSError:
                pass


if __name__ == "__main__":
    sys.exit(main())
