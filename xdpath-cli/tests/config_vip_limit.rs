//! `xdpath apply` at the balancer's VIP limit (`MAX_VIPS`, the size of the
//! kernel's VIP hash map): a config of that many VIPs that replaces one VIP
//! by another, or every VIP by others, installs, and the kernel then holds
//! exactly the saved state. The VIPs leaving must be deleted before the new
//! ones are written, or the full map refuses the first new key.
//!
//! Needs root.

use serde_json::Value;
use xdpath_core::lb::MAX_VIPS;
use xdpath_lab::testenv::TestBed;

mod common;
// Warnings allowed: the balancer warns when forwarding is off.
use common::{bed, xdpath, xdpath_ok_warned};

/// A config of `MAX_VIPS` VIPs, `203.0.113.N:80/tcp` for each N of
/// `hosts`, one backend each.
fn config(bed: &TestBed, name: &str, hosts: impl Iterator<Item = u32>) -> String {
    let mut text =
        String::from("[lb]\nsource_v4 = \"172.16.0.0/16\"\nnext_hop = \"02:00:00:00:00:99\"\n");
    let mut count = 0;
    for host in hosts {
        text += &format!(
            "[[lb.vip]]\nvip = \"203.0.113.{host}:80/tcp\"\nring_size = 251\n\
             [[lb.vip.backend]]\naddress = \"10.0.{}.{}\"\nweight = 1\n",
            host / 200,
            host % 200 + 1
        );
        count += 1;
    }
    assert_eq!(count, MAX_VIPS, "every config is at the limit");
    let dir = bed.a().state_dir();
    std::fs::create_dir_all(&dir).expect("state dir");
    let path = dir.join(format!("test-{name}.toml"));
    std::fs::write(&path, text).expect("write the config");
    path.display().to_string()
}

/// The VIP addresses of the saved state, sorted.
fn vips(bed: &TestBed) -> Vec<String> {
    let listed: Value =
        serde_json::from_str(&xdpath_ok_warned(bed, &["--json", "lb", "vip", "list"]))
            .expect("JSON");
    let mut vips: Vec<String> = listed
        .as_array()
        .expect("a list of VIPs")
        .iter()
        .map(|vip| vip["vip"].as_str().expect("vip").to_string())
        .collect();
    vips.sort();
    vips
}

/// Applies `file`; it must succeed, and the kernel must hold the state.
fn apply(bed: &TestBed, file: &str) {
    xdpath_ok_warned(bed, &["apply", "-f", file]);
    let check = xdpath(bed, &["state", "check"]);
    assert!(
        check.status.success(),
        "state check after apply: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

fn expected(hosts: impl Iterator<Item = u32>) -> Vec<String> {
    let mut vips: Vec<String> = hosts
        .map(|host| format!("203.0.113.{host}:80/tcp"))
        .collect();
    vips.sort();
    vips
}

#[test]
fn a_full_vip_table_swaps_vips() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let first = 1..=MAX_VIPS;
    apply(&bed, &config(&bed, "first", first.clone()));
    assert_eq!(vips(&bed), expected(first));

    // One VIP replaced by another: VIP 1 leaves, 100 comes.
    let one = (2..=MAX_VIPS).chain([100]);
    apply(&bed, &config(&bed, "one", one.clone()));
    assert_eq!(vips(&bed), expected(one));

    // Every VIP replaced.
    let all = 101..=100 + MAX_VIPS;
    apply(&bed, &config(&bed, "all", all.clone()));
    assert_eq!(vips(&bed), expected(all));
}
