"""haconf: the serial-console configuration tool of denali.

    haconf set essid home channel 3          (the home radio, as typed)
    haconf set wlan1 essid remote channel 8
    haconf set ra.wlan0.MaxRtrAdvInterval 10
    haconf set ra wlan0 prefix 2001:db8:5::/64 AdvPreferredLifetime 600
    haconf changes / commit / revert / apply [--confirm 60] / confirm
    haconf init                              (first boot: the config, with a key)
    haconf auth add 2001:db8::beef           (an RFC 4285 key for a mobile node)
    haconf upgrade http://host/denali-i386.upgrade   (into the other A/B slot)
    haconf backup / restore FILE / reset --yes

New installs are closed: the built-in config has ``acl_default = deny``, so
denalid serves only home addresses with an [auth] key or an [[acl]] allow.
``haconf init`` (run by the image's first boot, S50denali) writes the config
when there is none, with a generated key for the seed's home address
2001:db8::beef, and prints the line the mobile node's mip6d.conf needs;
``haconf auth add HOA`` (or ``set auth.HOA.key generate``) stages one more.
It also gives each protected [radio] cell (security wpa2, sae or wpa2-sae)
that has no key a generated passphrase, printed that once; ``haconf show``
masks radio keys as it masks [auth] keys, ``show --secrets`` prints them.
``commit`` warns while no home address is configured.

Changes are staged in <config>.staged beside the config; ``commit`` checks
them and replaces the config atomically (the old one is kept as
<config>.prev); ``apply`` asks denalid to reload.  ``apply --confirm N``
rolls back to <config>.prev unless ``haconf confirm`` runs within N seconds
(OpenWrt style): a detached waiter holds the token written in
<config>.confirm and claims it by renaming the file before it restores.

This module is the click commands only.  The words of set/get are
grammar.py's, the files staging.py's, radvd.conf and mip6d.conf
translate.py's, the questions to denalid denalid.py's, the printing
output.py's.  They raise HaconfError; ``_Group`` alone turns it into the
message and the exit status.

Exit status: 0 ok, 1 failed, 2 refused (bad input: nothing was written),
3 denalid not running.  Output fits 80 columns, no colour, no pager.
Only click and ha.config.model load at start (no asyncio, no pyroute2).
"""

import os
import sys

import click

from ha.config import model as C
from ha.haconf import denalid, staging
from ha.haconf.errors import EXIT_FAILED, HaconfError
from ha.haconf.output import WIDTH, fold_shell_line, report, say, show_tree, warn, wrap


class _Group(click.Group):
    """click.Group that prints haconf's refusals, its error messages wrapped to 79 columns."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except HaconfError as e:
            report(e)
            raise click.exceptions.Exit(e.code) from None

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
            click.echo(wrap("Error: " + e.format_message()), err=True)
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
    ctx.obj = staging.Paths(conf)


def _staged(cfg, done):
    for w in cfg.warnings:
        warn(w)
    for line in done:
        say(line)
    say("staged; see haconf changes, then haconf commit")


# --------------------------------------------------------------- editing

@cli.command("set", context_settings={"ignore_unknown_options": True,
                                      "help_option_names": ["--help"]})
@click.argument("words", nargs=-1, required=True)
@click.pass_obj
def set_(paths, words):
    """Stage settings: [IFACE] KEY VALUE [KEY VALUE]... or a.b.c VALUE.

    A bare radio or RA key applies to the radio with role home (wlan0)
    unless an interface name comes first.  After `ra IFACE` come that
    interface's RA keys and its blocks' (prefix P, route P, rdnss, dnssl):
    haconf set ra wlan0 route 2001:db8:7::/48 AdvRoutePreference low.
    Values are kept as typed, even those starting with '-' (so only --help
    shows this help).
    """
    generated = []
    _staged(*staging.set_values(paths, words, generated))
    for hoa, spi, key in generated:
        _tell_mobile_node(hoa, spi, key)


def _tell_mobile_node(hoa, spi, key):
    """How to give the mobile node its key: the exact mip6d.conf line."""
    say(f"RFC 4285 key for {hoa}, SPI {spi}. On the mobile node, put this line "
        "in its mip6d.conf, before its MnHomeLink block, and chmod 600 the file:")
    click.echo(staging.mn_line(hoa, spi, key))  # one line, never wrapped
    say(f"haconf auth show {hoa} prints this line again")


@cli.group(cls=click.Group)
def auth():
    """RFC 4285 MN-HA keys of home addresses ([auth])."""


@auth.command("add")
@click.argument("hoa")
@click.option("--spi", type=click.IntRange(0, 0xFFFFFFFF),
              help="Mobility SPI (default: the next free from 256)")
@click.pass_obj
def auth_add(paths, hoa, spi):
    """Stage a generated 128-bit key for home address HOA."""
    cfg, (canon, spi, key) = staging.add_key(paths, hoa, spi)
    _staged(cfg, [f"auth.{canon}.spi = {spi}", f"auth.{canon}.key = "
                  "********"])
    _tell_mobile_node(canon, spi, key)


@auth.command("show")
@click.argument("hoa", required=False)
@click.option("--committed", is_flag=True, help="read the committed config")
@click.pass_obj
def auth_show(paths, hoa, committed):
    """Print the mobile node's DenaliMnHaKey line for HOA (or every key)."""
    _, cfg = staging.view(paths, committed)
    want = None if hoa is None else staging.canonical_hoa(hoa)
    lines = [staging.mn_line(h, spi, key) for h, (spi, key) in cfg.auth.items()
             if want in (None, h)]
    if not lines:
        raise HaconfError(f"no key for {want}: haconf auth add {want} makes one"
                          if want else "[auth] is empty: haconf auth add HOA makes a key")
    for line in lines:
        click.echo(line)  # secrets, asked for by name: one line each, never wrapped


