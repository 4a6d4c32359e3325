"""RFC 3776 interop: UMIP's mobile node protects its BUs with its kernel's IPsec,
denalid's home agent checks and answers them with its own ESP (issue 12).

UMIP is the mobile node in a qemu guest on Debian's kernel (as in
test_umip_interop.py), started with the seed's MN file turned to
`UseMnHaIPsec enabled` and UMIP's own `IPsecPolicySet { ... IPsecPolicy
HomeRegBinding UseESP; }`: UMIP installs the XFRM policies (BU out, BA in,
ESP transport, reqid 0) and leaves the SAs to the administrator, who sets
them here with iproute2's `ip xfrm state add ... mode transport` (manual keys,
NULL encryption, HMAC-SHA1-96). denalid is the home agent in the lab's
namespace with the seed's HA file, `UseMnHaIPsec enabled`, the same block and
the same keys in a DenaliIPsecSA line; it does ESP in user space.

First the guest's SAs carry a wrong key: UMIP's BUs reach denalid, fail the
integrity check, are counted, and no binding appears. Then the right keys go
in: UMIP's next retransmission registers, both ends show the binding, and a
correspondent reaches the home address through the tunnel.
"""

import glob
import json
import os
import sys
from ipaddress import IPv6Address

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from nslib import wait_for  # noqa: E402
from umip_peer import GUEST_IID, UmipGuest, missing  # noqa: E402

from ha.lab.topology import MN_HOME, SeedLab, run  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data")
HOA, HA = "2001:db8::beef", "2001:db8::"
KEY = "6a1c0e5d9b7f33a1c4e2d8f07b5a9c11d2e3f405"  # 20 octets: HMAC-SHA1's key length
WRONG = "00" * 20
SPI_TO_HA, SPI_TO_MN = 0x1000, 0x1001
PATIENCE = 240
POLICY = f"""IPsecPolicySet {{
    HomeAgentAddress {HA};
    HomeAddress {HOA}/64;
    IPsecPolicy HomeRegBinding UseESP;
}}
"""
RENAME = "ip link set eth0 down; ip link set eth0 name wlan0; ip link set wlan0 up\n"
IP = "/usr/bin/ip"  # iproute2 from the host (busybox's ip has no xfrm)
# ESP in the guest: esp6 and the AEAD wrapper the kernel builds NULL + HMAC in
# (hmac, sha1 and crypto_null are built into Debian's kernel)
MODULES = ("kernel/net/ipv6/esp6.ko", "kernel/crypto/authenc.ko", "kernel/crypto/echainiv.ko")


def states(key: str) -> str:
    """The mobile node's two SAs (RFC 3776 4.1: selectors on the home address)."""
    alg = f"auth-trunc 'hmac(sha1)' 0x{key} 96 enc cipher_null ''"
    return (f"{IP} xfrm state deleteall proto esp\n"
            f"{IP} xfrm state add src {HOA} dst {HA} proto esp spi {SPI_TO_HA:#x} "
            f"mode transport {alg}\n"
            f"{IP} xfrm state add src {HA} dst {HOA} proto esp spi {SPI_TO_MN:#x} "
            f"mode transport {alg}\n")


def wait(predicate, what, timeout=PATIENCE, interval=1.0):
    return wait_for(predicate, timeout=timeout, interval=interval, what=what)


def bc(lab):
    return {IPv6Address(b["hoa"]): b for b in json.loads(lab.console("bc json"))}


def stats(lab):
    return json.loads(lab.console("stats json"))


def _kernel_modules():
    kvers = sorted(p.split("vmlinuz-")[1] for p in glob.glob("/boot/vmlinuz-*"))
    if not kvers:
        return None, []
    kver = os.environ.get("GUEST_KVER") or kvers[-1]
    return kver, [f"/lib/modules/{kver}/{m}" for m in MODULES]


