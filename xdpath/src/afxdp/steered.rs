//! Receiving the flows xdpath steers to user space: an application opens a
//! [`SteeredReceiver`] on an interface's queue, and every frame of a flow
//! named by `xdpath xsk add` that arrives there reaches it instead of the
//! kernel stack (after xdpath's filter, like any frame it passes).

use std::time::Duration;
use xdpath_core::abi;

use aya::maps::{Array, HashMap, Map, MapData, XskMap};

use super::{XskError, XskOptions, XskSocket, XskStats};
use crate::dataplane::{self, DataplaneError};

/// Errors of steering to user space.
#[derive(Debug, thiserror::Error)]
pub enum SteerError {
    /// The socket.
    #[error(transparent)]
    Socket(#[from] XskError),
    /// The data path's maps, or xdpath not attached.
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    /// A bad rule.
    #[error("{0}")]
    Rule(String),
}

fn shared<T>(
    name: &'static str,
    wrap: impl FnOnce(MapData) -> Map,
    convert: impl FnOnce(Map) -> Result<T, aya::maps::MapError>,
) -> Result<T, DataplaneError> {
    let path = dataplane::shared_dir()?.join(name);
    if !path.exists() {
        // The namespace's shared maps come with its first attach.
        return Err(DataplaneError::NotAttached {
            name: "any interface of this network namespace".into(),
        });
    }
    dataplane::open_pinned_map(name, &path, wrap, convert)
}

/// The rule key of a flow, as the data path looks it up.
pub use xdpath_core::steer::xsk_rule as rule_key;

/// Steers TCP or UDP to `port` (on every interface of the namespace) to
/// the AF_XDP sockets of the queues its frames arrive on.
pub fn add_rule(protocol: u8, port: u16) -> Result<(), SteerError> {
    check_rule(protocol, port)?;
    let mut rules: HashMap<MapData, u32, u32> =
        shared(abi::map::STEER_XSK, Map::HashMap, HashMap::try_from)?;
    rules
        .insert(rule_key(protocol, port), 1, 0)
        .map_err(DataplaneError::of_map(abi::map::STEER_XSK))?;
    Ok(())
}

/// Stops steering a flow; an error if it was not steered.
pub fn del_rule(protocol: u8, port: u16) -> Result<(), SteerError> {
    check_rule(protocol, port)?;
    let mut rules: HashMap<MapData, u32, u32> =
        shared(abi::map::STEER_XSK, Map::HashMap, HashMap::try_from)?;
    rules.remove(&rule_key(protocol, port)).map_err(|_| {
        SteerError::Rule(format!(
            "protocol {protocol} port {port} is not steered to AF_XDP"
        ))
    })
}

/// The steered flows: (protocol, port).
pub fn rules() -> Result<Vec<(u8, u16)>, SteerError> {
    let rules: HashMap<MapData, u32, u32> =
        match shared(abi::map::STEER_XSK, Map::HashMap, HashMap::try_from) {
            Ok(rules) => rules,
            // Nothing attached: nothing steered.
            Err(DataplaneError::NotAttached { .. }) => return Ok(Vec::new()),
            Err(error) => return Err(error.into()),
        };
    let mut list: Vec<(u8, u16)> = rules
        .keys()
        .filter_map(Result::ok)
        .map(|key| ((key >> 16) as u8, key as u16))
        .collect();
    list.sort_unstable();
    Ok(list)
}

fn check_rule(protocol: u8, port: u16) -> Result<(), SteerError> {
    if protocol != 6 && protocol != 17 {
        return Err(SteerError::Rule(format!(
            "protocol {protocol}: only tcp and udp flows are steered (by destination port)"
        )));
    }
    if port == 0 {
        return Err(SteerError::Rule("port 0 names no flow".into()));
    }
    Ok(())
}

/// An application's end of the steered flows on one interface queue.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use xdpath::afxdp::{SteeredReceiver, XskOptions};
/// xdpath::afxdp::steered::add_rule(17, 9000)?;   // as `xdpath xsk add --proto udp --dport 9000`
/// let mut receiver = SteeredReceiver::open("eth0", 0, XskOptions::default())?;
/// let mut frames = Vec::new();
/// receiver.recv(Duration::from_secs(1), &mut frames)?;
/// # Ok::<(), xdpath::afxdp::steered::SteerError>(())
/// ```
pub struct SteeredReceiver {
    socket: XskSocket,
    queue: u32,
}

impl SteeredReceiver {
    /// Opens an AF_XDP socket on `interface`'s `queue` (xdpath must be
    /// attached there) and puts it in the namespace's socket map.
    pub fn open(interface: &str, queue: u32, options: XskOptions) -> Result<Self, SteerError> {
        dataplane::read_interface_config(interface)?;
        let socket = XskSocket::open(interface, queue, options)?;
        let mut sockets: XskMap<MapData> = shared(abi::map::XSKS, Map::XskMap, XskMap::try_from)?;
        socket.register(&mut sockets, queue)?;
        let mut owners: Array<MapData, u32> =
            shared(abi::map::XSK_OWNERS, Map::Array, Array::try_from)?;
        owners
            .set(queue, socket.ifindex(), 0)
            .map_err(DataplaneError::of_map(abi::map::XSK_OWNERS))?;
        Ok(Self { socket, queue })
    }

    /// Waits up to `timeout` for frames and appends them to `out`; how many.
    pub fn recv(&mut self, timeout: Duration, out: &mut Vec<Vec<u8>>) -> Result<usize, XskError> {
        self.socket.recv(timeout, out)
    }

    /// Sends a frame out of the interface.
    pub fn send(&mut self, frame: &[u8]) -> Result<(), XskError> {
        self.socket.send(frame)
    }

    /// The socket's counters.
    pub fn stats(&self) -> Result<XskStats, XskError> {
        self.socket.stats()
    }
}

impl Drop for SteeredReceiver {
    fn drop(&mut self) {
        // The queue is nobody's again: its flows go back to the stack. (The
        // kernel takes the closing socket out of `XSKS` by itself.)
        if let Ok(mut owners) =
            shared::<Array<MapData, u32>>(abi::map::XSK_OWNERS, Map::Array, Array::try_from)
        {
            let _ = owners.set(self.queue, 0, 0);
        }
    }
}
