"""haconf: the serial-console configuration tool of denali.

    haconf set essid home channel 3          (the home radio, as typed)
    haconf set wlan1 essid remote channel 8
    haconf set ra.wlan0.MaxRtrAdvInterval 10
    haconf changes / commit / revert / apply [--confirm 60] / confirm

Changes are staged in <config>.staged beside the config; ``commit`` checks
them and replaces the config atomically (the old one is kept as
<config>.prev); ``apply`` asks denalid to reload.  ``apply --confirm N``
rolls back to <config>.prev unless ``haconf confirm`` runs within N seconds
(OpenWrt style): a detached waiter holds the token written in
<config>.confirm and claims it by renaming the file before it restores.

Exit status: 0 ok, 1 failed, 2 refused (bad input: nothing was written),
3 denalid not running.  Output fits 80 columns, no colour, no pager.
Only click and ha.config.model load at start (no asyncio, no pyroute2).
"""

import os
import sys
import textwrap

import click

from ha.config import model as C
from ha.haconf.translate import ra_check

EXIT_FAILED, EXIT_REFUSED, EXIT_NOT_RUNNING = 1, 2, 3
WIDTH = 79
RADIO_DEFAULT_HINT = "haconf set wlan0 essid home"


class Paths:
    def __init__(self, conf):
        self.conf = conf
        self.staged = conf + ".staged"
        self.prev = conf + ".prev"
        self.rollback = conf + ".rollback"
        self.confirm = conf + ".confirm"

    def committed_text(self):
        return C.read_text(self.conf)

    def staged_text(self):
        """Staged text if any, else the committed text."""
        if os.path.exists(self.staged):
            return C.read_text(self.staged)
        return self.committed_text()


# --------------------------------------------------------------- output

def _wrap(text):
    out = []
    for line in text.splitlines() or [""]:
        out.extend(textwrap.wrap(line, WIDTH, subsequent_indent="    ",
                                 break_on_hyphens=False) or [""])
    return "\n".join(out)


def say(text=""):
    click.echo(_wrap(text))


def warn(text):
    click.echo(_wrap("warning: " + text), err=True)


def fail(text, code=EXIT_REFUSED):
    click.echo(_wrap("haconf: " + text), err=True)
    raise click.exceptions.Exit(code)


def fail_config(err, code=EXIT_REFUSED):
    lines = [f"{k}: {r}" if k else r for k, r in err.errors]
    click.echo(_wrap(f"haconf: refused ({err.filename}):"), err=True)
    for line in lines:
        click.echo(_wrap("  " + line), err=True)
    raise click.exceptions.Exit(code)


def _write(path, text):
    from ha.config.atomic import atomic_write
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, text)


# ---------------------------------------------------------- key paths

_SPEC_CACHE = []


def _spec_keys():
    """(ha keys, ra keys, radio keys) as spelled in the configspec."""
    if not _SPEC_CACHE:
        spec = C.load_spec()
        _SPEC_CACHE.append((list(spec["ha"].scalars),
                            list(spec["ra"]["__many__"].scalars),
                            list(spec["radio"]["__many__"].scalars)))
    return _SPEC_CACHE[0]


def _canon(name, keys):
    for k in keys:
        if k.lower() == name.lower():
            return k
    return None


def _interfaces(obj):
    names = set()
    for sec in ("ra", "radio"):
        if sec in obj and hasattr(obj[sec], "sections"):
            names.update(obj[sec].sections)
    return names


def _home_radio(obj):
    radios = obj.get("radio", {})
    homes = [n for n in getattr(radios, "sections", [])
             if radios[n].get("role", "foreign") == "home"]
    if len(homes) != 1:
        fail("no single radio has role home: name the radio, e.g. "
             + RADIO_DEFAULT_HINT)
    return homes[0]


def _resolve_dotted(word):
    ha_keys, ra_keys, radio_keys = _spec_keys()
    parts = word.split(".")
    if parts[0] == "ha":
        if len(parts) >= 3 and parts[1] == "acl":
            return ("ha", "acl", ".".join(parts[2:]))
        key = _canon(".".join(parts[1:]), ha_keys) if len(parts) == 2 else None
        if not key:
            fail(f"{word}: unknown setting; [ha] has: "
                 + ", ".join(ha_keys) + ", acl.<home address>")
        return ("ha", key)
    if parts[0] in ("ra", "radio") and len(parts) == 3:
        keys = ra_keys if parts[0] == "ra" else radio_keys
        key = _canon(parts[2], keys)
        if not key:
            fail(f"{word}: unknown setting; [{parts[0]}] has: "
                 + ", ".join(keys))
        return (parts[0], parts[1], key)
    fail(f"{word}: not a setting: use ha.<key>, ha.acl.<home address>, "
         "ra.<interface>.<key> or radio.<interface>.<key>")


