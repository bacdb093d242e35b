#!/usr/bin/python3
"""Runs strata and memcached side by side on the same load and compares them.

For every load profile, runs alternate strata, memcached, strata, memcached, ... (--pairs
pairs), each against a freshly started server with one worker thread pinned to one CPU
while strata_loadgen runs pinned to another. Each run:

  1. starts the server on a free port and waits until it accepts connections;
  2. reads its idle RSS;
  3. preloads every key (strata_loadgen --warmup-only);
  4. reads RSS after warmup and the server's CPU time (utime + stime, /proc/PID/stat);
  5. runs the measured load (strata_loadgen --duration D);
  6. reads the server's CPU time and RSS again, then stops the server (SIGTERM, then
     SIGKILL) and waits for it.

It prints every run, the median of each figure per server and the median over pairs of
the ratio strata/memcached. Standard library only; runs under /usr/bin/python3.

Example (both sides memcached, to check the tooling):
  bench/compare.py --strata-bin /usr/bin/memcached --profiles small-p1,small-p16 \\
      --pairs 3 --duration 2s
"""

import argparse
import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (REPO, RunError, find_binary, fmt, free_port, log, median,  # noqa: E402
                      parse_seconds, pinned, read_cpu_s, read_rss_kb, stop_all, stop_proc,
                      track)
from benchlib import run_loadgen as run_loadgen_cmd  # noqa: E402
from benchlib import connect, server_stats  # noqa: E402


# Load profiles. memory_mb is what both servers get with -m; key counts are chosen so
# every key fits with room to spare (no evictions), which compare.py checks via `stats`
# when the server answers it.
PROFILES = {
    "small-p1": dict(keys=100_000, value_size=100, connections=50, pipeline=1,
                     get_ratio=0.9, memory_mb=1024, item_max=None),
    "small-p16": dict(keys=100_000, value_size=100, connections=50, pipeline=16,
                      get_ratio=0.9, memory_mb=1024, item_max=None),
    # Gets only, every one a hit, as `get <key>` and as memcached's meta get
    # `mg <key> v` (-mg): what each costs (run them in one invocation to compare).
    "hits-p1": dict(keys=100_000, value_size=100, connections=50, pipeline=1,
                    get_ratio=1.0, memory_mb=1024, item_max=None),
    "hits-p16": dict(keys=100_000, value_size=100, connections=50, pipeline=16,
                     get_ratio=1.0, memory_mb=1024, item_max=None),
    "hits-p1-mg": dict(keys=100_000, value_size=100, connections=50, pipeline=1,
                       get_ratio=1.0, memory_mb=1024, item_max=None, meta_gets=True),
    "hits-p16-mg": dict(keys=100_000, value_size=100, connections=50, pipeline=16,
                        get_ratio=1.0, memory_mb=1024, item_max=None, meta_gets=True),
    # 8000 x 64 KiB = 500 MiB of values in 1 GiB.
    "large-64k": dict(keys=8_000, value_size=64 << 10, connections=50, pipeline=1,
                      get_ratio=0.9, memory_mb=1024, item_max=None),
    # 400 x 1 MiB = 400 MiB of values in 1 GiB; items over 1 MiB need -I 2m.
    "large-1m": dict(keys=400, value_size=1 << 20, connections=20, pipeline=1,
                     get_ratio=0.9, memory_mb=1024, item_max="2m"),
}

SIDES = ("strata", "memcached")

# Figures summarised per server: (key, column title, format).
FIGURES = [
    ("ops_per_s", "ops/s", "{:.0f}"),
    ("p50_us", "p50 us", "{:.1f}"),
    ("p99_us", "p99 us", "{:.1f}"),
    ("cpu_s", "srv cpu s", "{:.2f}"),
    ("cpu_us_per_req", "cpu us/req", "{:.2f}"),
    ("rss_idle_mb", "idle MB", "{:.1f}"),
    ("rss_warm_mb", "warm MB", "{:.1f}"),
    ("rss_end_mb", "end MB", "{:.1f}"),
    ("rss_per_item_b", "RSS/item B", "{:.0f}"),
    ("loadgen_cpu_pct", "lg cpu %", "{:.0f}"),
]


def stat_int(stats, name):
    try:
        return int(stats[name])
    except (KeyError, ValueError):
        return None



