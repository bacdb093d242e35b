#!/usr/bin/python3
"""Peak RSS of strata against the Helm chart's memory formula (issue 21).

For each configuration (RAM tier, SSD tier or none, connections) it starts
strata, runs tests/integration/memload.py's load (1 GiB of values of
100 B-500 KiB, log-uniform, over writers, readers, and misbehaving
connections that never read, stall a data block or send an endless line),
and prints peak RSS (VmHWM) next to the chart's formula
(tests/integration/memory_formula.py) for that configuration. With 10
connections the mix is 4 writers, 4 readers, 1 non-reader and 1 stalled
store.

    bench/rss_ceiling.py                      # the README's table
    bench/rss_ceiling.py --config 64:0:1000   # RAM MiB : SSD MiB : connections

Needs a built strata (build/proxy/strata or --strata) and a disk (not tmpfs)
for the SSD file: --ssd-dir, default next to the binary.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import memload  # noqa: E402
import memory_formula  # noqa: E402

DEFAULT_CONFIGS = ["64:0:10", "64:0:1000", "64:256:10", "64:256:1000",
                   "256:0:10", "256:0:1000", "256:1024:10", "256:1024:1000",
                   "8:256:10", "8:256:1000"]
MAX_CONNS = 1100
WORKERS = 2


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def stats(port):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"stats\r\n")
        buf = b""
        while not buf.endswith(b"END\r\n"):
            data = s.recv(65536)
            if not data:
                break
            buf += data
    return {line.split()[1].decode(): line.split()[2].decode()
            for line in buf.split(b"\r\n") if line.startswith(b"STAT ")}


def run(strata, ssd_dir, ram_mb, ssd_mb, conns, write_bytes):
    port = free_port()
    argv = [strata, "-p", str(port), "-l", "127.0.0.1", "-m", str(ram_mb),
            "-t", str(WORKERS), "-c", str(MAX_CONNS), "--metrics-listen", "127.0.0.1:0"]
    folder = None
    if ssd_mb:
        folder = tempfile.mkdtemp(prefix="rss-ceiling-", dir=ssd_dir)
        argv += ["--ssd-path", os.path.join(folder, "cache.bin"), "--ssd-size", f"{ssd_mb}MiB"]
    log = tempfile.TemporaryFile()
    p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if p.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"strata exited: {log.read().decode()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("strata did not start")
                time.sleep(0.05)
        if conns >= 1000:
            mix = memload.Mix(write_bytes=write_bytes)
        else:
            mix = memload.Mix(writers=4, readers=4, non_readers=1, stalled_stores=1,
                              long_lines=0, write_bytes=write_bytes)
        load = memload.Load(("127.0.0.1", port), mix)
        try:
            load.connect_all()
            load.prefill_big()
            result = load.run()
            peak = proc_status(p.pid, "VmHWM")
            st = stats(port)
        finally:
            load.close_all()
        formula = memory_formula.memory_limit(ram=ram_mb << 20, workers=WORKERS,
                                              max_connections=MAX_CONNS, ssd=ssd_mb << 20)
        return dict(ram=ram_mb, ssd=ssd_mb, conns=mix.connections, peak=peak, formula=formula,
                    result=result, closed=int(st.get("connection_memory_closed", 0)),
                    stalls=int(st.get("connection_memory_stalls", 0)))
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.wait()
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strata", default=os.path.join(HERE, "..", "build", "proxy", "strata"))
    ap.add_argument("--ssd-dir", default=None,
                    help="where SSD files go (a disk; default: next to the binary)")
    ap.add_argument("--config", action="append",
                    help="RAM_MiB:SSD_MiB:CONNECTIONS (repeatable); default: the README's table")
    ap.add_argument("--write-bytes", type=int, default=1 << 30)
    args = ap.parse_args()
    strata = os.path.abspath(args.strata)
    ssd_dir = args.ssd_dir or os.path.join(os.path.dirname(strata), "ssd-test-tmp")
    os.makedirs(ssd_dir, exist_ok=True)
    print("| RAM tier | SSD tier | connections | peak RSS | chart formula | peak / formula "
          "| closed by the cap | healthy closed | bad replies |")
    print("|---|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for spec in args.config or DEFAULT_CONFIGS:
        ram, ssd, conns = (int(x) for x in spec.split(":"))
        r = run(strata, ssd_dir, ram, ssd, conns, args.write_bytes)
        ratio = r["peak"] / r["formula"]
        worst = max(worst, ratio)
        res = r["result"]
        print(f"| {ram} MiB | {f'{ssd} MiB' if ssd else 'none'} | {r['conns']} | "
              f"{r['peak'] / 2**20:.1f} MiB | {r['formula'] / 2**20:.1f} MiB | {ratio:.2f} | "
              f"{r['closed']} | {res.healthy_closed} | "
              f"{len(res.bad_replies) + len(res.errors)} |", flush=True)
    return 0 if worst <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
