"""denali.conf: the one configuration file, its checks and its typed view.

The file is configobj syntax checked against ha/config/denali.spec (shipped in the
package).  configobj checks each value alone; the rules across values
(channel legal for the country, the two radios apart, RA timer ordering)
live here, in ``_cross_checks``.  Every refusal says what is allowed.
The RA sender's own rules (radvd.config) are passed in as ``ra_check`` by
those that run it, haconf and denalid: this package does not import radvd,
which imports it.

No file yet means the seed article's setup (``DEFAULT_TEXT``): wlan0 "home"
channel 3 serving as home agent on 2001:db8::/64, wlan1 "remote" channel 8
as the foreign link 2001:db8:1::/64, RAs every 1-10 s with the Advertisement
Interval option (RFC 6275 §7.3). It is closed: ``acl_default = deny``, so
only a configured home address gets a binding, one with an [auth] key
(RFC 4285, RFC 6275 §5.1's protection) or an [[acl]] allow; ``haconf init``
writes it with a key for the seed's home address.

Nothing heavy is imported here: haconf must start fast on the board.
"""

from dataclasses import dataclass, field
import ipaddress
import os
import re

from ha.config import errors as _errors
from ha.config.regulatory import (NON_OVERLAP_DISTANCE, channel_rule,
                                  country_rule, essid_rule, ht_rule, key_rule,
                                  security_of, security_rule)

DEFAULT_PATH = "/etc/denali/denali.conf"
ENV_VAR = "DENALI_CONF"

DEFAULT_TEXT = """\
# denali.conf - the seed article's home agent (see haconf show)
[ha]
    interface = wlan0
    # closed by default: only home addresses with an [auth] key or an
    # [[acl]] allow get a binding (haconf auth add HOA makes a key)
    acl_default = deny
[ra]
    [[wlan0]]
        AdvSendAdvert = on
        AdvIntervalOpt = on
        MaxRtrAdvInterval = 10
        MinRtrAdvInterval = 1
        MinDelayBetweenRAs = 1
        AdvHomeAgentFlag = on
        prefix = 2001:db8::/64
        AdvOnLink = on
        AdvAutonomous = on
        AdvRouterAddr = on
    [[wlan1]]
        AdvSendAdvert = on
        AdvIntervalOpt = on
        MaxRtrAdvInterval = 10
        MinRtrAdvInterval = 1
        MinDelayBetweenRAs = 1
        AdvHomeAgentFlag = off
        prefix = 2001:db8:1::/64
        AdvOnLink = on
        AdvAutonomous = on
        AdvRouterAddr = on
[radio]
    [[wlan0]]
        essid = home
        security = wpa2
        channel = 3
        role = home
        country = US
        address = 2001:db8::/64
    [[wlan1]]
        essid = remote
        security = wpa2
        channel = 8
        role = foreign
        country = US
        address = 2001:db8:1::/64
"""

SECTIONS = ("ha", "ra", "radio", "auth", "uplink", "system")
MIN_MN_HA_KEY = 16  # octets: RFC 4285's HMAC-SHA1 is no stronger than its key; 128 bits at least


class DenaliConfError(_errors.ConfigError):
    """A denali.conf that breaks rules: every broken rule, one line each.

    ``filename`` is the file, ``errors`` a list of (key, rule) where key is
    the dotted path (``radio.wlan0.channel``) and rule says what is allowed.
    """

    def __init__(self, filename, errors):
        self.errors = list(errors)
        super().__init__("\n".join(f"{k}: {r}" if k else r
                                   for k, r in self.errors), filename)

    def _text(self):
        # the file in front of each rule, as the other readers print theirs
        return "\n".join(f"{self.path}: {k}: {r}" if k else f"{self.path}: {r}"
                         for k, r in self.errors)

    @property
    def key(self):
        return self.errors[0][0]

    @property
    def rule(self):
        return self.errors[0][1]


# The name this error had before ha.config.errors: kept for callers.
ConfigError = DenaliConfError


# ---------------------------------------------------------------- typed view

@dataclass(frozen=True, slots=True)
class HaSettings:
    enabled: bool
    interface: str
    served_prefixes: tuple      # "2001:db8::/64", ...; derived when not set
    served_prefixes_derived: bool
    max_binding_lifetime: int
    acl_default_allow: bool
    # home address -> True (allow) / False: the [[acl]] entries, and an allow
    # for each [auth] home address that [[acl]] does not name (a key is a
    # configuration: acl_default = deny admits it; an [[acl]] deny still wins)
    acl: dict
    dad: bool
    tunnel_during_dad: bool     # forward for a new binding while its DAD runs
    proxy_nd: str               # "kernel" or "daemon"
    vt_port: int
    send_mob_pfx_advs: bool
    min_mob_pfx_adv_interval: int
    max_mob_pfx_adv_interval: int
    debug_level: int
    # limits (denali.spec says why these defaults)
    capacity: int = 4096
    new_bindings_per_prefix_rate: float = 20.0
    new_bindings_per_prefix_burst: int = 100
    new_bindings_rate: float = 100.0
    new_bindings_burst: int = 500
    max_tunnels: int = 64
    packets_per_source_rate: float = 200.0
    packets_per_source_burst: int = 400


@dataclass(frozen=True, slots=True)
class RaPrefix:
    prefix: str
    adv_on_link: bool
    adv_autonomous: bool
    adv_router_addr: bool
    adv_valid_lifetime: int     # 0xffffffff = infinity
    adv_preferred_lifetime: int
    deprecate_prefix: bool = False
    decrement_lifetimes: bool = False


@dataclass(frozen=True, slots=True)
class RaRoute:
    """A [[[route P]]]: RFC 4191 §2.3 Route Information option."""
    prefix: str
    adv_route_preference: str   # low, medium or high
    adv_route_lifetime: int     # unset: 3 x MaxRtrAdvInterval, as radvd
    remove_route: bool = True


@dataclass(frozen=True, slots=True)
class RaRdnss:
    """A [[[rdnss]]]: RFC 8106 §5.1 Recursive DNS Server option."""
    addresses: tuple            # "2001:db8::53", ...
    adv_rdnss_lifetime: int     # unset: 2 x MaxRtrAdvInterval, as radvd
    flush_rdnss: bool = True


