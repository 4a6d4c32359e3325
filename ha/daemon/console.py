"""The daemon's virtual terminal, as mip6d's on TCP port 7777, loopback only.

A person telnets in and gets a `denali> ` prompt; a program (haconf) sends a
line and reads the reply up to a line holding a single "." (the protocol is
written down in ha/daemon/console_client.py). Every reply ends with the "." line;
the prompt is only shown to a session that waits before typing.

Commands are registered by the daemon's components: a handler takes the
argument list and returns the reply text (or raises ConsoleError).

Who may change what. Any local user can reach loopback TCP, and TCP says
nothing about who is calling, so there the console is read-only: commands
that change state (`bc add`, `bc del`, `reload`, or any registered with
changes=True) are refused with a pointer to the other door. That door is a
Unix socket (console_client.socket_path: /run/denali/console.sock, the
directory 0700 and the socket 0600, under DENALI_STATE_DIR when set), where
SO_PEERCRED gives the caller's uid and only uid 0 may change things.

Bounds: at most MAX_SESSIONS sessions per door at once (a further one is told
so and closed), and a line longer than LINE_MAX bytes closes its session with
a message; other sessions go on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
from ipaddress import IPv6Address
from collections.abc import Callable

log = logging.getLogger("denali.console")

LOOPBACK = ("127.0.0.1", "::1")
PROMPT = b"denali> "
END = "."
LINE_MAX = 4096  # bytes in one command line
MAX_SESSIONS = 8  # at once, per door (TCP, Unix socket)
# commands that change the daemon's state, whoever registers them
WRITE_COMMANDS = frozenset({"bc add", "bc del", "reload"})


class ConsoleError(Exception):
    """A command the console could not run: the message goes to the user."""


Handler = Callable[[list[str]], "str | asyncio.Future"]


def peer_uid(sock) -> int | None:
    """The uid of a Unix socket's peer, from SO_PEERCRED (struct ucred: pid, uid, gid)."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (OSError, AttributeError):
        return None
    return struct.unpack("3i", raw)[1]


