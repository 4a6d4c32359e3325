"""haconf's files: the config, its staged edit, and the rollback of ``apply --confirm``.

    <config>           what denalid runs (after haconf apply)
    <config>.staged    set/unset/import edit this; commit checks and moves it
    <config>.prev      the config before the last commit
    <config>.rollback  what apply --confirm restores unless confirmed
    <config>.confirm   "pid token" of the waiter that will restore it

Every write is atomic (ha.config.atomic) and comes after the check: a
refused edit raises ConfigRefused or HaconfError and leaves every file as it
was.  Printing is the caller's (cli.py).
"""

import os
import re

from ha.config import model as C
from ha.haconf import grammar
from ha.haconf.errors import EXIT_FAILED, ConfigRefused, HaconfError
from ha.haconf.translate import ra_check


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


def write(path, text):
    """Write one of haconf's files: 0600 in a 0700 directory, always.

    Not only [auth] keys are secrets here: a radio's WPA key is in the same
    file, and .prev/.rollback hold yesterday's.  The file is born 0600
    (ha.config.atomic), so no reader ever sees it with a wider mode.
    """
    from ha.config.atomic import atomic_write, private_dir
    private_dir(os.path.dirname(os.path.abspath(path)))
    atomic_write(path, text)


def check(text, filename):
    """The DenaliConfig of *text* with every rule, RA sender's included."""
    try:
        return C.validate_text(text, filename, ra_check)
    except C.DenaliConfError as e:
        raise ConfigRefused(e) from None


def load_obj(text, filename):
    """The ConfigObj of *text* as written (syntax only: the file is there)."""
    try:
        return C.parse_text(text, filename)
    except C.DenaliConfError as e:
        raise ConfigRefused(e, EXIT_FAILED) from None


def view(paths, committed):
    """(ConfigObj as written, DenaliConfig) for show, get and export."""
    if committed:
        text, name = paths.committed_text(), paths.conf
    else:
        text = paths.staged_text()
        name = paths.staged if os.path.exists(paths.staged) else paths.conf
    raw = load_obj(text, name)
    try:
        cfg = C.validate_obj(raw, name, ra_check)
    except C.DenaliConfError as e:
        raise ConfigRefused(e, EXIT_FAILED) from None
    return raw, cfg


def editable(paths):
    """The staged view as a ConfigObj to edit and hand to stage()."""
    return load_obj(paths.staged_text(), paths.staged)


def stage(paths, obj):
    """Check the edited ConfigObj and write it as the staged config."""
    text = "\n".join(obj.write()) + "\n"
    cfg = check(text, paths.staged)
    write(paths.staged, text)
    return cfg


def set_values(paths, words, generated=None):
    """Stage ``[IFACE] KEY VALUE...``: (DenaliConfig, ["path = value", ...]).

    ``auth.<hoa>.key generate`` makes a random key (and the next free SPI if
    the subsection has none); each such (hoa, spi, key) is appended to
    *generated*, for the caller to print the mobile node's line.
    """
    obj = editable(paths)
    done, made = [], []
    for path, value in grammar.parse_words(words, obj):
        if grammar.is_secret(path) and value == GENERATE and path[0] == "radio":
            from ha.config.regulatory import new_passphrase
            value = new_passphrase()  # `haconf set wlan1 key generate`: a WPA2/SAE passphrase
        elif grammar.is_secret(path) and value == GENERATE:
            value = new_key()
            made.append(path[1])
        grammar.node(obj, path, True)[path[-1]] = value
        shown = grammar.MASK if grammar.is_secret(path) else value
        done.append(f"{grammar.label(path)} = {shown}")
    for hoa in made:
        entry = obj["auth"][hoa]
        if "spi" not in entry:
            entry["spi"] = str(next_spi(obj))
            done.append(f"auth.{hoa}.spi = {entry['spi']}")
    cfg = stage(paths, obj)
    if generated is not None:
        for hoa in made:
            generated.append(_key_of(cfg, hoa))
    return cfg, done


# ------------------------------------------------------- RFC 4285 keys

GENERATE = "generate"            # haconf set auth.<hoa>.key generate
KEY_OCTETS = 16                  # 128 bits, denali's floor (model.MIN_MN_HA_KEY)
FIRST_SPI = 256                  # RFC 4285 section 5: Mobility SPIs 0-255 are reserved
SEED_HOME_ADDRESS = "2001:db8::beef"  # raven's, in the seed's MN mip6d.conf


