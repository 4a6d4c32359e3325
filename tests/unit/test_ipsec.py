"""RFC 3776 ESP for BU/BA (issue 12): the codec, the home agent core, the config.

The ESP vectors are written from RFC 4303's layout (section 2) and checked
against Python's hmac computed here, independently of ha/wire/esp.py; scapy's
ESP layer (scapy.layers.ipsec, NULL encryption with HMAC-SHA1-96 and
HMAC-SHA256-128) reads what we write and writes what we read. The interop
with UMIP's kernel is tests/qemu/test_umip_ipsec.py.
"""

import hashlib
import hmac
import struct
from ipaddress import IPv6Address, IPv6Network

import pytest

from ha.core import registration as reg
from ha.core.home_agent import HomeAgentCore, HomeAgentSettings
from ha.daemon.settings import SettingsError, load_settings
from ha.config.mip6d_conf import Mip6dConfError, dump_mip6d, parse_mip6d
from ha.wire import esp
from ha.wire.errors import CodecError
from ha.wire.ipv6 import IPv6Header, Proto, dstopts_with_hao, parse_packet
from ha.wire.mobility import BAStatus, BindingAck, BindingUpdate, decode_mh, encode_mh

pytest.importorskip("scapy")
from scapy.layers.inet6 import IPv6 as ScapyIPv6  # noqa: E402
from scapy.layers.ipsec import ESP as ScapyESP, SecurityAssociation  # noqa: E402

A = IPv6Address
HA = A("2001:db8::")
HOA = A("2001:db8::beef")
COA = A("2001:db8:1::5")
KEY = bytes(range(1, 21))  # 20 octets: HMAC-SHA1's key length
KEY256 = bytes(range(100, 132))
SCAPY_ALG = {"hmac-sha1-96": ("HMAC-SHA1-96", KEY), "hmac-sha256-128": ("SHA2-256-128", KEY256)}
SPI_TO_HA, SPI_TO_MN = 0x1000, 0x1001


def sa(key=KEY, auth="hmac-sha1-96", key_to_mn=None):
    return esp.MnHaIPsecSA(SPI_TO_HA, SPI_TO_MN, esp.EspKey(auth, key),
                           esp.EspKey(auth, key_to_mn or key))


# ------------------------------------------------------------------ codec


@pytest.mark.parametrize("auth,digest,n,key", [("hmac-sha1-96", hashlib.sha1, 12, KEY),
                                               ("hmac-sha256-128", hashlib.sha256, 16, KEY256)])
@pytest.mark.parametrize("payload", [b"", b"x", b"ab", b"abc", b"abcd", bytes(37)])
def test_esp_layout_and_icv_follow_rfc_4303(auth, digest, n, key, payload):
    got = esp.encode_esp(0x01020304, 7, payload, 135, esp.EspKey(auth, key))
    # section 2: SPI, sequence number, payload, padding 1, 2, 3... so that pad
    # length and next header end on 4 octets, then the ICV over all of it
    pad = (4 - (len(payload) + 2) % 4) % 4
    body = (struct.pack("!II", 0x01020304, 7) + payload + bytes(range(1, pad + 1))
            + bytes((pad, 135)))
    assert got == body + hmac.new(key, body, digest).digest()[:n]
    assert len(body) % 4 == 0
    assert esp.decode_esp(got, esp.EspKey(auth, key)) == (0x01020304, 7, 135, payload)


@pytest.mark.parametrize("auth", ["hmac-sha1-96", "hmac-sha256-128"])
def test_scapy_reads_what_we_write_and_we_read_what_it_writes(auth):
    name, key = SCAPY_ALG[auth]
    ours = esp.EspKey(auth, key)
    mh = encode_mh(BindingAck(status=BAStatus.ACCEPTED, sequence=9, lifetime=100), HA, HOA)
    theirs = SecurityAssociation(ScapyESP, spi=SPI_TO_MN, crypt_algo="NULL", crypt_key=None,
                                 auth_algo=name, auth_key=key)
    wire = esp.encode_esp(SPI_TO_MN, 1, mh, Proto.MH, ours)
    pkt = ScapyIPv6(IPv6Header(HA, HOA, Proto.ESP, len(wire)).encode() + wire)
    clear = theirs.decrypt(pkt)  # raises when the ICV does not check out
    assert clear.nh == Proto.MH and bytes(clear.payload) == mh
    # the other way: scapy's ESP (sequence number 5) through our decoder
    plain = ScapyIPv6(IPv6Header(HOA, HA, Proto.MH, len(mh)).encode() + mh)
    sealed = theirs.encrypt(plain, seq_num=5)
    got = bytes(sealed[ScapyESP])
    assert esp.decode_esp(got, ours) == (SPI_TO_MN, 5, Proto.MH, mh)
    # and a bit flipped anywhere fails the ICV
    bad = bytearray(got)
    bad[10] ^= 1
    with pytest.raises(esp.EspAuthError):
        esp.decode_esp(bytes(bad), ours)