def start_server(side, binary, profile, args, port, log_file):
    """Starts `binary` on 127.0.0.1:`port`, or when `port` is a path, on that
    unix socket only (memcached's -s disables TCP; strata is given the
    same)."""
    if isinstance(port, str):
        argv = [binary, "-s", port, "-a", "0700"]
        if side == "strata":  # strata's -s adds a socket; its TCP port must be free
            argv += ["-p", str(free_port()), "-l", "127.0.0.1"]
    else:
        argv = [binary, "-p", str(port), "-l", "127.0.0.1"]
    argv += ["-m", str(profile["memory_mb"]),
             "-t", str(args.server_threads), "-c", str(max(1024, 2 * profile["connections"]))]
    if profile["item_max"]:
        argv += ["-I", profile["item_max"]]
    # memcached refuses to run as root without -u.
    if os.path.basename(binary).startswith("memcached") and os.geteuid() == 0:
        argv += ["-u", "root"]
    argv += (args.strata_args if side == "strata" else args.memcached_args).split()
    cmd = pinned(args.server_cpu, argv)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_file,
                            stderr=subprocess.STDOUT)
    track(proc)
    deadline = time.monotonic() + args.start_timeout
    while True:
        if proc.poll() is not None:
            stop_proc(proc)
            raise RunError(f"{side} exited with status {proc.returncode} at start: "
                           f"{' '.join(cmd)}")
        try:
            connect(port, 0.5).close()
            return proc, cmd
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop_proc(proc)
            raise RunError(f"{side} did not accept connections within "
                           f"{args.start_timeout:.0f} s: {' '.join(cmd)}")
        time.sleep(0.05)



def unix_socket_path(args):
    """A fresh unix socket path in a private directory."""
    if not getattr(args, "socket_dir", None):
        args.socket_dir = tempfile.mkdtemp(prefix="compare-sock-")
        atexit.register(shutil.rmtree, args.socket_dir, True)
    path = os.path.join(args.socket_dir, "s.sock")
    if os.path.exists(path):
        os.unlink(path)
    return path


def run_loadgen(args, port, profile, extra, timeout):
    """Runs strata_loadgen; returns (its JSON dict, its CPU seconds)."""
    where = (["--unix-socket", port] if isinstance(port, str)
             else ["--host", "127.0.0.1", "--port", str(port)])
    argv = [args.loadgen_bin] + where + [
            "--connections", str(profile["connections"]), "--threads", str(args.loadgen_threads),
            "--pipeline", str(profile["pipeline"]), "--keys", str(profile["keys"]),
            "--value-size", str(profile["value_size"]),
            "--get-ratio", str(profile["get_ratio"]), "--key-prefix", args.key_prefix] + extra
    if profile.get("meta_gets") and "--warmup-only" not in extra:
        argv.append("--meta-gets")
    return run_loadgen_cmd(pinned(args.loadgen_cpu, argv), timeout, indent="  ")


def one_run(side, binary, name, profile, args, pair):
    record = {"profile": name, "pair": pair, "server": side, "binary": binary, "ok": False}
    with tempfile.TemporaryFile(mode="w+") as server_log:
        proc = None
        try:
            for attempt in range(3):  # the free port may be taken meanwhile
                port = unix_socket_path(args) if args.unix_socket else free_port()
                try:
                    proc, cmd = start_server(side, binary, profile, args, port, server_log)
                    break
                except RunError:
                    if attempt == 2:
                        raise
            record["command"] = " ".join(cmd)
            time.sleep(args.settle)
            pid = proc.pid
            rss_idle = read_rss_kb(pid)

            warm_timeout = args.warmup_timeout
            warm, _ = run_loadgen(args, port, profile, ["--warmup-only", "--seed", "1"],
                                  warm_timeout)
            if warm["warmup_errors"]:
                log(f"  warning: {warm['warmup_errors']} errors while preloading")
            time.sleep(args.settle)
            rss_warm = read_rss_kb(pid)
            stats_warm = server_stats(port, timeout=2.0)
            cpu0 = read_cpu_s(pid)

            seed = args.seed + pair
            load, lg_cpu = run_loadgen(
                args, port, profile, ["--duration", f"{args.duration}s", "--seed", str(seed)],
                args.duration + args.run_timeout)

            cpu1 = read_cpu_s(pid)
            rss_end = read_rss_kb(pid)
            stats_end = server_stats(port, timeout=2.0)
            if proc.poll() is not None:
                raise RunError(f"{side} exited during the run (status {proc.returncode})")

            items = stat_int(stats_warm, "curr_items")
            items_source = "stats"
            if not items:
                items, items_source = profile["keys"], "keys"
            cpu = cpu1 - cpu0
            ops = load["ops"]
            record.update({
                "ok": True,
                "ops_per_s": load["ops_per_s"],
                "ops": ops,
                "p50_us": load["p50_us"],
                "p90_us": load["p90_us"],
                "p99_us": load["p99_us"],
                "p999_us": load["p999_us"],
                "duration_s": load["duration_s"],
                "hits": load["hits"],
                "misses": load["misses"],
                "errors": load["errors"],
                "warmup_s": warm["warmup_s"],
                "warmup_errors": warm["warmup_errors"],
                "cpu_s": cpu,
                "cpu_us_per_req": cpu * 1e6 / ops if ops else None,
                "rss_idle_mb": rss_idle / 1024,
                "rss_warm_mb": rss_warm / 1024,
                "rss_end_mb": rss_end / 1024,
                "items": items,
                "items_source": items_source,
                "rss_per_item_b": (rss_warm - rss_idle) * 1024 / items,
                "evictions": stat_int(stats_end, "evictions"),
                "loadgen_cpu_s": lg_cpu,
                "loadgen_cpu_pct": 100 * lg_cpu / load["duration_s"] if load["duration_s"] else None,
            })
        except RunError as e:
            record["error"] = str(e)
            server_log.seek(0)
            tail = server_log.read()[-2000:]
            log(f"  run failed: {e}" + (f"\n  server output:\n{tail}" if tail else ""))
        finally:
            if proc is not None:
                stop_proc(proc)
    return record



