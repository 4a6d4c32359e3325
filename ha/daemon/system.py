"""The appliance's clock and log ([system]): an NTP client and remote syslog.

  - ntp_servers: OpenNTPD's `ntpd` (Debian's openntpd: busybox-static in
    bookworm has no ntpd applet) as a supervised child in the foreground
    (-d), with a configuration written here (0600 in the state directory's
    0700 `system/`); its lines are logged under denali.system. openntpd
    chroots into its user's home, /run/openntpd on the board's tmpfs, which
    is made first.
  - syslog_host: busybox syslogd with `-R host:port -L` (to the host and to
    the local ring that `logread` reads, `-C64` as rcS starts it), in place of
    the one rcS started; unset again (or at stop), rcS's plain one is started
    back.

Nothing runs while [system] is empty, so a development machine running
denalid keeps its own clock and log.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import time

from ha.net.children import end_child

log = logging.getLogger("denali.system")

RESTART_MAX = 60.0
SYSLOGD_PIDFILE = "/var/run/syslogd.pid"   # busybox syslogd's own
LOCAL_RING = "-C64"                        # 64 KiB shared-memory ring, as rcS has it


def ntpd_conf(servers) -> str:
    """ntpd.conf(5): `servers` for a name (every address it resolves to), `server` for an address."""
    import ipaddress
    lines = ["# written by denalid from denali.conf [system] ntp_servers"]
    for s in servers:
        try:
            ipaddress.ip_address(s)
            lines.append(f"server {s}")
        except ValueError:
            lines.append(f"servers {s}")
    return "\n".join(lines) + "\n"


def ntpd_argv(conf: str) -> list[str]:
    return ["ntpd", "-d", "-f", conf]


def syslogd_argv(host_port: str | None) -> list[str]:
    """busybox syslogd in the foreground: the local ring, and the remote host when given."""
    argv = ["syslogd", "-n", LOCAL_RING]
    if host_port:
        argv += ["-L", "-R", host_port]
    return argv


class Child:
    """One supervised child: started again after 1, 2, 4 ... 60 s when it dies."""

    def __init__(self, name: str, argv: list[str]):
        self.name, self.argv = name, argv
        self.proc = None
        self._task: asyncio.Task | None = None
        self._stopping = False
        self.state = "starting"

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._supervise())

    async def _supervise(self) -> None:
        delay = 1.0
        while not self._stopping:
            started = time.monotonic()
            try:
                self.proc = await asyncio.create_subprocess_exec(
                    *self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE)
            except OSError as e:
                self.state = f"cannot run {self.argv[0]}: {e.strerror or e}"
                log.error("%s: cannot run %s: %s", self.name, self.argv[0], e.strerror or e)
                return
            self.state = f"pid {self.proc.pid}"
            log.info("%s started (pid %d): %s", self.name, self.proc.pid, " ".join(self.argv))
            async for line in self.proc.stderr:  # a few lines an hour: into our log
                text = line.decode(errors="replace").rstrip()
                if text:
                    log.info("%s: %s", self.name, text)
            await self.proc.wait()
            if self._stopping:
                break
            if time.monotonic() - started > 2 * RESTART_MAX:
                delay = 1.0  # it ran well for a while: this is a new failure, not a loop
            self.state = f"exited {self.proc.returncode}, again in {delay:g} s"
            log.error("%s exited with %s, starting it again in %g s", self.name,
                      self.proc.returncode, delay)
            await asyncio.sleep(delay)
            delay = min(RESTART_MAX, delay * 2)

    async def stop(self) -> None:
        self._stopping = True
        await end_child(self.proc, self._task, 5)


class SystemServices:
    """start() runs what [system] asks, reload(settings) the changes, stop() undoes it."""

    def __init__(self, settings):
        self.system = getattr(settings, "system", None)
        self.ntpd: Child | None = None
        self.syslogd: Child | None = None

    @property
    def state(self) -> str:
        parts = []
        if self.ntpd is not None:
            parts.append(f"ntpd {self.ntpd.state}")
        if self.syslogd is not None:
            parts.append(f"syslog to {self.system.syslog_host} ({self.syslogd.state})")
        return ", ".join(parts) or "nothing configured"

    async def start(self) -> None:
        await self._apply(None, self.system)

    async def reload(self, settings) -> None:
        old, self.system = self.system, getattr(settings, "system", None)
        await self._apply(old, self.system)

    async def stop(self) -> None:
        await self._apply(self.system, None)

    async def _apply(self, old, new) -> None:
        servers = tuple(new.ntp_servers) if new is not None else ()
        if servers != (tuple(old.ntp_servers) if old is not None else ()) or \
                (servers and self.ntpd is None):
            await self._ntp(servers)
        host = new.syslog_host if new is not None else None
        if host != (old.syslog_host if old is not None else None) or \
                (host and self.syslogd is None):
            await self._syslog(host)

    async def _ntp(self, servers) -> None:
        from ha.config.atomic import atomic_write, private_dir
        from ha.daemon.binding_store import state_dir
        if self.ntpd is not None:
            await self.ntpd.stop()
            self.ntpd = None
        if not servers:
            return
        directory = private_dir(os.path.join(state_dir(), "system"))
        conf = os.path.join(directory, "ntpd.conf")
        atomic_write(conf, ntpd_conf(servers))
        os.makedirs("/run/openntpd", mode=0o755, exist_ok=True)  # its chroot (tmpfs)
        self.ntpd = Child("ntpd", ntpd_argv(conf))
        self.ntpd.start()
        log.warning("time from %s", ", ".join(servers))

    async def _syslog(self, host) -> None:
        if self.syslogd is not None:
            await self.syslogd.stop()
            self.syslogd = None
        else:
            _stop_boot_syslogd()
        if host:
            self.syslogd = Child("syslogd", syslogd_argv(host))
            self.syslogd.start()
            log.warning("log copied to %s", host)
        else:
            # rcS's own again, detached as it starts it
            try:
                subprocess.run(["syslogd", LOCAL_RING], check=False, timeout=10)
            except (OSError, subprocess.SubprocessError) as e:
                log.error("cannot start syslogd again: %s", e)


def _stop_boot_syslogd() -> None:
    """The syslogd rcS started (its pid file), so that ours can take /dev/log."""
    try:
        with open(SYSLOGD_PIDFILE) as f:
            pid = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        with open(f"/proc/{pid}/comm") as f:
            if f.read().strip() not in ("syslogd", "busybox"):
                return  # a stale pid file naming someone else
        os.kill(pid, signal.SIGTERM)
    except (OSError, ProcessLookupError):
        pass
