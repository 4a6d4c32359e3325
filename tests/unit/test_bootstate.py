"""The A/B boot state, as firmware/denali-slot keeps it (the initramfs runs that very script).

Each row: the state before, a command (what the initramfs, S50denali or haconf
upgrade does), the state after, what the command prints, and the slot the boot
loader starts afterwards. The script runs under busybox sh when the machine has
it (the initramfs's shell), else dash; the boot partition is a directory.
"""

import os
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, "firmware", "denali-slot")
SH = [shutil.which("busybox"), "sh"] if shutil.which("busybox") else [shutil.which("sh")]

GOOD_A = "a - 0 0 -"
GOOD_B = "b - 0 0 -"


def st(text):
    """'active previous tentative tries failed' ('-' for empty) as the file's dict."""
    keys = ("active", "previous", "tentative", "tries", "failed")
    return {k: ("" if v == "-" else v) for k, v in zip(keys, text.split())}


TABLE = [
    # before            command                 after              prints      DEFAULT
    ("a - 0 0 -",       "boot a",               "a - 0 0 -",       "boot",     "a"),
    # haconf upgrade, slot b written and read back while a runs
    ("a - 0 0 -",       "tentative b a",        "b a 1 0 -",       "",         "b"),
    # first and second boot of the slot on trial are counted
    ("b a 1 0 -",       "boot b",               "b a 1 1 -",       "boot",     "a"),
    ("b a 1 1 -",       "boot b",               "b a 1 2 -",       "boot",     "a"),
    # a third boot would exceed two tries: back to a, b remembered as failed
    ("b a 1 2 -",       "boot b",               "a b 0 0 b",       "fallback", "a"),
    # "home agent ready" on the slot on trial: it is good
    ("b a 1 1 -",       "good b",               "b a 0 0 -",       "slot",     "a"),
    # ready on a good slot, or on a slot picked by hand at boot:, changes nothing
    ("a - 0 0 -",       "good a",               "a - 0 0 -",       "",         "a"),
    ("b a 1 1 -",       "good a",               "b a 1 1 -",       "",         "a"),
    # booting the old slot while the other is on trial (picked by hand, or a power
    # cut between the state and the DEFAULT switch) counts nothing against either
    ("b a 1 1 -",       "boot a",               "b a 1 1 -",       "boot",     "a"),
    # the slot that failed is written again by the next upgrade: failed is cleared
    ("a b 0 0 b",       "tentative b a",        "b a 1 0 -",       "",         "b"),
    # a slot on trial with no previous slot to go back to keeps booting
    ("b - 1 2 -",       "boot b",               "b - 1 3 -",       "boot",     "a"),
]


def run(boot, *args, check=True):
    r = subprocess.run([*SH, TOOL, "-d", str(boot), *args], capture_output=True, text=True,
                       env={**os.environ, "DENALI_CMDLINE": "/nonexistent"})
    if check:
        assert r.returncode == 0, r.stderr
    return r


def card(tmp_path, before):
    boot = tmp_path / "boot"
    (boot / "denali").mkdir(parents=True)
    tmpl = open(os.path.join(REPO, "firmware", "syslinux.cfg")).read()
    (boot / "denali" / "syslinux.in").write_text(tmpl)
    (boot / "syslinux.cfg").write_text(tmpl.replace("@SLOT@", "a"))
    s = st(before)
    (boot / "denali" / "bootstate").write_text("".join(f"{k}={v}\n" for k, v in s.items()))
    return boot


def read_state(boot):
    return dict(line.split("=", 1) for line in (boot / "denali" / "bootstate").read_text().split())


def default(boot):
    for line in (boot / "syslinux.cfg").read_text().splitlines():
        if line.startswith("DEFAULT "):
            return line.split()[1]


@pytest.mark.parametrize("before, command, after, prints, dflt", TABLE)
def test_transition(tmp_path, before, command, after, prints, dflt):
    boot = card(tmp_path, before)
    r = run(boot, *command.split())
    assert read_state(boot) == st(after)
    assert (r.stdout.split() or [""])[0] == prints
    assert default(boot) == dflt
    cfg = (boot / "syslinux.cfg").read_text()
    assert "@SLOT@" not in cfg and f"KERNEL /{dflt}/vmlinuz" in cfg.split("LABEL rescue")[1]
    assert not [p for p in (boot / "denali").iterdir() if p.name.endswith(".new")]


def test_two_failed_boots_then_the_old_slot(tmp_path):
    """The whole trial of a slot that never gets ready, as the initramfs lives it."""
    boot = card(tmp_path, GOOD_A)
    run(boot, "-s", "a", "tentative", "b", "a")
    seen = [run(boot, "boot", default(boot)).stdout.strip() for _ in range(3)]
    assert seen == ["boot", "boot", "fallback"]
    assert default(boot) == "a"
    assert run(boot, "boot", "a").stdout.strip() == "boot"
    assert read_state(boot) == st("a b 0 0 b")


def test_a_damaged_state_file_reads_as_a_good_slot_a(tmp_path):
    boot = card(tmp_path, GOOD_A)
    (boot / "denali" / "bootstate").write_text("active=$(reboot)\ntries=lots\ngarbage\n")
    r = run(boot, "show")
    assert "active=a" in r.stdout and "tentative=0" in r.stdout
    assert run(boot, "boot", "a").stdout.strip() == "boot"


def test_tentative_needs_two_different_slots(tmp_path):
    boot = card(tmp_path, GOOD_A)
    r = run(boot, "tentative", "a", "a", check=False)
    assert r.returncode == 2 and "two different slots" in r.stderr
    assert read_state(boot) == st(GOOD_A)


def test_python_reads_what_the_script_writes(tmp_path):
    from ha.haconf import upgrade as U
    boot = card(tmp_path, GOOD_A)
    run(boot, "tentative", "b", "a")
    assert U.slot_state(str(boot)) == st("b a 1 0 -")
    assert U.boot_default(str(boot)) == "b"
