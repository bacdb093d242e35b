#!/usr/bin/python3
"""SSD tier benchmark: strata vs memcached-extstore vs fio, on one file system, in one run.

Issue 3's "Benchmark (not a test)": RAM 64 MiB, SSD 2 GiB, 250k values of 4 KiB (1 GiB),
uniform gets at pipeline 16 over 50 connections, one worker per server pinned to one CPU,
the load generator pinned to the other. It measures, side by side:

  (a) fio: 4 KiB random reads, ioengine=io_uring, direct=1, on a 2 GiB file in --dir, at
      queue depths 16/32/64 (--fio-qds; --qd is the one the targets use): the physical
      limit of the device as seen from one CPU;
  (b) memcached with extstore: -m 64 -t 1 -o ext_path=FILE:2G,...;
  (c) strata: -m 64 -t 1 --ssd-path FILE --ssd-size 2GiB.

For (b) and (c), every pair runs each server twice, on a fresh file each time:

  fast run   unthrottled preload of every key, then a probe that gets every key once:
             the share of the items the server keeps when they arrive fast;
  paced run  preload at --load-rate sets/s (memcached's slab rebalancer needs it), then
             --duration of uniform random gets (loadgen --get-ratio 1.0): throughput,
             p50/p99, server CPU us per request (/proc/PID/stat), the share of gets served
             from SSD (strata: ssd_hits; memcached: get_extstore - miss/badcrc_from_extstore),
             device bytes written per byte demoted, RAM per SSD-resident item.

memcached's extstore does buffered I/O (no O_DIRECT): its reads would come from the page
cache, which holds the whole 1 GiB here. By default (--page-cache drop) the script fsyncs
and drops the cached pages of both servers' files before the measured phase and every
--drop-interval during it (posix_fadvise DONTNEED), and reports the share of each file
resident in the page cache at the end (mincore). strata opens its file with O_DIRECT; the
script reports the open flags of both files as seen in /proc/PID/fdinfo.

Prints the ssd_* stats of strata (and memcached's extstore stats) before and after every
phase, every run, the median per server, and a table of the issue's targets. Servers are
stopped by PID on every exit path; the big files are deleted at the end unless --keep.
Standard library only; runs under /usr/bin/python3. Needs fio (apt-get install -y fio) and
taskset; when fio is missing the fio part is skipped with a message.

Example:
  bench/ssd_bench.py                                 # everything, 2 pairs, ~5 minutes
  bench/ssd_bench.py --pairs 1 --duration 5s --skip-strata
"""

import argparse
import atexit
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (REPO, RunError, find_binary, fmt, free_port, log, median,  # noqa: E402
                      parse_seconds, pinned, read_cpu_s, read_rss_kb, stop_all, stop_proc,
                      track)
from benchlib import run_loadgen as run_loadgen_cmd  # noqa: E402
from benchlib import server_stats  # noqa: E402

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
O_DIRECT = 0o40000  # x86-64 / arm64 value, as shown in /proc/PID/fdinfo "flags:" (octal)

SIDES = ("strata", "memcached")

# memcached stats shown next to strata's ssd_* ones.
MC_EXT_STATS = ("curr_items", "evictions", "get_extstore", "miss_from_extstore",
                "badcrc_from_extstore", "recache_from_extstore", "extstore_objects_used",
                "extstore_objects_written", "extstore_bytes_used", "extstore_bytes_written",
                "extstore_bytes_fragmented", "extstore_pages_used", "extstore_page_reclaims",
                "extstore_page_evictions", "extstore_objects_evicted", "slab_global_page_pool",
                "slabs_moved", "slab_reassign_evictions_nomem")


class StrataRejected(RunError):
    """strata exited at start: most likely it does not know the SSD flags yet."""



def out(msg=""):
    print(msg, flush=True)


# ---------------------------------------------------------------------------------------
# Parsing helpers


def parse_size(text):
    m = re.fullmatch(r"\s*([0-9]+)\s*(B|K|KiB|k|M|MiB|m|G|GiB|g)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"bad size: {text!r} (e.g. 2GiB, 512MiB)")
    unit = (m.group(2) or "B")[0].upper()
    return int(m.group(1)) * {"B": 1, "K": KiB, "M": MiB, "G": GiB}[unit]


def fmt_size(n):
    """2 GiB -> '2GiB' (strata), for memcached see mc_size()."""
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


def mc_size(n):
    for unit, scale in (("G", GiB), ("M", MiB), ("K", KiB)):
        if n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)



def ratio(a, b):
    return a / b if a is not None and b else None


# ---------------------------------------------------------------------------------------
# Processes, /proc and the memcached protocol


def open_flags(pid, path):
    """The open flags (int) of the first fd of `pid` that refers to `path`, or None."""
    want = os.path.realpath(path)
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != want:
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                for line in f:
                    if line.startswith("flags:"):
                        return int(line.split()[1], 8)
        except OSError:
            continue
    return None


def stat_num(stats, name):
    try:
        v = float(stats[name])
    except (KeyError, ValueError):
        return None
    return int(v) if v.is_integer() else v


def stat_delta(before, after, name):
    a, b = stat_num(after, name), stat_num(before, name)
    return a - b if a is not None and b is not None else None


