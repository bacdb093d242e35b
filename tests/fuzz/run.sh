#!/usr/bin/env bash
# Builds the libFuzzer fuzzers with clang and runs each for a while.
#
#   tests/fuzz/run.sh [BUILD_DIR] [SECONDS] [FUZZER...]
#
#   BUILD_DIR  where to configure and build (default: build-fuzz); use a
#              directory of its own, configured for clang only
#   SECONDS    how long each fuzzer runs (default: 30)
#   FUZZER     which ones (default: fuzz_protocol fuzz_numbers fuzz_config
#              fuzz_meta_reply fuzz_server_file fuzz_ssd_record)
#
# Each fuzzer starts from its checked-in seeds (tests/fuzz/corpus/<fuzzer>,
# never written to) plus what earlier runs found (BUILD_DIR/fuzz-corpus/
# <fuzzer>, grown by this run). Crash inputs go to BUILD_DIR/fuzz-artifacts/;
# replay one with BUILD_DIR/tests/fuzz/<fuzzer> FILE, or with the plain
# fuzz_replay_<name> binary of any build. Extra libFuzzer flags can be given
# in FUZZ_ARGS (e.g. FUZZ_ARGS="-jobs=2 -workers=2").
#
# Exits non-zero if a fuzzer found a crash, a leak, a timeout or an
# out-of-memory, or hung.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${1:-build-fuzz}"
seconds="${2:-30}"
shift $(( $# > 2 ? 2 : $# ))
fuzzers=("$@")
if [ ${#fuzzers[@]} -eq 0 ]; then
  fuzzers=(fuzz_protocol fuzz_numbers fuzz_config fuzz_meta_reply fuzz_server_file
           fuzz_ssd_record)
fi
case "$build" in /*) ;; *) build="$PWD/$build" ;; esac

cc="${CC:-clang}"
cxx="${CXX:-clang++}"
echo "== configuring $build with $cxx"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTRATA_FUZZ=ON >/dev/null
cmake --build "$build" --target "${fuzzers[@]}"

max_len() {
  case "$1" in
    fuzz_numbers) echo 128 ;;
    fuzz_config) echo 4096 ;;
    *) echo 8192 ;;
  esac
}

mkdir -p "$build/fuzz-artifacts"
failed=()
for f in "${fuzzers[@]}"; do
  name="${f#fuzz_}"
  corpus="$build/fuzz-corpus/$f"
  mkdir -p "$corpus"
  dict=()
  if [ -f "$here/$name.dict" ]; then dict=(-dict="$here/$name.dict"); fi
  echo "== $f for ${seconds}s"
  log="$build/fuzz-artifacts/$f.log"
  rc=0
  # shellcheck disable=SC2086
  # -malloc_limit_mb reports a runaway allocation at the malloc that crosses
  # it, before the per-input -timeout fires (libFuzzer's timeout handler can
  # deadlock inside ASan's allocator); the outer timeout is the last resort.
  timeout -k 10 $((seconds + 120)) \
    "$build/tests/fuzz/$f" -max_total_time="$seconds" -print_final_stats=1 \
    -max_len="$(max_len "$f")" -timeout=20 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -artifact_prefix="$build/fuzz-artifacts/$f-" "${dict[@]}" ${FUZZ_ARGS:-} \
    "$corpus" "$here/corpus/$f" >"$log" 2>&1 || rc=$?
  grep -E '^(INFO: seed corpus|#[0-9]+ +(INITED|DONE)|stat::(number_of_executed_units|peak_rss_mb|new_units_added)|Done [0-9]+ runs)' \
    "$log" || true
  if [ "$rc" -ne 0 ]; then
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then echo "!! $f hung and was killed"; fi
    echo "!! $f exited with status $rc:"
    grep -E 'FUZZ_CHECK|ERROR:|runtime error|SUMMARY|Test unit written|artifact_prefix' "$log" | head -20 || true
    echo "!! full log: $log"
    failed+=("$f")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzers with findings: ${failed[*]}"
  exit 1
fi
echo "all fuzzers ran ${seconds}s without findings"
