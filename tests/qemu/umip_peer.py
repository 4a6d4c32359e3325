"""UMIP's mip6d as a peer: a qemu guest on Debian's kernel, on one of our bridges.

A thin wrapper around ../shared/peers/umip/guest.sh (its README says what the
guest is and why it exists: UMIP needs CONFIG_IPV6_MIP6, which the host
kernel lacks). `missing()` says why the peer cannot run here, or None.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess

PEER_DIR = os.environ.get("DENALI_UMIP_DIR") or os.path.normpath(
    os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "peers", "umip"))
GUEST_SH = os.path.join(PEER_DIR, "guest.sh")
BUILD_SH = os.path.join(PEER_DIR, "build.sh")
MIP6D = "/tmp/umip-build/mip6d"
# The guest's mac (guest.sh's default): SLAAC makes PREFIX:5054:ff:fe12:3456.
GUEST_IID = "5054:ff:fe12:3456"


def missing() -> str | None:
    """None when the UMIP guest can run here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "needs root for namespaces and the guest's tap"
    if not os.path.exists(GUEST_SH):
        return f"no UMIP peer at {PEER_DIR} (set DENALI_UMIP_DIR)"
    if shutil.which("qemu-system-x86_64") is None:
        return "needs qemu-system-x86_64 (tests/qemu/prepare.sh installs it)"
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun for the guest's tap"
    if not os.access(MIP6D, os.X_OK):
        r = subprocess.run(["bash", BUILD_SH], capture_output=True, text=True, timeout=900)
        if r.returncode != 0 or not os.access(MIP6D, os.X_OK):
            return f"UMIP did not build: {(r.stdout + r.stderr).strip()[-300:]}"
    # the initramfs (cached); guest.sh installs Debian's kernel into /boot when none is there
    r = subprocess.run(["bash", GUEST_SH, "initrd"], capture_output=True, text=True, timeout=900)
    if r.returncode != 0 or not glob.glob("/boot/vmlinuz-*"):
        return ("no guest kernel with CONFIG_IPV6_MIP6 in /boot or no initramfs: "
                f"{(r.stdout + r.stderr).strip()[-300:]}")
    return None


class UmipGuest:
    """One guest: started by start(), stopped (qemu and tap) by stop()."""

    def __init__(self, ns: str, tap: str, rundir: str):
        self.ns, self.tap, self.rundir = ns, tap, rundir
        self.started = False

    def start(self, conf: str, bridge: str | None = None, pre: str | None = None) -> None:
        env = dict(os.environ)
        if pre is not None:
            path = os.path.join(self.rundir, "pre.sh")
            os.makedirs(self.rundir, exist_ok=True)
            with open(path, "w") as f:
                f.write(pre)
            env["GUEST_PRE"] = path
        cmd = ["bash", GUEST_SH, "start", self.ns, self.tap, conf, self.rundir]
        if bridge:
            cmd.append(bridge)
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"guest.sh start: {r.stderr.strip() or r.stdout.strip()}")
        self.started = True

    def sh(self, command: str) -> str:
        r = subprocess.run(["bash", GUEST_SH, "sh", self.rundir, command],
                           capture_output=True, text=True, timeout=60)
        return r.stdout

    def console(self, line: str) -> str:
        """One command to UMIP's own console ([::1]:7777 in the guest), e.g. `bul`."""
        return self.sh(f"echo {line} | timeout 2 nc ::1 7777")

    def bul(self) -> list[dict] | None:
        """UMIP's binding update list, or None when its console does not answer
        (nc fails, e.g. while UMIP blocks traffic from its home address)."""
        out = self.console("bul")
        if "mip6d>" not in out:
            return None
        return bul_entries(out)

    def log(self) -> str:
        try:
            with open(os.path.join(self.rundir, "console.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self) -> None:
        if self.started:
            subprocess.run(["bash", GUEST_SH, "stop", self.ns, self.tap, self.rundir],
                           capture_output=True, text=True, timeout=60)
            self.started = False


def bul_entries(text: str) -> list[dict]:
    """UMIP's `bul` output, one dict per entry: hoa, coa, cn, and the raw lines."""
    out = []
    for block in re.split(r"\n(?=== BUL_ENTRY ==)|\n\s*\n", text):
        hoa = re.search(r"Home address\s+(\S+)", block)
        if not hoa:
            continue
        coa = re.search(r"Care-of address\s+(\S+)", block)
        cn = re.search(r"CN address\s+(\S+)", block)
        out.append({"hoa": hoa.group(1), "coa": coa.group(1) if coa else None,
                    "cn": cn.group(1) if cn else None, "text": block})
    return out


def mip6d_missing() -> str | None:
    """None when UMIP's static mip6d is built (building it if need be), else why not.

    For callers that run mip6d themselves inside tests/qemu/harness.py's guest
    (bench/bench_handover_umip.py) and so need neither guest.sh's initramfs nor
    a kernel in /boot.
    """
    if not os.path.exists(BUILD_SH) and not os.access(MIP6D, os.X_OK):
        return f"no UMIP peer at {PEER_DIR} (set DENALI_UMIP_DIR)"
    if not os.access(MIP6D, os.X_OK):
        r = subprocess.run(["bash", BUILD_SH], capture_output=True, text=True, timeout=900)
        if r.returncode != 0 or not os.access(MIP6D, os.X_OK):
            return f"UMIP did not build: {(r.stdout + r.stderr).strip()[-300:]}"
    return None
