"""Which datapath backend this kernel gets, and opening it.

"kernel" where ip6_tunnel exists (stock kernels, the board), "user" (TUN and a
raw protocol-41 socket) where it does not (this build machine).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
from ipaddress import IPv6Address

from ha.datapath.base import Datapath
from ha.net.rtnl import NetlinkError, RtnlBatch, ip6tnl_add_msg, link_del_msg

log = logging.getLogger("ha.datapath")


def kernel_has_ip6_tunnel() -> bool:
    """True if this kernel can make ip6tnl devices (module loaded, loadable or built in)."""
    if os.path.isdir("/sys/module/ip6_tunnel"):
        return True
    for modprobe in ("/sbin/modprobe", "/usr/sbin/modprobe"):
        if os.path.exists(modprobe):
            import subprocess
            r = subprocess.run([modprobe, "-q", "ip6_tunnel"], capture_output=True)
            return r.returncode == 0 and os.path.isdir("/sys/module/ip6_tunnel")
    return False


async def ip6tnl_works(loop=None) -> bool:
    """Try to create (then delete) an ip6tnl device: the kernel loads ip6_tunnel itself
    on demand (request_module), so this also covers a board without a modprobe binary."""
    rtnl = RtnlBatch(loop)
    name = f"dnprobe{os.getpid() % 100000}"
    try:
        await rtnl.submit([ip6tnl_add_msg(name, IPv6Address("::1"), IPv6Address("::2"))])
    except NetlinkError as e:
        # EOPNOTSUPP: no such link kind; anything else means the kind exists
        return e.errno != errno.EOPNOTSUPP
    else:
        try:
            await rtnl.submit([link_del_msg(socket.if_nametoindex(name))])
        except (NetlinkError, OSError):
            pass
        return True
    finally:
        rtnl.close()


async def open_datapath(home_ifname: str, ha_address: IPv6Address, *, backend: str = "auto",
                        loop=None, firewall: bool = True, **kw) -> Datapath:
    """Open the datapath on the home interface.

    backend: "kernel" (ip6tnl), "user" (TUN + raw socket) or "auto": kernel if
    /sys/module/ip6_tunnel exists, modprobe loads it, or creating an ip6tnl works.
    """
    loop = loop or asyncio.get_running_loop()
    if backend == "auto":
        has = kernel_has_ip6_tunnel() or await ip6tnl_works(loop)
        backend = "kernel" if has else "user"
    log.info("datapath backend: %s", backend)
    if backend == "user":
        from ha.datapath.user import UserDatapath
        return await UserDatapath.open(home_ifname, IPv6Address(ha_address), loop=loop,
                                       firewall=firewall, **kw)
    if backend == "kernel":
        from ha.datapath.kernel import KernelDatapath
        return await KernelDatapath.open(home_ifname, IPv6Address(ha_address), loop=loop,
                                         firewall=firewall, **kw)
    raise ValueError(f"unknown datapath backend {backend!r}")
