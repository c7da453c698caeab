//! [`CollectorSockets`]: the UDP sockets the sFlow and IPFIX exporters
//! send their datagrams on.

use std::net::{SocketAddr, UdpSocket};

use super::ExportError;

/// UDP sockets to a set of collectors: one unconnected, non-blocking
/// socket per address family in use, bound to an ephemeral port. Shared
/// by the sFlow and IPFIX exporters.
#[derive(Debug)]
pub(crate) struct CollectorSockets {
    ipv4: Option<UdpSocket>,
    ipv6: Option<UdpSocket>,
    collectors: Vec<SocketAddr>,
}

impl CollectorSockets {
    pub(crate) fn open(collectors: &[SocketAddr]) -> Result<Self, ExportError> {
        if collectors.is_empty() {
            return Err(ExportError::NoCollectors);
        }
        // Non-blocking: a full socket buffer must cost a datagram, not
        // stall the reader of the sample ring.
        let bind = |family: &'static str, any: &str| -> Result<UdpSocket, ExportError> {
            let socket = UdpSocket::bind(any).and_then(|socket| {
                socket.set_nonblocking(true)?;
                Ok(socket)
            });
            socket.map_err(|source| ExportError::Socket { family, source })
        };
        let ipv4 = match collectors.iter().any(SocketAddr::is_ipv4) {
            true => Some(bind("IPv4", "0.0.0.0:0")?),
            false => None,
        };
        let ipv6 = match collectors.iter().any(SocketAddr::is_ipv6) {
            true => Some(bind("IPv6", "[::]:0")?),
            false => None,
        };
        Ok(Self {
            ipv4,
            ipv6,
            collectors: distinct(collectors),
        })
    }

    /// Sends `datagram` to every collector: (sent, failed).
    pub(crate) fn send(&self, datagram: &[u8]) -> (u64, u64) {
        let (mut sent, mut failed) = (0, 0);
        for collector in &self.collectors {
            let socket = match collector {
                SocketAddr::V4(_) => self.ipv4.as_ref(),
                SocketAddr::V6(_) => self.ipv6.as_ref(),
            };
            match socket.map(|socket| socket.send_to(datagram, collector)) {
                Some(Ok(_)) => sent += 1,
                _ => failed += 1,
            }
        }
        (sent, failed)
    }
}

/// `collectors` with each collector once, in order: every path that sets
/// collectors refuses a repeat, but a list saved by an older build (before
/// they were refused) is still loaded, and would get every datagram twice.
fn distinct(collectors: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut seen = std::collections::HashSet::new();
    collectors
        .iter()
        .filter(|address| seen.insert(crate::observe::export::collector_identity(address)))
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_collector_named_twice_gets_each_datagram_once() {
        let named: Vec<SocketAddr> = [
            "127.0.0.1:6343",
            "[::ffff:127.0.0.1]:6343",
            "127.0.0.1:6344",
        ]
        .iter()
        .map(|text| text.parse().expect("an address"))
        .collect();
        assert_eq!(distinct(&named), [named[0], named[2]]);
    }
}