class Server:
    def __init__(self, side, argv, port, log_path):
        self.side, self.argv, self.port, self.log_path = side, argv, port, log_path
        self.proc = None

    def start(self, timeout):
        self.log_file = open(self.log_path, "w+")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=subprocess.STDOUT)
        track(self.proc)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                status = self.proc.returncode
                self.stop()
                raise (StrataRejected if self.side == "strata" else RunError)(
                    f"{self.side} exited with status {status} at start: {' '.join(self.argv)}\n"
                    f"  its output: {self.output_tail().strip() or '(none)'}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RunError(f"{self.side} did not accept connections within {timeout:.0f} s: "
                               f"{' '.join(self.argv)}")
            time.sleep(0.05)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def output_tail(self, n=1500):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None:
            stop_proc(self.proc)
        if getattr(self, "log_file", None):
            self.log_file.close()
            self.log_file = None



# ---------------------------------------------------------------------------------------
# Page cache: drop a file's cached pages, measure how much of it is resident

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]


def drop_page_cache(path, sync=False):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        if sync:
            os.fsync(fd)  # dirty pages cannot be dropped
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass
    finally:
        os.close(fd)


def resident_share(path):
    """Share of the file's pages in the page cache (mincore), or None."""
    try:
        size = os.path.getsize(path)
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        if size == 0:
            return 0.0
        addr = _libc.mmap(None, size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
        if addr in (None, ctypes.c_void_p(-1).value):
            return None
        try:
            pages = (size + 4095) // 4096
            vec = (ctypes.c_ubyte * pages)()
            if _libc.mincore(addr, size, vec) != 0:
                return None
            raw = bytes(vec)
            return (pages - raw.count(0)) / pages
        finally:
            _libc.munmap(addr, size)
    finally:
        os.close(fd)


class CacheDropper(threading.Thread):
    """Drops the page cache of `paths` every `interval` seconds until stopped."""

    def __init__(self, paths, interval):
        super().__init__(daemon=True)
        self.paths, self.interval = paths, interval
        self.stopping = threading.Event()
        self.drops = 0

    def run(self):
        while not self.stopping.wait(self.interval):
            for p in self.paths:
                drop_page_cache(p)
            self.drops += 1

    def stop(self):
        self.stopping.set()
        self.join()


# ---------------------------------------------------------------------------------------
# Load: strata_loadgen and the probe

def run_loadgen(args, port, extra, timeout):
    """Runs strata_loadgen pinned to the loadgen CPU; returns (its JSON dict, its CPU s)."""
    argv = [args.loadgen_bin, "--host", "127.0.0.1", "--port", str(port),
            "--connections", str(args.connections), "--pipeline", str(args.pipeline),
            "--keys", str(args.keys), "--value-size", str(args.value_size),
            "--key-prefix", args.key_prefix] + extra
    if not args.compressible_values:
        argv.append("--random-values")
    return run_loadgen_cmd(pinned(args.loadgen_cpu, argv), timeout, indent="    ")


def probe(args, port):
    """Gets every key once (multi-gets of --probe-batch keys, a few in flight on one
    connection); returns dict(hits, misses, bad, seconds). A value is bad when its length
    or its first 8 bytes (the key index in hex, as strata_loadgen writes it) are wrong."""
    keys, batch, depth = args.keys, args.probe_batch, 4
    prefix = args.key_prefix.encode()
    t0 = time.monotonic()
    hits = bad = 0
    sock = socket.create_connection(("127.0.0.1", port), timeout=args.probe_timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        buf = bytearray()
        pos = 0
        next_key = 0
        pending = []  # key ranges of the multi-gets in flight, oldest first

        def send_one():
            nonlocal next_key
            end = min(keys, next_key + batch)
            cmd = b"get " + b" ".join(prefix + str(i).encode() for i in range(next_key, end))
            sock.sendall(cmd + b"\r\n")
            pending.append((next_key, end))
            next_key = end

        def need(n):
            """Ensures buf[pos:] holds at least n bytes."""
            nonlocal buf, pos
            while len(buf) - pos < n:
                if pos > (4 << 20):
                    del buf[:pos]
                    pos = 0
                chunk = sock.recv(1 << 20)
                if not chunk:
                    raise RunError("probe: the server closed the connection")
                buf += chunk
                if time.monotonic() - t0 > args.probe_timeout:
                    raise RunError(f"probe: not done after {args.probe_timeout:.0f} s")

        def line():
            nonlocal pos
            while True:
                nl = buf.find(b"\r\n", pos)
                if nl >= 0:
                    text = bytes(buf[pos:nl])
                    pos = nl + 2
                    return text
                need(len(buf) - pos + 1)

        while next_key < keys and len(pending) < depth:
            send_one()
        while pending:
            first, end = pending.pop(0)
            want = {prefix + str(i).encode(): i for i in range(first, end)}
            while True:
                text = line()
                if text == b"END":
                    break
                parts = text.split()
                if len(parts) < 4 or parts[0] != b"VALUE":
                    raise RunError(f"probe: unexpected reply {text[:80]!r}")
                size = int(parts[3])
                need(size + 2)
                index = want.get(parts[1])
                value_head = bytes(buf[pos:pos + 8])
                pos += size + 2
                if index is None or size != args.value_size or \
                        value_head != f"{index:08x}".encode()[:min(8, size)]:
                    bad += 1
                else:
                    hits += 1
            if next_key < keys:
                send_one()
    finally:
        sock.close()
    return {"hits": hits, "misses": keys - hits - bad, "bad": bad,
            "seconds": time.monotonic() - t0}


# ---------------------------------------------------------------------------------------
# fio

def fio_layout(args, path):
    cmd = [args.fio_bin, "--name=layout", f"--filename={path}", f"--size={args.ssd_size}",
           "--rw=write", "--bs=1M", "--ioengine=io_uring", "--direct=1", "--iodepth=8",
           "--output-format=json"]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        raise RunError(f"fio could not lay out {path}: {e}\n{getattr(e, 'stderr', '')}")


def fio_randread(args, path, qd):
    runtime = max(1, round(args.fio_runtime))
    cmd = pinned(args.server_cpu, [
        args.fio_bin, "--name=randread", f"--filename={path}", f"--size={args.ssd_size}",
        "--rw=randread", "--bs=4k", "--ioengine=io_uring", "--direct=1", f"--iodepth={qd}",
        "--time_based", f"--runtime={runtime}", "--ramp_time=1", "--norandommap",
        "--randrepeat=0", "--numjobs=1", "--output-format=json"])
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=runtime + 60)
    except subprocess.TimeoutExpired:
        raise RunError(f"fio timed out: {' '.join(cmd)}")
    if res.returncode != 0:
        raise RunError(f"fio failed (status {res.returncode}): {' '.join(cmd)}\n{res.stderr}")
    text = res.stdout[res.stdout.find("{"):]  # fio may print notes before the JSON
    job = json.loads(text)["jobs"][0]
    rd = job["read"]
    pct = rd.get("clat_ns", {}).get("percentile", {})
    ios = rd.get("total_ios") or rd.get("short_ios") or 0
    run_s = rd.get("runtime", 0) / 1000
    cpu_pct = job.get("usr_cpu", 0) + job.get("sys_cpu", 0)
    return {
        "qd": qd, "iops": rd["iops"],
        "p50_us": pct.get("50.000000", 0) / 1000 or None,
        "p99_us": pct.get("99.000000", 0) / 1000 or None,
        "cpu_pct": cpu_pct,
        "cpu_us_per_io": (cpu_pct / 100 * run_s * 1e6 / ios) if ios else None,
        "command": " ".join(cmd),
    }


# ---------------------------------------------------------------------------------------
# One server run

def server_argv(side, args, port, ssd_file):
    if side == "memcached":
        ext = f"ext_path={ssd_file}:{mc_size(args.ssd_size)}"
        if args.memcached_ext_opts:
            ext += "," + args.memcached_ext_opts
        if "ext_threads=" not in ext:
            # extstore reads with blocking pread, one per IO thread: its queue depth.
            ext += f",ext_threads={args.qd}"
        argv = [args.memcached_bin, "-p", str(port), "-l", "127.0.0.1", "-m", str(args.ram_mb),
                "-t", "1", "-c", "1024", "-o", ext]
        if os.geteuid() == 0:
            argv += ["-u", "root"]
        argv += args.memcached_args.split()
    else:
        argv = [args.strata_bin, "-p", str(port), "-l", "127.0.0.1", "-m", str(args.ram_mb),
                "-t", "1", "-c", "1024", "--metrics-listen", f"127.0.0.1:{free_port()}",
                "--ssd-path", ssd_file, "--ssd-size", fmt_size(args.ssd_size)]
        if args.strata_ssd_set:
            # The same path and size as the flags, so the file validates on its own.
            conf = os.path.join(os.path.dirname(ssd_file), "strata-ssd.yaml")
            with open(conf, "w") as f:
                f.write(f"tiers:\n  ssd:\n    path: {ssd_file}\n"
                        f"    size: {fmt_size(args.ssd_size)}\n")
                for kv in args.strata_ssd_set:
                    k, _, v = kv.partition("=")
                    f.write(f"    {k.strip()}: {v.strip()}\n")
            argv += ["-C", conf]
        argv += args.strata_args.split()
    return pinned(args.server_cpu, argv)


def ssd_view(side, stats):
    """The SSD-related stats of a `stats` reply, in a stable order."""
    if side == "strata":
        keys = sorted(k for k in stats if k.startswith("ssd_"))
        keys += [k for k in ("curr_items", "evictions") if k in stats]
    else:
        keys = [k for k in MC_EXT_STATS if k in stats]
    return {k: stats[k] for k in keys}


def print_stats_table(title, snapshots):
    """snapshots: list of (phase name, {stat: value}); prints one row per stat."""
    names = []
    for _, snap in snapshots:
        names += [k for k in snap if k not in names]
    if not names:
        out(f"    {title}: (the server reports none)")
        return
    out(f"    {title}:")
    headers = ["stat"] + [p for p, _ in snapshots]
    rows = [[n] + [str(snap.get(n, "-")) for _, snap in snapshots] for n in names]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    out("      " + "  ".join(h.ljust(widths[0]) if i == 0 else h.rjust(widths[i])
                            for i, h in enumerate(headers)))
    for r in rows:
        out("      " + "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i])
                                for i, c in enumerate(r)))


