"""Reader and writer for MIPL/UMIP mip6d.conf, so old configs can be imported.

Syntax (UMIP's gram.y, the subset denali understands): statements are
``Keyword value...;``, ``#`` starts a comment, strings are double-quoted,
and two statements take a block: ``Interface "if" { MnIfPreference n; }``
and ``MnHomeLink "if" { HomeAddress a/plen; HomeAgentAddress a; }``.
A block left open at the end of the file (as printed in the seed article)
is accepted with a warning; anything else unknown or malformed is refused
with file:line and what was wrong.

Fields left at None were not in the file; ``with_defaults()`` fills UMIP's
defaults so two files can be compared by meaning.

One keyword is denali's own, not UMIP's (UMIP protects BUs with IPsec only
and has no word for RFC 4285): ``DenaliMnHaKey <home address> <SPI> "<hex>";``
at the top level, for example

    DenaliMnHaKey 2001:db8::beef 256 "6a1c0e5d9b7f33a1c4e2d8f07b5a9c11";

In a home agent's file it protects that home address: only BUs carrying the
MN-HA authentication option made with this SPI and key, and a fresh replay
protection timestamp, are served, and its BAs are signed. In a mobile node's
file, the line for its own HomeAddress makes it sign its BUs and check the
home agent's BAs. Put the line before a MnHomeLink block that is left open
at the end of the file (the seed's), or it lands inside the block. UMIP
refuses the line: keep it out of files meant for UMIP. A file holding it
should be readable by root only (chmod 600).

IPsec (RFC 3776) for BU/BA is read in UMIP's own words, the block

    IPsecPolicySet {
        HomeAgentAddress 2001:db8::;
        HomeAddress 2001:db8::beef/64;
        IPsecPolicy HomeRegBinding UseESP;
    }

(HomeAddress may repeat; `IPsecPolicy Type Protos [reqid [reqid]] [enabled|disabled];`
as in gram.y), and the keys with denali's own line, since UMIP leaves SAs to
setkey:

    DenaliIPsecSA <home address> <SPI to HA> <SPI to MN> <algorithm> "<hex key>" ["<hex key>"];

for example

    DenaliIPsecSA 2001:db8::beef 0x1000 0x1001 hmac-sha1-96 "00112233445566778899aabbccddeeff00112233";

The SPIs are named by direction (to the home agent: the BUs; to the mobile
node: the BAs), decimal or 0x hex; the algorithm is hmac-sha1-96 (a 20-octet
key) or hmac-sha256-128 (32 octets), with NULL encryption (RFC 2410); a
second key, if given, is the one to the mobile node, else one key serves both
ways. The mobile node's kernel gets the same SAs, e.g.

    ip xfrm state add src HOA dst HA proto esp spi 0x1000 mode transport \
        auth-trunc 'hmac(sha1)' 0xKEY 96 enc cipher_null ''
    ip xfrm state add src HA dst HOA proto esp spi 0x1001 mode transport \
        auth-trunc 'hmac(sha1)' 0xKEY 96 enc cipher_null ''

This parser checks the syntax only; which policies denalid serves is decided
in ha/daemon/settings.py.
"""

from dataclasses import dataclass, field, fields, replace
import ipaddress
import re

from ha.config.errors import ConfigError


class Mip6dConfError(ConfigError):
    """A mip6d.conf that does not parse: says file:line and what is wrong."""

    def __init__(self, filename, line, what):
        super().__init__(what, filename, line)

    @property
    def what(self):
        return self.message


@dataclass(slots=True)
class HomeLink:
    interface: str
    home_address: str | None = None        # "2001:db8::beef/64"
    home_agent_address: str | None = None  # "2001:db8::"


@dataclass(slots=True)
class BindingAcl:
    hoa: str
    coa: str | None
    allow: bool


@dataclass(slots=True)
class MnHaKey:
    """denali's own `DenaliMnHaKey <hoa> <spi> "<hex key>";` (UMIP has no
    keyword for RFC 4285): the MN-HA SPI and key of one home address."""
    hoa: str
    spi: int
    key: str = field(repr=False)  # hex


@dataclass(slots=True)
class IPsecPolicy:
    """`IPsecPolicy <type> <protos> [reqid [reqid]] [enabled|disabled];` (gram.y)."""
    type: str                 # HomeRegBinding, Mh, MobPfxDisc, ICMP, any, Tunnel...
    protos: tuple             # of "UseESP", "UseAH", "UseIPComp"
    reqid_to_ha: int = 0
    reqid_to_mn: int = 0
    allow: bool = True
    line: int = field(default=0, compare=False)