@cli.command()
@click.option("--hoa", default=staging.SEED_HOME_ADDRESS, show_default=True,
              help="home address to make a key for")
@click.pass_obj
def init(paths, hoa):
    """First configuration: write the config, with a key for HOA and a
    passphrase for each protected radio cell, once."""
    if os.path.exists(paths.conf):
        say(f"{paths.conf} exists: nothing done")
        return
    cells = _radio_passphrases(paths)
    done = staging.init(paths, hoa)
    if done is None:
        say(f"{paths.conf} exists: nothing done")
        return
    cfg, made = done
    for w in cfg.warnings:
        warn(w)
    say(f"wrote {paths.conf}: closed by default (acl_default = deny), only "
        "home addresses in [auth] or allowed in [[acl]] get a binding")
    if made:
        _tell_mobile_node(*made)
    for name in cells:
        r = cfg.radio(name)
        say(f"radio {name} ({r.essid!r}, {r.security}) passphrase, shown once "
            "(haconf show --secrets radio prints it again):")
        click.echo(r.key)  # the secret alone on its line, never wrapped
    _warn_unconfigured(cfg)


PROTECTED = ("wpa2", "sae", "wpa2-sae")


def _radio_passphrases(paths):
    """Stage a generated passphrase for each [radio] cell whose security is
    set and not open and that has no key; the cells' names (init writes them)."""
    from ha.config.regulatory import new_passphrase
    obj = staging.editable(paths)
    cells = [n for n, r in (obj.get("radio") or {}).items()
             if r.get("security") in PROTECTED and not r.get("key")]
    if cells:
        for n in cells:
            obj["radio"][n]["key"] = new_passphrase()
        staging.stage(paths, obj)
    return cells


def _masked_radio_keys(values):
    """A copy of the checked tree with each radio's WPA2/SAE key masked."""
    from ha.haconf.grammar import MASK
    out = dict(values)
    radios = {}
    for n, r in (values.get("radio") or {}).items():
        r = dict(r)
        if r.get("key"):
            r["key"] = MASK
        radios[n] = r
    if "radio" in values:
        out["radio"] = radios
    return out


def _warn_unconfigured(cfg):
    if staging.unconfigured(cfg):
        warn("no home address is configured ([auth] is empty, no [[acl]] "
             "allow) and acl_default = deny: denalid refuses every binding; "
             f"haconf auth add {staging.SEED_HOME_ADDRESS} makes a key")


@cli.command()
@click.argument("keys", nargs=-1, required=True)
@click.pass_obj
def unset(paths, keys):
    """Stage removal of settings (back to their defaults): [IFACE] KEY..."""
    _staged(*staging.unset_values(paths, keys))


@cli.command()
@click.argument("words", nargs=-1, required=True)
@click.option("--committed", is_flag=True, help="read the committed config")
@click.pass_obj
def get(paths, words, committed):
    """Print settings: [IFACE] KEY... or a.b.c (staged view)."""
    for v in staging.get_values(paths, words, committed):
        click.echo(v)  # as typed: no wrapping, leading spaces kept


