#!/usr/bin/env bash
# Runs every test of the Rust workspace: the test binaries cargo builds
# (unit, integration, property, fixture tables through BPF_PROG_TEST_RUN,
# end-to-end in network namespaces), XDPATH_TEST_JOBS of them at a time
# (default 2), then the doc tests. Each binary's output goes to a log that is
# printed when it fails.
#
# Why not one `cargo test`: it runs the binaries one after another, and
# most of their time is spent waiting (on veth pairs, health checks,
# floods of a few seconds, the verifier of another binary's program), so
# two at a time take about two thirds of the time on a 2-CPU machine.
# Every test makes its own namespaces and state (named by its process), so
# binaries do not meet. A binary that fails while another runs beside it
# is run again alone, and counts as passed only if it then passes: that is
# said loudly (a test that needs the machine to itself is worth knowing).
#
# Arguments go to `cargo test` (e.g. `-p xdpath-cli`); needs root for the
# kernel tests (XDPATH_REQUIRE_ROOT=1 makes them fail rather than skip).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
jobs="${XDPATH_TEST_JOBS:-2}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

selection=("$@")
if ((${#selection[@]} == 0)); then
  selection=(--workspace --exclude xdpath-ebpf)
fi

# The test binaries: "name<TAB>package directory<TAB>executable".
cargo test --release "${selection[@]}" --no-run --message-format=json 2>"$work/build.log" |
  python3 -c '
import json, os, sys
for line in sys.stdin:
    try:
        message = json.loads(line)
    except ValueError:
        continue
    if message.get("reason") == "compiler-artifact" and message.get("executable") and message["profile"]["test"]:
        target = message["target"]
        print(target["name"] + ":" + target["kind"][0], os.path.dirname(message["manifest_path"]), message["executable"], sep="\t")
' >"$work/binaries" || {
  cat "$work/build.log" >&2
  exit 1
}

# The longest first (measured two at a time: each takes about one to
# four minutes), so the short ones fill the gaps at the end. The fixture
# tables, which share their programs (xdpath_testing::reuse), are no
# longer among them but for filter_fixtures.
slow="fail_closed:test upgrade:test forward_e2e:test demo:test bench_cpus:test flood_e2e:test cli_fuzz:test lb_e2e:test filter_fixtures:test contract:test"
{
  for name in $slow; do grep -P "^\Q$name\E\t" "$work/binaries" || true; done
  grep -v -F -f <(printf '%s\t\n' $slow) "$work/binaries" || true
} >"$work/ordered"

run_one() {
  local name="$1" dir="$2" exe="$3" work="$4" started status
  started=$(date +%s)
  status=0
  (cd "$dir" && "$exe") >"$work/$name.log" 2>&1 || status=$?
  local took=$(($(date +%s) - started))
  if ((status == 0)); then
    printf 'ok      %-28s %4d s  %s\n' "$name" "$took" "$(grep -h '^test result' "$work/$name.log" | tail -1 | sed -E 's/^test result: ok\. ([0-9]+ passed); [0-9]+ failed; ([0-9]+ ignored).*/\1, \2/')"
  else
    printf 'FAILED  %-28s %4d s\n' "$name" "$took"
    echo "$name" >>"$work/failed"
  fi
}
export -f run_one

started=$(date +%s)
tr '\t' '\n' <"$work/ordered" | xargs -d '\n' -n 3 -P "$jobs" bash -c 'run_one "$@" "'"$work"'"' _
echo "rust-tests: $(wc -l <"$work/ordered") test binaries in $(($(date +%s) - started)) s, $jobs at a time"

failed=0
if [ -s "$work/failed" ]; then
  while read -r name; do
    echo "rust-tests: $name failed beside another binary; its output:" >&2
    cat "$work/$name.log" >&2
    line=$(grep -P "^\Q$name\E\t" "$work/ordered")
    IFS=$'\t' read -r _ dir exe <<<"$line"
    echo "rust-tests: running $name again, alone" >&2
    if (cd "$dir" && "$exe") >"$work/$name.again.log" 2>&1; then
      echo "rust-tests: WARNING: $name passed alone but failed beside another binary (load-sensitive)" >&2
    else
      cat "$work/$name.again.log" >&2
      echo "rust-tests: $name FAILED alone too" >&2
      failed=1
    fi
  done <"$work/failed"
fi

if cargo test --release "${selection[@]}" --doc >"$work/doc.log" 2>&1; then
  echo "rust-tests: doc tests: $(grep -c '^test result' "$work/doc.log") sets passed"
else
  cat "$work/doc.log" >&2
  echo "rust-tests: doc tests FAILED" >&2
  failed=1
fi
exit "$failed"