@dataclass(slots=True)
class IPsecPolicySet:
    """One `IPsecPolicySet { HomeAgentAddress; HomeAddress...; IPsecPolicy...; }`."""
    home_agent_address: str
    home_addresses: list      # "a/plen", in order
    policies: list            # IPsecPolicy
    line: int = field(default=0, compare=False)


@dataclass(slots=True)
class IPsecSA:
    """denali's own `DenaliIPsecSA <hoa> <spi to HA> <spi to MN> <alg> "<hex>" ["<hex>"];`."""
    hoa: str
    spi_to_ha: int
    spi_to_mn: int
    auth: str
    key_to_ha: str = field(repr=False)  # hex
    key_to_mn: str = field(repr=False)  # hex; the same as key_to_ha when one was given
    line: int = field(default=0, compare=False)


IPSEC_POLICY_TYPES = ("HomeRegBinding", "Mh", "MobPfxDisc", "TunnelHomeTesting", "TunnelMh",
                      "TunnelPayload", "ICMP", "any")
IPSEC_PROTOS = ("UseESP", "UseAH", "UseIPComp")
IPSEC_AUTH = {"hmac-sha1-96": 20, "hmac-sha256-128": 32}  # algorithm -> key octets


@dataclass(slots=True)
class Mip6dConfig:
    node_config: str | None = None          # "HA", "MN" or "CN"
    debug_level: int | None = None
    interfaces: list = field(default_factory=list)       # names, in order
    interface_preference: dict = field(default_factory=dict)  # name -> int
    use_mn_ha_ipsec: bool | None = None
    key_mng_mob_capability: bool | None = None
    do_route_optimization_mn: bool | None = None
    do_route_optimization_cn: bool | None = None
    ha_max_binding_life: int | None = None
    mn_max_ha_binding_life: int | None = None
    mn_max_cn_binding_life: int | None = None
    default_binding_acl_policy: str | None = None  # "allow" or "deny"
    binding_acl: list = field(default_factory=list)    # BindingAcl
    send_mob_pfx_advs: bool | None = None
    send_mob_pfx_sols: bool | None = None
    min_mob_pfx_adv_interval: int | None = None
    max_mob_pfx_adv_interval: int | None = None
    ha_served_prefixes: list = field(default_factory=list)  # "p/len"
    home_links: list = field(default_factory=list)     # HomeLink
    mn_ha_keys: list = field(default_factory=list)     # MnHaKey (denali's own)
    ipsec_policy_sets: list = field(default_factory=list)  # IPsecPolicySet
    ipsec_sas: list = field(default_factory=list)      # IPsecSA (denali's own)
    optimistic_handoff: bool | None = None  # MN: tunnel with the BU (UMIP's keyword)
    # denali's own handover settings (README, "Handover settings"):
    optimistic_dad: bool | None = None      # MN: RFC 4429 for the care-of address
    tunnel_during_dad: bool | None = None   # HA: forward for a new binding while DAD runs
    # denali's own limits (denali.spec's [ha] keys of the same names say why)
    capacity: int | None = None                        # DenaliCapacity
    new_bindings_per_prefix_rate: int | None = None    # DenaliNewBindingsPerPrefixRate
    new_bindings_per_prefix_burst: int | None = None   # DenaliNewBindingsPerPrefixBurst
    new_bindings_rate: int | None = None               # DenaliNewBindingsRate
    new_bindings_burst: int | None = None              # DenaliNewBindingsBurst
    max_tunnels: int | None = None                     # DenaliMaxTunnels
    packets_per_source_rate: int | None = None         # DenaliPacketsPerSourceRate
    packets_per_source_burst: int | None = None        # DenaliPacketsPerSourceBurst
    warnings: list = field(default_factory=list, compare=False)
    # keyword -> the line of the file it was set on (for a reader's later refusals)
    lines: dict = field(default_factory=dict, compare=False, repr=False)

    def with_defaults(self):
        """A copy with every unset scalar replaced by UMIP's default."""
        values = {k: v for k, v in UMIP_DEFAULTS.items()
                  if getattr(self, k) is None}
        return replace(self, **values)