def summarize(name, runs):
    summary = {"median": {}, "ratio": {}}
    for side in SIDES:
        ok = [r for r in runs if r["server"] == side and r["ok"]]
        summary["median"][side] = {key: median([r.get(key) for r in ok]) for key, _, _ in FIGURES}
        summary["median"][side]["runs_ok"] = len(ok)
    # Median over pairs of strata/memcached: neighbours in time share the machine's mood.
    pairs = {}
    for r in runs:
        if r["ok"]:
            pairs.setdefault(r["pair"], {})[r["server"]] = r
    for key, _, _ in FIGURES:
        ratios = []
        for p in pairs.values():
            if len(p) == 2:
                a, b = p["strata"].get(key), p["memcached"].get(key)
                if a is not None and b:
                    ratios.append(a / b)
        summary["ratio"][key] = median(ratios)
    return summary


def print_profile(name, profile, args, runs, summary):
    print()
    print(f"== {name}: {profile['keys']} keys, {profile['value_size']} B values, "
          f"get ratio {profile['get_ratio']}, {profile['connections']} conns x pipeline "
          f"{profile['pipeline']}, -m {profile['memory_mb']}"
          + (f" -I {profile['item_max']}" if profile["item_max"] else "")
          + f", {args.duration:g} s per run")
    headers = ["pair", "server"] + [title for _, title, _ in FIGURES] + ["errors"]
    rows = []
    for r in runs:
        if r["ok"]:
            rows.append([str(r["pair"] + 1), r["server"]]
                        + [fmt(spec, r.get(key)) for key, _, spec in FIGURES]
                        + [str(r["errors"] + r["warmup_errors"])])
        else:
            rows.append([str(r["pair"] + 1), r["server"], "FAILED"] + [""] * (len(FIGURES)))
    for side in SIDES:
        m = summary["median"][side]
        rows.append(["median", side] + [fmt(spec, m[key]) for key, _, spec in FIGURES] + [""])
    rows.append(["ratio", "s/m"] + [fmt("{:.3f}", summary["ratio"][key]) for key, _, _ in FIGURES]
                + [""])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths)))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
    evictions = [r for r in runs if r["ok"] and r.get("evictions")]
    if evictions:
        print(f"  warning: {len(evictions)} run(s) evicted items: the key set did not fit")
    busy = [r for r in runs if r["ok"] and (r.get("loadgen_cpu_pct") or 0) > 90]
    if busy:
        print(f"  note: the load generator used > 90% of its CPU in {len(busy)} run(s); "
              "throughput may be bounded by the client, compare CPU us/req instead")
    sys.stdout.flush()



