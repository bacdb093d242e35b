#!/usr/bin/env bash
# Regenerates every golden vector file with the client libraries (see
# README.md) into a temporary directory and compares it with the committed
# one, '#' lines aside (they name package versions). A difference means the
# committed vectors no longer are what the libraries produce.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

/usr/bin/python3 "$here/keys.py" "$out/keys.txt"
/usr/bin/python3 "$here/gen_python.py" pymemcache "$out/rendezvous_pymemcache.txt"
/usr/bin/python3 "$here/gen_python.py" pylibmc "$out/ketama_pylibmc.txt"
/usr/bin/python3 "$here/gen_python.py" nutcracker "$out/ketama_nutcracker.txt"
# Go builds offline from Debian's packaged sources.
export GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= GOCACHE="$out/gocache"
go run "$here/gen_go.go" modula "$here/keys.txt" "$out/modula_gomemcache.txt"
go run "$here/gen_go.go" jump "$here/keys.txt" "$out/jump_dskit.txt"

status=0
for f in keys.txt rendezvous_pymemcache.txt ketama_pylibmc.txt ketama_nutcracker.txt \
         modula_gomemcache.txt jump_dskit.txt; do
  if ! diff -u <(grep -v '^#' "$here/$f") <(grep -v '^#' "$out/$f") >"$out/diff" 2>&1; then
    echo "golden/$f differs from what the library produces now:"
    head -40 "$out/diff"
    status=1
  else
    echo "golden/$f: same as regenerated"
  fi
done
exit $status
