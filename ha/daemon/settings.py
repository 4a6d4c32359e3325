"""What the daemon runs with, read from denali.conf or a MIPL mip6d.conf.

`denalid -c FILE` takes either format: a user coming from MIPL keeps the
mip6d.conf they have. Both are turned into one Settings object here; the
files' own parsers (ha/config/model.py, ha/config/mip6d_conf.py) do the validation,
with radvd.config's rules handed to the denali.conf check: this is the daemon's
wiring, where ha meets radvd (ha/config itself does not import it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Interface, IPv6Network

from ha.config.errors import ConfigError
from ha.wire.auth import DEFAULT_REPLAY_WINDOW, MnHaSecret
from ha.wire.esp import EspKey, MnHaIPsecSA


class SettingsError(ConfigError):
    """denalid cannot run with this file: the reader's refusal, or a file it cannot read."""


@dataclass(slots=True)
class MobileNodeSettings:
    interface: str
    home_address: IPv6Interface
    home_agent: IPv6Address
    secret: MnHaSecret | None = None  # RFC 4285 MN-HA SPI and key; None: BUs unsigned
    optimistic_handoff: bool = False  # the tunnel with the BU, not the BA
    optimistic_dad: bool = False  # RFC 4429 on the interface (the CoA usable at once)


@dataclass(slots=True)
class Settings:
    """What one run of denalid does, whichever file it came from: plain values.

    load_settings() makes it from denali.conf (kind "denali") or a MIPL
    mip6d.conf (kind "mip6d", with -C radvd.conf for the RA sender), after the
    file's own reader has checked it; it owns no socket, task or file.  main()
    (ha/daemon/main.py) reads it at start (``--vt-port`` may override
    vt_port), and the Daemon (ha/daemon/service.py) builds a new one on every
    reload, keeping the old one if that fails, then hands the parts out:
    radios to the WirelessManager, radvd_text to the RA sender, the ha_* and
    ACL fields to the HomeAgent when node is HA, mobile_node when it is MN.
    """

    source: str
    kind: str  # "denali" or "mip6d"
    node: str = "HA"  # HA or MN
    debug_level: int = 0
    vt_port: int = 7777
    ha_interface: str | None = None
    served_prefixes: list[IPv6Network] = field(default_factory=list)  # empty: from the interface
    max_binding_lifetime: int = 262140  # mip6d's HaMaxBindingLife default
    acl_default_allow: bool = True
    acl: dict = field(default_factory=dict)  # hoa -> allow
    dad: bool = True
    tunnel_during_dad: bool = False  # forward for a new binding while its DAD runs
    proxy_nd: str = "kernel"  # who answers NS for away home addresses: kernel or daemon
    # limits that hold under attack: ha/config/denali.spec says why these defaults
    capacity: int = 4096  # bindings
    new_bindings_per_prefix_rate: float = 20.0  # a second, per source /64; 0 = no limit
    new_bindings_per_prefix_burst: int = 100
    new_bindings_rate: float = 100.0  # a second, all sources; 0 = no limit
    new_bindings_burst: int = 500
    max_tunnels: int = 64  # ip6tnl devices (kernel datapath)
    packets_per_source_rate: float = 200.0  # BU packets read a second from one address
    packets_per_source_burst: int = 400
    send_mob_pfx_advs: bool = True
    radvd_text: str | None = None  # radvd.conf syntax for the RA sender
    radvd_source: str = "radvd.conf"
    radios: list = field(default_factory=list)
    mobile_node: MobileNodeSettings | None = None
    # denali.conf [uplink] (ha.config.model.UplinkSettings); None: no uplink
    uplink: object | None = None
    # DHCPv6-PD (ha/config/pd.py): cell -> sub-prefix id, and cell -> its
    # address as denali.conf gives it (what the first delegation retires)
    pd_cells: dict = field(default_factory=dict)
    pd_configured: dict = field(default_factory=dict)
    # denali.conf [system] (ha.config.model.SystemSettings); None: mip6d.conf
    system: object | None = None
    # RFC 4285: home address -> MnHaSecret; those home addresses are protected
    auth: dict = field(default_factory=dict, repr=False)
    replay_window: float = DEFAULT_REPLAY_WINDOW
    # RFC 3776: home address -> MnHaIPsecSA (manual keys); those home
    # addresses accept only ESP-protected BUs, and their BAs go with ESP
    ipsec: dict = field(default_factory=dict, repr=False)
    # what denalid logs as warnings at start (main.py): the file is usable, but
    # not as safe as RFC 6275 wants (home addresses without a key)
    warnings: list = field(default_factory=list, compare=False)


