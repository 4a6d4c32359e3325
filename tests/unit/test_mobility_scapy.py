"""Cross-checks of the MH and extension-header codecs against independent
parsers: scapy's MIPv6 layers both ways, and tshark on a pcap of our packets."""

import shutil
import struct
import subprocess
from ipaddress import IPv6Address

import pytest

pytest.importorskip("scapy")
from scapy.layers.inet6 import (  # noqa: E402
    HAO, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrRouting, MIP6MH_BA, MIP6MH_BE, MIP6MH_BRR,
    MIP6MH_BU, MIP6MH_CoT, MIP6MH_CoTI, MIP6MH_HoT, MIP6MH_HoTI, MIP6OptAltCoA,
    MIP6OptBRAdvice, MIP6OptNonceIndices, MIP6OptUnknown, PadN as ScapyPadN, in6_chksum,
)

from ha.wire.errors import CodecError  # noqa: E402
from ha.wire.ipv6 import build_ba_packet, build_bu_packet, parse_packet  # noqa: E402
from ha.wire.mobility import (  # noqa: E402
    AlternateCareOfAddress, BAStatus, BEStatus, BindingAck, BindingError,
    BindingRefreshAdvice, BindingRefreshRequest, BindingUpdate, CareOfTest, CareOfTestInit,
    HomeTest, HomeTestInit, NonceIndices, UnknownMobilityOption, decode_mh, encode_mh,
)

HOA = IPv6Address("2001:db8::beef")
HA = IPv6Address("2001:db8::")
COA = IPv6Address("2001:db8:1::2")


def _bu_packet(bu):
    return build_bu_packet(COA, HA, HOA, encode_mh(bu, HOA, HA))


def _ba_packet(ba):
    return build_ba_packet(HA, COA, HOA, encode_mh(ba, HA, HOA))


def _scapy_cksum_ok(pkt, layer):
    """Recompute the MH checksum with scapy's in6_chksum, which takes the
    HAO address as source and the RH2 address as destination.

    scapy only honours an HAO that is the sole option of its header, so the
    dissected PadN is dropped first (scapy would re-add it when building);
    the MH bytes themselves are the original wire bytes, zeroed checksum.
    """
    mh = pkt[layer]
    raw_mh = bytearray(mh.original)  # the bytes scapy dissected, not a rebuild
    sent = int.from_bytes(raw_mh[4:6], "big")
    raw_mh[4:6] = b"\0\0"
    if pkt.haslayer(IPv6ExtHdrDestOpt):
        opts = pkt[IPv6ExtHdrDestOpt]
        opts.options = [o for o in opts.options if isinstance(o, HAO)]
    return in6_chksum(135, mh, bytes(raw_mh)) == sent


# ----------------------------------------------------------- ours -> scapy


def test_our_bu_with_hao_parsed_by_scapy():
    bu = BindingUpdate(0x4242, 150, ack=True, home_registration=True,
                       options=[AlternateCareOfAddress(COA), NonceIndices(3, 4)])
    pkt = IPv6(_bu_packet(bu))
    assert pkt[IPv6].src == str(COA) and pkt[IPv6].dst == str(HA)
    assert pkt[IPv6ExtHdrDestOpt][HAO].hoa == str(HOA)
    mh = pkt[MIP6MH_BU]
    assert mh.seq == 0x4242 and mh.mhtime == 150
    assert set(str(mh.flags)) == {"A", "H"}
    assert mh[MIP6OptAltCoA].acoa == str(COA)
    ni = mh[MIP6OptNonceIndices]
    assert (ni.hni, ni.coni) == (3, 4)
    # scapy's checksum follows the HAO, so agreeing means ours used the HoA
    assert _scapy_cksum_ok(pkt, MIP6MH_BU)


def test_scapy_checksum_disagrees_when_we_use_the_care_of_address():
    # A control for the test above: the checksum really depends on the HoA.
    mh = encode_mh(BindingUpdate(1, 1), COA, HA)
    pkt = IPv6(build_bu_packet(COA, HA, HOA, mh))
    assert not _scapy_cksum_ok(pkt, MIP6MH_BU)


@pytest.mark.parametrize("flags, letters", [
    (dict(ack=True), "A"), (dict(home_registration=True), "H"),
    (dict(link_local_compat=True), "L"), (dict(key_management=True), "K"),
    (dict(), ""),
])
def test_bu_flags_against_scapy(flags, letters):
    pkt = IPv6(_bu_packet(BindingUpdate(1, 2, **flags)))
    assert str(pkt[MIP6MH_BU].flags) == letters


