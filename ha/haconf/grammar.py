"""haconf's key-word grammar: the words of ``set``, ``unset`` and ``get``.

    haconf set essid home channel 3            bare keys: the home radio
    haconf set wlan1 essid remote channel 8    an interface name first
    haconf set ra.wlan0.MaxRtrAdvInterval 10   a dotted path
    haconf set ha.acl.2001:db8::beef deny      an [[acl]] entry
    haconf set auth.2001:db8::beef.key <hex>   an RFC 4285 key (and .spi)
    haconf set uplink.interface eth0           [uplink], by dotted path only
    haconf set system.syslog_host logs:514     [system], the same way
    haconf set ra wlan0 AdvDefaultPreference high           an [ra] interface's key
    haconf set ra wlan0 prefix 2001:db8:5::/64 AdvPreferredLifetime 600
    haconf set ra wlan0 route 2001:db8:7::/48 AdvRoutePreference low
    haconf set ra wlan0 rdnss addresses 2001:db8::53 AdvRDNSSLifetime 1800
    haconf unset ra wlan0 route 2001:db8:7::/48               (the whole block)

A bare key is looked up in [radio], then [ra], then [ha], in the
configspec's own spelling whatever the case typed.  After the word ``ra``
the words follow the file's own nesting: an interface, then its keys, or a
block (``prefix P``, ``route P``, ``rdnss [TAG]``, ``dnssl [TAG]``, the
sub-subsections radvd.conf's blocks become) and that block's keys; a key the
block does not have goes back to the interface.  ``prefix P`` is a block
only when P looks like an address and (for set) a prefix option follows;
alone it is the interface's ``prefix = P``.  The options of the
interface's own prefix (``prefix =``) are its interface-level keys, so
``ra wlan0 prefix <that prefix> AdvValidLifetime 600`` sets those.  Each setting becomes a
path tuple (("radio", "wlan0", "channel"), ("ha", "acl", hoa)...).  Bad words
raise HaconfError with what is allowed; nothing here writes anything.
"""

import re

from ha.config import model as C
from ha.haconf.errors import HaconfError

RADIO_DEFAULT_HINT = "haconf set wlan0 essid home"

_SPEC_CACHE = []
AUTH_KEYS = ("spi", "key")  # of an [auth] subsection (denali.spec)
MASK = "********"  # what haconf prints instead of an MN-HA key


def is_secret(path):
    """True for a setting haconf never prints: an [auth] key, a radio's passphrase."""
    return len(path) == 3 and path[0] in ("auth", "radio") and path[2] == "key"


def spec_keys():
    """(ha keys, ra keys, radio keys) as spelled in the configspec."""
    if not _SPEC_CACHE:
        spec = C.load_spec()
        _SPEC_CACHE.append((list(spec["ha"].scalars),
                            list(spec["ra"]["__many__"].scalars),
                            list(spec["radio"]["__many__"].scalars)))
    return _SPEC_CACHE[0]


def block_keys():
    """{block kind: its keys as spelled in the configspec} of an [ra] interface."""
    many = C.load_spec()["ra"]["__many__"]
    return {k: list(many[f"__{k}__"].scalars) for k in C.RA_BLOCKS}


def uplink_keys(section="uplink"):
    """The [uplink] (or [system]) keys as spelled in the configspec."""
    return list(C.load_spec()[section].scalars)


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
        raise HaconfError("no single radio has role home: name the radio, "
                          "e.g. " + RADIO_DEFAULT_HINT)
    return homes[0]


def _resolve_dotted(word):
    ha_keys, ra_keys, radio_keys = spec_keys()
    parts = word.split(".")
    if parts[0] == "auth":
        # auth.<home address>.spi|key: the address has no dots (IPv6)
        if len(parts) < 3 or parts[-1] not in AUTH_KEYS:
            raise HaconfError(f"{word}: use auth.<home address>.spi or "
                              "auth.<home address>.key, e.g. "
                              "auth.2001:db8::beef.spi 256")
        return ("auth", ".".join(parts[1:-1]), parts[-1])
    if parts[0] == "ha":
        if len(parts) >= 3 and parts[1] == "acl":
            return ("ha", "acl", ".".join(parts[2:]))
        key = _canon(".".join(parts[1:]), ha_keys) if len(parts) == 2 else None
        if not key:
            raise HaconfError(f"{word}: unknown setting; [ha] has: "
                              + ", ".join(ha_keys) + ", acl.<home address>")
        return ("ha", key)
    if parts[0] in ("uplink", "system"):
        # dotted only: a bare `interface` or `address` is the home radio's
        keys = uplink_keys(parts[0])
        key = _canon(".".join(parts[1:]), keys) if len(parts) == 2 else None
        if not key:
            raise HaconfError(f"{word}: unknown setting; [{parts[0]}] has: " + ", ".join(keys))
        return (parts[0], key)
    if parts[0] in ("ra", "radio") and len(parts) == 3:
        keys = ra_keys if parts[0] == "ra" else radio_keys
        key = _canon(parts[2], keys)
        if not key:
            raise HaconfError(f"{word}: unknown setting; [{parts[0]}] has: "
                              + ", ".join(keys))
        return (parts[0], parts[1], key)
    if parts[0] == "ra":
        raise HaconfError(f"{word}: an [ra] setting is ra.<interface>.<key>; a block's "
                          "(prefix, route, rdnss, dnssl) is reached by words, e.g. "
                          + RA_BLOCK_EXAMPLE)
    raise HaconfError(f"{word}: not a setting: use ha.<key>, ha.acl.<home "
                      "address>, ra.<interface>.<key>, "
                      "radio.<interface>.<key>, uplink.<key>, system.<key> or auth.<home address>.key")