def _looks_like_configobj(text: str) -> bool:
    return re.search(r"^\s*\[\w", text, re.M) is not None or (
        re.search(r"^\s*\w[\w.]*\s*=", text, re.M) is not None and ";" not in text)


def load_settings(path: str, radvd_conf: str | None = None) -> Settings:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        text = None
    except OSError as e:
        raise SettingsError(e.strerror, path) from None
    except UnicodeDecodeError:
        raise SettingsError("not UTF-8 text", path) from None
    if text is None or _looks_like_configobj(text):
        settings = _from_denali_conf(path if text is not None else None)
    else:
        settings = _from_mip6d_conf(text, path)
    if radvd_conf:
        try:
            with open(radvd_conf, encoding="utf-8") as f:
                settings.radvd_text = f.read()
            settings.radvd_source = radvd_conf
        except OSError as e:
            raise SettingsError(e.strerror, radvd_conf) from None
        except UnicodeDecodeError:
            raise SettingsError("not UTF-8 text", radvd_conf) from None
    return settings


def _from_mip6d_conf(text: str, path: str) -> Settings:
    from ha.config.mip6d_conf import Mip6dConfError, parse_mip6d

    try:
        cfg = parse_mip6d(text, path)
    except Mip6dConfError as e:
        raise SettingsError(e.message, e.path, e.line) from None
    s = Settings(source=path, kind="mip6d")
    s.node = (cfg.node_config or "CN").upper()
    if s.node not in ("HA", "MN"):
        raise SettingsError(f"NodeConfig {s.node} is not served: use HA or MN", path)
    s.debug_level = cfg.debug_level or 0
    if s.node == "HA":
        if not cfg.interfaces:
            raise SettingsError('a home agent needs Interface "name";', path)
        s.ha_interface = cfg.interfaces[0]
    if cfg.ha_max_binding_life is not None:
        s.max_binding_lifetime = cfg.ha_max_binding_life
    if cfg.default_binding_acl_policy is not None:
        s.acl_default_allow = cfg.default_binding_acl_policy == "allow"
    for rule in cfg.binding_acl:
        # a rule naming a care-of address holds for that pair only (the registration
        # rules prefer it to a rule for the home address alone): never wider
        key = IPv6Address(rule.hoa) if rule.coa is None \
            else (IPv6Address(rule.hoa), IPv6Address(rule.coa))
        s.acl[key] = rule.allow
    s.served_prefixes = [IPv6Network(p, strict=False) for p in cfg.ha_served_prefixes]
    for k in cfg.mn_ha_keys:  # denali's own DenaliMnHaKey lines
        s.auth[IPv6Address(k.hoa)] = MnHaSecret(k.spi, bytes.fromhex(k.key))
        # as in denali.conf: a home address with a key is configured, so a
        # deny policy lets it in (an explicit BindingAclPolicy deny still wins)
        s.acl.setdefault(IPv6Address(k.hoa), True)
    if cfg.send_mob_pfx_advs is not None:
        s.send_mob_pfx_advs = cfg.send_mob_pfx_advs
    s.tunnel_during_dad = bool(cfg.tunnel_during_dad)
    for name in _LIMITS:  # denali's Denali* limit lines
        value = getattr(cfg, name)
        if value is not None:
            if value < 1 and name in ("capacity", "max_tunnels"):
                raise SettingsError(f"{name} {value}: use 1 or more", path)
            setattr(s, name, value)
    if s.node == "MN":
        if not cfg.home_links:
            raise SettingsError('a mobile node needs MnHomeLink "if" { ... }', path)
        link = cfg.home_links[0]
        if not link.home_address or not link.home_agent_address:
            raise SettingsError("MnHomeLink needs HomeAddress and HomeAgentAddress", path)
        hoa = IPv6Interface(link.home_address)
        s.mobile_node = MobileNodeSettings(link.interface, hoa,
                                           IPv6Address(link.home_agent_address),
                                           s.auth.get(hoa.ip),
                                           optimistic_handoff=bool(cfg.optimistic_handoff),
                                           optimistic_dad=bool(cfg.optimistic_dad))
    _ipsec(cfg, s, path)
    _warn_unauthenticated(s, "no DenaliMnHaKey line", "DefaultBindingAclPolicy deny;")
    return s


# RFC 6275 section 5.1: BUs and BAs between mobile node and home agent must be
# protected. UMIP does it with IPsec (RFC 3776, `UseMnHaIPsec enabled`, its
# default). denali's home agent does ESP itself (ha/wire/esp.py, in the core)
# for the home addresses of UMIP's IPsecPolicySet blocks, with the keys of
# denali's DenaliIPsecSA lines; anything it cannot protect as asked is refused
# rather than run open.
_WAY_OUT = ("`UseMnHaIPsec disabled;` with DenaliMnHaKey lines for RFC 4285 "
            "authentication, or `UseMnHaIPsec disabled;` alone to run unauthenticated")
