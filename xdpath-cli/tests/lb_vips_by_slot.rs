//! The VIPs by slot (`VIPS_BY_SLOT`), through which a frame of an
//! established flow finds its VIP from its backend without the VIP table's
//! hash lookup (`xdpath_core::lb::VipSlot`):
//!
//! - every install leaves each VIP's key and entry in its slot, exactly
//!   as the VIP table holds them, the other slots zero, and each backend
//!   naming its VIP's slot (plus one);
//! - a VIP deleted leaves its slot zero;
//! - the settings allow the fast path (`LB_ESTABLISHED_BY_SLOT`) only
//!   while every VIP is a port VIP that keeps its flows by their ports;
//! - a slot holding what the VIP table does not (settings a writer stopped
//!   part way left), or zero where a VIP is (a writer stopped between
//!   clearing and writing it), is a difference `state check` reports, and
//!   `--repair` writes it again.
//!
//! That the fast path balances as the VIP table would is held by
//! `lb_fixtures` (the kernel's fast path against the native build, which
//! always looks the VIP up). Needs root.

use aya::maps::{Array, HashMap as BpfHashMap, Map, MapData};
use xdpath_core::abi;
use xdpath_core::lb::{
    LbConfig, Vip, VipSlot, LB_ESTABLISHED_BY_SLOT, MAX_BACKENDS, MAX_VIPS, VIP_SAMPLED,
};
use xdpath_core::parse::ipv4_mapped;
use xdpath_lab::testenv::TestBed;

mod common;
// Warnings allowed: the balancer warns when forwarding is off.
use common::{bed, text, xdpath, xdpath_ok_warned};

const VIP: &str = "203.0.113.10:80/tcp";
const SLOT_SIZE: usize = size_of::<VipSlot>();

fn balancer(bed: &TestBed) {
    let interface = bed.a().interface.clone();
    xdpath_ok_warned(bed, &["attach", &interface, "--mode", "generic"]);
    xdpath_ok_warned(bed, &["lb", "config", "--source-v4", "172.16.0.0/16"]);
    xdpath_ok_warned(bed, &["lb", "vip", "add", VIP]);
    xdpath_ok_warned(bed, &["lb", "backend", "add", VIP, "10.0.0.1"]);
    xdpath_ok_warned(bed, &["lb", "backend", "add", VIP, "10.0.0.2"]);
}

fn shared(bed: &TestBed, map: &str) -> MapData {
    MapData::from_pin(bed.a().pin_dir().join(":shared").join(map)).expect(map)
}

fn slots(bed: &TestBed) -> Array<MapData, [u8; SLOT_SIZE]> {
    Array::try_from(Map::Array(shared(bed, abi::map::VIPS_BY_SLOT))).expect(abi::map::VIPS_BY_SLOT)
}

/// `VipKey` of 203.0.113.10:80/tcp: the address IPv4-mapped, the port in
/// host order, the protocol, five reserved bytes.
fn vip_key() -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..16].copy_from_slice(&ipv4_mapped([203, 0, 113, 10]));
    key[16..18].copy_from_slice(&80u16.to_ne_bytes());
    key[18] = 6;
    key
}

/// The VIP's entry in the VIP table, and its slot.
fn vip_entry(bed: &TestBed) -> ([u8; size_of::<Vip>()], u32) {
    let vips: BpfHashMap<MapData, [u8; 24], [u8; size_of::<Vip>()]> =
        BpfHashMap::try_from(Map::HashMap(shared(bed, abi::map::VIPS))).expect(abi::map::VIPS);
    let entry = vips
        .get(&vip_key(), 0)
        .expect("the VIP is in the VIP table");
    let slot = u32::from_ne_bytes(entry[..4].try_into().expect("four bytes"));
    (entry, slot)
}

/// Every slot: the VIP's holds its key and entry, the others are zero.
fn slots_hold_the_vip_table(bed: &TestBed) {
    let (entry, slot) = vip_entry(bed);
    let table = slots(bed);
    for at in 0..MAX_VIPS {
        let held = table.get(&at, 0).expect("a slot");
        if at == slot {
            assert_eq!(held[..24], vip_key(), "slot {at}: the VIP's key");
            assert_eq!(held[24..40], entry, "slot {at}: the VIP table's entry");
            assert_ne!(held[40..], [0; 8], "slot {at}: sealed");
        } else {
            assert_eq!(held, [0; SLOT_SIZE], "slot {at}: no VIP");
        }
    }
}

