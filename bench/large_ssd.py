#!/usr/bin/env python3
"""Large values on the SSD tier (issue 26): strata against fio and memcached.

1. SSD-served gets. strata (one worker pinned to CPU 0, `-m 96 -I 96m`, an
   SSD tier of 2 GiB in 16 MiB regions on the same file system as the build,
   `large_item_percent: 1`, so every value of 1 MiB or more is set straight
   to SSD and served from it without promotion; server.max_connection_memory
   128 MiB, as -m 1024 would give) is preloaded with 8 values
   of each size (incompressible: LZ4 gives up on them) and 48 MiB after
   them (so they are read from the device, not from the log's region
   buffers), then strata_loadgen
   (CPU 1) gets them back for --duration over 4 connections at pipeline 1:
   MB/s of values delivered. Against it: fio sequential O_DIRECT reads
   (io_uring, the same block size, iodepth 4 like the 4 connections) of a
   2 GiB file on the same file system, alternated with strata's runs,
   --repeat (3) of each. Reported: the medians and their ratio (target
   >= 0.7).
2. Sets of the same sizes for --duration (4 connections, pipeline 1):
   strata with the SSD tier (the values go straight to SSD) against
   memcached 1.6.18 from RAM (`-m 1024 -I 96m`). A set the full queue to
   SSD cannot take is stored in RAM; sets refused (SERVER_ERROR out of
   memory) are counted, not in the MB/s.
3. The p99 of small requests (100-byte gets and sets, one connection,
   pipeline 1) on strata's one worker, alone and while another connection
   (this script's thread, on CPU 1 with the loadgen: the script pins
   itself there) sets and gets 64 MiB values through the SSD tier, with
   the MB/s it moved meanwhile. Twice: that thread under SCHED_IDLE (so
   the loadgen does not wait for CPU 1 behind it: strata's part), then at
   normal priority (the clients' CPU contention included).

    bench/large_ssd.py [--sizes 1,8,32,64] [--duration 5s] [--dir DIR]

DIR (default: bench-tmp next to the build) must be on a file system with
O_DIRECT (not tmpfs); its files are removed at the end.
"""

import atexit
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (RunError, find_binary, free_port, log, parse_seconds,  # noqa: E402
                      pinned, run_loadgen, server_stats, stop_all, stop_proc, track,
                      wait_started)
from large_values import arguments, small_requests_beside  # noqa: E402

MIB = 1 << 20
KEYS = 8