# UMIP 1.0 conf.c defaults (RFC 6275 §13 for the prefix-advertisement timers).
UMIP_DEFAULTS = {
    "node_config": "CN",
    "debug_level": 0,
    "use_mn_ha_ipsec": True,
    "key_mng_mob_capability": False,
    "do_route_optimization_mn": True,
    "do_route_optimization_cn": True,
    "ha_max_binding_life": 262140,
    "mn_max_ha_binding_life": 262140,
    "mn_max_cn_binding_life": 420,
    "default_binding_acl_policy": "allow",
    "send_mob_pfx_advs": True,
    "send_mob_pfx_sols": True,
    "min_mob_pfx_adv_interval": 600,
    "max_mob_pfx_adv_interval": 86400,
}

# keyword -> (field, kind); kinds are checked by _value below.
_SCALARS = {
    "NodeConfig": ("node_config", "nodeconfig"),
    "DebugLevel": ("debug_level", "int"),
    "UseMnHaIPsec": ("use_mn_ha_ipsec", "bool"),
    "KeyMngMobCapability": ("key_mng_mob_capability", "bool"),
    "DoRouteOptimizationMN": ("do_route_optimization_mn", "bool"),
    "DoRouteOptimizationCN": ("do_route_optimization_cn", "bool"),
    "HaMaxBindingLife": ("ha_max_binding_life", "int"),
    "MnMaxHaBindingLife": ("mn_max_ha_binding_life", "int"),
    "MnMaxCnBindingLife": ("mn_max_cn_binding_life", "int"),
    "DefaultBindingAclPolicy": ("default_binding_acl_policy", "policy"),
    "SendMobPfxAdvs": ("send_mob_pfx_advs", "bool"),
    "SendMobPfxSols": ("send_mob_pfx_sols", "bool"),
    "MinMobPfxAdvInterval": ("min_mob_pfx_adv_interval", "int"),
    "MaxMobPfxAdvInterval": ("max_mob_pfx_adv_interval", "int"),
    "OptimisticHandoff": ("optimistic_handoff", "bool"),
    "DenaliOptimisticDad": ("optimistic_dad", "bool"),
    "DenaliTunnelDuringDad": ("tunnel_during_dad", "bool"),
    "DenaliCapacity": ("capacity", "int"),
    "DenaliNewBindingsPerPrefixRate": ("new_bindings_per_prefix_rate", "int"),
    "DenaliNewBindingsPerPrefixBurst": ("new_bindings_per_prefix_burst", "int"),
    "DenaliNewBindingsRate": ("new_bindings_rate", "int"),
    "DenaliNewBindingsBurst": ("new_bindings_burst", "int"),
    "DenaliMaxTunnels": ("max_tunnels", "int"),
    "DenaliPacketsPerSourceRate": ("packets_per_source_rate", "int"),
    "DenaliPacketsPerSourceBurst": ("packets_per_source_burst", "int"),
}
_KEYWORDS = sorted(list(_SCALARS) + [
    "Interface", "MnHomeLink", "BindingAclPolicy", "HaServedPrefix", "DenaliMnHaKey",
    "IPsecPolicySet", "DenaliIPsecSA"])

_TOKEN = re.compile(r'\s+|#[^\n]*|"(?P<str>[^"\n]*)"|(?P<punct>[{};])'
                    r'|(?P<word>[^\s{};"#]+)|(?P<bad>.)')


def _tokenize(text, filename):
    """Yield (kind, value, line): kind is 'str', 'word' or the punctuation."""
    line = 1
    for m in _TOKEN.finditer(text):
        if m.group("bad") is not None:
            raise Mip6dConfError(filename, line,
                                 f"unterminated string or stray {m.group()!r}")
        if m.group("str") is not None:
            yield "str", m.group("str"), line
        elif m.group("punct") is not None:
            yield m.group("punct"), m.group("punct"), line
        elif m.group("word") is not None:
            yield "word", m.group("word"), line
        line += m.group().count("\n")


