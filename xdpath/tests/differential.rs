//! Differential fuzzing (needs root): random frames, and valid frames with
//! random bytes overwritten, through the kernel (`BPF_PROG_TEST_RUN`) and
//! the native build. Both must give the same verdict and count the frame in
//! the same (verdict, reason) slot; the kernel never returns XDP_ABORTED.

use std::cell::RefCell;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use xdpath::dataplane::LoadedProgram;
use xdpath::stats::difference;
use xdpath_core::build::{doc_v6, FrameSpec, Network, Transport};
use xdpath_core::stats::counter_index;
use xdpath_core::{pipeline, InterfaceConfig, MalformedPolicy, NativeTables, SlicePacket};

/// `BPF_PROG_TEST_RUN` refuses frames shorter than an Ethernet header.
const ETH_HLEN: usize = 14;

fn seed_frames() -> Vec<Vec<u8>> {
    let v4 = Network::V4([192, 0, 2, 1], [198, 51, 100, 2]);
    let v6 = Network::V6(doc_v6(1), doc_v6(2));
    vec![
        FrameSpec::new(v4, Transport::tcp(1, 80, 2)).build(),
        FrameSpec::new(v6, Transport::udp(53, 9))
            .with_payload(&[7; 20])
            .build(),
        FrameSpec::new(v4, Transport::EchoRequest)
            .with_vlans(&[5, 6])
            .build(),
        FrameSpec::new(v6, Transport::tcp(9, 443, 0x10))
            .with_vlans(&[100])
            .build(),
    ]
}

fn frames() -> impl Strategy<Value = Vec<u8>> {
    let mutated = (
        0..seed_frames().len(),
        prop::collection::vec((any::<usize>(), any::<u8>()), 1..6),
    )
        .prop_map(|(seed, edits)| {
            let mut frame = seed_frames().swap_remove(seed);
            for (at, byte) in edits {
                let index = at % frame.len();
                frame[index] = byte;
            }
            frame
        });
    prop_oneof![prop::collection::vec(any::<u8>(), ETH_HLEN..600), mutated]
}

#[test]
fn kernel_and_native_agree_on_random_frames() {
    for policy in [MalformedPolicy::Pass, MalformedPolicy::Drop] {
        let config = InterfaceConfig::new(policy);
        // The runner takes an `Fn`; the program is used one case at a time.
        let program =
            RefCell::new(LoadedProgram::load(config).expect("load the XDP program (needs root)"));
        let mut runner = TestRunner::new(Config {
            cases: 1500,
            ..Config::default()
        });
        runner
            .run(&frames(), |frame| {
                let mut program = program.borrow_mut();
                let before = program.counters().expect("counters");
                let code = program.test_run(&frame).expect("test run");
                let after = program.counters().expect("counters");
                let outcome =
                    pipeline::process(&SlicePacket::new(&frame), &mut NativeTables::new(config));
                prop_assert_ne!(code, 0, "XDP_ABORTED");
                prop_assert_eq!(code, outcome.action as u32);
                let counted: Vec<usize> = difference(&before, &after)
                    .iter()
                    .enumerate()
                    .filter(|(_, counter)| counter.packets != 0)
                    .map(|(slot, _)| slot)
                    .collect();
                prop_assert_eq!(
                    counted,
                    vec![counter_index(outcome.action, outcome.reason) as usize]
                );
                Ok(())
            })
            .expect("kernel and native agree");
    }
}
