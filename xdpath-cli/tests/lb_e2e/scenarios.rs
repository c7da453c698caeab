//! The steps of `balances_http_across_backends_in_namespaces`, each on the
//! bed the test built: weights, ECMP balancers, a removed backend, a long
//! transfer, an IPv6 VIP over GUE.

use super::*;

/// 1,000 requests: shares follow the weights 1:2:3, the balancer's
/// per-backend new-flow counters match what the client saw, and its
/// estimate of active connections grew by one a connection (a flow in
/// both connection tables, promoted by its first ACK with its SYN's slot
/// not yet reused, is counted once).
pub(crate) fn spread_by_weight(bed: &LbBed) {
    let vip = format!("{VIP4}:80/tcp");
    let before = new_flows(bed, Role::Lb1, &vip);
    let active_before = active_connections(bed, Role::Lb1, &vip);
    let answers = spread(bed, &format!("http://{VIP4}/"), 1000);
    let after = new_flows(bed, Role::Lb1, &vip);
    let active_after = active_connections(bed, Role::Lb1, &vip);
    assert_eq!(
        active_after - active_before,
        1000,
        "active connections {active_before} → {active_after} over 1,000 connections"
    );
    eprintln!("1000 requests: {answers:?}");
    for (name, weight) in [("b1", 1.0_f64), ("b2", 2.0), ("b3", 3.0)] {
        let count = answers.get(name).copied().unwrap_or(0) as f64;
        let expected = 1000.0 * weight / 6.0;
        // Four standard deviations of a binomial count.
        let tolerance = 4.0 * (1000.0 * weight / 6.0 * (1.0 - weight / 6.0)).sqrt();
        assert!(
            (count - expected).abs() <= tolerance,
            "{name}: {count} requests, expected {expected:.0} ± {tolerance:.0}"
        );
    }
    for (address, flows) in &after {
        let placed = flows - before.get(address).copied().unwrap_or(0);
        let name = backend_of(bed, address);
        assert_eq!(
            placed as usize,
            answers.get(&name).copied().unwrap_or(0),
            "new flows counted for {name}"
        );
    }
}

/// The same flows through either balancer reach the same backend, though
/// the balancers got their backends in different orders and slots.
pub(crate) fn ecmp_balancers_agree(bed: &LbBed) {
    let vip = VIP4.to_string();
    let through_first = flows(bed, &vip, 8080, 61_000, 300);
    bed.route_via(Role::Lb2).expect("route");
    let through_second = flows(bed, &vip, 8080, 61_000, 300);
    let fresh_on_second = flows(bed, &vip, 80, 61_500, 100);
    bed.route_via(Role::Lb1).expect("route");
    let fresh_on_first = flows(bed, &vip, 80, 61_500, 100);
    assert_eq!(through_first, through_second, "pure Maglev VIP");
    assert_eq!(fresh_on_first, fresh_on_second, "connection-table VIP");
    let used: std::collections::BTreeSet<_> = through_first.values().collect();
    assert_eq!(used.len(), 3, "all backends used: {used:?}");
}

/// Removing b2 moves b2's flows and (almost) nothing else: exactly nothing
/// on the connection-table VIP, Maglev's small collateral on the pure one.
pub(crate) fn removal_moves_only_its_flows(bed: &LbBed) {
    let vip = VIP4.to_string();
    let b2 = bed.host(Role::B2).ipv4.to_string();
    let pure_before = flows(bed, &vip, 8080, 62_000, 400);
    let tracked_before = flows(bed, &vip, 80, 63_000, 400);
    for port in ["80", "8080"] {
        let spec = format!("{VIP4}:{port}/tcp");
        xdpath_ok_in(bed, Role::Lb1, &["lb", "backend", "del", &spec, &b2]);
    }
    let pure_after = flows(bed, &vip, 8080, 62_000, 400);
    let tracked_after = flows(bed, &vip, 80, 63_000, 400);
    for (label, before, after, allowed) in [
        ("connection table", &tracked_before, &tracked_after, 0.0),
        ("pure Maglev", &pure_before, &pure_after, 0.03),
    ] {
        let mut others = 0;
        let mut collateral = 0;
        for (port, backend) in before.iter() {
            let now = after.get(port).map(String::as_str).unwrap_or("?");
            if backend == "b2" {
                assert_ne!(
                    now, "b2",
                    "{label}: flow {port} still on the removed backend"
                );
            } else {
                others += 1;
                collateral += usize::from(now != backend);
            }
        }
        eprintln!("{label}: removing b2 moved {collateral} of {others} other flows");
        assert!(
            collateral as f64 <= allowed * others as f64,
            "{label}: {collateral} of {others} flows of other backends moved"
        );
    }
    for port in ["80", "8080"] {
        let spec = format!("{VIP4}:{port}/tcp");
        xdpath_ok_in(
            bed,
            Role::Lb1,
            &["lb", "backend", "add", &spec, &b2, "--weight", "2"],
        );
    }
}