def _resolve_bare(word, iface, obj):
    """A key without section: radio first, then ra, then ha."""
    ha_keys, ra_keys, radio_keys = spec_keys()
    key = _canon(word, radio_keys)
    if key:
        return ("radio", iface or _home_radio(obj), key)
    key = _canon(word, ra_keys)
    if key:
        return ("ra", iface or _home_radio(obj), key)
    key = _canon(word, ha_keys)
    if key:
        return ("ha", key)
    raise HaconfError(
        f"unknown setting {word!r}: radio settings are "
        + ", ".join(radio_keys) + "; RA settings are those of radvd.conf "
        "(e.g. MaxRtrAdvInterval); [ha] settings are " + ", ".join(ha_keys)
        + "; or give a dotted path like ra.wlan0.MaxRtrAdvInterval")


def _is_interface_word(word, obj):
    return word in _interfaces(obj) or bool(re.fullmatch(r"wlan\d+", word))


RA_SET_EXAMPLE = "haconf set ra wlan0 AdvDefaultPreference high"
RA_BLOCK_EXAMPLE = "haconf set ra wlan0 prefix 2001:db8:5::/64 AdvPreferredLifetime 600"
RA_BLOCK_EXAMPLES = {
    "prefix": RA_BLOCK_EXAMPLE,
    "route": "haconf set ra wlan0 route 2001:db8:7::/48 AdvRoutePreference low",
    "rdnss": "haconf set ra wlan0 rdnss addresses 2001:db8::53",
    "dnssl": "haconf set ra wlan0 dnssl domains example.com",
}
_IFNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")  # IFNAMSIZ - 1


def _ra_section(obj, iface):
    ra = obj.get("ra", {})
    sec = ra.get(iface) if hasattr(ra, "get") else None
    return sec if hasattr(sec, "sections") else None


def _block(obj, iface, kind, arg):
    """(section name, or None for the interface itself) of block *kind* *arg*.

    A prefix or route is matched by its network as model.block_prefix writes
    it, so 2001:db8:5:0::/64 finds [[[prefix 2001:db8:5::/64]]]; the
    interface's own prefix (``prefix =``) is the interface level."""
    sec = _ra_section(obj, iface)
    blocks = [b for b in (sec.sections if sec is not None else [])
              if C.ra_block_kind(b) == kind]
    if kind in ("prefix", "route"):
        try:
            canon, net = C.block_prefix(kind, arg)
        except ValueError as e:
            raise HaconfError(f"ra {iface} {kind} {arg}: {e}") from None
        if kind == "prefix" and sec is not None and sec.get("prefix"):
            try:
                if C.block_prefix("prefix", sec["prefix"])[0] == canon:
                    return None
            except ValueError:
                pass  # the staged file's own error; commit reports it
        for b in blocks:
            try:
                if C.block_prefix(kind, b.split(None, 1)[1])[0] == canon:
                    return b
            except (ValueError, IndexError):
                continue
        return f"{kind} {canon}"
    name = f"{kind} {arg}" if arg else kind
    for b in blocks:
        if " ".join(b.split()).lower() == name.lower():
            return b
    return name


