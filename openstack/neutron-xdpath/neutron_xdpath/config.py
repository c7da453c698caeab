"""The agent's INI file, in Neutron's style (``/etc/neutron/xdpath_agent.ini``):

```ini
[neutron]
# Keystone (any keystoneauth plug-in and its options, as in clouds.yaml) ...
auth_type = password
auth_url = http://controller:5000/v3
username = neutron
password = secret
project_name = service
user_domain_name = Default
project_domain_name = Default
region_name = RegionOne
# ... or, for a Neutron with auth_strategy = noauth, its endpoint:
# auth_type = none
# endpoint = http://127.0.0.1:9696
# project_id = <the X-Project-Id header noauth takes>
[xdpathd]
endpoint = http://127.0.0.1:9000      # or unix:/run/xdpath/xdpathd.sock
token_file = /etc/xdpath/api-token
timeout = 5
[agent]
role = network                        # network: floating IPs; compute: ports
interfaces = eth1                     # what xdpath is attached to, checked at start
host =                                # compute: only ports bound to this host
egress = false                        # true: this host receives the VMs' traffic
poll_interval = 2
resync_interval = 60
```
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass, field
from pathlib import Path

ROLES = ("network", "compute")


class ConfigError(Exception):
    """A missing or wrong option."""


@dataclass(frozen=True)
class NeutronSettings:
    auth_type: str = "password"
    endpoint: str | None = None
    project_id: str | None = None
    # Keystone options for the auth plug-in (auth_url, username, ...).
    auth: dict[str, str] = field(default_factory=dict)
    region_name: str | None = None
    interface: str | None = None


@dataclass(frozen=True)
class AgentConfig:
    neutron: NeutronSettings
    xdpathd_endpoint: str
    token: str | None
    timeout: float
    role: str
    interfaces: tuple[str, ...]
    host: str | None
    egress: bool
    poll_interval: float
    resync_interval: float


# The most seconds an interval or timeout may be: a day.
MAX_SECONDS = 86400.0

_NEUTRON_OWN = {"auth_type", "endpoint", "project_id", "region_name", "interface"}


def _float(section: configparser.SectionProxy, key: str, default: float) -> float:
    text = section.get(key, fallback=str(default))
    try:
        value = float(text)
    except ValueError as error:
        raise ConfigError(f"[{section.name}] {key}: {text!r} is not a number") from error
    # "nan" and "inf" parse as floats: nan passes every "<= 0" test and makes
    # the agent spin (its wait does not wait), inf overflows that wait.
    if not 0 < value <= MAX_SECONDS:
        raise ConfigError(
            f"[{section.name}] {key}: must be above 0 and at most {MAX_SECONDS:g} (seconds)"
        )
    return value


def _bool(section: configparser.SectionProxy, key: str) -> bool:
    try:
        return section.getboolean(key, fallback=False)
    except ValueError as error:
        raise ConfigError(f"[{section.name}] {key}: not true or false") from error


def load(path: Path) -> AgentConfig:
    """The configuration in ``path``, checked."""
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#", ";"))
    try:
        with path.open() as source:
            parser.read_file(source)
    except OSError as error:
        raise ConfigError(f"{path}: {error.strerror}") from error
    except configparser.Error as error:
        raise ConfigError(f"{path}: {error}") from error
    for name in ("neutron", "xdpathd", "agent"):
        if not parser.has_section(name):
            parser.add_section(name)
    neutron = parser["neutron"]
    auth_type = neutron.get("auth_type", "password")
    if auth_type in ("none", "noauth") and not neutron.get("endpoint"):
        raise ConfigError("[neutron] endpoint: needed with auth_type = none")
    settings = NeutronSettings(
        auth_type=auth_type,
        endpoint=neutron.get("endpoint") or None,
        project_id=neutron.get("project_id") or None,
        auth={k: v for k, v in neutron.items() if k not in _NEUTRON_OWN and v},
        region_name=neutron.get("region_name") or None,
        interface=neutron.get("interface") or None,
    )
    xdpathd = parser["xdpathd"]
    endpoint = xdpathd.get("endpoint", "unix:/run/xdpath/xdpathd.sock")
    token = None
    if token_file := xdpathd.get("token_file"):
        try:
            token = Path(token_file).read_text().strip()
        except OSError as error:
            raise ConfigError(f"[xdpathd] token_file {token_file}: {error.strerror}") from error
    agent = parser["agent"]
    role = agent.get("role", "network")
    if role not in ROLES:
        raise ConfigError(f"[agent] role: {role!r} is not one of {', '.join(ROLES)}")
    interfaces = tuple(name.strip() for name in agent.get("interfaces", "").split(",") if name)
    return AgentConfig(
        neutron=settings,
        xdpathd_endpoint=endpoint,
        token=token,
        timeout=_float(xdpathd, "timeout", 5.0),
        role=role,
        interfaces=tuple(name for name in interfaces if name),
        host=agent.get("host") or None,
        egress=_bool(agent, "egress"),
        poll_interval=_float(agent, "poll_interval", 2.0),
        resync_interval=_float(agent, "resync_interval", 60.0),
    )
