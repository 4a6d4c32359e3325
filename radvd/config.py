"""radvd.conf: parser, validator and writer (pure: no sockets, no clock).

Two grammars are accepted, and may be mixed in one file:

* radvd's own, with braces and semicolons::

      interface eth0 {
          AdvSendAdvert on;
          prefix 2001:db8::/64 { AdvOnLink on; };
      };

* the seed document's, as printed in the article, where the braces and the
  `};` of the interface and prefix stanzas were lost::

      interface wlan0
          AdvSendAdvert on;
          prefix 2001:db8::/64
          AdvOnLink on;

  A brace-less block lasts until a keyword that cannot belong to it: a prefix
  ends at the first interface option or block, an interface at the next
  `interface`.  That is unambiguous because the keyword sets do not overlap.

The semicolon after an option is optional for the same reason (each option
takes exactly one value).  Defaults follow radvd.conf(5) of radvd 2.19;
validation follows radvd's check_iface(), with MaxRtrAdvInterval and
AdvDefaultLifetime allowed up to 65535 as RFC 8319 permits.

Errors are RadvdConfError("file", line, "message"), str "file:line: message";
it is an ha.config.errors.ConfigError like denali's other config readers'.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network

from ha.config.errors import ConfigError as _ConfigError

INFINITY = 0xFFFFFFFF

# RFC 4861 §6.2.1 / RFC 6275 §7.5 / RFC 8319 bounds (radvd's defaults.h names)
MIN_MIN_RTR_ADV_INTERVAL = 3.0
MIN_MIN_RTR_ADV_INTERVAL_MIPV6 = 0.03
MIN_MAX_RTR_ADV_INTERVAL = 4.0
MIN_MAX_RTR_ADV_INTERVAL_MIPV6 = 0.07
MAX_MAX_RTR_ADV_INTERVAL = 65535.0          # RFC 8319 §4 (radvd 2.19 still says 1800)
MIN_DELAY_BETWEEN_RAS = 3.0
MIN_DELAY_BETWEEN_RAS_MIPV6 = 0.03
MAX_RA_DELAY = 0.5                  # RFC 4861 §10 MAX_RA_DELAY_TIME, the MaxRADelay bound
MAX_ADV_DEFAULT_LIFETIME = 65535            # RFC 8319 §4 (radvd 2.19: 9000)
MAX_ADV_REACHABLE_TIME = 3_600_000
MIN_ADV_LINK_MTU = 1280
MIN_HOME_AGENT_LIFETIME = 1
MAX_HOME_AGENT_LIFETIME = 65520             # RFC 6275 §7.4

PREFERENCES = {"low": -1, "medium": 0, "high": 1}
_PREFERENCE_NAMES = {v: k for k, v in PREFERENCES.items()}


class RadvdConfError(_ConfigError):
    """A radvd.conf problem, naming the file, the line and the rule."""

    def __init__(self, filename: str, line: int, message: str):
        super().__init__(message, filename, line)


# The name this error had before it joined ha.config.errors: kept for callers.
ConfigError = RadvdConfError


# --------------------------------------------------------------------------- model

@dataclass(slots=True)
class PrefixConfig:
    prefix: IPv6Network
    adv_on_link: bool = True
    adv_autonomous: bool = True
    adv_router_addr: bool = False
    adv_valid_lifetime: int = 86400
    adv_preferred_lifetime: int = 14400
    deprecate_prefix: bool = False
    decrement_lifetimes: bool = False
    # the address written in the prefix stanza when it had host bits (radvd.conf(5):
    # "the address of interface should be used when using Mobile IPv6 extensions")
    address: IPv6Address | None = None
    line: int = field(default=0, compare=False, repr=False)


@dataclass(slots=True)
class RouteConfig:
    prefix: IPv6Network
    adv_route_lifetime: int | None = None       # None: 3 * MaxRtrAdvInterval
    adv_route_preference: int = 0
    remove_route: bool = True
    line: int = field(default=0, compare=False, repr=False)


@dataclass(slots=True)
class RDNSSConfig:
    servers: tuple[IPv6Address, ...]
    adv_rdnss_lifetime: int | None = None       # None: 2 * MaxRtrAdvInterval
    flush_rdnss: bool = True
    line: int = field(default=0, compare=False, repr=False)


@dataclass(slots=True)
class DNSSLConfig:
    domains: tuple[str, ...]
    adv_dnssl_lifetime: int | None = None       # None: 2 * MaxRtrAdvInterval
    flush_dnssl: bool = True
    line: int = field(default=0, compare=False, repr=False)


@dataclass(slots=True)
class InterfaceConfig:
    name: str
    ignore_if_missing: bool = True
    adv_send_advert: bool = False
    unicast_only: bool = False
    adv_ra_solicited_unicast: bool = True
    # denali extension: the bound of RFC 4861 §6.2.6's random delay before a
    # solicited RA (MAX_RA_DELAY_TIME, 0.5 s); 0 answers at once
    max_ra_delay: float = 0.5
    max_rtr_adv_interval: float = 600.0
    min_rtr_adv_interval: float | None = None   # resolved: 0.33 * max
    min_delay_between_ras: float = 3.0
    adv_managed_flag: bool = False
    adv_other_config_flag: bool = False
    adv_link_mtu: int = 0
    adv_reachable_time: int = 0
    adv_retrans_timer: int = 0
    adv_cur_hop_limit: int = 64
    adv_default_lifetime: int | None = None     # resolved: max(1, int(3 * max))
    adv_default_preference: int = 0
    adv_source_ll_address: bool = True
    adv_home_agent_flag: bool = False
    adv_home_agent_info: bool = False
    home_agent_lifetime: int | None = None      # resolved: adv_default_lifetime
    home_agent_preference: int = 0
    adv_mob_rtr_support_flag: bool = False
    adv_interval_opt: bool = False
    prefixes: list[PrefixConfig] = field(default_factory=list)
    routes: list[RouteConfig] = field(default_factory=list)
    rdnss: list[RDNSSConfig] = field(default_factory=list)
    dnssl: list[DNSSLConfig] = field(default_factory=list)
    clients: list[IPv6Address] = field(default_factory=list)
    line: int = field(default=0, compare=False, repr=False)
    lines: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def mobile_ipv6(self) -> bool:
        """radvd's rule for the Mobile IPv6 limits (RFC 6275 §7.5)."""
        return (self.adv_home_agent_flag or self.adv_home_agent_info or self.adv_interval_opt
                or any(p.adv_router_addr for p in self.prefixes))

    def resolve_defaults(self) -> None:
        """Fill the defaults that depend on other options (radvd.conf(5))."""
        if self.min_rtr_adv_interval is None:
            self.min_rtr_adv_interval = 0.33 * self.max_rtr_adv_interval
        if self.adv_default_lifetime is None:
            self.adv_default_lifetime = _default_lifetime(self.max_rtr_adv_interval)
        if self.home_agent_lifetime is None:
            self.home_agent_lifetime = self.adv_default_lifetime
        for r in self.routes:
            if r.adv_route_lifetime is None:
                r.adv_route_lifetime = _lifetime_from(3 * self.max_rtr_adv_interval)
        for r in self.rdnss:
            if r.adv_rdnss_lifetime is None:
                r.adv_rdnss_lifetime = _lifetime_from(2 * self.max_rtr_adv_interval)
        for d in self.dnssl:
            if d.adv_dnssl_lifetime is None:
                d.adv_dnssl_lifetime = _lifetime_from(2 * self.max_rtr_adv_interval)


