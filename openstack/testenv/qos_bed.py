"""Namespaces for the Neutron end-to-end test: the "external" side and a
network node whose xdpath enforces Neutron's limits on floating IPs.

```
 ext eth0 203.0.113.1/24 ──veth── gw eth0 203.0.113.2/24 (+ each FIP /32)   xdpath attach eth0
 host xq<n>m 10.252.<n>.1/30 ── gw mgmt 10.252.<n>.2/30 : xdpathd --listen :9000 --token-file
```

``gw`` stands for the network node: the floating IPs that Neutron hands out
from its external subnet (203.0.113.0/24 in the test) are added to its
``eth0``; the agent runs in the host's namespace, as Neutron does, and
reaches xdpathd over the management link with a bearer token.

Traffic: `send` runs a paced UDP sender in ``ext`` (a few flows at given
rates), `receive` counts what arrives in ``gw`` per destination address.
Namespaces are ``xdpq-<pid>-<role>``, removed (with xdpath's state and pins
of them) by `QosBed.destroy`, and by the next bed when their process is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from testenv.bed import NETNS_DIR, XDPATHD_PORT, binaries, remove_namespace
from testenv.process import Service, check_output, tail

PREFIX = "xdpq-"
EXTERNAL_CIDR = "203.0.113.0/24"
EXT_ADDRESS = "203.0.113.1"
GW_ADDRESS = "203.0.113.2"
PORT = 5001

_SENDER = """
import json, socket, sys, time
PORT = int(sys.argv[3])
flows = [(a, float(r)) for a, r in (f.split("=") for f in sys.argv[2].split(","))]
duration = float(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sent = [0] * len(flows)
start = time.monotonic()
while (now := time.monotonic()) - start < duration:
    elapsed = now - start
    for i, (address, rate) in enumerate(flows):
        while sent[i] < elapsed * rate:
            try:
                s.sendto(b"x" * 64, (address, PORT))
            except OSError:
                pass
            sent[i] += 1
    time.sleep(0.0005)
print(json.dumps({"sent": dict(zip([a for a, _ in flows], sent)),
                  "seconds": time.monotonic() - start}))
"""

_RECEIVER = """
import json, select, socket, sys, time
PORT = int(sys.argv[3])
duration = float(sys.argv[1])
socks = {}
for address in sys.argv[2].split(","):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((address, PORT))
    s.setblocking(False)
    socks[s] = address
counts = {a: 0 for a in socks.values()}
print("ready", flush=True)
end = time.monotonic() + duration
while (left := end - time.monotonic()) > 0:
    ready, _, _ = select.select(list(socks), [], [], left)
    for s in ready:
        while True:
            try:
                s.recv(2048)
            except BlockingIOError:
                break
            counts[socks[s]] += 1
print(json.dumps(counts), flush=True)
"""


def sweep() -> None:
    """Removes the namespaces of beds whose process is gone."""
    if not NETNS_DIR.is_dir():
        return
    for entry in NETNS_DIR.iterdir():
        match = re.fullmatch(rf"{PREFIX}(\d+)-\w+", entry.name)
        if match and not Path(f"/proc/{match.group(1)}").exists():
            remove_namespace(entry.name)


class QosBed:
    """The network; see the module's documentation."""

    def __init__(self, workdir: Path, bins: Path | None = None) -> None:
        self.workdir = workdir
        self.bins = bins or binaries()
        self.pid = os.getpid()
        self.subnet = self.pid % 200 + 20
        self.created: list[str] = []
        self.xdpathd: Service | None = None
        self.token_file = workdir / "xdpathd.token"
        self.host_link = f"xq{self.subnet}m"
        self.host_address = f"10.252.{self.subnet}.1"
        self.gw_mgmt = f"10.252.{self.subnet}.2"

    @property
    def endpoint(self) -> str:
        return f"http://{self.gw_mgmt}:{XDPATHD_PORT}"

    @property
    def token(self) -> str:
        return self.token_file.read_text().strip()

    def ns(self, role: str) -> str:
        return f"{PREFIX}{self.pid}-{role}"

    def argv(self, role: str, *argv: str) -> list[str]:
        return ["nsenter", f"--net={NETNS_DIR / self.ns(role)}", *argv]

    def run(self, role: str, *argv: str) -> str:
        return check_output(self.argv(role, *argv), f"{argv[0]} in {role}")

    def xdpath(self, *args: str) -> str:
        return self.run("gw", str(self.bins / "xdpath"), *args)

    # Building -------------------------------------------------------------

    def build(self) -> QosBed:
        sweep()
        try:
            self._build()
        except BaseException:
            self.destroy()
            raise
        return self

    def add_namespace(self, role: str) -> None:
        """Another namespace of the bed's, ``role`` (removed with it)."""
        self._namespace(role)

    def _namespace(self, role: str) -> None:
        check_output(["ip", "netns", "add", self.ns(role)], "ip netns add")
        self.created.append(self.ns(role))
        self.run(role, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1")
        self.run(role, "ip", "link", "set", "lo", "up")

    def _build(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.token_file.write_text(secrets.token_hex(24) + "\n")
        self.token_file.chmod(0o600)
        self._namespace("ext")
        self._namespace("gw")
        check_output(
            [
                "ip", "link", "add", "eth0", "address", "02:c9:71:00:00:01",
                "netns", self.ns("ext"), "type", "veth", "peer", "name", "eth0",
                "address", "02:c9:71:00:00:02", "netns", self.ns("gw"),
            ],
            "ip link add",
        )  # fmt: skip
        for role, address, peer, mac in (
            ("ext", EXT_ADDRESS, GW_ADDRESS, "02:c9:71:00:00:02"),
            ("gw", GW_ADDRESS, EXT_ADDRESS, "02:c9:71:00:00:01"),
        ):
            self.run(role, "ip", "addr", "add", f"{address}/24", "dev", "eth0")
            self.run(role, "ip", "link", "set", "eth0", "up")
            self.run(role, "ip", "neigh", "replace", peer, "lladdr", mac, "dev", "eth0",
                     "nud", "permanent")  # fmt: skip
        self.xdpath("attach", "eth0")
        check_output(
            ["ip", "link", "add", self.host_link, "type", "veth", "peer", "name", "mgmt",
             "netns", self.ns("gw")],
            "ip link add (management)",
        )  # fmt: skip
        check_output(["ip", "addr", "add", f"{self.host_address}/30", "dev", self.host_link], "ip")
        check_output(["ip", "link", "set", self.host_link, "up"], "ip link set")
        self.run("gw", "ip", "addr", "add", f"{self.gw_mgmt}/30", "dev", "mgmt")
        self.run("gw", "ip", "link", "set", "mgmt", "up")
        self.start_xdpathd()

    def add_floating_ip(self, address: str) -> None:
        """The network node answers for ``address`` (a FIP Neutron handed out)."""
        self.run("gw", "ip", "addr", "replace", f"{address}/32", "dev", "eth0")
        self.run("ext", "ip", "neigh", "replace", address, "lladdr", "02:c9:71:00:00:02",
                 "dev", "eth0", "nud", "permanent")  # fmt: skip

    # xdpathd ----------------------------------------------------------------

    def start_xdpathd(self) -> None:
        service = Service.start(
            "xdpathd on gw",
            self.argv(
                "gw",
                str(self.bins / "xdpathd"),
                "--socket",
                str(self.workdir / "gw.sock"),
                "--listen",
                f"{self.gw_mgmt}:{XDPATHD_PORT}",
                "--token-file",
                str(self.token_file),
            ),
            self.workdir / "xdpathd-gw.log",
        )
        self.xdpathd = service
        deadline = time.monotonic() + 30
        while True:
            service.check_running()
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.gw_mgmt, XDPATHD_PORT), timeout=1),
            ):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"xdpathd on gw does not listen:\n{tail(service.log)}")
            time.sleep(0.1)

    def stop_xdpathd(self) -> None:
        if self.xdpathd is not None:
            self.xdpathd.stop()
            self.xdpathd = None

    # Traffic --------------------------------------------------------------

    def traffic(self, flows: Mapping[str, float], seconds: float) -> dict[str, dict[str, float]]:
        """Sends UDP from ``ext`` to each address at its rate (packets per
        second) for ``seconds``; per address: sent, received (in ``gw``)."""
        receiver = subprocess.Popen(
            self.argv(
                "gw", "python3", "-c", _RECEIVER, str(seconds + 1.5), ",".join(flows), str(PORT)
            ),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            ready = receiver.stdout.readline().strip() if receiver.stdout else ""
            if ready != "ready":
                raise RuntimeError(f"the receiver in gw did not start: {ready}")
            spec = ",".join(f"{address}={rate}" for address, rate in flows.items())
            sent = json.loads(
                self.run("ext", "python3", "-c", _SENDER, str(seconds), spec, str(PORT))
            )
            out, _ = receiver.communicate(timeout=seconds + 30)
        finally:
            if receiver.poll() is None:
                receiver.kill()
                receiver.wait()
        received = json.loads(out.strip().splitlines()[-1])
        return {
            address: {
                "sent": float(sent["sent"][address]),
                "received": float(received[address]),
                "seconds": float(sent["seconds"]),
            }
            for address in flows
        }

    # Removal --------------------------------------------------------------

    def destroy(self) -> None:
        self.stop_xdpathd()
        for name in reversed(self.created):
            remove_namespace(name)
        self.created.clear()
        subprocess.run(["ip", "link", "del", self.host_link], capture_output=True, check=False)

    def logs(self) -> str:
        return f"--- xdpathd on gw\n{tail(self.workdir / 'xdpathd-gw.log')}"
