"""Client side of denalid's localhost console (what haconf speaks).

Protocol, one request per connection, UTF-8, lines end in "\\n" ("\\r\\n"
accepted):

1. The client connects to 127.0.0.1:<vt_port> (ha.vt_port, default 7777).
   The daemon sends nothing first: no greeting, no prompt.
2. The client sends one line, the command: ``reload``, ``status json``,
   ``bc``, ``bc json``, ``bul``, ``bul json``, ``log``.
3. The daemon answers zero or more lines, then a line holding a single
   ``.``.  An answer line that starts with ``.`` is sent with one more ``.``
   in front (SMTP dot-stuffing), and the client removes it.  A failed
   command answers a first line starting with ``error:`` (or ``unknown
   command``); haconf then exits 1.
4. The client closes the connection.  End of stream also ends an answer.
"""

DEFAULT_HOST = "127.0.0.1"


class DaemonNotRunning(OSError):
    """Nobody answers on the console port."""

    def __init__(self, host, port):
        super().__init__(f"denalid is not running (no answer on "
                         f"{host}:{port})")
        self.host = host
        self.port = port


class ConsoleError(OSError):
    """The daemon answered, but not by the protocol (e.g. timed out)."""


def request(line, port=7777, host=DEFAULT_HOST, timeout=10.0):
    """Send one command line; return the answer's lines (without the '.')."""
    import socket
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
