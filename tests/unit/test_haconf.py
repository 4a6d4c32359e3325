import os
import socket
import sys
import threading
import time

import pytest
from click.testing import CliRunner

from ha.config import model as C
from ha.haconf import cli as haconf
from ha.daemon.console_client import ConsoleError, DaemonNotRunning, request
from ha.config.mip6d_conf import parse_mip6d

DATA = os.path.join(os.path.dirname(__file__), "..", "data")

# /etc/radvd.conf as printed in the seed article (braces lost in print)
with open(os.path.join(DATA, "radvd.seed.conf")) as _f:
    SEED_RADVD = _f.read()


class Box:
    """A directory holding one denali.conf and its companions."""

    def __init__(self, path):
        self.dir = path
        self.conf = str(path / "denali.conf")
        self.staged = self.conf + ".staged"

    def run(self, *args, env=None, input=None):
        result = CliRunner().invoke(haconf.cli, ["--config", self.conf,
                                                 *args], env=env, input=input)
        for line in (result.stdout + result.stderr).splitlines():
            assert len(line) <= 80, line
        assert "\x1b[" not in result.stdout + result.stderr
        return result

    def ok(self, *args):
        r = self.run(*args)
        assert r.exit_code == 0, (r.stdout, r.stderr, r.exception)
        return r

    def files(self):
        return {n: (self.dir / n).read_bytes()
                for n in sorted(os.listdir(self.dir))}

    def write(self, text):
        with open(self.conf, "w") as f:
            f.write(text)


@pytest.fixture
def box(tmp_path):
    return Box(tmp_path)


def conf_with_port(port):
    return C.DEFAULT_TEXT.replace("    interface = wlan0\n",
                                  f"    interface = wlan0\n"
                                  f"    vt_port = {port}\n")


class FakeDaemon:
    """Answers console lines by the protocol of ha/daemon/console_client.py."""

    def __init__(self, answers):
        self.answers = answers
        self.got = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn, conn.makefile("rb") as r:
                line = r.readline().decode().rstrip("\n")
                self.got.append(line)
                for out in self.answers.get(line, ["error: unknown command"]):
                    if out.startswith("."):
                        out = "." + out
                    conn.sendall(out.encode() + b"\n")
                conn.sendall(b".\n")

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


@pytest.fixture
def daemon(box):
    d = FakeDaemon({
        "reload": ["ok reloaded"],
        "status json": ['{"uptime": 12, "bindings": 1}'],
        "bc": ["hoa 2001:db8::beef status registered", ".hidden"],
        "bc json": ['[{"hoa": "2001:db8::beef"}]'],
        "bul": ["(mobile node mode is off)"],
        "bul json": ["[]"],
        "log": ["10:00 started"],
    })
    box.write(conf_with_port(d.port))
    yield d
    d.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# -------------------------------------------------------------- set/get

def test_show_default_is_the_seed(box):
    out = box.ok("show").stdout
    assert "[radio]" in out and "essid = home" in out
    assert "hw_mode = g  # default" in out
    assert not os.path.exists(box.conf)


def test_set_home_radio_as_typed(box):
    r = box.ok("set", "essid", "home", "channel", "3")
    assert "radio.wlan0.essid = home" in r.stdout
    assert not os.path.exists(box.conf)          # staged only
    assert os.path.exists(box.staged)
    box.ok("set", "essid", "My Café, 2.4")
    assert box.ok("get", "essid").stdout == "My Café, 2.4\n"
    assert box.ok("get", "wlan0", "essid").stdout == "My Café, 2.4\n"
    assert C.validate_text(open(box.staged).read()).radio(
        "wlan0").essid == "My Café, 2.4"


