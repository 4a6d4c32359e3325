"""What a radio may use: channels by band and country, ESSIDs, security, keys.

One copy of these rules, read by both ends: the config check
(ha/config/model.py refuses a denali.conf that breaks them) and the wireless
manager (ha/wireless/hostapd.py keeps such a radio down, saying why, when the
radios come from somewhere else).  Each rule returns None when the value is
allowed, else the refusal in words that say what is allowed.

Pure and light: haconf imports it at start.
"""

import re

# 2.4 GHz channels by regulatory domain (IEEE 802.11 Annex E).
FCC_COUNTRIES = ("US", "CA")
ETSI_COUNTRIES = (
    "EU", "AT", "BE", "BG", "CH", "CY", "CZ", "DE", "DK", "EE", "ES", "FI",
    "FR", "GB", "GR", "HR", "HU", "IE", "IS", "IT", "LI", "LT", "LU", "LV",
    "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK")
COUNTRIES = FCC_COUNTRIES + ETSI_COUNTRIES + ("JP",)
HW_MODES = ("b", "g", "a")          # a: 5 GHz (IEEE 802.11 clause 17 OFDM)
SECURITY = ("open", "wpa2", "sae", "wpa2-sae")  # sae: WPA3-SAE, wpa2-sae: transition

# 5 GHz 20 MHz channels (IEEE 802.11 Annex E, U-NII bands of 47 CFR 15.407).
UNII_1 = (36, 40, 44, 48)
UNII_2 = (52, 56, 60, 64)                           # DFS
UNII_2E = tuple(range(100, 145, 4))                 # 100-144, DFS
UNII_3 = (149, 153, 157, 161, 165)
CHANNELS_5GHZ = UNII_1 + UNII_2 + UNII_2E + UNII_3
DFS_CHANNELS = frozenset(UNII_2 + UNII_2E)
# per regulatory domain: ETSI (EN 301 893) stops at 140 and has no UNII-3
# for a Wi-Fi AP, JP likewise; the FCC allows all four bands
_5GHZ_BY_DOMAIN = {
    "FCC": UNII_1 + UNII_2 + UNII_2E + UNII_3,
    "ETSI": UNII_1 + UNII_2 + UNII_2E[:-1],
    "JP": UNII_1 + UNII_2 + UNII_2E[:-1],
}
# Channels closer than this share spectrum (22 MHz wide, 5 MHz apart).
NON_OVERLAP_DISTANCE = 5

_HEX_PSK = re.compile(r"[0-9a-fA-F]{64}")


def channel_frequency(channel):
    """2.4 GHz channel to centre frequency in MHz (channel 14 is the odd one)."""
    if channel == 14:
        return 2484
    if 1 <= channel <= 13:
        return 2407 + 5 * channel
    raise ValueError(f"channel {channel} is not a 2.4 GHz channel (1-14)")


def frequency(channel):
    """Any served channel to its centre frequency in MHz: 2.4 or 5 GHz."""
    if channel in CHANNELS_5GHZ:
        return 5000 + 5 * channel
    try:
        return channel_frequency(channel)
    except ValueError:
        raise ValueError(f"channel {channel} is not a 2.4 GHz (1-14) or 5 GHz "
                         "channel (36-165)") from None


def _domain(country):
    if country in FCC_COUNTRIES:
        return "FCC"
    return "JP" if country == "JP" else "ETSI"


def _ranges(channels):
    """(36, 40, 44, 48, 52, 56) -> '36-56' (runs of 4 apart)."""
    runs, start, prev = [], channels[0], channels[0]
    for c in channels[1:] + (None,):
        if c is not None and c == prev + 4:
            prev = c
            continue
        runs.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = c
    return ", ".join(runs)


def channels_5ghz(country):
    """The 5 GHz channels *country* allows an AP, DFS ones included."""
    return _5GHZ_BY_DOMAIN[_domain(country)]


def is_dfs(channel):
    """52-64 and 100-144 need radar detection (DFS, ETSI EN 301 893, 47 CFR 15.407(h))."""
    return channel in DFS_CHANNELS