def test_our_ba_with_rh2_parsed_by_scapy():
    ba = BindingAck(BAStatus.NOT_HOME_SUBNET, 0x4242, 0x12, key_management=True,
                    options=[BindingRefreshAdvice(9)])
    pkt = IPv6(_ba_packet(ba))
    rh = pkt[IPv6ExtHdrRouting]
    assert (rh.type, rh.segleft, rh.addresses) == (2, 1, [str(HOA)])
    mh = pkt[MIP6MH_BA]
    assert (mh.status, mh.seq, mh.mhtime) == (132, 0x4242, 0x12)
    assert str(mh.flags) == "K"
    assert mh[MIP6OptBRAdvice].rinter == 9
    # scapy takes the final destination (the RH2 address) for the pseudo-header
    assert _scapy_cksum_ok(pkt, MIP6MH_BA)


@pytest.mark.parametrize("msg, layer, fields", [
    (BindingRefreshRequest(), MIP6MH_BRR, {}),
    (HomeTestInit(b"ABCDEFGH"), MIP6MH_HoTI, {"cookie": b"ABCDEFGH"}),
    (CareOfTestInit(b"abcdefgh"), MIP6MH_CoTI, {"cookie": b"abcdefgh"}),
    (HomeTest(7, b"ABCDEFGH", b"12345678"), MIP6MH_HoT,
     {"index": 7, "cookie": b"ABCDEFGH", "token": b"12345678"}),
    (CareOfTest(8, b"abcdefgh", b"87654321"), MIP6MH_CoT,
     {"index": 8, "cookie": b"abcdefgh", "token": b"87654321"}),
    (BindingError(BEStatus.UNRECOGNIZED_MH_TYPE_VALUE, HOA), MIP6MH_BE,
     {"status": 2, "ha": str(HOA)}),
], ids=lambda v: getattr(v, "__name__", None))
def test_other_messages_parsed_by_scapy(msg, layer, fields):
    mh = encode_mh(msg, HOA, HA)
    pkt = IPv6(build_bu_packet(COA, HA, HOA, mh))
    assert pkt.haslayer(layer), pkt.summary()
    for name, value in fields.items():
        assert getattr(pkt[layer], name) == value
    assert pkt[layer].len == len(mh) // 8 - 1
    assert _scapy_cksum_ok(pkt, layer)


# ----------------------------------------------------------- scapy -> ours


def test_scapy_bu_parsed_by_us():
    pkt = (IPv6(src=str(COA), dst=str(HA)) / IPv6ExtHdrDestOpt(options=[HAO(hoa=str(HOA))])
           / MIP6MH_BU(seq=0x1001, flags="AHK", mhtime=25,
                       options=[MIP6OptAltCoA(acoa=str(COA)),
                                MIP6OptNonceIndices(olen=4, hni=5, coni=6)]))
    wire = bytes(pkt)
    p = parse_packet(wire)
    assert p.home_address == HOA and p.protocol == 135
    bu = decode_mh(p.payload, *p.pseudo_header_addresses())  # checksum verified
    assert bu == BindingUpdate(0x1001, 25, ack=True, home_registration=True,
                               key_management=True,
                               options=[AlternateCareOfAddress(COA), NonceIndices(5, 6)])


def test_scapy_ba_parsed_by_us():
    pkt = (IPv6(src=str(HA), dst=str(COA))
           / IPv6ExtHdrRouting(type=2, segleft=1, addresses=[str(HOA)])
           / MIP6MH_BA(status=129, flags="K", seq=77, mhtime=3,
                       options=[MIP6OptBRAdvice(rinter=11)]))
    p = parse_packet(bytes(pkt))
    assert p.routing_address == HOA
    ba = decode_mh(p.payload, *p.pseudo_header_addresses())
    assert ba == BindingAck(BAStatus.ADMINISTRATIVELY_PROHIBITED, 77, 3, key_management=True,
                            options=[BindingRefreshAdvice(11)])


@pytest.mark.parametrize("layer, expected", [
    (MIP6MH_BRR(), BindingRefreshRequest()),
    (MIP6MH_HoTI(cookie=b"ABCDEFGH"), HomeTestInit(b"ABCDEFGH")),
    (MIP6MH_CoTI(cookie=b"abcdefgh"), CareOfTestInit(b"abcdefgh")),
    (MIP6MH_HoT(index=3, cookie=b"ABCDEFGH", token=b"12345678"),
     HomeTest(3, b"ABCDEFGH", b"12345678")),
    (MIP6MH_CoT(index=4, cookie=b"abcdefgh", token=b"87654321"),
     CareOfTest(4, b"abcdefgh", b"87654321")),
    (MIP6MH_BE(status=1, ha=str(HOA)), BindingError(1, HOA)),
    (MIP6MH_BU(seq=1, flags=0, mhtime=0, options=[MIP6OptUnknown(otype=99, odata=b"zz")]),
     BindingUpdate(1, 0, options=[UnknownMobilityOption(99, b"zz")])),
], ids=lambda v: type(v).__name__)
def test_scapy_messages_parsed_by_us(layer, expected):
    pkt = IPv6(src=str(HOA), dst=str(HA)) / layer
    p = parse_packet(bytes(pkt))
    assert decode_mh(p.payload, HOA, HA) == expected