def test_set_named_radio_and_dotted_paths(box):
    box.ok("set", "wlan1", "essid", "remote", "channel", "9")
    box.ok("set", "ra.wlan0.maxrtradvinterval", "20")
    box.ok("set", "radio.wlan1.hw_mode", "b", "ha.acl.2001:db8::beef", "deny")
    box.ok("set", "wlan1", "AdvHomeAgentPreference".replace("Adv", ""), "5")
    assert box.ok("get", "wlan1", "channel", "essid").stdout == "9\nremote\n"
    assert box.ok("get", "ra.wlan0.MaxRtrAdvInterval").stdout == "20\n"
    assert box.ok("get", "ha.acl.2001:db8::beef").stdout == "deny\n"
    assert box.ok("get", "ra.wlan1.HomeAgentPreference").stdout == "5\n"
    assert box.ok("get", "vt_port").stdout == "7777\n"       # default
    assert box.ok("get", "wlan0", "txpower").stdout == "(unset)\n"
    cfg = C.validate_text(open(box.staged).read())
    assert cfg.ha.acl == {"2001:db8::beef": False}


def test_value_may_start_with_dash_or_space(box):
    box.ok("set", "essid", "-dash-", "wlan1", "essid", " sp ")
    assert box.ok("get", "essid").stdout == "-dash-\n"
    assert box.ok("get", "wlan1", "essid").stdout == " sp \n"


def test_get_unknown_interface(box):
    r = box.run("get", "wlan5", "essid")
    assert r.exit_code == 2 and "no interface wlan5 in [radio]" in r.stderr


def test_swap_channels_in_one_command(box):
    box.ok("set", "wlan0", "channel", "8", "wlan1", "channel", "3")
    assert box.ok("get", "wlan1", "channel").stdout == "3\n"


def test_overlap_warns_but_stages(box):
    r = box.ok("set", "wlan1", "channel", "5")
    assert "overlap (less than 5 apart)" in " ".join(r.stderr.split())
    assert box.ok("get", "wlan1", "channel").stdout == "5\n"


def test_unset_back_to_default(box):
    box.ok("set", "wlan0", "txpower", "10")
    box.ok("unset", "wlan0", "txpower")
    assert box.ok("get", "wlan0", "txpower").stdout == "(unset)\n"
    r = box.run("unset", "wlan0", "txpower")
    assert r.exit_code == 2 and "is not set" in r.stderr


def test_env_var_selects_file(tmp_path):
    conf = str(tmp_path / "e.conf")
    r = CliRunner().invoke(haconf.cli, ["set", "vt_port", "7100"],
                           env={"DENALI_CONF": conf})
    assert r.exit_code == 0, r.stderr
    assert os.path.exists(conf + ".staged")


BAD_SETS = [
    (["channel", "14"], "channel 14 is not allowed for country US: use 1-11"),
    (["wlan1", "channel", "12"], "not allowed for country US: use 1-11"),
    (["country", "DE", "channel", "14"], "country DE: use 1-13"),
    (["country", "JP", "channel", "14"], "only with hw_mode b"),
    (["channel", "0"], "use an integer 1-14"),
    (["essid", "x" * 33], "33 bytes: use 1-32 bytes"),
    (["essid", "ü" * 17], "34 bytes: use 1-32 bytes"),
    (["wlan1", "essid", "home"], "already the ESSID of wlan0"),
    (["wlan1", "channel", "3"], "already used by wlan0"),
    (["address", "2001:db8::g/64"], "not an IPv6 interface address"),
    (["address", "2001:db8::1"], "address/length"),
    (["ra.wlan0.prefix", "2001:db8::1/64"], "no host bits"),
    (["served_prefix", "2001:db8::/129"], "not an IPv6 prefix"),
    (["ha.acl.2001:db8::zz", "allow"], "home addresses"),
    (["ha.acl.2001:db8::1", "maybe"], "use allow or deny"),
    (["AdvSendAdvert", "perhaps"], "use on or off"),
    (["MinRtrAdvInterval", "9"], "use at most 7.5"),
    (["hw_mode", "n"], "use b or g"),
    (["key", "short"], "8-63"),
    (["vt_port", "70000"], "1-65535"),
    (["max_binding_lifetime", "300000"], "4-262140"),
    (["frobnicate", "1"], "unknown setting 'frobnicate'"),
    (["ra.wlan0.Frob", "1"], "[ra] has: AdvSendAdvert"),
    (["ha.frob", "1"], "[ha] has: enabled"),
    (["x.y", "1"], "not a setting"),
    (["channel"], "missing value"),
    (["wlan1"], "which setting?"),
]


