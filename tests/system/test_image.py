"""System floor: the built disk image boots in qemu and a person uses its serial console.

The image is out/denali-i386.img (DENALI_ARCH=amd64 for the other one), or DENALI_IMAGE.
DENALI_BUILD_IMAGE=1 runs ./build.sh first (cached stages make a rebuild cheap).
The guest has 64 MB of RAM like the board (DENALI_VM_MEMORY to change it).
The console transcript goes to DENALI_VM_LOG, or build/system-console.log.
Figures (boot time, free memory, RSS) are printed at the end of the run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from denali_vm import FIGURES, DenaliVM, arch_of, qemu_missing  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARCH = os.environ.get("DENALI_ARCH", "i386")
MEMORY_MB = int(os.environ.get("DENALI_VM_MEMORY", "64"))

def figure(name: str, value: str) -> None:
    FIGURES[name] = value
    print(f"{name}: {value}")


@pytest.fixture(scope="module")
def image():
    img = os.environ.get("DENALI_IMAGE") or os.path.join(REPO, "out", f"denali-{ARCH}.img")
    if os.environ.get("DENALI_BUILD_IMAGE") == "1" and not os.environ.get("DENALI_IMAGE"):
        # build.sh installs its tools and qemu with apt when they are missing
        t0 = time.monotonic()
        r = subprocess.run([os.path.join(REPO, "build.sh"), "--arch", ARCH, "--out", os.path.dirname(img)])
        assert r.returncode == 0, "build.sh failed (its last lines name the stage)"
        figure("build.sh", f"{time.monotonic() - t0:.0f} s")
    if not os.path.exists(img):
        pytest.skip(f"no built image at {img}: run ./build.sh, or set DENALI_BUILD_IMAGE=1 or DENALI_IMAGE")
    why = qemu_missing(arch_of(img))
    if why:
        pytest.skip(why)
    figure("image", f"{img} ({os.path.getsize(img) / 1048576:.1f} MiB)")
    return img


@pytest.fixture(scope="module")
def vm(image):
    log = os.environ.get("DENALI_VM_LOG") or os.path.join(REPO, "build", "system-console.log")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    v = DenaliVM(image, memory_mb=MEMORY_MB, log_path=log)
    v.start()
    try:
        seconds = v.wait_for_login(timeout=300)
        figure(f"boot to login prompt (TCG, -m {MEMORY_MB})", f"{seconds:.1f} s")
        v.banner = v.transcript()
        yield v
    finally:
        v.stop()


@pytest.fixture(scope="module")
def shell(vm):
    vm.login()
    return vm


def test_boot_shows_login_prompt_and_banner(vm):
    banner = vm.banner
    assert "denali home agent" in banner
    assert "no network login" in banner
    assert "root has no password yet" in banner and "haconf passwd" in banner


def test_root_logs_in_without_password(shell):
    assert shell.check("id -u").strip() == "0"


def test_memory_left_for_the_appliance(shell):
    meminfo = shell.check("cat /proc/meminfo")
    kb = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+):\s+(\d+) kB", meminfo, re.M)}
    assert kb["MemTotal"] > 0
    figure("MemTotal", f"{kb['MemTotal'] / 1024:.1f} MiB")
    figure("MemAvailable after boot", f"{kb['MemAvailable'] / 1024:.1f} MiB")
    figure("MemFree after boot", f"{kb['MemFree'] / 1024:.1f} MiB")


def test_python3_runs(shell):
    assert shell.check("python3 -c 'print(6 * 7)'").strip() == "42"
    for label, imports in (("python3 bare", "sys"), ("python3 + asyncio", "asyncio"),
                           ("python3 + click, configobj", "click, configobj")):
        out = shell.check("python3 -c 'import resource, %s; "
                          "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)'" % imports, timeout=120)
        figure(f"RSS {label}", f"{int(out.split()[-1]) / 1024:.1f} MiB")


def test_project_is_in_the_python_path(shell):
    # find pyroute2, do not import all of it: a second interpreter with the whole package
    # (21 MB RSS) beside a starting denalid (about 20 MB) does not fit in 64 MB
    out = shell.check("python3 -c 'import importlib.util as u, ha, radvd, configobj, click; "
                      "print(ha.__file__, u.find_spec(\"pyroute2\").origin)'", timeout=180)
    assert "/usr/lib/python3/dist-packages/ha/" in out
    assert "/usr/lib/python3/dist-packages/pyroute2/" in out


def test_nft_drops_mobility_header_on_input(shell):
    out = shell.check("nft list table ip6 denali")
    assert "hook input" in out
    assert re.search(r"l4proto (135|mobility-header|ipv6-mh).*drop", out), out


def test_forwarding_and_proxy_nd_are_on(shell):
    assert shell.check("cat /proc/sys/net/ipv6/conf/all/forwarding").strip() == "1"
    assert shell.check("cat /proc/sys/net/ipv6/conf/all/proxy_ndp").strip() == "1"


def test_root_is_read_only_squashfs_under_a_ram_overlay(shell):
    mounts = shell.check("cat /proc/mounts")
    assert re.search(r"^overlay / overlay ", mounts, re.M), mounts
    assert re.search(r"^/dev/sda2 /media/denali/root squashfs ro", mounts, re.M), mounts
    assert re.search(r"^/dev/sda4 /etc/denali ext4 rw", mounts, re.M), mounts  # partition 4: after the two root slots


def test_kernel_has_hwsim_and_ip6_tunnel(shell):
    shell.check("modprobe mac80211_hwsim radios=2", timeout=120)
    out = shell.check("iw dev")
    assert len(re.findall(r"Interface wlan\d", out)) >= 2, out
    shell.check("rmmod mac80211_hwsim")
    shell.check("modprobe ip6_tunnel && grep -q ip6_tunnel /proc/modules")
    assert shell.check("test -c /dev/net/tun && echo tun").strip() == "tun"


def test_tcpdump_ntpd_and_dhcpcd_run(shell):
    """The debugging and upstream tools are in the image and start (their libraries survived pruning)."""
    out = shell.check("tcpdump --version 2>&1; ntpd -n -f /dev/null && echo ntpd-ok; dhcpcd --version")
    assert "libpcap" in out and "ntpd-ok" in out and "dhcpcd 9" in out, out


def test_no_network_login_service(shell):
    out = shell.check("netstat -ltn 2>/dev/null || cat /proc/net/tcp /proc/net/tcp6")
    for port in (":22 ", ":23 "):
        assert port not in out, out


def _denalid_installed(shell) -> bool:
    return shell.run("command -v denalid")[1] == 0


def test_daemon_is_supervised(shell):
    if not _denalid_installed(shell):
        out = shell.check("logread | grep 'denalid is not installed' || true")
        assert "not installed" in out, "the init script must say that denalid is absent"
        pytest.skip("this image has no denalid yet (ha/daemon/main.py was absent at build time)")
    pid1 = shell.check("cat /run/denalid.pid").strip()
    status = shell.run(f"cat /proc/{pid1}/status")[0]
    for key in ("VmRSS", "VmHWM"):
        m = re.search(rf"^{key}:\s+(\d+) kB", status, re.M)
        if m:
            figure(f"denalid {key} (no radios: waiting for its home interface)", f"{int(m.group(1)) / 1024:.1f} MiB")
    shell.check(f"kill -KILL {pid1}")
    deadline = time.monotonic() + 60
    pid2 = pid1
    while time.monotonic() < deadline:
        pid2 = shell.run("cat /run/denalid.pid 2>/dev/null")[0].strip()
        if pid2 and pid2 != pid1:
            break
        time.sleep(2)
    assert pid2 and pid2 != pid1, "the supervisor did not restart denalid"
    assert "restart" in shell.check("logread | grep 'denalid exited'")
    out, rc = shell.run("/etc/init.d/S50denali status")
    assert "denalid" in out


def test_init_says_so_when_the_daemon_is_absent(shell):
    """An image built before ha/daemon/main.py existed has no denalid: start logs it and succeeds."""
    if not _denalid_installed(shell):
        pytest.skip("no denalid in this image: the boot already took that path (test_daemon_is_supervised)")
    shell.check("/etc/init.d/S50denali stop", timeout=120)
    try:
        shell.check("mv /usr/bin/denalid /tmp/denalid.away")
        out, rc = shell.run("/etc/init.d/S50denali start")
        assert rc == 0 and "denalid is not installed" in out, out
        assert "not installed" in shell.check("logread | tail -n 5")
        out, rc = shell.run("/etc/init.d/S50denali status")
        assert "not installed" in out
    finally:
        shell.check("mv /tmp/denalid.away /usr/bin/denalid")
    shell.check("/etc/init.d/S50denali start")


def test_config_survives_reboot(shell):
    if shell.run("command -v haconf")[1] != 0:
        shell.check("echo kept > /etc/denali/system-test-marker && sync")
        haconf = False
    else:
        haconf = True
        out, rc = shell.run("haconf set essid home channel 3", timeout=180)
        assert rc == 0, out
        out, rc = shell.run("haconf commit", timeout=180)
        assert rc == 0, out
        out, rc = shell.run("haconf apply", timeout=180)
        assert rc in (0, 3), out      # 3: denalid not running (an image without radios)
        out, rc = shell.run("haconf show", timeout=180)
        assert "home" in out, out
    # radios for the next boot (the config partition's module list): the next test's
    shell.check("echo 'mac80211_hwsim radios=2' > /etc/denali/modules && sync")
    shell.reboot()
    seconds = shell.wait_for_login(timeout=300)
    figure("reboot to login prompt", f"{seconds:.1f} s")
    shell.login()
    if haconf:
        out = shell.check("haconf get essid --committed || cat /etc/denali/denali.conf", timeout=180)
        assert "home" in out, out
    else:
        assert shell.check("cat /etc/denali/system-test-marker").strip() == "kept"


def test_home_agent_ready_on_hwsim_radios(shell):
    """After the reboot above: two hwsim radios, hostapd on each, the ready line on the console."""
    if not _denalid_installed(shell):
        pytest.skip("this image has no denalid yet (ha/daemon/main.py was absent at build time)")
    out = shell.check("iw dev")
    assert len(re.findall(r"Interface wlan\d", out)) >= 2, "/etc/denali/modules did not load mac80211_hwsim"
    # the home agent's address on the home link (2001:db8::/64, HA 2001:db8::): denalid
    # needs a global address on wlan0 and does not assign one itself (yet)
    shell.check("ip link set wlan0 up && ip -6 addr replace 2001:db8::/64 dev wlan0")
    t0 = time.monotonic()
    shell.check("/etc/init.d/S50denali restart", timeout=120)
    shell.expect(b"denali: home agent ready", timeout=600)
    figure("denalid start to 'home agent ready' (TCG, 2 hostapd)", f"{time.monotonic() - t0:.0f} s")
    out = shell.check("/etc/init.d/S50denali status")
    assert "console on 127.0.0.1:7777" in out, out
    assert shell.check("pidof hostapd").split(), "no hostapd running"
    status = shell.check("cat /proc/$(cat /run/denalid.pid)/status")
    for key in ("VmRSS", "VmHWM"):
        m = re.search(rf"^{key}:\s+(\d+) kB", status, re.M)
        figure(f"denalid {key} serving (2 radios)", f"{int(m.group(1)) / 1024:.1f} MiB")
    meminfo = shell.check("cat /proc/meminfo")
    m = re.search(r"^MemAvailable:\s+(\d+) kB", meminfo, re.M)
    figure("MemAvailable with denalid serving", f"{int(m.group(1)) / 1024:.1f} MiB")


def test_nothing_writes_bytecode_into_the_ram_overlay(shell):
    """The root is read-only squashfs; writes land in the RAM upper layer: no .pyc may."""
    out = shell.check("find /media/denali/rw/upper -name '*.pyc' | head -5; du -sk /media/denali/rw/upper")
    assert ".pyc" not in out, out
    figure("RAM overlay (upper layer) in use", f"{int(out.split()[-2])} KiB")