@dataclass(frozen=True, slots=True)
class RaDnssl:
    """A [[[dnssl]]]: RFC 8106 §5.2 DNS Search List option."""
    domains: tuple
    adv_dnssl_lifetime: int     # unset: 2 x MaxRtrAdvInterval, as radvd
    flush_dnssl: bool = True


@dataclass(frozen=True, slots=True)
class RaInterface:
    """One [ra] subsection, with radvd.config's snake_case field names."""
    name: str
    adv_send_advert: bool
    max_rtr_adv_interval: float
    min_rtr_adv_interval: float
    min_delay_between_ras: float
    adv_managed_flag: bool
    adv_other_config_flag: bool
    adv_link_mtu: int
    adv_reachable_time: int
    adv_retrans_timer: int
    adv_cur_hop_limit: int
    adv_default_lifetime: int
    adv_source_ll_address: bool
    adv_interval_opt: bool
    adv_home_agent_flag: bool
    adv_home_agent_info: bool
    home_agent_preference: int
    home_agent_lifetime: int
    prefixes: tuple             # RaPrefix
    # denali's MaxRADelay: RFC 4861 §6.2.6's delay before a solicited RA, 0 to 0.5 s
    max_ra_delay: float = 0.5
    adv_default_preference: str = "medium"   # RFC 4191 §2.2
    unicast_only: bool = False
    ignore_if_missing: bool = True
    adv_ra_solicited_unicast: bool = True
    adv_mob_rtr_support_flag: bool = False
    clients: tuple = ()         # unicast RAs to these only, when given
    routes: tuple = ()          # RaRoute
    rdnss: tuple = ()           # RaRdnss
    dnssl: tuple = ()           # RaDnssl


@dataclass(frozen=True, slots=True)
class Radio:
    name: str
    essid: str
    channel: int
    hw_mode: str
    country: str
    txpower: int | None
    role: str
    key: str | None
    address: str | None         # "2001:db8::/64": interface address/length
    ieee80211n: bool = False    # HT20
    security: str = "open"      # open, wpa2, sae, wpa2-sae (as in force)


@dataclass(frozen=True, slots=True)
class UplinkRoute:
    """One [uplink] routes entry: "prefix via gateway"."""
    prefix: str                 # "2001:db8:9::/48"
    gateway: str                # "fe80::1"


@dataclass(frozen=True, slots=True)
class UplinkSettings:
    """[uplink]: the wired upstream interface (None when there is none)."""
    interface: str
    mode: str                   # "static" or "slaac"
    address: str | None         # "2001:db8:ff::2/64" (static)
    gateway: str | None         # the default route's next hop
    routes: tuple = ()          # UplinkRoute
    dns: tuple = ()             # resolver addresses, kept for later use
    prefix_delegation: bool = False   # DHCPv6-PD (ha/config/pd.py)
    pd_hint: int | None = None  # the prefix length asked for, e.g. 56
    pd_home_id: int | None = 0  # the home cell's /64 of the delegated prefix
    pd_foreign_id: int | None = 1


@dataclass(frozen=True, slots=True)
class SystemSettings:
    """[system]: the appliance's clock and log."""
    ntp_servers: tuple = ()     # host names or addresses
    syslog_host: str | None = None   # "host" or "host:port" ("[v6]:port")


@dataclass(slots=True)
class DenaliConfig:
    path: str
    ha: HaSettings
    ra_interfaces: list
    radios: list
    warnings: list = field(default_factory=list)
    uplink: UplinkSettings | None = None
    system: SystemSettings = field(default_factory=SystemSettings)
    # RFC 4285: home address -> (Mobility SPI, key as hex)
    auth: dict = field(default_factory=dict, repr=False)
    values: dict = field(default_factory=dict, repr=False)  # validated tree

    def radio(self, name):
        for r in self.radios:
            if r.name == name:
                return r
        raise KeyError(name)

    def ra_as_radvd_text(self):
        """Same as the module's ra_as_radvd_text(self)."""
        return ra_as_radvd_text(self)

    @property
    def home_radio(self):
        homes = [r for r in self.radios if r.role == "home"]
        return homes[0] if len(homes) == 1 else None


INFINITY = 0xFFFFFFFF

# radvd name -> snake_case, e.g. MinDelayBetweenRAs -> min_delay_between_ras
def snake(name):
    name = name.replace("LLAddress", "LlAddress").replace("MTU", "Mtu")
    name = name.replace("RAs", "Ras").replace("RADelay", "RaDelay")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


PREFIX_KEYS = ("AdvOnLink", "AdvAutonomous", "AdvRouterAddr",
               "AdvValidLifetime", "AdvPreferredLifetime")
# the radvd.conf blocks an [ra] interface holds as sub-subsections, by the
# first word of their name; denali.spec has the template [[[__WORD__]]] of each
RA_BLOCKS = ("prefix", "route", "rdnss", "dnssl")
RA_BLOCK_HINT = ("use [[[prefix 2001:db8:5::/64]]], [[[route 2001:db8:7::/48]]], "
                 "[[[rdnss]]] or [[[dnssl]]]")


# -------------------------------------------------------------- value checks

