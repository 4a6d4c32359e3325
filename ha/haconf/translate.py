"""denali.conf to and from the files it replaces: radvd.conf and mip6d.conf.

``haconf import`` reads a MIPL home agent's mip6d.conf into [ha] and a
radvd.conf into [ra]; ``haconf export`` writes them back from the config.
[ra] carries every block and option the RA sender reads (prefixes, routes,
RDNSS, DNSSL, clients). What denali cannot carry (IPsec, a care-of address in
an ACL, a route given twice...) is refused with what to change, never dropped
in silence.

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


# mip6d.conf field -> [ha] key; UMIP's defaults are denali's defaults, but for
# DefaultBindingAclPolicy (UMIP allow, denali deny), which import_mip6d writes.
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
    if m.default_binding_acl_policy is None:
        # the file meant UMIP's default; denali.conf's own default is deny
        ha["acl_default"] = "allow"
        warn(f"{name}: DefaultBindingAclPolicy not given: UMIP's default allow "
             "kept (acl_default = allow; denali's default is deny)")
    if m.ha_served_prefixes:
        ha["served_prefix"] = ", ".join(m.ha_served_prefixes)
    if m.binding_acl:
        ha["acl"] = {a.hoa: "allow" if a.allow else "deny"
                     for a in m.binding_acl}


def import_radvd(obj, text, name):
    """A radvd.conf into [ra] of *obj* (replacing it), only what differs from radvd's defaults.

    Each interface keeps today's form for one plain prefix (prefix = P and
    its keys beside it); more prefixes, a prefix written with the router's
    address, routes, RDNSS and DNSSL become blocks ([[[prefix P]]],
    [[[route P]]], [[[rdnss]]], [[[dnssl]]]) in the file's order.
    """
    try:
        from radvd import config as R
    except ImportError:
        raise HaconfError(f"{name}: reading radvd.conf needs radvd.config, "
                          "which is not installed", EXIT_FAILED) from None
    try:
        rc = R.parse(text, name)
    except R.ConfigError as e:
        raise HaconfError(str(e)) from None
    _, ra_keys, _ = spec_keys()
    keys = set(ra_keys)
    modelled = {attr: kw for kw, (attr, _) in R.INTERFACE_OPTIONS.items()
                if kw in keys and kw not in C.PREFIX_KEYS}
    ra = {}
    for iface in rc.interfaces:
        default = R.InterfaceConfig(name=iface.name)
        maxi = iface.max_rtr_adv_interval
        # derived defaults stay unset so they are derived again the same way
        derived = {
            "min_rtr_adv_interval": 0.33 * maxi,
            "adv_default_lifetime": max(1, int(3 * maxi)),
            "home_agent_lifetime": iface.adv_default_lifetime,
        }
        sec, dropped = {}, []
        for attr, kw in modelled.items():
            v = getattr(iface, attr)
            if v != derived.get(attr, getattr(default, attr)):
                sec[kw] = _radvd_conf_value(attr, v)
        missing = [f for f in R.INTERFACE_OPTIONS.values()
                   if f[0] not in modelled and getattr(iface, f[0]) != getattr(default, f[0])]
        dropped += [attr for attr, _ in missing]
        if iface.clients:
            sec["clients"] = _conf_list(iface.clients)
        first = iface.prefixes[0] if iface.prefixes else None
        # one prefix with only the keys [ra] has beside prefix =: today's form
        plain = (len(iface.prefixes) == 1 and first.address is None and all(
            kw in C.PREFIX_KEYS for kw, _ in _block_values(
                first, R.PREFIX_OPTIONS, R.PrefixConfig(prefix=first.prefix))))
        for p in iface.prefixes:
            values = _block_values(p, R.PREFIX_OPTIONS, R.PrefixConfig(prefix=p.prefix))
            if plain:
                sec["prefix"] = str(p.prefix)
                sec.update(values)
            else:
                _put_block(sec, f"prefix {_shown_prefix(p)}", name, iface.name).update(values)
        for r in iface.routes:
            b = _put_block(sec, f"route {r.prefix}", name, iface.name)
            b.update(_block_values(r, R.ROUTE_OPTIONS, R.RouteConfig(prefix=r.prefix),
                                   {"adv_route_lifetime": max(1, int(3 * maxi))}))
        for i, r in enumerate(iface.rdnss):
            b = _put_block(sec, "rdnss" + (f" {i + 1}" if i else ""), name, iface.name)
            b["addresses"] = _conf_list(r.servers)
            b.update(_block_values(r, R.RDNSS_OPTIONS, R.RDNSSConfig(servers=r.servers),
                                   {"adv_rdnss_lifetime": max(1, int(2 * maxi))}))
        for i, d in enumerate(iface.dnssl):
            b = _put_block(sec, "dnssl" + (f" {i + 1}" if i else ""), name, iface.name)
            b["domains"] = _conf_list(d.domains)
            b.update(_block_values(d, R.DNSSL_OPTIONS, R.DNSSLConfig(domains=d.domains),
                                   {"adv_dnssl_lifetime": max(1, int(2 * maxi))}))
        if dropped:
            raise HaconfError(f"{name}: interface {iface.name}: denali's [ra] "
                              "cannot carry " + ", ".join(dropped) + "; remove "
                              "them and import again")
        ra[iface.name] = sec
    obj["ra"] = ra


def _radvd_conf_value(attr, v):
    """A radvd.config value as denali.conf text (preferences by name)."""
    if attr.endswith("preference") and attr != "home_agent_preference":
        from radvd.config import PREFERENCES
        return {n: k for k, n in PREFERENCES.items()}[v]
    return conf_value(v)


def _block_values(obj, options, default, derived=None):
    """[(keyword, denali.conf text)] of a block's options that differ from radvd's defaults."""
    derived = derived or {}
    out = []
    for kw, (attr, _conv) in options.items():
        v = getattr(obj, attr)
        if v != derived.get(attr, getattr(default, attr)):
            out.append((kw, _radvd_conf_value(attr, v)))
    return out


def _conf_list(items):
    """A list value as configobj writes it bare: a, b (one item alone, no comma)."""
    items = [str(i) for i in items]
    return items if len(items) > 1 else items[0]


def _shown_prefix(p):
    return f"{p.address}/{p.prefix.prefixlen}" if p.address else str(p.prefix)


def _put_block(sec, key, name, iface):
    if key in sec:
        raise HaconfError(f"{name}: interface {iface}: {key} is given twice: give "
                          "each once")
    sec[key] = {}
    return sec[key]


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