def mc_header_bytes(port, value_size):
    """memcached: bytes of slab chunks in classes smaller than a value (the headers that
    stay in RAM for items on extstore, plus small RAM items), from `stats slabs`."""
    slabs = server_stats(port, "stats slabs")
    classes = {}
    for k, v in slabs.items():
        m = re.fullmatch(r"(\d+):(chunk_size|used_chunks)", k)
        if m:
            classes.setdefault(m.group(1), {})[m.group(2)] = int(v)
    total = 0
    for c in classes.values():
        if c.get("chunk_size", value_size) < value_size:
            total += c["chunk_size"] * c.get("used_chunks", 0)
    return total if classes else None


def one_run(side, kind, args, pair, workdir):
    """kind: 'fast' (unthrottled load + probe) or 'paced' (paced load + measured gets)."""
    rec = {"server": side, "kind": kind, "pair": pair, "ok": False}
    ssd_file = os.path.join(workdir, f"{side}.ssd")
    # strata's warm-restart files (hot keys, sketch) go too: every run starts cold.
    for p in (ssd_file, ssd_file + ".hot", ssd_file + ".sketch"):
        if os.path.exists(p):
            os.remove(p)
    server = None
    snapshots = []
    try:
        for attempt in range(3):  # the free port may be taken meanwhile
            port = free_port()
            server = Server(side, server_argv(side, args, port, ssd_file), port,
                            os.path.join(workdir, f"{side}.log"))
            try:
                server.start(args.start_timeout)
                break
            except StrataRejected:
                raise
            except RunError:
                if attempt == 2:
                    raise
        rec["command"] = " ".join(server.argv)
        time.sleep(args.settle)
        pid = server.pid
        rss_idle = read_rss_kb(pid)
        stats0 = server_stats(port)
        snapshots.append(("idle", ssd_view(side, stats0)))
        flags = open_flags(pid, ssd_file)
        rec["o_direct"] = None if flags is None else bool(flags & O_DIRECT)
        if side == "strata" and not any(k.startswith("ssd_") for k in stats0):
            log("    warning: strata's stats show no ssd_* figures: is the SSD tier enabled?")

        rate = 0 if kind == "fast" else args.load_rate
        extra = ["--warmup-only", "--seed", "1"]
        if rate:
            extra += ["--warmup-rate", str(rate)]
        load_timeout = (args.keys / rate if rate else 0) + args.load_timeout
        warm, _ = run_loadgen(args, port, extra, load_timeout)
        rec["load_s"] = warm["warmup_s"]
        rec["load_sets_per_s"] = warm["warmup_sets"] / warm["warmup_s"] if warm["warmup_s"] else None
        rec["load_errors"] = warm["warmup_errors"]
        time.sleep(args.settle)
        if not server.alive():
            raise RunError(f"{side} died during the load (status {server.proc.returncode})")
        rss_load = read_rss_kb(pid)
        stats1 = server_stats(port)
        snapshots.append(("after load", ssd_view(side, stats1)))
        rec.update({"rss_idle_mb": rss_idle / 1024, "rss_load_mb": rss_load / 1024,
                    "curr_items": stat_num(stats1, "curr_items")})

        # Items on SSD and RAM per SSD-resident item, after the load.
        if side == "strata":
            on_ssd = stat_num(stats1, "ssd_index_entries")
            idx_bytes = stat_num(stats1, "ssd_index_bytes")
            rec["index_b_per_item"] = ratio(idx_bytes, on_ssd)
            written = stat_num(stats1, "ssd_device_bytes_written")
            demoted = stat_num(stats1, "ssd_demoted_bytes")
            rec["dev_bytes_per_demoted"] = ratio(written, demoted)
            rec["promotions_at_load"] = stat_num(stats1, "ssd_promotions")
        else:
            on_ssd = stat_num(stats1, "extstore_objects_used")
            hdr = mc_header_bytes(port, args.value_size)
            rec["slab_hdr_b_per_item"] = ratio(hdr, on_ssd)
        rec["items_on_ssd"] = on_ssd
        if on_ssd:
            rec["rss_b_per_ssd_item"] = (rss_load - rss_idle - args.ram_mb * 1024) * 1024 / on_ssd

        if kind == "fast":
            pr = probe(args, port)
            stats2 = server_stats(port)
            snapshots.append(("after probe", ssd_view(side, stats2)))
            rec.update({"kept_share": pr["hits"] / args.keys, "probe_bad": pr["bad"],
                        "probe_s": pr["seconds"],
                        "probe_ssd_reads": (stat_delta(stats1, stats2, "ssd_hits")
                                            if side == "strata" else
                                            stat_delta(stats1, stats2, "get_extstore"))})
            if pr["bad"]:
                log(f"    warning: the probe saw {pr['bad']} wrong values")
        else:
            dropper = None
            if args.page_cache == "drop":
                drop_page_cache(ssd_file, sync=True)
                dropper = CacheDropper([ssd_file], args.drop_interval)
                dropper.start()
            cpu0 = read_cpu_s(pid)
            try:
                load, lg_cpu = run_loadgen(
                    args, port, ["--get-ratio", "1.0", "--duration", f"{args.duration}s",
                                 "--seed", str(args.seed + pair)],
                    args.duration + args.run_timeout)
                cpu1 = read_cpu_s(pid)
                rec["page_cache_share_end"] = resident_share(ssd_file)
            finally:
                if dropper:
                    dropper.stop()
            rss_end = read_rss_kb(pid)
            stats2 = server_stats(port)
            snapshots.append(("after gets", ssd_view(side, stats2)))
            if not server.alive():
                raise RunError(f"{side} exited during the run (status {server.proc.returncode})")
            if side == "strata":
                ssd_hits = stat_delta(stats1, stats2, "ssd_hits")
            else:
                ssd_hits = stat_delta(stats1, stats2, "get_extstore")
                for bad in ("miss_from_extstore", "badcrc_from_extstore"):
                    d = stat_delta(stats1, stats2, bad)
                    if ssd_hits is not None and d:
                        ssd_hits -= d
            gets, dur, cpu = load["gets"], load["duration_s"], cpu1 - cpu0
            rec.update({
                "ops_per_s": load["ops_per_s"], "gets": gets, "hits": load["hits"],
                "hit_share": load["hits"] / gets if gets else None,
                "errors": load["errors"], "p50_us": load["p50_us"], "p99_us": load["p99_us"],
                "p999_us": load["p999_us"], "duration_s": dur, "cpu_s": cpu,
                "cpu_us_per_req": cpu * 1e6 / load["ops"] if load["ops"] else None,
                "ssd_hits": ssd_hits,
                "ssd_share": ratio(ssd_hits, gets),
                "ssd_hits_per_s": ssd_hits / dur if ssd_hits is not None and dur else None,
                "rss_end_mb": rss_end / 1024,
                "loadgen_cpu_pct": 100 * lg_cpu / dur if dur else None,
                "cache_drops": dropper.drops if dropper else 0,
            })
            if side == "strata":
                rec["promotions_in_run"] = stat_delta(stats1, stats2, "ssd_promotions")
                rec["read_errors"] = stat_num(stats2, "ssd_read_errors")
                rec["corrupt_records"] = stat_num(stats2, "ssd_corrupt_records")
                rec["ssd_io_mode"] = stats2.get("ssd_io_mode")
            # memcached is single-copy on flash: CPU per flash hit is the cost figure.
            if ssd_hits:
                rec["cpu_us_per_ssd_hit"] = cpu * 1e6 / ssd_hits
        rec["ok"] = True
    except StrataRejected:
        raise
    except RunError as e:
        rec["error"] = str(e)
        tail = server.output_tail() if server else ""
        log(f"    run failed: {e}" + (f"\n    server output:\n{tail}" if tail else ""))
    finally:
        if server is not None:
            server.stop()
        if os.path.exists(ssd_file) and not args.keep:
            os.remove(ssd_file)
    rec["stats"] = snapshots
    title = f"{side} pair {pair + 1} {kind} run: " + (
        "ssd_* stats" if side == "strata" else "extstore stats")
    print_stats_table(title, snapshots)
    return rec


