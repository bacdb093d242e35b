#!/usr/bin/env bash
# Fetches memcached's own test suite (t/*.t and t/lib) from Debian's source
# package of the installed memcached, and prints the directory it is in.
#
#   scripts/memcached-tests.sh CACHE_DIR
#
# The tree is kept in CACHE_DIR/memcached-<debian version>/ and reused: only
# the first run downloads (about 1 MB, from deb.debian.org). apt runs with a
# private sources list, lists and cache under CACHE_DIR/apt, so the system's
# apt configuration and state are left alone and no root is needed. The
# tree's `memcached-debug` (which t/lib/MemcachedTest.pm runs for `-h`) execs
# $MEMCACHED_T_SERVER, the server under test.
#
# Needs: memcached (its version picks the source), apt, dpkg-dev
# (dpkg-source checks and unpacks the package), debian-archive-keyring.
set -euo pipefail

cache="${1:?usage: $0 CACHE_DIR}"
mkdir -p "$cache"
cache="$(cd "$cache" && pwd)"

version="$(dpkg-query -W -f='${Version}' memcached 2>/dev/null)" || {
  echo "memcached is not installed (apt-get install memcached)" >&2
  exit 1
}
tree="$cache/memcached-$version"
if [ -f "$tree/.complete" ]; then
  echo "$tree"
  exit 0
fi

apt_dir="$cache/apt"
mkdir -p "$apt_dir/sources" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
cat >"$apt_dir/sources/debian-src.sources" <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
apt_opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$apt_dir/sources"
          -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache")
if [ "$(id -u)" -eq 0 ]; then
  # The private directories are root's; apt's download user could not write them.
  apt_opts+=(-o "APT::Sandbox::User=root")
fi

echo "fetching the source of memcached $version from deb.debian.org" >&2
apt-get "${apt_opts[@]}" -qq update >&2
download="$cache/download"
rm -rf "$download" "$tree" "$tree.tmp"
mkdir -p "$download"
(cd "$download" && apt-get "${apt_opts[@]}" -qq source --download-only "memcached=$version" >&2)
# dpkg-source checks the files against the .dsc (apt checked the .dsc
# against the archive's signed index; the maintainer's own signature cannot
# be checked without debian-keyring, a warning) and applies Debian's patches
# (none of which touches t/).
if ! dpkg-source -x "$download"/memcached_*.dsc "$tree.tmp" >"$cache/dpkg-source.log" 2>&1; then
  cat "$cache/dpkg-source.log" >&2
  exit 1
fi
rm -f "$cache"/memcached_*.orig.tar.*
cat >"$tree.tmp/memcached-debug" <<'EOF'
#!/bin/sh
# t/lib/MemcachedTest.pm runs this for `-h` (feature checks).
exec "${MEMCACHED_T_SERVER:?set MEMCACHED_T_SERVER to the server under test}" "$@"
EOF
chmod +x "$tree.tmp/memcached-debug"
mv "$tree.tmp" "$tree"
rm -rf "$download"
touch "$tree/.complete"
echo "$tree"