@pytest.fixture(scope="module")
def umip_ipsec(tmp_path_factory):
    reason = missing()
    if reason:
        pytest.skip(reason)
    kver, mods = _kernel_modules()
    absent = [m for m in mods + [IP] if not os.path.exists(m)]
    if absent:
        pytest.skip("the guest needs " + ", ".join(absent) + " from this host")
    tmp_path = tmp_path_factory.mktemp("umip-ipsec")
    lab = SeedLab()
    lab.build()
    guest = UmipGuest(lab.sw, f"ti{os.getpid() % 100000}", str(tmp_path / "guest"))
    lab.log_path = str(tmp_path / "denalid.log")
    saved_bins = os.environ.get("GUEST_BINS")
    os.environ["GUEST_BINS"] = " ".join([IP] + mods)  # guest.sh copies them in
    try:
        run(["ip", "addr", "flush", "dev", "wlan0", "scope", "global"], lab.mn)
        run(["ip", "link", "set", "p-mn", "down"], lab.sw)
        ha_conf = tmp_path / "mip6d.ha.conf"
        ha_conf.write_text(
            open(os.path.join(DATA, "mip6d.ha.conf")).read()
            .replace("UseMnHaIPsec disabled;", "UseMnHaIPsec enabled;")
            + POLICY + f'DenaliIPsecSA {HOA} {SPI_TO_HA:#x} {SPI_TO_MN:#x} hmac-sha1-96 '
            f'"{KEY}";\n')
        os.chmod(ha_conf, 0o600)
        lab.start_daemon(str(ha_conf), "-C", os.path.join(DATA, "radvd.seed.conf"),
                         log_path=lab.log_path)
        mn_conf = tmp_path / "mip6d.mn.conf"
        mn_conf.write_text(open(os.path.join(DATA, "mip6d.mn.conf")).read()
                           .replace("UseMnHaIPsec disabled;", "UseMnHaIPsec enabled;")
                           + "}\n" + POLICY)
        pre = RENAME + "".join(f"insmod /lib/modules/{kver}/{m}\n" for m in MODULES) \
            + states(WRONG)
        guest.start(str(mn_conf), "br-remote", pre=pre)
        lab.guest = guest
        yield lab
    finally:
        if saved_bins is None:
            os.environ.pop("GUEST_BINS", None)
        else:
            os.environ["GUEST_BINS"] = saved_bins
        guest.stop()
        lab.teardown()
        denalid = open(lab.log_path).read() if os.path.exists(lab.log_path) else ""
        for name, text in (("denalid", denalid), ("UMIP guest", guest.log())):
            sys.stdout.write(f"----- {name}\n{text[-8000:]}\n")


def test_umip_registers_over_esp_with_the_same_keys_and_not_with_a_wrong_one(umip_ipsec):
    lab, guest = umip_ipsec, umip_ipsec.guest

    # a wrong key: the BUs arrive in ESP and fail the integrity check, no binding
    wait(lambda: stats(lab).get("ESP dropped, ICV wrong", 0) >= 1,
         "denalid to count a BU whose ICV is wrong")
    assert MN_HOME not in bc(lab)
    s = stats(lab)
    assert s.get("ESP accepted", 0) == 0 and s.get("BA 0", 0) == 0
    assert "status 0" not in guest.log()
    out = guest.sh(f"{IP} xfrm policy")
    assert "proto esp" in out and "mode transport" in out, out  # UMIP's policies are in

    # the right keys: UMIP's next retransmission registers
    out = guest.sh(states(KEY).replace("\n", "; ") + f"{IP} xfrm state")
    assert f"spi {SPI_TO_HA:#010x}" in out, out
    wait(lambda: bc(lab).get(MN_HOME, {}).get("status") == "registered",
         "denalid's binding for the home address")
    assert IPv6Address(bc(lab)[MN_HOME]["coa"]) == IPv6Address(f"2001:db8:1::{GUEST_IID}")
    wait(lambda: "Got BA from 2001:db8:0:0:0:0:0:0 to home address 2001:db8:0:0:0:0:0:beef "
         f"with coa 2001:db8:1:0:{GUEST_IID} and status 0" in guest.log(), "UMIP to log the BA")
    (bule,) = wait(guest.bul, "UMIP's binding update list")
    assert bule["hoa"] == "2001:db8:0:0:0:0:0:beef" and "ack ready" in bule["text"]
    s = stats(lab)
    assert s["ESP accepted"] >= 1 and s["ESP sent"] >= 1
    assert s.get("BU dropped, not in ESP (IPsec required)", 0) == 0
    # the BA went back in ESP and the guest's kernel took it: its inbound SA counted it
    out = guest.sh(f"{IP} -s xfrm state")
    assert out.count("proto esp") == 2, out

    # a correspondent on the home link reaches the home address through the tunnel
    r = run(["ping", "-6", "-c", "3", "-i", "0.5", "-w", "60", str(MN_HOME)], lab.cn,
            check=False, timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr


def test_umip_returning_home_deregisters_over_esp(umip_ipsec):
    # from home the BU has no Home Address option: the tap takes it by its
    # first next header, ESP (RFC 3776 section 3.1), and the BA goes back in ESP
    lab, guest = umip_ipsec, umip_ipsec.guest
    wait(lambda: bc(lab).get(MN_HOME, {}).get("status") == "registered",
         "denalid's binding for the home address")
    accepted = stats(lab)["ESP accepted"]
    run(["ip", "link", "set", guest.tap, "nomaster"], lab.sw)
    run(["ip", "link", "set", guest.tap, "master", "br-home"], lab.sw)
    wait(lambda: MN_HOME not in bc(lab), "denalid's binding to go")
    assert stats(lab)["ESP accepted"] > accepted
    wait(lambda: guest.bul() == [], "UMIP's binding update list to empty", timeout=60)
