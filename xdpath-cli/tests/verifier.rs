//! Every program of every embedded object loads into this kernel with its
//! BTF (so with function and line information: verifier logs and
//! `bpftool prog dump` name the source lines), and within the verifier's
//! budget with room to spare; the count of instructions each program's
//! verification processed is printed (`--nocapture`).
//!
//! Needs root and a kernel with BPF.

use aya::programs::Xdp;
use aya::Ebpf;
use xdpath::objects;

/// The verifier's budget per program (`BPF_COMPLEXITY_LIMIT_INSNS`).
const VERIFIER_BUDGET: u32 = 1_000_000;

/// The least room each program must leave. Another kernel's verifier
/// walks a program differently: one this close to the budget here may be
/// refused there, and the next change to it refused here.
const LEAST_ROOM: u32 = VERIFIER_BUDGET / 100;

/// (program, instructions the verifier processed, whether it has BTF) of
/// each program of `object`, loaded (not attached) on fresh maps.
fn load_each(name: &str, object: &[u8]) -> Vec<(String, u32, bool)> {
    let mut ebpf = Ebpf::load(object).unwrap_or_else(|error| panic!("{name}: {error}"));
    let programs: Vec<String> = ebpf.programs().map(|(name, _)| name.to_owned()).collect();
    let mut loaded = Vec::new();
    for program in programs {
        let xdp: &mut Xdp = ebpf
            .program_mut(&program)
            .expect("listed")
            .try_into()
            .unwrap_or_else(|error| panic!("{name}/{program} is not XDP: {error}"));
        xdp.load()
            .unwrap_or_else(|error| panic!("{name}/{program} loads: {error}"));
        let info = xdp.info().expect("its info");
        let verified = info
            .verified_instruction_count()
            .expect("kernel 5.16 or later reports it");
        loaded.push((program, verified, info.btf_id().is_some()));
    }
    loaded
}

#[test]
fn every_program_loads_with_its_btf_and_room_in_the_verifiers_budget() {
    xdpath_lab::needs_root!();
    let objects: [(&str, &[u8]); 6] = [
        ("xdpath", objects::XDPATH),
        ("xdpath-empty", objects::EMPTY),
        ("xdpath-xsk", objects::XSK),
        ("xdpath-redirect", objects::REDIRECT),
        ("xdpath-flood", objects::FLOOD),
        ("xdpath-reflb", objects::REFLB),
    ];
    let mut short = Vec::new();
    for (object, bytes) in objects {
        for (program, verified, has_btf) in load_each(object, bytes) {
            println!("{object}/{program}: {verified} instructions verified, BTF {has_btf}");
            assert!(has_btf, "{object}/{program} was loaded without its BTF");
            if verified > VERIFIER_BUDGET - LEAST_ROOM {
                short.push(format!("{object}/{program}: {verified}"));
            }
        }
    }
    assert!(
        short.is_empty(),
        "within {LEAST_ROOM} instructions of the verifier's {VERIFIER_BUDGET}: {short:?}"
    );
}
