#!/bin/bash
# Build the denali firmware image from Debian's packages.
#
#   ./build.sh [--arch i386|amd64] [--out DIR] [--sign KEY | --pubkey PUB]
#
# --sign KEY: KEY is the Ed25519 private key (PEM, `openssl genpkey -algorithm ed25519`),
#   kept on the build machine only. Its public half goes into the image
#   (/usr/share/denali/upgrade.pub: what `haconf upgrade` trusts) and beside it
#   (DIR/upgrade.pub); manifest.json is signed (DIR/manifest.json.sig, 64 raw bytes).
# --pubkey PUB: put this public key in the image without signing (sign elsewhere).
#   Without either, the image has no upgrade key and its upgrades need --insecure.
#
# Outputs in DIR (default ./out):
#   denali-ARCH.img                   disk image to dd onto the CF card:
#                                       p1 FAT boot (syslinux; kernel, initramfs, project
#                                          overlay per slot in /a and /b; denali/bootstate)
#                                       p2 squashfs root of slot a (read-only)
#                                       p3 squashfs root of slot b (empty until an upgrade)
#                                       p4 ext4 config (/etc/denali, survives upgrades)
#   denali-ARCH.upgrade               the upgrade bundle `haconf upgrade` streams: a tar of
#                                       manifest.json, manifest.json.sig, vmlinuz, initrd.img,
#                                       denali-overlay.squashfs, root.squashfs (in that order)
#   denali-overlay-VERSION.squashfs   the project's own files (ha/, radvd/, pyroute2, scripts)
#   manifest.json                     version, arch, sizes and sha256 of each output and part
#
# DENALI_VERSION overrides the version from setup.py (a second build for the upgrade tests).
#
# Stages are cached under build/cache by a hash of their inputs: an unchanged input is
# reused, not rebuilt. Each stage prints its elapsed time; a failed stage names itself
# and shows the end of its log (build/logs/).
set -eEuo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ARCH=i386
OUT=$HERE/out
SUITE=bookworm
MIRROR=${DENALI_MIRROR:-http://deb.debian.org/debian}
BUILD=${DENALI_BUILD_DIR:-$HERE/build}
# bump when the base recipe (debootstrap + kernel download) changes
BASE_RECIPE=1
CFG_MB=8
SIGN_KEY=
PUB_KEY=

usage() { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) ARCH=$2; shift 2 ;;
        --arch=*) ARCH=${1#*=}; shift ;;
        --out) OUT=$2; shift 2 ;;
        --out=*) OUT=${1#*=}; shift ;;
        --sign) SIGN_KEY=$2; shift 2 ;;
        --sign=*) SIGN_KEY=${1#*=}; shift ;;
        --pubkey) PUB_KEY=$2; shift 2 ;;
        --pubkey=*) PUB_KEY=${1#*=}; shift ;;
        -h|--help) usage 0 ;;
        *) echo "build.sh: unknown argument $1" >&2; usage 2 ;;
    esac
done
case "$ARCH" in
    i386) FLAVOR=686 ;;
    amd64) FLAVOR=amd64 ;;
    *) echo "build.sh: --arch must be i386 or amd64, not $ARCH" >&2; exit 2 ;;
esac
mkdir -p "$OUT" "$BUILD/cache" "$BUILD/logs"
OUT=$(cd "$OUT" && pwd)
# the upgrade key: checked before an hour of building, not after
UPGRADE_PUB=
if [ -n "$SIGN_KEY$PUB_KEY" ]; then
    command -v openssl >/dev/null 2>&1 || { echo "build.sh: --sign/--pubkey need openssl" >&2; exit 2; }
    UPGRADE_PUB=$BUILD/upgrade.pub
    if [ -n "$SIGN_KEY" ]; then
        openssl pkey -in "$SIGN_KEY" -noout -text 2>/dev/null | head -n1 | grep -q 'ED25519 Private-Key' ||
            { echo "build.sh: --sign $SIGN_KEY is not an Ed25519 private key in PEM (openssl genpkey -algorithm ed25519)" >&2; exit 2; }
        [ -z "$(find "$SIGN_KEY" -perm /077 2>/dev/null)" ] ||
            echo "build.sh: warning: $SIGN_KEY is readable by others than its owner (chmod 600 it)" >&2
        openssl pkey -in "$SIGN_KEY" -pubout -out "$UPGRADE_PUB.tmp"
        if [ -n "$PUB_KEY" ] && ! cmp -s "$UPGRADE_PUB.tmp" <(openssl pkey -pubin -in "$PUB_KEY" -pubout 2>/dev/null); then
            rm -f "$UPGRADE_PUB.tmp"
            echo "build.sh: --pubkey $PUB_KEY is not the public half of --sign $SIGN_KEY" >&2; exit 2
        fi
    else
        openssl pkey -pubin -in "$PUB_KEY" -noout -text 2>/dev/null | head -n1 | grep -q 'ED25519 Public-Key' ||
            { echo "build.sh: --pubkey $PUB_KEY is not an Ed25519 public key in PEM" >&2; exit 2; }
        openssl pkey -pubin -in "$PUB_KEY" -pubout -out "$UPGRADE_PUB.tmp"
    fi
    mv "$UPGRADE_PUB.tmp" "$UPGRADE_PUB"
