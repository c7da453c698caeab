//! The steering decision: which plain passes go to a CPU of the steering
//! list (software RSS) or to an AF_XDP socket, and which CPU slot a flow
//! takes. The kernel's steering stage (`xdpath-ebpf/src/main.rs`) applies
//! it with its maps; the tests here hold the arithmetic.

use crate::abi;
use crate::verdict::Outcome;

/// Whether an outcome may be steered: a plain pass, counted as its class.
/// A filter's monitored drop, a malformed frame passed by policy and every
/// other verdict stay where they are.
#[inline(always)]
pub fn steerable(outcome: &Outcome) -> bool {
    crate::stages::plain_pass(outcome)
}

/// The slot of the steering list (`STEER_CPUS`) a flow goes to, given the
/// count in slot 0: `1 + hash % count`, so every frame of a flow goes to
/// the same CPU. `None` for an empty list or a count over
/// [`abi::MAX_STEER_CPUS`] (a damaged list steers nothing).
#[inline(always)]
pub fn cpu_slot(flow_hash: u32, count: u32) -> Option<u32> {
    if count == 0 || count > abi::MAX_STEER_CPUS {
        return None;
    }
    Some(1 + flow_hash % count)
}

/// The key of a flow in the AF_XDP steering rules (`STEER_XSK`): protocol
/// and destination port. The data path looks it up per frame; user space
/// writes it (`xdpath xsk add`).
#[inline(always)]
pub fn xsk_rule(protocol: u8, destination_port: u16) -> u32 {
    u32::from(protocol) << 16 | u32::from(destination_port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Action, Reason};

    fn outcome(action: Action, reason: Reason) -> Outcome {
        Outcome { action, reason }
    }

    #[test]
    fn only_plain_passes_are_steered() {
        assert!(steerable(&outcome(Action::Pass, Reason::Ipv4Tcp)));
        assert!(steerable(&outcome(Action::Pass, Reason::Ipv6Other)));
        assert!(!steerable(&outcome(Action::Drop, Reason::Ipv4Tcp)));
        assert!(
            !steerable(&outcome(Action::Pass, Reason::RuleDeny)),
            "a monitored drop"
        );
        assert!(!steerable(&outcome(
            Action::Pass,
            Reason::TruncatedEthernet
        )));
    }

    #[test]
    fn a_flow_keeps_its_slot_and_slots_cover_the_list() {
        assert_eq!(cpu_slot(7, 0), None);
        assert_eq!(cpu_slot(7, abi::MAX_STEER_CPUS + 1), None);
        assert_eq!(cpu_slot(7, 4), Some(4));
        assert_eq!(cpu_slot(8, 4), Some(1));
        let slots: std::collections::BTreeSet<u32> =
            (0..64).filter_map(|hash| cpu_slot(hash, 4)).collect();
        assert_eq!(
            slots.into_iter().collect::<std::vec::Vec<_>>(),
            [1, 2, 3, 4]
        );
    }

    #[test]
    fn xsk_rules_are_protocol_and_port() {
        assert_eq!(xsk_rule(17, 9000), 17 << 16 | 9000);
    }
}
