#!/usr/bin/env bash
# Installs what is missing, builds a release binary and runs strata in the
# foreground with config/strata.yaml. Extra arguments go to strata, e.g.
#   scripts/run.sh -p 11311 -m 1024
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSTRATA_TESTS=OFF >/dev/null
cmake --build build --target strata
mkdir -p var  # the SSD tier's file (config/strata.yaml: tiers.ssd.path)
exec build/proxy/strata --config config/strata.yaml "$@"
