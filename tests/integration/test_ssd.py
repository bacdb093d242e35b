"""The SSD tier (issue 3) end to end: the real binary, a real cache file.

Every test runs twice, once with `tiers.ssd.io: io_uring` and once with
`io: threadpool` (the pread/pwrite fallback), and checks `stats` reports the
mode it asked for.  The cache file lives in a folder next to the binary
(`ssd-test-tmp/`, on the build's file system: tmpfs has no O_DIRECT), or
in $STRATA_SSD_TEST_DIR, made and removed by the `ssd` fixture; each server
gets its own YAML config with a `tiers.ssd` section and
`metrics: {enabled: false}`.

Values verify themselves: "<tag>:<version>:<body>", where tag is a BLAKE2b
digest of key, version and body.  A hit whose tag does not match, or that
carries another key's bytes, or an older version than the newest
acknowledged write, fails the test.  Bodies are half compressible (a
repeated digest) and half random (slices of a seeded random pool), so LZ4
has something to do and something to give up on.

1. capacity: RAM 16 MiB, SSD 1 GiB, admission all: 512 MiB of values of
   1..64 KiB with mixed TTLs; read back, >= 95 % of live keys hit, every hit
   correct, expired keys miss, ssd_hits > 0, ssd_compression_ratio > 1.
2. consistency: overwrite, delete, touch, gat, incr/decr, append/prepend,
   cas, add/replace and flush_all of SSD-resident keys: the newest
   acknowledged write wins, also once the new versions went to SSD in turn.
3. SIGTERM and restart: data on SSD and data that was in RAM at shutdown
   (demoted then) come back; deleted and overwritten keys stay so; CAS
   uniques stay usable and unique; flush_all before a restart wins.
4. kill -9 under write load, restart: every hit correct; overwrites and
   deletes made before the load stay in force.  And an overwrite or delete
   followed by a quiet spell, then kill -9: the old value must not return.
5. startup: the recovery time of a full (wrapped) 1 GiB tier, from the log
   line "N items recovered in X s", is printed (run with -s to see it), and
   /readyz answers 503 (/healthz 200) until the index is loaded, then 200.

6. races: deletes and flush_all at the eviction frontier while RAM demotes
   to SSD; nothing deleted or flushed may be read back.

The whole file takes about 2-4 minutes on 2 cores (both I/O modes).
"""

import contextlib
import hashlib
import os
import random
import re
import shutil
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
import zlib

import pytest

from conftest import Server, free_port

pytestmark = pytest.mark.strata_only

MiB = 1 << 20
GiB = 1 << 30
RAM_MB = 16
SSD_SIZE = "1GiB"
SEED = 0x55D
POOL = random.Random(SEED).randbytes(8 * MiB)
START_TIMEOUT_S = 120.0      # a full tier's index is rebuilt before listening
STOP_TIMEOUT_S = 120.0       # SIGTERM demotes the RAM tier first
IO_TIMEOUT_S = 60.0
RECOVERY_RE = re.compile(rb"(\d+) items recovered in ([0-9.]+) s")


# --------------------------------------------------------------------------
# values that verify themselves