@pytest.mark.parametrize("args, words", BAD_SETS)
@pytest.mark.parametrize("with_files", [False, True])
def test_refused_set_leaves_files_identical(box, args, words, with_files):
    if with_files:
        box.ok("set", "txpower", "10")
        box.ok("commit")
        box.ok("set", "wlan1", "txpower", "12")
    before = box.files()
    r = box.run("set", *args)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert words in " ".join(r.stderr.split()), r.stderr
    assert r.stdout == ""
    assert box.files() == before


def test_no_home_radio_needs_a_name(box):
    box.ok("set", "wlan0", "role", "foreign", "wlan1", "role", "foreign")
    r = box.run("set", "channel", "1")
    assert r.exit_code == 2 and "name the radio" in r.stderr


# ------------------------------------------- changes/commit/revert/show

def test_changes_commit_revert(box):
    assert box.ok("changes").stdout == "no staged changes\n"
    assert box.ok("commit").stdout == "nothing to commit\n"
    box.ok("set", "wlan1", "channel", "11")
    out = box.ok("changes").stdout
    assert "-        channel = 8" in out and "+        channel = 11" in out
    box.ok("commit")
    assert not os.path.exists(box.staged)
    assert C.load_config(box.conf).radio("wlan1").channel == 11
    assert open(box.conf + ".prev").read() == C.DEFAULT_TEXT
    box.ok("set", "wlan1", "channel", "10")
    assert box.ok("get", "--committed", "wlan1", "channel").stdout == "11\n"
    assert box.ok("revert").stdout == "staged changes dropped\n"
    assert box.ok("revert").stdout == "no staged changes\n"
    assert box.ok("get", "wlan1", "channel").stdout == "11\n"


def test_commit_refuses_bad_staged_file(box):
    box.ok("set", "essid", "home")
    with open(box.staged, "a") as f:
        f.write("[[wlan9]]\nessid = home\nchannel = 99\n")
    before = box.files()
    r = box.run("commit")
    assert r.exit_code == 2 and "radio.wlan9.channel" in r.stderr
    assert box.files() == before


def test_show_sections(box):
    out = box.ok("show", "ra.wlan1").stdout
    assert out.splitlines()[:2] == ["[ra]", "    [[wlan1]]"]
    assert "wlan0" not in out and "AdvHomeAgentFlag = off" in out
    assert "[radio]" not in box.ok("show", "ha").stdout
    box.ok("set", "vt_port", "7001")
    assert box.ok("show").stdout.startswith("# staged")
    assert "7001" not in box.ok("show", "--committed").stdout
    r = box.run("show", "bogus")
    assert r.exit_code == 2 and "use ha, ra, radio" in r.stderr


def test_help_fits(box):
    box.ok("--help")
    box.ok("set", "--help")


# ------------------------------------------------------ import/export

def seed_files(tmp_path):
    radvd = tmp_path / "radvd.conf"
    radvd.write_text(SEED_RADVD)
    return os.path.join(DATA, "mip6d.ha.conf"), str(radvd)


def test_import_seed_and_export_same_meaning(box, tmp_path):
    R = pytest.importorskip("radvd.config",
                            reason="radvd/config.py (another engineer)")
    mip6d, radvd = seed_files(tmp_path)
    box.ok("set", "ra.wlan0.MaxRtrAdvInterval", "30")  # import replaces it
    box.ok("import", mip6d, radvd)
    box.ok("commit")
    out = box.ok("export", "--format", "mip6d").stdout
    original = parse_mip6d(open(mip6d).read(), mip6d)
    assert parse_mip6d(out, "exported").with_defaults() == \
        original.with_defaults()
    out = box.ok("export", "--format", "radvd").stdout
    assert R.parse(out, "exported").interfaces == \
        R.parse(SEED_RADVD, "seed").interfaces