def channel_rule(channel, country, hw_mode):
    """None if *channel* is legal in *country* (IEEE 802.11 Annex E), else why not."""
    if hw_mode == "a":
        allowed = channels_5ghz(country)
        if channel in allowed:
            return None
        if channel in CHANNELS_5GHZ:
            return (f"channel {channel} is not allowed for country {country}: "
                    f"use {_ranges(allowed)}")
        return (f"channel {channel} is not a 5 GHz channel (hw_mode a): use "
                f"{_ranges(allowed)}")
    if not 1 <= channel <= 14:
        if channel in CHANNELS_5GHZ:
            return (f"channel {channel} is a 5 GHz channel: set hw_mode a, or "
                    "use 1-14 with hw_mode b or g")
        return f"channel {channel} is not a 2.4 GHz channel: use 1-14"
    if country == "JP":
        if channel == 14 and hw_mode != "b":
            return ("channel 14 is allowed in JP only with hw_mode b: "
                    "set hw_mode b or use 1-13")
        return None
    top = 11 if country in FCC_COUNTRIES else 13
    if channel > top:
        return f"channel {channel} is not allowed for country {country}: " \
               f"use 1-{top}"
    return None


def country_rule(country):
    if country in COUNTRIES:
        return None
    return f"country {country!r} is not known: use one of " + ", ".join(COUNTRIES)


def hw_mode_rule(hw_mode):
    if hw_mode in HW_MODES:
        return None
    return f"hw_mode {hw_mode!r} is not served: use a (5 GHz), b or g"


def ht_rule(ieee80211n, hw_mode):
    """802.11n (HT20 here) runs on an OFDM PHY: g or a, not b (IEEE 802.11 clause 19)."""
    if ieee80211n and hw_mode == "b":
        return "ieee80211n needs hw_mode g or a (802.11b has no HT): set " \
            "hw_mode g or ieee80211n off"
    return None


def security_of(security, key):
    """The mode in force: *security* as set, else wpa2 with a key, open without."""
    if security:
        return security
    return "wpa2" if key else "open"


def security_rule(security, key):
    """None if *security* and *key* go together, else why not (refusals only:
    a protected cell without a key is a warning, its cell stays down)."""
    if security is not None and security not in SECURITY:
        return f"security {security!r} is not served: use " + ", ".join(SECURITY)
    mode = security_of(security, key)
    if mode == "open" and key:
        return "security open takes no key: unset key, or set security wpa2"
    if mode in ("sae", "wpa2-sae") and key:
        if is_hex_psk(key):
            # SAE derives its key from the password itself (IEEE 802.11-2020 12.4)
            return f"security {mode} needs a passphrase, not a 64-hex-digit PSK"
        if "|" in key:
            # hostapd reads sae_password=PASSWORD|mac=..|id=..
            return f"security {mode}: a passphrase with '|' is not served " \
                "(hostapd's sae_password syntax)"
    return None


# unambiguous symbols (no 0/o, 1/l/i): 5 bits each
_PASS_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def new_passphrase(groups=5, size=4):
    """A random WPA2/SAE passphrase, e.g. 'k7pm-q2xe-...': 20 symbols of 31,
    about 99 bits (secrets: the kernel's CSPRNG), 24 characters."""
    import secrets
    return "-".join("".join(secrets.choice(_PASS_ALPHABET) for _ in range(size))
                    for _ in range(groups))


def essid_rule(essid):
    """An ESSID is 1-32 octets (IEEE 802.11 SSID element); UTF-8 here."""
    if not isinstance(essid, str):
        return "an ESSID is one string: quote it if it has commas"
    n = len(essid.encode("utf-8"))
    if 1 <= n <= 32:
        return None
    return f"ESSID {essid!r} is {n} bytes: use 1-32 bytes of UTF-8"


def is_hex_psk(key):
    """64 hex digits are the PSK itself, anything else is a passphrase (IEEE 802.11i H.4)."""
    return isinstance(key, str) and _HEX_PSK.fullmatch(key) is not None


def key_rule(key):
    """None for no key, a 64-hex-digit PSK or an 8-63 character ASCII passphrase."""
    if key is None or is_hex_psk(key) or (
            isinstance(key, str) and 8 <= len(key) <= 63
            and all(32 <= ord(c) < 127 for c in key)):
        return None
    return "a WPA2-PSK key is 8-63 printable ASCII characters or 64 hex digits"
