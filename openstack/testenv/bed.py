"""A network of namespaces for the end-to-end test: a client and an outsider,
two xdpath balancers, three backends, on one bridge; and a management link
from this (the host's) namespace to each balancer, where its xdpathd listens
on TCP with a bearer token for Octavia's driver and agent.

```
 client .1   outsider .5   lb1 .2   lb2 .3   b1 .11  b2 .12  b3 .13     10.199.<n>.0/24
    └────────────┴────────────┴───────┴────────┴───────┴───────┴── br0 (namespace sw)
 host xo<n>m1 10.251.<n>.1/30 ── lb1 mgmt .2 : xdpathd --listen :9000 --token-file
 host xo<n>m2 10.251.<n>.5/30 ── lb2 mgmt .6 : xdpathd
```

Backends run nginx (answering with their name) on the VIP and on their own
address, `xdpath decap` on eth0, the VIP on lo with arp_ignore/arp_announce:
direct server return, as doc/openstack.md tells operators to set them up.
Balancers run `xdpath attach eth0` with an outer source prefix
(`xdpath lb config`); Octavia gives them VIPs through xdpathd's API only.

Every namespace is named ``xdpo-<pid>-<role>`` and removed (with xdpath's
state and pins of it) by `Bed.destroy`, and by the next bed when the
process that made it is gone. Traffic stays inside these namespaces and on
the management links.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from testenv.process import Service, check_output, tail

PREFIX = "xdpo-"
NETNS_DIR = Path("/run/netns")
STATE_ROOT = Path("/var/lib/xdpath")
PIN_ROOT = Path("/sys/fs/bpf/xdpath")
OUTER_SOURCE_V4 = "172.16.0.0/16"
XDPATHD_PORT = 9000


@dataclass(frozen=True)
class Host:
    role: str
    number: int  # host part of its address

    def mac(self, subnet: int) -> str:
        return f"02:c9:{subnet:02x}:00:00:{self.number:02x}"


HOSTS = {
    role: Host(role, number)
    for role, number in [
        ("client", 1),
        ("lb1", 2),
        ("lb2", 3),
        ("outsider", 5),
        ("b1", 11),
        ("b2", 12),
        ("b3", 13),
    ]
}
BALANCERS = ("lb1", "lb2")
BACKENDS = ("b1", "b2", "b3")


def binaries() -> Path:
    """Where xdpath and xdpathd are: ``XDPATH_BIN_DIR``, else the
    repository's ``target/release``."""
    given = os.environ.get("XDPATH_BIN_DIR")
    here = Path(given) if given else Path(__file__).resolve().parents[2] / "target" / "release"
    for name in ("xdpath", "xdpathd"):
        if not (here / name).is_file():
            raise RuntimeError(
                f"{here / name} is missing: build it (cargo build --release) or set XDPATH_BIN_DIR"
            )
    return here


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def namespace_key(path: Path) -> str | None:
    """xdpath's key of a namespace (``netns-<cookie>-<boot id>``)."""
    code = (
        "import socket;s=socket.socket();"
        "print(int.from_bytes(s.getsockopt(socket.SOL_SOCKET, 71, 8), 'little'))"
    )
    done = subprocess.run(
        ["nsenter", f"--net={path}", "python3", "-c", code],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return None
    boot = re.sub(r"[^0-9a-f]", "", Path("/proc/sys/kernel/random/boot_id").read_text().lower())
    return f"netns-{done.stdout.strip()}-{boot}"


def remove_namespace(name: str) -> None:
    """Removes a namespace with xdpath's state and pins of it."""
    path = NETNS_DIR / name
    key = namespace_key(path) if path.exists() else None
    if key:
        for root in (PIN_ROOT, STATE_ROOT):
            shutil.rmtree(root / key, ignore_errors=True)
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def sweep() -> None:
    """Removes the namespaces of beds whose process is gone."""
    if not NETNS_DIR.is_dir():
        return
    for entry in NETNS_DIR.iterdir():
        match = re.fullmatch(rf"{PREFIX}(\d+)-\w+", entry.name)
        if match and not _pid_alive(int(match.group(1))):
            remove_namespace(entry.name)


class Bed:
    """The network; see the module's documentation."""

    def __init__(self, workdir: Path, bins: Path | None = None) -> None:
        self.workdir = workdir
        self.bins = bins or binaries()
        self.pid = os.getpid()
        self.subnet = self.pid % 200 + 20
        self.created: list[str] = []
        self.xdpathd: dict[str, Service] = {}
        self.nginx: dict[str, Service] = {}
        self.token_file = workdir / "xdpathd.token"
        self.vip = "203.0.113.50"

    # Names and addresses --------------------------------------------------

    def ns(self, role: str) -> str:
        return f"{PREFIX}{self.pid}-{role}"

    def address(self, role: str) -> str:
        return f"10.199.{self.subnet}.{HOSTS[role].number}"

    def mgmt(self, balancer: str) -> tuple[str, str, str]:
        """(host side interface, host address, balancer address)."""
        index = BALANCERS.index(balancer)
        base = 4 * index
        return (
            f"xo{self.subnet}m{index + 1}",
            f"10.251.{self.subnet}.{base + 1}",
            f"10.251.{self.subnet}.{base + 2}",
        )

    def endpoint(self, balancer: str) -> str:
        return f"http://{self.mgmt(balancer)[2]}:{XDPATHD_PORT}"

    @property
    def endpoints(self) -> list[str]:
        return [self.endpoint(balancer) for balancer in BALANCERS]

    # Running things -----------------------------------------------------------

    def argv(self, role: str, *argv: str) -> list[str]:
        return ["nsenter", f"--net={NETNS_DIR / self.ns(role)}", *argv]

    def run(self, role: str, *argv: str) -> str:
        return check_output(self.argv(role, *argv), f"{argv[0]} in {role}")

    def try_run(
        self, role: str, *argv: str, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(role, *argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def xdpath(self, role: str, *args: str) -> str:
        return self.run(role, str(self.bins / "xdpath"), *args)

    # Building -------------------------------------------------------------

    def build(self) -> Bed:
        sweep()
        try:
            self._build()
        except BaseException:
            self.destroy()
            raise
        return self

    def _add_namespace(self, role: str) -> None:
        check_output(["ip", "netns", "add", self.ns(role)], "ip netns add")
        self.created.append(self.ns(role))
        self.run(
            role,
            "sysctl",
            "-q",
            "-w",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        )
        self.run(role, "ip", "link", "set", "lo", "up")

    def _build(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.token_file.write_text(secrets.token_hex(24) + "\n")
        self.token_file.chmod(0o600)
        self._add_namespace("sw")
        self.run("sw", "ip", "link", "add", "br0", "type", "bridge", "stp_state", "0")
        self.run("sw", "ip", "link", "set", "br0", "up")
        for host in HOSTS.values():
            self._add_host(host)
        for host in HOSTS.values():
            for peer in HOSTS.values():
                if peer.role != host.role:
                    self.run(
                        host.role,
                        "ip",
                        "neigh",
                        "replace",
                        self.address(peer.role),
                        "lladdr",
                        peer.mac(self.subnet),
                        "dev",
                        "eth0",
                        "nud",
                        "permanent",
                    )
        for balancer in BALANCERS:
            self._balancer(balancer)
        for backend in BACKENDS:
            self._backend(backend)
        self.route_via("lb1")
        self.route_via("lb1", role="outsider")

    def _add_host(self, host: Host) -> None:
        role = host.role
        self._add_namespace(role)
        port = f"p{role}"
        check_output(
            [
                "ip",
                "link",
                "add",
                "eth0",
                "address",
                host.mac(self.subnet),
                "netns",
                self.ns(role),
                "type",
                "veth",
                "peer",
                "name",
                port,
                "netns",
                self.ns("sw"),
            ],
            "ip link add",
        )
        self.run("sw", "ip", "link", "set", port, "master", "br0", "up")
        self.run(role, "ip", "addr", "add", f"{self.address(role)}/24", "dev", "eth0")
        self.run(role, "ip", "link", "set", "eth0", "up")
        # veth leaves checksums to the receiver; frames that XDP_TX or
        # decapsulation handle lose that note, so the sender fills them in.
        self.run(role, "ethtool", "-K", "eth0", "tx", "off")

    def _balancer(self, role: str) -> None:
        self.run(
            role,
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.conf.all.forwarding=1",
        )
        # A frame sent back out with XDP_TX reaches a veth peer only if the
        # peer runs an XDP program too: xdpath with no rules passes all.
        self.xdpath("sw", "attach", f"p{role}")
        self.xdpath(role, "attach", "eth0")
        self.xdpath(role, "lb", "config", "--source-v4", OUTER_SOURCE_V4)
        host_side, host_address, lb_address = self.mgmt(role)
        check_output(
            [
                "ip",
                "link",
                "add",
                host_side,
                "type",
                "veth",
                "peer",
                "name",
                "mgmt",
                "netns",
                self.ns(role),
            ],
            "ip link add (management)",
        )
        check_output(["ip", "addr", "add", f"{host_address}/30", "dev", host_side], "ip addr")
        check_output(["ip", "link", "set", host_side, "up"], "ip link set")
        self.run(role, "ip", "addr", "add", f"{lb_address}/30", "dev", "mgmt")
        self.run(role, "ip", "link", "set", "mgmt", "up")
        self.start_xdpathd(role)

    def _backend(self, role: str) -> None:
        self.run(
            role,
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.conf.all.arp_ignore=1",
            "net.ipv4.conf.all.arp_announce=2",
        )
        self.run(role, "ip", "addr", "add", f"{self.vip}/32", "dev", "lo")
        self.xdpath(role, "decap", "eth0")
        self.start_nginx(role)

    def route_via(self, balancer: str, role: str = "client") -> None:
        """Sends ``role``'s traffic to the VIP through ``balancer``."""
        self.run(role, "ip", "route", "replace", f"{self.vip}/32", "via", self.address(balancer))

    # Services -------------------------------------------------------------

    def start_xdpathd(self, role: str) -> None:
        lb_address = self.mgmt(role)[2]
        service = Service.start(
            f"xdpathd on {role}",
            self.argv(
                role,
                str(self.bins / "xdpathd"),
                "--socket",
                str(self.workdir / f"{role}.sock"),
                "--listen",
                f"{lb_address}:{XDPATHD_PORT}",
                "--token-file",
                str(self.token_file),
            ),
            self.workdir / f"xdpathd-{role}.log",
        )
        self.xdpathd[role] = service
        deadline = time.monotonic() + 30
        while True:
            service.check_running()
            with (
                contextlib.suppress(OSError),
                socket.create_connection((lb_address, XDPATHD_PORT), timeout=1),
            ):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"xdpathd on {role} does not listen:\n{tail(service.log)}")
            time.sleep(0.1)

    def stop_xdpathd(self, role: str) -> None:
        service = self.xdpathd.pop(role, None)
        if service is not None:
            service.stop()

    def start_nginx(self, role: str) -> None:
        root = self.workdir / f"nginx-{role}"
        root.mkdir(parents=True, exist_ok=True)
        config = root / "nginx.conf"
        config.write_text(
            f"""daemon off;
master_process off;
user root;
pid {root}/nginx.pid;
error_log stderr crit;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {root}/body; proxy_temp_path {root}/proxy;
  fastcgi_temp_path {root}/fastcgi; uwsgi_temp_path {root}/uwsgi; scgi_temp_path {root}/scgi;
  server {{
    listen {self.vip}:80; listen {self.address(role)}:80;
    location / {{ add_header X-Backend {role}; return 200 "{role}\\n"; }}
  }}
}}
"""
        )
        service = Service.start(
            f"nginx on {role}",
            self.argv(role, "nginx", "-c", str(config), "-p", str(root)),
            self.workdir / f"nginx-{role}.log",
        )
        self.nginx[role] = service
        deadline = time.monotonic() + 15
        while True:
            service.check_running()
            done = self.try_run(
                role, "curl", "-s", "--max-time", "1", f"http://{self.address(role)}/"
            )
            if done.stdout.strip() == role:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx on {role} does not answer:\n{tail(service.log)}")
            time.sleep(0.1)

    def stop_nginx(self, role: str) -> None:
        service = self.nginx.pop(role, None)
        if service is not None:
            service.stop()

    # Traffic --------------------------------------------------------------

    def requests(self, count: int, role: str = "client", timeout: float = 3) -> list[str]:
        """``count`` HTTP requests to the VIP, each on a new connection; the
        backend that answered each ("" when none did)."""
        argv = ["curl", "-sg", "--max-time", str(timeout), "-H", "Connection: close"]
        argv += [f"http://{self.vip}/?{n}" for n in range(count)]
        done = self.try_run(role, *argv, timeout=timeout * count + 30)
        return [line.strip() for line in done.stdout.splitlines()]

    def flows(self, ports: Iterable[int], role: str = "client") -> dict[int, str]:
        """One request per client source port; the backend of each."""
        script = """
import socket, struct, sys
vip = sys.argv[1]
for port in map(int, sys.argv[2:]):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.settimeout(3)
    try:
        s.bind(("", port))
        s.connect((vip, 80))
        s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        print(port, data.rsplit(b"\\r\\n\\r\\n", 1)[-1].decode().strip() or "empty")
    except OSError as error:
        print(port, "error:" + type(error).__name__)
    finally:
        s.close()
"""
        done = self.try_run(role, "python3", "-c", script, self.vip, *map(str, ports), timeout=120)
        result: dict[int, str] = {}
        for line in done.stdout.splitlines():
            port, _, backend = line.partition(" ")
            result[int(port)] = backend
        return result

    # Removal --------------------------------------------------------------

    def destroy(self) -> None:
        for role in list(self.nginx):
            self.stop_nginx(role)
        for role in list(self.xdpathd):
            self.stop_xdpathd(role)
        for name in reversed(self.created):
            remove_namespace(name)
        self.created.clear()
        for balancer in BALANCERS:
            # The host side of a management link goes with its peer's
            # namespace; this is for a bed that failed half-way.
            subprocess.run(
                ["ip", "link", "del", self.mgmt(balancer)[0]], capture_output=True, check=False
            )

    def logs(self) -> str:
        parts = []
        for role in BALANCERS:
            parts.append(f"--- xdpathd on {role}\n{tail(self.workdir / f'xdpathd-{role}.log')}")
        return "\n".join(parts)