def test_export_staged(box):
    box.ok("set", "ha.acl.2001:db8::beef", "deny", "debug_level", "3")
    out = box.ok("export", "--staged", "--format", "mip6d").stdout
    m = parse_mip6d(out, "x")
    assert m.debug_level == 3 and m.binding_acl[0].allow is False
    assert "DebugLevel 0;" in box.ok("export", "--format", "mip6d").stdout
    r = box.run("export", "--format", "xml")
    assert r.exit_code == 2


def test_import_mip6d_keywords(box, tmp_path):
    f = tmp_path / "mip6d.conf"
    f.write_text('NodeConfig HA; Interface "wlan0"; UseMnHaIPsec disabled;\n'
                 "HaMaxBindingLife 3600; DefaultBindingAclPolicy deny;\n"
                 "BindingAclPolicy 2001:db8::beef allow;\n"
                 "HaServedPrefix 2001:db8::/64; MinMobPfxAdvInterval 60;\n")
    box.ok("import", str(f))
    cfg = C.validate_text(open(box.staged).read())
    assert cfg.ha.max_binding_lifetime == 3600
    assert not cfg.ha.acl_default_allow
    assert cfg.ha.acl == {"2001:db8::beef": True}
    assert cfg.ha.served_prefixes == ("2001:db8::/64",)
    assert not cfg.ha.served_prefixes_derived
    assert cfg.ha.min_mob_pfx_adv_interval == 60


@pytest.mark.parametrize("text, words", [
    (None, "NodeConfig is MN"),
    ("NodeConfig HA;\nBogus 1;\n", "mip6d.conf:2: unknown keyword 'Bogus'"),
    ('NodeConfig HA; Interface "a"; Interface "b";', "exactly one"),
    ('NodeConfig HA; Interface "a"; UseMnHaIPsec enabled;', "no IPsec"),
    ('NodeConfig HA; Interface "a"; UseMnHaIPsec disabled;'
     "BindingAclPolicy 2001:db8::1 2001:db8::2 deny;", "per home address"),
    ('NodeConfig HA; Interface "a"; HaMaxBindingLife 999999;',
     "4-262140"),
    ("interface wlan0 { AdvSendAdvert on; route 2001:db8:7::/48 { };\n"
     "route 2001:db8:7::/48 { AdvRoutePreference low; }; };",
     "route 2001:db8:7::/48 is given twice"),
    ("interface wlan0 { AdvSendAdvert on; RDNSS 2001:db8::53 "
     "{ AdvRDNSSLifetime 5; }; };",
     "ra.wlan0.rdnss.AdvRDNSSLifetime: 5 is less than MaxRtrAdvInterval 600"),
    ("interface wlan0 { AdvSendAdvert maybe; };", "radvd.conf:1"),
])
def test_import_refusals_leave_files_identical(box, tmp_path, text, words):
    if text and text.startswith("interface"):
        pytest.importorskip("radvd.config", reason="radvd/config.py absent")
    box.ok("set", "essid", "staged-before")
    path = os.path.join(DATA, "mip6d.mn.conf")
    if text is not None:
        path = str(tmp_path / ("radvd.conf" if text.startswith("interface")
                               else "mip6d.conf"))
        with open(path, "w") as f:
            f.write(text)
    before = box.files()
    r = box.run("import", path)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    # the path in the message may be long enough to be wrapped mid-word
    squeeze = lambda text: "".join(text.split())  # noqa: E731
    assert squeeze(words) in squeeze(r.stderr)
    assert box.files() == before


def test_import_missing_file(box):
    r = box.run("import", "/nonexistent/mip6d.conf")
    assert r.exit_code == 2
    assert "mip6d.conf: cannot read: No such file" in r.stderr


# --------------------------------------------------- console commands

