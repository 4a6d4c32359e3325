"""The console's two doors and its bounds, on real sockets (loopback TCP, a Unix socket).

Changes (bc add, bc del, reload) are served on the Unix socket to uid 0 only,
which SO_PEERCRED tells; TCP is read-only. The unprivileged caller is a real
process running as uid 65534 (subprocess's setuid in the forked child).
"""

import asyncio
import os
import shutil
import socket
import stat
import tempfile
import threading
import time

import pytest

from ha.daemon import console_client as cc
from ha.daemon.console import LINE_MAX, Console

NOBODY = 65534


def nobody_session(path, lines):
    """In a forked child that has become uid 65534: the answers to *lines* on *path*."""
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
    except OSError as e:
        return f"connect: {type(e).__name__}"
    out = []
    with s, s.makefile("rb") as f:
        for line in lines:
            s.sendall(line.encode() + b"\n")
            for raw in f:
                if raw == b".\n":
                    break
                out.append(raw.decode().rstrip("\n"))
    return "\n".join(out)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Running:
    """A Console on its own event loop in a thread, with commands that record their calls."""

    def __init__(self, unix_path, **kw):
        self.port = free_port()
        self.calls = []
        self.console = Console(self.port, unix_path=unix_path, **kw)
        self.console.register("bc", lambda a: "hoa 2001:db8::beef status registered", "cache")
        self.console.register("bc add", lambda a: self.calls.append(("add", a)) or "ok added",
                              "add")
        self.console.register("bc del", lambda a: self.calls.append(("del", a)) or "ok", "del")
        self.console.register("reload", lambda a: self.calls.append(("reload",)) or "reloaded",
                              "reload")
        self.loop = asyncio.new_event_loop()
        started = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.console.start())
            started.set()
            self.loop.run_forever()
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert started.wait(10)

    def stop(self):
        asyncio.run_coroutine_threadsafe(self.console.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def tcp(self, line):
        return cc.request(line, self.port, unix_path=False)

    def unix(self, line):
        return cc.request(line, self.port, unix_path=self.console.unix_path)


@pytest.fixture
def base():
    # under /tmp, opened to everyone so that uid 65534 can walk to the socket's directory
    d = tempfile.mkdtemp(prefix="denali-console-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def con(base):
    r = Running(os.path.join(base, "run", "console.sock"))
    yield r
    r.stop()


def as_nobody(path, *lines):
    if os.geteuid() != 0:
        pytest.skip("needs root to run a child as uid 65534")
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to nobody, talk, report through the pipe, never return
        code = 1
        try:
            os.close(rfd)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.write(wfd, nobody_session(path, lines).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as f:
        out = f.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return out


def test_socket_and_directory_are_born_private(con, base):
    path = con.console.unix_path
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="the root door is tested as root")
def test_root_on_the_socket_may_change(con):
    assert con.unix("bc add hoa 2001:db8::20 coa 2001:db8:1::2 lifetime 60") == ["ok added"]
    assert con.unix("bc del hoa 2001:db8::20") == ["ok"]
    assert con.unix("reload") == ["reloaded"]
    assert con.calls == [("add", ["hoa", "2001:db8::20", "coa", "2001:db8:1::2", "lifetime",
                                  "60"]), ("del", ["hoa", "2001:db8::20"]), ("reload",)]
    assert "reload" in "\n".join(con.unix("help")) and "root" in "\n".join(con.unix("help"))


def test_tcp_reads_but_does_not_change(con):
    assert con.tcp("bc") == ["hoa 2001:db8::beef status registered"]
    for line in ("reload", "bc add hoa 2001:db8::20 coa 2001:db8:1::2 lifetime 60",
                 "bc del hoa 2001:db8::20"):
        out = con.tcp(line)
        name = " ".join(line.split()[:2]) if line.startswith("bc") else "reload"
        assert out[0].startswith(f"error: {name}: changes need the console socket as root: "
                                 "haconf"), out
        assert con.console.unix_path in out[0] and cc.is_error(out)
    assert con.calls == []


def test_another_uid_is_refused_by_mode_then_by_its_credentials(con, base):
    path = con.console.unix_path
    assert as_nobody(path, "bc").strip() == "connect: PermissionError"  # directory 0700
    os.chmod(os.path.dirname(path), 0o755)
    assert as_nobody(path, "bc").strip() == "connect: PermissionError"  # socket 0600
    os.chmod(path, 0o666)  # both loosened by hand: SO_PEERCRED still holds
    out = as_nobody(path, "bc", "bc add hoa 2001:db8::20 coa 2001:db8:1::2 lifetime 60",
                    "reload").splitlines()
    assert out == ["hoa 2001:db8::beef status registered",
                   f"error: bc add: changes need root (this session is uid {NOBODY})",
                   f"error: reload: changes need root (this session is uid {NOBODY})"]
    assert con.calls == []


def test_client_prefers_the_socket_and_falls_back_to_tcp(con, monkeypatch):
    monkeypatch.setenv("DENALI_STATE_DIR", os.path.dirname(con.console.unix_path))
    assert cc.socket_path(con.port) == os.path.join(os.path.dirname(con.console.unix_path),
                                                    f"console-{con.port}.sock")
    assert cc.socket_path(7777).endswith("/console.sock")
    # the daemon's path as the client would compute it: a link stands in for the name
    os.symlink(con.console.unix_path, cc.socket_path(con.port))
    if os.geteuid() == 0:
        assert cc.request("reload", con.port) == ["reloaded"]
    os.unlink(cc.socket_path(con.port))
    assert cc.is_error(cc.request("reload", con.port))  # no socket: TCP, read-only
    assert cc.request("bc", con.port) == ["hoa 2001:db8::beef status registered"]


def test_sessions_are_bounded_per_door(base):
    r = Running(os.path.join(base, "run", "console.sock"), max_sessions=3)
    held = []
    try:
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", r.port), timeout=5)
            s.sendall(b"bc\n")
            assert s.recv(4096).endswith(b".\n")  # served, and kept open
            held.append(s)
        extra = socket.create_connection(("127.0.0.1", r.port), timeout=5)
        got = extra.makefile("rb").read()  # the daemon says why and closes
        assert got == b"error: too many console sessions (3 open): try again later\n.\n"
        extra.close()
        if os.geteuid() == 0:  # the other door is not blocked by the full one
            assert r.unix("reload") == ["reloaded"]
        assert held[0].sendall(b"bc\n") is None and held[0].recv(4096).endswith(b".\n")
        held.pop().close()
        deadline = time.monotonic() + 5
        while r.console._sessions["tcp"] >= 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert r.tcp("bc") == ["hoa 2001:db8::beef status registered"]
    finally:
        for s in held:
            s.close()
        r.stop()


def test_a_line_over_the_limit_closes_only_its_session(con):
    other = socket.create_connection(("127.0.0.1", con.port), timeout=5)
    bad = socket.create_connection(("127.0.0.1", con.port), timeout=5)
    try:
        bad.sendall(b"bc " + b"x" * LINE_MAX + b"\n")
        assert bad.makefile("rb").read() == \
            f"error: line over {LINE_MAX} bytes: session closed\n.\n".encode()
        other.sendall(b"bc\n")
        assert other.recv(4096) == b"hoa 2001:db8::beef status registered\n.\n"
        ok = b"bc " + b" " * (LINE_MAX - 4)  # a line of exactly LINE_MAX bytes is served
        assert cc.request(ok.decode(), con.port, unix_path=False) == \
            ["hoa 2001:db8::beef status registered"]
    finally:
        other.close()
        bad.close()


def test_a_dead_daemons_socket_is_replaced_a_live_ones_is_not(base):
    path = os.path.join(base, "s", "console.sock")
    os.makedirs(os.path.dirname(path), mode=0o700)
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(path)
    dead.close()  # what kill -9 leaves
    first = Running(path)
    try:
        assert first.console._unix_inode is not None
        second = Running(path)  # another daemon on the same path (other namespace, say)
        assert second.console._unix_inode is None
        second.stop()
        assert os.path.exists(path)  # the second did not remove the first one's socket
        if os.geteuid() == 0:
            assert first.unix("reload") == ["reloaded"]
    finally:
        first.stop()
    assert not os.path.exists(path)