def body_for(key, version, size, compressible):
    if compressible:
        block = hashlib.sha256(key + b"/%d" % version).hexdigest().encode()
        return (block * (size // len(block) + 1))[:size]
    off = zlib.crc32(key + b"/%d" % version) % (len(POOL) - size)
    return POOL[off:off + size]


def tag_for(key, version, body):
    h = hashlib.blake2b(digest_size=16)
    h.update(key)
    h.update(b"\0%d\0" % version)
    h.update(body)
    return h.hexdigest().encode()


def make_value(key, version=1, size=4096, compressible=False):
    body = body_for(key, version, size, compressible)
    return b"%s:%d:" % (tag_for(key, version, body), version) + body


def value_version(key, value):
    """The version a self-verifying value carries; fails on a bad value."""
    parts = value.split(b":", 2)
    assert len(parts) == 3 and parts[1].isdigit(), \
        f"{key!r}: not a value of this test: {value[:80]!r}"
    tag, version, body = parts[0], int(parts[1]), parts[2]
    assert tag == tag_for(key, version, body), \
        f"{key!r}: corrupt value or another key's (len {len(value)}): " \
        f"{value[:80]!r}"
    return version


def flags_for(key):
    return zlib.crc32(key) & 0xFFFF


# --------------------------------------------------------------------------
# a small pipelining client


class BufferedReader:
    """One connection to `server`: replies read in large pieces into self.buf
    (from self.pos on), readline() and read_exact(); closed by close() or
    at the end of a with block."""

    RECV_BYTES = 4 * MiB

    def __init__(self, server, timeout=IO_TIMEOUT_S):
        self.sock = server.connect(timeout=timeout)
        self.buf = bytearray()
        self.pos = 0

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def closed_message(self):
        return "connection closed by the server"

    def _fill(self):
        data = self.sock.recv(self.RECV_BYTES)
        if not data:
            raise ConnectionError(self.closed_message())
        if self.pos > MiB:
            del self.buf[:self.pos]
            self.pos = 0
        self.buf += data

    def readline(self):
        while True:
            i = self.buf.find(b"\n", self.pos)
            if i >= 0:
                line = bytes(self.buf[self.pos:i + 1])
                self.pos = i + 1
                return line
            self._fill()

    def read_exact(self, n):
        while len(self.buf) - self.pos < n:
            self._fill()
        data = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return data


class Client(BufferedReader):
    """Text protocol over one TCP connection, pipelined two batches deep."""

    def call(self, line):
        """One command (bytes without CRLF, or with its data block)."""
        self.sock.sendall(line if line.endswith(b"\r\n") else line + b"\r\n")
        return self.readline().rstrip(b"\r\n")

    def store(self, cmd, key, value, exptime=0, flags=None, cas=None):
        flags = flags_for(key) if flags is None else flags
        head = b"%s %s %d %d %d" % (cmd, key, flags, exptime, len(value))
        if cas is not None:
            head += b" %d" % cas
        return self.call(head + b"\r\n" + value + b"\r\n")

    def set_many(self, items, batch_bytes=512 * 1024, batch_max=64):
        """items: iterable of (key, value, exptime).  Returns the reply line
        of each, in order."""
        replies = []
        pending = 0
        parts, size = [], 0

        def flush():
            nonlocal pending, parts, size
            self.sock.sendall(b"".join(parts))
            for _ in range(pending):
                replies.append(self.readline().rstrip(b"\r\n"))
            pending = len(parts) // 2
            parts, size = [], 0

        for key, value, exptime in items:
            parts.append(b"set %s %d %d %d\r\n" % (key, flags_for(key), exptime,
                                                   len(value)))
            parts.append(value + b"\r\n")
            size += len(value) + 64
            if size >= batch_bytes or len(parts) >= 2 * batch_max:
                flush()
        if parts:
            flush()
        for _ in range(pending):
            replies.append(self.readline().rstrip(b"\r\n"))
        return replies

    def _read_values(self, out):
        while True:
            line = self.readline()
            if line == b"END\r\n":
                return
            p = line.split()
            assert p and p[0] == b"VALUE" and len(p) in (4, 5), \
                f"unexpected reply line {line[:200]!r}"
            n = int(p[3])
            data = self.read_exact(n + 2)
            assert data[-2:] == b"\r\n", f"value not followed by CRLF: {p!r}"
            out[p[1]] = (int(p[2]), data[:-2], int(p[4]) if len(p) == 5 else None)

    def get_many(self, keys, cmd=b"get", batch=50):
        """key -> (flags, value, cas or None) for the keys that hit."""
        out = {}
        keys = list(keys)
        pending = False
        for i in range(0, len(keys), batch):
            self.sock.sendall(cmd + b" " + b" ".join(keys[i:i + batch]) + b"\r\n")
            if pending:
                self._read_values(out)
            pending = True
        if pending:
            self._read_values(out)
        return out

    def get(self, key, cmd=b"get"):
        return self.get_many([key], cmd=cmd).get(key)

    def stats(self):
        self.sock.sendall(b"stats\r\n")
        out = {}
        while True:
            line = self.readline()
            if line == b"END\r\n":
                return out
            _, name, value = line.rstrip(b"\r\n").split(b" ", 2)
            out[name.decode()] = value.decode()


def run_parallel(fn, shards):
    """fn(shard) in one thread per shard; re-raises the first failure."""
    results = [None] * len(shards)
    errors = []

    def run(i):
        try:
            results[i] = fn(shards[i])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(shards))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def split(seq, n):
    return [seq[i::n] for i in range(n)]


# --------------------------------------------------------------------------
# servers with an SSD tier


def http_status(url):
    """The HTTP status of a GET, or 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


class SsdEnv:
    """Starts strata servers that share one cache file in a private folder."""

    def __init__(self, binary, folder, io_mode):
        self.binary = binary
        self.folder = folder
        self.io_mode = io_mode
        self.device = os.path.join(folder, "cache.bin")
        self.servers = []

    def start(self, ram_mb=RAM_MB, ssd_size=SSD_SIZE, admission="all",
              compression="lz4", extra_yaml="", metrics_port=None):
        n = len(self.servers)
        config = os.path.join(self.folder, f"strata-{n}.yaml")
        with open(config, "w") as f:
            f.write(
                "tiers:\n"
                "  ssd:\n"
                f"    path: {self.device}\n"
                f"    size: {ssd_size}\n"
                f"    io: {self.io_mode}\n"
                f"    admission: {admission}\n"
                f"    compression: {compression}\n"
                f"{extra_yaml}"
                "metrics:\n" +
                ("  enabled: false\n" if metrics_port is None else
                 f"  listen: 127.0.0.1:{metrics_port}\n"))
        log = os.path.join(self.folder, f"strata-{n}.log")
        extra = ["--config", config]
        if metrics_port is not None:
            extra += ["--metrics-listen", f"127.0.0.1:{metrics_port}"]
        srv = Server(self.binary, memory_mb=ram_mb, threads=2,
                     extra_args=extra, log_path=log,
                     start_timeout=START_TIMEOUT_S)
        srv.log_file = log
        self.servers.append(srv)
        try:
            srv.start()
        except RuntimeError as e:
            if self.io_mode == "io_uring" and "io_uring" in str(e):
                pytest.skip(f"io_uring is not usable here: {e}")
            raise
        with Client(srv) as c:
            mode = c.stats().get("ssd_io_mode")
        assert mode == self.io_mode, \
            f"asked for io: {self.io_mode}, stats say ssd_io_mode {mode}"
        return srv

    @staticmethod
    def log(srv):
        with open(srv.log_file, "rb") as f:
            return f.read()

    def recovery(self, srv):
        """(items, seconds) from the startup log line."""
        m = RECOVERY_RE.search(self.log(srv))
        assert m, f"no recovery line in the log: {self.log(srv)[-2000:]!r}"
        return int(m.group(1)), float(m.group(2))

    def stop(self, srv, sig=signal.SIGTERM):
        rc = srv.stop(sig=sig, timeout=STOP_TIMEOUT_S)
        srv.close_log()
        if sig == signal.SIGTERM:
            assert rc == 0, f"exit code {rc} after SIGTERM: " \
                f"{self.log(srv)[-2000:]!r}"
        return rc

    def stop_all(self):
        for srv in reversed(self.servers):
            try:
                srv.stop(sig=signal.SIGKILL)
            finally:
                srv.close_log()


def ssd_test_root(strata_bin):
    # STRATA_SSD_TEST_DIR overrides where the cache files go (it must be on
    # a file system with O_DIRECT: not tmpfs).
    return os.environ.get("STRATA_SSD_TEST_DIR") or \
        os.path.join(os.path.dirname(strata_bin), "ssd-test-tmp")


def make_ssd_test_folder(strata_bin, prefix=""):
    """A new, uniquely named folder below ssd_test_root()."""
    folder = os.path.join(ssd_test_root(strata_bin),
                          f"{prefix}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.makedirs(folder)
    return folder


@contextlib.contextmanager
def ssd_env(strata_bin, io):
    """An SsdEnv in a folder of its own, its servers killed and the folder
    removed afterwards."""
    root = ssd_test_root(strata_bin)
    folder = make_ssd_test_folder(strata_bin)
    env = SsdEnv(strata_bin, folder, io)
    try:
        yield env
    finally:
        env.stop_all()
        shutil.rmtree(folder, ignore_errors=True)
        try:
            os.rmdir(root)
        except OSError:
            pass  # another run's folder is still there


@pytest.fixture(params=["io_uring", "threadpool"])
def ssd(request, strata_bin):
    with ssd_env(strata_bin, request.param) as env:
        yield env


# --------------------------------------------------------------------------
# helpers for data sets


def write_fill(srv, prefix, total_bytes, size=16 * 1024, conns=2, version=1):
    """Writes ~total_bytes of values under prefix; returns the keys."""
    keys = [b"%s:%06d" % (prefix, i) for i in range(total_bytes // size)]

    def write(shard):
        with Client(srv) as c:
            replies = c.set_many(
                (k, make_value(k, version, size, i % 2 == 0), 0)
                for i, k in enumerate(shard))
        bad = [r for r in replies if r != b"STORED"]
        assert not bad, f"{len(bad)} sets not STORED: {bad[:3]!r}"

    run_parallel(write, split(keys, conns))
    return keys


def read_all(srv, keys, conns=2, cmd=b"get"):
    """key -> (flags, value, cas) for every key that hits."""
    def read(shard):
        with Client(srv) as c:
            return c.get_many(shard, cmd=cmd)

    found = {}
    for part in run_parallel(read, split(list(keys), conns)):
        found.update(part)
    return found


def check_hits(found, expect_version):
    """Every hit verifies and carries the expected version (a dict key ->
    version, or an int for all)."""
    for key, (flags, value, _cas) in found.items():
        want = expect_version if isinstance(expect_version, int) \
            else expect_version[key]
        assert flags == flags_for(key), f"{key!r}: flags {flags}"
        got = value_version(key, value)
        assert got == want, f"{key!r}: version {got}, newest is {want}"


def ssd_stats(srv):
    with Client(srv) as c:
        return c.stats()


def assert_no_errors(st):
    for name in ("ssd_corrupt_records", "ssd_read_errors", "ssd_write_errors"):
        assert int(st[name]) == 0, f"{name} = {st[name]}"


# --------------------------------------------------------------------------
# 1. capacity


def test_capacity_512mib_mixed_sizes_and_ttls(ssd):
    srv = ssd.start()
    rng = random.Random(SEED)
    total = 512 * MiB
    short_ttl = 2
    plan = []  # (key, size, compressible, exptime)
    written = 0
    i = 0
    while written < total:
        key = b"cap:%06d" % i
        size = int(2 ** rng.uniform(10, 16))          # 1 KiB .. 64 KiB
        compressible = rng.random() < 0.5
        r = rng.random()
        first_half = written < total // 2
        if r < 0.03 and first_half:
            exptime = short_ttl          # expires during the test
        elif r < 0.15:
            exptime = 3600               # long
        else:
            exptime = 0
        plan.append((key, size, compressible, exptime))
        written += size
        i += 1
    by_key = {p[0]: p for p in plan}

    def write(shard):
        with Client(srv) as c:
            replies = c.set_many(
                (k, make_value(k, 1, size, comp), exp)
                for k, size, comp, exp in shard)
        bad = [(p[0], r) for p, r in zip(shard, replies) if r != b"STORED"]
        assert not bad, f"{len(bad)} sets not STORED: {bad[:3]!r}"

    # Short-TTL keys are all in the first half of the plan: write it, note
    # when its last reply came, then write the second half.
    cut = 0
    acc = 0
    for cut, p in enumerate(plan):
        if acc >= total // 2:
            break
        acc += p[1]
    t0 = time.monotonic()
    run_parallel(write, split(plan[:cut], 3))
    t_half = time.time()
    run_parallel(write, split(plan[cut:], 3))
    write_s = time.monotonic() - t0
    short_keys = [p[0] for p in plan if p[3] == short_ttl]
    assert short_keys and all(int(k[4:]) < cut for k in short_keys)
    # A key set at t expires by t + ttl (+1 s for the server's whole
    # seconds); wait for the last of them if the second half was quicker.
    wait = t_half + short_ttl + 1.5 - time.time()
    if wait > 0:
        time.sleep(wait)
    st_written = ssd_stats(srv)

    t1 = time.monotonic()
    found = read_all(srv, [p[0] for p in plan], conns=3)
    read_s = time.monotonic() - t1
    check_hits(found, 1)
    for key, (flags, value, _) in found.items():
        _, size, _, _ = by_key[key]
        assert len(value.split(b":", 2)[2]) == size, f"{key!r}: wrong length"
    expired_hits = [k for k in short_keys if k in found]
    assert not expired_hits, \
        f"{len(expired_hits)} expired keys were returned: {expired_hits[:5]!r}"
    live = [p[0] for p in plan if p[3] != short_ttl]
    hits = sum(1 for k in live if k in found)
    share = hits / len(live)
    st = ssd_stats(srv)
    ratio = float(st["ssd_compression_ratio"])
    print(f"\n[ssd {ssd.io_mode}] capacity: {len(plan)} keys, "
          f"{written / MiB:.0f} MiB written in {write_s:.1f} s, read in "
          f"{read_s:.1f} s; live hit share {share:.4f} ({hits}/{len(live)}); "
          f"{len(short_keys)} short-TTL keys all expired; "
          f"ssd_hits {st['ssd_hits']} ssd_reads {st['ssd_reads']} "
          f"ssd_promotions {st['ssd_promotions']} "
          f"ssd_compression_ratio {ratio} "
          f"ssd_demoted_items {st_written['ssd_demoted_items']} "
          f"ssd_index_entries {st_written['ssd_index_entries']} "
          f"ssd_index_bytes {st_written['ssd_index_bytes']} "
          f"ssd_dropped_backlog {st['ssd_dropped_backlog']} "
          f"ssd_admissions_rejected {st['ssd_admissions_rejected']}")
    # The writer thread falling a region behind drops demotions
    # (ssd_dropped_backlog): the issue asks for >= 95 % kept however fast
    # items arrive, so a slow or busy disk shows up here.
    assert share >= 0.95, f"only {share:.3f} of live keys hit " \
        f"(ssd_dropped_backlog {st['ssd_dropped_backlog']})"
    assert int(st["ssd_hits"]) > 0
    assert ratio > 1.0
    assert_no_errors(st)


# --------------------------------------------------------------------------
# 2. consistency of SSD-resident keys


def push_to_ssd(srv, tag, mb=64, size=16 * 1024):
    """Evicts what RAM holds to SSD: fresh keys, 4x the RAM tier, each read
    once right after it is written.  (S3-FIFO keeps items that were hit in
    its main queue while one-hit wonders pass through the small one, so only
    fresh keys that are hit too push the main queue out.)"""
    keys = [b"fill-%s:%06d" % (tag, i) for i in range(mb * MiB // size)]

    def write(shard):
        with Client(srv) as c:
            for i in range(0, len(shard), 32):
                chunk = shard[i:i + 32]
                replies = c.set_many((k, make_value(k, 1, size, n % 2 == 0), 0)
                                     for n, k in enumerate(chunk))
                assert all(r == b"STORED" for r in replies), replies
                c.get_many(chunk)

    run_parallel(write, split(keys, 2))
    return keys


def test_pipelined_gets_read_ahead_in_request_order(ssd):
    """A pipeline of gets for SSD-resident keys has its reads promoted ahead
    (ssd_read_aheads), yet every reply follows request order: a delete or a
    set earlier in the pipeline wins over a read-ahead of the same key.
    Before it, two rounds of plain gets, one command at a time (no
    read-ahead), are served from SSD without a promotion: the keys are read
    less than 3 times lately."""
    srv = ssd.start()
    keys = [b"ra:%04d" % i for i in range(240)]
    with Client(srv) as c:
        assert all(r == b"STORED" for r in c.set_many(
            (k, make_value(k, 1, 4096), 0) for k in keys))
    push_to_ssd(srv, b"ra")
    cold = ssd_stats(srv)
    with Client(srv) as c:
        for _ in range(2):
            got = c.get_many(keys, batch=len(keys))  # one command
            assert len(got) == len(keys)
            for k in keys:
                assert got[k][1] == make_value(k, 1, 4096), k
    before = ssd_stats(srv)
    assert int(before["ssd_hits"]) > int(cold["ssd_hits"]), \
        "the warm-up gets did not read the SSD"
    assert before["ssd_promotions"] == cold["ssd_promotions"], \
        "a get of a cold key promoted it"
    on_ssd = int(before["ssd_index_entries"])
    assert on_ssd > 0

    # Groups of three keys: get a; delete b, get b; set c (version 2), get c.
    parts, expect = [], []
    for i in range(0, len(keys), 3):
        a, b, k = keys[i:i + 3]
        parts.append(b"get %s\r\n" % a)
        expect.append(("value", a, 1))
        parts.append(b"delete %s\r\n" % b)
        expect.append(("line", b"DELETED"))
        parts.append(b"get %s\r\n" % b)
        expect.append(("miss", b))
        v2 = make_value(k, 2, 3000)
        parts.append(b"set %s %d 0 %d\r\n%s\r\n" % (k, flags_for(k), len(v2), v2))
        expect.append(("line", b"STORED"))
        parts.append(b"get %s\r\n" % k)
        expect.append(("value", k, 2))
    with Client(srv) as c:
        c.sock.sendall(b"".join(parts))
        for n, e in enumerate(expect):
            if e[0] == "line":
                assert c.readline().rstrip(b"\r\n") == e[1], n
                continue
            head = c.readline().rstrip(b"\r\n")
            if e[0] == "miss":
                assert head == b"END", f"reply {n}: deleted key {e[1]!r} came back"
                continue
            fields = head.split()
            assert fields[:2] == [b"VALUE", e[1]], (n, head)
            value = c.read_exact(int(fields[3]) + 2)[:-2]
            assert c.readline() == b"END\r\n"
            assert value == make_value(e[1], e[2], 4096 if e[2] == 1 else 3000), \
                f"reply {n}: wrong value for {e[1]!r}"
    after = ssd_stats(srv)
    read_aheads = int(after["ssd_read_aheads"]) - int(before["ssd_read_aheads"])
    print(f"\n[ssd {ssd.io_mode}] pipeline of {len(parts)} commands over "
          f"{on_ssd} SSD entries: {read_aheads} read-aheads")
    assert read_aheads > 0, "no get was read ahead"


def test_newest_write_wins_on_ssd_resident_keys(ssd):
    srv = ssd.start()
    groups = ["set", "delete", "touch", "touch_short", "gat", "add",
              "add_deleted", "replace", "append", "prepend", "cas",
              "cas_after_demotion", "cas_bad", "cas_deleted", "incr", "decr",
              "plain"]
    n = 20
    keys = {g: [b"c:%s:%03d" % (g.encode(), i) for i in range(n)] for g in groups}
    expect = {}  # key -> expected value, or None for a miss

    with Client(srv) as c:
        items = []
        for g, ks in keys.items():
            for k in ks:
                v = b"100" if g in ("incr", "decr") else \
                    make_value(k, 1, 4096, compressible=zlib.crc32(k) % 2 == 0)
                items.append((k, v, 0))
                expect[k] = v
        assert all(r == b"STORED" for r in c.set_many(items))
    push_to_ssd(srv, b"a")

    with Client(srv) as c:
        cas_seen = {}
        for k in keys["cas_after_demotion"]:
            _, v, cas = c.get(k, cmd=b"gets")
            assert v == expect[k]
            cas_seen[k] = cas
    # The keys read just now are back in RAM, unchanged: push them out again
    # (their SSD records stay valid) and use the uniques read before.
    push_to_ssd(srv, b"b")
    before = ssd_stats(srv)

    short_deadline = None
    with Client(srv) as c:
        for k in keys["set"]:
            v = make_value(k, 2, 3000)
            assert c.store(b"set", k, v) == b"STORED"
            expect[k] = v
        for k in keys["delete"]:
            assert c.call(b"delete " + k) == b"DELETED"
            expect[k] = None
            assert c.call(b"delete " + k) == b"NOT_FOUND"
        for k in keys["touch"]:
            assert c.call(b"touch %s 3600" % k) == b"TOUCHED"
        for k in keys["touch_short"]:
            assert c.call(b"touch %s 1" % k) == b"TOUCHED"
        short_deadline = time.time() + 2.5
        for k in keys["gat"]:
            got = c.get_many([k], cmd=b"gat 3600")
            assert got.get(k, (0, None))[1] == expect[k], f"gat {k!r}"
        for k in keys["add"]:
            assert c.store(b"add", k, b"not this") == b"NOT_STORED"
        for k in keys["add_deleted"]:
            assert c.call(b"delete " + k) == b"DELETED"
            v = make_value(k, 3, 100)
            assert c.store(b"add", k, v) == b"STORED"
            expect[k] = v
        for k in keys["replace"]:
            v = make_value(k, 2, 5000)
            assert c.store(b"replace", k, v) == b"STORED"
            expect[k] = v
        for k in keys["append"]:
            assert c.store(b"append", k, b"+A", flags=0) == b"STORED"
            expect[k] = expect[k] + b"+A"
        for k in keys["prepend"]:
            assert c.store(b"prepend", k, b"P+", flags=0) == b"STORED"
            expect[k] = b"P+" + expect[k]
        for k in keys["cas"]:
            flags, v, cas = c.get(k, cmd=b"gets")
            assert v == expect[k]
            v2 = make_value(k, 2, 2000)
            assert c.store(b"cas", k, v2, cas=cas) == b"STORED"
            expect[k] = v2
            assert c.store(b"cas", k, b"stale", cas=cas) == b"EXISTS"
        for k in keys["cas_after_demotion"]:
            v2 = make_value(k, 2, 2000)
            assert c.store(b"cas", k, v2, cas=cas_seen[k]) == b"STORED", \
                "the unique of an item read from SSD changed"
            expect[k] = v2
        for k in keys["cas_bad"]:
            assert c.store(b"cas", k, b"bad", cas=(1 << 62) + 7) == b"EXISTS"
        for k in keys["cas_deleted"]:
            assert c.call(b"delete " + k) == b"DELETED"
            assert c.store(b"cas", k, b"gone", cas=1) == b"NOT_FOUND"
            expect[k] = None
        for k in keys["incr"]:
            assert c.call(b"incr %s 5" % k) == b"105"
            expect[k] = b"105"
        for k in keys["decr"]:
            assert c.call(b"decr %s 7" % k) == b"93"
            # memcached rewrites a shorter number in place, padded with a
            # space, when nobody else holds the item (as after a promotion).
            expect[k] = b"93 "
    after = ssd_stats(srv)
    promoted = int(after["ssd_promotions"]) - int(before["ssd_promotions"])
    # Each command but set, delete and the ones on deleted keys read its key
    # from SSD first: one promotion per key in 12 groups.
    promoting = {"touch", "touch_short", "gat", "add", "replace", "append",
                 "prepend", "cas", "cas_after_demotion", "cas_bad", "incr",
                 "decr"}
    assert promoted >= n * len(promoting), \
        f"only {promoted} promotions: the keys were not on SSD"

    def verify(when):
        all_keys = [k for ks in keys.values() for k in ks]
        with Client(srv) as c:
            found = c.get_many(all_keys)
        for k in all_keys:
            want = expect[k]
            got = found.get(k, (0, None, None))[1]
            if k in keys["touch_short"]:
                # exptime 1: gone within 2 s; either answer before that.
                if time.time() > short_deadline:
                    want = None
                elif got is None:
                    continue
            assert got == want, \
                f"{when}: {k!r}: got {got and got[:60]!r}, want {want and want[:60]!r}"

    verify("right after the writes")
    # Now the new versions go to SSD too (and the old records must stay
    # dead), then everything is read from there.
    fill = push_to_ssd(srv, b"c")
    wait = short_deadline - time.time()
    if wait > 0:
        time.sleep(wait)
    h0 = int(ssd_stats(srv)["ssd_hits"])
    verify("after the new versions were demoted")
    st = ssd_stats(srv)
    from_ssd = int(st["ssd_hits"]) - h0  # cold keys are read, not promoted
    live_targets = sum(1 for k in expect if expect[k] is not None)
    assert from_ssd >= 0.9 * (live_targets - n), \
        f"only {from_ssd} of {live_targets} keys were read from SSD"
    assert_no_errors(st)

    # flush_all: every key misses, on SSD and in RAM.
    with Client(srv) as c:
        assert c.call(b"flush_all") == b"OK"
        every = [k for ks in keys.values() for k in ks] + fill
        found = c.get_many(every)
        assert not found, f"{len(found)} keys survived flush_all: {list(found)[:5]!r}"
        assert int(c.stats()["ssd_index_entries"]) == 0
        # Later writes are kept, on SSD too.
        v = make_value(b"after-flush", 1, 1000)
        assert c.store(b"set", b"after-flush", v) == b"STORED"
    fill_d = push_to_ssd(srv, b"d")
    with Client(srv) as c:
        assert c.get(b"after-flush")[1] == v
        found = c.get_many(every)
        assert not found, f"{len(found)} flushed keys came back: {list(found)[:5]!r}"
        # A delayed flush_all covers SSD-resident keys too once it is due.
        assert c.call(b"flush_all 2") == b"OK"
        time.sleep(2.2)
        found = c.get_many(fill_d + [b"after-flush"])
        assert not found, f"{len(found)} keys survived flush_all 2: " \
            f"{list(found)[:5]!r}"
    print(f"\n[ssd {ssd.io_mode}] consistency: {promoted} promotions by the "
          f"writes, {from_ssd} reads of new versions from SSD, "
          f"ssd_tombstones {st['ssd_tombstones']} ssd_stale_reads "
          f"{st['ssd_stale_reads']}")


# --------------------------------------------------------------------------
# 3. SIGTERM and restart


def test_sigterm_restart_keeps_data_and_deletes(ssd):
    srv = ssd.start()
    base = write_fill(srv, b"r:base", 48 * MiB)        # mostly on SSD
    version = {k: 1 for k in base}
    over_ssd, del_ssd = base[:150], base[150:300]      # written first: on SSD
    with Client(srv) as c:
        for k in over_ssd:
            assert c.store(b"set", k, make_value(k, 2, 6000, True)) == b"STORED"
            version[k] = 2
        for k in del_ssd:
            assert c.call(b"delete " + k) == b"DELETED"
            version[k] = None
    # Written last: in RAM at shutdown (16 MiB of RAM, 8 MiB of them).
    recent = write_fill(srv, b"r:recent", 8 * MiB, size=8 * 1024)
    version.update({k: 1 for k in recent})
    over_ram, del_ram = recent[-200:-100], recent[-100:]
    with Client(srv) as c:
        for k in over_ram:
            assert c.store(b"set", k, make_value(k, 2, 3000)) == b"STORED"
            version[k] = 2
        for k in del_ram:
            assert c.call(b"delete " + k) == b"DELETED"
            version[k] = None
        st = c.stats()
        in_ram = int(st["curr_items"])
        found = c.get_many(recent, cmd=b"gets")
        max_cas_before = max(cas for _, _, cas in found.values())
    assert in_ram > 500
    ssd.stop(srv)
    m = re.search(rb"demoted (\d+) RAM items", ssd.log(srv))
    assert m and int(m.group(1)) > 0, f"no demotion at shutdown: {ssd.log(srv)[-1500:]!r}"
    demoted = int(m.group(1))

    srv2 = ssd.start()
    items, secs = ssd.recovery(srv2)
    all_keys = list(version)
    found = read_all(srv2, all_keys, cmd=b"gets")
    for k, (flags, v, cas) in found.items():
        assert version[k] is not None, f"deleted key {k!r} came back"
    check_hits(found, {k: version[k] for k in found})
    live = [k for k in all_keys if version[k] is not None]
    share = sum(1 for k in live if k in found) / len(live)
    recent_live = [k for k in recent if version[k] is not None]
    recent_share = sum(1 for k in recent_live if k in found) / len(recent_live)
    over_share = sum(1 for k in over_ssd + over_ram if k in found) / \
        len(over_ssd + over_ram)
    print(f"\n[ssd {ssd.io_mode}] SIGTERM restart: {demoted} RAM items demoted "
          f"at shutdown; {items} items recovered in {secs} s; hit share "
          f"{share:.4f}, of keys in RAM at shutdown {recent_share:.4f}, of "
          f"overwritten keys {over_share:.4f}")
    assert share >= 0.95
    assert recent_share >= 0.95, "RAM items were not demoted on shutdown"
    assert over_share >= 0.95

    # CAS uniques: a recovered one still works, and new ones are new.
    with Client(srv2) as c:
        k = base[-1]
        _, v, cas = c.get(k, cmd=b"gets")
        assert c.store(b"cas", k, make_value(k, 3, 100), cas=cas) == b"STORED"
        version[k] = 3
        assert c.store(b"set", b"r:new", b"x") == b"STORED"
        _, _, new_cas = c.get(b"r:new", cmd=b"gets")
        assert new_cas > max_cas_before, \
            f"new unique {new_cas} reuses the recovered range (<= {max_cas_before})"

        # flush_all before a restart: nothing older comes back; a later
        # write does.
        assert c.call(b"flush_all") == b"OK"
        after = make_value(b"r:after-flush", 1, 2000)
        assert c.store(b"set", b"r:after-flush", after) == b"STORED"
    ssd.stop(srv2)
    srv3 = ssd.start()
    found = read_all(srv3, all_keys + [b"r:new"])
    assert not found, f"{len(found)} flushed keys came back after restart: " \
        f"{list(found)[:5]!r}"
    with Client(srv3) as c:
        got = c.get(b"r:after-flush")
        assert got and got[1] == after, "a write after flush_all was lost"
        assert_no_errors(c.stats())


# --------------------------------------------------------------------------
# 4. kill -9


class LoadWriter(threading.Thread):
    """Writes load:N keys once each until the server goes away."""

    def __init__(self, srv, prefix):
        super().__init__(daemon=True)
        self.srv = srv
        self.prefix = prefix
        self.acked = []
        self.sent = []
        self.bytes_acked = 0
        self.error = None

    def run(self):
        i = 0
        try:
            with Client(self.srv, timeout=30) as c:
                while True:
                    batch = [b"%s:%07d" % (self.prefix, i + j) for j in range(32)]
                    i += 32
                    self.sent.extend(batch)
                    items = [(k, make_value(k, 1, 16 * 1024, n % 2 == 0), 0)
                             for n, k in enumerate(batch)]
                    replies = c.set_many(items, batch_max=32)
                    for k, r in zip(batch, replies):
                        assert r == b"STORED", f"{k!r}: {r!r}"
                        self.acked.append(k)
                        self.bytes_acked += 16 * 1024
        except (ConnectionError, OSError):
            pass  # killed
        except BaseException as e:  # noqa: BLE001 - checked by the test
            self.error = e


def test_warm_restart_promotes_the_hot_keys_back(ssd):
    """SIGTERM saves the keys RAM holds beside the SSD file; the next start
    promotes them back in the background, so the first reads after the
    restart hit RAM, not SSD."""
    srv = ssd.start()
    keys = [b"warm:%05d" % i for i in range(1500)]   # ~6 MiB: fits the RAM tier
    with Client(srv) as c:
        assert all(r == b"STORED" for r in c.set_many(
            (k, make_value(k, 1, 4096), 0) for k in keys))
    check_hits(read_all(srv, keys), 1)
    ssd.stop(srv)
    assert b"saved 1500 hot keys" in ssd.log(srv), ssd.log(srv)[-1000:]
    assert os.path.exists(ssd.device + ".hot")
    assert os.path.exists(ssd.device + ".sketch")

    srv2 = ssd.start()
    deadline = time.monotonic() + 30
    m = None
    while time.monotonic() < deadline:
        m = re.search(rb"warm restart: promoted (\d+) of (\d+) saved keys", ssd.log(srv2))
        if m:
            break
        time.sleep(0.05)
    assert m, ssd.log(srv2)[-2000:]
    assert int(m.group(2)) == len(keys) and int(m.group(1)) == len(keys), m.group(0)
    assert not os.path.exists(ssd.device + ".hot"), "the list is used once"
    assert b"frequency sketch loaded" in ssd.log(srv2)
    before = ssd_stats(srv2)
    found = read_all(srv2, keys)
    after = ssd_stats(srv2)
    check_hits(found, 1)
    assert len(found) == len(keys)
    ssd_reads = int(after["ssd_reads"]) - int(before["ssd_reads"])
    print(f"\n[ssd {ssd.io_mode}] warm restart: {m.group(0).decode()}; "
          f"{len(found)} hits after it, {ssd_reads} of them read from SSD")
    assert ssd_reads == 0, f"{ssd_reads} reads went to SSD after the warm-up"


def test_kill9_under_write_load(ssd):
    srv = ssd.start()
    base = write_fill(srv, b"k:base", 32 * MiB)
    version = {k: 1 for k in base}
    over, deleted = base[:100], base[100:200]            # SSD-resident
    over_ram, del_ram = base[-60:-30], base[-30:]         # RAM-resident
    with Client(srv) as c:
        for k in over + over_ram:
            assert c.store(b"set", k, make_value(k, 2, 5000)) == b"STORED"
            version[k] = 2
        for k in deleted + del_ram:
            assert c.call(b"delete " + k) == b"DELETED"
            version[k] = None

    writer = LoadWriter(srv, b"k:load")
    writer.start()
    deadline = time.monotonic() + 60
    while writer.bytes_acked < 96 * MiB and writer.is_alive() and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    assert writer.is_alive(), f"the writer stopped early: {writer.error!r}"
    st = ssd_stats(srv)
    ssd.stop(srv, sig=signal.SIGKILL)
    writer.join(30)
    assert not writer.is_alive()
    assert writer.error is None, f"writer failed: {writer.error!r}"

    srv2 = ssd.start()
    items, secs = ssd.recovery(srv2)
    found = read_all(srv2, base)
    for k in found:
        assert version[k] is not None, f"deleted key {k!r} came back after kill -9"
    check_hits(found, {k: version[k] for k in found})
    # The new versions of overwritten keys may have been only in RAM (S3-FIFO
    # keeps a rewritten key in its main queue): a crash may lose them.
    live = [k for k in base if version[k] == 1]
    base_share = sum(1 for k in live if k in found) / len(live)
    load_found = read_all(srv2, writer.sent)
    check_hits(load_found, 1)
    unacked_hits = sum(1 for k in writer.sent[len(writer.acked):] if k in load_found)
    load_share = sum(1 for k in writer.acked if k in load_found) / max(1, len(writer.acked))
    print(f"\n[ssd {ssd.io_mode}] kill -9: {len(writer.acked)} load keys acked "
          f"({writer.bytes_acked / MiB:.0f} MiB), {items} items recovered in "
          f"{secs} s; hit share of pre-load keys {base_share:.4f}, of acked "
          f"load keys {load_share:.4f} ({unacked_hits} unacked hits); "
          f"ssd_dropped_backlog before the kill {st['ssd_dropped_backlog']}")
    # The pre-load keys reached the device long before the kill.
    assert base_share >= 0.95
    with Client(srv2) as c:
        assert_no_errors(c.stats())


def test_kill9_after_quiet_spell_keeps_deletes_and_overwrites(ssd):
    """A delete or overwrite of an SSD-resident key, then nothing for 2 s,
    then kill -9: the old value must not come back (its tombstone must
    reach the device within a bounded time, not only when 1 MiB more
    records have piled up)."""
    srv = ssd.start()
    base = write_fill(srv, b"q:base", 48 * MiB)
    over, deleted = base[:50], base[50:100]             # SSD-resident
    version = {k: 1 for k in base}
    with Client(srv) as c:
        for k in over:
            assert c.store(b"set", k, make_value(k, 2, 1000)) == b"STORED"
            version[k] = 2
        for k in deleted:
            assert c.call(b"delete " + k) == b"DELETED"
            version[k] = None
    time.sleep(2.0)
    ssd.stop(srv, sig=signal.SIGKILL)
    srv2 = ssd.start()
    found = read_all(srv2, over + deleted)
    back = sorted(k for k in deleted if k in found)
    stale = sorted(k for k in over if k in found and
                   value_version(k, found[k][1]) != 2)
    assert not back and not stale, \
        f"after kill -9, {len(back)} of {len(deleted)} deleted keys came back " \
        f"and {len(stale)} of {len(over)} overwritten keys went back to their " \
        f"old value (e.g. {(back + stale)[:3]!r})"


# --------------------------------------------------------------------------
# 5. startup time of a full tier


def test_recovery_time_of_a_full_tier(ssd):
    srv = ssd.start()
    # 1.2 GiB of incompressible 4 KiB values (the benchmark item)
    # wraps the 1 GiB log: every region holds records.
    size = 4096
    count = 1230 * MiB // size
    keys = [b"full:%07d" % i for i in range(count)]

    def write(shard):
        with Client(srv) as c:
            replies = c.set_many((k, make_value(k, 1, size, False), 0)
                                 for k in shard)
        assert all(r == b"STORED" for r in replies)

    t0 = time.monotonic()
    run_parallel(write, split(keys, 3))
    write_s = time.monotonic() - t0
    st = ssd_stats(srv)
    assert int(st["ssd_regions_reclaimed"]) > 0, "the log did not wrap"
    ssd.stop(srv)
    # The restart is watched as a Kubernetes probe would: /readyz must say
    # 503 while the index loads (/healthz 200: alive), then 200.
    metrics_port = free_port()
    probes = []          # (readyz status, healthz status) while starting
    starting = threading.Event()
    starting.set()

    def probe():
        url = f"http://127.0.0.1:{metrics_port}"
        deadline = time.monotonic() + START_TIMEOUT_S + 10
        while ((starting.is_set() or not probes or probes[-1][0] != 200)
               and time.monotonic() < deadline):
            ready = http_status(url + "/readyz")
            if ready:
                probes.append((ready, http_status(url + "/healthz")))
            time.sleep(0.005)

    watcher = threading.Thread(target=probe)
    watcher.start()
    try:
        srv2 = ssd.start(metrics_port=metrics_port)
    finally:
        starting.clear()
        watcher.join(30)
    items, secs = ssd.recovery(srv2)
    st2 = ssd_stats(srv2)
    loading = [p for p in probes if p[0] == 503]
    print(f"\n[ssd {ssd.io_mode}] restart probes: {len(loading)} x /readyz 503 "
          f"while loading, then {probes[-1] if probes else None}")
    assert loading, f"/readyz never said 503 during a {secs} s index load: {probes[:5]}"
    assert all(h == 200 for _, h in loading), \
        f"/healthz failed while loading: {sorted(set(loading))}"
    first_ready = next(i for i, p in enumerate(probes) if p[0] == 200)
    assert all(p[0] == 503 for p in probes[:first_ready])
    assert all(p[0] == 200 for p in probes[first_ready:]), "ready went back to 503"
    # The newest keys are on SSD (or went there at shutdown).
    newest = keys[-3000:]
    found = read_all(srv2, newest)
    check_hits(found, 1)
    index_bytes = int(st2["ssd_index_bytes"])
    print(f"\n[ssd {ssd.io_mode}] full tier: {count * size / MiB:.0f} MiB in "
          f"{count} values written in {write_s:.1f} s "
          f"({st['ssd_regions_reclaimed']} regions reclaimed); restart: "
          f"{items} items recovered in {secs} s (ssd_index_bytes "
          f"{index_bytes}, {index_bytes / max(1, items):.1f} B/item); "
          f"{len(found)}/{len(newest)} newest keys hit")
    # The writer drops the next region's entries ahead of time (up to one
    # region of 4 KiB records) once the log is open again.
    entries = int(st2["ssd_index_entries"])
    assert items > 0 and items - 16 * MiB // size <= entries <= items, (items, entries)
    assert len(found) >= 0.95 * len(newest)
    assert secs < 60


# --------------------------------------------------------------------------
# large values when RAM is full


def test_large_values_survive_a_full_ram_tier(ssd):
    srv = ssd.start()
    write_fill(srv, b"big-fill", 2 * RAM_MB * MiB, size=4096)   # RAM is full
    lost = []
    with Client(srv) as c:
        t0 = int(c.stats()["ssd_tombstones"])
        for i, size in enumerate([100_000, 300_000, 600_000, 900_000] * 3):
            k = b"big:%02d" % i
            v = make_value(k, 1, size, compressible=i % 2 == 0)
            assert c.store(b"set", k, v) == b"STORED"
            got = c.get(k)
            if got is None or got[1] != v:
                lost.append((k, size))
        tombstones = int(c.stats()["ssd_tombstones"]) - t0
    assert not lost, f"{len(lost)} values missed right after STORED: " \
        f"{lost!r}; {tombstones} tombstones written, with no delete"


# --------------------------------------------------------------------------
# races between demotion and delete / flush_all


def test_delete_and_flush_racing_demotion(ssd):
    """Writers keep RAM evicting to SSD while other connections delete keys
    at the eviction frontier, then flush_all repeatedly: no key deleted, and
    no key acknowledged before a flush_all was sent, may be read after."""
    srv = ssd.start()
    acks = []          # (key, time the STORED reply was read)
    stop = threading.Event()
    errors = []

    def writer(prefix):
        i = 0
        try:
            with Client(srv) as c:
                while not stop.is_set():
                    # Mostly small values, and one large one that makes
                    # RAM evict many at once (a long demotion batch).
                    batch = [b"%s:%07d" % (prefix, i + j) for j in range(32)]
                    i += 32
                    replies = c.set_many(
                        [(k, make_value(k, 1, 512 * 1024 if n == 31 else 2048,
                                        n % 2 == 0), 0)
                         for n, k in enumerate(batch)])
                    t = time.monotonic()
                    assert all(r == b"STORED" for r in replies), replies
                    acks.extend((k, t) for k in batch)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    deleted = {}
    claimed = set()
    lock = threading.Lock()
    deleting = threading.Event()

    def deleter(seed, frontier):
        rng = random.Random(seed)
        try:
            with Client(srv) as c:
                while deleting.is_set():
                    keys = []
                    with lock:
                        n = len(acks)
                        for _ in range(16):
                            k = acks[n - rng.randrange(frontier // 2, frontier * 3 // 2)][0]
                            if k not in claimed:
                                claimed.add(k)
                                keys.append(k)
                    if not keys:
                        continue
                    c.sock.sendall(b"".join(b"delete %s\r\n" % k for k in keys))
                    for k in keys:
                        deleted[k] = c.readline().rstrip(b"\r\n")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    writers = [threading.Thread(target=writer, args=(b"x%d" % n,)) for n in range(2)]
    for t in writers:
        t.start()
    time.sleep(1.5)
    frontier = max(200, int(ssd_stats(srv)["curr_items"]))
    deleting.set()
    deleters = [threading.Thread(target=deleter, args=(n, frontier)) for n in range(2)]
    for t in deleters:
        t.start()
    time.sleep(4.0)
    deleting.clear()
    for t in deleters:
        t.join()
    time.sleep(0.2)
    back = read_all(srv, list(deleted))   # before any flush_all

    survivors = []
    with Client(srv) as c:
        previous = time.monotonic()
        for _ in range(15):
            t0 = time.monotonic()
            assert c.call(b"flush_all") == b"OK"
            time.sleep(0.03)
            # Keys written since the previous flush, acknowledged before
            # this one was sent.
            doomed = [k for k, t in list(acks) if previous - 0.2 <= t < t0]
            found = c.get_many(doomed)
            survivors += list(found)
            previous = t0
            time.sleep(0.1)
    stop.set()
    for t in writers:
        t.join()
    assert not errors, errors[0]
    not_found = sum(1 for r in deleted.values() if r == b"NOT_FOUND")
    print(f"\n[ssd {ssd.io_mode}] races: {len(deleted)} deletes at the eviction "
          f"frontier ({not_found} NOT_FOUND), {len(back)} came back; 15 "
          f"flush_all under load, {len(survivors)} keys survived one")
    assert not back, f"{len(back)} deleted keys came back: " \
        f"{[(k, deleted[k]) for k in list(back)[:5]]!r}"
    assert not survivors, f"{len(survivors)} keys acknowledged before a " \
        f"flush_all survived it: {survivors[:5]!r}"