def test_console_commands(box, daemon):
    assert box.ok("status").stdout == "uptime: 12\nbindings: 1\n"
    assert box.ok("status", "--json").stdout.startswith('{"uptime"')
    assert box.ok("bc").stdout == ("hoa 2001:db8::beef status registered\n"
                                   ".hidden\n")
    assert "2001:db8::beef" in box.ok("bc", "--json").stdout
    assert box.ok("bul").stdout == "(mobile node mode is off)\n"
    assert box.ok("bul", "--json").stdout == "[]\n"
    assert box.ok("log").stdout == "10:00 started\n"
    assert daemon.got == ["status json", "status json", "bc", "bc json",
                          "bul", "bul json", "log"]


def test_apply_sends_reload(box, daemon):
    box.ok("set", "vt_port", str(daemon.port))
    r = box.ok("apply")
    assert r.stdout == "ok reloaded\n"
    assert "not committed" in r.stderr
    assert daemon.got == ["reload"]
    daemon.answers["reload"] = ["error: radio wlan1 failed"]
    r = box.run("apply")
    assert r.exit_code == 1 and "error: radio wlan1 failed" in r.stdout
    daemon.answers["reload"] = ["unknown command 'reload': type help"]
    assert box.run("apply").exit_code == 1


@pytest.mark.parametrize("cmd", [["status"], ["bc"], ["bc", "--json"],
                                 ["bul"], ["bul", "--json"], ["log"],
                                 ["apply"]])
def test_daemon_not_running(box, cmd):
    port = free_port()
    box.write(conf_with_port(port))
    r = box.run(*cmd)
    assert r.exit_code == 3
    assert r.stderr == ("haconf: denalid is not running (no answer on "
                        f"127.0.0.1:{port})\n")


def test_apply_finds_daemon_on_previous_port(box, daemon):
    box.ok("commit")  # nothing staged: no .prev yet
    box.ok("set", "vt_port", str(free_port()))
    box.ok("commit")  # .prev holds the port the daemon listens on
    assert box.ok("apply").stdout == "ok reloaded\n"
    assert daemon.got == ["reload"]


def test_client_timeout_is_console_error():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    try:
        with pytest.raises(ConsoleError, match="did not finish"):
            request("bc", srv.getsockname()[1], timeout=0.1)
    finally:
        srv.close()


def test_not_running_message_names_default_port():
    assert str(DaemonNotRunning("127.0.0.1", 7777)) == \
        "denalid is not running (no answer on 127.0.0.1:7777)"


def test_client_protocol_dot_stuffing_and_eof():
    d = FakeDaemon({"x": ["..a", ".", "b"]})
    try:
        assert request("x", d.port) == ["..a", ".", "b"]
    finally:
        d.close()


# ------------------------------------------------ apply --confirm

def test_apply_confirm_then_confirm(box, daemon, monkeypatch):
    spawned = []
    monkeypatch.setattr(haconf, "_spawn_waiter",
                        lambda paths, token, s: spawned.append(token) or 0)
    r = box.run("apply", "--confirm", "30")
    assert r.exit_code == 2 and "commit first" in r.stderr
    box.ok("set", "wlan1", "channel", "11")
    box.ok("commit")
    r = box.ok("apply", "--confirm", "30")
    assert "within 30 s" in r.stdout and daemon.got == ["reload"]
    token = spawned[0]
    assert open(box.conf + ".confirm").read() == f"0 {token}\n"
    r = box.run("apply", "--confirm", "30")
    assert r.exit_code == 2 and "already pending" in r.stderr
    assert box.ok("confirm").stdout == "confirmed; rollback cancelled\n"
    assert not os.path.exists(box.conf + ".rollback")
    # the waiter wakes up later and finds nothing to do
    box.ok("rollback-waiter", token, "0")
    assert C.load_config(box.conf).radio("wlan1").channel == 11
    r = box.run("confirm")
    assert r.exit_code == 1 and "no rollback pending" in r.stderr


