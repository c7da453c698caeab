//! Rows of frames that are not IP (ARP, LLDP): they carry no addresses,
//! so no rule, blocklist entry or limit of addresses may match them, not
//! even one of `::/0` or `::/128` (the parser leaves a non-IP frame's
//! addresses zero, which is `::`).

use super::*;

/// An ARP request (28 bytes) padded to the 60-byte minimum.
pub(crate) fn arp() -> Vec<u8> {
    let mut frame = vec![0xff; 6];
    frame.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
    frame.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1]);
    frame.extend_from_slice(&A4);
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&B4);
    frame.resize(60, 0);
    frame
}

fn limits_of(scope: &str, per: &str) -> FilterState {
    let args = xdpath::api::LimitArgs {
        pps: Some("1".into()),
        burst: Some("1".into()),
        per: per.into(),
        scope: Some(scope.into()),
        ..xdpath::api::LimitArgs::default()
    };
    FilterState {
        rate_limits: vec![xdpath::control::ops::limit_spec(&args, 1).expect("a limit")],
        ..FilterState::default()
    }
}

pub(crate) fn non_ip_rows() -> Vec<Row> {
    let non_ip = Reason::NonIp;
    let three = || {
        vec![
            pass(arp(), non_ip),
            pass(arp(), non_ip),
            pass(arp(), non_ip),
        ]
    };
    vec![
        row(
            "ARP under a deny of ::/0 by source",
            rules("--src ::/0 --action drop"),
            three(),
        ),
        row(
            "ARP under a deny of ::/0 by destination",
            rules("--dst ::/0 --action drop"),
            three(),
        ),
        row("ARP under a block of ::/0", blocked("::/0", None), three()),
        row(
            "ARP under a limit of ::/128 (the address table)",
            limits_of("::/128", "dst"),
            three(),
        ),
        row(
            "ARP under a limit of ::/127 by source",
            limits_of("::/127", "src"),
            three(),
        ),
        row(
            "ARP under a default drop (IPv4 allowed by a rule)",
            default_drop(rules("--src 192.0.2.0/24 --action pass"), false),
            vec![
                pass(arp(), non_ip),
                drop(tcp_frame(OTHER4, B4, 80, SYN), Reason::DefaultDeny),
                pass(tcp(80, SYN), V4TCP),
            ],
        ),
    ]
}
