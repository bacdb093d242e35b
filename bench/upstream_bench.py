#!/usr/bin/python3
"""strata in front of a memcached pool, beside nutcracker (twemproxy).

1. Routing: three memcached 1.6.18 (CPU 1), a proxy with one worker pinned
   to CPU 0, strata_loadgen on CPU 1 (100-byte values, 10,000 keys
   preloaded, 90 % gets, 50 connections) at pipeline 1 and 16, through:
     - nutcracker (hash md5, distribution ketama);
     - strata, near_cache_ttl 0 (pure routing: every request goes to the
       pool);
     - strata, near cache on (near_cache_ttl 300s).
   Reported per proxy: ops/s, proxy CPU microseconds per request, p50 and
   p99, and strata's CPU per request over nutcracker's (medians over
   --pairs).
2. Near cache: 1M keys of 1 KiB (--keys; incompressible values), zipf 0.99
   gets, strata with RAM 5 % and SSD 25 % of the data, near_cache_ttl 300s,
   over the same pool: one warm-up pass of as many gets as keys, then a
   measured pass; reported: the share of gets served locally (RAM or SSD)
   in each. (The best static cache of 30 % of the keys serves 91 % of zipf
   0.99 gets over 1M keys.)

    bench/upstream_bench.py [--pairs 3] [--duration 5s] [--keys 1000000]
"""

import argparse
import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (RunError, find_binary, free_port, log, median, parse_seconds,  # noqa: E402
                      pinned, read_cpu_s, run_loadgen, server_stats, stop_all, stop_proc,
                      track, wait_started)

MEMCACHED = "/usr/bin/memcached"


