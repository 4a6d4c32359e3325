"""Boot Debian's stock kernel in qemu and run one script on the host's own files.

The guest is the host seen read-only: a tiny busybox initramfs loads virtio and
9p, mounts the host's / over virtio-9p (read-only), puts tmpfs on /tmp, /run and
/var, chroots into it and runs one shell script. So the guest runs the host's
python3, hostapd and iw, with the stock kernel's modules (mac80211_hwsim) that
this host kernel lacks. The script's output goes to the serial console between
markers; the harness parses it and the guest powers off.

    from tests.qemu.harness import find_kernel, run_guest
    kernel = find_kernel()          # None: the reason is in kernel_missing_reason()
    result = run_guest(kernel, "echo hello", timeout=300)
    result.output, result.rc, result.json()

The test modules that run one guest script and assert parts of its report use
missing_tools(), guest_report() and step(); the guest scripts themselves use
the second half of this file (REPORT, mark, sh, wait_for, guest_main), which
imports nothing the host's root lacks.

The kernel comes from tests/qemu/prepare.sh, which extracts Debian's
linux-image-amd64 under /opt/denali-qemu/<package>/ (not /var: the guest hides
/var under a tmpfs). DENALI_QEMU_KERNEL_ROOT points elsewhere.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

KERNEL_BASE = os.environ.get("DENALI_QEMU_BASE", "/opt/denali-qemu")
QEMU = "qemu-system-x86_64"
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
BEGIN = "DENALI-GUEST-BEGIN"
END = "DENALI-GUEST-END"
EXIT = "DENALI-GUEST-EXIT"
JSON_MARK = "DENALI-JSON "
# virtio-9p for the root, in load order once dependencies are added
BOOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p")


@dataclass
class Kernel:
    root: str       # the extracted package: root/boot/vmlinuz-*, root/lib/modules/<ver>
    version: str
    vmlinuz: str

    @property
    def modules(self) -> str:
        return os.path.join(self.root, "lib", "modules", self.version)


@dataclass
class GuestResult:
    rc: int | None      # the script's exit status; None: it never finished
    output: str         # what the script printed (between the markers)
    console: str        # the whole serial console
    seconds: float

    def json(self) -> dict | None:
        """The last line of the form 'DENALI-JSON {...}' the script printed."""
        found = None
        for line in self.output.splitlines():
            if line.startswith(JSON_MARK):
                found = line[len(JSON_MARK):]
        return json.loads(found) if found is not None else None


def _kernel_roots() -> list[str]:
    env = os.environ.get("DENALI_QEMU_KERNEL_ROOT")
    if env:
        return [env]
    return sorted(glob.glob(os.path.join(KERNEL_BASE, "linux-image-*")), reverse=True)


def find_kernel() -> Kernel | None:
    for root in _kernel_roots():
        images = sorted(glob.glob(os.path.join(root, "boot", "vmlinuz-*")))
        if not images:
            continue
        version = os.path.basename(images[-1])[len("vmlinuz-"):]
        k = Kernel(root, version, images[-1])
        if os.path.isdir(k.modules):
            return k
    return None


def missing_reason() -> str | None:
    """Why the guest cannot run here, or None when it can."""
    if shutil.which(QEMU) is None:
        return f"{QEMU} is not installed (tests/qemu/prepare.sh installs it)"
    if find_kernel() is None:
        return (f"no extracted Debian kernel under {KERNEL_BASE} "
                "(tests/qemu/prepare.sh downloads linux-image-amd64)")
    if not any(os.path.exists(b) for b in BUSYBOX_CANDIDATES):
        return "busybox is not installed (package busybox-static)"
    return None


def _ensure_depmod(kernel: Kernel) -> None:
    if not os.path.exists(os.path.join(kernel.modules, "modules.dep")):
        subprocess.run(["depmod", "-b", kernel.root, kernel.version], check=True)


def module_load_order(kernel: Kernel, names) -> list[str]:
    """Relative .ko paths of *names* and their dependencies, dependencies first."""
    _ensure_depmod(kernel)
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    with open(os.path.join(kernel.modules, "modules.dep")) as f:
        for line in f:
            path, _, rest = line.partition(":")
            deps[path] = rest.split()
            base = os.path.basename(path).split(".ko")[0]
            by_name[base] = path
            by_name[base.replace("-", "_")] = path
    order: list[str] = []

    def visit(path):
        if path in order:
            return
        for d in reversed(deps.get(path, [])):  # modprobe loads the list from its end
            visit(d)
        order.append(path)

    for n in names:
        if n not in by_name:
            raise FileNotFoundError(f"module {n} not in {kernel.modules}/modules.dep")
        visit(by_name[n])
    return order


INIT = r"""#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
say() { echo "guest-init: $*"; }
for m in $(cat /boot-modules); do insmod "/mods/$m" || say "insmod $m failed"; done
mkdir -p /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostroot /newroot \
    || { say "cannot mount the host root over 9p"; echo "@EXIT@ 97"; poweroff -f; }
