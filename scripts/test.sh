#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test:
#   1. release build with warnings as errors; all ctest tests (unit, fuzz
#      corpus replay, integration tests against the real binary, among them
#      memcached's own t/ tests, fetched once from Debian's source package
#      into build/memcached-t);
#   2. debug build with AddressSanitizer + UndefinedBehaviorSanitizer; the
#      unit tests again;
#   3. clang build with ThreadSanitizer (build-tsan); the unit tests, the
#      concurrency stress test (tests/integration/test_stress.py) and the
#      upstream pool's membership and meta tests (a watcher thread hands
#      snapshots to the workers) again, any report failing them
#      (tests/tsan.supp lists third-party suppressions);
#      then a clang build with the thread-safety analysis as errors
#      (build-tsa: the build is the check, nothing runs);
#   4. each libFuzzer fuzzer for FUZZ_SECONDS (default 20);
#   5. yamllint on the YAML files.
# Between 1 and 2 it renders and validates the Helm chart (tests/helm/test.sh);
# last it builds the container image with podman and checks it from the host
# (scripts/image-test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
jobs=$(nproc)

echo "== release build (warnings are errors)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSTRATA_WERROR=ON >/dev/null
cmake --build build -j "$jobs"
echo "== tests: unit, fuzz corpus, integration"
(cd build && ctest --output-on-failure -j "$jobs" --timeout 900)

echo "== Helm chart: render, Kubernetes schemas, yamllint, values schema, invariants"
tests/helm/test.sh

echo "== ASan+UBSan debug build: unit tests"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSTRATA_WERROR=ON \
  -DSTRATA_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure -j "$jobs" -L unit --timeout 900)

echo "== ThreadSanitizer build (clang): unit tests, the stress test, the pool's membership and meta tests"
CC=clang CXX=clang++ cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSTRATA_WERROR=ON -DSTRATA_TSAN=ON >/dev/null
cmake --build build-tsan -j "$jobs"
# halt_on_error=0: a report does not stop the process; it exits 66 at the
# end (a unit test fails) and the stress test finds the report in strata's
# log.
tsan_options="halt_on_error=0 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp"
(cd build-tsan && TSAN_OPTIONS="$tsan_options" \
  ctest --output-on-failure -j "$jobs" -L unit --timeout 900 &&
  TSAN_OPTIONS="$tsan_options" \
  ctest --output-on-failure -R '^integration[.](test_stress|test_upstream_membership|test_upstream_meta)$' \
    --timeout 900)

echo "== thread-safety analysis (clang -Werror=thread-safety): build only"
# Unoptimized and without debug info: the analysis runs in the front end,
# and the build is the check.
CC=clang CXX=clang++ cmake -S . -B build-tsa -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_FLAGS_DEBUG=-O0 -DCMAKE_CXX_FLAGS_DEBUG=-O0 \
  -DSTRATA_WERROR=ON -DSTRATA_THREAD_SAFETY=ON >/dev/null
cmake --build build-tsa -j "$jobs"

if [ -x tests/fuzz/run.sh ]; then
  echo "== fuzzers (${FUZZ_SECONDS:-20}s each)"
  tests/fuzz/run.sh build-fuzz "${FUZZ_SECONDS:-20}"
fi

echo "== yamllint"
yamllint -s config/strata.yaml config/strata-container.yaml helm/strata/alerts/strata-rules.yaml \
  tests/metrics/alerts_test.yaml

echo "== container image: podman build on a local Debian base, run, check from the host"
scripts/image-test.sh
echo "All tests passed."