/// A slow download keeps its backend while backends are removed and added
/// and its own is drained; once drained, that backend gets no new flow.
// Long: one transfer followed from its start to its end, the backends
// changed under it.
pub(crate) fn long_transfer_keeps_its_backend(bed: &LbBed) {
    let vip = format!("{VIP4}:80/tcp");
    let dir = std::env::temp_dir().join(format!("xdpath-lb-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (body, headers) = (dir.join("big"), dir.join("headers"));
    let url = format!("http://{VIP4}/big");
    let mut curl = bed.command(Role::Client, "curl");
    curl.args(["-s", "--limit-rate", "1500k", "--max-time", "60", "-o"])
        .arg(&body)
        .arg("-D")
        .arg(&headers)
        .arg(&url)
        .stdin(Stdio::null());
    let mut child = curl.spawn().expect("curl");
    let deadline = Instant::now() + Duration::from_secs(10);
    let serving = loop {
        let text = std::fs::read_to_string(&headers).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .find(|line| line.to_lowercase().starts_with("x-backend:"))
        {
            break line["x-backend:".len()..].trim().to_string();
        }
        assert!(Instant::now() < deadline, "no response headers");
        std::thread::sleep(Duration::from_millis(20));
    };
    let serving_role = *Role::BACKENDS
        .iter()
        .find(|role| role.name() == serving)
        .expect("a known backend");
    let other = *Role::BACKENDS
        .iter()
        .find(|role| **role != serving_role)
        .expect("another backend");
    let other_address = bed.host(other).ipv4.to_string();
    let serving_address = bed.host(serving_role).ipv4.to_string();
    xdpath_ok_in(
        bed,
        Role::Lb1,
        &["lb", "backend", "del", &vip, &other_address],
    );
    std::thread::sleep(Duration::from_millis(500));
    xdpath_ok_in(
        bed,
        Role::Lb1,
        &[
            "lb",
            "backend",
            "add",
            &vip,
            &other_address,
            "--weight",
            "5",
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    let before_drain = flows(bed, &VIP4.to_string(), 80, 63_000, 200);
    xdpath_ok_in(
        bed,
        Role::Lb1,
        &["lb", "backend", "set-weight", &vip, &serving_address, "0"],
    );
    // Connections again from the same ports (each closed with a reset, so
    // the port is free at once: a client under load reuses ports the same
    // way) are new flows, and none reaches the drained backend, though the
    // connection table still names it for some of those 5-tuples.
    let after_drain = flows(bed, &VIP4.to_string(), 80, 63_000, 200);
    let moved = before_drain
        .values()
        .filter(|name| **name == serving)
        .count();
    assert!(
        moved > 0,
        "some of 200 flows on {serving}: {before_drain:?}"
    );
    let reached: Vec<_> = after_drain
        .iter()
        .filter(|(_, name)| **name == serving)
        .collect();
    assert!(
        reached.is_empty(),
        "reused ports reached drained {serving}: {reached:?}"
    );
    let status = child.wait().expect("curl");
    let received = std::fs::read(&body).expect("body");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "curl: {status}");
    assert_eq!(received.len(), BIG_FILE_BYTES, "complete");
    assert!(
        received == big_file(serving_role),
        "intact, all from {serving}"
    );

    let answers = spread(bed, &format!("http://{VIP4}/"), 300);
    assert!(
        !answers.contains_key(&serving),
        "drained {serving} got new flows: {answers:?}"
    );
    let rows = json(bed, Role::Lb1, &["lb", "backend", "list", &vip]);
    let state = rows
        .as_array()
        .and_then(|rows| {
            rows.iter()
                .find(|row| row["backend"] == serving_address.as_str())
        })
        .map(|row| row["state"].clone());
    assert_eq!(state, Some(Value::from("drained")));
}

/// The IPv6 VIP: GUE, 6in6 to b1 and b2 and 6in4 to b3.
pub(crate) fn ipv6_vip_with_gue(bed: &LbBed) {
    let answers = spread(bed, &format!("http://[{VIP6}]/"), 200);
    assert_eq!(answers.len(), 3, "every backend answers: {answers:?}");
    let stats = json(bed, Role::Lb1, &["lb", "stats"]);
    let vip = stats["vips"]
        .as_array()
        .and_then(|vips| {
            vips.iter()
                .find(|vip| vip["vip"] == format!("[{VIP6}]:80/tcp").as_str())
        })
        .cloned()
        .expect("the IPv6 VIP");
    assert!(vip["counters"]["new_flows"].as_u64() >= Some(200), "{vip}");
    assert!(stats["connection_table"]["hits"].as_u64() > Some(0));
}