def _statements(tokens, filename):
    """Group tokens into (line, words, block) where block is a list or None.

    A block's statements are themselves (line, words, None) triples.
    """
    out, stack, words, start = [], [], [], None
    for kind, value, line in tokens:
        if kind in ("word", "str"):
            if not words:
                start = line
            words.append((kind, value))
        elif kind == ";":
            if not words:
                if not out or out[-1][2] is None:
                    raise Mip6dConfError(filename, line, "empty statement ';'")
                continue  # "};" after a block: tolerated
            out.append((start, words, None))
            words = []
        elif kind == "{":
            if not words:
                raise Mip6dConfError(filename, line, "'{' without a keyword")
            if stack:
                raise Mip6dConfError(filename, line, "blocks do not nest")
            block = []
            out.append((start, words, block))
            stack.append((out, block))
            out, words = block, []
        else:  # "}"
            if words:
                raise Mip6dConfError(filename, line,
                                     f"missing ';' after {words[0][1]}")
            if not stack:
                raise Mip6dConfError(filename, line, "'}' without '{'")
            out, _ = stack.pop()
    if words:
        raise Mip6dConfError(filename, start,
                             f"missing ';' after {words[0][1]}")
    unclosed = bool(stack)
    while stack:
        out, _ = stack.pop()
    return out, unclosed


def _value(kind, tok, filename, line, keyword):
    t, v = tok
    if kind == "bool":
        if v in ("enabled", "disabled"):
            return v == "enabled"
        raise Mip6dConfError(filename, line,
                             f"{keyword} {v}: use enabled or disabled")
    if kind == "int":
        # ASCII digits only: str.isdigit() also takes '²' (int() refuses) and '٣'
        if t == "word" and v.isascii() and v.isdigit():
            return int(v)
        raise Mip6dConfError(filename, line,
                             f"{keyword} {v}: use a non-negative integer")
    if kind == "policy":
        if v in ("allow", "deny"):
            return v
        raise Mip6dConfError(filename, line, f"{keyword} {v}: use allow or deny")
    if kind == "nodeconfig":
        if v in ("HA", "MN", "CN"):
            return v
        raise Mip6dConfError(filename, line, f"{keyword} {v}: use HA, MN or CN")
    if kind == "string":
        if t == "str" and v:
            return v
        raise Mip6dConfError(filename, line,
                             f'{keyword} {v}: use a quoted interface name, '
                             f'e.g. "wlan0"')
    if kind == "addr":
        try:
            return str(ipaddress.IPv6Address(v))
        except ValueError:
            raise Mip6dConfError(filename, line,
                                 f"{keyword} {v}: use an IPv6 address") from None
    if kind == "addrplen":
        try:
            iface = ipaddress.IPv6Interface(v)
        except ValueError:
            iface = None
        if iface is None or "/" not in v:
            raise Mip6dConfError(filename, line,
                                 f"{keyword} {v}: use an IPv6 address/length, "
                                 f"e.g. 2001:db8::beef/64")
        return f"{iface.ip}/{iface.network.prefixlen}"
    if kind == "prefix":
        try:
            return str(ipaddress.IPv6Network(v, strict=True))
        except ValueError:
            raise Mip6dConfError(filename, line,
                                 f"{keyword} {v}: use an IPv6 prefix, "
                                 f"e.g. 2001:db8::/64") from None
    raise AssertionError(kind)


def _arity(words, n, filename, line, usage):
    if len(words) - 1 not in n:
        raise Mip6dConfError(filename, line, f"use: {usage};")