def _checks():
    from configobj.validate import ValidateError

    class Refused(ValidateError):
        """A value refused with our own message (what is allowed)."""

    def ipv6_address(value):
        try:
            return str(ipaddress.IPv6Address(value))
        except (ValueError, TypeError):
            raise Refused(f"{value!r} is not an IPv6 address: use e.g. "
                          "2001:db8::1") from None

    def ipv6_prefix(value):
        if value is None:
            return None
        try:
            net = ipaddress.IPv6Network(value, strict=True)
        except (ValueError, TypeError):
            net = None
        if net is None or "/" not in str(value):
            raise Refused(f"{value!r} is not an IPv6 prefix: use "
                          "address/length with no host bits, e.g. "
                          "2001:db8::/64")
        return str(net)

    def ipv6_address_list(value):
        if value is None:
            return None
        if isinstance(value, str):
            value = [v for v in re.split(r"[,\s]+", value) if v]
        if not value:
            raise Refused("no address given: use e.g. 2001:db8::53, "
                          "2001:db8::54")
        return [ipv6_address(v) for v in value]

    def domain_list(value):
        if isinstance(value, str):
            value = [v for v in re.split(r"[,\s]+", value) if v]
        if not value:
            raise Refused("no domain given: use e.g. example.com, lab.example")
        for name in value:
            labels = name.rstrip(".").split(".")
            # RFC 8106 §5.2: names in DNS wire form, so 253 octets, labels 1-63
            if (not isinstance(name, str) or not name.rstrip(".") or len(name) > 253
                    or not all(re.fullmatch(r"[A-Za-z0-9_-]{1,63}", x)
                               for x in labels)):
                raise Refused(f"{name!r} is not a domain name: use letters, "
                              "digits, '-' in labels of 1-63, e.g. example.com")
        return list(value)

    def ipv6_prefix_list(value):
        if isinstance(value, str):
            value = [v for v in re.split(r"[,\s]+", value) if v]
        return [ipv6_prefix(v) for v in value]

    def ipv6_interface(value):
        if value is None:
            return None
        try:
            iface = ipaddress.IPv6Interface(value)
        except (ValueError, TypeError):
            iface = None
        if iface is None or "/" not in str(value):
            raise Refused(f"{value!r} is not an IPv6 interface address: use "
                          "address/length, e.g. 2001:db8::/64")
        return f"{iface.ip}/{iface.network.prefixlen}"

    def route_list(value):
        # "prefix via gateway", comma-separated (a single one is a str)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        out = []
        for v in value:
            try:
                prefix, gateway = parse_route(v)
            except ValueError as e:
                raise Refused(str(e)) from None
            out.append(f"{prefix} via {gateway}")
        return out

    def pd_length(value):
        if value is None:
            return None
        text = str(value).strip()
        m = re.fullmatch(r"/?(\d{1,3})", text)
        if not m or not 48 <= int(m.group(1)) <= 64:
            raise Refused(f"{value!r} is not a delegated prefix length: use 48-64, "
                          "e.g. 56 or /56")
        return int(m.group(1))

    def host_list(value):
        if isinstance(value, str):
            value = [v for v in re.split(r"[,\s]+", value) if v]
        out = []
        for v in value:
            why = host_rule(v)
            if why:
                raise Refused(why)
            out.append(v)
        return out

    def host_port(value):
        if value is None:
            return None
        try:
            host, port = split_host_port(str(value))
        except ValueError as e:
            raise Refused(str(e)) from None
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def ruled(rule):
        """A configspec check from a regulatory rule (None: allowed)."""
        def check(value):
            why = rule(value)
            if why:
                raise Refused(why)
            return value
        return check

    essid, country, wpa_psk = ruled(essid_rule), ruled(country_rule), \
        ruled(key_rule)

    def radio_channel(value):
        try:
            v = int(value)
        except (ValueError, TypeError):
            v = 0
        if not (1 <= v <= 14 or 36 <= v <= 165):
            raise Refused(f"{value!r} is not a channel: use an integer 1-14 "
                          "(2.4 GHz) or 36-165 (5 GHz, hw_mode a)")
        return v

    def ifname(value):
        if not isinstance(value, str) or not re.fullmatch(
                r"[A-Za-z0-9_.-]{1,15}", value):
            raise Refused(f"{value!r} is not an interface name: use 1-15 "
                          "letters, digits, '_', '.', '-'")
        return value

    def lifetime(value):
        if isinstance(value, str) and value.lower() == "infinity":
            return INFINITY
        try:
            v = int(value)
        except (ValueError, TypeError):
            v = -1
        if not 0 <= v <= INFINITY:
            raise Refused(f"{value!r} is not a lifetime: use seconds "
                          "0-4294967295 or infinity")
        return v

    def mn_ha_key(value):
        if not isinstance(value, str) or not re.fullmatch(r"(?:[0-9a-fA-F]{2})+", value) \
                or len(value) < 2 * MIN_MN_HA_KEY:
            # never echo the value: it may be most of a real key
            raise Refused(f"not an MN-HA key: use at least {2 * MIN_MN_HA_KEY} hex "
                          "digits, an even number (e.g. from: openssl rand -hex 20)")
        return value.lower()

    return Refused, {
        "ipv6_address": ipv6_address, "ipv6_prefix": ipv6_prefix,
        "ipv6_prefix_list": ipv6_prefix_list,
        "ipv6_address_list": ipv6_address_list, "domain_list": domain_list,
        "ipv6_interface": ipv6_interface, "essid": essid, "country": country,
        "wpa_psk": wpa_psk, "ifname": ifname, "radio_channel": radio_channel,
        "lifetime": lifetime, "mn_ha_key": mn_ha_key, "route_list": route_list,
        "pd_length": pd_length, "host_list": host_list, "host_port": host_port}


HOST_HINT = "use a host name or an address, e.g. pool.ntp.org or 2001:db8::123"
HOST_PORT_HINT = "use host or host:port, e.g. logs.example.com:514 or [2001:db8::5]:514"


def host_rule(value):
    """None if *value* is a host name or IP address, else what is allowed."""
    v = str(value)
    try:
        ipaddress.ip_address(v)
        return None
    except ValueError:
        pass
    labels = v.rstrip(".").split(".")
    if (not v or len(v) > 253 or not all(re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}"
                                                      r"[A-Za-z0-9])?", x) for x in labels)
            or labels[-1].isdigit()):
        return f"{v!r} is not a host: {HOST_HINT}"
    return None


def split_host_port(text, default_port=514):
    """(host, port) of "host", "host:port", "[v6]:port" or a bare IPv6 address."""
    text = text.strip()
    port = default_port
    m = re.fullmatch(r"\[([^\]]+)\](?::(\w+))?", text)
    if m:
        host, p = m.groups()
        if p is not None:
            port = p
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host = text  # a name, an IPv4 address or a bare IPv6 address
    why = host_rule(host)
    if why:
        raise ValueError(f"{text!r}: {why.split(': ', 1)[-1]}; {HOST_PORT_HINT}")
    try:
        port = int(port)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise ValueError(f"{text!r}: the port is not 1-65535: {HOST_PORT_HINT}")
    return host, port


ROUTE_HINT = "use prefix via gateway, e.g. 2001:db8:9::/48 via fe80::1"


