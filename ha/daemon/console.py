"""The daemon's virtual terminal, as mip6d's on TCP port 7777, loopback only.

A person telnets in and gets a `denali> ` prompt; a program (haconf) sends a
line and reads the reply up to a line holding a single "." (the protocol is
written down in ha/daemon/console_client.py). Every reply ends with the "." line;
the prompt is only shown to a session that waits before typing.

Commands are registered by the daemon's components: a handler takes the
argument list and returns the reply text (or raises ConsoleError).
"""

from __future__ import annotations

import asyncio
import logging
from ipaddress import IPv6Address
from collections.abc import Callable

log = logging.getLogger("denali.console")

LOOPBACK = ("127.0.0.1", "::1")
PROMPT = b"denali> "
END = "."


class ConsoleError(Exception):
    """A command the console could not run: the message goes to the user."""


Handler = Callable[[list[str]], "str | asyncio.Future"]


class Console:
    def __init__(self, port: int = 7777):
        self.port = port
        self._commands: dict[str, tuple[Handler, str]] = {}
        self._servers: list[asyncio.base_events.Server] = []
        self.register("help", self._help, "list the commands")

    def register(self, name: str, handler: Handler, summary: str) -> None:
        self._commands[name] = (handler, summary)

    def _help(self, args: list[str]) -> str:
        width = max(len(n) for n in self._commands)
        lines = [f"{n:<{width}}  {s}" for n, (_, s) in sorted(self._commands.items())]
        lines.append(f"{'quit':<{width}}  close this session")
        return "\n".join(lines)

    async def start(self) -> None:
        for host in LOOPBACK:
            try:
                server = await asyncio.start_server(self._session, host, self.port,
                                                    reuse_address=True)
            except OSError as e:
                # ::1 is missing when IPv6 is off on lo; one loopback is enough
                if host == "::1" and self._servers:
                    log.debug("console: not listening on [::1]:%d: %s", self.port, e)
                    continue
                raise
            self._servers.append(server)
        log.info("console listening on localhost port %d", self.port)

    async def stop(self) -> None:
        for s in self._servers:
            s.close()
        for s in self._servers:
            await s.wait_closed()
        self._servers.clear()

    async def run_command(self, line: str) -> str:
        """Run one command line and return its reply text."""
        words = line.split()
        if not words:
            return ""
        entry = self._commands.get(words[0])
        # `bc add ...` is registered as "bc add" so sub-commands can differ in handler
        if len(words) > 1 and f"{words[0]} {words[1]}" in self._commands:
            entry = self._commands[f"{words[0]} {words[1]}"]
            words = words[1:]
        if entry is None:
            return f"unknown command '{words[0]}': type help"
        handler, _ = entry
        try:
            result = handler(words[1:])
            if asyncio.iscoroutine(result):
                result = await result
            return result
        except ConsoleError as e:
            return f"error: {e}"
        except Exception:  # a bug in a handler must not take the daemon down
            log.exception("console command %r failed", line)
            return "error: internal error, see the daemon log"

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A program (haconf) sends its line at once and wants no prompt; a
        # person on telnet waits, so the prompt appears after a short pause.
        peer = writer.get_extra_info("peername")
        interactive = False
        try:
            while True:
                if interactive:
                    raw = await reader.readline()
                else:
                    try:
                        raw = await asyncio.wait_for(reader.readline(), 0.3)
                    except asyncio.TimeoutError:
                        interactive = True
                        writer.write(PROMPT)
                        await writer.drain()
                        continue
                if not raw:
                    break
                line = raw.decode("utf-8", "replace").strip()
                if line in ("quit", "exit"):
                    break
                reply = await self.run_command(line)
                # dot-stuffing: a reply line starting with "." gets one more
                body = "".join(("." + ln if ln.startswith(".") else ln) + "\n"
                               for ln in reply.splitlines())
                writer.write((body + END + "\n").encode())
                if interactive:
                    writer.write(PROMPT)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            log.debug("console session from %s closed", peer)
            writer.close()


def mip6d_address(a) -> str:
    """Addresses as mip6d prints them: eight groups, no zero compression."""
    p = IPv6Address(a).packed
    return ":".join(f"{(p[i] << 8) | p[i + 1]:x}" for i in range(0, 16, 2))