def parse_mip6d(text, filename="mip6d.conf"):
    """Parse mip6d.conf text into a Mip6dConfig; raise Mip6dConfError."""
    cfg = Mip6dConfig()
    stmts, unclosed = _statements(_tokenize(text, filename), filename)
    if unclosed:
        cfg.warnings.append(f"{filename}: a '{{' block is not closed at the "
                            f"end of the file; closed it there")
    for line, words, block in stmts:
        kw_t, kw = words[0]
        if kw_t != "word" or kw not in _KEYWORDS:
            raise Mip6dConfError(
                filename, line, f"unknown keyword {kw!r}; known: "
                + ", ".join(_KEYWORDS))
        if block is not None and kw not in ("Interface", "MnHomeLink", "IPsecPolicySet"):
            raise Mip6dConfError(filename, line, f"{kw} takes no '{{' block")
        if kw in _SCALARS:
            name, kind = _SCALARS[kw]
            _arity(words, {1}, filename, line, f"{kw} <value>")
            setattr(cfg, name, _value(kind, words[1], filename, line, kw))
            cfg.lines[kw] = line
        elif kw == "Interface":
            _arity(words, {1}, filename, line, 'Interface "<name>"')
            ifname = _value("string", words[1], filename, line, kw)
            if ifname in cfg.interfaces:
                raise Mip6dConfError(filename, line,
                                     f"Interface {ifname!r} given twice")
            cfg.interfaces.append(ifname)
            for bline, bwords, _ in block or ():
                if bwords[0][1] != "MnIfPreference":
                    raise Mip6dConfError(
                        filename, bline, f"unknown keyword {bwords[0][1]!r} "
                        "in Interface block; known: MnIfPreference")
                _arity(bwords, {1}, filename, bline, "MnIfPreference <n>")
                cfg.interface_preference[ifname] = _value(
                    "int", bwords[1], filename, bline, "MnIfPreference")
        elif kw == "MnHomeLink":
            _arity(words, {1}, filename, line, 'MnHomeLink "<name>" { ... }')
            if block is None:
                raise Mip6dConfError(filename, line,
                                     "MnHomeLink needs a '{ ... }' block")
            link = HomeLink(_value("string", words[1], filename, line, kw))
            for bline, bwords, _ in block:
                bkw = bwords[0][1]
                if bkw == "HomeAddress":
                    _arity(bwords, {1}, filename, bline,
                           "HomeAddress <address>/<length>")
                    link.home_address = _value("addrplen", bwords[1],
                                               filename, bline, bkw)
                elif bkw == "HomeAgentAddress":
                    _arity(bwords, {1}, filename, bline,
                           "HomeAgentAddress <address>")
                    link.home_agent_address = _value("addr", bwords[1],
                                                     filename, bline, bkw)
                else:
                    raise Mip6dConfError(
                        filename, bline, f"unknown keyword {bkw!r} in "
                        "MnHomeLink block; known: HomeAddress, HomeAgentAddress")
            cfg.home_links.append(link)
        elif kw == "BindingAclPolicy":
            _arity(words, {2, 3}, filename, line,
                   "BindingAclPolicy <hoa> [<coa>] allow|deny")
            hoa = _value("addr", words[1], filename, line, kw)
            coa = (_value("addr", words[2], filename, line, kw)
                   if len(words) == 4 else None)
            policy = _value("policy", words[-1], filename, line, kw)
            cfg.binding_acl.append(BindingAcl(hoa, coa, policy == "allow"))
        elif kw == "HaServedPrefix":
            _arity(words, {1}, filename, line, "HaServedPrefix <prefix>/<len>")
            cfg.ha_served_prefixes.append(
                _value("prefix", words[1], filename, line, kw))
        elif kw == "DenaliMnHaKey":
            usage = 'DenaliMnHaKey <home address> <SPI> "<key in hex>"'
            _arity(words, {3}, filename, line, usage)
            hoa = _value("addr", words[1], filename, line, kw)
            spi = _value("int", words[2], filename, line, kw)
            key = _value("string", words[3], filename, line, kw)
            if not 0 <= spi <= 0xFFFFFFFF:
                raise Mip6dConfError(filename, line, f"{kw}: SPI {spi} is not 32-bit")
            if not re.fullmatch(r"(?:[0-9a-fA-F]{2})+", key):
                raise Mip6dConfError(filename, line, f"{kw}: the key must be hex "
                                     "digits, an even number of them")
            if any(k.hoa == hoa for k in cfg.mn_ha_keys):
                raise Mip6dConfError(filename, line, f"{kw}: {hoa} given twice")
            cfg.mn_ha_keys.append(MnHaKey(hoa, spi, key.lower()))
        elif kw == "IPsecPolicySet":
            if block is None:
                raise Mip6dConfError(filename, line, "IPsecPolicySet needs a '{ ... }' block")
            _arity(words, {0}, filename, line, "IPsecPolicySet { ... }")
            cfg.ipsec_policy_sets.append(_ipsec_policy_set(block, filename, line))
        elif kw == "DenaliIPsecSA":
            sa = _ipsec_sa(words, filename, line)
            if any(x.hoa == sa.hoa for x in cfg.ipsec_sas):
                raise Mip6dConfError(filename, line, f"{kw}: {sa.hoa} given twice")
            spis = {x.spi_to_ha for x in cfg.ipsec_sas} | {x.spi_to_mn for x in cfg.ipsec_sas}
            for spi in (sa.spi_to_ha, sa.spi_to_mn):
                if spi in spis:
                    raise Mip6dConfError(filename, line, f"{kw}: SPI {spi:#x} is used by "
                                         "another DenaliIPsecSA line")
            cfg.ipsec_sas.append(sa)
    if (cfg.min_mob_pfx_adv_interval is not None
            and cfg.max_mob_pfx_adv_interval is not None
            and cfg.min_mob_pfx_adv_interval > cfg.max_mob_pfx_adv_interval):
        raise Mip6dConfError(filename, 0, "MinMobPfxAdvInterval is greater "
                             "than MaxMobPfxAdvInterval: use min <= max")
    return cfg


