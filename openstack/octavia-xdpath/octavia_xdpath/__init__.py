"""Octavia provider driver for xdpath balancers.

`octavia_xdpath.driver.XdpathProviderDriver` is loaded by octavia-api
(entry point ``octavia.api.drivers: xdpath``); `octavia_xdpath.agent.run` is
started by octavia-driver-agent in a process of its own (entry point
``octavia.driver_agent.provider_agents: xdpath``).
"""

PROVIDER_NAME = "xdpath"

__all__ = ["PROVIDER_NAME"]
