"""python -m radvd: radvd's command line around RAService.

    python -m radvd -C /etc/radvd.conf [-n] [-d LEVEL] [-c] [-p PIDFILE]

-C FILE        configuration file (radvd.conf syntax, or the seed's brace-less text)
-n             stay in the foreground, log to stderr (otherwise: background, syslog)
-d LEVEL       debug level: 0 info, 1-2 debug, 3+ every packet
-c             check the configuration, print the verdict, exit 0 (good) or 1 (bad)
-p PIDFILE     write the process id there (removed at exit; default in the
               background /run/denali-radvd.pid)

SIGTERM/SIGINT: final RAs (router lifetime 0), then exit 0.  SIGHUP: reload the
file; a bad new file is logged and the running configuration kept.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

DEFAULT_CONFIG = "/etc/radvd.conf"
DEFAULT_PIDFILE = "/run/denali-radvd.pid"   # not radvd's: both may be installed


def _arguments(argv):
    p = argparse.ArgumentParser(prog="python -m radvd",
                                description="denali's router advertisement sender")
    p.add_argument("-C", "--config", default=DEFAULT_CONFIG, metavar="FILE")
    p.add_argument("-n", "--nodaemon", action="store_true", help="stay in the foreground")
    p.add_argument("-d", "--debug", type=int, default=0, metavar="LEVEL")
    p.add_argument("-c", "--configtest", action="store_true")
    p.add_argument("-p", "--pidfile", default=None, metavar="PIDFILE")
    p.add_argument("-m", "--logmethod", choices=("stderr", "syslog", "none"), default=None)
    return p.parse_args(argv)


def _setup_logging(level: int, method: str) -> None:
    from ha.daemon.process import radvd_level, setup_logging
    # radvd's own stderr style: "[Nov 27 10:37:35] radvd (19642): message"
    setup_logging(radvd_level(level), method, logger="denali.radvd",
                  stderr_format="[%(asctime)s] radvd (%(process)d): %(message)s",
                  date_format="%b %d %H:%M:%S",
                  syslog_format="radvd[%(process)d]: %(message)s")


async def _serve(args, config) -> int:
    import asyncio
    import signal
    from radvd.config import ConfigError, load
    from radvd.service import RAService

    log = logging.getLogger("denali.radvd")
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    service = RAService(config)

    def reload() -> None:
        async def run():
            try:
                new = load(args.config)
            except ConfigError as e:
                log.error("reload failed, keeping the running configuration: %s", e)
                return
            await service.reload(new)
        loop.create_task(run())

    loop.add_signal_handler(signal.SIGTERM, done.set)
    loop.add_signal_handler(signal.SIGINT, done.set)
    loop.add_signal_handler(signal.SIGHUP, reload)
    log.info("version denali %s started", _version())
    await service.start()
    await done.wait()
    log.info("exiting, sending final advertisements")
    await service.stop()
    t = service.stats()["total"]
    log.info("sent %d RAs, received %d RSs (%d malformed)", t["ras_sent"], t["rs_received"],
             t["rs_dropped_malformed"])
    return 0


def _version() -> str:
    return "0.1.0"


def main(argv=None) -> int:
    args = _arguments(sys.argv[1:] if argv is None else argv)
    from radvd.config import ConfigError, load
    try:
        config = load(args.config)
    except ConfigError as e:
        print(f"radvd: {e}", file=sys.stderr)
        return 1
    if args.configtest:
        print(f"config file, {args.config}, syntax ok", file=sys.stderr)
        return 0
    foreground = args.nodaemon
    _setup_logging(args.debug, args.logmethod or ("stderr" if foreground else "syslog"))
    if not foreground:
        from ha.daemon.process import detach
        detach()
    pidfile = args.pidfile or (None if foreground else DEFAULT_PIDFILE)
    if pidfile:
        try:
            with open(pidfile, "w") as f:
                f.write(f"{os.getpid()}\n")
        except OSError as e:
            logging.getLogger("denali.radvd").error("cannot write pidfile %s: %s", pidfile,
                                                    e.strerror)
            return 1
    import asyncio
    try:
        return asyncio.run(_serve(args, config))
    finally:
        if pidfile:
            try:
                os.unlink(pidfile)
            except OSError:
                pass


if __name__ == "__main__":
    sys.exit(main())
