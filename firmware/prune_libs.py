#!/usr/bin/env python3
"""Remove the shared libraries that nothing left in the image links.

    prune_libs.py ROOT

Debian's minbase pulls in libraries for apt, PAM, gnutls, Kerberos... which the
appliance never loads once apt, dpkg and perl are stripped and busybox does the
login. Every ELF file outside the library directories is a root; the DT_NEEDED
closure of the roots is kept; any other lib*.so* directly in a library directory
goes (and the symlinks that pointed to it). Libraries loaded with dlopen are
listed in KEEP. Prints what it removed and how much.
"""

from __future__ import annotations

import os
import struct
import sys

LIB_DIRS = ("usr/lib/i386-linux-gnu", "usr/lib/x86_64-linux-gnu", "usr/lib", "lib")
# dlopen'ed, never in DT_NEEDED: glibc's unwinder for pthread_cancel, NSS, the loader
KEEP_PREFIXES = ("libgcc_s.so", "libnss_", "ld-linux", "libc.so", "libm.so", "libresolv.so", "libdl.so",
                 "libpthread.so", "librt.so", "libutil.so", "libanl.so", "libthread_db.so")


def needed(path: str) -> list[str]:
    """DT_NEEDED names of an ELF file ([] if it is not one or has no dynamic section)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    if data[:4] != b"\x7fELF":
        return []
    is64 = data[4] == 2
    end = "<" if data[5] == 1 else ">"
    if is64:
        phoff, = struct.unpack_from(end + "Q", data, 0x20)
        phentsize, phnum = struct.unpack_from(end + "HH", data, 0x36)
    else:
        phoff, = struct.unpack_from(end + "I", data, 0x1C)
        phentsize, phnum = struct.unpack_from(end + "HH", data, 0x2A)
    loads, dynamic = [], None
    for i in range(phnum):
        off = phoff + i * phentsize
        if is64:
            p_type, _flags, p_offset, p_vaddr, _pa, p_filesz = struct.unpack_from(end + "IIQQQQ", data, off)
        else:
            p_type, p_offset, p_vaddr, _pa, p_filesz = struct.unpack_from(end + "IIIII", data, off)
        if p_type == 1:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == 2:
            dynamic = (p_offset, p_filesz)
    if dynamic is None:
        return []

    def file_offset(vaddr: int) -> int | None:
        for v, o, size in loads:
            if v <= vaddr < v + size:
                return o + vaddr - v
        return None

    entry = struct.Struct(end + ("qQ" if is64 else "iI"))
    strtab, names = None, []
    for off in range(dynamic[0], dynamic[0] + dynamic[1], entry.size):
        tag, val = entry.unpack_from(data, off)
        if tag == 0:
            break
        if tag == 5:
            strtab = file_offset(val)
        elif tag == 1:
            names.append(val)
    if strtab is None:
        return []
    out = []
    for n in names:
        s = strtab + n
        out.append(data[s:data.index(b"\0", s)].decode())
    return out


def main(root: str) -> int:
    lib_dirs = [os.path.join(root, d) for d in LIB_DIRS if os.path.isdir(os.path.join(root, d))]
    lib_real = {os.path.realpath(d) for d in lib_dirs}

    def candidate(path: str) -> bool:
        name = os.path.basename(path)
        return os.path.realpath(os.path.dirname(path)) in lib_real and name.startswith("lib") and ".so" in name

    def resolve(name: str) -> str | None:
        for d in lib_dirs:
            p = os.path.join(d, name)
            if os.path.exists(p):
                return os.path.realpath(p)
        return None

    roots, seen_files = [], set()
    for dirpath, dirnames, filenames in os.walk(root):
        for fn in filenames:
            p = os.path.join(dirpath, fn)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            real = os.path.realpath(p)
            if real in seen_files:
                continue
            seen_files.add(real)
            if not candidate(p):
                roots.append(real)
    keep: set[str] = set()
    todo = list(roots)
    while todo:
        path = todo.pop()
        for name in needed(path):
            lib = resolve(name)
            if lib and lib not in keep:
                keep.add(lib)
                todo.append(lib)
    removed, saved = [], 0
    for d in lib_dirs:
        for fn in sorted(os.listdir(d)):
            p = os.path.join(d, fn)
            if not candidate(p) or os.path.islink(p) or not os.path.isfile(p):
                continue
            if fn.startswith(KEEP_PREFIXES) or os.path.realpath(p) in keep:
                continue
            saved += os.path.getsize(p)
            removed.append(fn)
            os.unlink(p)
    for d in lib_dirs:
        for fn in os.listdir(d):
            p = os.path.join(d, fn)
            if os.path.islink(p) and not os.path.exists(p) and candidate(p):
                os.unlink(p)
    print(f"prune_libs: removed {len(removed)} unlinked libraries, {saved // 1024} KiB: {' '.join(removed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