def parse_route(text):
    """(IPv6Network, IPv6Address) of "prefix via gateway"; ValueError(rule)."""
    words = str(text).split()
    if len(words) != 3 or words[1] != "via":
        raise ValueError(f"{str(text).strip()!r} is not a route: {ROUTE_HINT}")
    try:
        net = ipaddress.IPv6Network(words[0], strict=True)
    except ValueError:
        net = None
    if net is None or "/" not in words[0]:
        raise ValueError(f"{words[0]!r} is not an IPv6 prefix (no host bits): "
                         + ROUTE_HINT)
    if net.prefixlen == 0:
        raise ValueError("::/0 is the default route: set uplink.gateway instead")
    try:
        gw = ipaddress.IPv6Address(words[2])
    except ValueError:
        raise ValueError(f"{words[2]!r} is not an IPv6 address: {ROUTE_HINT}") from None
    if gw.is_multicast or gw.is_unspecified or gw.is_loopback:
        raise ValueError(f"{gw} cannot be a gateway: use a unicast address of a "
                         "router on the uplink, e.g. fe80::1")
    return net, gw


def spec_path():
    return os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "denali.spec")


def load_spec():
    from configobj import ConfigObj
    return ConfigObj(spec_path(), list_values=False, _inspec=True,
                     encoding="utf-8")


def describe_check(check):
    """What a configspec check allows, in words: 'integer(min=1, max=14)'."""
    m = re.match(r"(\w+)\((.*)\)$", check.strip())
    if not m:
        return "see haconf show"
    name, args = m.groups()
    kw = dict(re.findall(r"(\w+)=([^,]+)", args))
    pos = [a.strip() for a in args.split(",")
           if a.strip() and "=" not in a]
    if name == "boolean":
        return "use on or off"
    if name == "option":
        return "use " + " or ".join(pos)
    if name in ("integer", "float"):
        what = "an integer" if name == "integer" else "a number"
        lo, hi = kw.get("min"), kw.get("max")
        if lo and hi:
            return f"use {what} {lo}-{hi}"
        if lo:
            return f"use {what} >= {lo}"
        return f"use {what}"
    return {
        "essid": "use 1-32 bytes of UTF-8",
        "ipv6_prefix": "use an IPv6 prefix, e.g. 2001:db8::/64",
        "ipv6_interface": "use an IPv6 address/length, e.g. 2001:db8::/64",
        "ifname": "use an interface name, e.g. wlan0",
        "radio_channel": "use an integer 1-14 (2.4 GHz) or 36-165 (5 GHz)",
        "ipv6_address": "use an IPv6 address, e.g. 2001:db8::1",
        "route_list": ROUTE_HINT,
        "ipv6_address_list": "use IPv6 addresses, e.g. 2001:db8::53, 2001:db8::54",
        "domain_list": "use domain names, e.g. example.com, lab.example",
        "pd_length": "use a prefix length 48-64, e.g. 56",
        "host_list": HOST_HINT,
        "host_port": HOST_PORT_HINT,
    }.get(name, f"use a value of type {name}")


def _spec_entry(spec, path):
    """The configspec check string for a dotted path, following __many__."""
    node = spec
    for part in path[:-1]:
        node = node[part] if part in node else node.get("__many__", {})
    return node.get(path[-1]) or node.get("__many__")


def parse_text(text, filename):
    """ConfigObj of *text*; configobj syntax errors become DenaliConfError."""
    from configobj import ConfigObj, ConfigObjError
    try:
        return ConfigObj(text.splitlines(),
                         interpolation=False, file_error=False,
                         raise_errors=True)
    except ConfigObjError as e:
        raise DenaliConfError(filename, [(None, f"not configobj syntax: {e}")]) \
            from None


def validate_text(text, filename="denali.conf", ra_check=None):
    """Check configuration text; return DenaliConfig or raise DenaliConfError.

    *ra_check(text, filename)* is the RA sender's own check of radvd.conf
    text, raising a ConfigError (radvd.config.parse is one): each [ra]
    interface is handed to it as the radvd.conf the daemon would run, so a
    file that passes is one the RA sender accepts.  This package does not
    import radvd; without *ra_check* only denali's checks here apply.
    """
    return validate_obj(parse_text(text, filename), filename, ra_check)


def validate_obj(raw, filename, ra_check=None):
    from configobj import ConfigObj, flatten_errors, get_extra_values
    from configobj.validate import Validator

    Refused, funcs = _checks()
    spec = load_spec()
    errors, reported = _fit_ra_blocks(spec, raw)
    cfg = ConfigObj(raw.dict(), configspec=spec, interpolation=False)
    result = cfg.validate(Validator(funcs), preserve_errors=True, copy=True)
    sections_words = ", ".join(f"[{s}]" for s in SECTIONS)
    for unknown in sorted(raw):
        if unknown in SECTIONS:
            continue
        if unknown in raw.sections:
            errors.append((unknown, "unknown section: use " + sections_words))
        else:
            errors.append((unknown, "setting outside a section: put it "
                           "under " + sections_words))
    if result is not True:
        for sections, key, exc in flatten_errors(cfg, result):
            path = list(sections) + ([key] if key else [])
            dotted = ".".join(path)
            if key is None:
                errors.append((dotted, "missing section"))
                continue
            check = _spec_entry(spec, path) or ""
            if exc is False:
                errors.append((dotted, "missing: " + describe_check(check)))
            elif isinstance(exc, Refused):
                errors.append((dotted, str(exc)))
            else:
                shown = _raw_value(raw, path)
                errors.append((dotted, f"{shown!r} is not allowed: "
                               + describe_check(check)))
    for sections, name in get_extra_values(cfg):
        if not sections:
            continue  # unknown top level sections reported above
        path = ".".join(list(sections) + [name])
        if path in reported:
            continue
        parent = spec
        for s in sections:
            parent = parent[s] if s in parent else parent["__many__"]
        allowed = [k for k in parent.scalars if not k.startswith("__")]
        if allowed:
            errors.append((path, "unknown setting: use one of "
                           + ", ".join(allowed)))
        else:
            errors.append((path, f"[{sections[0]}] holds one subsection per "
                           "interface, e.g. [[wlan0]]"))
    if errors:
        raise DenaliConfError(filename, errors)
    return _build(cfg, filename, ra_check)


def ra_block_kind(name):
    """'prefix', 'route', 'rdnss' or 'dnssl' for a block's section name, else None."""
    word = name.split(None, 1)[0].lower() if name.strip() else ""
    return word if word in RA_BLOCKS else None