_NO_IPSEC = ("IPsec (RFC 3776) for BU/BA needs an IPsecPolicySet block (HomeAgentAddress, "
             "HomeAddress, `IPsecPolicy HomeRegBinding UseESP;`) and a DenaliIPsecSA line "
             "for each of its home addresses; or use " + _WAY_OUT)
_MN_NO_IPSEC = ("IPsec (RFC 3776) for BU/BA is not available in denali's mobile node; use "
                + _WAY_OUT)
_UNAUTHENTICATED = ("bindings for home addresses without a key are unauthenticated "
                    "(RFC 6275 5.1 requires protection)")
# what the core protects: BU and BA (Mh covers them; no other MH goes between
# a home agent and a mobile node in transport mode)
_SERVED_POLICIES = ("HomeRegBinding", "Mh")


def _ipsec(cfg, s: Settings, path: str) -> None:
    """Check UseMnHaIPsec against what denali can do and fill s.ipsec, or refuse."""
    if cfg.use_mn_ha_ipsec is False:
        if cfg.ipsec_policy_sets or cfg.ipsec_sas:
            s.warnings.append(f"{path}: UseMnHaIPsec disabled: the IPsecPolicySet blocks and "
                              "DenaliIPsecSA lines are not used")
        return
    if cfg.use_mn_ha_ipsec is None:  # not in the file: UMIP's default holds
        head, line = "UseMnHaIPsec is not given and defaults to enabled (as in UMIP): ", None
    else:
        head, line = "UseMnHaIPsec enabled: ", cfg.lines.get("UseMnHaIPsec")
    if s.node == "MN":
        raise SettingsError(head + _MN_NO_IPSEC, path, line)
    if not cfg.ipsec_policy_sets:
        raise SettingsError(head + "no IPsecPolicySet block: " + _NO_IPSEC, path, line)
    sas = {IPv6Address(sa.hoa): sa for sa in cfg.ipsec_sas}
    protected = {}
    for ps in cfg.ipsec_policy_sets:
        for p in ps.policies:
            if p.type not in _SERVED_POLICIES:
                raise SettingsError(f"IPsecPolicy {p.type}: denali protects Binding Updates "
                                    "and Acknowledgements only (HomeRegBinding or Mh); "
                                    "remove the line or run UMIP", path, p.line)
            if p.protos != ("UseESP",):
                raise SettingsError(f"IPsecPolicy {p.type} {' '.join(p.protos)}: denali does "
                                    "ESP only (RFC 3776 requires it): use UseESP alone",
                                    path, p.line)
            if not p.allow:
                raise SettingsError(f"IPsecPolicy {p.type} disabled: a blocking policy is not "
                                    "served; remove the line", path, p.line)
        for h in ps.home_addresses:
            hoa = IPv6Interface(h).ip
            if hoa in protected:
                raise SettingsError(f"HomeAddress {hoa} is in two IPsecPolicySet blocks",
                                    path, ps.line)
            sa = sas.get(hoa)
            if sa is None:
                raise SettingsError(head + f"no DenaliIPsecSA line for the home address {hoa} "
                                    "of the IPsecPolicySet: UMIP leaves SAs to setkey, denali "
                                    'reads them from `DenaliIPsecSA <home address> <SPI to HA> '
                                    '<SPI to MN> hmac-sha1-96 "<hex key>";`', path, ps.line)
            protected[hoa] = MnHaIPsecSA(sa.spi_to_ha, sa.spi_to_mn,
                                         EspKey(sa.auth, bytes.fromhex(sa.key_to_ha)),
                                         EspKey(sa.auth, bytes.fromhex(sa.key_to_mn)))
    for hoa, sa in sas.items():
        if hoa not in protected:
            raise SettingsError(f"DenaliIPsecSA for {hoa}, which no IPsecPolicySet names: add "
                                f"`HomeAddress {hoa}/64;` to one, or remove the line",
                                path, sa.line)
    s.ipsec = protected
    for hoa in protected:  # an SA configures its home address, as a key does
        s.acl.setdefault(hoa, True)


