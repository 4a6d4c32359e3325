"""The RA sender as an asyncio component: sockets and timers around RAScheduler.

One raw ICMPv6 socket per advertising interface: hop limits 255, an ICMPv6
filter passing only Router Solicitations, IPV6_RECVHOPLIMIT so the RS hop
limit can be checked, ff02::2 joined, bound to the device.  Everything about
the interface is read from /sys/class/net and /proc/net/if_inet6 (no netlink
library: pyroute2 costs 22-32 MB on the board).  When to read it again comes
from rtnetlink's link and IPv6 address groups (a plain socket): a change is
picked up in the next loop turn, and between changes the sender reads nothing
but a safety poll every SAFETY_POLL_INTERVAL (reading /sys each second cost
about as much CPU as the RAs themselves at Mobile IPv6's 30-70 ms).  Without
that socket, every POLL_INTERVAL.  Interfaces that are missing, down or
without a usable link-local address are picked up when they become ready;
nothing here raises out of a callback.

The periodic multicast RAs leave from one sender thread per interface, which
sleeps until the next RA is due: a steady RA then costs a thread wakeup and not
a turn of the asyncio loop (that turn was most of our CPU beside radvd's).
Everything else (RSs, reloads, interface changes, the final RAs) runs on the
loop, and both sides share the scheduler under one lock (see _Port).

    svc = RAService(config)
    await svc.start()
    await svc.reload(new_config)       # SIGHUP: the schedule is kept
    svc.stats()                        # counters; register_commands(console) adds `ra`
    await svc.stop()                   # final RAs with router lifetime 0
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Interface

from ha.daemon.process import TRACE     # per-packet logging, `-d 3` and up
from ha.net.iface import SCOPE_GLOBAL, SCOPE_LINK, if_inet6 as interface_addresses
from radvd.config import Config, InterfaceConfig, validate_interface
from radvd.scheduler import ALL_NODES, Link, RAScheduler

log = logging.getLogger("denali.radvd")

ICMP6_FILTER = 1                   # <netinet/icmp6.h>, level IPPROTO_ICMPV6
ND_ROUTER_SOLICIT = 133
IFF_UP = 0x1
POLL_INTERVAL = 1.0                # without rtnetlink
SAFETY_POLL_INTERVAL = 30.0        # with it: for a lost notification
NETLINK_ROUTE = 0
RTMGRP_LINK = 0x1
RTMGRP_IPV6_IFADDR = 0x100
RTM_NEWLINK, RTM_DELLINK = 16, 17
_NLMSGHDR = struct.Struct("=IHHII")
_ALL_ROUTERS = IPv6Address("ff02::2").packed
IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)


# --------------------------------------------------------------------------- interface facts

@dataclass(slots=True, frozen=True)
class LinkState:
    exists: bool
    up: bool = False
    index: int = 0
    mtu: int = 0
    link: Link | None = None      # None until a non-tentative link-local address exists

    @property
    def ready(self) -> bool:
        return self.exists and self.up and self.link is not None


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def read_link_state(name: str, if_inet6: str | None = None) -> LinkState:
    """The interface as the kernel shows it in /sys and /proc (never raises)."""
    base = f"/sys/class/net/{name}"
    if not os.path.isdir(base):
        return LinkState(False)
    flags = _read(f"{base}/flags")
    oper = _read(f"{base}/operstate") or "unknown"
    try:
        up = bool(int(flags or "0", 16) & IFF_UP) and oper in ("up", "unknown")
        mtu = int(_read(f"{base}/mtu") or "0")
        index = socket.if_nametoindex(name)
    except (OSError, ValueError):
        return LinkState(False)
    mac_text = _read(f"{base}/address") or ""
    try:
        mac = bytes.fromhex(mac_text.replace(":", "")) or None
    except ValueError:
        mac = None
    if mac is not None and not any(mac):
        mac = None                 # loopback and tunnels: no link-layer address to tell
    link_local, globals_ = None, []
    for a in interface_addresses(if_inet6):
        if a.ifname != name or not a.usable:   # tentative or DAD-failed: not ours to use yet
            continue
        if a.scope == SCOPE_LINK and link_local is None:
            link_local = a.address
        elif a.scope == SCOPE_GLOBAL:
            globals_.append(IPv6Interface(f"{a.address}/{a.prefix_len}"))
    link = Link(name, link_local, mac, mtu, tuple(a.ip for a in globals_),
                tuple(globals_)) if link_local else None
    return LinkState(True, up, index, mtu, link)


def _open_netlink() -> socket.socket:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK
                      | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
    try:
        s.bind((0, RTMGRP_LINK | RTMGRP_IPV6_IFADDR))
    except OSError:
        s.close()
        raise
    return s


def netlink_concerns(data: bytes, indexes) -> bool:
    """Whether one read of rtnetlink messages may change what we advertise: any
    link message (an interface may have appeared, been renamed, changed its MTU
    or MAC) or an address message for one of `indexes`."""
    off = 0
    while off + 24 <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, off)
        if length < 16 or off + length > len(data):
            return True                    # cannot tell: read the interfaces again
        if kind in (RTM_NEWLINK, RTM_DELLINK):
            return True
        # ifaddrmsg: family, prefix length, flags, scope, then the index
        if struct.unpack_from("=i", data, off + 20)[0] in indexes:
            return True
        off += (length + 3) & ~3
    return False


# --------------------------------------------------------------------------- per interface

def _open_socket(name: str, index: int) -> socket.socket:
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    try:
        s.setblocking(False)
        # RFC 4861 §6.1.2: RAs leave with hop limit 255 (receivers check it)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
        s.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, name.encode())
        # pass only Router Solicitations (bit set = blocked, RFC 3542 §3.2)
        words = [0xFFFFFFFF] * 8
        words[ND_ROUTER_SOLICIT >> 5] &= ~(1 << (ND_ROUTER_SOLICIT & 31))
        s.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("=8I", *words))
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                     _ALL_ROUTERS + struct.pack("@I", index))
    except OSError:
        s.close()
        raise
    return s


def _open_multicast_sender(name: str, index: int, src: IPv6Address) -> socket.socket:
    """A send-only ICMPv6 socket bound to `src` and connected to ff02::1 on the
    interface: the periodic RA then goes out with send(), without the per-packet
    destination and IPV6_PKTINFO that the kernel would parse each time."""
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    try:
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)   # RFC 4861 §6.1.2
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        s.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, name.encode())
        s.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, b"\xff" * 32)  # receives nothing
        s.bind((str(src), 0, 0, index))
        s.connect(("ff02::1", 0, 0, index))
    except OSError:
        s.close()
        raise
    return s


class _Port:
    """One advertising interface: its sockets, its scheduler, what drives its timer.

    The periodic multicast RAs come from a sender thread of the port's own
    (`_sender`): it sleeps on a condition until the scheduler's next due time and
    sends from there, so a steady RA costs one thread wakeup and no turn of the
    asyncio loop.  RS handling, reloads and address changes stay on the loop.
    Both sides touch the scheduler, the sockets and the counters only while
    holding `_cond`'s lock, and the loop notifies the condition whenever it may
    have moved the due time.  On stop the thread is told to end and joined, and
    the final RAs are driven by loop timers (as everything is when the thread
    cannot be started).
    """

    JOIN_TIMEOUT = 2.0

    def __init__(self, service: RAService, config: InterfaceConfig, state: LinkState):
        self.service = service
        self.config = config
        self.state = state
        self.loop = service.loop
        self.clock = time.monotonic            # the scheduler's `now`, on both threads
        self.sock = _open_socket(config.name, state.index)
        self._group_sock: socket.socket | None = None
        self._open_group_sock()
        self.scheduler = RAScheduler(config, state.link, now=self.clock(),
                                     random=service.random)
        self.timer: asyncio.TimerHandle | None = None      # loop timer (no thread)
        self._timer_due: float | None = None
        self.send_errors = 0
        self.first_sent: float | None = None   # CLOCK_MONOTONIC: seconds since boot
        # what sendmsg() needs per source and destination, made once: the periodic
        # RA goes to the same group from the same address each time
        self._anc_for: tuple | None = None      # (src, ancillary data list)
        self._addr_for: tuple | None = None     # (dst, sockaddr tuple)
        self.finished = asyncio.Event()
        self._cond = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._thread_exit = False
        self._waiting_for: float | None = None    # the due time the thread sleeps towards
        self.loop.add_reader(self.sock.fileno(), self._readable)
        # the first RA (due now, RFC 4861 §6.2.4) leaves from here: its message is built,
        # and the modules that build it imported, on this thread, which keeps that
        # memory out of a malloc arena of the sender thread's own (1.5 MiB measured)
        self._run_timer()
        self._start_sender()
        if self._thread is None:
            self._arm()                        # the thread reads the due time itself

    def _open_group_sock(self) -> None:
        if self._group_sock is not None:
            self._group_sock.close()
            self._group_sock = None
        try:
            self._group_sock = _open_multicast_sender(self.config.name, self.state.index,
                                                      self.state.link.link_local)
        except OSError as e:                   # the general socket sends them all then
            log.debug("%s: no connected socket for ff02::1 (%s)", self.config.name,
                      e.strerror or e)

    # -- the sender thread
    def _start_sender(self) -> None:
        thread = threading.Thread(target=self._sender, name=f"ra-{self.config.name}",
                                  daemon=True)   # never keeps the process alive
        try:
            thread.start()
        except RuntimeError as e:              # no threads left: the loop's timers do it
            log.warning("%s: no RA sender thread (%s), sending from the event loop",
                        self.config.name, e)
            return
        self._thread = thread

    def _sender(self) -> None:
        cond, clock, scheduler = self._cond, self.clock, self.scheduler
        with cond:
            while not self._thread_exit:
                when = scheduler.get_timer()
                now = clock()
                if when is None or when > now:
                    self._waiting_for = when
                    # until due, or until the loop moves the due time and notifies
                    cond.wait(None if when is None else when - now)
                    continue
                try:
                    scheduler.handle_timer(now)
                    self._flush()
                except Exception:              # keep advertising whatever one RA did
                    log.exception("%s: RA timer failed", self.config.name)
                    cond.wait(0.1)             # no spinning on a repeating fault

    def _stop_sender(self) -> None:
        """End the thread (it finishes the RA it may be sending) and join it; from
        then on the loop's timers drive the scheduler."""
        thread = self._thread
        if thread is None:
            return
        with self._cond:
            self._thread_exit = True
            self._cond.notify()
        thread.join(self.JOIN_TIMEOUT)
        if thread.is_alive():                  # it touches nothing once told to end
            log.warning("%s: RA sender thread did not end in %g s", self.config.name,
                        self.JOIN_TIMEOUT)
        self._thread = None

    # -- timer
    def _arm(self) -> None:
        """After the loop changed the schedule: wake the thread, or set the loop timer.
        Called with the lock held or from the loop thread alone (no sender thread)."""
        if self._thread is not None:
            if self.scheduler.get_timer() != self._waiting_for:
                self._cond.notify()            # it sleeps towards another time
            return
        when = self.scheduler.get_timer()
        timer = self.timer
        if timer is not None:
            if when is not None and self._timer_due == when:
                return                         # already set for that time
            timer.cancel()
            self.timer = None
        if when is not None:
            self._timer_due = when
            self.timer = self.loop.call_later(max(0.0, when - self.clock()), self._fire)
        if self.scheduler.finished:
            self.finished.set()

    def _fire(self) -> None:
        self.timer = None
        self._run_timer()
        self._arm()

    def _run_timer(self) -> None:
        try:
            self.scheduler.handle_timer(self.clock())
            self._flush()
        except Exception:                      # never let one interface kill the loop
            log.exception("%s: RA timer failed", self.config.name)

    def _flush(self) -> None:
        trace = log.isEnabledFor(TRACE)
        group = self._group_sock
        for t in self.scheduler.datagrams_to_send():
            if group is not None and t.dst is ALL_NODES and t.src is self.state.link.link_local:
                try:
                    group.send(t.data)
                    self._sent()
                    if trace:
                        log.log(TRACE, "%s: sent %s RA to %s (%d octets)", self.config.name,
                                t.kind, t.dst, len(t.data))
                except OSError as e:
                    self.send_errors += 1
                    log.warning("%s: sending RA to %s failed: %s", self.config.name, t.dst,
                                e.strerror or e)
                continue
            anc = self._anc_for
            if anc is None or anc[0] is not t.src:
                pktinfo = t.src.packed + struct.pack("@I", self.state.index)
                anc = self._anc_for = (t.src, [(socket.IPPROTO_IPV6, IPV6_PKTINFO, pktinfo)])
            addr = self._addr_for
            if addr is None or addr[0] is not t.dst:
                addr = self._addr_for = (t.dst, (str(t.dst), 0, 0, self.state.index))
            try:
                self.sock.sendmsg([t.data], anc[1], 0, addr[1])
                self._sent()
                if trace:
                    log.log(TRACE, "%s: sent %s RA to %s (%d octets)", self.config.name,
                            t.kind, t.dst, len(t.data))
            except OSError as e:
                self.send_errors += 1
                log.warning("%s: sending RA to %s failed: %s", self.config.name, t.dst,
                            e.strerror or e)

    def _sent(self) -> None:
        if self.first_sent is None:  # the boot figure: when the link first heard us
            self.first_sent = time.monotonic()
            log.info("%s: first RA sent", self.config.name)

    # -- receive
    def _readable(self) -> None:
        with self._cond:
            for _ in range(64):                # bounded: a flood cannot starve the loop
                try:
                    data, ancdata, _flags, addr = self.sock.recvmsg(
                        2048, socket.CMSG_SPACE(4))
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as e:
                    log.warning("%s: receive failed: %s", self.config.name, e.strerror or e)
                    break
                try:
                    hop_limit = -1
                    for level, kind, value in ancdata:
                        if level == socket.IPPROTO_IPV6 and kind == IPV6_HOPLIMIT \
                                and len(value) >= 4:
                            hop_limit = struct.unpack("@i", value[:4])[0]
                    src = IPv6Address(addr[0].split("%")[0])
                    log.log(TRACE, "%s: RS from %s hop limit %d", self.config.name, src,
                            hop_limit)
                    self.scheduler.receive_rs(data, src, hop_limit, self.clock())
                    # an answer due at once (MaxRADelay 0) leaves in this turn of the loop
                    self._flush()
                except Exception:
                    log.exception("%s: RS handling failed", self.config.name)
            self._arm()

    # -- control
    def reconfigure(self, config: InterfaceConfig) -> None:
        with self._cond:
            self.config = config
            self.scheduler.reconfigure(config, self.clock())
            self._arm()

    def set_link(self, state: LinkState) -> None:
        with self._cond:
            self.state = state
            self._anc_for = self._addr_for = None
            self.scheduler.set_link(state.link)
            self._open_group_sock()            # the link-local address may be another
            self._arm()

    def begin_stop(self) -> None:
        self._stop_sender()                    # the final RAs go out from the loop
        with self._cond:
            self.scheduler.stop(self.clock())
            self._arm()

    def close(self) -> None:
        self._stop_sender()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        try:
            self.loop.remove_reader(self.sock.fileno())
        except (ValueError, OSError):
            pass
        with self._cond:
            self.sock.close()
            if self._group_sock is not None:
                self._group_sock.close()
                self._group_sock = None
        self.finished.set()

    def counters(self) -> dict:
        s = self.scheduler
        return {"ras_sent": s.ras_sent - self.send_errors, "rs_received": s.rs_received,
                "rs_dropped_malformed": s.rs_dropped_malformed, "rs_ignored": s.rs_ignored,
                "send_errors": self.send_errors}