def _ipsec_policy_set(block, filename, line):
    ha, hoas, policies = None, [], []
    for bline, bwords, _ in block:
        bkw = bwords[0][1]
        if bkw == "HomeAgentAddress":
            _arity(bwords, {1}, filename, bline, "HomeAgentAddress <address>")
            if ha is not None:
                raise Mip6dConfError(filename, bline, "HomeAgentAddress given twice in "
                                     "IPsecPolicySet (one home agent per set)")
            ha = _value("addr", bwords[1], filename, bline, bkw)
        elif bkw == "HomeAddress":
            _arity(bwords, {1}, filename, bline, "HomeAddress <address>/<length>")
            hoas.append(_value("addrplen", bwords[1], filename, bline, bkw))
        elif bkw == "IPsecPolicy":
            policies.append(_ipsec_policy(bwords, filename, bline))
        else:
            raise Mip6dConfError(filename, bline, f"unknown keyword {bkw!r} in IPsecPolicySet "
                                 "block; known: HomeAgentAddress, HomeAddress, IPsecPolicy")
    # gram.y: the home agent first, then at least one home address and one policy
    if ha is None:
        raise Mip6dConfError(filename, line, "HomeAgentAddress missing for IPsecPolicy")
    if not hoas:
        raise Mip6dConfError(filename, line, "HomeAddress missing for IPsecPolicy")
    if not policies:
        raise Mip6dConfError(filename, line, "IPsecPolicySet has no IPsecPolicy")
    return IPsecPolicySet(ha, hoas, policies, line)


def _ipsec_policy(words, filename, line):
    usage = ("IPsecPolicy <" + "|".join(IPSEC_POLICY_TYPES) + "> UseESP [UseAH] [UseIPComp] "
             "[<reqid> [<reqid>]] [enabled|disabled]")
    rest = [v for _, v in words[1:]]
    if not rest or rest[0] not in IPSEC_POLICY_TYPES:
        raise Mip6dConfError(filename, line, f"use: {usage};")
    ptype, rest = rest[0], rest[1:]
    protos = []
    while rest and rest[0] in IPSEC_PROTOS:
        if rest[0] in protos:
            raise Mip6dConfError(filename, line, f"IPsecPolicy: {rest[0]} given twice")
        protos.append(rest.pop(0))
    if not protos:
        raise Mip6dConfError(filename, line, "IPsecPolicy must set at least one protocol "
                             "(UseESP)")
    reqids = []
    while rest and rest[0].isascii() and rest[0].isdigit() and len(reqids) < 2:
        reqids.append(int(rest.pop(0)))
    allow = True
    if rest and rest[0] in ("enabled", "disabled"):
        allow = rest.pop(0) == "enabled"
    if rest:
        raise Mip6dConfError(filename, line, f"IPsecPolicy {rest[0]}: use: {usage};")
    to_ha = reqids[0] if reqids else 0
    to_mn = reqids[1] if len(reqids) > 1 else to_ha
    return IPsecPolicy(ptype, tuple(protos), to_ha, to_mn, allow, line)


def _spi(tok, filename, line, what):
    t, v = tok
    try:
        spi = int(v, 16) if v.lower().startswith("0x") else int(v) if v.isascii() \
            and v.isdigit() else None
    except ValueError:
        spi = None
    if t != "word" or spi is None:
        raise Mip6dConfError(filename, line, f"DenaliIPsecSA {v}: {what} must be a number "
                             "(decimal or 0x hex)")
    if not 256 <= spi <= 0xFFFFFFFF:
        raise Mip6dConfError(filename, line, f"DenaliIPsecSA: SPI {v} out of 256..4294967295 "
                             "(RFC 4303 section 2.1 reserves 1-255)")
    return spi