def _warn_unauthenticated(s: Settings, no_keys: str, deny_default: str) -> None:
    """Add the start-up warning when some home address this node serves or
    uses has no RFC 4285 key (those bindings are taken or sent unsigned)."""
    if s.node == "MN" and s.mobile_node is not None:
        if s.mobile_node.secret is None:
            hoa = s.mobile_node.home_address.ip
            s.warnings.append(f"{s.source}: {_UNAUTHENTICATED}: no key for the home "
                              f"address {hoa}")
        return
    if s.node != "HA" or s.ha_interface is None:
        return
    keyed = set(s.auth) | set(s.ipsec)  # RFC 4285 keys or RFC 3776 SAs
    if not keyed:
        s.warnings.append(f"{s.source}: {_UNAUTHENTICATED}: {no_keys}")
    elif s.acl_default_allow:
        s.warnings.append(f"{s.source}: {_UNAUTHENTICATED}: a key for {len(keyed)} home "
                          f"address{'es' if len(keyed) > 1 else ''}, any other home address "
                          f"is served unsigned ({deny_default} refuses them)")
    else:
        allowed = {(k[0] if isinstance(k, tuple) else k) for k, ok in s.acl.items() if ok}
        open_ = sorted(h for h in allowed if h not in keyed)
        if open_:
            s.warnings.append(f"{s.source}: {_UNAUTHENTICATED}: no key for "
                              + ", ".join(str(h) for h in open_))


def pd_state_path() -> str:
    """Where the uplink keeps the delegation (tmpfs: a reboot asks the ISP again)."""
    import os
    from ha.daemon.binding_store import state_dir
    return os.path.join(state_dir(), "pd", "state.json")


def _delegated(cfg, s: Settings, ra_check):
    """denali.conf with the delegated prefix the uplink holds laid over it."""
    import time
    from ha.config import pd
    from ha.config.model import DenaliConfError, rebuild
    s.pd_cells = pd.cells_of(cfg.uplink, cfg.radios)
    s.pd_configured = {c: cfg.radio(c).address for c in s.pd_cells}
    try:
        with open(pd_state_path(), encoding="utf-8") as f:
            state = pd.state_from_json(f.read())
    except FileNotFoundError:
        return cfg
    except (OSError, ValueError) as e:
        s.warnings.append(f"{pd_state_path()}: {e}: the configured prefixes are used")
        return cfg
    state = pd.expire(state, time.time())
    if state.lease is None and not state.retired:
        return cfg
    try:
        return rebuild(pd.overlay(cfg.values, state, s.pd_cells, time.time()),
                       cfg.path, ra_check)
    except (DenaliConfError, ValueError) as e:
        raise SettingsError(f"the delegated prefix cannot be used: {e}", cfg.path) from None


_LIMITS = ("capacity", "new_bindings_per_prefix_rate", "new_bindings_per_prefix_burst",
           "new_bindings_rate", "new_bindings_burst", "max_tunnels",
           "packets_per_source_rate", "packets_per_source_burst")


def _from_denali_conf(path: str | None) -> Settings:
    from ha.config.model import DenaliConfError, load_config
    # the RA sender's rules too, so a file that loads is one it runs (and a
    # reload that it would refuse keeps the running config)
    from radvd.config import parse as ra_check

    try:
        cfg = load_config(path, ra_check)
    except DenaliConfError as e:
        raise SettingsError(str(e)) from None
    s = Settings(source=path or "(built-in default)", kind="denali")
    if cfg.uplink is not None and cfg.uplink.prefix_delegation:
        cfg = _delegated(cfg, s, ra_check)
    ha = cfg.ha
    s.ha_interface = ha.interface
    # a prefix derived from the radio's address is re-derived from the
    # interface at start, so only an explicit one is kept
    s.served_prefixes = ([] if getattr(ha, "served_prefixes_derived", False)
                         else [IPv6Network(p, strict=False) for p in ha.served_prefixes])
    s.max_binding_lifetime = ha.max_binding_lifetime
    s.acl_default_allow = ha.acl_default_allow
    s.acl = {IPv6Address(k): v for k, v in ha.acl.items()}
    if not ha.enabled:
        s.ha_interface = None
    s.dad = ha.dad
    s.tunnel_during_dad = ha.tunnel_during_dad
    s.proxy_nd = ha.proxy_nd
    for name in _LIMITS:
        setattr(s, name, getattr(ha, name))
    s.vt_port = ha.vt_port
    s.debug_level = ha.debug_level
    s.send_mob_pfx_advs = ha.send_mob_pfx_advs
    s.radvd_text = cfg.ra_as_radvd_text()
    s.radvd_source = f"{s.source} [ra]"
    s.radios = list(cfg.radios)
    s.uplink = cfg.uplink
    s.system = cfg.system
    s.auth = {IPv6Address(h): MnHaSecret(spi, bytes.fromhex(key))
              for h, (spi, key) in cfg.auth.items()}
    _warn_unauthenticated(s, "[auth] is empty", "acl_default = deny")
    return s
