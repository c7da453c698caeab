//! The balancer's and the decapsulating backend's states and frames.

use std::net::IpAddr;

use xdpath_core::build::{doc_v6, FrameSpec, Network, Transport};
use xdpath_core::wire::tcp::{FLAG_ACK, FLAG_SYN};

use super::{fixture_seeds, BACKEND4, CLIENT4, GUE_PORT, VIP4};
use crate::differential::frames::Endpoint;
use xdpath::lb::compile::plan;
use xdpath::lb::edit::{self, ConfigChange, VipOptions};
use xdpath::lb::install::CompiledLb;
use xdpath::lb::state::{Encap, LbState};

/// The balancer's VIPs: `ADDRESS:PORT/PROTOCOL`, encapsulation, flags,
/// Maglev table size, and the weights of the three backends.
type VipRow = (
    &'static str,
    Encap,
    &'static str,
    Option<u32>,
    &'static [u64],
);

const VIPS: [VipRow; 7] = [
    ("203.0.113.10:80/tcp", Encap::Ipip, "", None, &[1, 2, 1]),
    (
        "[2001:db8::10]:443/tcp",
        Encap::Gue,
        "",
        Some(251),
        &[1, 0, 3],
    ),
    (
        "203.0.113.10:*/udp",
        Encap::Ipip,
        "source-hash",
        Some(7),
        &[1, 1, 1],
    ),
    ("203.0.113.11:80/tcp", Encap::Ipip, "", Some(13), &[]),
    (
        "[2001:db8::20]:*/udp",
        Encap::Gue,
        "source-hash",
        Some(251),
        &[0, 1, 1],
    ),
    (
        "203.0.113.12:443/tcp",
        Encap::Gue,
        "",
        Some(251),
        &[2, 1, 0],
    ),
    (
        "203.0.113.13:80/tcp",
        Encap::Ipip,
        "no-conntrack",
        Some(251),
        &[1, 1, 1],
    ),
];

/// The VIPs as endpoints frames are sent to.
pub fn vip_endpoints() -> Result<Vec<Endpoint>, String> {
    VIPS.iter()
        .map(|(vip, ..)| {
            let id = edit::parse_vip(vip).map_err(|error| error.to_string())?;
            Ok(Endpoint {
                address: id.address,
                port: id.port,
                protocol: id.protocol.number(),
            })
        })
        .collect()
}

/// A balancer built through `lb` commands: IPIP and GUE VIPs of both
/// families, a port VIP and all-ports source-hashed ones, one without a
/// connection table, one without backends, a drained backend, small and
/// full-size Maglev tables, two allow lists; a fixed next-hop MAC and a
/// path MTU of 1500 (a full-size frame to a VIP is answered too big).
pub fn balancer() -> Result<CompiledLb, String> {
    let error = |error: xdpath::lb::LbError| error.to_string();
    let mut state = LbState::default();
    edit::configure(
        &mut state,
        &ConfigChange {
            source_v4: Some("172.16.0.0/16".into()),
            source_v6: Some("2001:db8:ff00::/64".into()),
            next_hop: Some("02:00:00:00:00:99".into()),
            seed: Some(7),
            connection_table: None,
            mtu: Some(1500),
        },
    )
    .map_err(error)?;
    let backends: [IpAddr; 3] = [
        IpAddr::from(BACKEND4[0]),
        IpAddr::from(BACKEND4[1]),
        IpAddr::from(doc_v6(0x33)),
    ];
    for (vip, encap, flags, ring_size, weights) in VIPS {
        let id = edit::parse_vip(vip).map_err(error)?;
        let mut options = VipOptions {
            encap,
            gue_port: (encap == Encap::Gue).then_some(GUE_PORT),
            source_hash: false,
            no_conntrack: false,
            ring_size,
            sample_rate: 0,
        };
        edit::parse_flags(flags, &mut options).map_err(error)?;
        edit::add_vip(&mut state, id, options).map_err(error)?;
        for (address, weight) in backends.iter().zip(weights) {
            edit::add_backend(&mut state, &id, *address, *weight).map_err(error)?;
        }
    }
    // Two allow lists, each also naming the whole other family (which
    // must not admit its own family's sources).
    for (vip, allow) in [
        ("203.0.113.12:443/tcp", ["192.0.2.0/25", "::/0"]),
        ("[2001:db8::10]:443/tcp", ["2001:db8::/124", "0.0.0.0/0"]),
    ] {
        let id = edit::parse_vip(vip).map_err(error)?;
        let allow: Vec<String> = allow.iter().map(|text| text.to_string()).collect();
        let list = edit::parse_allow(&allow).map_err(error)?;
        edit::set_allow(&mut state, &id, list).map_err(error)?;
    }
    let plan = plan(&LbState::default(), &mut state, true).map_err(error)?;
    Ok(plan.compiled)
}

/// Frames for the balancer: flows to each VIP, and ICMP errors quoting a
/// VIP's reply.
pub fn balancer_seeds() -> Vec<Vec<u8>> {
    let mut seeds = fixture_seeds();
    for vip in [
        VIP4,
        [203, 0, 113, 11],
        [203, 0, 113, 12],
        [203, 0, 113, 13],
    ] {
        for port in [80, 443] {
            seeds.push(
                FrameSpec::new(
                    Network::V4(CLIENT4, vip),
                    Transport::tcp(40001, port, FLAG_ACK),
                )
                .build(),
            );
        }
    }
    let reply = FrameSpec::new(
        Network::V4(VIP4, CLIENT4),
        Transport::tcp(80, 40000, FLAG_ACK),
    )
    .with_payload(&[0; 1400])
    .build();
    let mut message = vec![3, 4, 0, 0, 0, 0, 0x05, 0x78];
    message.extend_from_slice(&reply[14..14 + 28]);
    seeds.push(
        FrameSpec::new(Network::V4([198, 51, 100, 254], VIP4), Transport::Other(1))
            .with_payload(&message)
            .build(),
    );
    seeds
}

/// Tunnel packets to this host (IPIP, IPv6-in-IPv6, GUE) for the
/// decapsulating backend.
pub fn decap_seeds() -> Vec<Vec<u8>> {
    let inner4 = FrameSpec::new(
        Network::V4(CLIENT4, VIP4),
        Transport::tcp(40000, 80, FLAG_SYN),
    )
    .build()[14..]
        .to_vec();
    let inner6 = FrameSpec::new(
        Network::V6(doc_v6(1), doc_v6(0x10)),
        Transport::tcp(40000, 443, FLAG_SYN),
    )
    .build()[14..]
        .to_vec();
    let local4 = Network::V4([172, 16, 0, 1], BACKEND4[0]);
    let local6 = Network::V6(doc_v6(0xff00), doc_v6(0x33));
    let mut seeds = fixture_seeds();
    for network in [local4, local6] {
        seeds.push(
            FrameSpec::new(network, Transport::Other(4))
                .with_payload(&inner4)
                .build(),
        );
        seeds.push(
            FrameSpec::new(network, Transport::Other(41))
                .with_payload(&inner6)
                .build(),
        );
        for inner in [&inner4, &inner6] {
            seeds.push(
                FrameSpec::new(network, Transport::udp(5000, GUE_PORT))
                    .with_payload(inner)
                    .build(),
            );
        }
    }
    seeds
}
