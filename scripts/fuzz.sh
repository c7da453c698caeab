#!/usr/bin/env bash
# The fuzz campaign (README "Fuzzing"):
#
#   scripts/fuzz.sh targets [SECONDS]     every cargo-fuzz target for SECONDS (default 180)
#   scripts/fuzz.sh run TARGET [SECONDS]  one target (packet, pipeline, rule_file, config,
#                                         pcap_reader, pcapng_reader, pcapng_writer,
#                                         api_request)
#   scripts/fuzz.sh cmin [TARGET]         minimise the kept corpus (all targets by default)
#   scripts/fuzz.sh diff [FRAMES] [SEED]  the differential fuzz, kernel against native
#                                         (root; default 10,000,000 frames, seed 1)
#
# The targets run under libFuzzer through cargo-fuzz on the stable
# toolchain: RUSTC_BOOTSTRAP=1 lets it pass the -Z flags (AddressSanitizer,
# coverage) that cargo-fuzz needs; no nightly toolchain is used. Inputs the
# fuzzer finds interesting go to fuzz/corpus/TARGET/ (the test suite
# replays every file there: minimise, then commit), crashes to
# fuzz/artifacts/TARGET/ (copy one into fuzz/corpus/TARGET/ once fixed, so
# it stays fixed).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

targets=(packet pipeline rule_file config pcap_reader pcapng_reader pcapng_writer api_request)

need_cargo_fuzz() {
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz (crates.io)" >&2
    cargo install --locked cargo-fuzz
  fi
}

fuzz() {
  RUSTC_BOOTSTRAP=1 cargo fuzz "$@"
}

run_target() {
  local target=$1 seconds=$2
  echo "fuzz: $target for ${seconds}s" >&2
  mkdir -p "fuzz/corpus/$target"
  fuzz run --features libfuzzer "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1
}

case "${1:-}" in
  targets)
    need_cargo_fuzz
    for target in "${targets[@]}"; do
      run_target "$target" "${2:-180}"
    done
    ;;
  run)
    need_cargo_fuzz
    run_target "${2:?which target}" "${3:-180}"
    ;;
  cmin)
    need_cargo_fuzz
    if [ $# -ge 2 ]; then targets=("$2"); fi
    for target in "${targets[@]}"; do
      fuzz cmin --features libfuzzer "$target" "fuzz/corpus/$target"
    done
    ;;
  diff)
    XDPATH_FUZZ_FRAMES="${2:-10000000}" XDPATH_FUZZ_SEED="${3:-1}" \
      cargo test --release -p xdpath-cli --test differential long_differential_fuzz \
      -- --ignored --nocapture
    ;;
  *)
    sed -n '2,18p' "$0" >&2
    exit 2
    ;;
esac
