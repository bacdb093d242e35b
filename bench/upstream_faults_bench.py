#!/usr/bin/python3
"""The upstream pool's fault table (issue 25): strata (one worker,
near_cache_ttl 0, so every get goes to the pool; the pool's defaults:
connect_timeout 100ms, request_timeout 200ms, marked down after 1 failed
connect or 3 timeouts, probes from 100ms doubling to 10s) over three
memcached 1.6.18, one of which is broken for --fault seconds:

  none      no fault (the baseline)
  kill      SIGKILL, then restarted on the same port
  sigstop   SIGSTOP, then SIGCONT
  stall     behind a relay that holds every reply, then releases them
  delay     behind a relay that delays every reply chunk by 50 ms
  cut       behind a relay that cuts each reply after 100 bytes of a 64 KiB
            value (and closes that connection), 20 times

One client connection reads the healthy servers' keys in a closed loop for
the whole scenario (its p99 is the "healthy-key p99"); another reads and
writes the broken server's keys (their latency while broken is the
"failing-key" figures); after the fault ends, "recovery" is the time until
a set and a get of one of its keys succeed again. Every answer is checked:
a get returns the value stored for its key or a miss, never another.

    bench/upstream_faults_bench.py [--fault 3s] [--strata build/proxy/strata]

Prints a Markdown table on stdout.
"""

import argparse
import atexit
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (REPO, RunError, find_binary, free_port, log, parse_seconds,  # noqa: E402
                      stop_all, stop_proc, track, wait_started)
# The controllable TCP relay of the integration tests.
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
from relay import Relay  # noqa: E402

MEMCACHED = "/usr/bin/memcached"
KEYS = [f"fault:{i}" for i in range(300)]


def value_of(key):
    return ("v-" + key).encode() * 4


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        self.s.close()

    def _fill(self):
        data = self.s.recv(262144)
        if not data:
            raise RunError("strata closed the connection")
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def get(self, key):
        self.s.sendall(b"get %s\r\n" % key.encode())
        line = self.line()
        if line == b"END":
            return None
        n = int(line.split()[3])
        data = self.exact(n + 2)[:-2]
        if self.line() != b"END":
            raise RunError("bad get reply")
        return data

    def set(self, key, value):
        self.s.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (key.encode(), len(value), value))
        return self.line()


def start_memcached(port=None):
    port = port or free_port()
    argv = [MEMCACHED, "-p", str(port), "-l", "127.0.0.1", "-m", "64", "-t", "1", "-U", "0"]
    if os.geteuid() == 0:
        argv += ["-u", "root"]
    proc = track(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.STDOUT, start_new_session=True))
    return wait_started(proc, port, "memcached", 20), port


def start_strata(strata, tmp, addrs):
    port = free_port()
    conf = os.path.join(tmp, f"strata-{port}.yaml")
    lines = ["tiers:", "  ram: {size: 64MiB}", "upstream:", "  servers:"]
    lines += [f"    - \"{a}\"" for a in addrs]
    lines += ["  near_cache_ttl: 0", "metrics: {enabled: false}"]
    with open(conf, "w") as f:
        f.write("\n".join(lines) + "\n")
    proc = track(subprocess.Popen(
        [strata, "-p", str(port), "-l", "127.0.0.1", "-t", "1", "--config", conf],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        start_new_session=True))
    return wait_started(proc, port, "strata", 60), port


def owner(mc_port, key):
    c = Conn(mc_port)
    try:
        c.s.sendall(b"mg %s\r\n" % key.encode())
        return c.line().startswith(b"HD")
    finally:
        c.close()


def pct(samples, q):
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * q))] * 1e3 if s else float("nan")


class HealthyLoad(threading.Thread):
    def __init__(self, port, keys):
        super().__init__(daemon=True)
        self.port, self.keys = port, keys
        self.lat, self.wrong = [], 0
        self.stop_event = threading.Event()

    def run(self):
        c = Conn(self.port)
        i = 0
        while not self.stop_event.is_set():
            key = self.keys[i % len(self.keys)]
            i += 1
            t0 = time.monotonic()
            v = c.get(key)
            self.lat.append(time.monotonic() - t0)
            if v != value_of(key):
                self.wrong += 1
        c.close()


