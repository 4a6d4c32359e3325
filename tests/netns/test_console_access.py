"""Who may change the running home agent through its console, and the console's bounds.

The seed's home agent (real denalid, real namespaces). Root on the console's
Unix socket may `bc add`; uid 65534 (a real process that dropped to it) may
not reach the socket; TCP on loopback answers `bc` but refuses `reload` and
`bc add`; the ninth TCP session is turned away while the socket still serves;
an over-long line closes only its own session.
"""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from nslib import have_netns, wait_for  # noqa: E402

from ha.lab.topology import SeedLab, run  # noqa: E402

pytestmark = pytest.mark.skipif(have_netns() is not None, reason=str(have_netns()))

SEED_HA_CONF = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "mip6d.ha.conf")
ADD = "bc add hoa 2001:db8::30 coa 2001:db8:1::230 lifetime 600"

# run inside the home agent's namespace: argv = mode, socket path, port, lines...
CLIENT = r"""
import json, os, socket, sys, time
mode, path, port, lines = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]

def talk(s, lines):
    f, out = s.makefile("rb"), []
    for line in lines:
        s.sendall(line.encode() + b"\n")
        got = []
        for raw in f:
            if raw == b".\n":
                break
            got.append(raw.decode().rstrip("\n"))
        out.append(got)
    return out

if mode == "nobody":
    os.setgroups([]); os.setgid(65534); os.setuid(65534)
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
    except OSError as e:
        print(json.dumps({"connect": type(e).__name__})); sys.exit(0)
    print(json.dumps(talk(s, lines)))
elif mode == "tcp":
    print(json.dumps(talk(socket.create_connection(("127.0.0.1", port), timeout=5), lines)))
elif mode == "crowd":
    held = []
    for _ in range(8):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        talk(s, ["bc"])  # served, then kept open
        held.append(s)
    extra = socket.create_connection(("127.0.0.1", port), timeout=5)
    turned_away = extra.makefile("rb").read().decode()
    u = socket.socket(socket.AF_UNIX); u.connect(path)
    root = talk(u, ["bc json"])
    held[0].sendall(b"bc " + b"x" * 5000 + b"\n")
    closed = held[0].makefile("rb").read().decode()
    print(json.dumps({"turned_away": turned_away, "root": root, "closed": closed,
                      "others": talk(held[1], ["bc json"])}))
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = SeedLab()
    lab.build()
    try:
        lab.start_daemon(SEED_HA_CONF, log_path=str(tmp_path_factory.mktemp("con") / "ha.log"))
        yield lab
    finally:
        lab.teardown()


def client(lab, mode, *lines):
    path = os.path.join(lab.state_dir, "console.sock")
    r = run([sys.executable, "-c", CLIENT, mode, path, str(lab.vt_port), *lines], lab.ha,
            timeout=60)
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_the_socket_is_root_only_and_root_may_change(lab):
    path = os.path.join(lab.state_dir, "console.sock")
    assert oct(os.lstat(path).st_mode & 0o777) == "0o600"
    assert oct(os.stat(lab.state_dir).st_mode & 0o777) == "0o700"
    assert client(lab, "nobody", ADD) == {"connect": "PermissionError"}
    out = lab.console(ADD)  # the lab's client, as root, on the socket
    assert "DAD" in out or "registered" in out
    wait_for(lambda: any(b["hoa"] == "2001:db8::30" for b in json.loads(lab.console("bc json"))),
             what="the binding added on the socket")
    assert "deregistered" in lab.console("bc del hoa 2001:db8::30")


def test_tcp_reads_and_refuses_changes(lab):
    bc, reload, add = client(lab, "tcp", "bc json", "reload", ADD)
    assert isinstance(json.loads(bc[0]), list)
    for got, name in ((reload, "reload"), (add, "bc add")):
        assert got[0].startswith(f"error: {name}: changes need the console socket as root: "
                                 "haconf"), got
    assert not any(b["hoa"] == "2001:db8::30" for b in json.loads(lab.console("bc json")))


def test_sessions_are_bounded_and_a_long_line_closes_only_its_own(lab):
    got = client(lab, "crowd")
    assert got["turned_away"] == "error: too many console sessions (8 open): try again later\n.\n"
    assert isinstance(json.loads(got["root"][0][0]), list)  # the socket is another door
    assert got["closed"] == "error: line over 4096 bytes: session closed\n.\n"
    assert isinstance(json.loads(got["others"][0][0]), list)
    assert "bc add" in lab.console("help")  # and the daemon serves on