fi
VERSION=${DENALI_VERSION:-$(sed -n 's/^ *version="\([^"]*\)".*/\1/p' "$HERE/setup.py")}
[ -n "$VERSION" ] || VERSION=0.0.0
case "$VERSION" in *[!A-Za-z0-9.+~-]*) echo "build.sh: version $VERSION: only letters, digits and . + ~ -" >&2; exit 2 ;; esac

T0=$SECONDS
STAGE=start
LOG=/dev/null
trap 'rc=$?; [ "$BASH_SUBSHELL" -gt 0 ] && exit $rc; echo "build.sh: FAILED in stage \"$STAGE\" (exit $rc)${LOG:+, log $LOG}" >&2; [ -f "$LOG" ] && tail -n 25 "$LOG" | sed "s/^/  | /" >&2; exit $rc' ERR
stage() {
    STAGE=$1
    LOG=$BUILD/logs/$ARCH-$1.log
    : > "$LOG"
    printf '[%4ds] %-10s %s\n' $((SECONDS - T0)) "$1" "$2"
}
note() { printf '[%4ds] %-10s %s\n' $((SECONDS - T0)) "" "$*"; }
fail() { echo "build.sh: stage \"$STAGE\": $*" >&2; false; }
run() { "$@" >> "$LOG" 2>&1; }
# hash of files' content and mode: what a stage depends on
tree_hash() {
    for p in "$@"; do
        if [ -d "$p" ]; then
            find "$p" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | sort -z |
                xargs -0 -r stat -c '%a %n' | sed "s|$HERE/||"
            find "$p" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | sort -z |
                xargs -0 -r sha256sum | sed "s|$HERE/||"
        elif [ -f "$p" ]; then sha256sum "$p" | sed "s|$HERE/||"
        else echo "absent $p"; fi
    done | sha256sum | cut -c1-16
}
str_hash() { echo "$*" | sha256sum | cut -c1-16; }
# hash of one "# ---- NAME" section of this script: editing one stage rebuilds only it
section_hash() { sed -n "/^# -* $1\$/,/^# -* /p" "$HERE/build.sh" | sha256sum | cut -c1-16; }
list() { grep -v -e '^#' -e '^[[:space:]]*$' "$1"; }

