//! A VIP's identity in the kernel: its key (an IPv4 address kept
//! IPv4-mapped) and its slot (counters by slot).
//!
//! - `[::ffff:a.b.c.d]:P/tcp` is the key of `a.b.c.d:P/tcp`: it is
//!   refused, in one line naming the IPv4 form, and changes nothing (it
//!   used to be written over the live IPv4 VIP, which then dropped its
//!   traffic as `lb-no-backend` while `state check --repair` could never
//!   converge); so is such a backend.
//! - A new VIP's counters start at zero, its drops by reason too (they
//!   used to carry over from every earlier VIP of its slot).
//! - The listings only read: a VIP missing from the kernel is said so on
//!   stderr and stays missing (they used to install the state silently,
//!   hiding the divergence and zeroing the VIP's counters).
//!
//! Needs root.

use aya::maps::{HashMap as BpfHashMap, Map, MapData, PerCpuArray, PerCpuValues};
use serde_json::Value;
use xdpath_core::abi;
use xdpath_core::lb::{vip_drop_index, Vip, VIP_DROP_REASONS};
use xdpath_core::parse::ipv4_mapped;
use xdpath_lab::testenv::TestBed;

mod common;
// Warnings allowed: the balancer warns when forwarding is off.
use common::{bed, text, xdpath, xdpath_ok_warned};

const VIP: &str = "203.0.113.10:80/tcp";

fn balancer(bed: &TestBed) {
    let interface = bed.a().interface.clone();
    xdpath_ok_warned(bed, &["attach", &interface, "--mode", "generic"]);
    xdpath_ok_warned(
        bed,
        &[
            "lb",
            "config",
            "--source-v4",
            "172.16.0.0/16",
            "--source-v6",
            "fd00:172::/64",
        ],
    );
    xdpath_ok_warned(bed, &["lb", "vip", "add", VIP]);
    xdpath_ok_warned(bed, &["lb", "backend", "add", VIP, "10.0.0.1"]);
}

fn vip_list(bed: &TestBed) -> Value {
    serde_json::from_str(&xdpath_ok_warned(bed, &["--json", "lb", "vip", "list"])).expect("JSON")
}

/// `args` must fail with one `xdpath: error:` line containing `says`, and
/// leave the saved state and the kernel as they were.
fn refused(bed: &TestBed, args: &[&str], says: &str) {
    let lb_json = bed.a().state_dir().join("lb.json");
    let before = std::fs::read(&lb_json).expect("lb.json");
    let out = xdpath(bed, args);
    let said = text(&out);
    assert!(!out.status.success(), "{args:?}: {said}");
    assert!(
        said.starts_with("xdpath: error: ") && said.trim_end().lines().count() == 1,
        "{args:?}: {said}"
    );
    assert!(said.contains(says), "{args:?}: {said}");
    assert_eq!(
        std::fs::read(&lb_json).expect("lb.json"),
        before,
        "{args:?}"
    );
    let check = xdpath(bed, &["state", "check"]);
    assert!(check.status.success(), "{args:?}: {}", text(&check));
}

#[test]
fn ipv4_mapped_vips_and_backends_are_refused_and_change_nothing() {
    xdpath_lab::needs_root!();
    let bed = bed();
    balancer(&bed);
    refused(
        &bed,
        &["lb", "vip", "add", "[::ffff:203.0.113.10]:80/tcp"],
        "write it as 203.0.113.10",
    );
    refused(
        &bed,
        &["lb", "backend", "add", VIP, "::ffff:10.0.0.2"],
        "write it as 10.0.0.2",
    );
    refused(
        &bed,
        &["lb", "backend", "add", VIP, "::ffff:203.0.113.10"],
        "the VIP's own address",
    );
    for (address, why) in [
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("240.0.0.1", "reserved"),
    ] {
        refused(&bed, &["lb", "backend", "add", VIP, address], why);
    }
    // The balancer's own address (the test bed's) and loopback, as VIPs.
    let own = format!("{}:22/tcp", bed.a().ipv4);
    for (vip, why) in [
        (own.as_str(), "one of this host's own addresses"),
        ("127.0.0.1:80/tcp", "loopback"),
        ("[::1]:80/tcp", "loopback"),
    ] {
        refused(&bed, &["lb", "vip", "add", vip], why);
    }
    let listed = vip_list(&bed);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
}

/// The namespace's per-VIP drops map, as its pin opens it.
fn vip_drops(bed: &TestBed) -> PerCpuArray<MapData, u64> {
    let pin = bed.a().pin_dir().join(":shared").join(abi::map::VIP_DROPS);
    let data = MapData::from_pin(pin).expect("the VIP_DROPS pin");
    PerCpuArray::try_from(Map::PerCpuArray(data)).expect("VIP_DROPS is a per-CPU array of u64")
}

#[test]
fn a_new_vip_starts_with_no_drops_of_its_slots_earlier_vip() {
    xdpath_lab::needs_root!();
    let bed = bed();
    balancer(&bed);
    // The only VIP has the lowest slot, and so will the next.
    let slot = 0;
    // What the data path counted for the VIP in that slot before it went.
    let mut drops = vip_drops(&bed);
    let cpus = aya::util::nr_cpus().expect("CPUs");
    for reason in VIP_DROP_REASONS {
        let index = vip_drop_index(slot, reason).expect("a drop slot");
        let counts = PerCpuValues::try_from(vec![5u64; cpus]).expect("one per CPU");
        drops.set(index, counts, 0).expect("count drops");
    }
    let counted = vip_list(&bed)[0]["drops"].clone();
    assert_eq!(counted["no_backend"], 5 * cpus as u64, "{counted}");
    xdpath_ok_warned(&bed, &["lb", "vip", "del", VIP]);
    let next = "198.51.100.7:53/udp";
    xdpath_ok_warned(&bed, &["lb", "vip", "add", next]);
    let listed = vip_list(&bed);
    assert_eq!(listed[0]["vip"], next, "{listed}");
    let drops = listed[0]["drops"].as_object().expect("drops by reason");
    assert!(
        drops.values().all(|count| count == 0),
        "a new VIP has dropped nothing: {listed}"
    );
}

#[test]
fn listings_say_the_kernel_differs_and_change_nothing() {
    xdpath_lab::needs_root!();
    let bed = bed();
    balancer(&bed);
    let pin = bed.a().pin_dir().join(":shared").join(abi::map::VIPS);
    let data = MapData::from_pin(pin).expect(abi::map::VIPS);
    let mut vips: BpfHashMap<MapData, [u8; 24], [u8; size_of::<Vip>()]> =
        BpfHashMap::try_from(Map::HashMap(data)).expect(abi::map::VIPS);
    // `VipKey` of 203.0.113.10:80/tcp: the address IPv4-mapped, the port
    // in host order, the protocol, five reserved bytes.
    let mut key = [0u8; 24];
    key[..16].copy_from_slice(&ipv4_mapped([203, 0, 113, 10]));
    key[16..18].copy_from_slice(&80u16.to_ne_bytes());
    key[18] = 6;
    vips.remove(&key).expect("the VIP was in the kernel");
    for args in [
        &["lb", "vip", "list"][..],
        &["lb", "backend", "list"],
        &["lb", "stats"],
        &["lb", "vip", "table", VIP],
    ] {
        let out = xdpath(&bed, args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr
                .lines()
                .any(|line| line
                    .starts_with("xdpath: warning: the kernel does not enforce this state")),
            "{args:?}: {stderr}"
        );
        assert!(vips.get(&key, 0).is_err(), "{args:?} installed the VIP");
    }
    assert!(!xdpath(&bed, &["state", "check"]).status.success());
}
