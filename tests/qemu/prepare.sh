#!/bin/bash
# Prepare this machine for the qemu tests (tests/qemu): qemu, busybox-static for
# the initramfs, the host tools the guest runs (hostapd, iw, wireless-regdb,
# wpa_supplicant for the station, iproute2, kmod), pyric, and Debian's stock kernel (linux-image-amd64, which has
# mac80211_hwsim) extracted under /opt/denali-qemu/<package>/ without installing
# it (no /boot, no initramfs hooks). Idempotent; about 1 minute cold.
set -euo pipefail
PY=${PYTHON:-python3}
BASE=${DENALI_QEMU_BASE:-/opt/denali-qemu}

debs=(qemu-system-x86 busybox-static hostapd iw wireless-regdb wpasupplicant iproute2 kmod)
missing=()
for d in "${debs[@]}"; do
    dpkg-query -W -f='${Status}' "$d" 2>/dev/null | grep -q "install ok installed" || missing+=("$d")
done
updated=
if [ ${#missing[@]} -gt 0 ]; then
    echo "qemu/prepare: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && updated=1
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

$PY -c "import pyric" 2>/dev/null || $PY -m pip install -q --disable-pip-version-check PyRIC==0.1.6.3

# the kernel package linux-image-amd64 depends on, e.g. linux-image-6.1.0-56-amd64
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: \(linux-image-[0-9].*\)/\1/p' | head -n1)
if [ -z "$kpkg" ] && [ -z "$updated" ]; then
    apt-get update -qq && updated=1
    kpkg=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: \(linux-image-[0-9].*\)/\1/p' | head -n1)
fi
[ -n "$kpkg" ] || { echo "qemu/prepare: cannot resolve linux-image-amd64" >&2; exit 1; }
dest="$BASE/$kpkg"
if ! ls "$dest"/boot/vmlinuz-* >/dev/null 2>&1; then
    echo "qemu/prepare: downloading and extracting $kpkg"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && apt-get download "$kpkg" >/dev/null 2>&1) || {
        apt-get update -qq
        (cd "$tmp" && apt-get download "$kpkg" >/dev/null)
    }
    rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
    dpkg-deb -x "$tmp"/"$kpkg"_*.deb "$dest.tmp"
    kver=${kpkg#linux-image-}
    depmod -b "$dest.tmp" "$kver"
    rm -rf "$dest" && mv "$dest.tmp" "$dest"
fi
echo "qemu/prepare: kernel $(ls "$dest"/boot/vmlinuz-*)"
