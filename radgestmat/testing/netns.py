"""A worker "machine" in a network namespace of its own, reached through a router namespace that can cut it off.

    host (servers, the other processes)  --veth--  router  --veth--  machine (one worker)

Both namespaces, the veth pairs and the host's route to the machine are created by `Machine.create()`
and removed by `Machine.remove()`; nothing else on the host changes. This kernel has no netem, so a
cut drops packets in the router with `ip rule ... blackhole` (silent, as a dead link: no ICMP, no
reset), for all traffic or for some server ports only. Needs root (`ip netns`); ServerError otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from radgestmat.testing.net import ServerError

# Rules the cut adds in the router sit at these priorities (below the kernel's 0 "local" rule).
_CUT_PRIORITY = 100


def netns_unavailable() -> str:
    """Why a network namespace cannot be made here ("" when it can)."""
    if not shutil.which("ip"):
        return "iproute2's `ip` is not installed (apt-get install iproute2)"
    if os.geteuid() != 0:
        return "network namespaces need root"
    return ""


def _ip(*args: str, netns: str = "", check: bool = True) -> subprocess.CompletedProcess:
    command = ["ip", *(["-n", netns] if netns else []), *args]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise ServerError(f"`{' '.join(command)}` failed: {result.stderr.strip()}")
    return result


class Machine:
    """A namespace ``<tag>-m`` behind a router ``<tag>-r``; ``host_address`` is where the host's servers
    must listen (besides 127.0.0.1) for the machine to reach them."""

    def __init__(self, tag: str = "", *, subnet: int | None = None):
        self.tag = tag or f"rgm{os.getpid() % 100_000}"
        if len(self.tag) > 11:  # interface names: at most 15 characters, the tag plus a 4-character suffix
            raise ValueError(f"tag {self.tag!r} longer than 11 characters")
        n = subnet if subnet is not None else os.getpid() % 250
        self.router = f"{self.tag}-r"
        self.netns = f"{self.tag}-m"
        # Two /30 links: host .1 -- .2 router .5 -- .6 machine.
        self.host_address = f"10.213.{n}.1"
        self.router_host_side = f"10.213.{n}.2"
        self.router_machine_side = f"10.213.{n}.5"
        self.address = f"10.213.{n}.6"
        self.machine_link = f"10.213.{n}.4/30"
        self.cut_rules: list[list[str]] = []

    # --- Building and removing ---------------------------------------------------------------------

    def create(self) -> Machine:
        reason = netns_unavailable()
        if reason:
            raise ServerError(reason)
        self.remove()  # what a killed earlier run left behind
        try:
            _ip("netns", "add", self.router)
            _ip("netns", "add", self.netns)
            host, router_h, router_m, machine = (f"{self.tag}{s}" for s in ("-h", "-rh", "-rm", "-w"))
            _ip("link", "add", host, "type", "veth", "peer", "name", router_h, "netns", self.router)
            _ip(
                "link",
                "add",
                router_m,
                "netns",
                self.router,
                "type",
                "veth",
                "peer",
                "name",
                machine,
                "netns",
                self.netns,
            )
            _ip("addr", "add", f"{self.host_address}/30", "dev", host)
            _ip("link", "set", host, "up")
            _ip("addr", "add", f"{self.router_host_side}/30", "dev", router_h, netns=self.router)
            _ip("addr", "add", f"{self.router_machine_side}/30", "dev", router_m, netns=self.router)
            for link in ("lo", router_h, router_m):
                _ip("link", "set", link, "up", netns=self.router)
            _ip("addr", "add", f"{self.address}/30", "dev", machine, netns=self.netns)
            for link in ("lo", machine):
                _ip("link", "set", link, "up", netns=self.netns)
            _ip("route", "add", "default", "via", self.router_machine_side, netns=self.netns)
            _ip("route", "add", self.machine_link, "via", self.router_host_side, "dev", host)
            subprocess.run(
                ["ip", "netns", "exec", self.router, "sysctl", "-qw", "net.ipv4.ip_forward=1"],
                check=True,
                capture_output=True,
            )
        except (ServerError, subprocess.CalledProcessError):
            self.remove()
            raise
        self.router_host_link, self.router_machine_link = router_h, router_m
        return self

    def remove(self) -> None:
        """Delete both namespaces (their ends of the veth pairs go with them, and so do the host's end
        and its route)."""
        for netns in (self.netns, self.router):
            _ip("netns", "del", netns, check=False)
        _ip("link", "del", f"{self.tag}-h", check=False)

    def __enter__(self) -> Machine:
        return self.create()

    def __exit__(self, *exc) -> None:
        self.remove()

    # --- Running in it -----------------------------------------------------------------------------

    def wrap(self, command: list[str]) -> list[str]:
        """``command`` run inside the machine (``ip netns exec`` execs it: same process, same signals)."""
        return ["ip", "netns", "exec", self.netns, *command]

    # --- Cutting -----------------------------------------------------------------------------------

    def cut(self, ports: tuple[int, ...] = ()) -> None:
        """Drop, in the router, every packet between the machine and the host, or only those to and
        from the host's ``ports`` (one server)."""
        if ports:
            rules = []
            for port in ports:
                rules.append(["iif", self.router_machine_link, "ipproto", "tcp", "dport", str(port)])
                rules.append(["iif", self.router_host_link, "ipproto", "tcp", "sport", str(port)])
        else:
            rules = [["iif", self.router_machine_link], ["iif", self.router_host_link]]
        for selector in rules:
            _ip("rule", "add", "pref", str(_CUT_PRIORITY), *selector, "blackhole", netns=self.router)
            self.cut_rules.append(selector)

    def mend(self) -> None:
        while self.cut_rules:
            selector = self.cut_rules.pop()
            _ip("rule", "del", "pref", str(_CUT_PRIORITY), *selector, "blackhole", netns=self.router, check=False)
