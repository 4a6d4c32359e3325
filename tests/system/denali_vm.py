"""Boot the built denali disk image in qemu and drive its serial console like a person.

    vm = DenaliVM("out/denali-i386.img", memory_mb=64)
    vm.start()                         # a private copy of the image: the build stays clean
    vm.wait_for_login()                # seconds from qemu start to "denali login:"
    vm.login()                         # root, no password until `haconf passwd`
    out, rc = vm.run("cat /proc/meminfo")
    vm.reboot(); vm.wait_for_login(); vm.login()
    vm.stop()

qemu runs with TCG (this machine's /dev/kvm does not run stock kernels), the disk
as an IDE drive (as the CF card is on the board) and the serial port on qemu's
stdio. A reader thread collects every byte; `expect` searches what came after the
last match. The whole transcript goes to `log_path` (or DENALI_VM_LOG), so a failed
test leaves the console session to read.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

QEMU = {"i386": "qemu-system-i386", "amd64": "qemu-system-x86_64"}
# no end anchor: console messages (denali: ...) may land right after a prompt
LOGIN_PROMPT = re.compile(rb"denali login: ")
SHELL_PROMPT = re.compile(rb"@denali:[^\n]*?[#$] ")
# typed as octal escapes so that the echo of the typed line never matches
BEGIN_MARK = rb"__DENALI_B__"
# lines the init prints on the console at any moment; run() takes them out of a command's output
ASYNC_LINE = re.compile(r"^denali: (denalid exited|home agent ready|denalid \(pid|denalid did not stop).*\n", re.M)
END_MARK = re.compile(rb"__DENALI_E(\d+)__")


# measured figures of this run (boot time, memory, RSS), printed by conftest at the end
FIGURES: dict[str, str] = {}


class ConsoleTimeout(AssertionError):
    """The console did not show what was expected in time (the tail is in the message)."""


def arch_of(image: str) -> str:
    return "amd64" if "amd64" in os.path.basename(image) else "i386"


def qemu_missing(arch: str = "i386") -> str | None:
    """Why qemu cannot run here, or None."""
    if shutil.which(QEMU[arch]) is None:
        return f"{QEMU[arch]} is not installed (Debian package qemu-system-x86)"
    return None


def seed_config_partition(disk: str, files: dict[str, str], tmpdir: str, part: int = 4) -> None:
    """Write *files* (name -> text) into the ext4 config partition of the disk image
    *disk* with debugfs (e2fsprogs), in place: no loop device, no mount."""
    table = json.loads(subprocess.run(["sfdisk", "-J", disk], check=True, capture_output=True,
                                      text=True).stdout)["partitiontable"]
    start = table["partitions"][part - 1]["start"] * table.get("sectorsize", 512)
    for name, text in files.items():
        src = os.path.join(tmpdir, "seed-" + name)
        with open(os.open(src, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(text)  # debugfs keeps the mode: denali.conf holds keys
        r = subprocess.run(["debugfs", "-w", "-R", f"write {src} {name}", f"{disk}?offset={start}"],
                           capture_output=True, text=True)
        if r.returncode != 0 or "Allocated inode" not in r.stdout + r.stderr:
            raise RuntimeError(f"debugfs could not write {name} into {disk}: {r.stderr.strip()}")


class DenaliVM:
    def __init__(self, image: str, memory_mb: int = 64, arch: str | None = None,
                 log_path: str | None = None, copy: bool = True, extra_args: list[str] | None = None,
                 config_files: dict[str, str] | None = None):
        self.image = image
        # files for /etc/denali (partition 4) of the private copy, e.g. "modules" or a
        # denali.conf made by `haconf init` on the host: a boot that is not the first
        self.config_files = config_files or {}
        self.arch = arch or arch_of(image)
        self.memory_mb = memory_mb
        self.copy = copy
        self.extra_args = extra_args or []
        self.log_path = log_path or os.environ.get("DENALI_VM_LOG")
        self.proc: subprocess.Popen | None = None
        self._buf = bytearray()
        self._pos = 0
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None
        self._tmpdir: str | None = None
        self._log = None
        self.started_at = 0.0
        self.unresponsive: str | None = None   # set once a command got no answer

    # ---------------------------------------------------------------- process
    def start(self) -> None:
        disk = self.image
        if self.copy:
            self._tmpdir = tempfile.mkdtemp(prefix="denali-vm-")
            disk = os.path.join(self._tmpdir, os.path.basename(self.image))
            shutil.copyfile(self.image, disk)
            if self.config_files:
                seed_config_partition(disk, self.config_files, self._tmpdir)
        cmd = [QEMU[self.arch], "-accel", "tcg", "-m", str(self.memory_mb),
               "-display", "none", "-monitor", "none", "-serial", "stdio",
               "-drive", f"file={disk},format=raw,if=ide,index=0,media=disk",
               "-nic", "none", *self.extra_args]
        if self.log_path:
            self._log = open(self.log_path, "ab")
            self._log.write(f"\n===== {time.strftime('%H:%M:%S')} {' '.join(cmd)}\n".encode())
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, bufsize=0)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc and self.proc.stdout
        while True:
            data = self.proc.stdout.read1(4096) if hasattr(self.proc.stdout, "read1") else os.read(self.proc.stdout.fileno(), 4096)
            if not data:
                break
            if self._log:
                self._log.write(data)
                self._log.flush()
            with self._cond:
                self._buf += data
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(timeout=10)
        if self._reader:
            self._reader.join(timeout=5)
        if self._log:
            self._log.close()
            self._log = None
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> "DenaliVM":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---------------------------------------------------------------- console
    def transcript(self, tail: int | None = None) -> str:
        with self._cond:
            data = bytes(self._buf if tail is None else self._buf[-tail:])
        return data.decode("utf-8", "replace").replace("\r", "")

    def expect(self, pattern: bytes | re.Pattern, timeout: float = 60) -> re.Match:
        """Wait for pattern in what the console printed since the last match."""
        rx = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                m = rx.search(self._buf, self._pos)
                if m:
                    self._pos = m.end()
                    return m
                left = deadline - time.monotonic()
                if left <= 0 or not self.alive():
                    why = "qemu exited" if not self.alive() else f"{timeout:.0f} s passed"
                    tail = bytes(self._buf[-1200:]).decode("utf-8", "replace").replace("\r", "")
                    raise ConsoleTimeout(f"waiting for {rx.pattern!r}: {why}; console ends with:\n{tail}")
                self._cond.wait(min(left, 1.0))

    def send(self, text: str) -> None:
        assert self.proc and self.proc.stdin
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def sendline(self, line: str = "") -> None:
        self.send(line + "\r")

    # ---------------------------------------------------------------- person
    def wait_for_login(self, timeout: float = 240) -> float:
        """Seconds from qemu's start (or the last reboot) to the login prompt."""
        self.expect(LOGIN_PROMPT, timeout)
        self.unresponsive = None
        return time.monotonic() - self.started_at

    def login(self, user: str = "root", password: str | None = None, timeout: float = 60) -> None:
        self.sendline(user)
        if password is not None:
            self.expect(b"Password:", timeout)
            self.sendline(password)
        self.expect(SHELL_PROMPT, timeout)
        # one command round trip proves the shell is there (and eats late console noise)
        self.run("stty cols 200 2>/dev/null", timeout=timeout)

    def run(self, command: str, timeout: float = 60) -> tuple[str, int]:
        """Type a command at the shell prompt; return (its output, its exit status)."""
        if self.unresponsive:
            raise ConsoleTimeout(f"the console stopped answering earlier ({self.unresponsive}): not typing `{command}`")
        try:
            return self._run(command, timeout)
        except ConsoleTimeout:
            self.unresponsive = f"`{command}` got no answer in {timeout:.0f} s"
            raise

    def _run(self, command: str, timeout: float) -> tuple[str, int]:
        begin = r"printf '\137\137DENALI_B\137\137\n'; "
        end = r"; printf '\137\137DENALI_E%d\137\137\n' $?"
        self.sendline(begin + command + end)
        self.expect(re.compile(re.escape(BEGIN_MARK) + rb"\r?\n"), timeout)
        start = self._pos
        m = self.expect(END_MARK, timeout)
        with self._cond:
            out = bytes(self._buf[start:m.start()])
        self.expect(SHELL_PROMPT, 10)
        text = out.decode("utf-8", "replace").replace("\r", "")
        return ASYNC_LINE.sub("", text), int(m.group(1))

    def check(self, command: str, timeout: float = 60) -> str:
        out, rc = self.run(command, timeout)
        if rc != 0:
            raise AssertionError(f"`{command}` exited {rc}:\n{out}")
        return out

    def reboot(self) -> None:
        """Reboot from the shell (busybox init runs rcK first); wait_for_login times the new boot."""
        self.sendline("reboot")
        self.started_at = time.monotonic()
