#!/usr/bin/python3
"""What durable invalidation costs (issue 21): a set/delete-heavy load on keys that
have an SSD copy, and on keys that have none, against a strata built before it
(--before, e.g. a build of dbf3a94) and the current one (--after), alternating
runs, each on a fresh server and a fresh cache file.

Profiles (50 connections, one worker pinned to CPU 0, strata_loadgen on CPU 1;
requests: 20% gets, 56% sets, 24% deletes; 400-byte incompressible values):

  ssd-p1, ssd-p16    RAM 16 MiB, SSD 2 GiB (admission all): 1,000,000 keys preloaded,
                     so nearly every key a request names has its newest version on SSD
                     and its set or delete must invalidate that copy;
  ram-p1, ram-p16    RAM 1 GiB, SSD 2 GiB: 100,000 keys, all in RAM (no SSD copy).

It prints ops/s, p50/p99 latency and server CPU per request for each run, the medians
and the after/before ratios. Standard library only; about 4 minutes with --pairs 2.

  bench/durability_bench.py --before /path/to/old/strata --pairs 2
"""

import argparse
import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (find_binary, fmt, free_port, log, median,  # noqa: E402
                      parse_seconds, pinned, read_cpu_s, run_loadgen, server_stats,
                      stop_all, stop_proc, track, wait_started)

PROFILES = {
    "ssd-p1": dict(ram="16MiB", keys=1_000_000, pipeline=1),
    "ssd-p16": dict(ram="16MiB", keys=1_000_000, pipeline=16),
    "ram-p1": dict(ram="1GiB", keys=100_000, pipeline=1),
    "ram-p16": dict(ram="1GiB", keys=100_000, pipeline=16),
}
VALUE = 400


def start(binary, folder, ram, port):
    config = os.path.join(folder, "strata.yaml")
    with open(config, "w") as f:
        f.write("tiers:\n"
                f"  ram: {{size: {ram}}}\n"
                f"  ssd: {{path: {folder}/cache.bin, size: 2GiB, admission: all}}\n"
                "metrics: {enabled: false}\n")
    log_file = open(os.path.join(folder, "strata.log"), "wb")
    proc = track(subprocess.Popen(
        pinned(0, [binary, "--config", config, "-p", str(port), "-l", "127.0.0.1", "-t", "1"]),
        stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT))
    return wait_started(proc, port, binary, 60)


def loadgen_cmd(loadgen, port, prof, extra):
    return pinned(1, [loadgen, "--port", str(port), "--connections", "50",
                      "--keys", str(prof["keys"]), "--value-size", str(VALUE),
                      "--random-values", "--key-prefix", "d:"] + extra)


def one_run(binary, loadgen, prof, duration, root):
    folder = tempfile.mkdtemp(dir=root)
    port = free_port()
    proc = start(binary, folder, prof["ram"], port)
    try:
        run_loadgen(loadgen_cmd(loadgen, port, prof, ["--warmup-only", "--pipeline", "16"]),
                    timeout=300)
        time.sleep(1.0)  # the log's writer catches up
        before = server_stats(port)
        cpu0 = read_cpu_s(proc.pid)
        res, _ = run_loadgen(loadgen_cmd(loadgen, port, prof, [
            "--pipeline", str(prof["pipeline"]), "--get-ratio", "0.2",
            "--delete-ratio", "0.3", "--duration", f"{duration}s"]), timeout=duration + 120)
        cpu = read_cpu_s(proc.pid) - cpu0
        after = server_stats(port)
        commits = int(after.get("ssd_commits", 0)) - int(before.get("ssd_commits", 0))
        tombs = int(after.get("ssd_tombstones", 0)) - int(before.get("ssd_tombstones", 0))
        return dict(ops_per_s=res["ops_per_s"], p50_us=res["p50_us"], p99_us=res["p99_us"],
                    cpu_us_per_req=cpu / max(1, res["ops"]) * 1e6, tombstones=tombs,
                    commits=commits, errors=res["errors"])
    finally:
        stop_proc(proc)
        shutil.rmtree(folder, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, help="strata binary without durable invalidation")
    ap.add_argument("--after", default=find_binary("proxy", "strata"))
    ap.add_argument("--loadgen", default=find_binary("bench", "strata_loadgen"))
    ap.add_argument("--profiles", default=",".join(PROFILES))
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--duration", type=parse_seconds, default=5.0)
    ap.add_argument("--dir", default=os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "var", "durability-bench"))
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    rows = []
    for name in args.profiles.split(","):
        prof = PROFILES[name]
        for pair in range(args.pairs):
            order = ("before", "after") if pair % 2 == 0 else ("after", "before")
            for side in order:
                binary = args.before if side == "before" else args.after
                r = one_run(binary, args.loadgen, prof, args.duration, args.dir)
                r.update(profile=name, side=side, pair=pair)
                rows.append(r)
                log(f"{name} {side} pair {pair}: {r['ops_per_s']:.0f} ops/s, p50 "
                    f"{r['p50_us']:.0f} us, p99 {r['p99_us']:.0f} us, cpu "
                    f"{r['cpu_us_per_req']:.2f} us/req, {r['tombstones']} tombstones, "
                    f"{r['commits']} commits, {r['errors']} errors")
    print("| profile | side | ops/s | p50 us | p99 us | cpu us/req | tombstones | commits |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.profiles.split(","):
        med = {}
        for side in ("before", "after"):
            rs = [r for r in rows if r["profile"] == name and r["side"] == side]
            med[side] = {k: median([r[k] for r in rs]) for k in
                         ("ops_per_s", "p50_us", "p99_us", "cpu_us_per_req", "tombstones",
                          "commits")}
            m = med[side]
            print(f"| {name} | {side} | {fmt('{:.0f}', m['ops_per_s'])} | "
                  f"{fmt('{:.0f}', m['p50_us'])} | {fmt('{:.0f}', m['p99_us'])} | "
                  f"{fmt('{:.2f}', m['cpu_us_per_req'])} | {fmt('{:.0f}', m['tombstones'])} | "
                  f"{fmt('{:.0f}', m['commits'])} |")
        b, a = med["before"], med["after"]
        print(f"| {name} | after/before | {a['ops_per_s'] / b['ops_per_s']:.3f} | "
              f"{a['p50_us'] / b['p50_us']:.3f} | {a['p99_us'] / b['p99_us']:.3f} | "
              f"{a['cpu_us_per_req'] / b['cpu_us_per_req']:.3f} | | |")


if __name__ == "__main__":
    main()