def test_wrong_key_truncation_and_bad_padding_are_refused():
    k = esp.EspKey("hmac-sha1-96", KEY)
    wire = esp.encode_esp(SPI_TO_HA, 1, b"hello", 135, k)
    with pytest.raises(esp.EspAuthError):
        esp.decode_esp(wire, esp.EspKey("hmac-sha1-96", bytes(20)))
    with pytest.raises(CodecError):
        esp.decode_esp(wire[:15], k)
    # a valid ICV over padding that is not 1, 2, 3 (section 2.4's default)
    body = struct.pack("!II", SPI_TO_HA, 1) + b"hi" + bytes((9, 9, 2, 135))
    with pytest.raises(CodecError, match="padding"):
        esp.decode_esp(body + k.icv(body), k)
    with pytest.raises(ValueError, match="20-octet key"):
        esp.EspKey("hmac-sha1-96", bytes(16))
    with pytest.raises(ValueError):
        esp.encode_esp(255, 1, b"", 135, k)  # section 2.1: 1-255 reserved


def test_replay_window_of_rfc_4303_section_3_4_3():
    w = esp.ReplayWindow(64)
    assert w.check(0) is not None  # never sent
    for seq in (1, 2, 5):
        assert w.check(seq) is None
        w.accept(seq)
    assert "seen already" in w.check(5) and "seen already" in w.check(1)
    assert w.check(3) is None and w.check(4) is None  # late, but inside the window
    w.accept(3)
    assert w.check(3) is not None
    w.accept(100)
    assert "left of the window" in w.check(36)  # 100 - 36 = 64: just outside
    assert w.check(37) is None
    assert w.check(100) is not None and w.check(101) is None


# ------------------------------------------------------------------- core


def core(**kw) -> HomeAgentCore:
    rules = reg.HomeAgentConfig(served_prefixes=(IPv6Network("2001:db8::/64"),),
                                ha_addresses=(HA,), dad_enabled=False)
    settings = HomeAgentSettings(ha_address=HA, home_ifindex=3, rules=rules,
                                 ipsec={HOA: kw.pop("sa", sa())}, **kw)
    return HomeAgentCore(settings, capacity=100)


def esp_bu(seq=1, esp_seq=1, *, key=KEY, spi=SPI_TO_HA, hoa=HOA, coa=COA, lifetime=1000):
    """What a mobile node's kernel sends (RFC 3776 section 3.1): IPv6 from the
    care-of address, the Home Address option, ESP, the BU."""
    bu = BindingUpdate(sequence=seq, lifetime=lifetime, ack=True, home_registration=True)
    sealed = esp.encode_esp(spi, esp_seq, encode_mh(bu, hoa, HA), Proto.MH,
                            esp.EspKey("hmac-sha1-96", key))
    dopt = dstopts_with_hao(hoa, Proto.ESP)
    return (IPv6Header(coa, HA, Proto.DSTOPTS, len(dopt) + len(sealed)).encode()
            + dopt + sealed)


def clear_bu(seq=1):
    from ha.wire.ipv6 import build_bu_packet
    bu = BindingUpdate(sequence=seq, lifetime=1000, ack=True, home_registration=True)
    return build_bu_packet(COA, HA, HOA, encode_mh(bu, HOA, HA))


def run_actions(c, now):
    while (a := c.next_action()) is not None:
        c.action_done(a, now)


def open_ba(data: bytes, key=KEY):
    """The BA as the mobile node's kernel unwraps it: RH2, then ESP, then the MH."""
    pkt = parse_packet(data)
    assert pkt.routing_address == HOA and pkt.protocol == Proto.ESP
    spi, seq, nh, mh = esp.decode_esp(pkt.payload, esp.EspKey("hmac-sha1-96", key))
    assert spi == SPI_TO_MN and nh == Proto.MH
    return seq, decode_mh(mh, HA, HOA)  # the checksum over (HA, HoA), as without ESP


