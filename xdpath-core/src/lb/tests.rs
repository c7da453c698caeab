//! Unit tests of the balancer's shared types.

use super::*;
use crate::parse::ipv4_mapped;

#[test]
fn the_vip_filter_keeps_every_vip_and_few_others() {
    let vips: [[u8; 16]; 3] = [
        ipv4_mapped([203, 0, 113, 10]),
        ipv4_mapped([203, 0, 113, 11]),
        [
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ],
    ];
    let mut config = LbConfig::default();
    assert!(!config.may_be_vip(&vips[0]), "empty filter");
    config.set_vip_addresses(vips.iter());
    assert!(vips.iter().all(|vip| config.may_be_vip(vip)));
    // Neighbouring addresses spread over the bits: with 3 of 256 bits
    // set, very few of a /16 pass.
    let passing = (0..=u16::MAX)
        .filter(|host| {
            let [c, d] = host.to_be_bytes();
            config.may_be_vip(&ipv4_mapped([10, 0, c, d]))
        })
        .count();
    assert!(passing < 65_536 * 3 / 256 * 2, "{passing} of 65536 pass");
}

#[test]
fn allow_keys_and_drop_slots_have_their_layout() {
    assert_eq!(core::mem::size_of::<AllowKey>(), 24);
    let address = ipv4_mapped([203, 0, 113, 10]);
    let client = ipv4_mapped([192, 0, 2, 1]);
    assert_eq!(
        VipKey::new(&address, 80, 6),
        VipKey {
            address,
            port: 80,
            protocol: 6,
            reserved: [0; 5],
        }
    );
    assert_eq!(
        ConnectionKey::new(&client, &address, 40000, 80, 6),
        ConnectionKey {
            source: client,
            destination: address,
            source_port: 40000,
            destination_port: 80,
            protocol: 6,
            reserved: [0; 3],
        }
    );
    let key = AllowKey::new(3, 4, &ipv4_mapped([10, 0, 0, 0]), 96 + 8);
    assert_eq!(key.prefix_len, 32 + 104);
    let mut slots = [false; (MAX_VIPS * VIP_DROP_SLOTS) as usize];
    for vip in 0..MAX_VIPS {
        for reason in VIP_DROP_REASONS {
            let index = vip_drop_index(vip, reason).expect("counted") as usize;
            assert!(
                !core::mem::replace(&mut slots[index], true),
                "{index} twice"
            );
        }
    }
    assert_eq!(
        vip_drop_index(MAX_VIPS, crate::stats::Reason::LbNoBackend),
        None
    );
    assert_eq!(vip_drop_index(0, crate::stats::Reason::LbForwarded), None);
}

#[test]
fn a_connection_as_one_word_and_back() {
    let connection = Connection {
        backend: 0x0102_0304,
        generation: 0xa0b0_c0d0,
    };
    assert_eq!(connection.to_word(), 0xa0b0_c0d0_0102_0304);
    assert_eq!(Connection::from_word(connection.to_word()), connection);
}

#[test]
fn too_big_answers_are_limited_per_second() {
    let mut budget = AnswerBudget::default();
    let second = 1_000_000_000;
    for _ in 0..ANSWERS_PER_SECOND {
        assert!(budget.take(5 * second + 1));
    }
    assert!(
        !budget.take(5 * second + 999_999_999),
        "over the second's budget"
    );
    assert!(budget.take(6 * second), "a new second, a new budget");
}
