"""Client side of denalid's localhost console (what haconf speaks).

Protocol, one request per connection, UTF-8, lines end in "\\n" ("\\r\\n"
accepted):

1. The client connects to the daemon's Unix socket (socket_path(vt_port):
   /run/denali/console.sock for the default port, console-<port>.sock for
   another, under $DENALI_STATE_DIR when set) when it is there and usable,
   else to 127.0.0.1:<vt_port> (ha.vt_port, default 7777). Changes
   (``reload``, ``bc add``, ``bc del``) are served on the socket to root
   only; TCP is read-only.
   The daemon sends nothing first: no greeting, no prompt.
2. The client sends one line, the command: ``reload``, ``status json``,
   ``bc``, ``bc json``, ``bul``, ``bul json``, ``log``.  At most 4096 bytes.
3. The daemon answers zero or more lines, then a line holding a single
   ``.``.  An answer line that starts with ``.`` is sent with one more ``.``
   in front (SMTP dot-stuffing), and the client removes it.  A failed
   command answers a first line starting with ``error:`` (or ``unknown
   command``); haconf then exits 1.
4. The client closes the connection.  End of stream also ends an answer.
"""

import os

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7777
DEFAULT_STATE_DIR = "/run/denali"  # the same rule as ha.daemon.binding_store.state_dir


def socket_path(port=DEFAULT_PORT):
    """Where the daemon with console *port* listens for root's changes."""
    name = "console.sock" if port == DEFAULT_PORT else f"console-{port}.sock"
    return os.path.join(os.environ.get("DENALI_STATE_DIR") or DEFAULT_STATE_DIR, name)


class DaemonNotRunning(OSError):
    """Nobody answers on the console port."""

    def __init__(self, host, port):
        super().__init__(f"denalid is not running (no answer on "
                         f"{host}:{port})")
        self.host = host
        self.port = port


class ConsoleError(OSError):
    """The daemon answered, but not by the protocol (e.g. timed out)."""


def _same_netns(sock):
    """True when the socket's peer runs in our network namespace.

    The socket's path is shared by every namespace on this file system: in
    the lab, daemons in other namespaces may hold the name; their answers
    would be about another network.
    """
    import socket
    import struct
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid = struct.unpack("3i", raw)[0]
        theirs, ours = os.stat(f"/proc/{pid}/ns/net"), os.stat("/proc/self/ns/net")
    except OSError:
        return True  # no /proc to ask: one namespace, as on the board
    return (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino)


def _connect_unix(path, timeout):
    """A connected socket to the daemon's Unix socket, or None to use TCP instead."""
    import socket
    if not os.path.exists(path):
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError:  # not root (0600), or a dead daemon's leftover
        sock.close()
        return None
    if not _same_netns(sock):
        sock.close()
        return None
    return sock


def request(line, port=DEFAULT_PORT, host=DEFAULT_HOST, timeout=10.0, unix_path=None):
    """Send one command line; return the answer's lines (without the '.').

    *unix_path* False: TCP only; None: socket_path(port) when it is usable.
    """
    import socket
    sock = None
    if unix_path is not False:
        sock = _connect_unix(unix_path or socket_path(port), timeout)
    if sock is None:
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except (ConnectionRefusedError, ConnectionResetError):
            raise DaemonNotRunning(host, port) from None
        except OSError as e:
            if isinstance(e, TimeoutError):
                raise DaemonNotRunning(host, port) from None
            raise
    lines = []
    try:
        with sock, sock.makefile("rb") as reader:
            sock.sendall(line.encode("utf-8") + b"\n")
            for raw in reader:
                text = raw.decode("utf-8", "replace").rstrip("\r\n")
                if text == ".":
                    return lines
                if text.startswith(".."):
                    text = text[1:]
                lines.append(text)
    except TimeoutError:
        raise ConsoleError(f"denalid on {host}:{port} did not finish its "
                           f"answer to {line!r} within {timeout:g} s") from None
    except ConnectionResetError:
        pass
    return lines


def is_error(lines):
    """True when the answer reports a failure (first line "error: ...")."""
    return bool(lines) and lines[0].startswith(("error", "unknown command"))