def test_apply_confirm_times_out_and_rolls_back(box, daemon, monkeypatch):
    spawned = []
    monkeypatch.setattr(haconf, "_spawn_waiter",
                        lambda paths, token, s: spawned.append(token) or 0)
    box.ok("set", "wlan1", "channel", "11")
    box.ok("commit")
    committed_before = open(box.conf + ".prev").read()
    box.ok("apply", "--confirm", "1")
    box.ok("rollback-waiter", "not-the-token", "0")   # stale waiter: no-op
    assert C.load_config(box.conf).radio("wlan1").channel == 11
    box.ok("rollback-waiter", spawned[0], "0")
    assert open(box.conf).read() == committed_before
    assert daemon.got == ["reload", "reload"]
    assert not os.path.exists(box.conf + ".confirm")
    r = box.run("confirm")
    assert r.exit_code == 1


def test_detached_waiter_really_rolls_back(box, daemon):
    box.ok("set", "wlan1", "channel", "11")
    box.ok("commit")
    box.ok("apply", "--confirm", "1")
    deadline = time.monotonic() + 15
    while os.path.exists(box.conf + ".confirm") or len(daemon.got) < 2:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert C.load_config(box.conf).radio("wlan1").channel == 8
    assert daemon.got == ["reload", "reload"]


def test_apply_confirm_out_of_range(box):
    r = box.run("apply", "--confirm", "0")
    assert r.exit_code == 2 and "1<=x<=3600" in r.stderr


# ------------------------------------------------------------ misc

def test_completion(box, tmp_path):
    out = box.ok("completion", "bash").stdout
    assert "_HACONF_COMPLETE" in out and "complete " in out
    box.ok("completion", "zsh")
    box.ok("completion", "fish")
    script = tmp_path / "c.bash"
    script.write_text(out)
    import shutil
    import subprocess
    if shutil.which("bash"):  # folded lines still parse
        p = subprocess.run(["bash", "-n", str(script)], capture_output=True)
        assert p.returncode == 0, p.stderr
    r = box.run("completion", "tcsh")
    assert r.exit_code == 2 and "bash" in r.stderr


def test_main_entry_point(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["haconf", "--help"])
    with pytest.raises(SystemExit) as e:
        haconf.main()
    assert e.value.code == 0
    assert "Usage: haconf" in capsys.readouterr().out


def test_against_the_real_console(box):
    """haconf's client against ha/daemon/console.py (the daemon's side)."""
    console_mod = pytest.importorskip("ha.daemon.console",
                                      reason="ha/daemon/console.py not here")
    import asyncio
    port = free_port()
    console = console_mod.Console(port)
    console.register("reload", lambda args: "ok", "reload")
    console.register("bc", lambda args: ".dot\nsecond", "binding cache")
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def run():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(console.start())
        started.set()
        loop.run_forever()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert started.wait(10)
    try:
        box.write(conf_with_port(port))
        assert box.ok("apply").stdout == "ok\n"
        assert box.ok("bc").stdout == ".dot\nsecond\n"
        assert box.run("log").exit_code == 1      # unknown command
    finally:
        asyncio.run_coroutine_threadsafe(console.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)
        loop.close()


def test_passwd_writes_a_sha512_crypt_hash_beside_the_config(box):
    import crypt
    import stat
    r = box.run("passwd", input="secret99\nsecret99\n")
    assert r.exit_code == 0, r.stderr
    path = os.path.join(os.path.dirname(box.conf), "root.passwd")
    hashed = open(path).read().strip()
    assert hashed.startswith("$6$")
    assert crypt.crypt("secret99", hashed) == hashed
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_passwd_refuses_a_short_or_mismatched_password(box):
    path = os.path.join(os.path.dirname(box.conf), "root.passwd")
    assert box.run("passwd", input="abc\nabc\n").exit_code == 2
    r = box.run("passwd", input="secret99\nsecret98\nsecret99\nsecret99\n")
    assert r.exit_code == 0  # click asks again after a mismatch
    assert os.path.exists(path)