# ---------------------------------------------------------------------------------------
# Report

RUN_COLUMNS = {
    "fast": [("load_sets_per_s", "load sets/s", "{:.0f}"), ("curr_items", "curr_items", "{:.0f}"),
             ("items_on_ssd", "on SSD", "{:.0f}"), ("kept_share", "kept %", "{:.1%}"),
             ("probe_bad", "bad", "{:.0f}"), ("probe_s", "probe s", "{:.1f}")],
    "paced": [("load_sets_per_s", "load sets/s", "{:.0f}"),
              ("items_on_ssd", "on SSD", "{:.0f}"),
              ("ops_per_s", "gets/s", "{:.0f}"), ("hit_share", "hit %", "{:.1%}"),
              ("ssd_share", "SSD %", "{:.1%}"), ("ssd_hits_per_s", "SSD hits/s", "{:.0f}"),
              ("p50_us", "p50 us", "{:.0f}"), ("p99_us", "p99 us", "{:.0f}"),
              ("cpu_us_per_req", "cpu us/req", "{:.2f}"),
              ("cpu_us_per_ssd_hit", "cpu us/SSD hit", "{:.2f}"),
              ("rss_load_mb", "RSS MB", "{:.1f}"),
              ("rss_b_per_ssd_item", "RSS B/SSD item", "{:.1f}"),
              ("index_b_per_item", "index B/item", "{:.1f}"),
              ("slab_hdr_b_per_item", "slab hdr B/item", "{:.1f}"),
              ("dev_bytes_per_demoted", "dev B/demoted B", "{:.3f}"),
              ("page_cache_share_end", "page cache %", "{:.1%}"),
              ("o_direct", "O_DIRECT", "{}"), ("loadgen_cpu_pct", "lg cpu %", "{:.0f}"),
              ("errors", "errors", "{:.0f}")],
}