def _ipsec_sa(words, filename, line):
    kw = "DenaliIPsecSA"
    usage = (f'{kw} <home address> <SPI to HA> <SPI to MN> <'
             + "|".join(IPSEC_AUTH) + '> "<hex key>" ["<hex key to MN>"]')
    _arity(words, {5, 6}, filename, line, usage)
    hoa = _value("addr", words[1], filename, line, kw)
    to_ha = _spi(words[2], filename, line, "the SPI to the home agent")
    to_mn = _spi(words[3], filename, line, "the SPI to the mobile node")
    if to_ha == to_mn:
        raise Mip6dConfError(filename, line, f"{kw}: SPI {words[2][1]} for both directions: "
                             "give each its own")
    auth = words[4][1]
    if words[4][0] != "word" or auth not in IPSEC_AUTH:
        raise Mip6dConfError(filename, line, f"{kw}: algorithm {auth!r}: use "
                             + " or ".join(IPSEC_AUTH))
    keys = []
    for tok in words[5:]:
        key = _value("string", tok, filename, line, kw)
        key = key[2:] if key.lower().startswith("0x") else key
        if not re.fullmatch(r"(?:[0-9a-fA-F]{2})+", key):
            raise Mip6dConfError(filename, line, f"{kw}: the key must be hex digits, an even "
                                 "number of them")
        if len(key) != 2 * IPSEC_AUTH[auth]:
            raise Mip6dConfError(filename, line, f"{kw}: {auth} takes a {IPSEC_AUTH[auth]}-"
                                 f"octet key ({2 * IPSEC_AUTH[auth]} hex digits), not "
                                 f"{len(key) // 2}")
        keys.append(key.lower())
    return IPsecSA(hoa, to_ha, to_mn, auth, keys[0], keys[-1], line)


def _onoff(b):
    return "enabled" if b else "disabled"


def dump_mip6d(cfg):
    """mip6d.conf text for *cfg*; parse_mip6d(dump_mip6d(c)) == c."""
    out = []
    by_field = {name: kw for kw, (name, _) in _SCALARS.items()}
    for f in fields(cfg):
        if f.name not in by_field:
            continue
        v = getattr(cfg, f.name)
        if v is None:
            continue
        if isinstance(v, bool):
            v = _onoff(v)
        out.append(f"{by_field[f.name]} {v};")
    for name in cfg.interfaces:
        if name in cfg.interface_preference:
            out.append(f'Interface "{name}" {{')
            out.append(f"\tMnIfPreference {cfg.interface_preference[name]};")
            out.append("}")
        else:
            out.append(f'Interface "{name}";')
    for p in cfg.ha_served_prefixes:
        out.append(f"HaServedPrefix {p};")
    for acl in cfg.binding_acl:
        coa = f" {acl.coa}" if acl.coa else ""
        out.append(f"BindingAclPolicy {acl.hoa}{coa} "
                   f"{'allow' if acl.allow else 'deny'};")
    for k in cfg.mn_ha_keys:
        out.append(f'DenaliMnHaKey {k.hoa} {k.spi} "{k.key}";')
    for sa in cfg.ipsec_sas:
        second = f' "{sa.key_to_mn}"' if sa.key_to_mn != sa.key_to_ha else ""
        out.append(f'DenaliIPsecSA {sa.hoa} {sa.spi_to_ha:#x} {sa.spi_to_mn:#x} {sa.auth} '
                   f'"{sa.key_to_ha}"{second};')
    for ps in cfg.ipsec_policy_sets:
        out.append("IPsecPolicySet {")
        out.append(f"\tHomeAgentAddress {ps.home_agent_address};")
        for h in ps.home_addresses:
            out.append(f"\tHomeAddress {h};")
        for p in ps.policies:
            reqids = "" if not (p.reqid_to_ha or p.reqid_to_mn) else (
                f" {p.reqid_to_ha}" if p.reqid_to_ha == p.reqid_to_mn
                else f" {p.reqid_to_ha} {p.reqid_to_mn}")
            out.append(f"\tIPsecPolicy {p.type} {' '.join(p.protos)}{reqids}"
                       f"{'' if p.allow else ' disabled'};")
        out.append("}")
    for link in cfg.home_links:
        out.append(f'MnHomeLink "{link.interface}" {{')
        if link.home_address:
            out.append(f"\tHomeAddress {link.home_address};")
        if link.home_agent_address:
            out.append(f"\tHomeAgentAddress {link.home_agent_address};")
        out.append("}")
    return "\n".join(out) + "\n"