def _resolve_bare(word, iface, obj):
    """A key without section: radio first, then ra, then ha."""
    ha_keys, ra_keys, radio_keys = _spec_keys()
    key = _canon(word, radio_keys)
    if key:
        return ("radio", iface or _home_radio(obj), key)
    key = _canon(word, ra_keys)
    if key:
        return ("ra", iface or _home_radio(obj), key)
    key = _canon(word, ha_keys)
    if key:
        return ("ha", key)
    fail(f"unknown setting {word!r}: radio settings are "
         + ", ".join(radio_keys) + "; RA settings are those of radvd.conf "
         "(e.g. MaxRtrAdvInterval); [ha] settings are " + ", ".join(ha_keys)
         + "; or give a dotted path like ra.wlan0.MaxRtrAdvInterval")


def _is_interface_word(word, obj):
    import re
    return word in _interfaces(obj) or bool(re.fullmatch(r"wlan\d+", word))


def _parse_words(words, obj, want_values=True):
    """[(path tuple, value or None)] from set/get style arguments."""
    out, iface, i = [], None, 0
    while i < len(words):
        w = words[i]
        if "." in w:
            path = _resolve_dotted(w)
        elif _is_interface_word(w, obj):
            iface = w
            i += 1
            if i == len(words):
                fail(f"{w}: which setting? e.g. haconf set {w} channel 6")
            continue
        else:
            path = _resolve_bare(w, iface, obj)
        if want_values:
            if i + 1 == len(words):
                fail(f"{w}: missing value, e.g. haconf set {w} <value>")
            out.append((path, words[i + 1]))
            i += 2
        else:
            out.append((path, None))
            i += 1
    return out


def _node(obj, path, create):
    node = obj
    for part in path[:-1]:
        if part not in node:
            if not create:
                return None
            node[part] = {}
        node = node[part]
    return node


# --------------------------------------------------------------- group

class _Group(click.Group):
    """click.Group whose error messages are wrapped to 79 columns too."""

    def main(self, args=None, prog_name=None, complete_var=None,
             standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click.exceptions.ClickException as e:
            ctx = getattr(e, "ctx", None)
            if ctx is not None:
                click.echo(ctx.get_usage(), err=True)
                click.echo(f"Try '{ctx.command_path} -h' for help.\n",
                           err=True)
            click.echo(_wrap("Error: " + e.format_message()), err=True)
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=_Group,
             context_settings={"help_option_names": ["-h", "--help"],
                               "max_content_width": WIDTH,
                               "terminal_width": WIDTH})
@click.option("--config", "conf", envvar=C.ENV_VAR, default=C.DEFAULT_PATH,
              show_default=True, metavar="FILE",
              help="configuration file (env DENALI_CONF)")
@click.pass_context
def cli(ctx, conf):
    """Configure the denali home agent: stage, commit, apply."""
    ctx.obj = Paths(conf)


def _stage(paths, obj, done):
    """Check the edited ConfigObj; write it as the staged config or refuse."""
    text = "\n".join(obj.write()) + "\n"
    try:
        cfg = C.validate_text(text, paths.staged, ra_check)
    except C.DenaliConfError as e:
        fail_config(e)
    _write(paths.staged, text)
    for w in cfg.warnings:
        warn(w)
    for line in done:
        say(line)
    say("staged; see haconf changes, then haconf commit")


@cli.command("set", context_settings={"ignore_unknown_options": True,
                                      "help_option_names": ["--help"]})
@click.argument("words", nargs=-1, required=True)
@click.pass_obj
def set_(paths, words):
    """Stage settings: [IFACE] KEY VALUE [KEY VALUE]... or a.b.c VALUE.

    A bare radio or RA key applies to the radio with role home (wlan0)
    unless an interface name comes first.  Values are kept as typed, even
    those starting with '-' (so only --help shows this help).
    """
    obj = _load_obj(paths.staged_text(), paths.staged)
    done = []
    for path, value in _parse_words(words, obj):
        _node(obj, path, True)[path[-1]] = value
        done.append(f"{'.'.join(path)} = {value}")
    _stage(paths, obj, done)


