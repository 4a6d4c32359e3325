"""ha/net/nft.py on the real kernel: scripts go in through libnftables, errors come back."""

import os
import subprocess
import sys
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from nslib import have_netns  # noqa: E402

pytestmark = pytest.mark.skipif(have_netns() is not None, reason=str(have_netns()))

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CODE = """
import sys
from ha.net import nft
print("library" if nft.using_library() else "subprocess")
nft.apply("table inet t1\\ndelete table inet t1\\ntable inet t1 {\\n chain c {\\n"
          "  type filter hook input priority 0; policy accept;\\n }\\n}\\n")
try:
    nft.apply("add rule inet t1 c meta l4proto nonsense drop\\n")
except nft.NftError as e:
    print("refused:", str(e).splitlines()[0])
"""


@pytest.fixture
def ns():
    name = f"nft{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name])


def test_scripts_apply_in_process_and_errors_say_why(ns):
    r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", CODE], cwd=ROOT,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "library"  # libnftables is where nft is: no fork per batch
    assert lines[1] == "refused: nft failed: Error: Could not resolve protocol name"
    tables = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "tables"],
                            capture_output=True, text=True).stdout
    assert "table inet t1" in tables