def wait_port(port, proc, name, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RunError(f"{name} exited at start (status {proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.05)
    raise RunError(f"{name} did not start")


def start_memcached(memory_mb):
    port = free_port()
    argv = [MEMCACHED, "-p", str(port), "-l", "127.0.0.1", "-m", str(memory_mb), "-t", "1",
            "-U", "0"]
    if os.geteuid() == 0:
        argv += ["-u", "root"]
    proc = track(subprocess.Popen(pinned(1, argv), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
    return wait_started(proc, port, "memcached", 20), port


def start_nutcracker(tmp, pool_ports):
    port = free_port()
    conf = os.path.join(tmp, "nutcracker.yml")
    with open(conf, "w") as f:
        f.write(f"pool:\n  listen: 127.0.0.1:{port}\n  hash: md5\n  distribution: ketama\n"
                "  auto_eject_hosts: false\n  servers:\n" +
                "".join(f"    - 127.0.0.1:{p}:1\n" for p in pool_ports))
    proc = track(subprocess.Popen(
        pinned(0, ["nutcracker", "-c", conf, "-s", str(free_port()), "-a", "127.0.0.1",
                   "-o", os.path.join(tmp, "nutcracker.log"),
                   "-p", os.path.join(tmp, "nutcracker.pid")]),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
    return wait_port(port, proc, "nutcracker"), port


def start_strata(args, tmp, pool_ports, near_cache_ttl, ram="256MiB", ssd=None):
    port = free_port()
    conf = os.path.join(tmp, f"strata-{port}.yaml")
    lines = ["tiers:", f"  ram: {{size: {ram}}}"]
    if ssd:
        lines += ["  ssd:", f"    path: {tmp}/cache-{port}.bin", f"    size: {ssd}"]
    lines += ["upstream:", "  servers:"] + [f"    - \"127.0.0.1:{p}\"" for p in pool_ports]
    lines += [f"  near_cache_ttl: {near_cache_ttl}", "  request_timeout: 5s",
              "metrics: {enabled: false}"]
    with open(conf, "w") as f:
        f.write("\n".join(lines) + "\n")
    proc = track(subprocess.Popen(
        pinned(0, [args.strata, "-p", str(port), "-l", "127.0.0.1", "-t", "1",
                   "--config", conf]),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
    return wait_started(proc, port, "strata", 120), port


def loadgen(args, port, extra):
    return pinned(1, [args.loadgen, "--port", str(port), "--threads", "1"] + extra)


def routing_run(args, proxy, port, pipeline):
    base = ["--connections", "50", "--pipeline", str(pipeline), "--keys", "10000",
            "--value-size", "100", "--key-prefix", "route:"]
    cpu0 = read_cpu_s(proxy.pid)
    res, _ = run_loadgen(loadgen(args, port, base + ["--get-ratio", "0.9", "--duration",
                                                      f"{args.duration}s"]),
                         timeout=args.duration + 120)
    cpu = read_cpu_s(proxy.pid) - cpu0
    if res["errors"] or res["error_replies"]:
        raise RunError(f"errors through the proxy: {res}")
    return dict(ops=res["ops_per_s"], us=cpu / max(res["ops"], 1) * 1e6, p50=res["p50_us"],
                p99=res["p99_us"])


def routing(args, tmp, pool_ports):
    print("| proxy | pipeline | ops/s | proxy CPU us/req | p50 us | p99 us | CPU vs nutcracker |")
    print("|---|---|---|---|---|---|---|")
    # Preload once, straight through nutcracker (same placement as strata's
    # ketama).
    nc, nc_port = start_nutcracker(tmp, pool_ports)
    run_loadgen(loadgen(args, nc_port, ["--connections", "50", "--keys", "10000",
                                        "--value-size", "100", "--key-prefix", "route:",
                                        "--warmup-only"]), timeout=300)
    stop_proc(nc)
    for pipeline in (1, 16):
        runs = {"nutcracker": [], "strata-routing": [], "strata-near": []}
        for pair in range(args.pairs):
            for name in runs:
                if name == "nutcracker":
                    proc, port = start_nutcracker(tmp, pool_ports)
                else:
                    proc, port = start_strata(args, tmp, pool_ports,
                                              "0s" if name == "strata-routing" else "300s")
                try:
                    r = routing_run(args, proc, port, pipeline)
                finally:
                    stop_proc(proc)
                log(f"P{pipeline} {name} pair {pair}: {r['ops']:.0f} ops/s, "
                    f"{r['us']:.2f} us/req, p50 {r['p50']:.0f} p99 {r['p99']:.0f}")
                runs[name].append(r)
        nc_us = median([r["us"] for r in runs["nutcracker"]])
        for name, rs in runs.items():
            m = {k: median([r[k] for r in rs]) for k in ("ops", "us", "p50", "p99")}
            ratio = median([a["us"] / b["us"] for a, b in zip(rs, runs["nutcracker"])])
            print(f"| {name} | {pipeline} | {m['ops']:.0f} | {m['us']:.2f} | {m['p50']:.0f} "
                  f"| {m['p99']:.0f} | {ratio:.2f} |")
        del nc_us
        sys.stdout.flush()


def near_cache(args, tmp, pool_ports):
    value = 1024
    data = args.keys * value
    ram = max(8, data * 5 // 100 >> 20)
    ssd = max(64, data * 25 // 100 >> 20)
    proc, port = start_strata(args, tmp, pool_ports, "300s", ram=f"{ram}MiB", ssd=f"{ssd}MiB")
    try:
        base = ["--connections", "16", "--pipeline", "8", "--keys", str(args.keys),
                "--value-size", str(value), "--key-prefix", "zipf:",
                # Incompressible: LZ4 must not let the SSD tier hold more
                # than its share of the data.
                "--random-values"]
        # The pool gets every key (sets through strata go to the pool and
        # leave no local copy).
        run_loadgen(loadgen(args, port, base + ["--warmup-only"]), timeout=1800)
        passes = []
        for name in ("warm-up", "measured"):
            before = server_stats(port)
            res, _ = run_loadgen(loadgen(args, port, base + [
                "--zipf", "0.99", "--get-ratio", "1", "--requests", str(args.keys)]),
                timeout=1800)
            after = server_stats(port)
            d = {k: int(after[k]) - int(before[k])
                 for k in ("cmd_get", "upstream_fetches", "upstream_coalesced", "get_hits")}
            local = d["cmd_get"] - d["upstream_fetches"] - d["upstream_coalesced"]
            share = local / max(d["cmd_get"], 1)
            log(f"near cache {name} pass: {d}, served locally {share:.3f}, "
                f"{res['ops_per_s']:.0f} ops/s")
            passes.append(share)
        print(f"\nnear cache ({args.keys} keys of 1 KiB, zipf 0.99, RAM {ram} MiB, SSD {ssd} MiB, "
              f"near_cache_ttl 300s): gets served locally {passes[0]:.1%} in the warm-up pass, "
              f"{passes[1]:.1%} in the measured pass")
    finally:
        stop_proc(proc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--strata", default=find_binary("proxy", "strata"))
    ap.add_argument("--loadgen", default=find_binary("bench", "strata_loadgen"))
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--duration", type=parse_seconds, default=5.0)
    ap.add_argument("--keys", type=int, default=1000000)
    ap.add_argument("--skip-routing", action="store_true")
    ap.add_argument("--skip-near-cache", action="store_true")
    args = ap.parse_args()
    if shutil.which("nutcracker") is None:
        sys.exit("nutcracker is not installed (apt-get install nutcracker)")
    atexit.register(stop_all)
    tmp = tempfile.mkdtemp(prefix="strata-upstream-bench-")
    atexit.register(shutil.rmtree, tmp, True)
    mb = max(256, args.keys * 1200 * 2 // 3 >> 20)
    pool = [start_memcached(mb) for _ in range(3)]
    ports = [p for _, p in pool]
    if not args.skip_routing:
        routing(args, tmp, ports)
    if not args.skip_near_cache:
        near_cache(args, tmp, ports)


if __name__ == "__main__":
    main()