def _fit_ra_blocks(spec, raw):
    """Give each [ra] interface's blocks their template in *spec*: (errors, paths).

    configobj fits sections to a spec by name only; a block's name carries
    its argument (``prefix 2001:db8:5::/64``), so the spec is widened here for
    the blocks this file has.  The templates leave ``__many__``, where
    configobj would create them in every interface.
    """
    many = spec["ra"]["__many__"]
    templates = {k: many.pop(f"__{k}__").dict() for k in RA_BLOCKS}
    errors, reported = [], set()
    ra = raw.get("ra")
    if not hasattr(ra, "sections"):
        return errors, reported
    for iface in ra.sections:
        blocks = ra[iface].sections if hasattr(ra[iface], "sections") else []
        if not blocks:
            continue
        own = many.dict()
        for b in blocks:
            kind = ra_block_kind(b)
            if kind is None:
                errors.append((f"ra.{iface}.{b}", "unknown block: " + RA_BLOCK_HINT))
                reported.add(f"ra.{iface}.{b}")
                continue
            own[b] = templates[kind]
        spec["ra"][iface] = own
    return errors, reported


def _raw_value(raw, path):
    node = raw
    for p in path:
        node = node.get(p) if hasattr(node, "get") else None
        if node is None:
            return None
    return node



def _home_address_keys(keys, where: str, hint: str) -> list:
    """Errors for keys that are not IPv6 addresses, or name one address twice."""
    errors, seen = [], {}
    for hoa in keys:
        try:
            same = seen.setdefault(ipaddress.IPv6Address(hoa), hoa)
        except ValueError:
            errors.append((f"{where}.{hoa}", f"not an IPv6 address: {hint}"))
            continue
        if same != hoa:
            errors.append((f"{where}.{hoa}", f"the same address as {same}: "
                           "give each home address once"))
    return errors

def _cross_checks(cfg, filename, ra_check=None):
    """Rules across settings; returns warnings, raises DenaliConfError."""
    errors, warnings = [], []
    ha = cfg["ha"]
    if ha["min_mob_pfx_adv_interval"] > ha["max_mob_pfx_adv_interval"]:
        errors.append(("ha.min_mob_pfx_adv_interval",
                       "greater than max_mob_pfx_adv_interval: use min <= max"))
    errors += _home_address_keys(ha["acl"], "ha.acl", "the keys of [[acl]] are home "
                                 "addresses, e.g. 2001:db8::beef")
    errors += _home_address_keys(cfg.get("auth", {}), "auth", "the subsections of [auth] "
                                 "are home addresses, e.g. [[2001:db8::beef]]")
    for name, ra in cfg["ra"].items():
        maxi, mini = ra["MaxRtrAdvInterval"], ra["MinRtrAdvInterval"]
        # radvd.conf(5): MinRtrAdvInterval <= 0.75 * MaxRtrAdvInterval
        if mini is not None and mini > 0.75 * maxi:
            errors.append((f"ra.{name}.MinRtrAdvInterval",
                           f"{_num(mini)} is more than 0.75 x "
                           f"MaxRtrAdvInterval {_num(maxi)}: use at most "
                           f"{_num(0.75 * maxi)}"))
        dl = ra["AdvDefaultLifetime"]
        if dl not in (None, 0) and dl < maxi:
            errors.append((f"ra.{name}.AdvDefaultLifetime",
                           f"{dl} is less than MaxRtrAdvInterval "
                           f"{_num(maxi)}: use 0 or at least {_num(maxi)}"))
        if ra["AdvPreferredLifetime"] > ra["AdvValidLifetime"]:
            errors.append((f"ra.{name}.AdvPreferredLifetime",
                           "greater than AdvValidLifetime: use at most "
                           f"{ra['AdvValidLifetime']}"))
        errors += _ra_block_checks(name, ra)
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", name):
            errors.append((f"ra.{name}", "not an interface name"))
        elif ra_check is not None and not any(
                k.startswith(f"ra.{name}.") for k, _ in errors):
            errors.extend(_ra_rules(ra_check, name, ra))
    radios = list(cfg["radio"].items())
    for name, r in radios:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", name):
            errors.append((f"radio.{name}", "not an interface name"))
        rule = channel_rule(r["channel"], r["country"], r["hw_mode"])
        if rule:
            errors.append((f"radio.{name}.channel", rule))
        rule = ht_rule(r["ieee80211n"], r["hw_mode"])
        if rule:
            errors.append((f"radio.{name}.ieee80211n", rule))
        rule = security_rule(r["security"], r["key"])
        if rule:
            errors.append((f"radio.{name}.security", rule))
    for i, (a, ra_) in enumerate(radios):
        for b, rb in radios[i + 1:]:
            if ra_["essid"] == rb["essid"]:
                errors.append((f"radio.{b}.essid",
                               f"{rb['essid']!r} is already the ESSID of {a}: "
                               "each radio needs its own ESSID"))
            gap = abs(ra_["channel"] - rb["channel"])
            if gap == 0:
                errors.append((f"radio.{b}.channel",
                               f"channel {rb['channel']} is already used by "
                               f"{a}: use another channel, at best 5 or "
                               "more apart"))
            elif gap < NON_OVERLAP_DISTANCE and max(ra_["channel"],
                                                    rb["channel"]) <= 14:
                # 5 GHz channels are 20 MHz apart: only 2.4 GHz ones overlap
                warnings.append(f"radio.{a}.channel {ra_['channel']} and "
                                f"radio.{b}.channel {rb['channel']} overlap "
                                "(less than 5 apart)")
    errors += _uplink_checks(cfg)
    iface = ha["interface"]
    if iface in cfg["radio"] and cfg["radio"][iface]["role"] != "home":
        warnings.append(f"ha.interface {iface} is a radio with role "
                        f"{cfg['radio'][iface]['role']}, not home")
    if errors:
        raise DenaliConfError(filename, errors)
    return warnings


def _num(x):
    return f"{x:g}"