@cli.command()
@click.argument("keys", nargs=-1, required=True)
@click.pass_obj
def unset(paths, keys):
    """Stage removal of settings (back to their defaults): [IFACE] KEY..."""
    obj = _load_obj(paths.staged_text(), paths.staged)
    done = []
    for path, _ in _parse_words(keys, obj, want_values=False):
        node = _node(obj, path, False)
        if node is None or path[-1] not in node:
            fail(f"{'.'.join(path)} is not set")
        del node[path[-1]]
        done.append(f"{'.'.join(path)} unset")
    _stage(paths, obj, done)


def _load_obj(text, filename):
    try:
        return C.parse_text(text, filename)
    except C.DenaliConfError as e:
        fail_config(e, EXIT_FAILED)


def _view(paths, committed):
    """(ConfigObj as written, DenaliConfig) for show/get."""
    if committed:
        text, name = paths.committed_text(), paths.conf
    else:
        text = paths.staged_text()
        name = paths.staged if os.path.exists(paths.staged) else paths.conf
    raw = _load_obj(text, name)
    try:
        cfg = C.validate_obj(raw, name, ra_check)
    except C.DenaliConfError as e:
        fail_config(e, EXIT_FAILED)
    return raw, cfg


def _fmt(v):
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return ", ".join(v) if v else "(none)"
    if v is None:
        return "(unset)"
    if v == C.INFINITY:
        return "infinity"
    return str(v)


def _raw_get(raw, path):
    node = _node(raw, path, False)
    if node is None or path[-1] not in node:
        return None
    v = node[path[-1]]
    return ", ".join(v) if isinstance(v, list) else v


@cli.command()
@click.argument("words", nargs=-1, required=True)
@click.option("--committed", is_flag=True, help="read the committed config")
@click.pass_obj
def get(paths, words, committed):
    """Print settings: [IFACE] KEY... or a.b.c (staged view)."""
    raw, cfg = _view(paths, committed)
    for path, _ in _parse_words(words, raw, want_values=False):
        v = _raw_get(raw, path)
        if v is None:
            node = cfg.values
            for p in path:
                node = node.get(p) if isinstance(node, dict) else None
            if node is None and path[0] in ("ra", "radio") and \
                    path[1] not in cfg.values.get(path[0], {}):
                fail(f"no interface {path[1]} in [{path[0]}]")
            v = _fmt(node)
        click.echo(v)  # as typed: no wrapping, leading spaces kept


@cli.command()
@click.argument("section", required=False)
@click.option("--committed", is_flag=True, help="show the committed config")
@click.pass_obj
def show(paths, section, committed):
    """Show the configuration (staged view), defaults marked."""
    raw, cfg = _view(paths, committed)
    if section and section.split(".")[0] not in C.SECTIONS:
        fail(f"no section {section!r}: use ha, ra, radio or e.g. ra.wlan0")
    if not committed and os.path.exists(paths.staged):
        say("# staged, not committed (haconf changes)")
    _show(cfg.values, raw, [], section.split(".") if section else [], 0)


def _show(values, raw, path, want, depth):
    for key, v in values.items():
        here = path + [key]
        n = min(len(here), len(want))
        if here[:n] != want[:n]:
            continue
        sub_raw = raw.get(key) if raw is not None and hasattr(
            raw, "get") else None
        if isinstance(v, dict):
            say("    " * depth + "[" * (depth + 1) + key + "]" * (depth + 1))
            _show(v, sub_raw, here, want, depth + 1)
        else:
            mark = "" if raw is not None and key in raw else "  # default"
            say("    " * depth + f"{key} = {_fmt(v)}{mark}")


@cli.command()
@click.pass_obj
def changes(paths):
    """Show staged changes as a diff against the committed config."""
    import difflib
    if not os.path.exists(paths.staged):
        say("no staged changes")
        return
    old = paths.committed_text().splitlines(keepends=True)
    new = C.read_text(paths.staged).splitlines(keepends=True)
    # file names, not paths: a long path would not fit the serial console's 80 columns
    diff = list(difflib.unified_diff(old, new, os.path.basename(paths.conf),
                                     os.path.basename(paths.staged)))
    if not diff:
        say("no staged changes")
        return
    for line in diff:
        click.echo(line.rstrip("\n"))