@cli.command()
@click.argument("section", required=False)
@click.option("--committed", is_flag=True, help="show the committed config")
@click.option("--secrets", is_flag=True,
              help="print [auth] and radio keys (masked otherwise)")
@click.pass_obj
def show(paths, section, committed, secrets):
    """Show the configuration (staged view), defaults marked."""
    raw, cfg = staging.view(paths, committed)
    if section and section.split(".")[0] not in C.SECTIONS:
        raise HaconfError(f"no section {section!r}: use ha, ra, radio, auth "
                          "or e.g. ra.wlan0")
    if not committed and os.path.exists(paths.staged):
        say("# staged, not committed (haconf changes)")
    values = cfg.values if secrets else _masked_radio_keys(cfg.values)
    show_tree(values, raw, [], section.split(".") if section else [],
              secrets=secrets)


@cli.command()
@click.pass_obj
def changes(paths):
    """Show staged changes as a diff against the committed config."""
    diff = staging.changes(paths)
    if not diff:
        say("no staged changes")
    for line in diff:
        click.echo(line)


@cli.command()
@click.pass_obj
def commit(paths):
    """Check the staged config and make it the config (atomically)."""
    cfg = staging.commit(paths)
    if cfg is None:
        say("nothing to commit")
        return
    for w in cfg.warnings:
        warn(w)
    _warn_unconfigured(cfg)
    say(f"committed to {paths.conf}; haconf apply to use it")


@cli.command()
@click.pass_obj
def revert(paths):
    """Drop the staged changes."""
    say("staged changes dropped" if staging.revert(paths) else "no staged changes")


# -------------------------------------------------------- import/export

@cli.command("import")
@click.argument("files", nargs=-1, required=True)
@click.pass_obj
def import_(paths, files):
    """Stage settings from mip6d.conf and/or radvd.conf files."""
    from ha.haconf.translate import import_files
    obj = staging.editable(paths)
    done = import_files(obj, files, warn)
    _staged(staging.stage(paths, obj), done)


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["radvd", "mip6d"]),
              required=True, help="file syntax to write")
@click.option("--staged", is_flag=True, help="export the staged config")
@click.pass_obj
def export(paths, fmt, staged):
    """Print the committed config as radvd.conf or mip6d.conf."""
    from ha.haconf.translate import export_text
    _, cfg = staging.view(paths, committed=not staged)
    click.echo(export_text(cfg, fmt), nl=False)


# ------------------------------------------------------ daemon console

def _print_answer(lines):
    for line in lines:
        click.echo(line)
    if denalid.is_error(lines):
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
        _print_answer(denalid.ask(paths, "reload"))
        return
    staging.prepare_rollback(paths)
    _print_answer(denalid.ask(paths, "reload"))
    token = os.urandom(8).hex()
    staging.arm_rollback(paths, token)
    staging.arm_rollback(paths, token, _spawn_waiter(paths, token, seconds))
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
            [os.path.dirname(os.path.dirname(os.path.dirname(
                os.path.abspath(__file__))))]
            + [p for p in [os.environ.get("PYTHONPATH")] if p])))
    return p.pid


@cli.command("rollback-waiter", hidden=True)
@click.argument("token")
@click.argument("seconds", type=float)
@click.pass_obj
def rollback_waiter(paths, token, seconds):
    """(internal) Sleep, then restore the previous config if unconfirmed."""
    import time
    time.sleep(seconds)
    if staging.read_marker(paths.confirm)[1] != token:
        return
    ports = denalid.ports(paths.conf, paths.rollback)  # the daemon runs conf
    if not staging.fire_rollback(paths, token):
        return
    try:
        denalid.request("reload", ports)
    except OSError:
        pass
    say("rolled back to the previous configuration")


@cli.command()
@click.pass_obj
def confirm(paths):
    """Keep the applied config: cancel the pending rollback."""
    import signal
    pid, token = staging.cancel_rollback(paths)
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
    lines = denalid.ask(paths, "status json")
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
    _print_answer(denalid.ask(paths, "bc json" if as_json else "bc"))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="answer in JSON")
@click.pass_obj
def bul(paths, as_json):
    """Show the binding update list (mobile node)."""
    _print_answer(denalid.ask(paths, "bul json" if as_json else "bul"))


@cli.command()
@click.pass_obj
def log(paths):
    """Show denalid's recent log."""
    _print_answer(denalid.ask(paths, "log"))


# ------------------------------------------------------ the board

@cli.command()
@click.argument("source", metavar="SRC")
@click.option("--insecure", is_flag=True,
              help="write a bundle whose manifest is unsigned or cannot be checked")