def print_table(headers, rows, indent="  "):
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    out(indent + "  ".join(h.rjust(w) for h, w in zip(headers, widths)))
    for r in rows:
        out(indent + "  ".join(c.rjust(w) for c, w in zip(r, widths)))


def print_runs(kind, runs):
    cols = RUN_COLUMNS[kind]
    rows = []
    for r in runs:
        if r["kind"] != kind:
            continue
        if r["ok"]:
            rows.append([str(r["pair"] + 1), r["server"]] + [fmt(s, r.get(k)) for k, _, s in cols])
        else:
            rows.append([str(r["pair"] + 1), r["server"], "FAILED"] + [""] * (len(cols) - 1))
    for side in SIDES:
        ok = [r for r in runs if r["kind"] == kind and r["server"] == side and r["ok"]]
        if ok:
            rows.append(["median", side] + [
                fmt(s, median([r.get(k) for r in ok]) if not isinstance(ok[0].get(k), bool)
                    else ok[0].get(k)) for k, _, s in cols])
    print_table(["pair", "server"] + [t for _, t, _ in cols], rows)


def summarize(runs, fio_main):
    def med(side, kind, key):
        return median([r.get(key) for r in runs
                       if r["server"] == side and r["kind"] == kind and r["ok"]])

    def pair_ratio(key):
        vals = []
        pairs = {}
        for r in runs:
            if r["kind"] == "paced" and r["ok"]:
                pairs.setdefault(r["pair"], {})[r["server"]] = r
        for p in pairs.values():
            if len(p) == 2:
                vals.append(ratio(p["strata"].get(key), p["memcached"].get(key)))
        return median(vals)

    s = {side: {k: med(side, kind, k) for kind in ("fast", "paced")
                for k, _, _ in RUN_COLUMNS[kind] if k != "o_direct"} for side in SIDES}
    for side in SIDES:
        s[side]["kept_share"] = med(side, "fast", "kept_share")
        s[side]["kept_share_paced"] = med(side, "paced", "hit_share")
        s[side]["rss_b_per_ssd_item"] = med(side, "paced", "rss_b_per_ssd_item")
        s[side]["load_sets_per_s_fast"] = med(side, "fast", "load_sets_per_s")
    s["ratio_ssd_hits_per_s"] = pair_ratio("ssd_hits_per_s")
    s["ratio_p99"] = pair_ratio("p99_us")
    s["fio_iops"] = fio_main
    return s