def test_a_bu_in_esp_registers_and_the_ba_goes_back_in_esp():
    c = core()
    c.receive_packet(esp_bu(), 0, 10.0)
    run_actions(c, 10.0)
    assert c.cache.get(HOA).coa == COA
    (d,) = c.datagrams_to_send(10.0)
    assert d.dst == COA
    seq, ba = open_ba(d.data)
    assert (seq, ba.status, ba.sequence) == (1, BAStatus.ACCEPTED, 1)
    assert c.stats["ESP accepted"] == 1 and c.stats["ESP sent"] == 1
    # scapy agrees: RH2 to the home address, then ESP
    p = ScapyIPv6(d.data)
    assert p[ScapyESP].spi == SPI_TO_MN and p[ScapyESP].seq == 1
    # the refresh's BA has the next sequence number
    c.receive_packet(esp_bu(seq=2, esp_seq=2), 0, 11.0)
    run_actions(c, 11.0)
    (d,) = c.datagrams_to_send(11.0)
    assert open_ba(d.data)[0] == 2


def test_a_bu_in_the_clear_for_a_protected_home_address_is_dropped_unanswered():
    c = core()
    c.receive_packet(clear_bu(), 0, 10.0)
    assert HOA not in c.cache and c.datagrams_to_send(10.0) == []
    assert c.stats["BU dropped, not in ESP (IPsec required)"] == 1


def test_a_wrong_key_gets_no_binding_and_no_answer():
    c = core()
    c.receive_packet(esp_bu(key=bytes(20)), 0, 10.0)
    assert HOA not in c.cache and c.datagrams_to_send(10.0) == []
    assert c.stats["ESP dropped, ICV wrong"] == 1
    # the right key afterwards, same ESP sequence number: the forgery did not
    # move the window (RFC 4303 section 3.4.3)
    c.receive_packet(esp_bu(), 0, 11.0)
    run_actions(c, 11.0)
    assert c.cache.get(HOA) is not None


def test_replayed_unknown_and_misdirected_esp_is_dropped():
    c = core()
    c.receive_packet(esp_bu(), 0, 10.0)
    run_actions(c, 10.0)
    c.datagrams_to_send(10.0)
    c.receive_packet(esp_bu(), 0, 11.0)  # the same packet again
    assert c.stats["ESP dropped, replay window"] == 1 and c.datagrams_to_send(11.0) == []
    c.receive_packet(esp_bu(esp_seq=2, spi=0x4242), 0, 12.0)
    assert c.stats["ESP dropped, unknown SPI"] == 1
    # the SA of 2001:db8::beef used for another home address: its selector says no
    c.receive_packet(esp_bu(esp_seq=3, hoa=A("2001:db8::7")), 0, 13.0)
    assert c.stats["ESP dropped, SA of another home address"] == 1
    assert A("2001:db8::7") not in c.cache


def test_other_home_addresses_still_register_in_the_clear():
    c = core()
    from ha.wire.ipv6 import build_bu_packet
    other = A("2001:db8::7")
    bu = BindingUpdate(sequence=1, lifetime=1000, ack=True, home_registration=True)
    c.receive_packet(build_bu_packet(COA, HA, other, encode_mh(bu, other, HA)), 0, 10.0)
    run_actions(c, 10.0)
    (d,) = c.datagrams_to_send(10.0)
    assert parse_packet(d.data).protocol == Proto.MH and other in c.cache


def test_reload_keeps_the_counters_of_an_unchanged_sa_and_resets_a_changed_one():
    c = core()
    c.receive_packet(esp_bu(), 0, 10.0)
    run_actions(c, 10.0)
    c.datagrams_to_send(10.0)
    c.reload(c.settings)
    c.receive_packet(esp_bu(esp_seq=1), 0, 11.0)
    assert c.stats["ESP dropped, replay window"] == 1  # still remembered
    import dataclasses
    c.reload(dataclasses.replace(c.settings, ipsec={HOA: sa(key=bytes(range(2, 22)))}))
    c.receive_packet(esp_bu(seq=2, esp_seq=1, key=bytes(range(2, 22))), 0, 12.0)
    run_actions(c, 12.0)
    (d,) = c.datagrams_to_send(12.0)
    assert open_ba(d.data, key=bytes(range(2, 22)))[0] == 1  # a new SA counts from 1


# ----------------------------------------------------------------- config

SA_LINE = 'DenaliIPsecSA 2001:db8::beef 0x1000 0x1001 hmac-sha1-96 "{}";\n'.format(KEY.hex())
POLICY = """IPsecPolicySet {
    HomeAgentAddress 2001:db8::;
    HomeAddress 2001:db8::beef/64;
    IPsecPolicy HomeRegBinding UseESP;
}
"""
HA_CONF = 'NodeConfig HA;\nInterface "wlan0";\nUseMnHaIPsec enabled;\n'


def write(tmp_path, text):
    f = tmp_path / "mip6d.conf"
    f.write_text(text)
    return str(f)


