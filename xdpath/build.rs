//! Builds the eBPF programs (crate `xdpath-ebpf`) and leaves the objects in
//! `OUT_DIR` for `include_bytes_aligned!`.
//!
//! There is no `rust-src` for the rustup toolchains here, so `-Z build-std`
//! is out; Debian's rustc ships a prebuilt `core` for `bpfel-unknown-none`
//! (see doc/TOOLCHAIN.md). `aya-build` runs the nested build through
//! `rustup run` and drops `RUSTC`, so it cannot use that compiler: this
//! script runs the nested cargo itself.

#[path = "build/btf.rs"]
mod btf;

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's rustc, the one with a BPF `core` (package libstd-rust-web-dev-bpf).
const BPF_RUSTC: &str = "/usr/bin/rustc";
const PROGRAMS: [&str; 6] = [
    "xdpath",
    "xdpath-empty",
    "xdpath-xsk",
    "xdpath-redirect",
    "xdpath-flood",
    "xdpath-reflb",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let workspace = manifest_dir
        .parent()
        .expect("the crate lives in the workspace")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it"));
    for watched in [
        "xdpath-core/src",
        "xdpath-core/Cargo.toml",
        "xdpath-ebpf/src",
        "xdpath-ebpf/Cargo.toml",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    println!("cargo:rerun-if-env-changed=XDPATH_BPF_RUSTC");

    let rustc = env::var("XDPATH_BPF_RUSTC").unwrap_or_else(|_| BPF_RUSTC.to_string());
    if !Path::new(&rustc).exists() {
        panic!(
            "{rustc} not found: the eBPF build needs Debian's rustc with the BPF core. \
             Run scripts/setup.sh (it installs rustc-web and libstd-rust-web-dev-bpf)."
        );
    }
    let target_dir = out_dir.join("ebpf-target");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // bpf-linker is the BPF target's default linker: it must be on PATH.
    let mut path = env::var_os("PATH").unwrap_or_default();
    if let Some(home) = env::var_os("HOME") {
        let cargo_bin = PathBuf::from(home).join(".cargo/bin");
        let mut paths: Vec<PathBuf> = env::split_paths(&path).collect();
        paths.push(cargo_bin);
        path = env::join_paths(paths).expect("PATH entries are valid");
    }
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace.join("xdpath-ebpf"))
        .args([
            "build",
            "--release",
            "--target",
            "bpfel-unknown-none",
            "--bins",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env("PATH", path)
        .env("RUSTC", &rustc)
        // aya-ebpf uses #![feature(asm_experimental_arch)].
        .env("RUSTC_BOOTSTRAP", "1")
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            [
                "-C",
                "debuginfo=2",
                "-C",
                "link-arg=--btf",
                "-C",
                "target-cpu=v3",
                "-C",
                // Unaligned packet reads in one load instead of byte by byte
                // (x86's verifier allows them on packet and map memory, not
                // on the stack: the programs keep packed keys in per-CPU
                // scratch maps and align their stack structs to 8).
                "target-feature=+allows-misaligned-mem-access",
                "--cfg=bpf_target_arch=\"x86_64\"",
            ]
            .join("\x1f"),
        );
    let status = command
        .status()
        .expect("run the nested cargo build of xdpath-ebpf");
    if !status.success() {
        panic!("building the eBPF programs failed ({status}); see the output above");
    }
    for program in PROGRAMS {
        let built = target_dir.join("bpfel-unknown-none/release").join(program);
        let copy = out_dir.join(format!("{program}.bpf.o"));
        let mut object = std::fs::read(&built)
            .unwrap_or_else(|error| panic!("read {}: {error}", built.display()));
        btf::sanitize_object(&mut object)
            .unwrap_or_else(|error| panic!("the BTF of {}: {error}", built.display()));
        std::fs::write(&copy, &object)
            .unwrap_or_else(|error| panic!("write {}: {error}", copy.display()));
    }
}
