"""haconf's key-word grammar: the words of ``set``, ``unset`` and ``get``.

    haconf set essid home channel 3            bare keys: the home radio
    haconf set wlan1 essid remote channel 8    an interface name first
    haconf set ra.wlan0.MaxRtrAdvInterval 10   a dotted path
    haconf set ha.acl.2001:db8::beef deny      an [[acl]] entry
    haconf set auth.2001:db8::beef.key <hex>   an RFC 4285 key (and .spi)
    haconf set uplink.interface eth0           [uplink], by dotted path only
    haconf set system.syslog_host logs:514     [system], the same way

A bare key is looked up in [radio], then [ra], then [ha], in the
configspec's own spelling whatever the case typed.  Each setting becomes a
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


def parse_words(words, obj, want_values=True):
    """[(path tuple, value or None)] from set/get style arguments.

    *obj* is the ConfigObj being edited: it says which interfaces exist and
    which radio is the home one.
    """
    out, iface, i = [], None, 0
    while i < len(words):
        w = words[i]
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
