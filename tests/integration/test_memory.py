"""Memory budget: with -m 64, 1 GiB of writes of mixed sizes (100 B to
512 KiB, seeded, over a few pipelining connections) must leave the process
RSS (VmRSS from /proc/PID/status) under the budget plus a stated overhead,
at the end and at every sample taken during the run. Then: idle connections
cost little, and with 1,000 connections (some that never read) peak RSS
stays under the Helm chart's memory formula.

Measured here against Debian's memcached 1.6.18 (-m 64 -t 2): see
MEMCACHED_MEASURED below.  The overhead allowance covers the binary, thread
stacks, connection buffers, the hash table and allocator slack.
"""

import os
import random
import shutil
import threading
import time
import uuid
import zlib

import pytest

import memload
import memory_formula
from mcraw import Conn

MEMORY_MB = 64
OVERHEAD_BYTES = 32 * 1024 * 1024          # stated allowance above -m
RSS_LIMIT_BYTES = MEMORY_MB * 1024 * 1024 + OVERHEAD_BYTES
# memcached 1.6.18 -m 64 -t 2, this workload: final RSS 69.4 MiB, peak
# 69.4 MiB, start 4.5 MiB, 18159 STORED, 1 GiB in ~1 s
# (run on Debian 12, x86-64; printed by the test, see -s output).
MEMCACHED_MEASURED = "final 69.4 MiB, peak 69.4 MiB"

TOTAL_BYTES = 1 << 30
CONNECTIONS = 4
KEYS_PER_CONNECTION = 8000
MIN_SIZE, MAX_SIZE = 100, 512 * 1024
BATCH_BYTES = 1 << 20        # pipeline up to ~1 MiB of requests per write
BATCH_COMMANDS = 64
TIME_LIMIT_S = 60.0
SEED = 0x3E3

_pool_rng = random.Random(SEED)
POOL = _pool_rng.randbytes(4 * MAX_SIZE)


def value(key, size):
    """Deterministic value for (key, size): a slice of the random pool."""
    off = zlib.crc32(key + b"/%d" % size) % (len(POOL) - size)
    return POOL[off:off + size]


def sizes(rng):
    """Log-uniform sizes between MIN_SIZE and MAX_SIZE."""
    lo, hi = MIN_SIZE.bit_length(), MAX_SIZE.bit_length()
    while True:
        s = int(2 ** rng.uniform(lo - 1, hi - 1))
        yield max(MIN_SIZE, min(MAX_SIZE, s))