def test_the_grammar_and_the_staging_raise_and_write_nothing(tmp_path):
    # only the click layer prints and exits: below it a refusal is an exception
    from ha.haconf import grammar, staging
    from ha.haconf.errors import EXIT_REFUSED, ConfigRefused, HaconfError
    obj = C.parse_text(C.DEFAULT_TEXT, "x")
    assert grammar.parse_words(["wlan1", "essid", "remote", "channel", "8"], obj) == [
        (("radio", "wlan1", "essid"), "remote"), (("radio", "wlan1", "channel"), "8")]
    with pytest.raises(HaconfError) as e:
        grammar.parse_words(["channel"], obj)
    assert (e.value.message, e.value.code) == (
        "channel: missing value, e.g. haconf set channel <value>", EXIT_REFUSED)
    paths = staging.Paths(str(tmp_path / "denali.conf"))
    with pytest.raises(ConfigRefused) as e:
        staging.set_values(paths, ["channel", "13"])
    assert e.value.error.key == "radio.wlan0.channel"
    assert os.listdir(tmp_path) == []
    cfg, done = staging.set_values(paths, ["channel", "6"])
    assert done == ["radio.wlan0.channel = 6"] and cfg.radio("wlan0").channel == 6
    assert os.listdir(tmp_path) == ["denali.conf.staged"]


# ------------------------------------------------------ [ra] MaxRADelay

