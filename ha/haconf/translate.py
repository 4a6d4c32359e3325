"""denali.conf to and from the files it replaces: radvd.conf and mip6d.conf.

``haconf import`` reads a MIPL home agent's mip6d.conf into [ha] and a
radvd.conf into [ra]; ``haconf export`` writes them back from the config.
What denali cannot carry (IPsec, a care-of address in an ACL, more than one
prefix...) is refused with what to change, never dropped in silence.

This is the one place of haconf that imports radvd (the RA sender's own
parser and rules); ha/config does not, so that radvd may import ha.
Every import is done when a function runs: haconf starts on click and
ha.config.model alone.
"""

import re

from ha.config import model as C
from ha.haconf.errors import EXIT_FAILED, HaconfError
from ha.haconf.grammar import spec_keys


def ra_check(text, filename):
    """The RA sender's rules over radvd.conf text (model.validate_text's ra_check).

    Raises radvd.config.RadvdConfError; a build without radvd.config is left
    with denali's own checks, as the daemon then has no RA sender to feed.
    """
    try:
        from radvd.config import parse
    except ImportError:
        return
    parse(text, filename)


def ra_as_radvd_config(cfg):
    """The [ra] part of a DenaliConfig as a radvd.config.Config."""
    from radvd.config import parse
    return parse(C.ra_as_radvd_text(cfg), cfg.path + " [ra]")


def conf_value(v):
    """A parsed value as denali.conf text."""
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, float):
        return f"{v:g}"
    if v == C.INFINITY:
        return "infinity"
    return str(v)


# ---------------------------------------------------------------- import

def sniff_radvd(text):
    """radvd.conf opens an ``interface`` stanza; mip6d.conf has none."""
    return re.search(r"^\s*interface\s+[^\s{;]+", text, re.M) is not None


def import_files(obj, files, warn):
    """Read each file into the ConfigObj *obj*: ["name: radvd.conf -> [ra]", ...].

    *warn* hears what is read but ignored; a refusal raises HaconfError
    and *obj* is then to be thrown away.
    """
    done = []
    for name in files:
        try:
            with open(name, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise HaconfError(f"{name}: cannot read: {e.strerror}") from None
        except UnicodeDecodeError:
            raise HaconfError(f"{name}: not UTF-8 text") from None
        if sniff_radvd(text):
            import_radvd(obj, text, name)
            done.append(f"{name}: radvd.conf -> [ra]")
        else:
            import_mip6d(obj, text, name, warn)
            done.append(f"{name}: mip6d.conf -> [ha]")
    return done


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


def import_mip6d(obj, text, name, warn):
    """A home agent's mip6d.conf into [ha] of *obj* (replacing what it sets)."""
    from ha.config.mip6d_conf import Mip6dConfError, parse_mip6d
    try:
        m = parse_mip6d(text, name)
    except Mip6dConfError as e:
        raise HaconfError(str(e)) from None
    for w in m.warnings:
        warn(w)
    if m.node_config != "HA":
        raise HaconfError(f"{name}: NodeConfig is "
                          f"{m.node_config or 'not set (CN)'}: only a home "
                          "agent's file (NodeConfig HA) can be imported")
    if len(m.interfaces) != 1:
        raise HaconfError(f"{name}: {len(m.interfaces)} Interface lines: "
                          "denali serves as home agent on exactly one "
                          "interface")
    if m.use_mn_ha_ipsec:
        raise HaconfError(f"{name}: UseMnHaIPsec enabled: denali.conf has no IPsec "
                          "(RFC 3776) settings; run `denalid -c` on the mip6d.conf itself "
                          "(IPsecPolicySet, DenaliIPsecSA), or use UseMnHaIPsec disabled")
    if m.use_mn_ha_ipsec is None:
        warn(f"{name}: UseMnHaIPsec not given (UMIP's default is enabled); "
             "denali.conf has no IPsec settings, the import runs without it")
    if any(a.coa for a in m.binding_acl):
        raise HaconfError(f"{name}: BindingAclPolicy with a care-of address: "
                          "denali's ACL is per home address; use "
                          "BindingAclPolicy <hoa> allow|deny")
    if m.home_links:
        raise HaconfError(f"{name}: MnHomeLink is a mobile node's setting: "
                          "import a home agent's file")
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
            ha[key] = conf_value(v)
    if m.ha_served_prefixes:
        ha["served_prefix"] = ", ".join(m.ha_served_prefixes)
    if m.binding_acl:
        ha["acl"] = {a.hoa: "allow" if a.allow else "deny"
                     for a in m.binding_acl}


def import_radvd(obj, text, name):
    """A radvd.conf into [ra] of *obj* (replacing it), only what differs from radvd's defaults."""
    try:
        from radvd import config as R
    except ImportError:
        raise HaconfError(f"{name}: reading radvd.conf needs radvd.config, "
                          "which is not installed", EXIT_FAILED) from None
    from dataclasses import fields
    try:
        rc = R.parse(text, name)
    except R.ConfigError as e:
        raise HaconfError(str(e)) from None
    _, ra_keys, _ = spec_keys()
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
                sec[modelled[f_.name]] = conf_value(v)
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
                    sec[key] = conf_value(v)
                else:
                    dropped.append(f"prefix {f_.name}")
        if dropped:
            raise HaconfError(f"{name}: interface {iface.name}: denali's [ra] "
                              "cannot carry " + ", ".join(dropped) + "; remove "
                              "them and import again")
        ra[iface.name] = sec
    obj["ra"] = ra


# ---------------------------------------------------------------- export

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


# denali's own keywords in the RA sender's text, which radvd itself refuses
# ("unknown or unsupported keyword"): left out of an exported radvd.conf
DENALI_ONLY_RADVD_KEYS = ("MaxRADelay",)


def radvd_compatible(text):
    """radvd.conf text that the real radvd accepts: denali's extensions become comments."""
    out = []
    for line in text.splitlines(keepends=True):
        words = line.split()
        if words and words[0] in DENALI_ONLY_RADVD_KEYS:
            indent = line[:len(line) - len(line.lstrip())]
            out.append(f"{indent}# {line.strip().rstrip(';')} left out: a denali extension, "
                       "radvd refuses it\n")
        else:
            out.append(line)
    return "".join(out)


def export_text(cfg, fmt):
    """The config as radvd.conf ([ra]) or mip6d.conf ([ha]) text."""
    if fmt == "radvd":
        return radvd_compatible(C.ra_as_radvd_text(cfg))
    from ha.config.mip6d_conf import dump_mip6d
    return dump_mip6d(ha_as_mip6d(cfg))
