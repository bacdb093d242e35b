"""Helpers the side-by-side benchmarks share (compare.py, ssd_bench.py).

Standard library only; runs under /usr/bin/python3. Processes started with track() are
stopped by PID by stop_all(), which the scripts register with atexit and call from their
signal handlers.
"""

import argparse
import glob
import json
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class RunError(Exception):
    """One run failed; the benchmark goes on with the next one."""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def parse_seconds(text):
    """'15s', '500ms', '2m' or a plain number of seconds (argparse type)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"bad duration: {text!r}")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[m.group(2)]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cpu, argv):
    return ["taskset", "-c", str(cpu)] + argv if cpu is not None else argv


def read_cpu_s(pid):
    """utime + stime of the whole process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3 of proc(5)); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RunError(f"no VmRSS for pid {pid}")


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(spec, value):
    return "-" if value is None else spec.format(value)


def find_binary(*path):
    """REPO/build/PATH, else the first REPO/build*/PATH that is executable."""
    candidates = [os.path.join(REPO, "build", *path)]
    candidates += sorted(glob.glob(os.path.join(REPO, "build*", *path)))
    for c in candidates:
        if os.access(c, os.X_OK):
            return c
    return candidates[0]


_live = []  # Popen objects (servers, fio) not yet reaped


def track(proc):
    """Registers a started process for stop_all()."""
    _live.append(proc)
    return proc


def stop_proc(proc, timeout=5.0):
    """SIGTERM, then SIGKILL after `timeout` seconds; always reaped."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc in _live:
        _live.remove(proc)


def stop_all():
    for proc in list(_live):
        try:
            stop_proc(proc)
        except Exception as e:  # keep stopping the others
            log(f"could not stop pid {proc.pid}: {e}")


def run_loadgen(cmd, timeout, indent="  "):
    """Runs a strata_loadgen command line; returns (its JSON dict, its CPU seconds).
    Raises RunError on a timeout, a failure or lost connections (exit status 2)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RunError(f"loadgen timed out after {timeout:.0f} s: {' '.join(cmd)}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = None
    for line in res.stdout.splitlines():
        if line.startswith("JSON "):
            result = json.loads(line[5:])
    if result is None or res.returncode not in (0, 2):
        raise RunError(f"loadgen failed (status {res.returncode}): {' '.join(cmd)}\n"
                       f"{res.stdout}{res.stderr}")
    if res.returncode == 2:
        raise RunError(f"loadgen lost connections: {res.stderr.strip()}")
    if res.stderr.strip():
        log(f"{indent}loadgen: " + res.stderr.strip().replace("\n", f"\n{indent}loadgen: "))
    return result, cpu


def connect(where, timeout):
    """A connected socket to 127.0.0.1:`where` (a port), or to the unix
    socket `where` (a path)."""
    if isinstance(where, str) and where.startswith("/"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(where)
        except OSError:
            s.close()
            raise
        return s
    return socket.create_connection(("127.0.0.1", where), timeout=timeout)


def wait_started(proc, port, name, timeout):
    """Waits until the server `proc` answers `stats` on `port`; returns proc.
    RunError if it exits first or does not answer within `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RunError(f"{name} exited at start (status {proc.returncode})")
        if server_stats(port, timeout=0.5):
            return proc
        time.sleep(0.05)
    raise RunError(f"{name} did not start")


def server_stats(port, command="stats", timeout=5.0):
    """Returns the reply to `command` as {name: value} (strings), {} if none.
    `port` may be a unix socket's path."""
    data = b""
    try:
        with connect(port, timeout) as s:
            s.sendall(command.encode() + b"\r\n")
            deadline = time.monotonic() + timeout
            while not data.endswith(b"END\r\n") and time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
                if data.startswith((b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")):
                    return {}
    except OSError:
        return {}
    stats = {}
    for line in data.decode(errors="replace").splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0] == "STAT":
            stats[parts[1]] = parts[2]
    return stats