def start_strata(args, port, workdir):
    config = os.path.join(workdir, "strata.yaml")
    with open(config, "w") as f:
        # Connection memory as with -m 1024 (an eighth): the 96 MiB RAM tier
        # here would give 32 MiB, which 4 readers of 64 MiB values pass.
        f.write("server:\n  max_connection_memory: 128MiB\n"
                "tiers:\n  ssd:\n"
                f"    path: {os.path.join(workdir, 'cache.bin')}\n"
                "    size: 2GiB\n    region_size: 16MiB\n    io: io_uring\n"
                "    admission: all\n    large_item_percent: 1\n"
                "    demote_on_shutdown: false\n"
                "metrics:\n  enabled: false\n")
    argv = [args.strata, "-p", str(port), "-l", "127.0.0.1", "-m", "96", "-I", "96m", "-t", "1",
            "--config", config]
    proc = track(subprocess.Popen(pinned(0, argv), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
    return wait_started(proc, port, "strata", 60)


def start_memcached(args, port):
    argv = [args.memcached, "-p", str(port), "-l", "127.0.0.1", "-m", "1024", "-I", "96m",
            "-t", "1"] + (["-u", "root"] if os.geteuid() == 0 else [])
    proc = track(subprocess.Popen(pinned(0, argv), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
    return wait_started(proc, port, "memcached", 20)


def loadgen(args, port, size, extra, connections=4, keys=KEYS, prefix="big:"):
    return [args.loadgen, "--port", str(port), "--connections", str(connections),
            "--threads", "1", "--pipeline", "1", "--keys", str(keys), "--random-values",
            "--value-size", str(size), "--key-prefix", prefix, "--timeout", "60s"] + extra


def wait_written(port, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = server_stats(port)
        if int(st.get("ssd_large_pending_items", "0")) == 0:
            return st
        time.sleep(0.1)
    raise RunError("large items still queued for the SSD")


def strata_gets(args, size, workdir):
    port = free_port()
    proc = start_strata(args, port, workdir)
    try:
        # Paced: sets faster than the device takes them are refused once
        # the queue to SSD holds 2 x max_item_size.
        rate = str(max(1, (128 * MIB) // size))
        warm, _ = run_loadgen(pinned(1, loadgen(args, port, size, [
            "--warmup-only", "--warmup-rate", rate, "--warmup-pipeline", "1"],
            connections=1)), timeout=600)
        if warm["warmup_errors"]:
            raise RunError(f"{warm['warmup_errors']} preload errors")
        # 48 MiB more, so the values are out of the log's region buffers:
        # read from the device.
        fill, _ = run_loadgen(pinned(1, loadgen(args, port, 8 * MIB, [
            "--warmup-only", "--warmup-rate", "32", "--warmup-pipeline", "1"], connections=1,
            keys=6, prefix="fill:")),
            timeout=600)
        if fill["warmup_errors"]:
            raise RunError(f"{fill['warmup_errors']} filler errors")
        st0 = wait_written(port)
        res, _ = run_loadgen(pinned(1, loadgen(args, port, size, [
            "--get-ratio", "1", "--duration", f"{args.duration}s"])),
            timeout=args.duration + 600)
        st1 = server_stats(port)
        if res["hits"] != res["gets"] or res["errors"]:
            raise RunError(f"{res['gets'] - res['hits']} misses, {res['errors']} errors")
        piece_reads = int(st1["ssd_large_piece_reads"]) - int(st0["ssd_large_piece_reads"])
        if piece_reads == 0:
            raise RunError("the gets were not served by the SSD tier")
        return res["hits"] * size / 1e6 / res["duration_s"]
    finally:
        stop_proc(proc, timeout=60)


def fio_read(args, size, workdir):
    path = os.path.join(workdir, "fio.bin")
    cmd = ["fio", "--name=seqread", f"--filename={path}", "--rw=read", f"--bs={size}",
           "--direct=1", "--ioengine=io_uring", "--iodepth=4", "--size=2g",
           f"--runtime={max(1, int(args.duration))}", "--time_based", "--output-format=json"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 600)
    if out.returncode != 0:
        raise RunError(f"fio failed: {out.stderr}")
    job = json.loads(out.stdout)["jobs"][0]
    return job["read"]["bw_bytes"] / 1e6


def sets(args, binary, size, workdir):
    port = free_port()
    proc = start_strata(args, port, workdir) if binary == "strata" else \
        start_memcached(args, port)
    try:
        res, _ = run_loadgen(pinned(1, loadgen(args, port, size, [
            "--get-ratio", "0", "--duration", f"{args.duration}s"], keys=32)),
            timeout=args.duration + 600)
        stored = res["sets"] - res["error_replies"]
        return stored * size / 1e6 / res["duration_s"], res["error_replies"], res["sets"]
    finally:
        stop_proc(proc, timeout=60)


def mover(port, stop, errors, moved, idle):
    """Sets and gets 64 MiB values through the SSD tier until stopped;
    counts into `moved` the value bytes set (stored) and got, and the
    seconds it ran. `idle`: this thread runs under SCHED_IDLE."""
    if idle:
        # It shares CPU 1 with the loadgen: at normal priority the loadgen
        # waits up to several ms for the CPU behind it (perf sched), and
        # the p99 measures the clients' CPU, not strata.
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    value = os.urandom(64 * MIB)
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            f = s.makefile("rb")
            i = 0
            while not stop.is_set():
                key = b"move:%d" % (i % 4)
                s.sendall(b"set %s 0 0 %d\r\n" % (key, len(value)) + value + b"\r\n")
                # STORED, or SERVER_ERROR when the queue is full
                if f.readline() == b"STORED\r\n":
                    moved["set"] += len(value)
                s.sendall(b"get %s\r\n" % key)
                line = f.readline()
                if line.startswith(b"VALUE"):
                    moved["got"] += len(f.read(int(line.split()[3]) + 2)) - 2
                    f.readline()
                i += 1
    except OSError as e:
        errors.append(repr(e))
    moved["seconds"] = time.monotonic() - t0


def small_p99(args, workdir, moving, idle_mover=False):
    """(p99 us, ops/s) of small requests; with `moving`, also the MB/s the
    mover set and got meanwhile."""
    port = free_port()
    proc = start_strata(args, port, workdir)
    stop = threading.Event()
    errors = []
    moved = {"set": 0, "got": 0, "seconds": 0.0}
    try:
        p99, ops = small_requests_beside(
            args, port, proc, loadgen, stop,
            (lambda: threading.Thread(target=mover, args=(port, stop, errors, moved, idle_mover),
                                      daemon=True))
            if moving else None, join_s=60, stop_s=60)
        rate = (moved["set"] + moved["got"]) / 1e6 / moved["seconds"] if moving else 0.0
        return p99, ops, rate
    finally:
        if errors:
            raise RunError(f"the mover failed: {errors}")


def main():
    ap = arguments(__doc__)
    ap.add_argument("--duration", type=parse_seconds, default=5.0)
    ap.add_argument("--parts", default="gets,sets,p99", help="which of gets,sets,p99 to run")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of strata and fio per size for the gets (medians)")
    ap.add_argument("--dir", default=os.path.join(os.path.dirname(os.path.dirname(
        find_binary("proxy", "strata"))), "bench-tmp"))
    args = ap.parse_args()
    atexit.register(stop_all)
    try:  # the script's own clients (the 64 MiB mover) are load: off strata's CPU
        os.sched_setaffinity(0, {1})
    except OSError:
        pass
    workdir = os.path.join(args.dir, f"large-ssd-{os.getpid()}")
    os.makedirs(workdir)
    atexit.register(shutil.rmtree, workdir, True)
    sizes = [int(s) for s in args.sizes.split(",")]
    parts = args.parts.split(",")
    if "gets" in parts:
        print("| value | strata SSD gets MB/s | fio seq read MB/s | ratio |")
        print("|---|---|---|---|")
    for mib in sizes if "gets" in parts else []:
        # Alternated, --repeat times each; the medians (this VM's disk gives
        # fio anything from 1.2 to 2.0 GB/s from one run to the next).
        ss, fs = [], []
        for _ in range(args.repeat):
            ss.append(strata_gets(args, mib * MIB, workdir))
            os.unlink(os.path.join(workdir, "cache.bin"))
            fs.append(fio_read(args, mib * MIB, workdir))
            log(f"{mib} MiB: strata {ss[-1]:.0f} MB/s, fio {fs[-1]:.0f} MB/s")
        s, f = statistics.median(ss), statistics.median(fs)
        print(f"| {mib} MiB | {s:.0f} | {f:.0f} | {s / f:.2f} |", flush=True)
    if "gets" in parts:
        os.unlink(os.path.join(workdir, "fio.bin"))
    if "sets" in parts:
        print("\n| value | strata sets to SSD MB/s (refused/sent) | memcached sets to RAM MB/s "
              "| ratio |")
        print("|---|---|---|---|")
    for mib in sizes if "sets" in parts else []:
        s, refused, sent = sets(args, "strata", mib * MIB, workdir)
        os.unlink(os.path.join(workdir, "cache.bin"))
        m, _, _ = sets(args, args.memcached, mib * MIB, workdir)
        print(f"| {mib} MiB | {s:.0f} ({refused}/{sent}) | {m:.0f} | {s / m:.2f} |", flush=True)
    if "p99" not in parts:
        return
    quiet = small_p99(args, workdir, moving=False)
    os.unlink(os.path.join(workdir, "cache.bin"))
    print(f"\nsmall requests on strata's worker (1 conn, pipeline 1): p99 {quiet[0]:.0f} us "
          f"({quiet[1]:.0f} ops/s) alone")
    for idle in (True, False):
        busy = small_p99(args, workdir, moving=True, idle_mover=idle)
        os.unlink(os.path.join(workdir, "cache.bin"))
        print(f"  p99 {busy[0]:.0f} us ({busy[1]:.0f} ops/s) while another connection sets "
              f"and gets 64 MiB values through the SSD tier ({busy[2]:.0f} MB/s set and got; "
              f"that client at {'SCHED_IDLE' if idle else 'normal priority'} on the "
              f"loadgen's CPU)", flush=True)


if __name__ == "__main__":
    main()
