#!/usr/bin/env bash
# Tests the Helm chart in helm/strata without a cluster or a helm binary:
#   1. builds tests/helm/render (a `helm template` stand-in) from Debian's Go
#      packages only, in GOPATH mode: no Go module download;
#   2. installs the npm packages pinned in package-lock.json (Kubernetes and
#      Prometheus Operator JSON schemas, a YAML parser) into node_modules/;
#   3. runs test_chart.py with pytest: renders every example, validates the
#      manifests, lints them, checks values.schema.json against tests/helm/bad
#      and the chart's invariants; with a built strata (build/proxy/strata or
#      $STRATA_BIN) it also runs the rendered config, the demo app and the
#      seccomp profile against the real binary.
# Run from anywhere; exits non-zero on any failure. Rendered manifests are
# left in tests/helm/out/ for reading.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$here"

# Debian packages (scripts/deps.sh test installs them too).
pkgs=(golang-go golang-github-masterminds-sprig-dev golang-github-xeipuuv-gojsonschema-dev
      golang-k8s-sigs-yaml-dev nodejs npm yamllint python3-yaml python3-pytest python3-seccomp)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  # node and npm may come from elsewhere than Debian; only install what is really absent
  really=()
  for p in "${missing[@]}"; do
    case "$p" in
      nodejs) command -v node >/dev/null || really+=("$p") ;;
      npm) command -v npm >/dev/null || really+=("$p") ;;
      *) really+=("$p") ;;
    esac
  done
  if [ ${#really[@]} -gt 0 ]; then
    echo "== installing ${really[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${really[@]}" >/dev/null
  fi
fi

echo "== building the renderer (tests/helm/render)"
build="$here/.build"
gopath="$build/gopath"
# Debian installs sprig and semver v3 without the /v3 suffix of their module
# paths: link them under the import paths sprig uses.
mkdir -p "$gopath/src/github.com/Masterminds/sprig" "$gopath/src/github.com/Masterminds/semver"
ln -sfn /usr/share/gocode/src/github.com/Masterminds/sprig "$gopath/src/github.com/Masterminds/sprig/v3"
ln -sfn /usr/share/gocode/src/github.com/Masterminds/semver "$gopath/src/github.com/Masterminds/semver/v3"
(cd render && GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOCACHE="$build/gocache" \
   GOFLAGS= GOPROXY=off go vet . && \
 GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOCACHE="$build/gocache" \
   GOFLAGS= GOPROXY=off go build -o "$build/render" .)

echo "== npm packages (package-lock.json)"
if ! npm ls --silent >/dev/null 2>&1; then
  npm ci --no-audit --no-fund --loglevel=error
fi

echo "== chart tests"
export HELM_RENDER="$build/render"
export STRATA_BIN="${STRATA_BIN:-$repo/build/proxy/strata}"
[ -x "$STRATA_BIN" ] || echo "(no strata binary at $STRATA_BIN: the tests that run it are skipped)"
# The Debian python3: python3-yaml, python3-pytest and python3-seccomp are its.
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider "$here/test_chart.py" "$@"