class Console:
    def __init__(self, port: int = 7777, unix_path: str | None = None,
                 max_sessions: int = MAX_SESSIONS, line_max: int = LINE_MAX):
        self.port = port
        self.unix_path = unix_path  # None: console_client.socket_path(port) at start
        self.max_sessions = max_sessions
        self.line_max = line_max
        self._commands: dict[str, tuple[Handler, str]] = {}
        self._changes: set[str] = set()
        self._servers: list[asyncio.base_events.Server] = []
        self._unix_inode: tuple[int, int] | None = None
        self._sessions = {"tcp": 0, "unix": 0}
        self.register("help", self._help, "list the commands")

    def register(self, name: str, handler: Handler, summary: str,
                 changes: bool | None = None) -> None:
        """Add a command; *changes* (default: the name is in WRITE_COMMANDS) makes it root-only."""
        self._commands[name] = (handler, summary)
        if changes if changes is not None else name in WRITE_COMMANDS:
            self._changes.add(name)
        else:
            self._changes.discard(name)

    def _help(self, args: list[str]) -> str:
        width = max(len(n) for n in self._commands)
        lines = [f"{n:<{width}}  {s}" + (" (root, console socket)" if n in self._changes else "")
                 for n, (_, s) in sorted(self._commands.items())]
        lines.append(f"{'quit':<{width}}  close this session")
        return "\n".join(lines)

    async def start(self) -> None:
        for host in LOOPBACK:
            try:
                server = await asyncio.start_server(self._tcp_session, host, self.port,
                                                    reuse_address=True, limit=self.line_max)
            except OSError as e:
                # ::1 is missing when IPv6 is off on lo; one loopback is enough
                if host == "::1" and self._servers:
                    log.debug("console: not listening on [::1]:%d: %s", self.port, e)
                    continue
                raise
            self._servers.append(server)
        log.info("console listening on localhost port %d", self.port)
        await self._start_unix()

    async def _start_unix(self) -> None:
        """The root door; without it the console still serves, read-only."""
        from ha.config.atomic import private_dir
        from ha.daemon.console_client import socket_path
        path = self.unix_path = self.unix_path or socket_path(self.port)
        try:
            private_dir(os.path.dirname(path))
            if not self._clear_stale(path):
                return
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                old = os.umask(0o177)  # born 0600: no moment where others may connect
                try:
                    sock.bind(path)
                finally:
                    os.umask(old)
                st = os.stat(path)
                self._unix_inode = (st.st_dev, st.st_ino)
                server = await asyncio.start_unix_server(self._unix_session, sock=sock,
                                                         limit=self.line_max)
            except BaseException:
                sock.close()
                raise
        except OSError as e:
            log.error("console: no socket at %s (%s): changes through the console are "
                      "not possible", path, e)
            return
        self._servers.append(server)
        log.info("console listening on %s (changes: root only)", path)

    @staticmethod
    def _clear_stale(path: str) -> bool:
        """Remove a dead daemon's socket; False when a live one (or not a socket) is there."""
        import stat
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return True
        if not stat.S_ISSOCK(st.st_mode):
            log.error("console: %s is not a socket, left alone: changes through the console "
                      "are not possible", path)
            return False
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            os.unlink(path)  # what a killed daemon left
            return True
        except OSError:
            pass
        finally:
            probe.close()
        log.warning("console: %s belongs to another running denalid: this one takes changes "
                    "on no socket", path)
        return False

    async def stop(self) -> None:
        for s in self._servers:
            s.close()
        for s in self._servers:
            await s.wait_closed()
        self._servers.clear()
        if self._unix_inode is not None:
            try:  # only ours: another daemon may have taken the path since
                st = os.stat(self.unix_path)
                if (st.st_dev, st.st_ino) == self._unix_inode:
                    os.unlink(self.unix_path)
            except OSError:
                pass
            self._unix_inode = None

    def _entry(self, words: list[str]):
        """(registered name, handler, arguments) of a command line, or None."""
        # `bc add ...` is registered as "bc add" so sub-commands can differ in handler
        if len(words) > 1 and f"{words[0]} {words[1]}" in self._commands:
            name = f"{words[0]} {words[1]}"
            return name, self._commands[name][0], words[2:]
        if words[0] in self._commands:
            return words[0], self._commands[words[0]][0], words[1:]
        return None

    async def run_command(self, line: str, uid: int | None = 0, door: str = "unix") -> str:
        """Run one command line and return its reply text.

        *door* is where it came from ("tcp" or "unix") and *uid* the caller's
        on the Unix socket; the daemon's own calls (and the tests') pass none.
        """
        words = line.split()
        if not words:
            return ""
        entry = self._entry(words)
        if entry is None:
            return f"unknown command '{words[0]}': type help"
        name, handler, args = entry
        if name in self._changes:
            refusal = self._refusal(name, uid, door)
            if refusal:
                log.info("console: %s refused (%s)", name,
                         "TCP" if door == "tcp" else f"uid {uid}")
                return refusal
        try:
            result = handler(args)
            if asyncio.iscoroutine(result):
                result = await result
            return result
        except ConsoleError as e:
            return f"error: {e}"
        except Exception:  # a bug in a handler must not take the daemon down
            log.exception("console command %r failed", line)
            return "error: internal error, see the daemon log"

    def _refusal(self, name: str, uid: int | None, door: str) -> str | None:
        from ha.daemon.console_client import socket_path
        where = self.unix_path or socket_path(self.port)
        if door == "tcp":
            return (f"error: {name}: changes need the console socket as root: haconf and "
                    f"the console client use {where} when run as root; TCP port "
                    f"{self.port} is read-only")
        if uid != 0:
            return (f"error: {name}: changes need root (this session is uid "
                    f"{'unknown' if uid is None else uid})")
        return None

    async def _tcp_session(self, reader, writer) -> None:
        await self._session(reader, writer, "tcp", None)

    async def _unix_session(self, reader, writer) -> None:
        await self._session(reader, writer, "unix", peer_uid(writer.get_extra_info("socket")))

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       door: str, uid: int | None) -> None:
        # A program (haconf) sends its line at once and wants no prompt; a
        # person on telnet waits, so the prompt appears after a short pause.
        peer = writer.get_extra_info("peername") if door == "tcp" else f"uid {uid}"
        if self._sessions[door] >= self.max_sessions:
            log.warning("console: session from %s refused: %d open", peer, self._sessions[door])
            try:
                writer.write(f"error: too many console sessions ({self.max_sessions} open): "
                             f"try again later\n{END}\n".encode())
                await writer.drain()
            except ConnectionError:
                pass
            writer.close()
            return
        self._sessions[door] += 1
        interactive = False
        try:
            while True:
                try:
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
                except ValueError:  # the stream's limit: a line over line_max bytes
                    log.warning("console: line over %d bytes from %s: session closed",
                                self.line_max, peer)
                    writer.write(f"error: line over {self.line_max} bytes: session closed\n"
                                 f"{END}\n".encode())
                    await writer.drain()
                    break
                if not raw:
                    break
                line = raw.decode("utf-8", "replace").strip()
                if line in ("quit", "exit"):
                    break
                reply = await self.run_command(line, uid, door)
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
            self._sessions[door] -= 1
            log.debug("console session from %s closed", peer)
            writer.close()


def mip6d_address(a) -> str:
    """Addresses as mip6d prints them: eight groups, no zero compression."""
    p = IPv6Address(a).packed
    return ":".join(f"{(p[i] << 8) | p[i + 1]:x}" for i in range(0, 16, 2))