def verdict(ok):
    return "-" if ok is None else ("PASS" if ok else "FAIL")


def print_targets(s, args):
    st, mc = s["strata"], s["memcached"]
    fio = s["fio_iops"]
    hits_s = st.get("ssd_hits_per_s")
    rows = []

    def row(target, strata, memc, other, ok):
        rows.append([target, strata, memc, other, verdict(ok)])

    row("keeps >= 95% of items, fast load (probe)", fmt("{:.1%}", st["kept_share"]),
        fmt("{:.1%}", mc["kept_share"]), "", None if st["kept_share"] is None
        else st["kept_share"] >= 0.95)
    row(f"  (hit share after a {args.load_rate}/s load)", fmt("{:.1%}", st["kept_share_paced"]),
        fmt("{:.1%}", mc["kept_share_paced"]), "", None)
    r = s["ratio_ssd_hits_per_s"]
    row("SSD hits/s >= 1.5x extstore's", fmt("{:.0f}", hits_s),
        fmt("{:.0f}", mc.get("ssd_hits_per_s")), "ratio " + fmt("{:.2f}", r),
        None if r is None else r >= 1.5)
    fr = ratio(hits_s, fio)
    row(f"SSD hits/s >= 70% of fio IOPS at QD{args.qd}", fmt("{:.0f}", hits_s), "",
        f"fio {fmt('{:.0f}', fio)}, " + fmt("{:.0%}", fr), None if fr is None else fr >= 0.7)
    rp = s["ratio_p99"]
    row("p99 lower than extstore's (us)", fmt("{:.0f}", st.get("p99_us")),
        fmt("{:.0f}", mc.get("p99_us")), "ratio " + fmt("{:.2f}", rp),
        None if rp is None else rp < 1)
    db = st.get("dev_bytes_per_demoted")
    row("device bytes per demoted byte <= 1.1", fmt("{:.3f}", db), "", "",
        None if db is None else db <= 1.1)
    ib = st.get("index_b_per_item")
    row("index bytes per SSD item <= 16", fmt("{:.1f}", ib),
        fmt("{:.1f}", mc.get("slab_hdr_b_per_item")) + " (slab hdr)", "",
        None if ib is None else ib <= 16)
    row("  RSS per SSD item, (RSS-idle-RAM)/on SSD", fmt("{:.1f}", st.get("rss_b_per_ssd_item")),
        fmt("{:.1f}", mc.get("rss_b_per_ssd_item")), "extstore ~186 (issue)", None)
    row("  server CPU us per SSD hit", fmt("{:.2f}", st.get("cpu_us_per_ssd_hit")),
        fmt("{:.2f}", mc.get("cpu_us_per_ssd_hit")), "extstore ~20 (issue)", None)
    print_table(["target", "strata", "memcached-extstore", "reference", "verdict"], rows)
    share = st.get("ssd_share")
    if share is not None and share < 0.5:
        out(f"  note: strata served only {share:.1%} of the gets from SSD (it kept "
            f"{fmt('{:.0f}', st.get('items_on_ssd'))} items there; see ssd_admissions_rejected* "
            "above): the throughput, p99 and CPU rows then measure RAM misses, not its SSD "
            "path. `--strata-ssd-set admission=all` shows the SSD path alone.")


# ---------------------------------------------------------------------------------------
# Main

def fs_type(path):
    """The type of the file system holding `path` (longest mount point prefix)."""
    path = os.path.realpath(path)
    best, kind = "", None
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            mnt = parts[1].replace("\\040", " ")
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, kind = mnt, parts[2]
    return kind, best



