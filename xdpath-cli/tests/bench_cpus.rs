//! `xdpath bench --cpus N` runs the mix and the balancer's passes on N
//! CPUs at once and reports each CPU's figure and the aggregate; the
//! balancer section runs the reference balancer beside xdpath's, each
//! with the connection tables asked for. Small counts: this checks what
//! the report holds, not how fast anything is. Needs root and two CPUs.

mod common;

use std::process::Command;

use serde_json::Value;

fn bench(args: &[&str]) -> Value {
    let output = Command::new(common::XDPATH)
        .args([
            "--json",
            "bench",
            "--no-observe",
            "--trials",
            "1",
            "--repeat",
            "1000",
        ])
        .args([
            "--native-packets",
            "1000",
            "--lb-flows",
            "300",
            "--lb-rounds",
            "1",
        ])
        .args(args)
        .output()
        .expect("run xdpath bench");
    assert!(
        output.status.success(),
        "xdpath bench {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON")
}

fn positive(value: &Value) -> bool {
    value.as_f64().is_some_and(|number| number > 0.0)
}

#[test]
fn bench_on_two_cpus_reports_each_cpu_and_the_aggregate() {
    xdpath_lab::needs_root!();
    let report = bench(&["--cpus", "2", "--connection-table", "per-cpu"]);
    let mix = report["multicore"].as_array().expect("the mix on 2 CPUs");
    assert!(
        mix.len() >= 3,
        "xdpath, filter, empty (and xdp-filter): {mix:?}"
    );
    for row in mix {
        let per_cpu = row["per_cpu_ns"].as_array().expect("per CPU");
        assert_eq!(per_cpu.len(), 2, "{row}");
        assert!(per_cpu.iter().all(positive), "{row}");
        assert_eq!(row["cpus"].as_array().map(Vec::len), Some(2));
        assert!(positive(&row["aggregate_packets_per_second"]), "{row}");
    }
    let lb = &report["lb"];
    assert!(
        lb["connection_table"]
            .as_str()
            .is_some_and(|text| text.contains("BPF_F_NO_COMMON_LRU")),
        "{}",
        lb["connection_table"]
    );
    let multi = lb["multi_cpu"].as_array().expect("the LB on 2 CPUs");
    let programs: Vec<&str> = multi
        .iter()
        .filter_map(|row| row["program"].as_str())
        .collect();
    assert_eq!(programs.len(), 4, "{programs:?}");
    assert!(programs.iter().any(|name| name.starts_with("reference")));
    for row in multi {
        let per_cpu = row["per_cpu_ns"].as_array().expect("per CPU");
        assert_eq!(per_cpu.len(), 2, "{row}");
        assert!(per_cpu.iter().all(positive), "{row}");
    }
    let reference = lb["reference"].as_array().expect("ratios to the reference");
    let rows: Vec<&str> = reference
        .iter()
        .filter_map(|row| row["row"].as_str())
        .collect();
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert!(reference.iter().all(|row| positive(&row["ratio"])));
}

#[test]
fn bench_on_one_cpu_is_the_baseline_and_the_shared_table_the_default() {
    xdpath_lab::needs_root!();
    let report = bench(&["--cpus", "1", "--no-lb"]);
    let mix = report["multicore"].as_array().expect("the mix on 1 CPU");
    assert!(mix
        .iter()
        .all(|row| row["per_cpu_ns"].as_array().map(Vec::len) == Some(1)));
    let lb = bench(&["--cpus", "1"])["lb"].clone();
    assert!(
        lb["connection_table"]
            .as_str()
            .is_some_and(|text| text.contains("one LRU list shared")),
        "{}",
        lb["connection_table"]
    );
    assert_eq!(
        lb["multi_cpu"][0]["per_cpu_ns"].as_array().map(Vec::len),
        Some(1)
    );
}