# the source tree may live under /tmp or /var, which the tmpfs below hide: keep a view
mkdir -p /src
[ -n "@SRC@" ] && mount --bind "/newroot@SRC@" /src
for d in tmp run var; do mount -t tmpfs -o mode=1777 tmpfs /newroot/$d; done
mkdir -p /newroot/run/src
[ -n "@SRC@" ] && mount --bind /src /newroot/run/src
mkdir -p /newroot/var/tmp /newroot/var/lib /newroot/var/log /newroot/var/cache /newroot/run/job
ln -s /run /newroot/var/run
ln -s /run/lock /newroot/var/lock
mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs tmpfs /newroot/dev/shm
mount -t debugfs debugfs /newroot/sys/kernel/debug 2>/dev/null
cp /job/* /newroot/run/job/
# modules the kernel asks for itself (crypto for CCMP...) come from the extracted package
echo /modprobe-helper > /proc/sys/kernel/modprobe
echo "@BEGIN@"
chroot /newroot /usr/bin/env -i HOME=/root TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /bin/sh /run/job/run.sh
rc=$?
echo "@END@"
echo "@EXIT@ $rc"
sync
poweroff -f
"""

MODPROBE_HELPER = """#!/bin/sh
exec /bin/chroot /newroot /sbin/modprobe -d @KROOT@ "$@"
"""


def _cpio_newc(entries) -> bytes:
    """A newc cpio archive from (name, mode, data_or_linktarget) tuples."""
    out = bytearray()
    ino = 1
    for name, mode, data in list(entries) + [("TRAILER!!!", 0, b"")]:
        if isinstance(data, str):
            data = data.encode()
        namez = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08x}" for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(namez), 0))
        out += hdr.encode() + namez
        out += b"\0" * ((4 - len(out) % 4) % 4)
        out += data
        out += b"\0" * ((4 - len(out) % 4) % 4)
        ino += 1
    return bytes(out)


def build_initramfs(kernel: Kernel, script: str, files: dict | None = None,
                    src: str | None = None) -> bytes:
    busybox = next(b for b in BUSYBOX_CANDIDATES if os.path.exists(b))
    with open(busybox, "rb") as f:
        bb = f.read()
    d, r, x, l = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o644, stat.S_IFREG | 0o755, stat.S_IFLNK | 0o777
    entries = [(p, d, b"") for p in ("bin", "dev", "proc", "sys", "mods", "job", "newroot",
                                      "lib", "lib/firmware")]
    entries.append(("bin/busybox", x, bb))
    for applet in ("sh", "mount", "[", "insmod", "mkdir", "cp", "ln", "cat", "echo", "chroot",
                   "poweroff", "sync", "sleep"):
        entries.append((f"bin/{applet}", l, "busybox"))
    order = module_load_order(kernel, BOOT_MODULES)
    for rel in order:
        with open(os.path.join(kernel.modules, rel), "rb") as f:
            entries.append((f"mods/{os.path.basename(rel)}", r, f.read()))
    entries.append(("boot-modules", r, "\n".join(os.path.basename(p) for p in order) + "\n"))
    # cfg80211 reads regulatory.db through the firmware loader, which looks in the
    # initramfs (the init namespace's root), not in the chroot
    for fw in ("regulatory.db", "regulatory.db.p7s"):
        fw_path = os.path.join("/lib/firmware", fw)
        if os.path.exists(fw_path):
            with open(os.path.realpath(fw_path), "rb") as f:
                entries.append((f"lib/firmware/{fw}", r, f.read()))
    init = (INIT.replace("@SRC@", os.path.abspath(src) if src else "")
            .replace("@BEGIN@", BEGIN).replace("@END@", END).replace("@EXIT@", EXIT))
    entries.append(("init", x, init))
    entries.append(("modprobe-helper", x, MODPROBE_HELPER.replace("@KROOT@", kernel.root)))
    entries.append(("job/run.sh", x, script))
    for name, data in (files or {}).items():
        entries.append((f"job/{name}", r, data))
    return _cpio_newc(entries)


def run_guest(kernel: Kernel, script: str, *, files: dict | None = None, timeout: float = 600,
              memory_mb: int = 512, log_path: str | None = None,
              src: str | None = None) -> GuestResult:
    """Boot, run *script* (sh, in the chroot of the host's root) and power off.

    *files* land in /run/job/ beside the script; the host folder *src* (the
    source tree) is seen at /run/src, wherever it lives on the host. The
    serial console is written to *log_path* (a temporary file if None) as it comes.
    """
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="denali-qemu-") as tmp:
        initrd = os.path.join(tmp, "initrd.cpio")
        with open(initrd, "wb") as f:
            f.write(build_initramfs(kernel, script, files, src))
        console = log_path or os.path.join(tmp, "console.log")
        cmd = [QEMU, "-accel", "tcg", "-m", str(memory_mb), "-smp", "1",
               "-display", "none", "-monitor", "none", "-no-reboot",
               "-serial", f"file:{console}", "-nic", "none",
               "-kernel", kernel.vmlinuz, "-initrd", initrd,
               "-append", "console=ttyS0 loglevel=4 panic=-1 rdinit=/init",
               "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,"
                          "readonly=on,multidevs=remap"]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        try:
            qemu_out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            qemu_out, _ = proc.communicate()
        try:
            with open(console, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except FileNotFoundError:
            text = ""
        if proc.returncode not in (0, None) or not text:
            text += "\n[qemu] " + qemu_out.decode(errors="replace")
    text = text.replace("\r\n", "\n")
    rc = None
    m = re.search(rf"^{EXIT} (\d+)$", text, re.M)
    if m:
        rc = int(m.group(1))
    out = text
    if BEGIN in text:
        out = text.split(BEGIN, 1)[1]
        out = out.split(END, 1)[0]
    return GuestResult(rc, out, text, time.monotonic() - t0)


# ----------------------------------------------------- a test module's side

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def missing_tools(tools=(), *, regdb: bool = False) -> str | None:
    """Why a guest that runs *tools* (and denali's pyroute2) cannot run here, or None."""
    why = missing_reason()
    if why:
        return why
    for tool in tools:
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            return f"{tool} is not installed (tests/qemu/prepare.sh installs it)"
    if regdb and not any(os.path.exists(p) for p in ("/lib/firmware/regulatory.db",
                                                     "/usr/lib/firmware/regulatory.db")):
        return "wireless-regdb is not installed: no country rules for 5 GHz"
    try:
        import pyroute2  # noqa: F401
    except ImportError:
        return "pyroute2 is not installed for this python"
    return None


def guest_report(guest: str, timeout: float, args: str = "", kroot: bool = True, *,
                 files: dict | None = None, memory_mb: int = 512) -> tuple[dict, GuestResult]:
    """Boot once and run tests/qemu/*guest* (a script ending in guest_main or
    printing one DENALI-JSON line) with --repo /run/src, --kroot KROOT (the
    kernel package's root, for modprobe -d) unless not *kroot*, and *args*;
    its report, or the test fails with the console's tail. *files* land in
    /run/job/; the repo is on the guest's PYTHONPATH. DENALI_QEMU_LOG keeps
    the serial console."""
    import pytest
    kernel = find_kernel()
    script = ("export PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=/run/src\n"
              f"exec {sys.executable} /run/src/tests/qemu/{guest} --repo /run/src "
              + (f"--kroot {kernel.root} " if kroot else "") + f"{args} 2>&1\n")
    res = run_guest(kernel, script, files=files, timeout=timeout, memory_mb=memory_mb,
                    src=REPO, log_path=os.environ.get("DENALI_QEMU_LOG"))
    data = res.json()
    if data is None:
        pytest.fail(f"the guest reported nothing (rc {res.rc}); console tail:\n"
                    + res.console[-4000:])
    print(f"\nguest: {res.seconds:.1f} s end to end, checks {data.get('seconds')} s")
    return data, res


def step(report: dict, name: str) -> dict:
    """One step the guest marked; the guest's errors fail the test first."""
    assert not report["errors"], "\n".join(report["errors"])
    assert name in report["steps"], f"the guest never reached {name}: {sorted(report['steps'])}"
    return report["steps"][name]


# ------------------------------------------------------------ the guest's side
# A guest script records what it sees and decides nothing: each step goes in
# REPORT["steps"] by mark(), failures in REPORT["errors"], and guest_main prints
# the whole as one DENALI-JSON line however main ended.

REPORT: dict = {"steps": {}, "errors": []}
T0 = time.monotonic()


def mark(name, **kw):
    kw["t"] = round(time.monotonic() - T0, 1)
    REPORT["steps"][name] = kw
    print(f"guest: {name}: {json.dumps(kw)[:400]}", file=sys.stderr, flush=True)


async def sh(*cmd, ns=None, timeout=30):
    """(exit status, stdout+stderr) of *cmd*, in namespace *ns* if given; -1 on timeout."""
    import asyncio
    if ns:
        cmd = ("ip", "netns", "exec", ns) + cmd
    p = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                             stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(p.communicate(), timeout)
    except asyncio.TimeoutError:
        p.kill()
        out, _ = await p.communicate()
        return -1, out.decode(errors="replace")
    return p.returncode, out.decode(errors="replace")


async def wait_for(pred, timeout, step=0.3):
    """Await *pred()* until it is true or *timeout* s pass; its last value."""
    import asyncio
    end = time.monotonic() + timeout
    while True:
        v = await pred()
        if v or time.monotonic() > end:
            return v
        await asyncio.sleep(step)


def guest_main(main, timeout: float) -> None:
    """Run the coroutine function *main(args)* (--repo, --kroot parsed, the repo
    importable, logging to stderr) for at most *timeout* s, then print REPORT."""
    import argparse
    import asyncio
    import logging
    import traceback
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True)
    ap.add_argument("--kroot", required=True)
    a = ap.parse_args()
    sys.path.insert(0, a.repo)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(relativeCreated)7.0f %(name)s: %(message)s")
    try:
        asyncio.run(asyncio.wait_for(main(a), timeout))
    except BaseException:
        REPORT["errors"].append(traceback.format_exc())
    REPORT["seconds"] = round(time.monotonic() - T0, 1)
    print(JSON_MARK + json.dumps(REPORT), flush=True)


if __name__ == "__main__":  # python -m tests.qemu.harness 'uname -a'
    k = find_kernel()
    if k is None:
        sys.exit(missing_reason())
    res = run_guest(k, sys.argv[1] if len(sys.argv) > 1 else "uname -a; cat /proc/meminfo | head -3")
    print(res.output)
    print(f"rc={res.rc} in {res.seconds:.1f} s")
