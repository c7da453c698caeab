use xdpath::dataplane::LoadedProgram;
use xdpath_core::*;
#[test]
fn experiment() {
    let mut p = LoadedProgram::load(InterfaceConfig::default()).unwrap();
    for len in [13usize, 14, 100, 3000, 3500, 3600, 4000, 9000, 65535, 80000, 262144] {
        let mut f = vec![0u8; len];
        if len >= 14 { f[12] = 0x08; f[13] = 0x06; }
        let before = p.counters().unwrap();
        let r = p.test_run(&f);
        let after = p.counters().unwrap();
        let diff: Vec<_> = (0..after.len()).filter(|&i| after[i] != before[i]).map(|i| (i, after[i].packets - before[i].packets, after[i].bytes - before[i].bytes)).collect();
        println!("{len}: {:?} {:?}", r.map_err(|e| format!("{e:?}")), diff);
    }
}