@cli.command()
@click.pass_obj
def commit(paths):
    """Check the staged config and make it the config (atomically)."""
    if not os.path.exists(paths.staged):
        say("nothing to commit")
        return
    text = C.read_text(paths.staged)
    try:
        cfg = C.validate_text(text, paths.staged, ra_check)
    except C.DenaliConfError as e:
        fail_config(e)
    _write(paths.prev, paths.committed_text())
    _write(paths.conf, text)
    os.unlink(paths.staged)
    for w in cfg.warnings:
        warn(w)
    say(f"committed to {paths.conf}; haconf apply to use it")


@cli.command()
@click.pass_obj
def revert(paths):
    """Drop the staged changes."""
    try:
        os.unlink(paths.staged)
    except FileNotFoundError:
        say("no staged changes")
        return
    say("staged changes dropped")


# -------------------------------------------------------- import/export

def _sniff_radvd(text):
    import re
    return re.search(r"^\s*interface\s+[^\s{;]+", text, re.M) is not None


@cli.command("import")
@click.argument("files", nargs=-1, required=True)
@click.pass_obj
def import_(paths, files):
    """Stage settings from mip6d.conf and/or radvd.conf files."""
    obj = _load_obj(paths.staged_text(), paths.staged)
    done = []
    for name in files:
        try:
            with open(name, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            fail(f"{name}: cannot read: {e.strerror}")
        except UnicodeDecodeError:
            fail(f"{name}: not UTF-8 text")
        if _sniff_radvd(text):
            _import_radvd(obj, text, name)
            done.append(f"{name}: radvd.conf -> [ra]")
        else:
            _import_mip6d(obj, text, name)
            done.append(f"{name}: mip6d.conf -> [ha]")
    _stage(paths, obj, done)


# mip6d.conf field -> [ha] key; UMIP's defaults are denali's defaults.
_MIP6D_TO_HA = {
    "debug_level": "debug_level",
    "ha_max_binding_life": "max_binding_lifetime",
    "default_binding_acl_policy": "acl_default",
    "send_mob_pfx_advs": "send_mob_pfx_advs",
    "min_mob_pfx_adv_interval": "min_mob_pfx_adv_interval",
    "max_mob_pfx_adv_interval": "max_mob_pfx_adv_interval",
}
_MIP6D_IGNORED = ("key_mng_mob_capability", "do_route_optimization_mn",
                  "do_route_optimization_cn", "mn_max_ha_binding_life",
                  "mn_max_cn_binding_life", "send_mob_pfx_sols")


def _import_mip6d(obj, text, name):
    from ha.config.mip6d_conf import Mip6dConfError, parse_mip6d
    try:
        m = parse_mip6d(text, name)
    except Mip6dConfError as e:
        fail(str(e))
    for w in m.warnings:
        warn(w)
    if m.node_config != "HA":
        fail(f"{name}: NodeConfig is {m.node_config or 'not set (CN)'}: "
             "only a home agent's file (NodeConfig HA) can be imported")
    if len(m.interfaces) != 1:
        fail(f"{name}: {len(m.interfaces)} Interface lines: denali serves "
             "as home agent on exactly one interface")
    if m.use_mn_ha_ipsec:
        fail(f"{name}: UseMnHaIPsec enabled: denali has no IPsec; use "
             "UseMnHaIPsec disabled")
    if m.use_mn_ha_ipsec is None:
        warn(f"{name}: UseMnHaIPsec not given (UMIP's default is enabled); "
             "denali runs without IPsec")
    if any(a.coa for a in m.binding_acl):
        fail(f"{name}: BindingAclPolicy with a care-of address: denali's "
             "ACL is per home address; use BindingAclPolicy <hoa> allow|deny")
    if m.home_links:
        fail(f"{name}: MnHomeLink is a mobile node's setting: import a home "
             "agent's file")
    for f_ in _MIP6D_IGNORED:
        if getattr(m, f_) is not None:
            warn(f"{name}: {f_} ignored (not a home agent setting)")
    if m.interface_preference:
        warn(f"{name}: MnIfPreference ignored (mobile node setting)")
    ha = obj.setdefault("ha", {})
    for key in list(_MIP6D_TO_HA.values()) + ["served_prefix", "acl"]:
        ha.pop(key, None)
    ha["interface"] = m.interfaces[0]
    for field, key in _MIP6D_TO_HA.items():
        v = getattr(m, field)
        if v is not None:
            ha[key] = _conf_value(v)
    if m.ha_served_prefixes:
        ha["served_prefix"] = ", ".join(m.ha_served_prefixes)
    if m.binding_acl:
        ha["acl"] = {a.hoa: "allow" if a.allow else "deny"
                     for a in m.binding_acl}


def _conf_value(v):
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, float):
        return f"{v:g}"
    if v == C.INFINITY:
        return "infinity"
    return str(v)


