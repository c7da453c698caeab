"""``neutron-xdpath-agent``: keeps one xdpathd in step with Neutron.

Every ``poll_interval`` seconds: read the QoS policies and the floating IPs
(role ``network``) or ports (role ``compute``, with their stateless security
groups and firewall groups) from Neutron, work out each object's owner
document (`mapping.plan`, `secgroups.port_rules`, `fwaas.port_rules`), and
then

- ``PUT`` each document that is new or changed since the last call, or whose
  owner xdpathd no longer has (xdpathd restarted on an empty state), and
  every document again each ``resync_interval``;
- ``DELETE`` each owner of this agent's role (`mapping.ours`: ``network``
  the ``neutron-fip-*``, ``compute`` the ``neutron-port-*``) that Neutron
  no longer asks for.

So a change in Neutron is in force within one poll, a restart of the agent
converges on its first pass (it reads what xdpathd has), a restart of
xdpathd on its next, and nothing but the agent's own owners is touched: an
operator's rules and limits stay. Neutron or xdpathd unreachable: the pass
is logged and tried again, with everything re-sent once xdpathd answers.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from neutron_xdpath import fwaas, mapping, neutron, secgroups
from neutron_xdpath.client import Xdpathd, XdpathdError
from neutron_xdpath.config import AgentConfig, ConfigError, load

if TYPE_CHECKING:
    from openstack.connection import Connection

LOG = logging.getLogger("neutron_xdpath.agent")


@dataclass
class PassResult:
    """What one pass did."""

    put: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    not_enforced: list[str] = field(default_factory=list)


class Agent:
    """The reconciliation; `run` loops `sync_once`."""

    def __init__(
        self,
        config: AgentConfig,
        connect: Callable[[], Connection] | None = None,
        xdpathd: Xdpathd | None = None,
    ) -> None:
        self.config = config
        self._connect = connect or (lambda: neutron.connect(config.neutron))
        self._conn: Connection | None = None
        self.xdpathd = xdpathd or Xdpathd(config.xdpathd_endpoint, config.token, config.timeout)
        # owner -> the document last put (and so in force, unless xdpathd
        # lost it: checked against its owner list each pass)
        self.applied: dict[str, dict[str, Any]] = {}
        self._last_resync = 0.0
        self._reported: set[str] = set()

    def _neutron(self) -> Connection:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def desired(self) -> mapping.Plan:
        conn = self._neutron()
        plan = mapping.plan(
            neutron.subjects(conn, self.config), neutron.policies(conn), self.config.egress
        )
        ports, groups = neutron.security_groups(conn, self.config)
        security = secgroups.port_rules(ports, groups)
        firewalls = neutron.firewall_groups(conn, self.config)
        mapping.add_rules(plan, fwaas.port_rules(ports, firewalls, security))
        return plan

    def sync_once(self) -> PassResult:
        """One pass; raises if Neutron or xdpathd cannot be read."""
        plan = self.desired()
        have = {owner for owner in self.xdpathd.owners() if mapping.ours(owner, self.config.role)}
        now = time.monotonic()
        resync = now - self._last_resync >= self.config.resync_interval
        if resync:
            self._last_resync = now
        result = PassResult(not_enforced=plan.not_enforced)
        for owner, document in plan.documents.items():
            if not resync and owner in have and self.applied.get(owner) == document:
                continue
            try:
                changed = self.xdpathd.put_owner(owner, document)
            except XdpathdError as error:
                if error.unreachable:
                    raise
                self.applied.pop(owner, None)
                result.failed.append(f"{owner}: {error.message}")
                continue
            self.applied[owner] = document
            if changed:
                result.put.append(owner)
        for owner in sorted(have - plan.documents.keys()):
            self.xdpathd.delete_owner(owner)
            self.applied.pop(owner, None)
            result.deleted.append(owner)
        for owner in set(self.applied) - plan.documents.keys():
            self.applied.pop(owner, None)
        self._report(result, plan)
        return result

    def _report(self, result: PassResult, plan: mapping.Plan) -> None:
        for owner in result.put:
            document = plan.documents[owner]
            LOG.info(
                "%s (QoS policy %s): %d limit(s), %d filter rule(s) in force",
                owner,
                plan.policies.get(owner),
                len(document.get("limits", [])),
                len(document.get("rules", [])),
            )
        for owner in result.deleted:
            LOG.info("%s: removed (no limit or security group rule asked for any more)", owner)
        for failure in result.failed:
            LOG.error("xdpathd refused %s", failure)
        notes = set(result.not_enforced)
        for note in sorted(notes - self._reported):
            LOG.warning("not enforced: %s", note)
        self._reported = notes

    def check_interfaces(self) -> None:
        """Warns about configured interfaces xdpath is not attached to."""
        if not self.config.interfaces:
            return
        rows = self.xdpathd.call("GET", "/v1/interfaces") or []
        attached = {row.get("interface") for row in rows if isinstance(row, dict)}
        for name in self.config.interfaces:
            if name not in attached:
                LOG.warning(
                    "interface %s: xdpath is not attached to it (xdpath attach %s)", name, name
                )

    def run(self, stop: threading.Event) -> None:
        """Passes until ``stop`` is set."""
        checked = False
        while not stop.is_set():
            try:
                if not checked:
                    self.check_interfaces()
                    checked = True
                self.sync_once()
            except XdpathdError as error:
                LOG.warning("xdpathd: %s; trying again", error.message)
                self.applied.clear()
            except Exception as error:  # openstacksdk and keystoneauth raise many kinds
                LOG.warning("Neutron: %s: %s; trying again", type(error).__name__, error)
                self._conn = None
            stop.wait(self.config.poll_interval)


def _arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="neutron-xdpath-agent",
        description="Keeps xdpathd enforcing Neutron's QoS limits of this host's role.",
    )
    parser.add_argument(
        "--config-file",
        type=Path,
        default=Path("/etc/neutron/xdpath_agent.ini"),
        help="the agent's INI file (default /etc/neutron/xdpath_agent.ini)",
    )
    parser.add_argument("--log-file", type=Path, help="log here instead of standard error")
    parser.add_argument("--debug", action="store_true", help="log debug messages too")
    parser.add_argument("--once", action="store_true", help="one pass, then exit (0: in step)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        filename=args.log_file,
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        config = load(args.config_file)
    except ConfigError as error:
        print(f"neutron-xdpath-agent: error: {error}", file=sys.stderr)
        return 2
    agent = Agent(config)
    if args.once:
        try:
            result = agent.sync_once()
        except XdpathdError as error:
            print(f"neutron-xdpath-agent: error: xdpathd: {error.message}", file=sys.stderr)
            return 1
        except Exception as error:  # openstacksdk and keystoneauth raise many kinds
            print(f"neutron-xdpath-agent: error: Neutron: {error}", file=sys.stderr)
            return 1
        return 1 if result.failed else 0
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    LOG.info("started: role %s, xdpathd %s", config.role, config.xdpathd_endpoint)
    agent.run(stop)
    LOG.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