def _parse_ra(words, i, obj, want_values, out, whole_blocks):
    """The words after ``ra``: INTERFACE {KEY VALUE | BLOCK {KEY VALUE}}...; the
    index after the last word used (all of them: the ``ra`` form runs to the end)."""
    ra_keys = spec_keys()[1]
    bkeys = block_keys()
    if i == len(words):
        raise HaconfError("ra: which interface? e.g. " + RA_SET_EXAMPLE)
    iface = words[i]
    if iface.lower() in C.RA_BLOCKS or _canon(iface, ra_keys):
        raise HaconfError(f"ra {iface}: which interface? name it first, e.g. "
                          + RA_SET_EXAMPLE)
    if not _IFNAME.fullmatch(iface):
        raise HaconfError(f"ra {iface}: not an interface name: use up to 15 letters, "
                          "digits, '.', '-' or '_', e.g. " + RA_SET_EXAMPLE)
    i += 1
    if i == len(words):
        raise HaconfError(f"ra {iface}: which setting? e.g. " + RA_SET_EXAMPLE)
    block = kind = None  # the block the keys go to (None: the interface)
    while i < len(words):
        w = words[i]
        low = w.lower()
        nxt = words[i + 1] if i + 1 < len(words) else None
        after = words[i + 2] if i + 2 < len(words) else None
        is_block = low in C.RA_BLOCKS and (
            low != "prefix" or (nxt is not None and ":" in nxt and (
                not want_values or (after is not None and _canon(after, bkeys["prefix"])))))
        if is_block:
            kind = low
            if kind in ("prefix", "route"):
                if nxt is None:
                    raise HaconfError(f"ra {iface} {kind}: which prefix? e.g. "
                                      + RA_BLOCK_EXAMPLES[kind])
                block, i = _block(obj, iface, kind, nxt), i + 2
            elif nxt is not None and not _canon(nxt, bkeys[kind]) and \
                    not _canon(nxt, ra_keys) and re.fullmatch(r"[A-Za-z0-9_-]{1,16}", nxt):
                block, i = _block(obj, iface, kind, nxt), i + 2  # rdnss 2, dnssl extra
            else:
                block, i = _block(obj, iface, kind, ""), i + 1
            if i == len(words):
                if whole_blocks and block is not None:
                    out.append((("ra", iface, block), None))
                    return i
                raise HaconfError(f"ra {iface} {kind}: which setting? {kind} has: "
                                  + ", ".join(bkeys[kind]) + "; e.g. "
                                  + RA_BLOCK_EXAMPLES[kind])
            continue
        key = _canon(w, bkeys[kind]) if kind else None
        if key and block is not None:
            path = ("ra", iface, block, key)
        elif key and kind == "prefix" and key in C.PREFIX_KEYS:
            path = ("ra", iface, key)  # the interface's own prefix: its own keys
        elif key and kind == "prefix":
            raise HaconfError(f"ra {iface} prefix: {key} is a key of a [[[prefix ...]]] "
                              "block; the interface's own prefix (prefix =) takes "
                              + ", ".join(C.PREFIX_KEYS))
        else:
            key = _canon(w, ra_keys)
            if key:
                block = kind = None
                path = ("ra", iface, key)
            elif low == "ra":
                return _parse_ra(words, i + 1, obj, want_values, out, whole_blocks)
            elif _is_interface_word(w, obj):
                return _parse_ra(words, i, obj, want_values, out, whole_blocks)
            elif block is not None:
                raise HaconfError(
                    f"ra {iface} {block}: unknown setting {w!r}: {kind} has "
                    + ", ".join(bkeys[kind]) + " (and what follows them may be "
                    f"the interface's keys), e.g. {RA_BLOCK_EXAMPLES[kind]}")
            else:
                raise HaconfError(
                    f"ra {iface}: unknown setting {w!r}: an interface has "
                    + ", ".join(ra_keys) + "; its blocks are prefix P, route P, rdnss "
                    "and dnssl, e.g. " + RA_BLOCK_EXAMPLE)
        if want_values:
            if i + 1 == len(words):
                raise HaconfError(f"ra {iface} {w}: missing value, e.g. "
                                  + (RA_BLOCK_EXAMPLES[kind] if kind else RA_SET_EXAMPLE))
            out.append((path, words[i + 1]))
            i += 2
        else:
            out.append((path, None))
            i += 1
    return i


def parse_words(words, obj, want_values=True, whole_blocks=False):
    """[(path tuple, value or None)] from set/get style arguments.

    *obj* is the ConfigObj being edited: it says which interfaces exist, which
    radio is the home one and which [ra] blocks there are.  With
    *whole_blocks* (unset), ``ra IFACE route P`` with no key after it is the
    block itself, a 3-part path.
    """
    out, iface, i = [], None, 0
    while i < len(words):
        w = words[i]
        if w.lower() == "ra":
            i = _parse_ra(words, i + 1, obj, want_values, out, whole_blocks)
            continue
        if "." in w:
            path = _resolve_dotted(w)
        elif _is_interface_word(w, obj):
            iface = w
            i += 1
            if i == len(words):
                raise HaconfError(f"{w}: which setting? e.g. haconf set {w} "
                                  "channel 6")
            continue
        else:
            path = _resolve_bare(w, iface, obj)
        if want_values:
            if i + 1 == len(words):
                raise HaconfError(f"{w}: missing value, e.g. haconf set {w} "
                                  "<value>")
            out.append((path, words[i + 1]))
            i += 2
        else:
            out.append((path, None))
            i += 1
    return out


def label(path):
    """How a path is printed: dotted, an [ra] block in the file's brackets."""
    if path[0] == "ra" and len(path) >= 3 and C.ra_block_kind(path[2]) and \
            (len(path) == 4 or path[2] not in spec_keys()[1]):
        return f"ra.{path[1]} [[[{path[2]}]]]" + (f" {path[3]}" if len(path) == 4 else "")
    return ".".join(path)


def node(obj, path, create):
    """The section holding *path*'s last key (made on the way if *create*)."""
    here = obj
    for part in path[:-1]:
        if part not in here:
            if not create:
                return None
            here[part] = {}
        here = here[part]
    return here