def new_key():
    """A random MN-HA key as hex (os.urandom: the kernel's CSPRNG)."""
    return os.urandom(KEY_OCTETS).hex()


def next_spi(obj):
    """The lowest SPI from FIRST_SPI that no [auth] subsection uses."""
    used = set()
    for entry in obj.get("auth", {}).values():
        try:
            used.add(int(entry.get("spi")))
        except (TypeError, ValueError, AttributeError):
            pass
    spi = FIRST_SPI
    while spi in used:
        spi += 1
    return spi


def mn_line(hoa, spi, key):
    """The mobile node's mip6d.conf line for this key (ha/config/mip6d_conf.py)."""
    return f'DenaliMnHaKey {hoa} {spi} "{key}";'


def _key_of(cfg, hoa):
    import ipaddress
    canon = str(ipaddress.IPv6Address(hoa))
    spi, key = cfg.auth[canon]
    return canon, spi, key


def canonical_hoa(hoa):
    import ipaddress
    try:
        return str(ipaddress.IPv6Address(hoa))
    except ValueError:
        raise HaconfError(f"{hoa!r} is not an IPv6 address: give the mobile "
                          "node's home address, e.g. 2001:db8::beef") from None


def _auth_entry(obj, canon):
    """The name of *obj*'s [auth] subsection for the address *canon*, or None."""
    import ipaddress
    for name in obj.get("auth", {}):
        try:
            if str(ipaddress.IPv6Address(name)) == canon:
                return name
        except ValueError:
            continue
    return None


def _add_key(obj, hoa, spi=None):
    """Put a new key for *hoa* into *obj*'s [auth]: the canonical address."""
    canon = canonical_hoa(hoa)
    if _auth_entry(obj, canon) is not None:
        raise HaconfError(f"{canon} already has a key: haconf set "
                          f"auth.{canon}.key generate replaces it")
    auth = obj.setdefault("auth", {})
    auth[canon] = {"spi": str(next_spi(obj) if spi is None else spi),
                   "key": new_key()}
    return canon


def add_key(paths, hoa, spi=None):
    """Stage a generated key for *hoa*: (DenaliConfig, (hoa, spi, key))."""
    obj = editable(paths)
    canon = _add_key(obj, hoa, spi)
    cfg = stage(paths, obj)
    return cfg, _key_of(cfg, canon)


def unconfigured(cfg):
    """True when acl_default = deny and no home address is configured (no
    [auth] key, no [[acl]] allow): the home agent refuses every binding."""
    return cfg.ha.enabled and not cfg.ha.acl_default_allow and \
        not any(cfg.ha.acl.values())


def init(paths, hoa=SEED_HOME_ADDRESS):
    """A new install's first configuration: write the config (the built-in
    default, or the staged edit if there is one) with a key for *hoa* when its
    [auth] is empty.  (DenaliConfig, (hoa, spi, key) or None), or None when
    the config file exists already (nothing is done then)."""
    if os.path.exists(paths.conf):
        return None
    obj = editable(paths)
    made = None
    if not obj.get("auth"):
        made = _add_key(obj, hoa)
    text = "\n".join(obj.write()) + "\n"
    cfg = check(text, paths.conf)
    write(paths.conf, text)
    if os.path.exists(paths.staged):
        os.unlink(paths.staged)  # it is the config now
    return cfg, (_key_of(cfg, made) if made else None)


def unset_values(paths, words):
    """Stage the removal of ``[IFACE] KEY...``: (DenaliConfig, ["path unset", ...])."""
    obj = editable(paths)
    done = []
    for path, _ in grammar.parse_words(words, obj, want_values=False, whole_blocks=True):
        node = grammar.node(obj, path, False)
        if node is None or path[-1] not in node:
            raise HaconfError(f"{grammar.label(path)} is not set")
        del node[path[-1]]
        done.append(f"{grammar.label(path)} unset")
    return stage(paths, obj), done


def _raw_get(raw, path):
    node = grammar.node(raw, path, False)
    if node is None or path[-1] not in node:
        return None
    v = node[path[-1]]
    return ", ".join(v) if isinstance(v, list) else v