def test_umips_ipsec_block_and_denalis_sa_line_parse_and_dump():
    cfg = parse_mip6d(HA_CONF + POLICY + SA_LINE)
    (ps,) = cfg.ipsec_policy_sets
    assert ps.home_agent_address == "2001:db8::" and ps.home_addresses == ["2001:db8::beef/64"]
    (p,) = ps.policies
    assert (p.type, p.protos, p.reqid_to_ha, p.allow) == ("HomeRegBinding", ("UseESP",), 0, True)
    (s,) = cfg.ipsec_sas
    assert (s.spi_to_ha, s.spi_to_mn, s.auth, s.key_to_ha) == (0x1000, 0x1001, "hmac-sha1-96",
                                                              KEY.hex())
    assert s.key_to_mn == s.key_to_ha
    assert parse_mip6d(dump_mip6d(cfg)) == cfg
    cfg = parse_mip6d(HA_CONF + POLICY.replace("UseESP;", "UseESP 3 4 enabled;"))
    p = cfg.ipsec_policy_sets[0].policies[0]
    assert (p.reqid_to_ha, p.reqid_to_mn) == (3, 4)
    assert parse_mip6d(dump_mip6d(cfg)) == cfg


@pytest.mark.parametrize("text,what", [
    (POLICY.replace("    HomeAgentAddress 2001:db8::;\n", ""), "HomeAgentAddress missing"),
    (POLICY.replace("    HomeAddress 2001:db8::beef/64;\n", ""), "HomeAddress missing"),
    (POLICY.replace("UseESP", ""), "at least one protocol"),
    (POLICY.replace("HomeRegBinding", "Everything"), "use: IPsecPolicy"),
    (SA_LINE.replace("0x1001", "0x1000"), "for both directions"),
    (SA_LINE.replace("0x1001", "17"), "reserves 1-255"),
    (SA_LINE.replace("hmac-sha1-96", "hmac-md5-96"), "algorithm"),
    (SA_LINE.replace(KEY.hex(), "00ff"), "20-octet key"),
    (SA_LINE + SA_LINE.replace("0x1000 0x1001", "0x2000 0x2001"), "given twice"),
])
def test_bad_ipsec_lines_are_refused_at_their_line(text, what):
    with pytest.raises(Mip6dConfError, match=what):
        parse_mip6d(HA_CONF + text)


def test_enabled_with_a_policy_set_and_its_sa_starts(tmp_path):
    s = load_settings(write(tmp_path, HA_CONF + POLICY + SA_LINE))
    assert s.ipsec == {HOA: sa()}
    # the home address is protected: the warning names only the others
    assert len(s.warnings) == 1 and "any other home address" in s.warnings[0]
    s = load_settings(write(tmp_path, HA_CONF + "DefaultBindingAclPolicy deny;\n"
                            "BindingAclPolicy 2001:db8::beef allow;\n" + POLICY + SA_LINE))
    assert s.warnings == []


@pytest.mark.parametrize("text,what", [
    (POLICY, "no DenaliIPsecSA line for the home address 2001:db8::beef"),
    ("", "no IPsecPolicySet block"),
    (POLICY.replace("HomeRegBinding", "MobPfxDisc") + SA_LINE, "Acknowledgements only"),
    (POLICY.replace("UseESP", "UseESP UseAH") + SA_LINE, "ESP only"),
    (POLICY.replace("UseESP", "UseESP disabled") + SA_LINE, "blocking policy"),
    (POLICY + SA_LINE + SA_LINE.replace("beef", "7").replace("0x1000 0x1001", "0x2000 0x2001"),
     "which no IPsecPolicySet names"),
])
def test_enabled_without_a_usable_setup_refuses_saying_why(tmp_path, text, what):
    with pytest.raises(SettingsError, match=what):
        load_settings(write(tmp_path, HA_CONF + text))


def test_a_mobile_node_with_ipsec_is_refused(tmp_path):
    mn = ('NodeConfig MN;\nInterface "wlan0";\nUseMnHaIPsec enabled;\nMnHomeLink "wlan0" {\n'
          '    HomeAddress 2001:db8::beef/64;\n    HomeAgentAddress 2001:db8::;\n}\n')
    with pytest.raises(SettingsError, match="not available in denali's mobile node"):
        load_settings(write(tmp_path, mn + POLICY + SA_LINE))


def test_disabled_ignores_the_ipsec_lines_with_a_warning(tmp_path):
    text = HA_CONF.replace("enabled", "disabled") + POLICY + SA_LINE
    s = load_settings(write(tmp_path, text))
    assert s.ipsec == {} and any("are not used" in w for w in s.warnings)
