"""Neutron's QoS limits enforced by xdpath.

- `mech_driver.XdpathMechanismDriver`: the ML2 mechanism driver ``xdpath``
  (it binds no port) that registers `qos_driver.XdpathQosDriver`, so that
  Neutron accepts ``packet_rate_limit`` and ``bandwidth_limit`` rules;
- `agent`: ``neutron-xdpath-agent``, which reads Neutron through
  openstacksdk and makes each xdpathd hold the limits (`mapping`), through
  xdpathd's REST API only (`client`).
"""