# ---------------------------------------------------------------- build tools
stage deps "build tools on this machine"
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have debootstrap || need+=(debootstrap)
have mksquashfs || need+=(squashfs-tools)
have syslinux || need+=(syslinux)
[ -f /usr/lib/syslinux/mbr/mbr.bin ] || need+=(syslinux-common)
have mcopy || need+=(mtools)
have mkfs.vfat || need+=(dosfstools)
have sfdisk || need+=(fdisk)
have mke2fs || need+=(e2fsprogs)
have xz || need+=(xz-utils)
have cpio || need+=(cpio)
have depmod || need+=(kmod)
have python3 || need+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
# for tests/system, which boots the image
have qemu-system-i386 || need+=(qemu-system-x86)
if [ ${#need[@]} -gt 0 ]; then
    note "installing with apt: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    run apt-get update
    run apt-get install -y --no-install-recommends "${need[@]}"
fi

# ---------------------------------------------------------------- Debian base
BASE_KEY=$(str_hash "$BASE_RECIPE $ARCH $FLAVOR $SUITE $MIRROR $(list "$HERE/firmware/packages.list" | tr '\n' ' ')")
BASE=$BUILD/cache/base-$ARCH-$BASE_KEY
if [ -f "$BASE/.done" ]; then
    stage base "Debian $SUITE $ARCH root: cached ($BASE_KEY)"
else
    stage base "debootstrap --variant=minbase $SUITE $ARCH + packages.list, kernel linux-image-$FLAVOR (about 1-2 min)"
    rm -rf "$BASE.tmp"
    mkdir -p "$BASE.tmp"
    include=$(list "$HERE/firmware/packages.list" | paste -sd, -)
    run debootstrap --variant=minbase --arch "$ARCH" --include="$include" "$SUITE" "$BASE.tmp/root" "$MIRROR" ||
        fail "debootstrap failed"
    note "debootstrap done; downloading the kernel"
    kpkg=$(chroot "$BASE.tmp/root" apt-cache depends "linux-image-$FLAVOR" 2>>"$LOG" | sed -n 's/.*Depends: \(linux-image-[0-9].*\)/\1/p' | head -n1)
    [ -n "$kpkg" ] || fail "cannot resolve linux-image-$FLAVOR in the chroot's apt lists"
    run chroot "$BASE.tmp/root" sh -c "cd /tmp && apt-get download $kpkg" || fail "apt-get download $kpkg failed"
    mkdir -p "$BASE.tmp/kernel"
    run dpkg-deb -x "$BASE.tmp/root"/tmp/"$kpkg"_*.deb "$BASE.tmp/kernel"
    rm -f "$BASE.tmp/root"/tmp/*.deb
    KVER=$(ls "$BASE.tmp/kernel/lib/modules")
    run depmod -b "$BASE.tmp/kernel" "$KVER"
    touch "$BASE.tmp/.done"
    mv "$BASE.tmp" "$BASE"
fi
KVER=$(ls "$BASE/kernel/lib/modules")
KROOT=$BASE/kernel
note "kernel $KVER"

# drop the cache entries of one kind this build no longer uses (the base is kept)
prune_cache() {  # kind-arch current-dir
    local d
    for d in "$BUILD/cache/$1"-*; do
        [ -d "$d" ] && [ "$d" != "$2" ] && rm -rf "$d"
    done
    return 0
}

# module names -> .ko paths relative to lib/modules/KVER, dependencies first
resolve_modules() {
    local m out
    # a line "name arch..." is for those architectures only
    for m in $(list "$1" | awk -v a="$ARCH" 'NF == 1 || index(" " $0 " ", " " a " ") {print $1}'); do
        out=$(modprobe -d "$KROOT" -S "$KVER" --show-depends "$m" 2>&1) || fail "kernel module $m: $out"
        echo "$out" | awk '$1 == "insmod" {print $2}'
    done | sed "s|^$KROOT/lib/modules/$KVER/||" | awk '!seen[$0]++'
}

# ---------------------------------------------------------------- pyroute2 wheel
PYR_REQ=$(sed -n 's/^ *"\(pyroute2[^"]*\)".*/\1/p' "$HERE/setup.py")
[ -n "$PYR_REQ" ] || PYR_REQ=pyroute2
WHEELS=$BUILD/cache/wheels-$(str_hash "$PYR_REQ")
if ls "$WHEELS"/pyroute2-*.whl >/dev/null 2>&1; then
    stage wheels "$PYR_REQ: cached"
else
    stage wheels "pip download --no-deps $PYR_REQ"
    rm -rf "$WHEELS.tmp"
    run python3 -m pip download -q --no-deps --only-binary=:all: -d "$WHEELS.tmp" "$PYR_REQ" ||
        fail "pip download $PYR_REQ failed"
    mv "$WHEELS.tmp" "$WHEELS"
fi
WHEEL=$(ls "$WHEELS"/pyroute2-*.whl | head -n1)

# ---------------------------------------------------------------- root squashfs
ROOT_KEY=$(str_hash "$BASE_KEY $(tree_hash "$HERE/firmware/strip.list" "$HERE/firmware/modules.list" "$HERE/firmware/prune_libs.py" \
    "$HERE/firmware/denali-slot" "$HERE/rootfs-overlay" "$HERE/init.d") $(section_hash 'root squashfs')")
ROOTC=$BUILD/cache/root-$ARCH-$ROOT_KEY
if [ -f "$ROOTC/.done" ]; then
    stage root "root squashfs: cached ($ROOT_KEY)"
else
    stage root "root: copy, strip, busybox init, modules, overlay, mksquashfs"
    rm -rf "$ROOTC.tmp"
    mkdir -p "$ROOTC.tmp"
    R=$ROOTC.tmp/root
    cp -a "$BASE/root" "$R"
    # keep UTC as the only time zone
    cp --remove-destination "$R/usr/share/zoneinfo/Etc/UTC" "$R/etc/localtime"
    rm -rf "$R/usr/share/zoneinfo"
    (cd "$R" && list "$HERE/firmware/strip.list" | while read -r g; do
        for p in $g; do [ -e "$p" ] || [ -L "$p" ] && rm -rf "./$p"; done
    done) || true
    # python caches of files no longer there
    find "$R/usr/lib/python3"* -name '__pycache__' -type d | while read -r d; do
        for pyc in "$d"/*.pyc; do
            [ -e "$pyc" ] || continue
            b=${pyc##*/}; b=${b%%.*}
            [ -e "${d%/__pycache__}/$b.py" ] || rm -f "$pyc"
        done
    done
    run python3 "$HERE/firmware/prune_libs.py" "$R"
    note "$(grep -o 'removed [0-9]* unlinked libraries, [0-9]* KiB' "$LOG")"
    # busybox: init, getty, login, syslog; its applets fill in only what Debian lacks
    # (the real ip, ping, mount... stay)
    for a in $(chroot "$R" /bin/busybox --list-full); do
        [ -e "$R/$a" ] || [ -L "$R/$a" ] || ln -s /bin/busybox "$R/$a"
    done
    for a in usr/bin/login sbin/init sbin/getty; do ln -sf /bin/busybox "$R/$a"; done
    sed -i 's/^root:[^:]*:/root::/' "$R/etc/shadow"
    # kernel modules: only the listed ones and their dependencies
    rm -rf "$R/lib/modules"
    mkdir -p "$R/lib/modules/$KVER"
    resolve_modules "$HERE/firmware/modules.list" > "$ROOTC.tmp/modules.txt"
    (cd "$KROOT/lib/modules/$KVER" && cp --parents $(cat "$ROOTC.tmp/modules.txt") modules.order modules.builtin* "$R/lib/modules/$KVER/")
    run depmod -b "$R" "$KVER"
    note "$(wc -l < "$ROOTC.tmp/modules.txt") kernel modules"
    # the overlay and the init scripts
    (cd "$HERE/rootfs-overlay" && find . -type d | while read -r d; do mkdir -p "$R/$d"; done &&
        find . -type f ! -name 'README*' ! -name '.keep' | while read -r f; do cp "$f" "$R/$f"; done)
    mkdir -p "$R/etc/init.d" "$R/media/denali" "$R/etc/denali"
    for f in "$HERE"/init.d/*; do
        case "${f##*/}" in README*) continue ;; esac
        install -m 0755 "$f" "$R/etc/init.d/"
    done
    install -m 0755 "$HERE/firmware/denali-slot" "$R/usr/sbin/denali-slot"
    # zstd, not xz: at 64 MB the page cache is small and code pages are read back from
    # the squashfs while the board serves; xz costs the CPU 12 times more per read-back
    # (unsquashfs here: 2.4 s against 0.2 s of CPU) for 12% less space
    run mksquashfs "$R" "$ROOTC.tmp/root.squashfs" -noappend -comp zstd -Xcompression-level 19 -all-root -no-progress ||
        fail "mksquashfs of the root failed"
    # what takes the space, for the manifest
    (cd "$R" && du -sk usr/lib/python3.11 usr/lib/python3 lib/modules usr/lib/*-linux-gnu usr/bin usr/sbin \
        usr/share var etc 2>/dev/null) > "$ROOTC.tmp/du.txt"
    du -sk "$R" | cut -f1 > "$ROOTC.tmp/root-kb.txt"
    rm -rf "$R"
    touch "$ROOTC.tmp/.done"
    rm -rf "$ROOTC"
    mv "$ROOTC.tmp" "$ROOTC"
fi
prune_cache "root-$ARCH" "$ROOTC"
note "root.squashfs $(du -h "$ROOTC/root.squashfs" | cut -f1) (unpacked $(($(cat "$ROOTC/root-kb.txt") / 1024)) MiB)"

# ---------------------------------------------------------------- project overlay
APP_KEY=$(str_hash "$BASE_KEY $VERSION $(tree_hash "$HERE/ha" "$HERE/radvd" "$HERE/setup.py") $(section_hash 'project overlay') ${WHEEL##*/} ${UPGRADE_PUB:+$(tree_hash "$UPGRADE_PUB")}")
APPC=$BUILD/cache/app-$ARCH-$APP_KEY
if [ -f "$APPC/.done" ]; then
    stage overlay "project overlay: cached ($APP_KEY)"
