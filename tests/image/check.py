#!/usr/bin/python3
"""Host-side checks of a running strata container, for scripts/image-test.sh.

Each subcommand prints what it checked and exits 0, or prints why it failed
(prefixed "FAIL:") and exits 1. Clients: pymemcache (Debian's
python3-pymemcache) and urllib, against 127.0.0.1.

  check.py free-ports N                 N TCP ports free on 127.0.0.1 now
  check.py wait-ready MPORT SECONDS     poll /readyz until 200 (as a probe)
  check.py http MPORT                   /healthz 200, /readyz 200, /metrics
                                        with memcached_up 1 and strata_ready 1
  check.py store PORT TAG               set keys (small, compressible, 200 KiB)
                                        and read them back
  check.py verify PORT TAG              the keys stored by "store" are there,
                                        byte for byte (in a new container)
  (PORT may be a unix socket's path: pymemcache then connects there)
  check.py io-mode PORT MODE            stats ssd_io_mode is MODE (and network_io_mode
                                        io_uring with it, else syscalls)
  check.py seccomp IN OUT               IN (a containers seccomp.json) plus
                                        io_uring_setup/enter/register allowed
"""

import json
import random
import socket
import sys
import time
import urllib.error
import urllib.request

from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheError

HOST = "127.0.0.1"


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((HOST, 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    print(" ".join(map(str, ports)))


def http_get(port, path, timeout=5.0):
    """(status, body) of GET http://127.0.0.1:port/path; status 0 if no answer."""
    url = f"http://{HOST}:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (OSError, urllib.error.URLError):
        return 0, ""


def wait_ready(mport, seconds):
    deadline = time.monotonic() + float(seconds)
    status = 0
    while time.monotonic() < deadline:
        status, _ = http_get(mport, "/readyz", timeout=1.0)
        if status == 200:
            print(f"/readyz 200 on port {mport}")
            return
        time.sleep(0.2)
    fail(f"/readyz on port {mport} did not answer 200 within {seconds} s "
         f"(last status {status or 'no answer'})")


def metric_value(text, name):
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return line.rsplit(" ", 1)[1]
    return None


def check_http(mport):
    for path, want in (("/healthz", "ok"), ("/readyz", "ready")):
        status, body = http_get(mport, path)
        if status != 200 or want not in body:
            fail(f"{path}: expected 200 {want!r}, got {status} {body[:80]!r}")
    status, body = http_get(mport, "/metrics")
    if status != 200:
        fail(f"/metrics answered {status}")
    for name in ("memcached_up", "strata_ready"):
        value = metric_value(body, name)
        if value is None or float(value) != 1:
            fail(f"/metrics: expected {name} 1, got {value}")
    mode = [l for l in body.splitlines()
            if l.startswith("strata_ssd_io_mode_info{")]
    if not mode:
        fail("/metrics has no strata_ssd_io_mode_info: is the SSD tier on?")
    print(f"/healthz 200, /readyz 200, /metrics: memcached_up 1, strata_ready 1, "
          f"{mode[0]}")


def items(tag):
    """The keys and values "store" writes and "verify" reads: a small value,
    a compressible one and a 200 KiB one of pseudo-random bytes."""
    rnd = random.Random(tag).randbytes(200 * 1024)
    return {
        f"image-test:{tag}:small": f"hello from {tag}".encode(),
        f"image-test:{tag}:text": (f"{tag} compresses well. " * 2000).encode(),
        f"image-test:{tag}:binary": rnd,
    }


def client(port):
    """pymemcache on 127.0.0.1:port, or on the unix socket `port` (a path)."""
    server = port if str(port).startswith("/") else (HOST, int(port))
    return Client(server, connect_timeout=5, timeout=10, default_noreply=False)


def store(port, tag):
    c = client(port)
    want = items(tag)
    for k, v in want.items():
        if not c.set(k, v, expire=0):
            fail(f"set {k} was not stored")
    for k, v in want.items():
        got = c.get(k)
        if got != v:
            fail(f"get {k} right after set: expected {len(v)} bytes, "
                 f"got {None if got is None else len(got)}")
    c.close()
    print(f"pymemcache: set and get of {len(want)} keys round-trip "
          f"({sum(map(len, want.values()))} bytes)")


def verify(port, tag):
    c = client(port)
    want = items(tag)
    got = c.get_many(list(want))
    for k, v in want.items():
        if got.get(k) != v:
            g = got.get(k)
            fail(f"after the restart, {k}: expected {len(v)} bytes, got "
                 f"{'a miss' if g is None else f'{len(g)} different bytes'}")
    stats = {k.decode(): v for k, v in c.stats().items()}
    c.close()
    # A new container starts with an empty RAM tier: the values came from
    # the SSD tier, read by these gets or by the warm restart's promotion.
    print(f"pymemcache: the {len(want)} keys stored before the restart are "
          f"there, byte for byte (stats: get_extstore "
          f"{stats.get('get_extstore')}, recache_from_extstore "
          f"{stats.get('recache_from_extstore')})")


def io_mode(port, mode):
    c = client(port)
    stats = {k.decode(): v.decode() if isinstance(v, bytes) else v
             for k, v in c.stats().items()}
    c.close()
    # The same seccomp profile decides for the SSD tier and the client sockets.
    for name, want in (("ssd_io_mode", mode),
                       ("network_io_mode", "io_uring" if mode == "io_uring" else "syscalls")):
        got = stats.get(name)
        if got != want:
            fail(f"stats {name}: expected {want}, got {got}")
        print(f"stats: {name} {got}")


def seccomp(src, dst):
    with open(src) as f:
        profile = json.load(f)
    names = ["io_uring_setup", "io_uring_enter", "io_uring_register"]
    profile["syscalls"].append({"names": names, "action": "SCMP_ACT_ALLOW"})
    with open(dst, "w") as f:
        json.dump(profile, f, indent=1)
    print(f"{dst}: {src} plus {', '.join(names)} allowed")


def main(argv):
    commands = {
        "free-ports": (free_ports, 1, int),
        "wait-ready": (wait_ready, 2, None),
        "http": (check_http, 1, None),
        "store": (store, 2, None),
        "verify": (verify, 2, None),
        "io-mode": (io_mode, 2, None),
        "seccomp": (seccomp, 2, None),
    }
    if len(argv) < 2 or argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    fn, nargs, conv = commands[argv[1]]
    args = argv[2:]
    if len(args) != nargs:
        print(__doc__, file=sys.stderr)
        return 2
    if conv:
        args = [conv(a) for a in args]
    try:
        fn(*args)
    except (OSError, MemcacheError) as e:
        fail(f"{argv[1]}: {type(e).__name__}: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
