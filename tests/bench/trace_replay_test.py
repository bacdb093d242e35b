#!/usr/bin/env python3
"""End-to-end test of strata_trace_replay and strata_trace_gen against a real server.

    trace_replay_test.py --replay BIN --gen BIN --trace tiny.trace --server SERVER_BIN

The server is strata or memcached (chosen by the replayer from the binary's name).
Checks, each with a deadline:
  1. tiny.trace, a cache that holds everything: the hand-computed answer in the trace's
     header (hits, misses, set hits, wire requests, the server's get_hits/get_misses),
     no wrong values;
  2. the same with --sets get, and with one connection at depth 1;
  3. the same with three connections, depth 64 and a short lookahead;
  4. two --config runs in one go print a table with both rows;
  5. the value check catches wrong bytes: values written with one seed and read back with
     another (--no-flush against a server this script started) exit with status 3;
  6. a strata_trace_gen trace in a cache that holds everything: misses = distinct keys,
     and the scan and shift figures are printed.
Every server is stopped by PID (the replayer's own, and the one started here).
Stdlib only.
"""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

TIMEOUT_S = 60

TINY_WRITE = {
    "gets": 17, "get_hits": 10, "get_misses": 7, "sets": 4, "set_hits": 2,
    "set_misses": 2, "deletes": 3, "request_miss_ratio": 9 / 21, "wire_gets": 17,
    "wire_adds": 4, "wire_sets": 9, "wire_deletes": 3, "errors": 0, "error_replies": 0,
    "objects": 8, "wss_bytes": 100501, "server_get_hits": 10, "server_get_misses": 7,
}
TINY_GET = dict(TINY_WRITE, wire_gets=21, wire_adds=0, server_get_hits=12,
                server_get_misses=9)


def run(argv, expect_rc=0):
    print("+", " ".join(argv), flush=True)
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=TIMEOUT_S)
    if p.returncode != expect_rc:
        print(p.stdout)
        raise AssertionError(f"exit status {p.returncode}, expected {expect_rc}")
    return p.stdout


def results(output):
    return [json.loads(line[5:]) for line in output.splitlines() if line.startswith("JSON ")]


def check(result, expected):
    for key, want in expected.items():
        got = result.get(key)
        if got is None or abs(got - want) > 1e-5:
            raise AssertionError(f"{key} = {got}, expected {want}: {result}")


def expect_arg(expected):
    return ",".join(f"{k}={v:.6f}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in expected.items())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server on a free port, stopped by PID."""

    def __init__(self, binary, tmp):
        self.port = free_port()
        if "memcached" in os.path.basename(binary):
            argv = [binary, "-p", str(self.port), "-l", "127.0.0.1", "-U", "0", "-m", "64"]
            if os.geteuid() == 0:
                argv += ["-u", "root"]
        else:
            conf = os.path.join(tmp, "strata.yaml")
            with open(conf, "w") as f:
                f.write("tiers:\n  ram:\n    size: 64MiB\nmetrics:\n  enabled: false\n")
            argv = [binary, "-C", conf, "-p", str(self.port), "-l", "127.0.0.1", "-t", "2"]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited: {argv}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise AssertionError(f"server did not start: {argv}")

    def stop(self):
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--replay", required=True)
    ap.add_argument("--gen", required=True)
    ap.add_argument("--trace", required=True)
    ap.add_argument("--server", required=True)
    args = ap.parse_args()
    base = [args.replay, "--trace", args.trace, "--server-bin", args.server,
            "--ram-share", "100", "--time-limit", "30s", "--timeout", "10s"]

    # 1. The hand-computed answer, checked by the replayer (--expect) and here.
    out = run(base + ["--expect", expect_arg(TINY_WRITE)])
    check(results(out)[0], TINY_WRITE)
    # 2. Sets replayed as gets; strictly one request at a time.
    out = run(base + ["--sets", "get", "--connections", "1", "--depth", "1"])
    check(results(out)[0], TINY_GET)
    # 3. Deep pipeline over three connections, short lookahead: same answer.
    out = run(base + ["--connections", "3", "--depth", "64", "--lookahead", "5"])
    check(results(out)[0], TINY_WRITE)
    # 4. Two configurations, one table.
    out = run(base + ["--config", "write: --sets write", "--config", "get: --sets get"])
    rs = results(out)
    assert [r["name"] for r in rs] == ["write", "get"], rs
    check(rs[0], TINY_WRITE)
    check(rs[1], TINY_GET)
    assert re.search(r"^write\s+tiny\s", out, re.M) and re.search(r"^get\s+tiny\s", out, re.M)

    with tempfile.TemporaryDirectory() as tmp:
        # 5. Wrong bytes are caught: write with seed 1, read back with seed 2.
        server = Server(args.server, tmp)
        try:
            ext = [args.replay, "--trace", args.trace, "--port", str(server.port),
                   "--time-limit", "30s"]
            check(results(run(ext + ["--seed", "1"]))[0], {"errors": 0})
            r = results(run(ext + ["--seed", "2", "--no-flush"], expect_rc=3))[0]
            assert r["corrupt"] > 0 and r["errors"] == r["corrupt"], r
        finally:
            server.stop()

        # 6. A generated trace that fits: every distinct key misses once, nothing else.
        trace = os.path.join(tmp, "gen.trace")
        run([args.gen, "--requests", "20000", "--hot-keys", "1000", "--seed", "7",
             "-o", trace])
        with open(trace) as f:
            header = f.read(4096)
        distinct = int(re.search(r"distinct_keys: (\d+)", header).group(1))
        markers = dict(re.findall(r"# marker: (\w+) (\d+)", header))
        assert set(markers) == {"scan_start", "scan_end", "shift"}, markers
        out = run([args.replay, "--trace", trace, "--server-bin", args.server,
                   "--ram-share", "1.5", "--time-limit", "30s",
                   "--expect", f"gets=20000,get_misses={distinct},errors=0"])
        assert "scan [8000, 10000)" in out, out
        assert "shift at 14000" in out, out
        r = results(out)[0]
        assert 0 < r["scan_after_hit_ratio"] <= 1 and r["shift_recovery_share"] > 0, r
    print("trace_replay_test: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