def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="profiles: " + ", ".join(PROFILES))
    p.add_argument("--strata-bin", default=os.path.join(REPO, "build", "proxy", "strata"))
    p.add_argument("--memcached-bin", default="/usr/bin/memcached")
    p.add_argument("--loadgen-bin", default=None,
                   help="default: build/bench/strata_loadgen (or build*/bench/) in the repo")
    p.add_argument("--profiles", default="small-p1,small-p16,large-64k,large-1m",
                   help="comma-separated profile names")
    p.add_argument("--pairs", type=int, default=3, help="strata/memcached pairs per profile")
    p.add_argument("--duration", type=parse_seconds, default=10.0,
                   help="measured phase per run, e.g. 10s (default 10s)")
    p.add_argument("--server-cpu", type=int, default=0, help="CPU the server is pinned to")
    p.add_argument("--loadgen-cpu", type=int, default=1, help="CPU the load generator is pinned to")
    p.add_argument("--no-pin", action="store_true", help="do not use taskset")
    p.add_argument("--server-threads", type=int, default=1, help="-t given to both servers")
    p.add_argument("--loadgen-threads", type=int, default=1)
    p.add_argument("--memory-mb", type=int, default=None, help="override -m for every profile")
    p.add_argument("--strata-args", default="", help="extra arguments for strata")
    p.add_argument("--memcached-args", default="", help="extra arguments for memcached")
    p.add_argument("--seed", type=int, default=42, help="pair i uses seed + i on both servers")
    p.add_argument("--key-prefix", default="key:")
    p.add_argument("--settle", type=parse_seconds, default=0.5,
                   help="pause after start and after warmup before reading RSS (0.5s)")
    p.add_argument("--start-timeout", type=parse_seconds, default=10.0)
    p.add_argument("--warmup-timeout", type=parse_seconds, default=180.0)
    p.add_argument("--run-timeout", type=parse_seconds, default=60.0,
                   help="slack over --duration before a measured run is killed")
    p.add_argument("--json-out", default=None, help="write all runs and summaries here")
    p.add_argument("--interleave", action="store_true",
                   help="run pair by pair across the profiles (a drifting load weighs on all)")
    p.add_argument("--unix-socket", action="store_true",
                   help="servers listen on a unix socket (-s) and the load generator uses it")
    args = p.parse_args(argv)

    args.loadgen_bin = args.loadgen_bin or find_binary("bench", "strata_loadgen")
    args.profiles = [s.strip() for s in args.profiles.split(",") if s.strip()]
    unknown = [s for s in args.profiles if s not in PROFILES]
    if unknown:
        p.error(f"unknown profile(s) {', '.join(unknown)}; known: {', '.join(PROFILES)}")
    if args.pairs < 1:
        p.error("--pairs must be at least 1")
    for flag, path in (("--strata-bin", args.strata_bin), ("--memcached-bin", args.memcached_bin),
                       ("--loadgen-bin", args.loadgen_bin)):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            p.error(f"{flag}: {path} is not an executable file")
    if args.no_pin:
        args.server_cpu = args.loadgen_cpu = None
    elif shutil.which("taskset") is None:
        p.error("taskset not found (util-linux); use --no-pin")
    return args


def main(argv):
    args = parse_args(argv)
    # SIGTERM (e.g. from a CI timeout) unwinds like Ctrl-C so servers are stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    atexit.register(stop_all)

    binaries = {"strata": args.strata_bin, "memcached": args.memcached_bin}
    runs_total = len(args.profiles) * args.pairs * 2
    log(f"compare: {runs_total} runs of {args.duration:g} s (plus start and warmup) "
        f"with {args.loadgen_bin}")
    out = {
        "config": {
            "strata_bin": args.strata_bin, "memcached_bin": args.memcached_bin,
            "loadgen_bin": args.loadgen_bin, "pairs": args.pairs, "duration_s": args.duration,
            "server_cpu": args.server_cpu, "loadgen_cpu": args.loadgen_cpu,
            "server_threads": args.server_threads, "loadgen_threads": args.loadgen_threads,
            "seed": args.seed, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": os.uname().nodename, "cpus": os.cpu_count(),
        },
        "profiles": {},
    }
    failed = 0
    try:
        profiles = {}
        for name in args.profiles:
            profiles[name] = dict(PROFILES[name])
            if args.memory_mb:
                profiles[name]["memory_mb"] = args.memory_mb
        runs = {name: [] for name in args.profiles}

        def report(name):
            summary = summarize(name, runs[name])
            print_profile(name, profiles[name], args, runs[name], summary)
            out["profiles"][name] = {"params": profiles[name], "runs": runs[name], **summary}

        # --interleave: pair by pair across the profiles, so that a machine
        # whose load drifts over minutes weighs on every profile alike.
        order = ([(pair, name) for pair in range(args.pairs) for name in args.profiles]
                 if args.interleave else
                 [(pair, name) for name in args.profiles for pair in range(args.pairs)])
        for pair, name in order:
            for side in SIDES:
                log(f"compare: {name} pair {pair + 1}/{args.pairs} {side}")
                r = one_run(side, binaries[side], name, profiles[name], args, pair)
                failed += not r["ok"]
                runs[name].append(r)
            if not args.interleave and pair == args.pairs - 1:
                report(name)
        if args.interleave:
            for name in args.profiles:
                report(name)
    finally:
        stop_all()
        if args.json_out:
            with open(args.json_out, "w") as f:
                json.dump(out, f, indent=2)
                f.write("\n")
            log(f"compare: wrote {args.json_out}")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)
