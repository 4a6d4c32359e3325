"""Ending the child processes denalid supervises (hostapd, dhcpcd, ntpd, syslogd).

Each supervisor owns a process and the task that restarts it. Stopping is the
same for all: the task first loses its reason to restart (the caller sets its
own stopping flag), then the process gets SIGTERM and `timeout` seconds to
leave before SIGKILL, then the task is cancelled and awaited so no restart
slips in after the stop.
"""

from __future__ import annotations

import asyncio


async def end_child(proc, task, timeout: float = 5.0) -> None:
    """SIGTERM `proc` (an asyncio subprocess, or None), SIGKILL it after `timeout`
    seconds, then cancel and await `task` (or None)."""
    if proc is not None and proc.returncode is None:
        try:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), timeout)
        except ProcessLookupError:
            pass  # it ended between the check and the signal
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
    if task is not None:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        except Exception:  # the supervisor's own failure is not the stop's
            pass