def _uplink_checks(cfg):
    """[uplink]'s rules across its settings and against the cells."""
    up = cfg.get("uplink") or {}
    errors = []
    name = up.get("interface")
    if name is None:
        for key in ("address", "gateway"):
            if up.get(key) is not None:
                errors.append((f"uplink.{key}", "set without uplink.interface: name "
                               "the upstream interface, e.g. interface = eth0"))
        for key in ("routes", "prefix_delegation"):
            if up.get(key):
                errors.append((f"uplink.{key}", "set without uplink.interface: name the "
                               "upstream interface, e.g. interface = eth0"))
        return errors
    if up.get("prefix_delegation"):
        errors += _pd_checks(cfg, up)
    if name in cfg["radio"] or name in cfg["ra"] or name == cfg["ha"]["interface"]:
        errors.append(("uplink.interface", f"{name} is a cell (in [radio], [ra] or "
                       "ha.interface): the uplink is the upstream interface, e.g. eth0"))
    net = None
    if up["mode"] == "static":
        if up["address"] is None:
            errors.append(("uplink.address", "missing for mode = static: use "
                           "address/length, e.g. 2001:db8:ff::2/64 (or mode = slaac)"))
        else:
            iface = ipaddress.IPv6Interface(up["address"])
            net = iface.network
            if (iface.ip.is_multicast or iface.ip.is_link_local or iface.ip.is_loopback
                    or iface.ip.is_unspecified):
                errors.append(("uplink.address", f"{iface.ip} is not a global unicast "
                               "address: use e.g. 2001:db8:ff::2/64"))
                net = None
    elif up["address"] is not None:
        errors.append(("uplink.address", "a static address with mode = slaac: use "
                       "mode = static, or unset address"))

    def on_link(key, gw):
        gw = ipaddress.IPv6Address(gw)
        if gw.is_multicast or gw.is_unspecified or gw.is_loopback:
            errors.append((key, f"{gw} cannot be a gateway: use a unicast address of "
                           "a router on the uplink, e.g. fe80::1"))
        elif net is not None and not gw.is_link_local and gw not in net:
            errors.append((key, f"{gw} is not on the uplink's link {net}: use an "
                           "address in it or a link-local one (fe80::...)"))
        elif net is not None and gw == ipaddress.IPv6Interface(up["address"]).ip:
            errors.append((key, f"{gw} is uplink.address itself: use the upstream "
                           "router's address"))

    if up["gateway"] is not None:
        on_link("uplink.gateway", up["gateway"])
    seen = set()
    for r in up["routes"]:
        prefix, gw = parse_route(r)
        if prefix in seen:
            errors.append(("uplink.routes", f"{prefix} is given twice: give each "
                           "route once"))
        seen.add(prefix)
        on_link("uplink.routes", gw)
    return errors


def _pd_checks(cfg, up):
    """Prefix delegation: the sub-prefix ids fit the length asked for, and differ."""
    errors = []
    length = up.get("pd_hint") or 56  # what _pd_checks assumes when nothing is asked
    room = 1 << (64 - length)
    ids = [("uplink.pd_home_id", up["pd_home_id"]), ("uplink.pd_foreign_id",
                                                       up["pd_foreign_id"])]
    for key, v in ids:
        if up.get("pd_hint") and v >= room:
            errors.append((key, f"{v} does not fit a /{length}: use 0-{room - 1}"))
    if ids[0][1] == ids[1][1]:
        errors.append(("uplink.pd_foreign_id", f"{ids[1][1]} is pd_home_id too: give "
                       "each cell its own sub-prefix, e.g. 0 and 1"))
    roles = [r.get("role") for r in cfg["radio"].values()]
    if "home" not in roles and "foreign" not in roles:
        errors.append(("uplink.prefix_delegation", "no cell in [radio] to number: a "
                       "delegated prefix goes to the radios with role home and foreign"))
    return errors


def _uplink_typed(up):
    if not up or up.get("interface") is None:
        return None
    return UplinkSettings(
        interface=up["interface"], mode=up["mode"], address=up["address"],
        gateway=up["gateway"],
        routes=tuple(UplinkRoute(str(p), str(g))
                     for p, g in map(parse_route, up["routes"])),
        dns=tuple(up["dns"] or ()),
        prefix_delegation=up.get("prefix_delegation", False), pd_hint=up.get("pd_hint"),
        pd_home_id=up.get("pd_home_id", 0), pd_foreign_id=up.get("pd_foreign_id", 1))


def _system_typed(sy):
    sy = sy or {}
    return SystemSettings(ntp_servers=tuple(sy.get("ntp_servers") or ()),
                          syslog_host=sy.get("syslog_host"))


def ra_blocks(r):
    """[(section name, kind, argument)] of one [ra] interface's blocks, in file order."""
    out = []
    for key, v in r.items():
        if isinstance(v, dict):
            parts = key.split(None, 1)
            out.append((key, ra_block_kind(key), parts[1].strip() if len(parts) > 1 else ""))
    return out


def block_prefix(kind, arg):
    """(as radvd.conf writes it, network) of a prefix or route block; ValueError(rule)."""
    if not arg:
        raise ValueError(f"{kind} without a prefix: name it e.g. [[[{kind} "
                         f"{'2001:db8:5::/64' if kind == 'prefix' else '2001:db8:7::/48'}]]]")
    try:
        iface = ipaddress.IPv6Interface(arg)
    except ValueError:
        iface = None
    if iface is None or "/" not in arg:
        raise ValueError(f"{arg!r} is not an IPv6 prefix: use address/length, e.g. "
                         "2001:db8:5::/64")
    net = iface.network
    if iface.ip == net.network_address:
        return str(net), net
    if kind == "route":
        raise ValueError(f"{arg!r} has host bits: a route is a prefix, e.g. {net}")
    # radvd.conf(5): the interface's own address in a prefix, for Mobile IPv6
    # (RFC 6275 §7.2, the Router Address flag)
    return f"{iface.ip}/{net.prefixlen}", net


def _ra_block_checks(name, ra):
    """Rules of one interface's blocks and of the settings they go with."""
    errors = []
    maxi = ra["MaxRtrAdvInterval"]
    seen = {}
    if ra["prefix"]:
        seen[("prefix", ipaddress.IPv6Network(ra["prefix"]))] = "prefix"
    for key, kind, arg in ra_blocks(ra):
        where = f"ra.{name}.{key}"
        b = ra[key]
        if kind in ("prefix", "route"):
            try:
                _, net = block_prefix(kind, arg)
            except ValueError as e:
                errors.append((where, str(e)))
                continue
            first = seen.setdefault((kind, net), key)
            if first != key:
                errors.append((where, f"{net} is already given by {first}: give "
                               f"each {kind} once"))
        if kind == "prefix" and b["AdvPreferredLifetime"] > b["AdvValidLifetime"]:
            errors.append((f"{where}.AdvPreferredLifetime", "greater than "
                           f"AdvValidLifetime: use at most {b['AdvValidLifetime']}"))
        for lk in ("AdvRDNSSLifetime", "AdvDNSSLLifetime"):
            lt = b.get(lk)
            # radvd refuses less than MaxRtrAdvInterval (and sends that instead);
            # RFC 8106 §5.1 advises at least 3 x MaxRtrAdvInterval; 0 withdraws
            if lt not in (None, 0) and lt < maxi:
                errors.append((f"{where}.{lk}", f"{lt} is less than MaxRtrAdvInterval "
                               f"{_num(maxi)}: use 0 (withdraw) or at least {_num(maxi)}"))
    return errors


