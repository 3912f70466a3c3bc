"""Test hosts on one machine, for the fault runs that break the network (scripts/fault-runs).

Each host is a network namespace with one veth link to a bridge in the machine's own
namespace, all on one /24: the hosts reach each other and the machine (where chatsim and the
delaying proxy run) as separate machines on one switch would. Faults are nftables rules inside
a host's namespace, so they touch only that host's traffic: dropped packets (all of them, a
random share, or one TCP connection's) vanish without a reset, as on a broken link.

This kernel has no `netem` qdisc, so latency comes from `DelayingProxy`, a TCP proxy that
holds every chunk for a fixed time in each direction.

Needs root, iproute2 and nftables (installed from Debian's packages when missing). Where
namespaces cannot be created, `TestNetwork` stops the run with an error: a fault run that
cannot break the network must not pass.
"""

import asyncio
import os
import re
import shutil
import subprocess
import sys
import threading
import time

from harness import run

PREFIX = "chatnet"


def ensure_tools():
    """iproute2's `ip` and nftables' `nft`, from Debian's packages when missing."""
    missing = [package for command, package in (("ip", "iproute2"), ("nft", "nftables")) if not shutil.which(command)]
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"the network fault runs need root (namespaces, nftables) and {', '.join(missing)}")
    environment = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-qq"], env=environment)
    run(["apt-get", "install", "-y", "-qq", *missing], env=environment, stdout=subprocess.DEVNULL)


def remove_leftovers():
    """Namespaces and bridges of earlier runs whose process is gone (a run killed mid-way)."""
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    links = subprocess.run(["ip", "-o", "link", "show", "type", "bridge"], capture_output=True, text=True).stdout
    for name in names + re.findall(r"^\d+: (\w+):", links, flags=re.MULTILINE):
        match = re.fullmatch(rf"{PREFIX}(\d+)(-.*|br)", name)
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            if match.group(2) == "br":
                subprocess.run(["ip", "link", "delete", name], capture_output=True)
            else:
                subprocess.run(["ip", "netns", "delete", name], capture_output=True)


class TestHost:
    """One namespace: its address, how to run a command on it, and its packet filter."""

    def __init__(self, namespace, address):
        self.namespace = namespace
        self.address = address

    @property
    def command_prefix(self):
        """What runs a command on this host."""
        return ["ip", "netns", "exec", self.namespace]

    def nft(self, rule):
        run(self.command_prefix + ["nft", rule])

    def drop(self, peer, percent=100):
        """Drops packets between this host and `peer` (all, or a random `percent` of each
        direction's) without a reset, until `heal`."""
        sample = f"numgen random mod 100 < {percent} " if percent < 100 else ""
        self.nft(f"add rule inet faults output ip daddr {peer} {sample}drop")
        self.nft(f"add rule inet faults input ip saddr {peer} {sample}drop")

    def drop_connection(self, local_port, peer):
        """Drops the packets of this host's TCP connection from `local_port` to `peer`, until
        `heal`: the connection goes silent, and nothing tells either end."""
        self.nft(f"add rule inet faults output ip daddr {peer} tcp sport {local_port} drop")
        self.nft(f"add rule inet faults input ip saddr {peer} tcp dport {local_port} drop")

    def heal(self):
        self.nft("flush chain inet faults output")
        self.nft("flush chain inet faults input")


class TestNetwork:
    """Hosts named `names` on one bridge: host i (from 1) has address SUBNET.i, the machine
    SUBNET.254. Removed by `remove` (and its leftovers by the next run)."""

    def __init__(self, names):
        ensure_tools()
        remove_leftovers()
        pid = os.getpid()
        self.tag = f"{PREFIX}{pid}"
        self.subnet = f"10.{200 + pid % 50}.{pid // 50 % 250}"
        self.bridge = f"{self.tag}br"
        self.gateway = f"{self.subnet}.254"
        self.hosts = {}
        try:
            run(["ip", "link", "add", self.bridge, "type", "bridge"])
        except subprocess.CalledProcessError:
            sys.exit("network namespaces and bridges cannot be created on this machine (root and a kernel "
                     "with network namespaces are needed): the network fault runs cannot run")
        run(["ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge])
        run(["ip", "link", "set", self.bridge, "up"])
        for index, name in enumerate(names, start=1):
            self.hosts[name] = self.add_host(index, name)

    def add_host(self, index, name):
        namespace = f"{self.tag}-{name}"
        outside, inside = f"{self.tag}h{index}", f"{self.tag}n{index}"
        address = f"{self.subnet}.{index}"
        run(["ip", "netns", "add", namespace])
        run(["ip", "link", "add", outside, "type", "veth", "peer", "name", inside])
        run(["ip", "link", "set", outside, "master", self.bridge, "up"])
        run(["ip", "link", "set", inside, "netns", namespace])
        for command in (["addr", "add", f"{address}/24", "dev", inside], ["link", "set", inside, "up"],
                        ["link", "set", "lo", "up"]):
            run(["ip", "-n", namespace, *command])
        host = TestHost(namespace, address)
        host.nft("add table inet faults")
        host.nft("add chain inet faults output { type filter hook output priority 0 ; }")
        host.nft("add chain inet faults input { type filter hook input priority 0 ; }")
        return host

    def remove(self):
        for host in self.hosts.values():
            subprocess.run(["ip", "netns", "delete", host.namespace], capture_output=True)
        subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True)


class DelayingProxy:
    """A TCP proxy on `listen_host` that forwards to `target`, holding every chunk `delay`
    seconds in each direction (so a round trip takes 2 × `delay` longer), in order."""

    def __init__(self, listen_host, target_host, target_port, delay):
        self.target = (target_host, target_port)
        self.delay = delay
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self.serve, args=(listen_host, ready), daemon=True)
        self.thread.start()
        if not ready.wait(timeout=10):
            sys.exit("the delaying proxy did not start")

    def serve(self, listen_host, ready):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self.connected, listen_host, 0))
        self.host, self.port = self.server.sockets[0].getsockname()[:2]
        ready.set()
        self.loop.run_forever()

    async def connected(self, client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(self.pipe(client_reader, server_writer), self.pipe(server_reader, client_writer),
                             return_exceptions=True)

    async def pipe(self, reader, writer):
        """Reads chunks as they come and writes each `delay` after it came."""
        chunks = asyncio.Queue()

        async def read():
            try:
                while data := await reader.read(65536):
                    chunks.put_nowait((time.monotonic() + self.delay, data))
            finally:
                chunks.put_nowait((time.monotonic() + self.delay, b""))

        reading = asyncio.ensure_future(read())
        try:
            while True:
                due, data = await chunks.get()
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        finally:
            reading.cancel()
            writer.close()

    def stop(self):
        def close():
            self.server.close()
            self.loop.stop()

        self.loop.call_soon_threadsafe(close)
        self.thread.join(timeout=5)
