"""Memory budget: with -m 64, 1 GiB of writes of mixed sizes (100 B to
512 KiB, seeded, over a few pipelining connections) must leave the process
RSS (VmRSS from /proc/PID/status) under the budget plus a stated overhead,
at the end and at every sample taken during the run.

Measured here against Debian's memcached 1.6.18 (-m 64 -t 2): see
MEMCACHED_MEASURED below.  The overhead allowance covers the binary, thread
stacks, connection buffers, the hash table and allocator slack.
"""

import random
import threading
import time
import zlib

import pytest

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