def _default_lifetime(max_interval: float) -> int:
    return max(1, int(3 * max_interval))


def _lifetime_from(seconds: float) -> int:
    return max(1, int(seconds))


@dataclass(slots=True)
class Config:
    interfaces: list[InterfaceConfig] = field(default_factory=list)
    filename: str = field(default="radvd.conf", compare=False, repr=False)

    def interface(self, name: str) -> InterfaceConfig:
        for i in self.interfaces:
            if i.name == name:
                return i
        raise KeyError(name)


# --------------------------------------------------------------------------- keywords

def _bool(v: str) -> bool:
    low = v.lower()
    if low in ("on", "1", "yes", "true"):
        return True
    if low in ("off", "0", "no", "false"):
        return False
    raise ValueError("expects on or off")


def _seconds(v: str) -> float:
    try:
        x = float(v)
    except ValueError:
        raise ValueError("expects a number of seconds") from None
    if x != x or x < 0 or x == float("inf"):
        raise ValueError("expects a non-negative number of seconds")
    return x


def _uint(limit: int):
    def conv(v: str) -> int:
        if not v.isdigit():
            if _is_decimal(v):
                raise ValueError("takes a whole number (decimal values are only allowed for "
                                 "MinRtrAdvInterval, MaxRtrAdvInterval and MinDelayBetweenRAs)")
            raise ValueError("expects a whole number")
        x = int(v)
        if x > limit:
            raise ValueError(f"must be no more than {limit}")
        return x
    return conv


