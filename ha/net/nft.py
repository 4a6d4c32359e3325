"""nftables scripts applied in-process through libnftables, not by forking `nft`.

The kernel datapath changes its reverse-tunnel set on every registration; a
fork of `nft -f -` per batch costs milliseconds and a hung child would stall
every registration with no error. libnftables (libnftables.so.1, which the
`nft` binary itself is built on, so it is on every machine that has nft) runs
the same script syntax in the calling process and returns at once with the
error text. It is loaded with ctypes: Debian's python3-nftables binding is a
wrapper of these same five functions, and this interpreter may not see it.
Where the library is missing, `nft -f -` runs with a timeout instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import subprocess

log = logging.getLogger("denali.nft")

NFT_CTX_DEFAULT = 0
NFT_TIMEOUT = 5.0  # seconds, for the subprocess fallback only


class NftError(OSError):
    pass


class _Lib:
    def __init__(self):
        name = ctypes.util.find_library("nftables") or "libnftables.so.1"
        lib = ctypes.CDLL(name)
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        self.lib = lib
        self.ctx = lib.nft_ctx_new(NFT_CTX_DEFAULT)
        if not self.ctx:
            raise OSError("nft_ctx_new failed")
        lib.nft_ctx_buffer_output(self.ctx)  # keep `nft list` output off our stdout
        lib.nft_ctx_buffer_error(self.ctx)

    def run(self, script: str) -> None:
        rc = self.lib.nft_run_cmd_from_buffer(self.ctx, script.encode())
        if rc != 0:
            err = (self.lib.nft_ctx_get_error_buffer(self.ctx) or b"").decode(errors="replace")
            raise NftError(f"nft failed: {err.strip()}")


# A context holds a netlink socket of the namespace it was made in, so there is
# one per network namespace (a test, or a tool, may setns() between calls).
_contexts: dict[int, _Lib] = {}
_unusable = False


def _library() -> _Lib | None:
    global _unusable
    if _unusable:
        return None
    try:
        netns = os.stat("/proc/thread-self/ns/net").st_ino
    except OSError:
        netns = 0
    ctx = _contexts.get(netns)
    if ctx is None:
        try:
            ctx = _contexts[netns] = _Lib()
        except OSError as e:
            log.info("libnftables not usable (%s): running nft instead", e)
            _unusable = True
    return ctx


def apply(script: str) -> None:
    """Apply one nft script as one transaction; NftError says why it was refused."""
    lib = _library()
    if lib is not None:
        lib.run(script)
        return
    try:
        r = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True,
                           timeout=NFT_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise NftError(f"nft did not answer in {NFT_TIMEOUT:g} s") from None
    except FileNotFoundError:
        raise NftError("nft is not installed") from None
    if r.returncode != 0:
        raise NftError(f"nft failed: {r.stderr.strip()}")


def using_library() -> bool:
    return _library() is not None