def scenario(args, tmp, name):
    procs = []
    relay = None
    bad = {}
    try:
        healthy = [start_memcached() for _ in range(2)]
        bad_proc, bad_port = start_memcached()
        bad["proc"] = bad_proc
        target = f"127.0.0.1:{bad_port}"
        if name in ("stall", "delay", "cut"):
            relay = Relay(bad_port)
            target = relay.address
        st_proc, st_port = start_strata(args.strata, tmp,
                                        [f"127.0.0.1:{p}" for _, p in healthy] + [target])
        procs = [p for p, _ in healthy] + [st_proc]
        c = Conn(st_port)
        for key in KEYS:
            if c.set(key, value_of(key)) != b"STORED":
                raise RunError("preload failed")
        bad_keys = [k for k in KEYS if owner(bad_port, k)]
        good_keys = [k for k in KEYS if k not in bad_keys]
        big_key = bad_keys[0]
        if name == "cut":
            big = bytes((i * 7) % 251 for i in range(65536))
            if c.set(big_key, big) != b"STORED":
                raise RunError("big set failed")
        load = HealthyLoad(st_port, good_keys)
        load.start()
        time.sleep(0.5)
        failing, wrong = [], 0

        def check(key, v):
            nonlocal wrong
            if v is not None and v != value_of(key) and not (key == big_key and name == "cut"):
                wrong += 1

        if name == "kill":
            bad["proc"].send_signal(signal.SIGKILL)
            bad["proc"].wait()
        elif name == "sigstop":
            os.kill(bad["proc"].pid, signal.SIGSTOP)
        elif name == "stall":
            relay.hold()
        elif name == "delay":
            relay.delay(0.05)
        if name == "cut":
            for _ in range(20):
                relay.cut_after(100)
                t0 = time.monotonic()
                v = c.get(big_key)
                failing.append(time.monotonic() - t0)
                if v is not None and v != big:
                    wrong += 1
        else:
            deadline = time.monotonic() + args.fault
            i = 0
            while time.monotonic() < deadline:
                key = bad_keys[i % len(bad_keys)]
                i += 1
                t0 = time.monotonic()
                check(key, c.get(key))
                failing.append(time.monotonic() - t0)
                time.sleep(0.01)
        healed = time.monotonic()
        if name == "kill":
            bad["proc"], _ = start_memcached(bad_port)
        elif name == "sigstop":
            os.kill(bad["proc"].pid, signal.SIGCONT)
        elif name == "stall":
            relay.release()
        elif name == "delay":
            relay.delay(0)
        recovery = None
        while time.monotonic() - healed < 30:
            key = bad_keys[1]
            if c.set(key, value_of(key)) == b"STORED" and c.get(key) == value_of(key):
                recovery = time.monotonic() - healed
                break
            time.sleep(0.005)
        time.sleep(0.3)
        load.stop_event.set()
        load.join(10)
        c.close()
        return {
            "healthy_p99": pct(load.lat, 0.99), "healthy_n": len(load.lat),
            "fail_p50": pct(failing, 0.5), "fail_max": pct(failing, 1.0),
            "recovery": recovery, "wrong": wrong + load.wrong,
        }
    finally:
        if relay is not None:
            relay.stop()
        for p in procs + [bad.get("proc")]:
            if p is not None:
                try:
                    os.kill(p.pid, signal.SIGCONT)
                except (ProcessLookupError, PermissionError):
                    pass
                stop_proc(p)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--strata", default=find_binary("proxy", "strata"))
    ap.add_argument("--fault", type=parse_seconds, default=3.0,
                    help="how long the server stays broken (default 3s)")
    ap.add_argument("--scenarios", default="none,kill,sigstop,stall,delay,cut")
    args = ap.parse_args()
    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.scenarios.split(","):
            log(f"scenario {name}")
            try:
                rows.append((name, scenario(args, tmp, name)))
            except RunError as e:
                log(f"  {name} failed: {e}")
    print(f"fault {args.fault:g} s; strata 1 worker, near_cache_ttl 0, pool defaults\n")
    print("| scenario | healthy-key p99 | failing-key latency p50 / max | recovery | "
          "wrong values |")
    print("|---|---|---|---|---|")
    for name, r in rows:
        rec = "-" if name == "none" else (
            "never (30 s)" if r["recovery"] is None else f"{r['recovery'] * 1e3:.0f} ms")
        print(f"| {name} | {r['healthy_p99']:.2f} ms ({r['healthy_n']} gets) | "
              f"{r['fail_p50']:.1f} / {r['fail_max']:.1f} ms | {rec} | {r['wrong']} |")


if __name__ == "__main__":
    main()
