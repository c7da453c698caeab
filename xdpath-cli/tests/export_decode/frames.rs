//! The frames and files the decode tests hand to tshark: sampled frames
//! built by hand, the exporters' datagrams wrapped in Ethernet/IPv4/UDP, a
//! pcap file, and tshark's form of times and addresses.

use super::*;

/// 2023-11-14T22:13:20Z, in milliseconds.
pub(crate) const EPOCH_MS: u64 = 1_700_000_000_000;

pub(crate) fn ethernet(ethertype: u16, vlan: Option<u16>) -> Vec<u8> {
    let mut frame = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    if let Some(vlan) = vlan {
        frame.extend_from_slice(&0x8100u16.to_be_bytes());
        frame.extend_from_slice(&vlan.to_be_bytes());
    }
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame
}

pub(crate) fn ipv4_header(
    source: Ipv4Addr,
    destination: Ipv4Addr,
    protocol: u8,
    payload_len: usize,
) -> Vec<u8> {
    let mut header = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, protocol, 0, 0];
    header[2..4].copy_from_slice(&((20 + payload_len) as u16).to_be_bytes());
    header.extend_from_slice(&source.octets());
    header.extend_from_slice(&destination.octets());
    let sum = checksum::of(&header);
    header[10..12].copy_from_slice(&sum.to_be_bytes());
    header
}

pub(crate) fn tcp_header(source_port: u16, destination_port: u16, flags: u8) -> Vec<u8> {
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&source_port.to_be_bytes());
    tcp[2..4].copy_from_slice(&destination_port.to_be_bytes());
    tcp[4..8].copy_from_slice(&1000u32.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    tcp[14..16].copy_from_slice(&65535u16.to_be_bytes());
    tcp
}

/// Ethernet (VLAN `vlan`) + IPv4 + TCP with `flags`, no payload, padded
/// to the 60-byte Ethernet minimum (the FCS is gone, as in XDP).
pub(crate) fn ipv4_tcp_frame(
    source: Ipv4Addr,
    destination: Ipv4Addr,
    ports: (u16, u16),
    vlan: Option<u16>,
    flags: u8,
) -> Vec<u8> {
    let mut frame = ethernet(0x0800, vlan);
    frame.extend_from_slice(&ipv4_header(source, destination, 6, 20));
    frame.extend_from_slice(&tcp_header(ports.0, ports.1, flags));
    frame.resize(frame.len().max(60), 0);
    frame
}

/// Ethernet + IPv6 + UDP with `payload_len` zero bytes (only the first
/// ones are kept by a sample).
pub(crate) fn ipv6_udp_frame(
    source: Ipv6Addr,
    destination: Ipv6Addr,
    ports: (u16, u16),
    payload_len: usize,
) -> Vec<u8> {
    let mut frame = ethernet(0x86dd, None);
    let udp_len = 8 + payload_len;
    frame.extend_from_slice(&[0x60, 0, 0, 0]);
    frame.extend_from_slice(&(udp_len as u16).to_be_bytes());
    frame.extend_from_slice(&[17, 64]);
    frame.extend_from_slice(&source.octets());
    frame.extend_from_slice(&destination.octets());
    frame.extend_from_slice(&ports.0.to_be_bytes());
    frame.extend_from_slice(&ports.1.to_be_bytes());
    frame.extend_from_slice(&(udp_len as u16).to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    frame.resize(frame.len() + payload_len, 0);
    frame
}

pub(crate) fn sample(
    frame: &[u8],
    ifindex: u32,
    rate: u32,
    action: Action,
    reason: Reason,
    at_ms: u64,
) -> Sample {
    let data = frame[..frame.len().min(128)].to_vec();
    Sample {
        meta: RecordMeta {
            ifindex,
            frame_len: frame.len() as u32,
            sample_rate: rate,
            captured_len: data.len() as u16,
            action: action as u8,
            reason: reason as u8,
            ..Default::default()
        },
        unix_ns: at_ms * 1_000_000,
        data,
    }
}

/// `payload` in Ethernet/IPv4/UDP from 192.0.2.10:40000 to 192.0.2.99.
pub(crate) fn udp_datagram(destination_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = ethernet(0x0800, None);
    let source = Ipv4Addr::new(192, 0, 2, 10);
    let destination = Ipv4Addr::new(192, 0, 2, 99);
    frame.extend_from_slice(&ipv4_header(source, destination, 17, 8 + payload.len()));
    frame.extend_from_slice(&40000u16.to_be_bytes());
    frame.extend_from_slice(&destination_port.to_be_bytes());
    frame.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    frame.extend_from_slice(&[0, 0]); // No UDP checksum (allowed over IPv4).
    frame.extend_from_slice(payload);
    frame
}

pub(crate) fn write_pcap(name: &str, frames: &[Vec<u8>]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("xdpath-{name}-{}.pcap", std::process::id()));
    let file = std::fs::File::create(&path).expect("create pcap");
    let mut writer = PcapWriter::new(std::io::BufWriter::new(file), Precision::Microsecond)
        .expect("pcap header");
    for (index, frame) in frames.iter().enumerate() {
        let time = Timestamp {
            seconds: (EPOCH_MS / 1000) as u32 + index as u32,
            fraction: 0,
            precision: Precision::Microsecond,
        };
        writer
            .write_frame(time, frame.len() as u32, frame)
            .expect("pcap record");
    }
    writer.finish().expect("pcap flush");
    path
}

/// tshark's rendering of a Unix time in milliseconds, for times on the
/// day of [`EPOCH_MS`] (UTC).
pub(crate) fn tshark_time(unix_ms: u64) -> String {
    let day_start_ms = EPOCH_MS - (22 * 3600 + 13 * 60 + 20) * 1000;
    let of_day = unix_ms - day_start_ms;
    assert!(of_day < 86_400_000, "keep test times on 2023-11-14");
    let seconds = of_day / 1000;
    format!(
        "Nov 14, 2023 {:02}:{:02}:{:02}.{:03}000000 UTC",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        of_day % 1000
    )
}

pub(crate) fn addresses() -> (Ipv4Addr, Ipv4Addr, Ipv6Addr, Ipv6Addr) {
    (
        Ipv4Addr::new(198, 51, 100, 7),
        Ipv4Addr::new(203, 0, 113, 5),
        "2001:db8::7".parse().unwrap(),
        "2001:db8:ffff::5".parse().unwrap(),
    )
}