def _import_radvd(obj, text, name):
    try:
        from radvd import config as R
    except ImportError:
        fail(f"{name}: reading radvd.conf needs radvd.config, which is not "
             "installed", EXIT_FAILED)
    from dataclasses import fields
    try:
        rc = R.parse(text, name)
    except R.ConfigError as e:
        fail(str(e))
    _, ra_keys, _ = _spec_keys()
    modelled = {C.snake(k): k for k in ra_keys
                if k not in C.PREFIX_KEYS and k != "prefix"}
    ra = {}
    for iface in rc.interfaces:
        default = R.InterfaceConfig(name=iface.name)
        # derived defaults stay unset so they are derived again the same way
        derived = {
            "min_rtr_adv_interval": 0.33 * iface.max_rtr_adv_interval,
            "adv_default_lifetime": max(1, int(3 * iface.max_rtr_adv_interval)),
        }
        derived["home_agent_lifetime"] = iface.adv_default_lifetime
        sec, dropped = {}, []
        for f_ in fields(iface):
            if f_.name in ("name", "line", "lines", "prefixes"):
                continue
            v = getattr(iface, f_.name)
            if v == derived.get(f_.name, getattr(default, f_.name)):
                continue
            if f_.name in modelled:
                sec[modelled[f_.name]] = _conf_value(v)
            else:
                dropped.append(f_.name)
        if len(iface.prefixes) > 1:
            dropped.append(f"{len(iface.prefixes)} prefixes (one is "
                           "supported)")
        for p in iface.prefixes:
            sec["prefix"] = str(p.prefix)
            pdefault = R.PrefixConfig(prefix=p.prefix)
            for f_ in fields(p):
                v = getattr(p, f_.name)
                if f_.name in ("prefix", "line") or v == getattr(
                        pdefault, f_.name):
                    continue
                key = {C.snake(k): k for k in C.PREFIX_KEYS}.get(f_.name)
                if key:
                    sec[key] = _conf_value(v)
                else:
                    dropped.append(f"prefix {f_.name}")
        if dropped:
            fail(f"{name}: interface {iface.name}: denali's [ra] cannot "
                 "carry " + ", ".join(dropped) + "; remove them and import "
                 "again")
        ra[iface.name] = sec
    obj["ra"] = ra


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["radvd", "mip6d"]),
              required=True, help="file syntax to write")
@click.option("--staged", is_flag=True, help="export the staged config")
@click.pass_obj
def export(paths, fmt, staged):
    """Print the committed config as radvd.conf or mip6d.conf."""
    _, cfg = _view(paths, committed=not staged)
    if fmt == "radvd":
        click.echo(C.ra_as_radvd_text(cfg), nl=False)
    else:
        from ha.config.mip6d_conf import dump_mip6d
        click.echo(dump_mip6d(ha_as_mip6d(cfg)), nl=False)


def ha_as_mip6d(cfg):
    """The [ha] part as a UMIP mip6d.conf model (NodeConfig HA)."""
    from ha.config.mip6d_conf import BindingAcl, Mip6dConfig
    h = cfg.ha
    return Mip6dConfig(
        node_config="HA", debug_level=h.debug_level,
        interfaces=[h.interface], use_mn_ha_ipsec=False,
        ha_max_binding_life=h.max_binding_lifetime,
        default_binding_acl_policy="allow" if h.acl_default_allow else "deny",
        binding_acl=[BindingAcl(k, None, v) for k, v in h.acl.items()],
        send_mob_pfx_advs=h.send_mob_pfx_advs,
        min_mob_pfx_adv_interval=h.min_mob_pfx_adv_interval,
        max_mob_pfx_adv_interval=h.max_mob_pfx_adv_interval,
        ha_served_prefixes=([] if h.served_prefixes_derived
                            else list(h.served_prefixes)))


