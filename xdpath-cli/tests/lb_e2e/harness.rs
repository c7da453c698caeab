//! Helpers of the end-to-end tests: xdpath in a role's namespace, request
//! spreads and flows through the VIP, the balancer's counters, and the
//! standard VIP configuration.

use super::*;

pub(crate) fn json(bed: &LbBed, role: Role, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&xdpath_ok_in(bed, role, &all)).expect("JSON")
}

/// `count` HTTP requests to `url` from the client, each on a new
/// connection (one curl, `Connection: close`); answers by backend name.
pub(crate) fn spread(bed: &LbBed, url: &str, count: usize) -> BTreeMap<String, usize> {
    let mut args: Vec<String> = ["-sg", "--max-time", "60", "-H", "Connection: close"]
        .map(String::from)
        .to_vec();
    args.extend((1..=count).map(|request| format!("{url}?{request}")));
    let output = bed.exec(Role::Client, "curl", &args).expect("curl");
    let mut answers = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        *answers.entry(line.trim().to_string()).or_insert(0) += 1;
    }
    let total: usize = answers.values().sum();
    assert_eq!(total, count, "every request answered: {answers:?}");
    answers
}

/// One HTTP request per source port `first..first + count` to `vip:port`
/// from the client (closed with a reset, so the ports can be used again at
/// once; above the kernel's ephemeral range, so no other connection holds
/// them); the backend of each. Run after [`PY_ASK_BACKEND`].
pub(crate) const FLOWS: &str = r#"
import socket, struct, sys
vip, port, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
family = socket.AF_INET6 if ":" in vip else socket.AF_INET
for source in range(first, first + count):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.settimeout(5)
    backend = "error"
    try:
        s.bind(("", source))
        s.connect((vip, port))
        backend = ask(s)
    except OSError as error:
        backend = "error:" + type(error).__name__ + ":" + str(error.errno)
    finally:
        s.close()
    print(source, backend)
"#;

pub(crate) fn flows(
    bed: &LbBed,
    vip: &str,
    port: u16,
    first: u16,
    count: u16,
) -> BTreeMap<u16, String> {
    let (port, first, count) = (port.to_string(), first.to_string(), count.to_string());
    let output = bed
        .exec(
            Role::Client,
            "/usr/bin/python3",
            [
                "-c",
                &format!("{PY_ASK_BACKEND}{FLOWS}"),
                vip,
                &port,
                &first,
                &count,
            ],
        )
        .expect("python3");
    let map: BTreeMap<u16, String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once(' '))
        .filter_map(|(port, backend)| Some((port.parse().ok()?, backend.to_string())))
        .collect();
    assert_eq!(map.len(), usize::from(count.parse::<u16>().unwrap_or(0)));
    assert!(
        map.values().all(|backend| backend.starts_with('b')),
        "every flow answered: {:?}",
        map.iter()
            .filter(|(_, backend)| !backend.starts_with('b'))
            .collect::<Vec<_>>()
    );
    map
}

/// Per-backend `new_flows` of a VIP on a balancer, by backend address.
pub(crate) fn new_flows(bed: &LbBed, lb: Role, vip: &str) -> HashMap<String, u64> {
    let rows = json(bed, lb, &["lb", "backend", "list", vip]);
    rows.as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            (
                row["backend"].as_str().unwrap_or_default().to_string(),
                row["counters"]["new_flows"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// A VIP's `active_connections` on a balancer (`lb vip list`).
pub(crate) fn active_connections(bed: &LbBed, lb: Role, vip: &str) -> u64 {
    let rows = json(bed, lb, &["lb", "vip", "list"]);
    let row = rows
        .as_array()
        .expect("rows")
        .iter()
        .find(|row| row["vip"] == vip)
        .unwrap_or_else(|| panic!("no row for {vip} in {rows}"));
    row["active_connections"]
        .as_u64()
        .expect("active_connections")
}

pub(crate) fn backend_of(bed: &LbBed, address: &str) -> String {
    Role::BACKENDS
        .iter()
        .find(|role| {
            let host = bed.host(**role);
            host.ipv4.to_string() == address || host.ipv6.to_string() == address
        })
        .map_or("?".into(), |role| role.name().to_string())
}

/// Configures a balancer: the IPv4 VIP on port 80 (connection table) and
/// 8080 (pure Maglev), IPIP, weights 1, 2, 3; the IPv6 VIP with GUE to a
/// pool of two IPv6 backends and one IPv4 one. `order` is the order the
/// backends are added in; `decoy` first adds and removes a VIP and a
/// backend so that slots differ from the other balancer's.
pub(crate) fn configure(bed: &LbBed, lb: Role, order: [Role; 3], decoy: bool) {
    xdpath_ok_in(bed, lb, &["attach", INTERFACE]);
    xdpath_ok_in(
        bed,
        lb,
        &[
            "lb",
            "config",
            "--source-v4",
            "172.16.0.0/16",
            "--source-v6",
            "fd00:172::/64",
        ],
    );
    if decoy {
        xdpath_ok_in(bed, lb, &["lb", "vip", "add", "198.51.100.1:53/udp"]);
        xdpath_ok_in(
            bed,
            lb,
            &["lb", "backend", "add", "198.51.100.1:53/udp", "192.0.2.1"],
        );
    }
    let vip80 = format!("{VIP4}:80/tcp");
    let vip8080 = format!("{VIP4}:8080/tcp");
    let vip6 = format!("[{VIP6}]:80/tcp");
    xdpath_ok_in(bed, lb, &["lb", "vip", "add", &vip80]);
    xdpath_ok_in(
        bed,
        lb,
        &["lb", "vip", "add", &vip8080, "--flags", "no-conntrack"],
    );
    let gue = GUE_PORT.to_string();
    xdpath_ok_in(
        bed,
        lb,
        &[
            "lb",
            "vip",
            "add",
            &vip6,
            "--encap",
            "gue",
            "--gue-port",
            &gue,
        ],
    );
    for role in order {
        let host = bed.host(role);
        let weight = match role {
            Role::B1 => "1",
            Role::B2 => "2",
            _ => "3",
        };
        let v4 = host.ipv4.to_string();
        for vip in [&vip80, &vip8080] {
            xdpath_ok_in(
                bed,
                lb,
                &["lb", "backend", "add", vip, &v4, "--weight", weight],
            );
        }
        // 6in6 to b1 and b2, 6in4 to b3.
        let inner = if role == Role::B3 {
            v4
        } else {
            host.ipv6.to_string()
        };
        xdpath_ok_in(bed, lb, &["lb", "backend", "add", &vip6, &inner]);
    }
    if decoy {
        xdpath_ok_in(bed, lb, &["lb", "vip", "del", "198.51.100.1:53/udp"]);
    }
}