def get_values(paths, words, committed):
    """Each setting as typed in the file, else its checked default, as text."""
    from ha.haconf.output import fmt
    raw, cfg = view(paths, committed)
    out = []
    for path, _ in grammar.parse_words(words, raw, want_values=False):
        v = _raw_get(raw, path)
        if v is None:
            node = cfg.values
            for p in path:
                node = node.get(p) if isinstance(node, dict) else None
            if node is None and path[0] in ("ra", "radio") and \
                    path[1] not in cfg.values.get(path[0], {}):
                raise HaconfError(f"no interface {path[1]} in [{path[0]}]")
            if node is None and len(path) == 4 and \
                    path[2] not in cfg.values["ra"].get(path[1], {}):
                raise HaconfError(f"no block [[[{path[2]}]]] in [ra] {path[1]}: "
                                  f"haconf set {' '.join(path[:2])} {path[2]} "
                                  f"{path[3]} <value> makes it")
            v = fmt(node)
        out.append(v)
    return out


def changes(paths):
    """The staged edit as unified diff lines ([] when there is none)."""
    import difflib
    if not os.path.exists(paths.staged):
        return []
    old = paths.committed_text().splitlines(keepends=True)
    new = C.read_text(paths.staged).splitlines(keepends=True)
    secret = _auth_key_lines(old) | _auth_key_lines(new)
    # file names, not paths: a long path would not fit the serial console's 80 columns
    out = []
    for line in difflib.unified_diff(old, new, os.path.basename(paths.conf),
                                     os.path.basename(paths.staged)):
        if line[:1] in "+- " and line[1:] in secret and not line.startswith(("+++", "---")):
            line = line[0] + line[1:].split("=")[0] + "= " + grammar.MASK  # a key, a passphrase
        out.append(line.rstrip("\n"))
    return out


def _auth_key_lines(lines):
    """The `key = ...` lines of [auth] and [radio] subsections (MN-HA keys, WPA2/SAE
    passphrases), as they are in the file."""
    found, inside = set(), False
    for line in lines:
        m = re.match(r"\s*\[\s*([^\[\]]+?)\s*\]\s*$", line)
        if m and not line.lstrip().startswith("[["):
            inside = m.group(1) in ("auth", "radio")
        elif inside and re.match(r"\s*key\s*=", line):
            found.add(line)
    return found


def commit(paths):
    """Make the staged config the config (old one kept as .prev); None if none staged."""
    if not os.path.exists(paths.staged):
        return None
    text = C.read_text(paths.staged)
    cfg = check(text, paths.staged)
    write(paths.prev, paths.committed_text())
    write(paths.conf, text)
    os.unlink(paths.staged)
    return cfg


def revert(paths):
    """Drop the staged edit; False if there was none."""
    try:
        os.unlink(paths.staged)
    except FileNotFoundError:
        return False
    return True


# ------------------------------------------------------ apply --confirm

def prepare_rollback(paths):
    """Keep .prev as the config to restore, before denalid reloads the new one."""
    if os.path.exists(paths.confirm):
        raise HaconfError("a rollback is already pending: haconf confirm first")
    if not os.path.exists(paths.prev):
        raise HaconfError("no previous configuration to roll back to: commit "
                          "first")
    write(paths.rollback, C.read_text(paths.prev))


def arm_rollback(paths, token, pid=0):
    write(paths.confirm, f"{pid} {token}\n")


def read_marker(path):
    """(pid, token) of a .confirm file, (None, None) without one."""
    try:
        with open(path) as f:
            pid, token = f.read().split()
        return int(pid), token
    except (FileNotFoundError, ValueError):
        return None, None


def fire_rollback(paths, token):
    """Restore the rollback copy if *token* still waits; True when restored.

    The waiter claims the marker by renaming it, so a confirm that comes
    later finds it gone (too late) and one that came first has removed it.
    """
    if read_marker(paths.confirm)[1] != token:
        return False
    claimed = paths.confirm + ".firing"
    try:
        os.rename(paths.confirm, claimed)  # confirm lost the race from here
    except FileNotFoundError:
        return False
    try:
        write(paths.conf, C.read_text(paths.rollback))
        os.unlink(paths.rollback)
    finally:
        os.unlink(claimed)
    return True


def cancel_rollback(paths):
    """Remove the pending rollback: (pid, token) of its waiter, to be stopped."""
    pid, token = read_marker(paths.confirm)
    try:
        os.unlink(paths.confirm)
    except FileNotFoundError:
        if os.path.exists(paths.confirm + ".firing"):
            raise HaconfError("too late: the rollback has started",
                              EXIT_FAILED) from None
        raise HaconfError("no rollback pending", EXIT_FAILED) from None
    try:
        os.unlink(paths.rollback)
    except FileNotFoundError:
        pass
    return pid, token