else
    stage overlay "project overlay: ha/ (without ha/lab), radvd/, pyroute2, console scripts, compiled in the image's python"
    rm -rf "$APPC.tmp"
    mkdir -p "$APPC.tmp"
    A=$APPC.tmp/app
    SP=$A/usr/lib/python3/dist-packages
    mkdir -p "$SP" "$A/usr/bin" "$A/usr/share/denali"
    for pkg in ha radvd; do
        [ -d "$HERE/$pkg" ] || continue
        (cd "$HERE" && find "$pkg" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' ! -path 'ha/lab/*' \( -name '*.py' -o -name '*.spec' -o -name '*.conf' -o -name '*.json' \) |
            while read -r f; do mkdir -p "$SP/$(dirname "$f")"; cp "$f" "$SP/$f"; done)
    done
    python3 -m zipfile -e "$WHEEL" "$SP"
    rm -rf "$SP"/pyroute2*.dist-info/RECORD
    # console scripts, as setup.py's entry points, for the modules that exist yet
    script() {  # name module
        [ -f "$SP/${2//.//}.py" ] || { note "no ${2}: /usr/bin/$1 not installed"; return 0; }
        printf '#!/usr/bin/python3 -B\nimport sys\nfrom %s import main\nsys.exit(main())\n' "$2" > "$A/usr/bin/$1"
        chmod 755 "$A/usr/bin/$1"
    }
    script denalid ha.daemon.main
    script haconf ha.haconf.quick   # the read-only questions without click; the rest: ha.haconf.cli
    echo "$VERSION" > "$A/usr/share/denali/VERSION"
    # the key haconf upgrade trusts: the public half only, on a read-only layer that the
    # next upgrade replaces (so a new image can carry a new key)
    if [ -n "$UPGRADE_PUB" ]; then
        install -m 0644 "$UPGRADE_PUB" "$A/usr/share/denali/upgrade.pub"
        note "upgrade key in the image: /usr/share/denali/upgrade.pub"
    fi
    # byte-compile with the image's own interpreter: the root is read-only at run time.
    # unchecked-hash: the interpreter loads each .pyc without a stat of its source or a
    # comparison (the squashfs cannot change under it; an upgrade replaces the whole layer)
    RB=$BASE/root
    mkdir -p "$RB/tmp/denali-app"
    cp -a "$SP/." "$RB/tmp/denali-app/"
    run chroot "$RB" python3 -m compileall -q -j 2 --invalidation-mode unchecked-hash /tmp/denali-app || fail "byte-compiling the project failed"
    cp -a "$RB/tmp/denali-app/." "$SP/"
    rm -rf "$RB/tmp/denali-app"
    run mksquashfs "$A" "$APPC.tmp/overlay.squashfs" -noappend -comp zstd -Xcompression-level 19 -all-root -no-progress ||
        fail "mksquashfs of the project overlay failed"
    du -sk "$A" | cut -f1 > "$APPC.tmp/app-kb.txt"
    rm -rf "$A"
    touch "$APPC.tmp/.done"
    rm -rf "$APPC"
    mv "$APPC.tmp" "$APPC"
fi
prune_cache "app-$ARCH" "$APPC"
note "overlay.squashfs $(du -h "$APPC/overlay.squashfs" | cut -f1)"

# ---------------------------------------------------------------- initramfs
INITRD_KEY=$(str_hash "$BASE_KEY $(tree_hash "$HERE/firmware/initramfs-init" "$HERE/firmware/initramfs.modules" "$HERE/firmware/denali-slot") $(section_hash initramfs)")
INITRDC=$BUILD/cache/initrd-$ARCH-$INITRD_KEY
if [ -f "$INITRDC/.done" ]; then
    stage initramfs "busybox initramfs: cached ($INITRD_KEY)"
else
    stage initramfs "busybox initramfs (static busybox + storage/filesystem modules, xz with a 1 MiB dictionary)"
    rm -rf "$INITRDC.tmp"
    I=$INITRDC.tmp/tree
    mkdir -p "$I"/{bin,sbin,dev,proc,sys,mnt,newroot,lib/modules}
    cp "$BASE/root/bin/busybox" "$I/bin/busybox"
    for a in $(chroot "$BASE/root" /bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$I/bin/$a"; done
    install -m 0755 "$HERE/firmware/initramfs-init" "$I/init"
    install -m 0755 "$HERE/firmware/denali-slot" "$I/bin/denali-slot"
    resolve_modules "$HERE/firmware/initramfs.modules" | while read -r m; do
        cp "$KROOT/lib/modules/$KVER/$m" "$I/lib/modules/"
        echo "${m##*/}"
    done > "$I/lib/modules/order"
    mknod -m 600 "$I/dev/console" c 5 1
    (cd "$I" && find . | sort | cpio -o -H newc --owner 0:0 2>>"$LOG") |
        xz --check=crc32 --lzma2=preset=9,dict=1MiB > "$INITRDC.tmp/initrd.img"
    rm -rf "$I"
    touch "$INITRDC.tmp/.done"
    rm -rf "$INITRDC"
    mv "$INITRDC.tmp" "$INITRDC"
