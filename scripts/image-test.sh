#!/usr/bin/env bash
# Builds strata's container image from the Dockerfile and tests it, with no
# Docker engine and no registry: rootful podman (runc), on a Debian 12 base
# image made here by mmdebstrap from deb.debian.org.
#
#   1. base image localhost/strata-base:bookworm (mmdebstrap minbase; made
#      once, reused while it exists; STRATA_BASE_REFRESH=1 makes it again);
#   2. podman build (the build stage compiles and runs the unit tests);
#   3. the image's metadata: numeric non-root user, entrypoint, ports;
#   4. a container as it runs in a pod: read-only root file system, a volume
#      for the cache, tmpfs /tmp, all capabilities dropped, podman's default
#      seccomp profile (it denies io_uring: strata must use its thread pool);
#      from the host: /healthz, /readyz, /metrics (memcached_up 1) and a
#      pymemcache set/get round trip;
#   5. podman stop (SIGTERM): exit code 0 within the grace period (strata
#      demotes its RAM items to SSD);
#   6. a new container on the same volume, with a seccomp profile that allows
#      io_uring (the Helm chart's, helm/strata/files/seccomp-strata.json):
#      the values stored before the stop are there (from SSD: RAM starts
#      empty), and the SSD tier runs on io_uring.
#
# Containers use the host's network and bind 127.0.0.1 on free ports only.
# Every container and volume it makes is removed at exit. The images stay:
# the next run reuses their layers, and removes the older runs' leftovers.
# Run as root (or it re-runs itself with sudo).
# Settings (environment):
#   STRATA_IMAGE          image to build and test   (localhost/strata:test)
#   STRATA_BASE           base image                (localhost/strata-base:bookworm)
#   STRATA_BASE_REFRESH   1: make the base image again (security updates)
#   DEBIAN_MIRROR         (http://deb.debian.org/debian)
#   DEBIAN_SECURITY_MIRROR (http://deb.debian.org/debian-security)
#   STOP_GRACE            seconds podman stop waits before SIGKILL (30)
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "image-test: rootful podman is needed; re-running with sudo"
  exec sudo --preserve-env=STRATA_IMAGE,STRATA_BASE,STRATA_BASE_REFRESH,DEBIAN_MIRROR,DEBIAN_SECURITY_MIRROR,STOP_GRACE \
    "$(readlink -f "$0")" "$@"
fi
cd "$(dirname "$0")/.."
scripts/deps.sh test