def test_scapy_bu_with_wrong_checksum_refused():
    pkt = (IPv6(src=str(COA), dst=str(HA)) / IPv6ExtHdrDestOpt(options=[HAO(hoa=str(HOA))])
           / MIP6MH_BU(seq=1, cksum=0x1234))
    p = parse_packet(bytes(pkt))
    with pytest.raises(CodecError, match="checksum"):
        decode_mh(p.payload, p.home_address, p.header.dst)


def test_scapy_padn_placement_matches_ours():
    # scapy autopads the HAO to 8n+6 as well; both headers must be identical
    ours = build_bu_packet(COA, HA, HOA, encode_mh(BindingUpdate(1, 1), HOA, HA))
    theirs = bytes(IPv6ExtHdrDestOpt(nh=135, options=[HAO(hoa=str(HOA))]))
    assert ours[40:64] == theirs
    assert isinstance(IPv6ExtHdrDestOpt(theirs).options[0], ScapyPadN)


# ----------------------------------------------------------------- tshark


def _pcap(frames):
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # Ethernet linktype
    for i, frame in enumerate(frames):
        out += struct.pack("<IIII", 1_700_000_000 + i, 0, len(frame), len(frame)) + frame
    return out


def test_tshark_decodes_our_bu_and_ba(tmp_path):
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark not installed")
    eth = bytes.fromhex("020000000001 020000000002 86dd")
    bu = _bu_packet(BindingUpdate(0x1234, 150, ack=True, home_registration=True,
                                  options=[AlternateCareOfAddress(COA)]))
    ba = _ba_packet(BindingAck(BAStatus.ACCEPTED, 0x1234, 150,
                               options=[BindingRefreshAdvice(100)]))
    path = tmp_path / "bu_ba.pcap"
    path.write_bytes(_pcap([eth + bu, eth + ba]))
    fields = ["mip6.mhtype", "mip6.bu.seqnr", "mip6.ba.seqnr", "mip6.bu.a_flag",
              "mip6.bu.h_flag", "mip6.bu.lifetime", "mip6.ba.status", "mip6.ba.lifetime",
              "ipv6.opt.mipv6.home_address", "ipv6.routing.mipv6.home_address",
              "mip6.acoa.acoa", "mip6.bra.interval", "mip6.csum", "_ws.col.Info",
              "_ws.expert"]
    cmd = [tshark, "-n", "-r", str(path), "-T", "fields", "-E", "separator=|"]
    for name in fields:
        cmd += ["-e", name]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 2, res.stdout
    got_bu, got_ba = (dict(zip(fields, line.split("|"))) for line in lines)
    assert got_bu["mip6.mhtype"] == "5" and "Binding Update" in got_bu["_ws.col.Info"]
    assert got_bu["mip6.bu.seqnr"] == "4660"  # 0x1234
    assert (got_bu["mip6.bu.a_flag"], got_bu["mip6.bu.h_flag"]) in (("1", "1"),
                                                                    ("True", "True"))
    assert got_bu["mip6.bu.lifetime"] == "150"
    assert got_bu["ipv6.opt.mipv6.home_address"] == str(HOA)
    assert got_bu["mip6.acoa.acoa"] == str(COA)
    assert int(got_bu["mip6.csum"], 16) == int.from_bytes(bu[64 + 4:64 + 6], "big")
    assert got_ba["mip6.mhtype"] == "6" and "Binding Acknowledgement" in got_ba["_ws.col.Info"]
    assert got_ba["mip6.ba.seqnr"] == "4660" and got_ba["mip6.ba.status"] == "0"
    assert got_ba["mip6.ba.lifetime"] == "150" and got_ba["mip6.bra.interval"] == "100"
    assert got_ba["ipv6.routing.mipv6.home_address"] == str(HOA)
    for got in (got_bu, got_ba):
        # tshark 4.0 does not verify MH checksums; any expert item (malformed,
        # bad length, bad padding) would show here
        assert got["_ws.expert"] == "", got
    verbose = subprocess.run([tshark, "-n", "-r", str(path), "-V"], capture_output=True,
                             text=True, timeout=60).stdout
    assert "Malformed" not in verbose and "[Expert Info" not in verbose, verbose
    assert "Binding Update" in verbose and "Binding Acknowledgement" in verbose