# ------------------------------------------------------ daemon console

def _port_of(path):
    try:
        return C.load_config(path, ra_check).ha.vt_port
    except C.DenaliConfError:
        return 7777


def _ports(*paths):
    """Console ports of the existing config files, in order, no repeats."""
    out = []
    for p in paths:
        port = _port_of(p) if os.path.exists(p) else None
        if port is not None and port not in out:
            out.append(port)
    return out or [7777]


def _request(line, ports):
    """Ask on each port in turn: the daemon listens on the vt_port of the
    config it last loaded, which a just-committed change may have moved."""
    from ha.daemon import console_client as cc
    for port in ports:
        try:
            return cc.request(line, port)
        except cc.DaemonNotRunning:
            pass
    raise cc.DaemonNotRunning(cc.DEFAULT_HOST, ports[0])


def _ask(paths, line):
    from ha.daemon import console_client as cc
    try:
        return _request(line, _ports(paths.conf, paths.prev))
    except cc.DaemonNotRunning as e:
        fail(str(e), EXIT_NOT_RUNNING)
    except OSError as e:
        fail(f"console: {e}", EXIT_FAILED)


def _print_answer(lines):
    from ha.daemon.console_client import is_error
    for line in lines:
        click.echo(line)
    if is_error(lines):
        raise click.exceptions.Exit(EXIT_FAILED)


@cli.command()
@click.option("--confirm", "seconds", type=click.IntRange(1, 3600),
              help="roll back unless haconf confirm runs within SECONDS")
@click.pass_obj
def apply(paths, seconds):
    """Tell denalid to reload the committed config."""
    if os.path.exists(paths.staged):
        warn("staged changes are not committed and are not applied")
    if seconds is None:
        _print_answer(_ask(paths, "reload"))
        return
    if os.path.exists(paths.confirm):
        fail("a rollback is already pending: haconf confirm first")
    if not os.path.exists(paths.prev):
        fail("no previous configuration to roll back to: commit first")
    _write(paths.rollback, C.read_text(paths.prev))
    answer = _ask(paths, "reload")
    _print_answer(answer)
    token = os.urandom(8).hex()
    _write(paths.confirm, f"0 {token}\n")
    pid = _spawn_waiter(paths, token, seconds)
    _write(paths.confirm, f"{pid} {token}\n")
    say(f"applied; run haconf confirm within {seconds} s or the previous "
        "configuration comes back")