fi
prune_cache "initrd-$ARCH" "$INITRDC"
note "initrd.img $(du -h "$INITRDC/initrd.img" | cut -f1)"

# ---------------------------------------------------------------- disk image
IMG=$OUT/denali-$ARCH.img
OVL=$OUT/denali-overlay-$VERSION.squashfs
BUNDLE=$OUT/denali-$ARCH.upgrade
IMG_KEY=$(str_hash "$ROOT_KEY $APP_KEY $INITRD_KEY $VERSION $(tree_hash "$HERE/firmware/syslinux.cfg") $(section_hash 'disk image') $CFG_MB")
# the cached parts match what the kept image's manifest says (a pruned cache entry that
# was built again is the same input, but squashfs is not byte for byte reproducible)
parts_match() {
    python3 - "$OUT/manifest-$ARCH.json" "vmlinuz=$KROOT/boot/vmlinuz-$KVER" "initrd.img=$INITRDC/initrd.img" \
        "denali-overlay.squashfs=$APPC/overlay.squashfs" "root.squashfs=$ROOTC/root.squashfs" <<'EOF'
import hashlib, json, sys
contents = json.load(open(sys.argv[1])).get("contents", {})
for arg in sys.argv[2:]:
    name, path = arg.split("=", 1)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if contents.get(name, {}).get("sha256") != h.hexdigest():
        sys.exit(1)
EOF
}
if [ -f "$IMG" ] && [ -f "$OUT/manifest-$ARCH.json" ] && [ "$(cat "$OUT/.denali-$ARCH.key" 2>/dev/null)" = "$IMG_KEY" ] && parts_match; then
    stage image "$IMG: inputs unchanged, kept"
    cp "$OUT/manifest-$ARCH.json" "$OUT/manifest.json"