def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n", 2)[2])
    p.add_argument("--dir", default=os.path.join(REPO, "var", "ssd-bench"),
                   help="folder for the 2 GiB files, on a real file system (not tmpfs); "
                        "default var/ssd-bench in the repo")
    p.add_argument("--keep", action="store_true", help="keep the files at the end")
    p.add_argument("--strata-bin", default=None, help="default build*/proxy/strata")
    p.add_argument("--memcached-bin", default="/usr/bin/memcached")
    p.add_argument("--loadgen-bin", default=None, help="default build*/bench/strata_loadgen")
    p.add_argument("--fio-bin", default=shutil.which("fio") or "fio")
    p.add_argument("--skip-strata", action="store_true")
    p.add_argument("--skip-memcached", action="store_true")
    p.add_argument("--skip-fio", action="store_true")
    p.add_argument("--pairs", type=int, default=2, help="strata/memcached pairs (2)")
    p.add_argument("--duration", type=parse_seconds, default=15.0,
                   help="measured get phase per paced run (15s)")
    p.add_argument("--keys", type=int, default=250_000)
    p.add_argument("--value-size", type=int, default=4096)
    p.add_argument("--ram-mb", type=int, default=64, help="-m for both servers (64)")
    p.add_argument("--ssd-size", type=parse_size, default=2 * GiB,
                   help="SSD tier and fio file size (2GiB)")
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--pipeline", type=int, default=16)
    p.add_argument("--load-rate", type=int, default=10_000,
                   help="sets/s of the paced preload, both servers (10000; 0 = unthrottled)")
    p.add_argument("--qd", type=int, default=32, help="fio queue depth the targets use (32)")
    p.add_argument("--fio-qds", default="16,32,64", help="fio queue depths to report")
    p.add_argument("--fio-runtime", type=parse_seconds, default=8.0, help="per depth (8s)")
    p.add_argument("--page-cache", choices=("drop", "keep"), default="drop",
                   help="drop the servers' files from the page cache before and during the "
                        "measured gets (default), or keep it (memcached then reads RAM)")
    p.add_argument("--drop-interval", type=parse_seconds, default=0.1)
    p.add_argument("--memcached-ext-opts",
                   default="slab_automove=2,slab_automove_freeratio=0.10",
                   help="extra -o options for memcached's extstore, after ext_path (default: "
                        "the slab mover settings that let it keep ~90%% of a 10k/s load); "
                        "ext_threads=--qd is added unless given; '' for memcached's defaults")
    p.add_argument("--memcached-args", default="", help="extra memcached arguments")
    p.add_argument("--compressible-values", action="store_true",
                   help="use strata_loadgen's default filler (LZ4 shrinks it ~60x) instead of "
                        "--random-values (incompressible)")
    p.add_argument("--strata-ssd-set", action="append", default=[], metavar="KEY=VALUE",
                   help="a tiers.ssd setting for strata, e.g. admission=all or "
                        "compression=none (repeatable); written to a YAML file given with -C")
    p.add_argument("--strata-args", default="", help="extra strata arguments, e.g. "
                                                     "'--ssd-io threadpool'")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--loadgen-cpu", type=int, default=1)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--key-prefix", default="key:")
    p.add_argument("--settle", type=parse_seconds, default=1.0,
                   help="pause after start and after each load (1s)")
    p.add_argument("--start-timeout", type=parse_seconds, default=30.0)
    p.add_argument("--load-timeout", type=parse_seconds, default=120.0,
                   help="slack over keys/rate for a preload")
    p.add_argument("--run-timeout", type=parse_seconds, default=30.0,
                   help="slack over --duration for the measured gets")
    p.add_argument("--probe-batch", type=int, default=100, help="keys per multi-get of the probe")
    p.add_argument("--probe-timeout", type=parse_seconds, default=120.0)
    p.add_argument("--time-budget", type=parse_seconds, default=540.0,
                   help="start no new pair that would end after this (540s)")
    p.add_argument("--json-out", default=None, help="write every figure here")
    args = p.parse_args(argv)

    args.loadgen_bin = args.loadgen_bin or find_binary("bench", "strata_loadgen")
    args.strata_bin = args.strata_bin or find_binary("proxy", "strata")
    args.fio_qds = sorted({int(q) for q in args.fio_qds.split(",") if q.strip()} | {args.qd})
    if args.pairs < 1:
        p.error("--pairs must be at least 1")
    need = [("--loadgen-bin", args.loadgen_bin)]
    if not args.skip_memcached:
        need.append(("--memcached-bin", args.memcached_bin))
    for flag, path in need:
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            p.error(f"{flag}: {path} is not an executable file")
    if not args.skip_strata and not (os.path.isfile(args.strata_bin)
                                     and os.access(args.strata_bin, os.X_OK)):
        log(f"ssd_bench: strata binary {args.strata_bin} not found; strata is skipped "
            "(build it, or pass --strata-bin)")
        args.skip_strata = True
    if shutil.which("taskset") is None:
        p.error("taskset not found (util-linux)")
    return args


def check_dir(args):
    os.makedirs(args.dir, exist_ok=True)
    kind, mnt = fs_type(args.dir)
    if kind in ("tmpfs", "ramfs", "devtmpfs"):
        sys.exit(f"ssd_bench: {args.dir} is on {kind} ({mnt}): O_DIRECT and flash figures need "
                 "a real file system; pass --dir on one")
    st = os.statvfs(args.dir)
    free = st.f_bavail * st.f_frsize
    need = 2 * args.ssd_size + 256 * MiB  # fio's file + one server's file at a time
    if free < need:
        sys.exit(f"ssd_bench: {args.dir} has {free / GiB:.1f} GiB free, needs {need / GiB:.1f}")
    return kind, mnt