def _spawn_waiter(paths, token, seconds):
    import subprocess
    p = subprocess.Popen(
        [sys.executable, "-m", "ha.haconf.cli", "--config", paths.conf,
         "rollback-waiter", token, str(seconds)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True,
        cwd="/", env=dict(os.environ, PYTHONPATH=os.pathsep.join(
            [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
            + [p for p in [os.environ.get("PYTHONPATH")] if p])))
    return p.pid


def _read_marker(path):
    try:
        with open(path) as f:
            pid, token = f.read().split()
        return int(pid), token
    except (FileNotFoundError, ValueError):
        return None, None


@cli.command("rollback-waiter", hidden=True)
@click.argument("token")
@click.argument("seconds", type=float)
@click.pass_obj
def rollback_waiter(paths, token, seconds):
    """(internal) Sleep, then restore the previous config if unconfirmed."""
    import time
    time.sleep(seconds)
    if _read_marker(paths.confirm)[1] != token:
        return
    claimed = paths.confirm + ".firing"
    try:
        os.rename(paths.confirm, claimed)  # confirm lost the race from here
    except FileNotFoundError:
        return
    ports = _ports(paths.conf, paths.rollback)  # the daemon runs conf
    try:
        _write(paths.conf, C.read_text(paths.rollback))
        os.unlink(paths.rollback)
    finally:
        os.unlink(claimed)
    try:
        _request("reload", ports)
    except OSError:
        pass
    say("rolled back to the previous configuration")


@cli.command()
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--manifest", type=click.Path(dir_okay=False),
              help="manifest.json (default: the one beside IMAGE)")
@click.option("--device", help="the disk to write (default: the one this system booted from)")
@click.option("--keep-config/--no-keep-config", default=True, show_default=True,
              help="keep partition 3 (/etc/denali)")
@click.option("--reboot", is_flag=True, help="reboot once written")
@click.pass_obj
def upgrade(paths, image, manifest, device, keep_config, reboot):
    """Write a new firmware image (checked against its manifest first)."""
    from ha.haconf import upgrade as U
    device = device or U.running_device()
    if device is None:
        fail("not running from a denali image: name the disk with --device")
    try:
        written = U.upgrade(image, device, manifest=manifest, keep_config=keep_config,
                            progress=say)
    except U.UpgradeError as e:
        fail(f"upgrade refused, nothing written: {e}")
    except OSError as e:
        fail(f"upgrade failed while writing {device}: {e}", EXIT_FAILED)
    kept = " (configuration kept)" if keep_config else ""
    say(f"wrote partitions {', '.join(str(p.n) for p in written)} to {device}{kept}")
    if reboot:
        os.sync()
        os.execvp("reboot", ["reboot", "-f"])
    say("reboot to run the new firmware")


@cli.command()
@click.pass_obj
def passwd(paths):
    """Set root's console password (kept with the config, applied at boot)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # Python 3.11 still has it; the image has no other crypt(3) binding
    password = click.prompt("new password", hide_input=True,
                            confirmation_prompt="retype new password", err=True)
    if len(password) < 6:
        fail("a password needs at least 6 characters")
    hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))
    path = os.path.join(os.path.dirname(os.path.abspath(paths.conf)), "root.passwd")
    from ha.config.atomic import atomic_write
    atomic_write(path, hashed + "\n", mode=0o600)
    say(f"password set in {path}: the console asks for it from the next boot")


@cli.command()
@click.pass_obj
def confirm(paths):
    """Keep the applied config: cancel the pending rollback."""
    import signal
    pid, token = _read_marker(paths.confirm)
    try:
        os.unlink(paths.confirm)
    except FileNotFoundError:
        if os.path.exists(paths.confirm + ".firing"):
            fail("too late: the rollback has started", EXIT_FAILED)
        fail("no rollback pending", EXIT_FAILED)
    try:
        os.unlink(paths.rollback)
    except FileNotFoundError:
        pass
    if pid and token and _cmdline_has(pid, token):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    say("confirmed; rollback cancelled")


def _cmdline_has(pid, token):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return token.encode() in f.read().split(b"\0")
    except OSError:
        return False


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="print the raw JSON")
@click.pass_obj
def status(paths, as_json):
    """Show denalid's status."""
    lines = _ask(paths, "status json")
    if as_json or not lines or lines[0].startswith("error"):
        _print_answer(lines)
        return
    import json
    try:
        data = json.loads("\n".join(lines))
    except ValueError:
        _print_answer(lines)
        return
    if not isinstance(data, dict):
        _print_answer(lines)
        return
    for k, v in data.items():
        say(f"{k}: {v if not isinstance(v, (dict, list)) else json.dumps(v)}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="answer in JSON")
@click.pass_obj
def bc(paths, as_json):
    """Show the binding cache."""
    _print_answer(_ask(paths, "bc json" if as_json else "bc"))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="answer in JSON")
@click.pass_obj
def bul(paths, as_json):
    """Show the binding update list (mobile node)."""
    _print_answer(_ask(paths, "bul json" if as_json else "bul"))


@cli.command()
@click.pass_obj
def log(paths):
    """Show denalid's recent log."""
    _print_answer(_ask(paths, "log"))


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell):
    """Print the shell completion script: eval "$(haconf completion bash)"."""
    from click.shell_completion import get_completion_class
    cls = get_completion_class(shell)
    source = cls(cli, {}, "haconf", "_HACONF_COMPLETE").source()
    for line in source.splitlines():
        click.echo(_fold_shell_line(line))


def _fold_shell_line(line, width=WIDTH):
    """Fold a long shell line with backslash-newline, outside '...' only.

    A backslash-newline is removed by bash, zsh and fish alike, in or out
    of double quotes, so the script means the same once folded.
    """
    out = []
    while len(line) > width:
        cut, quoted = -1, False
        for i, ch in enumerate(line[:width - 2]):
            if ch == "'":
                quoted = not quoted
            elif ch == " " and not quoted and line[:i].strip():
                cut = i
        if cut <= 0:
            break
        out.append(line[:cut] + " \\")
        line = "        " + line[cut + 1:]
    out.append(line)
    return "\n".join(out)


def main():
    cli(prog_name="haconf")


if __name__ == "__main__":
    main()
