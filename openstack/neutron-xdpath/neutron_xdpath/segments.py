"""Which headers a port's rules and limits match, from its network's
segment: pure functions, no I/O.

On a compute node the agent's interface is the tunnel interface, where a
tenant network of type ``vxlan`` or ``geneve`` arrives encapsulated: its
ports' rules and limits get ``vni`` = the network's segmentation id, so
that xdpath matches the *inner* headers of that VNI's frames (and the
same addresses on another VNI are not touched). Other types stay on the
outer (the only) headers: ``flat`` and ``local`` as they are, ``vlan``
with a note, since xdpath matches no VLAN id (it parses past up to two
VLAN tags): a ``vlan`` port's rules match its addresses in every VLAN on
the interface. A network with several segments takes its single
``vxlan`` or ``geneve`` one; with none or several, the outer headers,
with a note.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

TUNNEL_TYPES = ("vxlan", "geneve")


@dataclass(frozen=True)
class Segment:
    """A network's segment, as Neutron's provider attributes give it."""

    network_type: str | None = None
    segmentation_id: int | None = None
    # Set when the segment was not clear (several tunnel segments).
    ambiguous: bool = False

    @property
    def vni(self) -> int | None:
        """The VNI of a tunnel segment; ``None``: match outer headers."""
        if self.network_type in TUNNEL_TYPES and not self.ambiguous:
            return self.segmentation_id
        return None

    def note(self, what: str) -> str | None:
        """What to report about ``what`` (``port <id>``) on this segment."""
        if self.ambiguous:
            return (
                f"{what}: its network has several vxlan/geneve segments: its rules and "
                "limits match the outer headers only"
            )
        if self.network_type == "vlan":
            return (
                f"{what}: vlan network (segment {self.segmentation_id}): its rules and "
                "limits match its addresses in any VLAN (xdpath matches no VLAN id)"
            )
        return None


def _number(value: Any) -> int | None:
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None


def of_network(network: Mapping[str, Any]) -> Segment:
    """A network's segment from its ``provider:*`` attributes (openstacksdk:
    ``provider_network_type``, ``provider_segmentation_id``), or from its
    ``segments`` list (multi-provider networks)."""
    kind = network.get("provider_network_type")
    if kind:
        return Segment(str(kind), _number(network.get("provider_segmentation_id")))
    parts = [part for part in network.get("segments") or [] if isinstance(part, Mapping)]
    tunnels = [p for p in parts if p.get("provider:network_type") in TUNNEL_TYPES]
    if not parts:
        return Segment()
    one = tunnels[0] if tunnels else parts[0]
    return Segment(
        str(one.get("provider:network_type")),
        _number(one.get("provider:segmentation_id")),
        ambiguous=len(tunnels) > 1,
    )


def in_segment(
    entries: Iterable[Mapping[str, Any]], segment: Segment | None
) -> list[dict[str, Any]]:
    """``entries`` (rule or limit bodies) with the segment's ``vni``."""
    vni = segment.vni if segment is not None else None
    if vni is None:
        return [dict(entry) for entry in entries]
    return [{**entry, "vni": str(vni)} for entry in entries]