def writer(server, conn_no, budget, deadline, last_size, errors, replies):
    rng = random.Random(SEED * 100 + conn_no)
    size_gen = sizes(rng)
    written = 0
    try:
        with Conn.to(server, timeout=30) as c:
            while written < budget:
                if time.monotonic() > deadline:
                    errors.append(f"conn {conn_no}: out of time after "
                                  f"{written >> 20} MiB")
                    return
                batch = []
                batch_bytes = 0
                while batch_bytes < BATCH_BYTES and \
                        len(batch) < BATCH_COMMANDS and written < budget:
                    key = b"mem-%d-%d" % (conn_no, rng.randrange(
                        KEYS_PER_CONNECTION))
                    size = next(size_gen)
                    batch.append(b"set %s 0 0 %d\r\n" % (key, size))
                    batch.append(value(key, size))
                    batch.append(b"\r\n")
                    last_size[key] = size
                    batch_bytes += size
                    written += size
                c.send(b"".join(batch))
                for _ in range(len(batch) // 3):
                    line = c.readline()
                    replies[line] = replies.get(line, 0) + 1
    except Exception as e:  # reported by the main thread
        errors.append(f"conn {conn_no}: {e!r}")


@pytest.mark.rss_bound
def test_rss_stays_under_budget(server_factory, is_memcached):
    srv = server_factory(memory_mb=MEMORY_MB, threads=2)
    start_rss = srv.rss()
    deadline = time.monotonic() + TIME_LIMIT_S
    errors, threads = [], []
    last_sizes = [{} for _ in range(CONNECTIONS)]
    replies = [{} for _ in range(CONNECTIONS)]
    t0 = time.monotonic()
    for i in range(CONNECTIONS):
        t = threading.Thread(target=writer, args=(
            srv, i, TOTAL_BYTES // CONNECTIONS, deadline, last_sizes[i],
            errors, replies[i]), daemon=True)
        t.start()
        threads.append(t)
    peak = start_rss
    while any(t.is_alive() for t in threads):
        if time.monotonic() > deadline + 5:
            pytest.fail("writers did not finish in time")
        peak = max(peak, srv.rss())
        time.sleep(0.05)
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    assert not errors, errors
    time.sleep(0.5)
    final = srv.rss()
    peak = max(peak, final)

    merged = {}
    for r in replies:
        for k, v in r.items():
            merged[k] = merged.get(k, 0) + v
    print(f"\n{'memcached' if is_memcached else 'server'} -m {MEMORY_MB}: "
          f"1 GiB written in {elapsed:.1f} s; RSS start "
          f"{start_rss / 2**20:.1f} MiB, final {final / 2**20:.1f} MiB, peak "
          f"{peak / 2**20:.1f} MiB (limit {RSS_LIMIT_BYTES >> 20} MiB); "
          f"replies {merged}")
    allowed = {b"STORED\r\n"}
    if is_memcached:
        # memcached's slab allocator can fail a store when the class of the
        # item has no page left; strata must evict instead.
        allowed.add(b"SERVER_ERROR out of memory storing object\r\n")
    assert set(merged) <= allowed, merged
    assert elapsed < TIME_LIMIT_S

    # Whatever survived eviction is the newest write of its key, intact.
    present = 0
    with Conn.to(srv, timeout=30) as c:
        for conn_no in range(CONNECTIONS):
            keys = sorted(last_sizes[conn_no])[:500]
            for i in range(0, len(keys), 50):
                chunk = keys[i:i + 50]
                c.send(b"get " + b" ".join(chunk) + b"\r\n")
                for key, flags, data, _ in c.read_values():
                    present += 1
                    assert data == value(key, last_sizes[conn_no][key]), \
                        f"stale or corrupt value for {key!r}"
    assert present > 0, "nothing survived: the cache holds no data at all"

    assert final < RSS_LIMIT_BYTES, \
        f"final RSS {final >> 20} MiB over {RSS_LIMIT_BYTES >> 20} MiB"
    assert peak < RSS_LIMIT_BYTES, \
        f"peak RSS {peak >> 20} MiB over {RSS_LIMIT_BYTES >> 20} MiB"


# An idle connection costs strata no read buffer and no reply block: both are
# taken from its worker's pool while in use (Worker::TakeReadBuffer,
# OutputQueue::ShareSpareBlocks). memcached 1.6.18 (-t 2): about 1.6 KiB per
# used, idle connection; strata before the pools: about 23 KiB.
IDLE_CONNECTIONS = 1000
IDLE_CONNECTION_BOUND = 8 * 1024


@pytest.mark.rss_bound
def test_idle_connections_cost_little_memory(server_factory, is_memcached):
    srv = server_factory(memory_mb=MEMORY_MB, threads=2,
                         max_conns=IDLE_CONNECTIONS + 100)
    with Conn.to(srv) as c:
        c.send(b"set idle-k 0 0 5\r\nhello\r\n")
        c.expect(b"STORED\r\n")
    before = srv.rss()
    conns = []
    try:
        for _ in range(IDLE_CONNECTIONS):
            # One at a time: each request and reply uses the pooled buffers,
            # then the connection sits idle.
            c = Conn.to(srv)
            c.send(b"get idle-k\r\n")
            c.expect(b"VALUE idle-k 0 5\r\nhello\r\nEND\r\n")
            conns.append(c)
        time.sleep(0.3)
        per_conn = (srv.rss() - before) / IDLE_CONNECTIONS
    finally:
        for c in conns:
            c.close()
    print(f"\n{'memcached' if is_memcached else 'server'}: {per_conn / 1024:.1f} KiB of RSS "
          f"per idle connection (bound {IDLE_CONNECTION_BOUND >> 10} KiB)")
    assert per_conn <= IDLE_CONNECTION_BOUND


# ---------------------------------------------------------------------------
# The ceiling the Helm chart sets (issue 21, part 4): peak RSS under the
# chart's formula (memory_formula.py, the README's) with 1,000 connections of
# mixed value sizes, some of which never read their replies, stop a data
# block half way, or send a get line that never ends. The connection memory
# cap (server.max_connection_memory, auto: 32 MiB here) stops the
# connections that would pass it and closes the ones that hold the most
# beyond their share without moving a byte; the well-behaved ones must all
# finish, unclosed, with every value intact.

CEILING_CONFIGS = {
    # name: (RAM MiB, SSD MiB or 0)
    "ram64": (64, 0),
    "ram8-ssd256": (8, 256),   # issue 21: 72 MiB peak at dbf3a94 with few connections
}
CEILING_MAX_CONNS = 1100
CEILING_WRITE_BYTES = 1 << 30


def _stats(srv):
    with Conn.to(srv, timeout=30) as c:
        c.send(b"stats\r\n")
        out = {}
        while True:
            line = c.readline()
            if line == b"END\r\n":
                return out
            _, name, value = line.decode().split(" ", 2)
            out[name] = value.strip()


def _peak_rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


@pytest.mark.rss_bound
@pytest.mark.strata_only
@pytest.mark.parametrize("config", sorted(CEILING_CONFIGS))
def test_rss_stays_under_the_chart_formula_with_1000_connections(server_factory, strata_bin,
                                                                 config):
    ram_mb, ssd_mb = CEILING_CONFIGS[config]
    extra = []
    folder = None
    if ssd_mb:
        # O_DIRECT needs a disk, not tmpfs: next to the binary, as test_ssd.py.
        folder = os.path.join(os.path.dirname(strata_bin), "ssd-test-tmp",
                              f"mem-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        os.makedirs(folder)
        extra = ["--ssd-path", os.path.join(folder, "cache.bin"), "--ssd-size", f"{ssd_mb}MiB"]
    try:
        srv = server_factory(memory_mb=ram_mb, threads=2, max_conns=CEILING_MAX_CONNS,
                             extra_args=extra)
        ceiling = memory_formula.memory_limit(
            ram=ram_mb << 20, workers=2, max_item=1 << 20, max_connections=CEILING_MAX_CONNS,
            ssd=ssd_mb << 20)
        mix = memload.Mix(write_bytes=CEILING_WRITE_BYTES)
        assert mix.connections == 1000
        load = memload.Load(srv.address, mix)
        try:
            load.connect_all()
            load.prefill_big()
            result = load.run()
            # The connections that never read hold far more than the cap:
            # the server must close some of them (after 500 ms without
            # progress), whatever the timing.
            deadline = time.monotonic() + 30
            st = _stats(srv)
            while int(st["connection_memory_closed"]) == 0 and time.monotonic() < deadline:
                time.sleep(0.1)
                st = _stats(srv)
            peak = _peak_rss(srv.pid)
            # Still serving.
            with Conn.to(srv) as c:
                c.send(b"set after-load 0 0 2\r\nok\r\nget after-load\r\n")
                c.expect(b"STORED\r\nVALUE after-load 0 2\r\nok\r\nEND\r\n")
        finally:
            load.close_all()
        print(f"\n{config}: 1000 connections, {result.written_bytes >> 20} MiB written in "
              f"{result.elapsed_s:.1f} s, {result.stored} STORED, {result.hits} hits; "
              f"peak RSS {peak / 2**20:.1f} MiB, chart formula {ceiling / 2**20:.1f} MiB; "
              f"connection memory {int(st['connection_memory']) >> 20} of "
              f"{int(st['connection_memory_limit']) >> 20} MiB, "
              f"{st['connection_memory_stalls']} stalls, "
              f"{st['connection_memory_closed']} closed by the server "
              f"({result.misbehaving_closed} misbehaving seen closed)")
        assert not result.errors, result.errors
        assert not result.bad_replies, result.bad_replies[:5]
        assert result.healthy_closed == 0, "a well-behaved connection was closed"
        assert result.written_bytes >= CEILING_WRITE_BYTES
        assert result.hits > 0
        assert int(st["connection_memory_limit"]) == 32 << 20  # auto for these RAM sizes
        assert int(st["connection_memory_stalls"]) > 0
        assert int(st["connection_memory_closed"]) > 0
        assert peak <= ceiling, \
            f"peak RSS {peak / 2**20:.1f} MiB over the chart's {ceiling / 2**20:.1f} MiB"
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
