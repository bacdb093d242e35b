#!/usr/bin/env bash
# Installs the Debian 12 packages strata needs, if any are missing.
#   scripts/deps.sh build   what building and running strata needs
#   scripts/deps.sh test    that, plus the peers and tools the tests use
set -euo pipefail

build_pkgs=(g++ cmake ninja-build pkg-config libuv1-dev liburing-dev liblz4-dev
            prometheus-cpp-dev libyaml-cpp-dev libgtest-dev libxxhash-dev libisal-dev
            libmd-dev zlib1g-dev libc-ares-dev)
test_pkgs=(memcached libmemcached-tools python3-pymemcache python3-pylibmc python3-pytest
           yamllint clang libclang-rt-14-dev prometheus podman runc mmdebstrap
           golang-go golang-github-masterminds-sprig-dev golang-github-xeipuuv-gojsonschema-dev
           golang-k8s-sigs-yaml-dev python3-yaml python3-seccomp
           nutcracker golang-github-bradfitz-gomemcache-dev golang-github-cespare-xxhash-dev
           perl dpkg-dev debian-archive-keyring xz-utils python3-dnslib)

pkgs=("${build_pkgs[@]}")
if [ "${1:-build}" = "test" ]; then pkgs+=("${test_pkgs[@]}"); fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