# --------------------------------------------------------------------------- the component

COUNTERS = ("ras_sent", "rs_received", "rs_dropped_malformed", "rs_ignored", "send_errors")


class RAService:
    """The RA sender component: start(), reload(config), stop(), stats()."""

    def __init__(self, config: Config, *, loop: asyncio.AbstractEventLoop | None = None,
                 random=None, poll_interval: float = POLL_INTERVAL):
        self.config = config
        self.loop = loop
        if random is None:
            # RA timing needs uniform draws, not secrets: a generator seeded from the
            # system once costs no system call per RA as SystemRandom does
            import random as _random
            random = _random.Random(os.urandom(16))
        self.random = random
        self.poll_interval = poll_interval
        self._ports: dict[str, _Port] = {}
        self._retired: dict[str, dict] = {}     # counters of ports that went away
        self._refused: dict[str, str] = {}      # interface -> why it is not advertised
        self._said: dict[str, str] = {}
        self._watcher: asyncio.Task | None = None
        self._stopping = False
        self._netlink: socket.socket | None = None
        self._poll_soon: asyncio.Handle | None = None

    # -- lifecycle
    async def start(self) -> None:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        for iface in self.config.interfaces:
            if not iface.adv_send_advert:
                log.info("%s: AdvSendAdvert off, not advertising", iface.name)
        try:
            self._netlink = _open_netlink()
        except OSError as e:
            log.info("no rtnetlink socket (%s): reading the interfaces every %g s",
                     e.strerror or e, self.poll_interval)
        else:
            self.loop.add_reader(self._netlink.fileno(), self._on_netlink)
        self._poll()
        self._watcher = self.loop.create_task(self._watch())

    async def reload(self, config: Config) -> None:
        """New configuration: common interfaces keep their schedule (radvd SIGHUP)."""
        old = {i.name for i in self.config.interfaces}
        self.config = config
        wanted = {i.name: i for i in config.interfaces if i.adv_send_advert}
        gone = [n for n in self._ports if n not in wanted]
        for name, port in list(self._ports.items()):
            if name in wanted:
                port.reconfigure(wanted[name])
        if gone:
            await self._stop_ports(gone)
        self._said.clear()
        self._poll()
        log.info("reloaded: %d interface(s), %d new, %d removed", len(config.interfaces),
                 len(set(wanted) - old), len(gone))

    async def stop(self) -> None:
        """Send the final RAs (router lifetime 0) on every interface, then close."""
        self._stopping = True
        self._close_netlink()
        if self._watcher is not None:
            self._watcher.cancel()
            try:
                await self._watcher
            except (asyncio.CancelledError, Exception):
                pass
            self._watcher = None
        await self._stop_ports(list(self._ports))

    async def _stop_ports(self, names: list[str]) -> None:
        ports = [self._ports[n] for n in names if n in self._ports]
        for p in ports:
            p.begin_stop()
        if ports:
            limit = max(p.config.min_delay_between_ras for p in ports) * 3 + 1.0
            try:
                await asyncio.wait_for(asyncio.gather(*(p.finished.wait() for p in ports)),
                                       timeout=min(limit, 30.0))
            except asyncio.TimeoutError:
                log.warning("final RAs not all sent in time")
        for p in ports:
            self._retire(p)

    def _retire(self, port: _Port) -> None:
        name = port.config.name
        if self._ports.get(name) is port:
            del self._ports[name]
        c = port.counters()
        old = self._retired.setdefault(name, dict.fromkeys(COUNTERS, 0))
        for k in COUNTERS:
            old[k] += c[k]
        port.close()

    # -- interface watching
    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval if self._netlink is None
                                else max(self.poll_interval, SAFETY_POLL_INTERVAL))
            try:
                self._poll()
            except Exception:
                log.exception("interface poll failed")

    def _on_netlink(self) -> None:
        """rtnetlink said something changed: read the interfaces in the next turn."""
        concerns = False
        waiting = any(i.adv_send_advert and i.name not in self._ports
                      for i in self.config.interfaces)
        indexes = {p.state.index for p in self._ports.values()}
        for _ in range(64):
            try:
                data = self._netlink.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                concerns = True               # ENOBUFS: messages lost, look anyway
                if e.errno != errno.ENOBUFS:
                    log.warning("rtnetlink: %s; reading the interfaces every %g s",
                                e.strerror or e, self.poll_interval)
                    self._close_netlink()
                    break
                continue
            concerns = concerns or waiting or netlink_concerns(data, indexes)
        if concerns and self._poll_soon is None and not self._stopping:
            self._poll_soon = self.loop.call_soon(self._poll_now)

    def _poll_now(self) -> None:
        self._poll_soon = None
        try:
            self._poll()
        except Exception:
            log.exception("interface poll failed")

    def _close_netlink(self) -> None:
        if self._poll_soon is not None:
            self._poll_soon.cancel()
            self._poll_soon = None
        if self._netlink is not None:
            try:
                self.loop.remove_reader(self._netlink.fileno())
            except (ValueError, OSError):
                pass
            self._netlink.close()
            self._netlink = None

    def _say(self, name: str, level: int, message: str) -> None:
        """Log a state message once per change, not every poll."""
        if self._said.get(name) != message:
            self._said[name] = message
            log.log(level, "%s: %s", name, message)

    def _poll(self) -> None:
        if self._stopping:
            return
        if_inet6 = _read("/proc/net/if_inet6") or ""
        for iface in self.config.interfaces:
            if not iface.adv_send_advert:
                continue
            name = iface.name
            state = read_link_state(name, if_inet6)
            port = self._ports.get(name)
            if not state.ready:
                if port is not None:
                    log.warning("%s: interface %s, advertising suspended", name,
                                "gone" if not state.exists else "down")
                    self._retire(port)
                if not state.exists:
                    self._say(name, logging.INFO if iface.ignore_if_missing else logging.ERROR,
                              "interface does not exist, waiting for it")
                elif not state.up:
                    self._say(name, logging.INFO, "interface is down, waiting for it")
                else:
                    self._say(name, logging.INFO, "no link-local address yet, waiting")
                continue
            if port is not None and port.state.index != state.index:
                # deleted and re-created between two polls: the old socket is bound to nothing
                log.warning("%s: interface was re-created, reopening", name)
                self._retire(port)
                port = None
            errors = validate_interface(iface, self.config.filename, link_mtu=state.mtu)
            if errors:
                if port is not None:
                    self._retire(port)
                self._say(name, logging.ERROR, f"not advertising: {errors[0]}")
                continue
            if port is None:
                try:
                    port = _Port(self, iface, state)
                except OSError as e:
                    self._say(name, logging.ERROR, f"cannot open the ICMPv6 socket: "
                                                   f"{e.strerror or e}")
                    continue
                self._ports[name] = port
                self._say(name, logging.INFO,
                          f"advertising from {state.link.link_local}"
                          f"{' (Mobile IPv6)' if iface.mobile_ipv6 else ''}")
            elif state.link != port.state.link:
                log.info("%s: addresses changed", name)
                port.set_link(state)

    # -- console
    def stats(self) -> dict:
        """{'total': {...}, 'wlan0': {...}} with ras_sent, rs_received, rs_dropped_malformed."""
        out: dict[str, dict] = {}
        names = [i.name for i in self.config.interfaces] + \
            [n for n in self._retired if n not in {i.name for i in self.config.interfaces}]
        for name in names:
            c = dict.fromkeys(COUNTERS, 0)
            for src in (self._retired.get(name), self._ports[name].counters()
                        if name in self._ports else None):
                if src:
                    for k in COUNTERS:
                        c[k] += src[k]
            c["advertising"] = name in self._ports
            out[name] = c
        out["total"] = {k: sum(v[k] for n, v in out.items()) for k in COUNTERS}
        return out

    def first_sent(self) -> float | None:
        """CLOCK_MONOTONIC (seconds since boot) of the first RA on any interface."""
        times = [p.first_sent for p in self._ports.values() if p.first_sent is not None]
        return min(times) if times else None

    def register_commands(self, console) -> None:
        """`ra` on the daemon's console: the counters per interface (`ra json` for programs)."""
        console.register("ra", self.cmd_ra, "router advertisement counters (ra json)")

    def cmd_ra(self, args: list[str]) -> str:
        stats = self.stats()
        if args[:1] == ["json"]:
            import json
            return json.dumps(stats)
        lines = []
        for name, c in stats.items():
            state = "" if name == "total" else (" advertising" if c["advertising"]
                                                 else " waiting")
            lines.append(f"{name}{state} " + " ".join(f"{k} {c[k]}" for k in COUNTERS))
        return "\n".join(lines)

    @property
    def ras_sent(self) -> int:
        return self.stats()["total"]["ras_sent"]

    @property
    def rs_received(self) -> int:
        return self.stats()["total"]["rs_received"]

    @property
    def rs_dropped_malformed(self) -> int:
        return self.stats()["total"]["rs_dropped_malformed"]