def _ra_typed_blocks(r, maxi):
    """(prefixes, routes, rdnss, dnssl) of one checked [ra] interface, typed."""
    prefixes, routes, rdnss, dnssl = [], [], [], []
    if r["prefix"]:
        prefixes.append(RaPrefix(r["prefix"], r["AdvOnLink"], r["AdvAutonomous"],
                                 r["AdvRouterAddr"], r["AdvValidLifetime"],
                                 r["AdvPreferredLifetime"]))

    def derived(v, times):  # radvd.config's default: max(1, int(times x Max))
        return max(1, int(times * maxi)) if v is None else v

    for key, kind, arg in ra_blocks(r):
        b = r[key]
        if kind == "prefix":
            prefixes.append(RaPrefix(
                block_prefix(kind, arg)[0], b["AdvOnLink"], b["AdvAutonomous"],
                b["AdvRouterAddr"], b["AdvValidLifetime"], b["AdvPreferredLifetime"],
                b["DeprecatePrefix"], b["DecrementLifetimes"]))
        elif kind == "route":
            routes.append(RaRoute(block_prefix(kind, arg)[0], b["AdvRoutePreference"],
                                  derived(b["AdvRouteLifetime"], 3), b["RemoveRoute"]))
        elif kind == "rdnss":
            rdnss.append(RaRdnss(tuple(b["addresses"]),
                                 derived(b["AdvRDNSSLifetime"], 2), b["FlushRDNSS"]))
        elif kind == "dnssl":
            dnssl.append(RaDnssl(tuple(b["domains"]),
                                 derived(b["AdvDNSSLLifetime"], 2), b["FlushDNSSL"]))
    return tuple(prefixes), tuple(routes), tuple(rdnss), tuple(dnssl)


def _unset(v, default):
    return default if v is None else v


def _build(cfg, filename, ra_check=None):
    warnings = _cross_checks(cfg, filename, ra_check)
    ha = cfg["ha"]
    radios = [Radio(name=n, essid=r["essid"], channel=r["channel"],
                    hw_mode=r["hw_mode"], country=r["country"],
                    txpower=r["txpower"], role=r["role"], key=r["key"],
                    address=r["address"], ieee80211n=r["ieee80211n"],
                    security=security_of(r["security"], r["key"]))
              for n, r in cfg["radio"].items()]
    served = tuple(ha["served_prefix"])
    derived = not served
    if derived and ha["interface"] in cfg["radio"]:
        addr = cfg["radio"][ha["interface"]]["address"]
        if addr:
            # the home link's global /64 (RFC 6275 §10.1 home subnet prefix)
            ip = ipaddress.IPv6Interface(addr).ip
            served = (str(ipaddress.IPv6Interface(f"{ip}/64").network),)
    ras = []
    for n, r in cfg["ra"].items():
        maxi = r["MaxRtrAdvInterval"]
        mini = r["MinRtrAdvInterval"]
        if mini is None:  # radvd.conf(5) defaults, as radvd.config has them
            mini = 0.33 * maxi
        dl = r["AdvDefaultLifetime"]
        if dl is None:
            dl = max(1, int(3 * maxi))
        hal = r["HomeAgentLifetime"]
        prefixes, routes, rdnss, dnssl = _ra_typed_blocks(r, maxi)
        ras.append(RaInterface(
            name=n, adv_send_advert=r["AdvSendAdvert"],
            max_rtr_adv_interval=maxi, min_rtr_adv_interval=mini,
            min_delay_between_ras=r["MinDelayBetweenRAs"],
            adv_managed_flag=r["AdvManagedFlag"],
            adv_other_config_flag=r["AdvOtherConfigFlag"],
            adv_link_mtu=r["AdvLinkMTU"],
            adv_reachable_time=r["AdvReachableTime"],
            adv_retrans_timer=r["AdvRetransTimer"],
            adv_cur_hop_limit=r["AdvCurHopLimit"],
            adv_default_lifetime=dl,
            adv_source_ll_address=r["AdvSourceLLAddress"],
            adv_interval_opt=r["AdvIntervalOpt"],
            adv_home_agent_flag=r["AdvHomeAgentFlag"],
            adv_home_agent_info=r["AdvHomeAgentInfo"],
            home_agent_preference=r["HomeAgentPreference"],
            home_agent_lifetime=dl if hal is None else hal,
            prefixes=prefixes,
            max_ra_delay=0.5 if r["MaxRADelay"] is None else r["MaxRADelay"],
            adv_default_preference=_unset(r["AdvDefaultPreference"], "medium"),
            unicast_only=_unset(r["UnicastOnly"], False),
            ignore_if_missing=_unset(r["IgnoreIfMissing"], True),
            adv_ra_solicited_unicast=_unset(r["AdvRASolicitedUnicast"], True),
            adv_mob_rtr_support_flag=_unset(r["AdvMobRtrSupportFlag"], False),
            clients=tuple(r["clients"] or ()),
            routes=routes, rdnss=rdnss, dnssl=dnssl))
    return DenaliConfig(
        path=filename,
        ha=HaSettings(
            enabled=ha["enabled"], interface=ha["interface"],
            served_prefixes=served, served_prefixes_derived=derived,
            max_binding_lifetime=ha["max_binding_lifetime"],
            acl_default_allow=ha["acl_default"] == "allow",
            acl=_effective_acl(ha["acl"], cfg.get("auth", {})),
            dad=ha["dad"], tunnel_during_dad=ha["tunnel_during_dad"], proxy_nd=ha["proxy_nd"], vt_port=ha["vt_port"],
            send_mob_pfx_advs=ha["send_mob_pfx_advs"],
            min_mob_pfx_adv_interval=ha["min_mob_pfx_adv_interval"],
            max_mob_pfx_adv_interval=ha["max_mob_pfx_adv_interval"],
            debug_level=ha["debug_level"],
            capacity=ha["capacity"],
            new_bindings_per_prefix_rate=ha["new_bindings_per_prefix_rate"],
            new_bindings_per_prefix_burst=ha["new_bindings_per_prefix_burst"],
            new_bindings_rate=ha["new_bindings_rate"],
            new_bindings_burst=ha["new_bindings_burst"],
            max_tunnels=ha["max_tunnels"],
            packets_per_source_rate=ha["packets_per_source_rate"],
            packets_per_source_burst=ha["packets_per_source_burst"]),
        ra_interfaces=ras, radios=radios, warnings=warnings,
        uplink=_uplink_typed(cfg.get("uplink")),
        system=_system_typed(cfg.get("system")),
        values=cfg.dict(),
        auth={str(ipaddress.IPv6Address(h)): (a["spi"], a["key"])
              for h, a in cfg.get("auth", {}).items()})