def test_max_ra_delay_imported_and_left_out_of_the_radvd_export(box, tmp_path):
    pytest.importorskip("radvd.config", reason="radvd/config.py not here")
    conf = tmp_path / "radvd.conf"
    conf.write_text("interface wlan0\n{\n\tAdvSendAdvert on;\n\tMaxRADelay 0;\n"
                    "\tAdvHomeAgentFlag on;\n\tMaxRtrAdvInterval 3;\n\tMinRtrAdvInterval 1;\n"
                    "\tMinDelayBetweenRAs 1;\n};\n")
    box.ok("import", str(conf))
    box.ok("commit")
    assert box.ok("get", "ra.wlan0.MaxRADelay").stdout.split()[-1] in ("0", "0.0")
    out = box.ok("export", "--format", "radvd").stdout
    assert "\t# MaxRADelay 0 left out: a denali extension, radvd refuses it\n" in out
    assert not [line for line in out.splitlines() if line.split()[:1] == ["MaxRADelay"]]
    radvd = "/usr/sbin/radvd"
    if os.path.exists(radvd):               # the real radvd reads what we export
        exported = tmp_path / "exported.conf"
        exported.write_text(out)
        import subprocess
        r = subprocess.run([radvd, "-c", "-C", str(exported)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


# ------------------------------------------------ [ra] blocks (issue 14)

# every block and option of radvd.conf that [ra] carries, as an operator writes it
FULL_RADVD = """\
interface wlan0
{
\tAdvSendAdvert on;
\tAdvHomeAgentFlag on;
\tAdvIntervalOpt on;
\tMaxRtrAdvInterval 10;
\tMinRtrAdvInterval 1;
\tMinDelayBetweenRAs 1;
\tAdvDefaultPreference high;
\tUnicastOnly on;
\tAdvRASolicitedUnicast off;
\tIgnoreIfMissing off;
\tprefix 2001:db8::1/64 { AdvRouterAddr on; };
\tprefix 2001:db8:5::/64 { AdvAutonomous off; AdvValidLifetime infinity;
\t\tAdvPreferredLifetime 3600; DecrementLifetimes on; };
\troute 2001:db8:7::/48 { AdvRoutePreference low; AdvRouteLifetime 1800; };
\troute 2001:db8:8::/48 { RemoveRoute off; };
\tRDNSS 2001:db8::53 2001:db8::54 { AdvRDNSSLifetime 30; };
\tRDNSS 2001:db8::1:53 { FlushRDNSS off; };
\tDNSSL example.com lab.example { AdvDNSSLLifetime infinity; };
\tclients { fe80::1; fe80::2; };
};
interface wlan1
{
\tAdvSendAdvert on;
\tMaxRtrAdvInterval 30;
\tprefix 2001:db8:1::/64 { AdvOnLink on; };
\tDNSSL remote.example { };
};
"""


def real_radvd_accepts(text, tmp_path):
    """None when /usr/sbin/radvd -c reads *text*, else what it said (skip without it)."""
    import subprocess
    radvd = "/usr/sbin/radvd"
    if not os.path.exists(radvd):
        return None
    f = tmp_path / "real-radvd.conf"
    f.write_text(text)
    r = subprocess.run([radvd, "-c", "-C", str(f)], capture_output=True, text=True,
                       timeout=30)
    return None if r.returncode == 0 else r.stderr + r.stdout


def test_import_every_radvd_block_and_export_same_meaning(box, tmp_path):
    R = pytest.importorskip("radvd.config", reason="radvd/config.py not here")
    conf = tmp_path / "radvd.conf"
    conf.write_text(FULL_RADVD)
    box.ok("import", str(conf))
    box.ok("commit")
    text = open(box.conf).read()
    # blocks in denali.conf's own form
    for section in ("[[[prefix 2001:db8::1/64]]]", "[[[prefix 2001:db8:5::/64]]]",
                    "[[[route 2001:db8:7::/48]]]", "[[[rdnss]]]", "[[[rdnss 2]]]",
                    "[[[dnssl]]]"):
        assert section in text, text
    assert box.ok("get", "ra.wlan0.AdvDefaultPreference").stdout.split()[-1] == "high"
    out = box.ok("export", "--format", "radvd").stdout
    assert R.parse(out, "exported").interfaces == R.parse(FULL_RADVD, "original").interfaces
    assert real_radvd_accepts(out, tmp_path) is None


def test_export_then_import_gives_the_same_ra(box, tmp_path):
    pytest.importorskip("radvd.config", reason="radvd/config.py not here")
    tail = "        AdvRouterAddr = on\n    [[wlan1]]"
    blocks = ("        AdvRouterAddr = on\n"
              "        AdvDefaultPreference = low\n"
              "        clients = fe80::1\n"
              "        [[[prefix 2001:db8:5::/64]]]\n"
              "            DeprecatePrefix = on\n"
              "        [[[route 2001:db8:7::/48]]]\n"
              "            AdvRoutePreference = high\n"
              "        [[[rdnss]]]\n"
              "            addresses = 2001:db8::53\n"
              "            AdvRDNSSLifetime = infinity\n"
              "        [[[dnssl]]]\n"
              "            domains = example.com\n"
              "    [[wlan1]]")
    box.write(C.DEFAULT_TEXT.replace(tail, blocks))
    before = C.load_config(box.conf).ra_interfaces
    out = box.ok("export", "--format", "radvd").stdout
    assert real_radvd_accepts(out, tmp_path) is None
    exported = tmp_path / "exported.conf"
    exported.write_text(out)
    box.ok("import", str(exported))
    assert C.validate_text(open(box.staged).read()).ra_interfaces == before
    # one plain prefix keeps today's form: prefix = beside the interface's keys
    staged = C.parse_text(open(box.staged).read(), "staged")
    assert staged["ra"]["wlan1"]["prefix"] == "2001:db8:1::/64"
    assert staged["ra"]["wlan0"].sections == [
        "prefix 2001:db8::/64", "prefix 2001:db8:5::/64", "route 2001:db8:7::/48",
        "rdnss", "dnssl"]


def test_show_prints_the_blocks(box, tmp_path):
    pytest.importorskip("radvd.config", reason="radvd/config.py not here")
    conf = tmp_path / "radvd.conf"
    conf.write_text(FULL_RADVD)
    box.ok("import", str(conf))
    out = box.ok("show", "ra.wlan0").stdout
    assert "        [[[rdnss]]]\n" in out
    assert "            addresses = 2001:db8::53, 2001:db8::54\n" in out
    assert "            FlushRDNSS = on  # default\n" in out