def _int16(v: str) -> int:
    try:
        x = int(v)
    except ValueError:
        raise ValueError("expects a whole number") from None
    if not -32768 <= x <= 32767:
        raise ValueError("must be between -32768 and 32767")
    return x


def _lifetime(v: str) -> int:
    if v.lower() == "infinity":
        return INFINITY
    return _uint(INFINITY)(v)


def _preference(v: str) -> int:
    try:
        return PREFERENCES[v.lower()]
    except KeyError:
        raise ValueError("expects low, medium or high") from None


def _is_decimal(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


# radvd keyword -> (attribute, converter)
INTERFACE_OPTIONS = {
    "IgnoreIfMissing": ("ignore_if_missing", _bool),
    "AdvSendAdvert": ("adv_send_advert", _bool),
    "UnicastOnly": ("unicast_only", _bool),
    "AdvRASolicitedUnicast": ("adv_ra_solicited_unicast", _bool),
    "MaxRADelay": ("max_ra_delay", _seconds),           # denali's, not radvd's
    "MaxRtrAdvInterval": ("max_rtr_adv_interval", _seconds),
    "MinRtrAdvInterval": ("min_rtr_adv_interval", _seconds),
    "MinDelayBetweenRAs": ("min_delay_between_ras", _seconds),
    "AdvManagedFlag": ("adv_managed_flag", _bool),
    "AdvOtherConfigFlag": ("adv_other_config_flag", _bool),
    "AdvLinkMTU": ("adv_link_mtu", _uint(INFINITY)),
    "AdvReachableTime": ("adv_reachable_time", _uint(INFINITY)),
    "AdvRetransTimer": ("adv_retrans_timer", _uint(INFINITY)),
    "AdvCurHopLimit": ("adv_cur_hop_limit", _uint(INFINITY)),
    "AdvDefaultLifetime": ("adv_default_lifetime", _uint(INFINITY)),
    "AdvDefaultPreference": ("adv_default_preference", _preference),
    "AdvSourceLLAddress": ("adv_source_ll_address", _bool),
    "AdvHomeAgentFlag": ("adv_home_agent_flag", _bool),
    "AdvHomeAgentInfo": ("adv_home_agent_info", _bool),
    "HomeAgentLifetime": ("home_agent_lifetime", _uint(INFINITY)),
    "HomeAgentPreference": ("home_agent_preference", _int16),
    "AdvMobRtrSupportFlag": ("adv_mob_rtr_support_flag", _bool),
    "AdvIntervalOpt": ("adv_interval_opt", _bool),
}
PREFIX_OPTIONS = {
    "AdvOnLink": ("adv_on_link", _bool),
    "AdvAutonomous": ("adv_autonomous", _bool),
    "AdvRouterAddr": ("adv_router_addr", _bool),
    "AdvValidLifetime": ("adv_valid_lifetime", _lifetime),
    "AdvPreferredLifetime": ("adv_preferred_lifetime", _lifetime),
    "DeprecatePrefix": ("deprecate_prefix", _bool),
    "DecrementLifetimes": ("decrement_lifetimes", _bool),
}
ROUTE_OPTIONS = {
    "AdvRouteLifetime": ("adv_route_lifetime", _lifetime),
    "AdvRoutePreference": ("adv_route_preference", _preference),
    "RemoveRoute": ("remove_route", _bool),
}
RDNSS_OPTIONS = {
    "AdvRDNSSLifetime": ("adv_rdnss_lifetime", _lifetime),
    "FlushRDNSS": ("flush_rdnss", _bool),
}
DNSSL_OPTIONS = {
    "AdvDNSSLLifetime": ("adv_dnssl_lifetime", _lifetime),
    "FlushDNSSL": ("flush_dnssl", _bool),
}
_OPTIONS_BY_KIND = {"interface": INTERFACE_OPTIONS, "prefix": PREFIX_OPTIONS,
                    "route": ROUTE_OPTIONS, "RDNSS": RDNSS_OPTIONS, "DNSSL": DNSSL_OPTIONS,
                    "clients": {}}
_BLOCKS = ("prefix", "route", "RDNSS", "DNSSL", "clients")
_UNSUPPORTED = ("abro", "AdvRASrcAddress", "nat64prefix", "Base6Interface", "Base6to4Interface",
                "AdvCaptivePortalAPI", "lowpanco", "AdvCaptivePortal")
_KEYWORD_CASE = {k.lower(): k for k in (*INTERFACE_OPTIONS, *PREFIX_OPTIONS, *ROUTE_OPTIONS,
                                        *RDNSS_OPTIONS, *DNSSL_OPTIONS, *_BLOCKS, "interface",
                                        "include")}


# --------------------------------------------------------------------------- tokenizer

@dataclass(slots=True)
class _Token:
    text: str
    line: int
    quoted: bool = False


def _tokenize(text: str, filename: str) -> list[_Token]:
    out: list[_Token] = []
    line = 1
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c in "{};":
            out.append(_Token(c, line))
            i += 1
        elif c == '"':
            j = text.find('"', i + 1)
            if j < 0 or "\n" in text[i + 1:j]:
                raise RadvdConfError(filename, line, "unterminated quoted string")
            out.append(_Token(text[i + 1:j], line, quoted=True))
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in '{};#"':
                j += 1
            out.append(_Token(text[i:j], line))
            i = j
    return out


# --------------------------------------------------------------------------- parser

@dataclass(slots=True)
class _Block:
    kind: str            # "interface", "prefix", "route", "RDNSS", "DNSSL", "clients"
    obj: object
    line: int
    braced: bool


class _Parser:
    def __init__(self, text: str, filename: str, loader=None, depth: int = 0):
        self.filename = filename
        self.toks = _tokenize(text, filename)
        self.pos = 0
        self.loader = loader
        self.depth = depth
        self.interfaces: list[InterfaceConfig] = []

    def error(self, line: int, message: str) -> RadvdConfError:
        return RadvdConfError(self.filename, line, message)

    def peek(self) -> _Token | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def take(self) -> _Token | None:
        t = self.peek()
        if t is not None:
            self.pos += 1
        return t

    def skip_semicolon(self) -> None:
        t = self.peek()
        if t is not None and t.text == ";" and not t.quoted:
            self.pos += 1

    def open_brace(self) -> bool:
        t = self.peek()
        if t is not None and t.text == "{" and not t.quoted:
            self.pos += 1
            return True
        return False

    def parse(self) -> list[InterfaceConfig]:
        stack: list[_Block] = []
        while True:
            tok = self.take()
            if tok is None:
                for b in reversed(stack):
                    if b.braced:
                        raise self.error(b.line, f"missing '}}' for {b.kind} opened here "
                                                 f"(end of file reached)")
                break
            word = tok.text
            if tok.quoted:
                raise self.error(tok.line, f"unexpected quoted string \"{word}\"")
            if word == ";":
                continue
            if word == "{":
                raise self.error(tok.line, "unexpected '{'")
            if word == "}":
                # brace-less blocks end where the enclosing braced block ends
                while stack and not stack[-1].braced:
                    stack.pop()
                if not stack:
                    raise self.error(tok.line, "unexpected '}' with no open block")
                stack.pop()
                self.skip_semicolon()
                continue
            canon = _KEYWORD_CASE.get(word.lower(), word)
            if canon == "interface" or canon == "include":
                while stack and not stack[-1].braced:
                    stack.pop()
                if stack:
                    raise self.error(tok.line, f"'{canon}' inside {stack[-1].kind} "
                                               f"(missing '}}' for the {stack[-1].kind} "
                                               f"opened at line {stack[-1].line}?)")
                if canon == "include":
                    self.include(tok)
                else:
                    stack.append(self.interface(tok))
                continue
            # close brace-less blocks this keyword cannot belong to
            while (stack and not stack[-1].braced and stack[-1].kind != "interface"
                   and canon not in _OPTIONS_BY_KIND[stack[-1].kind]):
                stack.pop()
            if not stack:
                raise self.error(tok.line, self.unknown(word, "outside any interface"))
            block = stack[-1]
            if block.kind == "clients":
                self.client(block, tok)
                continue
            if canon in _OPTIONS_BY_KIND[block.kind]:
                self.option(block, canon, tok)
                continue
            if block.kind == "interface" and canon in _BLOCKS:
                stack.append(self.sub_block(block.obj, canon, tok))
                continue
            if block.kind == "interface" and word in _UNSUPPORTED:
                raise self.error(tok.line, f"'{word}' is a radvd option that denali does not "
                                           f"support")
            raise self.error(tok.line, self.unknown(word, f"in {block.kind}"))
        return self.interfaces

    def unknown(self, word: str, where: str) -> str:
        for kind, opts in _OPTIONS_BY_KIND.items():
            canon = _KEYWORD_CASE.get(word.lower())
            if canon in opts:
                return f"'{canon}' is a {kind} option, not allowed {where}"
        return f"unknown keyword '{word}' {where}"

    def value(self, keyword: str, line: int) -> _Token:
        t = self.take()
        if t is None or (not t.quoted and t.text in "{};"):
            raise self.error(line, f"{keyword} needs a value")
        return t

    def include(self, tok: _Token) -> None:
        path = self.value("include", tok.line)
        self.skip_semicolon()
        if self.loader is None:
            raise self.error(tok.line, "include is only possible when reading a file "
                                       "(use load())")
        if self.depth >= 8:
            raise self.error(tok.line, "includes nested too deeply (loop?)")
        self.interfaces.extend(self.loader(path.text, self.filename, tok.line, self.depth + 1))

    def interface(self, tok: _Token) -> _Block:
        name = self.value("interface", tok.line)
        if len(name.text) > 15 or "/" in name.text:
            raise self.error(tok.line, f"'{name.text}' is not a valid interface name")
        iface = InterfaceConfig(name=name.text, line=tok.line)
        self.interfaces.append(iface)
        return _Block("interface", iface, tok.line, self.open_brace())

    def sub_block(self, iface: InterfaceConfig, kind: str, tok: _Token) -> _Block:
        line = tok.line
        if kind == "clients":
            if not self.open_brace():
                raise self.error(line, "clients needs '{'")
            return _Block(kind, iface, line, True)
        if kind in ("prefix", "route"):
            arg = self.value(kind, line)
            try:
                net = IPv6Network(arg.text, strict=False)
            except ValueError:
                raise self.error(line, f"'{arg.text}' is not an IPv6 prefix") from None
            if "/" not in arg.text:
                raise self.error(line, f"{kind} '{arg.text}' needs a length (like /64)")
            if kind == "prefix":
                addr = IPv6Address(arg.text.split("/")[0])
                obj = PrefixConfig(prefix=net, address=addr if addr != net.network_address
                                   else None, line=line)
                iface.prefixes.append(obj)
            else:
                obj = RouteConfig(prefix=net, line=line)
                iface.routes.append(obj)
            return _Block(kind, obj, line, self.open_brace())
        # RDNSS / DNSSL: a list of values up to the '{'
        items = []
        while True:
            t = self.peek()
            if t is None or (not t.quoted and t.text in "{};"):
                break
            if not t.quoted and _KEYWORD_CASE.get(t.text.lower()) is not None:
                break
            items.append(self.take())
        if not items:
            raise self.error(line, f"{kind} needs at least one "
                                   f"{'address' if kind == 'RDNSS' else 'domain'}")
        if kind == "RDNSS":
            servers = []
            for t in items:
                try:
                    servers.append(IPv6Address(t.text))
                except ValueError:
                    raise self.error(t.line, f"'{t.text}' is not an IPv6 address") from None
            obj = RDNSSConfig(servers=tuple(servers), line=line)
            iface.rdnss.append(obj)
        else:
            obj = DNSSLConfig(domains=tuple(t.text for t in items), line=line)
            iface.dnssl.append(obj)
        return _Block(kind, obj, line, self.open_brace())

    def client(self, block: _Block, tok: _Token) -> None:
        try:
            block.obj.clients.append(IPv6Address(tok.text))
        except ValueError:
            raise self.error(tok.line, f"'{tok.text}' is not an IPv6 address (in clients)") \
                from None
        self.skip_semicolon()

    def option(self, block: _Block, keyword: str, tok: _Token) -> None:
        attr, conv = _OPTIONS_BY_KIND[block.kind][keyword]
        v = self.value(keyword, tok.line)
        try:
            value = conv(v.text)
        except ValueError as e:
            raise self.error(tok.line, f"{keyword} {e}, got '{v.text}'") from None
        setattr(block.obj, attr, value)
        if isinstance(block.obj, InterfaceConfig):
            block.obj.lines[attr] = tok.line
        self.skip_semicolon()


def _finish(interfaces: list[InterfaceConfig], filename: str) -> Config:
    seen: dict[str, InterfaceConfig] = {}
    for iface in interfaces:
        if iface.name in seen:
            raise RadvdConfError(filename, iface.line,
                              f"interface {iface.name} is defined twice (first at line "
                              f"{seen[iface.name].line})")
        seen[iface.name] = iface
        iface.resolve_defaults()
    config = Config(interfaces=interfaces, filename=filename)
    errors = validate(config)
    if errors:
        raise errors[0]
    return config


def parse(text: str, filename: str = "radvd.conf") -> Config:
    """Parse and validate radvd.conf text; raise RadvdConfError on the first problem."""
    return _finish(_Parser(text, filename).parse(), filename)


def load(path: str) -> Config:
    """Read a radvd.conf file, following `include` (relative to the including file)."""
    files: dict[int, str] = {}

    def read(p: str, parent: str | None, line: int, depth: int) -> list[InterfaceConfig]:
        if parent is not None and not os.path.isabs(p):
            p = os.path.join(os.path.dirname(parent), p)
        matches = sorted(glob.glob(p)) if any(c in p for c in "*?[") else [p]
        out: list[InterfaceConfig] = []
        for m in matches:
            try:
                with open(m, encoding="utf-8") as f:
                    text = f.read()
            except (OSError, UnicodeDecodeError) as e:
                why = e.strerror if isinstance(e, OSError) else e
                if parent is None:
                    raise RadvdConfError(m, 0, f"cannot read: {why}") from None
                raise RadvdConfError(parent, line,
                                     f"cannot read include file {m}: {why}") from None
            ifaces = _Parser(text, m, read, depth).parse()
            for i in ifaces:
                files.setdefault(id(i), m)
            out.extend(ifaces)
        return out

    interfaces = read(path, None, 0, 0)
    # errors found after parsing name the file the interface came from
    seen: dict[str, InterfaceConfig] = {}
    for iface in interfaces:
        if iface.name in seen:
            raise RadvdConfError(files[id(iface)], iface.line,
                              f"interface {iface.name} is defined twice (first at "
                              f"{files[id(seen[iface.name])]}:{seen[iface.name].line})")
        seen[iface.name] = iface
        iface.resolve_defaults()
    config = Config(interfaces=interfaces, filename=path)
    for iface in interfaces:
        errors = validate_interface(iface, files[id(iface)])
        if errors:
            raise errors[0]
    return config


# --------------------------------------------------------------------------- validation

def validate(config: Config) -> list[RadvdConfError]:
    out: list[RadvdConfError] = []
    for iface in config.interfaces:
        out.extend(validate_interface(iface, config.filename))
    return out


def validate_interface(iface: InterfaceConfig, filename: str = "radvd.conf",
                       link_mtu: int | None = None) -> list[RadvdConfError]:
    """Every radvd check_iface() rule; link_mtu given when the interface exists."""
    iface.resolve_defaults()
    errs: list[RadvdConfError] = []

    def err(attr: str | None, message: str, line: int | None = None) -> None:
        if line is None:
            line = iface.lines.get(attr, iface.line) if attr else iface.line
        errs.append(RadvdConfError(filename, line, message))

    mip = iface.mobile_ipv6
    mx, mn, md = iface.max_rtr_adv_interval, iface.min_rtr_adv_interval, iface.min_delay_between_ras
    mip_why = "(0.03 needs Mobile IPv6: AdvHomeAgentFlag, AdvHomeAgentInfo, AdvIntervalOpt " \
              "or AdvRouterAddr on)"

    # RFC 4861 §6.2.1, RFC 6275 §7.5
    if mip and mx < MIN_MAX_RTR_ADV_INTERVAL_MIPV6:
        err("max_rtr_adv_interval", "MaxRtrAdvInterval must be at least 0.07 when Mobile IPv6 "
                                    "is on")
    elif not mip and mx < MIN_MAX_RTR_ADV_INTERVAL:
        err("max_rtr_adv_interval", "MaxRtrAdvInterval must be at least 4 "
                                    "(0.07 needs Mobile IPv6: AdvHomeAgentFlag, AdvHomeAgentInfo, "
                                    "AdvIntervalOpt or AdvRouterAddr on)")
    if mx > MAX_MAX_RTR_ADV_INTERVAL:
        err("max_rtr_adv_interval", "MaxRtrAdvInterval must be no more than 65535 (RFC 8319)")
    min_line = iface.lines.get("min_rtr_adv_interval", iface.lines.get("max_rtr_adv_interval"))
    if mip and mn < MIN_MIN_RTR_ADV_INTERVAL_MIPV6:
        err(None, "MinRtrAdvInterval must be at least 0.03 when Mobile IPv6 is on", min_line)
    elif not mip and mn < MIN_MIN_RTR_ADV_INTERVAL:
        err(None, f"MinRtrAdvInterval must be at least 3 {mip_why}", min_line)
    if mn > 0.75 * mx:
        err(None, f"MinRtrAdvInterval ({_num(mn)}) must be no more than 0.75 * "
                  f"MaxRtrAdvInterval ({_num(0.75 * mx)})", min_line)
    # RFC 4861 §10 MIN_DELAY_BETWEEN_RAS, RFC 6275 §7.5
    if mip and md < MIN_DELAY_BETWEEN_RAS_MIPV6:
        err("min_delay_between_ras", "MinDelayBetweenRAs must be at least 0.03 when Mobile "
                                     "IPv6 is on")
    elif not mip and md < MIN_DELAY_BETWEEN_RAS:
        err("min_delay_between_ras", f"MinDelayBetweenRAs must be at least 3 {mip_why}")
    # denali's MaxRADelay: at most RFC 4861 §10's MAX_RA_DELAY_TIME
    if iface.max_ra_delay > MAX_RA_DELAY:
        err("max_ra_delay", f"MaxRADelay ({_num(iface.max_ra_delay)}) must be between 0 and "
                            f"{_num(MAX_RA_DELAY)} (RFC 4861 MAX_RA_DELAY_TIME)")
    # RFC 4861 §6.2.1, RFC 8319
    lt = iface.adv_default_lifetime
    if lt != 0 and not (max(1.0, mx) <= lt <= MAX_ADV_DEFAULT_LIFETIME):
        err("adv_default_lifetime", f"AdvDefaultLifetime ({lt}) must be 0 or between "
                                    f"MaxRtrAdvInterval ({_num(max(1.0, mx))}) and "
                                    f"{MAX_ADV_DEFAULT_LIFETIME}")
    if iface.adv_link_mtu != 0 and iface.adv_link_mtu < MIN_ADV_LINK_MTU:
        err("adv_link_mtu", f"AdvLinkMTU ({iface.adv_link_mtu}) must be 0 or at least 1280")
    if link_mtu is not None and iface.adv_link_mtu > link_mtu:
        err("adv_link_mtu", f"AdvLinkMTU ({iface.adv_link_mtu}) is above the MTU of "
                            f"{iface.name} ({link_mtu})")
    if iface.adv_reachable_time > MAX_ADV_REACHABLE_TIME:
        err("adv_reachable_time", f"AdvReachableTime must be no more than {MAX_ADV_REACHABLE_TIME}")
    if iface.adv_retrans_timer > INFINITY:
        err("adv_retrans_timer", "AdvRetransTimer must fit in 32 bits")
    if iface.adv_cur_hop_limit > 255:
        err("adv_cur_hop_limit", "AdvCurHopLimit must be no more than 255")
    # RFC 6275 §7.4
    if iface.adv_home_agent_info:
        hl = iface.home_agent_lifetime
        if not MIN_HOME_AGENT_LIFETIME <= hl <= MAX_HOME_AGENT_LIFETIME:
            err("home_agent_lifetime" if "home_agent_lifetime" in iface.lines
                else "adv_default_lifetime",
                f"HomeAgentLifetime ({hl}) must be between 1 and 65520")
        if not iface.adv_home_agent_flag:
            err("adv_home_agent_info", "AdvHomeAgentInfo needs AdvHomeAgentFlag on")
    if iface.adv_mob_rtr_support_flag and not iface.adv_home_agent_info:
        err("adv_mob_rtr_support_flag", "AdvMobRtrSupportFlag needs AdvHomeAgentInfo on")
    for d in iface.dnssl:
        for name in d.domains:
            labels = name.rstrip(".").split(".")
            if (not name.rstrip(".") or len(name) > 253 or not name.isascii()
                    or any(not 1 <= len(x) <= 63 for x in labels)):
                err(None, f"DNSSL '{name}' is not a domain name (RFC 8106 §5.2)", d.line)
    for p in iface.prefixes:
        if p.adv_preferred_lifetime > p.adv_valid_lifetime:
            err(None, f"AdvPreferredLifetime ({p.adv_preferred_lifetime}) must not be more than "
                      f"AdvValidLifetime ({p.adv_valid_lifetime}) for prefix {p.prefix}", p.line)
    return errs


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


# --------------------------------------------------------------------------- writer

_DEFAULTS = InterfaceConfig(name="-")


def dump(config: Config) -> str:
    """radvd syntax (braces and semicolons) that parse() reads back to an equal Config.

    Only options that differ from their default are written; derived defaults
    (MinRtrAdvInterval, AdvDefaultLifetime, HomeAgentLifetime, lifetimes of
    routes/RDNSS/DNSSL) are compared with what they would be derived to.
    """
    out: list[str] = []
    for iface in config.interfaces:
        iface.resolve_defaults()
        out.append(f"interface {iface.name}\n{{")
        derived = {
            "min_rtr_adv_interval": 0.33 * iface.max_rtr_adv_interval,
            "adv_default_lifetime": _default_lifetime(iface.max_rtr_adv_interval),
        }
        derived["home_agent_lifetime"] = iface.adv_default_lifetime
        for kw, (attr, _conv) in INTERFACE_OPTIONS.items():
            v = getattr(iface, attr)
            default = derived.get(attr, getattr(_DEFAULTS, attr))
            if v != default:
                out.append(f"\t{kw} {_fmt(attr, v)};")
        for p in iface.prefixes:
            shown = f"{p.address}/{p.prefix.prefixlen}" if p.address else str(p.prefix)
            out.append(f"\tprefix {shown}\n\t{{")
            _dump_opts(out, p, PREFIX_OPTIONS, PrefixConfig(prefix=p.prefix), {})
            out.append("\t};")
        for r in iface.routes:
            out.append(f"\troute {r.prefix}\n\t{{")
            _dump_opts(out, r, ROUTE_OPTIONS, RouteConfig(prefix=r.prefix),
                       {"adv_route_lifetime": _lifetime_from(3 * iface.max_rtr_adv_interval)})
            out.append("\t};")
        for r in iface.rdnss:
            out.append(f"\tRDNSS {' '.join(map(str, r.servers))}\n\t{{")
            _dump_opts(out, r, RDNSS_OPTIONS, RDNSSConfig(servers=r.servers),
                       {"adv_rdnss_lifetime": _lifetime_from(2 * iface.max_rtr_adv_interval)})
            out.append("\t};")
        for d in iface.dnssl:
            out.append(f"\tDNSSL {' '.join(d.domains)}\n\t{{")
            _dump_opts(out, d, DNSSL_OPTIONS, DNSSLConfig(domains=d.domains),
                       {"adv_dnssl_lifetime": _lifetime_from(2 * iface.max_rtr_adv_interval)})
            out.append("\t};")
        if iface.clients:
            out.append("\tclients\n\t{")
            out.extend(f"\t\t{c};" for c in iface.clients)
            out.append("\t};")
        out.append("};\n")
    return "\n".join(out)


def _dump_opts(out, obj, options, defaults, derived) -> None:
    for kw, (attr, _conv) in options.items():
        v = getattr(obj, attr)
        if v != derived.get(attr, getattr(defaults, attr)):
            out.append(f"\t\t{kw} {_fmt(attr, v)};")


def _fmt(attr: str, v) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    if attr.endswith("preference") and attr != "home_agent_preference":
        return _PREFERENCE_NAMES[v]
    if attr.endswith("lifetime") and v == INFINITY:
        return "infinity"
    if isinstance(v, float):
        return _num(v)
    return str(v)


__all__ = ["Config", "ConfigError", "DNSSLConfig", "InterfaceConfig", "PrefixConfig",
           "RadvdConfError", "RDNSSConfig", "RouteConfig", "dump", "load", "parse", "validate",
           "validate_interface", "INFINITY"]