class _Tree(dict):
    """A validated tree as a plain dict, with ConfigObj's .dict() for _build."""

    def dict(self):
        return {k: dict(v) if isinstance(v, dict) else v for k, v in self.items()}


def rebuild(values, filename, ra_check=None):
    """The DenaliConfig of an already validated tree (*values*, as a
    DenaliConfig's .values) that a program changed, e.g. with a delegated
    prefix laid over it (ha/config/pd.py): the rules across settings and the
    RA sender's own run again, the per-value checks do not."""
    def wrap(node):
        return _Tree({k: wrap(v) if isinstance(v, dict) else v for k, v in node.items()})
    return _build(wrap(values), filename, ra_check)


def _effective_acl(acl, auth):
    """[[acl]] as home address -> allow, plus an allow for each keyed home address.

    A home address is configured when it has an [auth] key or an [[acl]]
    allow; ``acl_default = deny`` refuses the others (129, RFC 6275 §10.3.1).
    A key alone admits its address; an explicit [[acl]] deny still refuses it.
    """
    out = {str(ipaddress.IPv6Address(k)): v == "allow" for k, v in acl.items()}
    for hoa in auth:
        out.setdefault(str(ipaddress.IPv6Address(hoa)), True)
    return out


# ------------------------------------------------------------------- loading

def config_path(path=None):
    """The file in use: *path*, else $DENALI_CONF, else the default."""
    return path or os.environ.get(ENV_VAR) or DEFAULT_PATH


def read_text(path):
    """The file's text, or DEFAULT_TEXT when there is no file yet."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return DEFAULT_TEXT


def load_config(path=None, ra_check=None):
    """Load and validate the committed configuration (DenaliConfError if bad).

    *ra_check* as for validate_text.
    """
    path = config_path(path)
    try:
        text = read_text(path)
    except UnicodeDecodeError:
        raise DenaliConfError(path, [(None, "not UTF-8 text")]) from None
    return validate_text(text, path, ra_check)


# ------------------------------------------------------------ radvd.conf out

def _radvd_value(v):
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, float):
        return _num(v)
    if v == INFINITY:
        return "infinity"
    return str(v)


def _radvd_iface_lines(name, r):
    """[(radvd.conf line, the denali.conf key it comes from)] of one interface."""
    out = [(f"interface {name}", None), ("{", None)]
    for key, v in r.items():
        if (key in PREFIX_KEYS or key in ("prefix", "clients") or v is None
                or isinstance(v, dict)):
            continue
        out.append((f"\t{key} {_radvd_value(v)};", key))
    if r.get("prefix"):
        out.append((f"\tprefix {r['prefix']}", "prefix"))
        out.append(("\t{", "prefix"))
        for key in PREFIX_KEYS:
            out.append((f"\t\t{key} {_radvd_value(r[key])};", "prefix"))
        out.append(("\t};", "prefix"))
    # radvd.conf's order: prefixes, routes, RDNSS, DNSSL, clients
    blocks = ra_blocks(r)
    for want in RA_BLOCKS:
        for key, kind, arg in blocks:
            if kind != want:
                continue
            b = r[key]
            if kind in ("prefix", "route"):
                head = f"{kind} {block_prefix(kind, arg)[0]}"
            elif kind == "rdnss":
                head = "RDNSS " + " ".join(b["addresses"])
            else:
                head = "DNSSL " + " ".join(b["domains"])
            out += [(f"\t{head}", key), ("\t{", key)]
            for k, v in b.items():
                if k not in ("addresses", "domains") and v is not None:
                    out.append((f"\t\t{k} {_radvd_value(v)};", f"{key}.{k}"))
            out.append(("\t};", key))
    if r.get("clients"):
        out += [("\tclients", "clients"), ("\t{", "clients")]
        out += [(f"\t\t{c};", "clients") for c in r["clients"]]
        out.append(("\t};", "clients"))
    out.append(("};", None))
    return out


def _radvd_iface_text(name, r):
    return "".join(line + "\n" for line, _ in _radvd_iface_lines(name, r))


def ra_as_radvd_text(cfg):
    """radvd.conf text (braces and semicolons) for the [ra] part.

    Every checked setting is written (defaults included) except those left
    unset, whose defaults radvd derives from MaxRtrAdvInterval as we do.
    """
    return "".join(_radvd_iface_text(name, r)
                   for name, r in cfg.values["ra"].items())


def _ra_rules(ra_check, name, ra):
    """The RA sender's rules across one interface's settings, as (key, rule)."""
    lines = _radvd_iface_lines(name, ra)
    try:
        ra_check("".join(line + "\n" for line, _ in lines), "ra")
    except _errors.ConfigError as e:
        # the line of the text handed over says which block broke the rule
        # (the message names the keyword); the interface's own rules stay ra.NAME
        n = getattr(e, "line", None)
        key = lines[n - 1][1] if isinstance(n, int) and 0 < n <= len(lines) else None
        block = key.split(".")[0] if key else None
        if block not in ra:
            block = None
        elif not isinstance(ra[block], dict):
            block = "prefix" if block == "prefix" else None
        return [(f"ra.{name}.{block}" if block else f"ra.{name}", e.message)]
    return []
