"""The xdpath provider driver, loaded into octavia-api.

A skeleton: it accepts load balancers and reports them ACTIVE (and, when
deleted, DELETED) through the driver agent, without programming any xdpath
balancer yet. Every other call is octavia-lib's default, "not implemented",
which Octavia answers with HTTP 501.
"""

from __future__ import annotations

import logging

from octavia_lib.api.drivers import data_models, provider_base
from octavia_lib.common import constants

from octavia_xdpath import status

LOG = logging.getLogger(__name__)


class XdpathProviderDriver(provider_base.ProviderDriver):  # type: ignore[misc]
    """octavia-api makes one of these for every request: keep ``__init__``
    cheap and keep state elsewhere (see `octavia_xdpath.status`)."""

    def get_supported_flavor_metadata(self) -> dict[str, str]:
        return {
            "balancer_group": "The group of xdpath balancers that serves the load "
            "balancer (placeholder: not used yet).",
        }

    def loadbalancer_create(self, loadbalancer: data_models.LoadBalancer) -> None:
        lb_id = loadbalancer.loadbalancer_id
        LOG.info("xdpath: load balancer %s created (VIP %s)", lb_id, loadbalancer.vip_address)
        status.update_loadbalancer_status(
            {
                constants.LOADBALANCERS: [
                    {
                        constants.ID: lb_id,
                        constants.PROVISIONING_STATUS: constants.ACTIVE,
                        constants.OPERATING_STATUS: constants.ONLINE,
                    }
                ]
            }
        )

    def loadbalancer_delete(
        self, loadbalancer: data_models.LoadBalancer, cascade: bool = False
    ) -> None:
        lb_id = loadbalancer.loadbalancer_id
        LOG.info("xdpath: load balancer %s deleted (cascade %s)", lb_id, cascade)
        status.update_loadbalancer_status(
            {
                constants.LOADBALANCERS: [
                    {
                        constants.ID: lb_id,
                        constants.PROVISIONING_STATUS: constants.DELETED,
                    }
                ]
            }
        )