else
    stage image "disk image: FAT boot (slots a, b) + squashfs root a + root b (empty) + ext4 config"
    W=$BUILD/work-$ARCH
    rm -rf "$W"
    mkdir -p "$W"
    mib() { echo $(( ($1 + 1048575) / 1048576 )); }
    ksize=$(stat -c %s "$KROOT/boot/vmlinuz-$KVER")
    isize=$(stat -c %s "$INITRDC/initrd.img")
    osize=$(stat -c %s "$APPC/overlay.squashfs")
    # boot: kernel, initramfs and project overlay for each of the two slots, plus room
    # for the next release to grow (a quarter more) and syslinux
    BOOT_MB=$(( $(mib $(( (ksize + isize + osize) * 5 / 2 ))) + 2 ))
    # each root slot: this root and a sixth more, so that later releases still fit
    rsize=$(stat -c %s "$ROOTC/root.squashfs")
    SLOT_MB=$(( $(mib $(( rsize * 7 / 6 ))) ))
    # the FAT's volume id names the card on the kernel command line (denali.boot=UUID=...)
    VOLID=$(od -An -N4 -tx4 /dev/urandom | tr -d ' ' | tr a-f A-F)
    run mkfs.vfat -n DENALIBOOT -i "$VOLID" -C "$W/boot.part" $((BOOT_MB * 1024))
    run syslinux --install "$W/boot.part" || fail "syslinux --install failed"
    export MTOOLS_SKIP_CHECK=1
    sed "s/@BOOT@/UUID=${VOLID:0:4}-${VOLID:4:4}/g" "$HERE/firmware/syslinux.cfg" > "$W/syslinux.in"
    sed 's/@SLOT@/a/g' "$W/syslinux.in" > "$W/syslinux.cfg"
    printf 'active=a\nprevious=\ntentative=0\ntries=0\nfailed=\n' > "$W/bootstate"
    echo "$VERSION $KVER" > "$W/VERSION"
    run mmd -i "$W/boot.part" ::/a ::/b ::/denali
    run mcopy -i "$W/boot.part" "$W/syslinux.cfg" ::/syslinux.cfg
    run mcopy -i "$W/boot.part" "$W/syslinux.in" ::/denali/syslinux.in
    run mcopy -i "$W/boot.part" "$W/bootstate" ::/denali/bootstate
    run mcopy -i "$W/boot.part" "$KROOT/boot/vmlinuz-$KVER" ::/a/vmlinuz
    run mcopy -i "$W/boot.part" "$INITRDC/initrd.img" ::/a/initrd.img
    run mcopy -i "$W/boot.part" "$APPC/overlay.squashfs" ::/a/denali-overlay.squashfs
    run mcopy -i "$W/boot.part" "$W/VERSION" ::/a/VERSION
    run mke2fs -q -t ext4 -L DENALICFG -m 0 -N 128 -J size=1 "$W/cfg.part" "${CFG_MB}M"
    # /etc/denali holds keys (denali.conf, root.passwd): its root directory is root's only
    run debugfs -w -R "sif / mode 040700" "$W/cfg.part"
    # 1 MiB aligned partitions; built as files and dd'ed in (no loop partitions needed).
    # Slot b stays a hole: the image file is sparse, and a card gets zeroes there.
    P1=1; P2=$((P1 + BOOT_MB)); P3=$((P2 + SLOT_MB)); P4=$((P3 + SLOT_MB)); END=$((P4 + CFG_MB))
    rm -f "$W/disk.img"
    truncate -s "$((END * 1048576))" "$W/disk.img"
    printf 'label: dos\nunit: sectors\n%s,%s,e,*\n%s,%s,83\n%s,%s,83\n%s,%s,83\n' \
        $((P1 * 2048)) $((BOOT_MB * 2048)) $((P2 * 2048)) $((SLOT_MB * 2048)) $((P3 * 2048)) $((SLOT_MB * 2048)) \
        $((P4 * 2048)) $((CFG_MB * 2048)) |
        run sfdisk --no-reread --no-tell-kernel "$W/disk.img"
    run dd if=/usr/lib/syslinux/mbr/mbr.bin of="$W/disk.img" bs=440 count=1 conv=notrunc
    run dd if="$W/boot.part" of="$W/disk.img" bs=1M seek=$P1 conv=notrunc
    run dd if="$ROOTC/root.squashfs" of="$W/disk.img" bs=1M seek=$P2 conv=notrunc
    run dd if="$W/cfg.part" of="$W/disk.img" bs=1M seek=$P4 conv=notrunc
    mv "$W/disk.img" "$IMG"
    cp "$APPC/overlay.squashfs" "$OVL"
    stage manifest "manifest.json"
    python3 - "$OUT" "$ARCH" "$VERSION" "$KVER" "$BOOT_MB" "$SLOT_MB" "$CFG_MB" "$ROOTC" "$APPC" "$INITRDC" \
        "$KROOT/boot/vmlinuz-$KVER" "$(git -C "$HERE" describe --always --dirty 2>/dev/null || echo unknown)" <<'EOF' >> "$LOG" 2>&1
