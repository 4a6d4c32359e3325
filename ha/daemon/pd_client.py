"""The DHCPv6 prefix delegation client: Debian's dhcpcd, run and supervised.

denalid does not speak DHCPv6 itself: dhcpcd (package dhcpcd-base) is a
maintained client that does RFC 8415's retransmissions, renewals, rebinding
and its lease file. It runs as denalid's child, with a configuration written
here (prefix delegation only: `ipv6only`, `noipv6rs`, `ia_pd ... -`, so it
neither numbers the uplink nor any other interface; the uplink is [uplink]
mode's business and the cells are ours) and our own `--script`.

The channel back is the simplest that cannot lose an update: the script
(a few lines of sh, so no interpreter starts per event) writes dhcpcd's
`new_dhcp6_ia_pd*` variables to `lease.env` in the run directory (a temp file
renamed over it: a reader sees the old lease or the new, never half) and
sends denalid SIGUSR1. denalid reads the file when the signal comes and once
at start; a signal that arrives twice reads the same, newest file. The run
directory is 0700 and the files 0600 (ha/config/atomic.py).

If dhcpcd dies it is started again after 1, 2, 4 ... 60 s, the reason logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time

from ha.net.children import end_child

log = logging.getLogger("denali.uplink")

DHCPCD = "dhcpcd"
RESTART_MAX = 60.0
# what the script passes on: a lease (or its renewal), or the lease's end
LEASE_REASONS = ("BOUND6", "RENEW6", "REBIND6", "REBOOT6", "DELEGATED6")
GONE_REASONS = ("EXPIRE6", "RELEASE6")


def dhcpcd_conf(interface: str, hint: int | None) -> str:
    """dhcpcd.conf(5) asking for a delegated prefix on `interface`, nothing else."""
    want = f"1/::/{hint}" if hint else "1"
    return (
        "# written by denalid from denali.conf [uplink]: DHCPv6 prefix delegation only\n"
        "ipv6only\n"
        "# the uplink's own address is [uplink] mode's (static or slaac), not dhcpcd's\n"
        "noipv6rs\n"
        "option rapid_commit\n"
        f"interface {interface}\n"
        "# the delegated prefix goes to no interface: denalid numbers the cells\n"
        f"  ia_pd {want} -\n")


def hook_script(run_dir: str, pid: int) -> str:
    """dhcpcd's --script: the lease's variables to lease.env, then SIGUSR1 to `pid`."""
    lease = os.path.join(run_dir, "lease.env")
    return f"""#!/bin/sh
# written by denalid: dhcpcd runs this on every event; a delegation (or its
# end) is handed to denalid (pid {pid}) through {lease}
case "$reason" in
{"|".join(LEASE_REASONS)}|{"|".join(GONE_REASONS)}) ;;
*) exit 0 ;;
esac
umask 077
tmp="{lease}.$$"
# EXPIRE6/RELEASE6 carry no new_dhcp6_ia_pd*: grep finds nothing, and that is the news
{{ echo "reason=$reason"; env | grep '^new_dhcp6_ia_pd' || true; }} > "$tmp" && mv -f "$tmp" "{lease}"
kill -USR1 {pid} 2>/dev/null
exit 0
"""


def read_lease_env(path: str) -> dict | None:
    """lease.env as a dict of the script's variables, None if there is none."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    env = {}
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep:
            env[k.strip()] = v.strip().strip("'\"")
    return env


class PdClient:
    """dhcpcd as a supervised child; on_lease(env, written) for each event it reports."""

    def __init__(self, interface: str, hint: int | None, run_dir: str, on_lease):
        self.interface = interface
        self.hint = hint
        self.run_dir = run_dir
        self.on_lease = on_lease
        self.proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False
        self.state = "starting"

    @property
    def lease_path(self) -> str:
        return os.path.join(self.run_dir, "lease.env")

    def start(self) -> None:
        from ha.config.atomic import atomic_write, private_dir
        private_dir(self.run_dir)
        atomic_write(os.path.join(self.run_dir, "dhcpcd.conf"),
                     dhcpcd_conf(self.interface, self.hint))
        atomic_write(os.path.join(self.run_dir, "hook.sh"),
                     hook_script(self.run_dir, os.getpid()), mode=0o700)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, self._signalled)
        self._task = loop.create_task(self._supervise())
        if os.path.exists(self.lease_path):
            self._signalled()  # what a previous run's dhcpcd left: dhcpcd confirms it

    def _signalled(self) -> None:
        env = read_lease_env(self.lease_path)
        if env is not None:
            try:
                # the lease's lifetimes count from when the script wrote it: at a
                # restart of denalid, a lease left by the last run is that old
                self.on_lease(env, os.stat(self.lease_path).st_mtime)
            except Exception as e:  # a bad lease must not stop the uplink
                log.error("prefix delegation: cannot use the lease: %s", e)

    async def _supervise(self) -> None:
        delay = 1.0
        while not self._stopping:
            started = time.monotonic()
            argv = [DHCPCD, "-B", "-f", os.path.join(self.run_dir, "dhcpcd.conf"),
                    "--script", os.path.join(self.run_dir, "hook.sh"), "-6", self.interface]
            try:
                self.proc = await asyncio.create_subprocess_exec(
                    *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL)  # it logs to syslog itself
            except OSError as e:
                self.state = f"cannot run {DHCPCD}: {e.strerror or e}"
                log.error("prefix delegation: cannot run %s: %s", DHCPCD, e.strerror or e)
                return
            self.state = f"dhcpcd pid {self.proc.pid} on {self.interface}"
            log.info("prefix delegation: dhcpcd started on %s (pid %d)", self.interface,
                     self.proc.pid)
            await self.proc.wait()
            if self._stopping:
                break
            if time.monotonic() - started > 2 * RESTART_MAX:
                delay = 1.0
            self.state = f"dhcpcd exited {self.proc.returncode}, again in {delay:g} s"
            log.error("prefix delegation: dhcpcd exited with %s (its reason is in syslog), "
                      "starting it again in %g s", self.proc.returncode, delay)
            await asyncio.sleep(delay)
            delay = min(RESTART_MAX, delay * 2)

    async def stop(self) -> None:
        self._stopping = True
        try:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)
        except (RuntimeError, ValueError):
            pass
        # SIGTERM: dhcpcd keeps its lease for the next start (no RELEASE)
        await end_child(self.proc, self._task, 5)
        self._task = None