IMAGE=${STRATA_IMAGE:-localhost/strata:test}
BASE=${STRATA_BASE:-localhost/strata-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
GRACE=${STOP_GRACE:-30}
PY=/usr/bin/python3
CHECK=tests/image/check.py
# Every image built on the base carries this label, the build stage's
# intermediate images too: how this script finds its own leftovers.
BASE_LABEL=org.strata.image-test.base=mmdebstrap-bookworm

# runc, not crun: Debian 12's crun 1.8 refuses cgroup v1/hybrid hosts. The
# resource limits are given explicitly, below the host's hard limits: runc
# cannot raise a hard limit (podman's defaults, nofile 1048576 and nproc
# 32768 for builds, fail with "error setting rlimit type 7/6" where the host's
# are lower). nofile covers max_connections (4096) plus files and sockets;
# nproc bounds the threads of the container's user.
ULIMITS=(--ulimit nofile=16384:16384 --ulimit nproc=4096:4096)
PODMAN=(podman --runtime runc)

tag="strata-it-$$"
work=$(mktemp -d /tmp/strata-image-test.XXXXXX)
containers=()
volume=""
current=""  # the container whose log to show on failure

die() {
  echo "image-test: FAILED: $*" >&2
  if [ -n "$current" ]; then
    echo "---- podman logs $current" >&2
    "${PODMAN[@]}" logs "$current" >&2 2>&1 || true
    echo "----" >&2
  fi
  exit 1
}
cleanup() {
  local rc=$?
  for c in "${containers[@]}"; do "${PODMAN[@]}" rm -f -v -t 0 "$c" >/dev/null 2>&1 || true; done
  if [ -n "$volume" ]; then "${PODMAN[@]}" volume rm -f "$volume" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
  [ "$rc" -eq 0 ] || echo "image-test: exit $rc" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM
check() { "$PY" "$CHECK" "$@" || die "check.py $*"; }
# log_line CONTAINER REGEX: the first line of the container's log that matches
# (not "podman logs | grep -q": with pipefail, grep's early exit fails it).
log_line() {
  local out
  out=$("${PODMAN[@]}" logs "$1" 2>&1) || true
  grep -m1 -E "$2" <<<"$out"
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
t_start=$(now)

# ------------------------------------------------------------ 1. base image
echo "== base image $BASE"
if [ "${STRATA_BASE_REFRESH:-0}" = 1 ] && "${PODMAN[@]}" image exists "$BASE"; then
  "${PODMAN[@]}" untag "$BASE" || die "cannot untag the old $BASE"
fi
t0=$(now)
if "${PODMAN[@]}" image exists "$BASE"; then
  echo "exists (made $("${PODMAN[@]}" image inspect -f '{{.Created}}' "$BASE")); STRATA_BASE_REFRESH=1 makes it again"
else
  # Like debian:bookworm-slim: minbase, merged /usr, no docs (but the
  # copyright files), man pages or translations, bookworm + updates + security.
  nice mmdebstrap --variant=minbase --format=tar --quiet \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --aptopt='Acquire::Languages "none"' \
    bookworm "$work/base.tar" \
    "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" \
    "deb $SECURITY_MIRROR bookworm-security main" || die "mmdebstrap failed"
  "${PODMAN[@]}" import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --change "LABEL $BASE_LABEL" \
    --message "Debian 12 minbase by mmdebstrap (scripts/image-test.sh)" \
    "$work/base.tar" "$BASE" >/dev/null || die "podman import failed"
  rm -f "$work/base.tar"
  echo "made in $(since "$t0") s"
fi
t_base=$(since "$t0")

# ------------------------------------------------------------ 2. build
echo "== podman build $IMAGE (release build and unit tests inside; minutes)"
# The previous runs' intermediate images (build stage, ~650 MB each) and
# untagged images: removed after this build, which keeps its own as a cache.
stale=$("${PODMAN[@]}" images -q --filter dangling=true --filter "label=$BASE_LABEL" | sort -u)
t0=$(now)
nice "${PODMAN[@]}" build --pull=never --network=host "${ULIMITS[@]}" \
  --build-arg "BASE_IMAGE=$BASE" -t "$IMAGE" -f Dockerfile . \
  || die "podman build failed"
t_build=$(since "$t0")
for id in $stale; do "${PODMAN[@]}" rmi "$id" >/dev/null 2>&1 || true; done
size=$("${PODMAN[@]}" image inspect -f '{{.Size}}' "$IMAGE")
echo "built in $t_build s; image size $((size / 1000000)) MB ($size bytes)"

# ------------------------------------------------------------ 3. metadata
echo "== image metadata"
t_test0=$(now)
user=$("${PODMAN[@]}" image inspect -f '{{.Config.User}}' "$IMAGE")
entry=$("${PODMAN[@]}" image inspect -f '{{json .Config.Entrypoint}}' "$IMAGE")
ports=$("${PODMAN[@]}" image inspect -f '{{json .Config.ExposedPorts}}' "$IMAGE")
[[ "$user" =~ ^[1-9][0-9]*(:[0-9]+)?$ ]] || die "image user is '$user', not a numeric non-root uid"
[[ "$entry" == '["/usr/local/bin/strata",'* ]] || die "entrypoint $entry is not exec form on strata"
[[ "$ports" == *'"11211/tcp"'* && "$ports" == *'"9150/tcp"'* ]] || die "exposed ports are $ports"
echo "user $user, entrypoint $entry, ports $ports"

# ------------------------------------------------------------ 4. run
read -r port mport port2 mport2 <<<"$("$PY" "$CHECK" free-ports 4)"
volume="$tag-cache"
"${PODMAN[@]}" volume create "$volume" >/dev/null || die "podman volume create failed"
# As a restricted pod runs it. The image's own config; the flags only move
# the ports, and the metrics address to 127.0.0.1 (the host's network).
strata_args=()  # more strata flags for the next run()
run() {  # run NAME MPORT PORT [podman options...]
  local name=$1 mp=$2 p=$3
  shift 3
  containers+=("$name")
  current=$name
  "${PODMAN[@]}" run -d --pull=never --name "$name" --network=host \
    --read-only --tmpfs /tmp:rw,nosuid,nodev,size=16m \
    -v "$volume:/var/cache/strata" \
    --cap-drop=ALL --security-opt no-new-privileges "${ULIMITS[@]}" "$@" \
    "$IMAGE" -p "$p" --metrics-listen "127.0.0.1:$mp" "${strata_args[@]}" >/dev/null \
    || die "podman run $name failed"
}

echo "== container 1: read-only root, cache volume, podman's default seccomp"
t0=$(now)
run "$tag-1" "$mport" "$port"
check wait-ready "$mport" 120
echo "ready in $(since "$t0") s"
pid=$("${PODMAN[@]}" inspect -f '{{.State.Pid}}' "$tag-1")
uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
[ "$uid" = "${user%%:*}" ] || die "strata runs as uid $uid, not ${user%%:*}"
echo "strata runs as uid $uid"
check http "$mport"
check store "$port" before-stop
# podman's seccomp profile has no io_uring: the thread-pool fallback, logged.
if ! grep -q io_uring /usr/share/containers/seccomp.json 2>/dev/null; then
  check io-mode "$port" threadpool
  line=$(log_line "$tag-1" "io_uring cannot be used") || die "no log line about the io_uring fallback"
  echo "log: $line"
fi
# Changes to the root file system, but podman's own mount points.
changed=$("${PODMAN[@]}" diff "$tag-1" \
  | grep -vxE '[AC] /(etc|etc/(hosts|hostname|resolv\.conf)|run|run/\.containerenv|run/secrets)' || true)
[ -z "$changed" ] || die "the root file system changed: $changed"

# ------------------------------------------------------------ 5. stop
echo "== podman stop (SIGTERM, grace $GRACE s)"
t0=$(now)
"${PODMAN[@]}" stop -t "$GRACE" "$tag-1" >/dev/null || die "podman stop failed"
t_stop=$(since "$t0")
code=$("${PODMAN[@]}" inspect -f '{{.State.ExitCode}}' "$tag-1")
[ "$code" = 0 ] || die "exit code $code after SIGTERM (137: killed after the grace period)"
awk -v t="$t_stop" -v g="$GRACE" 'BEGIN { exit !(t < g) }' || die "stop took $t_stop s, not under $GRACE s"
echo "exited 0 in $t_stop s; log: $(log_line "$tag-1" "demoted" || echo "no demotion line")"

# ------------------------------------------------------------ 6. restart
# The chart's Localhost profile (RuntimeDefault plus io_uring) when there is
# one, so that it is tried on the real binary; else podman's plus io_uring.
profile=helm/strata/files/seccomp-strata.json
if [ ! -f "$profile" ]; then
  profile="$work/seccomp-io-uring.json"
  "$PY" "$CHECK" seccomp /usr/share/containers/seccomp.json "$profile" \
    || die "cannot write the seccomp profile"
fi
# A unix socket in a shared directory, as the chart's emptyDir gives the app.
sockdir="$work/socket"
mkdir -p "$sockdir" && chmod 0777 "$sockdir"
echo "== container 2: same volume, seccomp profile $profile (allows io_uring), unix socket"
t0=$(now)
strata_args=(-s /run/strata/strata.sock -a 0660)
run "$tag-2" "$mport2" "$port2" --security-opt "seccomp=$profile" -v "$sockdir:/run/strata"
strata_args=()
check wait-ready "$mport2" 120
echo "ready in $(since "$t0") s; log: $(log_line "$tag-2" "items recovered" || echo "no recovery line")"
check verify "$port2" before-stop
mode=$(stat -c %a "$sockdir/strata.sock") || die "no unix socket in $sockdir"
[ "$mode" = 660 ] || die "the unix socket's mode is $mode, not 660"
check verify "$sockdir/strata.sock" before-stop
if [ "$(cat /proc/sys/kernel/io_uring_disabled 2>/dev/null || echo 0)" = 0 ]; then
  check io-mode "$port2" io_uring
fi
check http "$mport2"
"${PODMAN[@]}" stop -t "$GRACE" "$tag-2" >/dev/null || die "podman stop failed"
code=$("${PODMAN[@]}" inspect -f '{{.State.ExitCode}}' "$tag-2")
[ "$code" = 0 ] || die "exit code $code after SIGTERM"
current=""

t_test=$(since "$t_test0")
echo "== image test passed: base image $t_base s, build $t_build s, container tests $t_test s, total $(since "$t_start") s; $IMAGE is $((size / 1000000)) MB"