import hashlib, json, os, sys, time
out, arch, version, kver, boot_mb, slot_mb, cfg_mb, rootc, appc, initrdc, vmlinuz, commit = sys.argv[1:]
def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
files = {}
for name in (f"denali-{arch}.img", f"denali-overlay-{version}.squashfs"):
    p = os.path.join(out, name)
    files[name] = {"size": os.path.getsize(p), "sha256": digest(p)}
# the parts, in the order the upgrade bundle carries them (small files first, the root last)
parts = {"vmlinuz": vmlinuz, "initrd.img": os.path.join(initrdc, "initrd.img"),
         "denali-overlay.squashfs": os.path.join(appc, "overlay.squashfs"),
         "root.squashfs": os.path.join(rootc, "root.squashfs")}
contents = {k: {"size": os.path.getsize(p), "sha256": digest(p)} for k, p in parts.items()}
du = {}
for line in open(os.path.join(rootc, "du.txt")):
    kb, path = line.split("\t", 1)
    du[path.strip()] = int(kb) * 1024
manifest = {
    "name": "denali", "version": version, "arch": arch, "kernel": kver, "commit": commit,
    "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "files": files,
    "partitions": [
        {"n": 1, "fs": "vfat", "mib": int(boot_mb), "holds": "syslinux, denali/bootstate; a/ and b/: vmlinuz, initrd.img, denali-overlay.squashfs"},
        {"n": 2, "fs": "squashfs", "mib": int(slot_mb), "holds": "root of slot a (read-only)"},
        {"n": 3, "fs": "squashfs", "mib": int(slot_mb), "holds": "root of slot b (read-only; empty in a new image)"},
        {"n": 4, "fs": "ext4", "mib": int(cfg_mb), "holds": "/etc/denali (kept across upgrades)"},
    ],
    "bundle": list(parts),
    "contents": contents,
    "root_unpacked_bytes": int(open(os.path.join(rootc, "root-kb.txt")).read()) * 1024,
    "root_unpacked_by_dir": du,
}
with open(os.path.join(out, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=2)
    f.write("\n")
EOF
    # manifest.json describes the last build; manifest-ARCH.json stays per architecture
    cp "$OUT/manifest.json" "$OUT/manifest-$ARCH.json"
    echo "$IMG_KEY" > "$OUT/.denali-$ARCH.key"
    rm -rf "$W"
fi
# ---------------------------------------------------------------- signature
STAGE=sign
rm -f "$OUT/manifest.json.sig" "$OUT/manifest-$ARCH.json.sig" "$OUT/upgrade.pub"
if [ -n "$UPGRADE_PUB" ]; then
    cp "$UPGRADE_PUB" "$OUT/upgrade.pub"
fi
if [ -n "$SIGN_KEY" ]; then
    stage sign "Ed25519 signature of manifest.json with $SIGN_KEY"
    for m in manifest.json "manifest-$ARCH.json"; do
        run openssl pkeyutl -sign -rawin -inkey "$SIGN_KEY" -in "$OUT/$m" -out "$OUT/$m.sig" ||
            fail "openssl could not sign $m"
        run openssl pkeyutl -verify -rawin -pubin -inkey "$UPGRADE_PUB" -in "$OUT/$m" -sigfile "$OUT/$m.sig" ||
            fail "the signature of $m does not verify"
    done
    note "manifest.json.sig, upgrade.pub (fingerprint $(openssl pkey -pubin -in "$UPGRADE_PUB" -outform DER | tail -c 32 | sha256sum | cut -c1-16))"
elif [ -z "$UPGRADE_PUB" ]; then
    note "unsigned: no upgrade key in the image; haconf upgrade will need --insecure (./build.sh --sign KEY)"
fi
# ---------------------------------------------------------------- upgrade bundle
stage bundle "$BUNDLE: manifest, signature, then the parts as the manifest lists them"
python3 - "$OUT/manifest-$ARCH.json" "$BUNDLE" "$KROOT/boot/vmlinuz-$KVER" "$INITRDC/initrd.img" \
    "$APPC/overlay.squashfs" "$ROOTC/root.squashfs" <<'EOF' >> "$LOG" 2>&1
import json, os, sys, tarfile
manifest, bundle, *paths = sys.argv[1:]
order = json.load(open(manifest))["bundle"]
members = [("manifest.json", manifest)]
if os.path.exists(manifest + ".sig"):
    members.append(("manifest.json.sig", manifest + ".sig"))
members += list(zip(order, paths))
with tarfile.open(bundle + ".tmp", "w", format=tarfile.USTAR_FORMAT) as tar:
    for name, path in members:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = os.path.getsize(path), 0o644, int(os.path.getmtime(manifest))
        with open(path, "rb") as f:
            tar.addfile(info, f)
os.replace(bundle + ".tmp", bundle)
EOF
trap - ERR
size=$(stat -c %s "$IMG")
printf '[%4ds] done       %s (%d MiB = %d bytes, %d MiB on disk: slot b is a hole), %s (%d MiB), %s, manifest.json\n' \
    $((SECONDS - T0)) "$IMG" $((size / 1048576)) "$size" $(( $(du -k "$IMG" | cut -f1) / 1024 )) \
    "${BUNDLE##*/}" $(( $(stat -c %s "$BUNDLE") / 1048576 )) "${OVL##*/}"
if [ "$size" -gt $((128 * 1048576)) ]; then echo "build.sh: warning: the image does not fit a 128 MB card" >&2; fi
