#!/usr/bin/env python3
"""Large values from RAM, strata against memcached 1.6.18, side by side.

For each value size (1, 8, 32 and 64 MiB by default), each server (one
worker, `-m 1024 -I 128m`, pinned to CPU 0) is preloaded with 8 such values
and strata_loadgen (CPU 1) gets them back for --duration over 4 connections
at pipeline 1. Reported: MB/s of values delivered and server CPU seconds per
GB, and their strata/memcached ratios (medians over --pairs).

Then, with strata alone: the p99 of small requests (100-byte gets and sets,
one connection, pipeline 1) on the same worker while another connection
streams 100 MiB values, against the same small load with nothing streaming.
The streaming client is a thread here that reads at about 1 GB/s with
recv_into (so that it does not take the small client's CPU).

    bench/large_values.py [--sizes 1,8,32,64] [--pairs 2] [--duration 5s]
"""

import argparse
import atexit
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (RunError, find_binary, free_port, log, median, parse_seconds,  # noqa: E402
                      pinned, read_cpu_s, run_loadgen, stop_all, stop_proc, track,
                      wait_started)

MIB = 1 << 20
KEYS = 8


def arguments(doc):
    """The options large_values.py and large_ssd.py share; the description is
    the first paragraph of `doc`."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--strata", default=find_binary("proxy", "strata"))
    ap.add_argument("--memcached", default="/usr/bin/memcached")
    ap.add_argument("--loadgen", default=find_binary("bench", "strata_loadgen"))
    ap.add_argument("--sizes", default="1,8,32,64", help="MiB, comma-separated")
    return ap


def start(binary, port):
    argv = [binary, "-p", str(port), "-l", "127.0.0.1", "-m", "1024", "-I", "128m", "-t", "1"]
    if os.path.basename(binary).startswith("memcached"):
        if os.geteuid() == 0:
            argv += ["-u", "root"]
    else:
        argv += ["--metrics-listen", "127.0.0.1:0"]  # never the default port
    proc = track(subprocess.Popen(pinned(0, argv), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
    return wait_started(proc, port, binary, 20)


def loadgen(args, port, size, extra, connections=4, keys=KEYS, prefix="big:"):
    return [args.loadgen, "--port", str(port), "--connections", str(connections),
            "--threads", "1", "--pipeline", "1", "--keys", str(keys),
            "--value-size", str(size), "--key-prefix", prefix] + extra


def one_run(args, binary, size):
    port = free_port()
    proc = start(binary, port)
    try:
        run_loadgen(pinned(1, loadgen(args, port, size, ["--warmup-only"])), timeout=300)
        cpu0 = read_cpu_s(proc.pid)
        res, _ = run_loadgen(pinned(1, loadgen(args, port, size, [
            "--get-ratio", "1", "--duration", f"{args.duration}s"])),
            timeout=args.duration + 300)
        cpu = read_cpu_s(proc.pid) - cpu0
        if res["hits"] != res["gets"] or res["errors"]:
            raise RunError(f"{binary}: {res['gets'] - res['hits']} misses, {res['errors']} errors")
        gb = res["hits"] * size / 1e9
        return dict(mb_s=gb * 1e3 / res["duration_s"], cpu_s_per_gb=cpu / max(gb, 1e-9))
    finally:
        stop_proc(proc)


def stream(port, stop, rate=1e9):
    """Gets a 100 MiB value over and over, reading at about `rate` bytes/s."""
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        while not stop.is_set():
            s.sendall(b"get stream:0\r\n")
            want = len(b"VALUE stream:0 0 %d\r\n" % (100 * MIB)) + 100 * MIB + 7
            got, t0 = 0, time.monotonic()
            while got < want:
                n = s.recv_into(view, min(len(buf), want - got))
                if n == 0:
                    raise RunError("strata closed the streaming connection")
                got += n
                ahead = got / rate - (time.monotonic() - t0)
                if ahead > 0.001:
                    time.sleep(ahead)


def small_requests(args, port, make_loadgen):
    """(p99 in us, ops/s) of 100-byte requests, 90 % gets over 1000 keys, on
    one connection for args.duration; `make_loadgen` builds the loadgen
    command line as loadgen() here does."""
    res, _ = run_loadgen(pinned(1, make_loadgen(args, port, 100, [
        "--get-ratio", "0.9", "--duration", f"{args.duration}s"], connections=1,
        keys=1000, prefix="small:")), timeout=args.duration + 120)
    return res["p99_us"], res["ops_per_s"]


def small_requests_beside(args, port, proc, make_loadgen, stop, make_thread=None,
                          join_s=30, stop_s=5.0):
    """small_requests() against `proc` (listening on `port`), with the thread
    make_thread() returns (if given) running beside them from a second
    before; then sets `stop`, joins that thread and stops `proc`."""
    thread = None
    try:
        if make_thread is not None:
            thread = make_thread()
            thread.start()
            time.sleep(1.0)
        return small_requests(args, port, make_loadgen)
    finally:
        stop.set()
        if thread is not None:
            thread.join(join_s)
        stop_proc(proc, timeout=stop_s)


def small_p99(args, streaming):
    """p99 (us) of small requests on strata's one worker, while another
    connection streams 100 MiB values (or not)."""
    port = free_port()
    proc = start(args.strata, port)
    stop = threading.Event()

    def streamer():
        value = os.urandom(100 * MIB)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"set stream:0 0 0 %d\r\n" % len(value) + value + b"\r\n")
            if s.recv(100) != b"STORED\r\n":
                raise RunError("the 100 MiB set failed")
        return threading.Thread(target=stream, args=(port, stop), daemon=True)

    return small_requests_beside(args, port, proc, loadgen, stop,
                                 streamer if streaming else None)


def main():
    ap = arguments(__doc__)
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--duration", type=parse_seconds, default=5.0)
    args = ap.parse_args()
    atexit.register(stop_all)
    print("| value | strata MB/s | memcached MB/s | ratio | strata CPU s/GB | memcached CPU s/GB "
          "| ratio |")
    print("|---|---|---|---|---|---|---|")
    for mib in (int(s) for s in args.sizes.split(",")):
        runs = {"strata": [], "memcached": []}
        for pair in range(args.pairs):
            for side, binary in (("strata", args.strata), ("memcached", args.memcached)):
                r = one_run(args, binary, mib * MIB)
                log(f"{mib} MiB {side} pair {pair}: {r['mb_s']:.0f} MB/s, "
                    f"{r['cpu_s_per_gb']:.3f} CPU s/GB")
                runs[side].append(r)
        s = {k: median([r[k] for r in runs["strata"]]) for k in ("mb_s", "cpu_s_per_gb")}
        m = {k: median([r[k] for r in runs["memcached"]]) for k in ("mb_s", "cpu_s_per_gb")}
        print(f"| {mib} MiB | {s['mb_s']:.0f} | {m['mb_s']:.0f} | {s['mb_s'] / m['mb_s']:.2f} "
              f"| {s['cpu_s_per_gb']:.3f} | {m['cpu_s_per_gb']:.3f} "
              f"| {s['cpu_s_per_gb'] / m['cpu_s_per_gb']:.2f} |", flush=True)
    quiet = small_p99(args, streaming=False)
    busy = small_p99(args, streaming=True)
    print(f"\nsmall requests on strata's worker (1 conn, pipeline 1): p99 {quiet[0]:.0f} us "
          f"({quiet[1]:.0f} ops/s) alone; p99 {busy[0]:.0f} us ({busy[1]:.0f} ops/s) while "
          f"another connection streams 100 MiB values")


if __name__ == "__main__":
    main()