@click.option("--reboot", is_flag=True, help="reboot into the new slot once written")
@click.pass_obj
def upgrade(paths, source, insecure, reboot):
    """Write a firmware bundle into the other slot; the current one stays.

    SRC is denali-ARCH.upgrade from build.sh: a file (a USB stick's), a
    device, - for stdin, or an http(s) URL, read as a stream.  The
    signature is checked before anything is written, each part's sha256 as
    it is written; then the boot loader starts the new slot on trial.
    """
    from ha.haconf import upgrade as U
    try:
        target = U.running_target()
        U.upgrade(source, target, insecure=insecure, progress=say)
    except U.UpgradeError as e:
        raise HaconfError(f"upgrade refused, the running slot and the boot loader are "
                          f"untouched: {e}") from None
    except OSError as e:
        raise HaconfError(f"upgrade failed while writing slot {target.slot}: {e}; the "
                          f"running slot {target.running} still boots",
                          EXIT_FAILED) from None
    if reboot:
        os.sync()
        os.execvp("reboot", ["reboot"])
    say("reboot to run the new firmware")


def _conf_dir(paths):
    return os.path.dirname(os.path.abspath(paths.conf))


def _firmware_version():
    try:
        with open("/usr/share/denali/VERSION") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


@cli.command()
@click.option("-o", "--output", metavar="FILE",
              help="where to write it (default /tmp/denali-backup-DATE.tar)")
@click.pass_obj
def backup(paths, output):
    """Save the config and keys (/etc/denali) in one file, mode 0600."""
    import time
    from ha.config.atomic import atomic_write
    from ha.haconf import backup as B
    d = _conf_dir(paths)
    if not os.path.isdir(d):
        raise HaconfError(f"no config directory {d}: nothing to back up")
    data = B.make_backup(d, _firmware_version())
    path = output or time.strftime("/tmp/denali-backup-%Y%m%d-%H%M%S.tar", time.gmtime())
    try:
        atomic_write(path, data)
    except OSError as e:
        raise HaconfError(f"cannot write {path}: {e.strerror or e}", EXIT_FAILED) from None
    say(f"{len(B.config_files(d))} files of {d} in {path} ({len(data) >> 10} KiB, mode 0600: "
        "it holds the keys)")
    click.echo(path)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.pass_obj
def restore(paths, file):
    """Put back a haconf backup (checked whole before anything is replaced)."""
    from ha.haconf import backup as B
    try:
        files = B.read_backup(file)
        B.check_files(files, os.path.basename(paths.conf))
    except B.BackupRefused as e:
        raise HaconfError(f"restore refused, nothing changed: {e}") from None
    try:
        names = B.restore(_conf_dir(paths), files)
    except OSError as e:  # a full or failing partition: the files not yet renamed are the old ones
        raise HaconfError(f"restore failed: {e}", EXIT_FAILED) from None
    say(f"restored {', '.join(names)}; haconf apply (or a reboot) runs it")


@cli.command()
@click.option("--yes", is_flag=True, help="really erase the config and keys")
@click.pass_obj
def reset(paths, yes):
    """Back to factory defaults: erase /etc/denali, then write a new config."""
    from ha.haconf import backup as B
    d = _conf_dir(paths)
    if not yes:
        raise HaconfError(f"haconf reset erases every file in {d} (config, keys, "
                          "passphrases, root's password): haconf backup first, then "
                          "haconf reset --yes")
    try:
        gone = B.reset(d)
    except OSError as e:
        raise HaconfError(f"reset failed: {e}", EXIT_FAILED) from None
    say(f"removed {', '.join(gone) or 'nothing'} from {d}")
    click.get_current_context().invoke(init)
    say("factory config written: haconf apply (or a reboot) runs it")


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
        raise HaconfError("a password needs at least 6 characters")
    hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))
    path = os.path.join(os.path.dirname(os.path.abspath(paths.conf)), "root.passwd")
    from ha.config.atomic import atomic_write
    atomic_write(path, hashed + "\n", mode=0o600)
    say(f"password set in {path}: the console asks for it from the next boot")


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell):
    """Print the shell completion script: eval "$(haconf completion bash)"."""
    from click.shell_completion import get_completion_class
    cls = get_completion_class(shell)
    source = cls(cli, {}, "haconf", "_HACONF_COMPLETE").source()
    for line in source.splitlines():
        click.echo(fold_shell_line(line))


def main():
    cli(prog_name="haconf")


if __name__ == "__main__":
    main()