/// The balancer's settings' flags (`LbConfig::flags`, its first word).
fn lb_flags(bed: &TestBed) -> u32 {
    let config: Array<MapData, [u8; size_of::<LbConfig>()]> =
        Array::try_from(Map::Array(shared(bed, abi::map::LB_CONFIG))).expect(abi::map::LB_CONFIG);
    let value = config.get(&0, 0).expect("the settings");
    u32::from_ne_bytes(value[..4].try_into().expect("four bytes"))
}

/// The `vip` field (VIP slot + 1) of every backend in use (family set).
fn backends_vip_fields(bed: &TestBed) -> Vec<u16> {
    let table: Array<MapData, [u8; 24]> =
        Array::try_from(Map::Array(shared(bed, abi::map::BACKENDS))).expect(abi::map::BACKENDS);
    (0..MAX_BACKENDS)
        .filter_map(|index| table.get(&index, 0).ok())
        .filter(|entry| entry[20] != 0)
        .map(|entry| u16::from_ne_bytes([entry[22], entry[23]]))
        .collect()
}

/// `state check` fails saying `says`; `--repair` fixes it, and the slots
/// hold the VIP table again.
fn reported_and_repaired(bed: &TestBed, says: &str) {
    let check = xdpath(bed, &["state", "check"]);
    assert!(!check.status.success(), "{}", text(&check));
    assert!(text(&check).contains(says), "{}", text(&check));
    let repaired = xdpath(bed, &["state", "check", "--repair"]);
    assert!(repaired.status.success(), "{}", text(&repaired));
    slots_hold_the_vip_table(bed);
    let check = xdpath(bed, &["state", "check"]);
    assert!(check.status.success(), "{}", text(&check));
}

#[test]
fn vips_by_slot_follow_the_vip_table_and_a_stale_slot_is_a_difference() {
    xdpath_lab::needs_root!();
    let bed = bed();
    balancer(&bed);
    slots_hold_the_vip_table(&bed);
    let (_, slot) = vip_entry(&bed);
    let own = u16::try_from(slot + 1).expect("a slot below 32");
    assert_eq!(backends_vip_fields(&bed), [own, own], "backends name it");

    // Settings the VIP table no longer holds (sampled, say).
    let mut stale = slots(&bed).get(&slot, 0).expect("the slot");
    stale[24 + 14] |= VIP_SAMPLED;
    slots(&bed).set(slot, stale, 0).expect("write a stale slot");
    reported_and_repaired(&bed, "VIPs by slot: 0 of the state's 1 VIPs missing");
    let check = text(&xdpath(&bed, &["state", "check"]));
    assert!(!check.contains("VIPs by slot"), "{check}");

    // A writer stopped between clearing the slot and writing it again.
    slots(&bed)
        .set(slot, [0u8; SLOT_SIZE], 0)
        .expect("clear the slot");
    reported_and_repaired(&bed, "VIPs by slot: 1 of the state's 1 VIPs missing");

    // Another VIP's entry in a free slot.
    let free = (slot + 1) % MAX_VIPS;
    slots(&bed).set(free, stale, 0).expect("fill a free slot");
    reported_and_repaired(&bed, "1 slots holding what the state does not");

    // The fast path is on only while every VIP allows it.
    assert_ne!(lb_flags(&bed) & LB_ESTABLISHED_BY_SLOT, 0, "a port VIP");
    let untracked = "203.0.113.11:80/tcp";
    xdpath_ok_warned(
        &bed,
        &["lb", "vip", "add", untracked, "--flags", "no-conntrack"],
    );
    assert_eq!(
        lb_flags(&bed) & LB_ESTABLISHED_BY_SLOT,
        0,
        "an untracked VIP"
    );
    xdpath_ok_warned(&bed, &["lb", "vip", "del", untracked]);
    assert_ne!(
        lb_flags(&bed) & LB_ESTABLISHED_BY_SLOT,
        0,
        "port VIPs again"
    );

    xdpath_ok_warned(&bed, &["lb", "vip", "del", VIP]);
    let table = slots(&bed);
    for at in 0..MAX_VIPS {
        assert_eq!(
            table.get(&at, 0).expect("a slot"),
            [0; SLOT_SIZE],
            "slot {at}"
        );
    }
}
