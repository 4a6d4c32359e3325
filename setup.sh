#!/bin/bash
# Set up a fresh Debian (bookworm) machine for denali: the tools the tests use
# as independent peers, and the package itself with its test extras.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

debs=(iproute2 nftables radvd radvdump tshark tcpdump iputils-ping procps kmod dhcpcd-base isc-dhcp-server)
missing=()
for d in "${debs[@]}"; do
    dpkg-query -W -f='${Status}' "$d" 2>/dev/null | grep -q "install ok installed" || missing+=("$d")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: installing denali and its test extras"
$PY -m pip install -q --disable-pip-version-check -e '.[test]'
# qemu, Debian's stock kernel (mac80211_hwsim, ip6_tunnel, mip6), hostapd, iw:
# the radio and kernel-datapath floors (tests/qemu)
PYTHON=$PY bash tests/qemu/prepare.sh
# UMIP's mip6d in a qemu guest: the third-party peer of tests/qemu/test_umip_interop.py
U=${DENALI_UMIP_DIR:-../shared/peers/umip}
if [ -f "$U/build.sh" ]; then
    echo "setup: UMIP peer (build cached after the first run)"
    { bash "$U/build.sh" && bash "$U/guest.sh" initrd; } >/dev/null ||
        echo "setup: the UMIP peer did not build: its interop tests will say why and skip"
else
    echo "setup: no UMIP peer at $U: its interop tests will skip"
fi
echo "setup: done"