def main(argv):
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    atexit.register(stop_all)
    kind, mnt = check_dir(args)
    workdir = os.path.realpath(args.dir)
    t_start = time.monotonic()
    try:  # the script's own work (probe, page cache) stays off the server's CPU
        os.sched_setaffinity(0, {args.loadgen_cpu})
    except OSError:
        pass

    out(f"ssd_bench: {args.keys} x {args.value_size} B values "
        f"({args.keys * args.value_size / GiB:.2f} GiB), RAM {args.ram_mb} MiB, SSD "
        f"{fmt_size(args.ssd_size)} in {workdir} ({kind} on {mnt}); "
        f"{args.connections} conns x pipeline {args.pipeline}, gets for {args.duration:g} s; "
        f"server on CPU {args.server_cpu}, loadgen on CPU {args.loadgen_cpu}; "
        f"paced load {args.load_rate} sets/s; page cache: {args.page_cache}")
    result = {"config": {k: v for k, v in vars(args).items()},
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "fs": kind, "fio": [],
              "runs": []}
    fio_file = os.path.join(workdir, "fio.dat")
    fio_ok = False
    runs = []
    sides = [s for s in SIDES if not getattr(args, f"skip_{s}")]
    try:
        # (a) fio
        if args.skip_fio:
            out("fio: skipped (--skip-fio)")
        elif not shutil.which(args.fio_bin):
            out(f"fio: not found ({args.fio_bin}); install it with `apt-get install -y fio` "
                "to get the physical limit. Going on without it.")
        else:
            try:
                log(f"ssd_bench: fio: laying out {fmt_size(args.ssd_size)} in {fio_file}")
                fio_layout(args, fio_file)
                for qd in args.fio_qds:
                    log(f"ssd_bench: fio randread QD{qd} for {args.fio_runtime:g} s")
                    result["fio"].append(dict(fio_randread(args, fio_file, qd), when="start"))
                fio_ok = True
            except RunError as e:
                out(f"fio: failed: {e}")

        # (b) and (c), alternating
        pair_s = None
        for pair in range(args.pairs):
            elapsed = time.monotonic() - t_start
            if pair > 0 and pair_s and elapsed + pair_s > args.time_budget:
                out(f"ssd_bench: stopping after {pair} pair(s): another would pass the "
                    f"{args.time_budget:.0f} s budget (--time-budget)")
                break
            t_pair = time.monotonic()
            order = sides if pair % 2 == 0 else sides[::-1]
            for side in order:
                if side == "strata" and args.skip_strata:
                    continue
                for kind_ in ("fast", "paced"):
                    log(f"ssd_bench: pair {pair + 1}/{args.pairs} {side} {kind_} run")
                    try:
                        rec = one_run(side, kind_, args, pair, workdir)
                    except StrataRejected as e:
                        out(f"\nstrata: REJECTED the SSD flags or failed to start; strata is "
                            f"skipped, fio and memcached go on.\n  {e}")
                        result["strata_rejected"] = str(e)
                        args.skip_strata = True
                        break
                    runs.append(rec)
            pair_s = time.monotonic() - t_pair

        # fio again at the end, at the target depth: the machine drifts.
        if fio_ok:
            try:
                log(f"ssd_bench: fio randread QD{args.qd} again")
                result["fio"].append(dict(fio_randread(args, fio_file, args.qd), when="end"))
            except RunError as e:
                out(f"fio (end): failed: {e}")
    finally:
        stop_all()
        if not args.keep:
            for f in [fio_file, os.path.join(workdir, "strata-ssd.yaml")] + \
                    [os.path.join(workdir, f"{s}.ssd{ext}") for s in SIDES
                     for ext in ("", ".hot", ".sketch")]:
                if os.path.exists(f):
                    os.remove(f)

    # Report
    result["runs"] = runs
    out()
    if result["fio"]:
        out(f"== (a) fio: 4 KiB randread, io_uring, O_DIRECT, {fmt_size(args.ssd_size)} file, "
            f"pinned to CPU {args.server_cpu}, {args.fio_runtime:g} s per depth")
        print_table(["when", "QD", "IOPS", "p50 us", "p99 us", "cpu %", "cpu us/IO"],
                    [[f["when"], str(f["qd"]), fmt("{:.0f}", f["iops"]),
                      fmt("{:.0f}", f["p50_us"]), fmt("{:.0f}", f["p99_us"]),
                      fmt("{:.0f}", f["cpu_pct"]), fmt("{:.2f}", f["cpu_us_per_io"])]
                     for f in result["fio"]])
    fio_main = median([f["iops"] for f in result["fio"] if f["qd"] == args.qd])
    if runs:
        out()
        out(f"== (b)/(c) fast runs: unthrottled load of every key, then a probe that gets "
            f"every key once (kept = probe hits / {args.keys})")
        print_runs("fast", runs)
        out()
        out(f"== (b)/(c) paced runs: load at {args.load_rate} sets/s, then uniform gets over "
            f"{args.keys} keys, {args.connections} conns x pipeline {args.pipeline}, "
            f"{args.duration:g} s")
        print_runs("paced", runs)
        cmds = {}
        for r in runs:
            cmds.setdefault(r["server"], r.get("command"))
        for side, cmd in cmds.items():
            out(f"  {side}: {cmd}")
    if result.get("strata_rejected"):
        out("\n  strata: not measured (it rejected the SSD flags or did not start; see above)")
    summary = summarize(runs, fio_main)
    result["summary"] = summary
    out()
    out("== targets (issue 3), medians over pairs; ratios are medians of per-pair ratios")
    print_targets(summary, args)
    failed = [r for r in runs if not r["ok"]]
    if failed:
        out(f"\n{len(failed)} run(s) FAILED: " + "; ".join(
            f"{r['server']} pair {r['pair'] + 1} {r['kind']}: {r.get('error', '?').splitlines()[0]}"
            for r in failed))
    out(f"\nssd_bench: done in {time.monotonic() - t_start:.0f} s")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(result, f, indent=2, default=str)
            f.write("\n")
        log(f"ssd_bench: wrote {args.json_out}")
    return 1 if failed or result.get("strata_rejected") else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)
