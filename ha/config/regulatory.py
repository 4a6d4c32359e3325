"""What a radio may use: 2.4 GHz channels by country, ESSIDs, WPA2 keys.

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
HW_MODES = ("b", "g")
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


def channel_rule(channel, country, hw_mode):
    """None if *channel* is legal in *country* (IEEE 802.11 Annex E), else why not."""
    if not 1 <= channel <= 14:
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
    return f"hw_mode {hw_mode!r} is not served: use b or g"


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
