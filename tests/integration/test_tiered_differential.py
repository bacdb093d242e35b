"""Differential test of the tiered path: the same pipelined command batches go
to a memcached 1.6.18 with ample RAM and to a strata whose keys live on SSD;
the replies must be byte-identical.

* strata runs with a small RAM tier (8 MiB) and an SSD tier (1 GiB) in its
  default configuration otherwise; memcached with `-m 1024`.  Both take
  values up to 4 MiB (`-I 4m`).
* A working set of keys (1 B to 3 MiB values, compressible and not, numbers
  for incr/decr) is driven by batches of 1 to 32 pipelined classic
  commands: get/gets/gat/gats with one and many keys, set/add/replace/
  append/prepend/cas, incr/decr, touch with -1/0/N, delete, each with and
  without noreply; rarely flush_all.  Each batch ends with a `version`
  sentinel and is sent to memcached in one write and to strata cut at
  seeded random points.
* Between batches, filler sets (strata only, keys no command touches) push
  the working keys out of RAM, so most commands find their key on SSD
  (compressed or not).  The bytes a seed writes are capped so the log never
  wraps: any miss is a bug, not an eviction.
* Halfway through each seed, strata is stopped with SIGTERM and started on
  the same file; memcached keeps running, so strata after a restart must
  answer as a memcached that never stopped.
* CAS uniques are mapped per server (the n-th distinct unique a server shows
  becomes <cas#n>); cas commands are rendered with each server's own
  uniques (the newest seen for the key, an older one, or a bogus one).
* Seeds and I/O modes (io_uring and the thread pool) are parametrized.
* Through the pool: the same test with strata in front of an upstream
  memcached (upstream.servers, forward_flush on): every write goes there
  first and the local tiers keep what gets fetch (seed 1: near_cache_ttl
  0, pure routing); STRATA_TIERED_POOL_SEEDS seeds (default 3), io_uring
  only. Seed 2 restarts with kill -9 instead of SIGTERM: RAM's copies are
  lost, but every write is in the pool, so the replies must still be
  memcached's; a local copy on SSD that an acknowledged write or delete
  dropped must never come back.
  Positive TTLs are 1000 s or more, so no reply depends on the clocks.
  STRATA_TIERED_SEEDS and STRATA_TIERED_BATCHES override the counts.
"""

import difflib
import os
import random
import re
import shutil
import signal

import pytest

from conftest import REFERENCE_MEMCACHED, Server
from mcraw import Conn
from test_ssd import make_ssd_test_folder

pytestmark = pytest.mark.strata_only

SEEDS = int(os.environ.get("STRATA_TIERED_SEEDS", "5"))
POOL_SEEDS = int(os.environ.get("STRATA_TIERED_POOL_SEEDS", "3"))
BATCHES = int(os.environ.get("STRATA_TIERED_BATCHES", "400"))
# The default admission unless STRATA_TIERED_ADMISSION names another.
ADMISSION = (f"    admission: {os.environ['STRATA_TIERED_ADMISSION']}\n"
             if os.environ.get("STRATA_TIERED_ADMISSION") else "")
# STRATA_TIERED_TRACE=FILE writes every batch and memcached's reply there.
TRACE = (open(os.environ["STRATA_TIERED_TRACE"], "wb")
         if os.environ.get("STRATA_TIERED_TRACE") else None)
RAM = "8MiB"
SSD = "1GiB"
ITEM_MAX = "4m"
MAX_VALUE = 3 << 20
FILL_EVERY = 8                # batches between filler bursts
FILL_BYTES = 10 << 20         # one burst: more than the RAM tier holds
WRITE_CAP = 700 << 20         # bytes a seed may write: the log never wraps
REPLY_TIMEOUT_S = 60
START_TIMEOUT_S = 120

# Value bytes: no space, CR or LF (a value is never read as a command by a
# server that gets the length right, but keep a misread one harmless).
ALPHABET = bytes(c for c in range(33, 127))
TTL_LONG = [b"0", b"0", b"0", b"1000", b"5000", b"2000000000"]


class CasRef:
    def __init__(self, key, kind):
        self.key, self.kind = key, kind


class Cmd:
    def __init__(self, *parts):
        self.parts = parts

    def render(self, side):
        out = bytearray()
        for p in self.parts:
            out += side.cas_for(p) if isinstance(p, CasRef) else p
        return bytes(out)


class Side:
    """One server's connection and the CAS uniques it has shown."""

    def __init__(self, name, server):
        self.name = name
        self.server = server
        self.conn = Conn.to(server, timeout=REPLY_TIMEOUT_S)
        self.seen = {}      # key -> [uniques in order seen]
        self.labels = {}    # unique -> label

    def reconnect(self, server):
        self.conn.close()
        self.server = server
        self.conn = Conn.to(server, timeout=REPLY_TIMEOUT_S)

    def cas_for(self, ref):
        seen = self.seen.get(ref.key, [])
        if ref.kind == "right" and seen:
            return b"%d" % seen[-1]
        if ref.kind == "stale" and len(seen) > 1:
            return b"%d" % seen[0]
        return b"987654321"

    def canonical(self, raw):
        """The reply with CAS uniques replaced by labels (noted for later cas
        commands), and numbers that incr/decr may have padded unpadded."""
        out = []
        lines = raw.split(b"\r\n")
        for i, line in enumerate(lines):
            if line.startswith(b"VALUE "):
                p = line.split(b" ")
                data = lines[i + 1] if i + 1 < len(lines) else b""
                if NUMBER_KEY.search(p[1]) and PADDED.fullmatch(data):
                    # memcached rewrites a shrinking number in place, padded
                    # with spaces, only while no other thread holds the item;
                    # its LRU maintainer sometimes does, and then the item is
                    # replaced unpadded. Either is memcached's answer.
                    lines[i + 1] = data.rstrip(b" ")
                    p[3] = b"%d" % len(lines[i + 1])
                    line = b" ".join(p)
                if len(p) == 5 and p[4].isdigit():
                    cas = int(p[4])
                    self.seen.setdefault(p[1], []).append(cas)
                    label = self.labels.setdefault(cas, len(self.labels))
                    line = b" ".join(p[:4] + [b"<cas#%d>" % label])
            elif line.startswith(b"VERSION "):
                line = b"VERSION"  # the version strings differ
            out.append(line)
        return b"\r\n".join(out)


class Generator:
    def __init__(self, seed):
        self.r = random.Random(seed)
        pre = b"t%d-" % seed
        self.keys = [pre + b"k%03d" % i for i in range(120)]
        self.nkeys = [pre + b"n%02d" % i for i in range(16)]
        self.keys.append(pre + b"L" * (250 - len(pre)))  # the longest key
        self.big = [pre + b"B%d" % i for i in range(4)]  # MiB values
        self.fill_no = 0
        self.pre = pre

    def key(self):
        x = self.r.random()
        if x < 0.75:
            return self.r.choice(self.keys)
        if x < 0.95:
            return self.r.choice(self.nkeys)
        return self.r.choice(self.big)

    def value(self, key):
        if key in self.nkeys:
            # Below 2^63: for a larger number memcached's safe_strtoull
            # looks for a '-' past the value's end, in whatever memory
            # follows the item, so incr/decr on it may fail or not.
            return self.r.choice([b"0", b"1", b"7", b"42", b"1000", b"99999",
                                  b"12345678901234", b"  5", b"abc", b"5 "])
        if key in self.big:
            n = self.r.randint(1 << 20, MAX_VALUE)
        else:
            x = self.r.random()
            if x < 0.35:
                n = self.r.randint(1, 100)
            elif x < 0.85:
                n = self.r.randint(101, 16384)
            else:
                n = self.r.randint(16385, 262144)
        if self.r.random() < 0.5:   # compressible
            unit = bytes(self.r.choice(ALPHABET) for _ in range(
                self.r.randint(1, 64)))
            return (unit * (n // len(unit) + 1))[:n]
        return self.r.randbytes(n).translate(TRANSLATE)

    def noreply(self):
        return b" noreply" if self.r.random() < 0.2 else b""

    def ttl(self):
        x = self.r.random()
        if x < 0.9:
            return self.r.choice(TTL_LONG)
        return b"-1"

    def command(self):
        r = self.r
        x = r.random()
        if x < 0.30:
            verb = r.choice([b"get", b"get", b"gets", b"gat", b"gats"])
            n = 1 if r.random() < 0.6 else r.randint(2, 8)
            keys = b" ".join(self.key() for _ in range(n))
            if verb in (b"gat", b"gats"):
                return Cmd(verb + b" " + r.choice([b"0", b"1000", b"5000"])
                           + b" " + keys + b"\r\n")
            return Cmd(verb + b" " + keys + b"\r\n")
        key = self.key()
        if x < 0.55:
            verb = r.choice([b"set", b"set", b"add", b"replace", b"append",
                             b"prepend"])
            if verb in (b"append", b"prepend") and key in self.nkeys:
                # Not on numbers: whether memcached padded one that decr
                # shrank depends on its LRU thread (see Side.canonical).
                key = r.choice(self.keys)
            value = self.value(key)
            if verb in (b"append", b"prepend") and key not in self.big:
                value = value[:r.randint(1, 64)]
            return Cmd(b"%s %s %d %s %d%s\r\n" % (
                verb, key, r.choice([0, 1, 77, 65535, 4294967295]),
                self.ttl(), len(value), self.noreply()), value + b"\r\n")
        if x < 0.62:
            value = self.value(key)
            kind = r.choice(["right", "right", "stale", "bogus"])
            return Cmd(b"cas %s %d %s %d " % (key, r.randint(0, 9), self.ttl(),
                                              len(value)),
                       CasRef(key, kind), self.noreply() + b"\r\n",
                       value + b"\r\n")
        if x < 0.75:
            verb = r.choice([b"incr", b"decr"])
            delta = r.choice([b"1", b"5", b"1000", b"1000000000000"])
            return Cmd(b"%s %s %s%s\r\n" % (verb, r.choice(self.nkeys + [key]),
                                           delta, self.noreply()))
        if x < 0.87:
            return Cmd(b"touch %s %s%s\r\n" % (
                key, r.choice([b"-1", b"0", b"0", b"1000", b"5000"]),
                self.noreply()))
        if x < 0.998:
            return Cmd(b"delete %s%s\r\n" % (key, self.noreply()))
        return Cmd(b"flush_all%s\r\n" % self.noreply())

    def populate(self):
        """A set of every working key, in batches of commands."""
        cmds = []
        for key in self.keys + self.nkeys + self.big:
            value = self.value(key)
            cmds.append(Cmd(b"set %s %d 0 %d\r\n" % (key, len(cmds) % 3,
                                                      len(value)),
                            value + b"\r\n"))
        return [cmds[i:i + 16] for i in range(0, len(cmds), 16)]

    def batch(self):
        return [self.command() for _ in range(self.r.randint(1, 32))]

    def filler(self, nbytes):
        """(request bytes, bytes of values) of noreply sets nothing reads."""
        parts, total = [], 0
        self.fill_keys = []
        while total < nbytes:
            self.fill_no += 1
            self.fill_keys.append(b"%sfill%d" % (self.pre, self.fill_no))
            size = self.r.choice([4096, 16384, 65536])
            if self.r.random() < 0.5:
                value = self.r.randbytes(size).translate(TRANSLATE)
            else:
                value = (b"%d." % self.fill_no) * (size // 4)
                value = value[:size]
            parts.append(b"set %sfill%d 0 0 %d noreply\r\n%s\r\n" % (
                self.pre, self.fill_no, len(value), value))
            total += len(value)
        return b"".join(parts), total


NUMBER_KEY = re.compile(rb"-n\d+$")
PADDED = re.compile(rb"\d+ +")
TRANSLATE = bytes(ALPHABET[b % len(ALPHABET)] for b in range(256))


def read_batch(side):
    raw, status = side.conn.read_until_version()
    assert status == "ok", \
        f"{side.name}: no VERSION sentinel ({status}); got {raw[-300:]!r}"
    return raw


def send_split(conn, data, r):
    """Sends `data` in pieces cut at random points."""
    pos = 0
    while pos < len(data):
        n = r.choice([1, 7, 64, 512, 4096, 65536, len(data)])
        conn.send(data[pos:pos + n])
        pos += n


def show(raw):
    text = raw.decode("latin-1")
    text = re.sub(r"([!-~]{80})[!-~]+", r"\1...", text)
    return text.splitlines()


def strata_stats(side):
    side.conn.send(b"stats\r\n")
    out = {}
    while True:
        line = side.conn.readline()
        if line == b"END\r\n":
            return out
        _, name, value = line.rstrip(b"\r\n").split(b" ", 2)
        out[name.decode()] = value.decode()


@pytest.fixture(params=["io_uring", "threadpool"])
def io_mode(request):
    return request.param


@pytest.fixture
def folder(strata_bin):
    path = make_ssd_test_folder(strata_bin, "tdiff-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def start_strata(strata_bin, folder, io_mode, upstream=None, near_cache_ttl="60s"):
    config = os.path.join(folder, "strata.yaml")
    pool = ""
    if upstream is not None:
        pool = ("upstream:\n"
                f"  servers: [\"127.0.0.1:{upstream.port}\"]\n"
                "  forward_flush: true\n"
                f"  near_cache_ttl: {near_cache_ttl}\n"
                # Values up to 3 MiB over loopback on a loaded machine.
                "  request_timeout: 10s\n")
    with open(config, "w") as f:
        f.write("tiers:\n"
                f"  ram: {{size: {RAM}}}\n"
                "  ssd:\n"
                f"    path: {folder}/cache.bin\n"
                f"    size: {SSD}\n"
                f"    io: {io_mode}\n"
                f"{ADMISSION}"
                f"{pool}"
                "metrics: {enabled: false}\n")
    srv = Server(strata_bin, memory_mb=None, threads=2, item_size=ITEM_MAX,
                 extra_args=["--config", config],
                 log_path=os.path.join(folder, "strata.log"),
                 start_timeout=START_TIMEOUT_S)
    try:
        srv.start()
    except RuntimeError as e:
        if io_mode == "io_uring" and "io_uring" in str(e):
            pytest.skip(f"io_uring is not usable here: {e}")
        raise
    return srv


@pytest.mark.parametrize("seed", range(SEEDS))
def test_tiered_replies_match_memcached(strata_bin, folder, io_mode, seed):
    run_seed(strata_bin, folder, io_mode, seed, upstream=None)


@pytest.mark.parametrize("seed", range(POOL_SEEDS))
def test_replies_through_the_pool_match_memcached(strata_bin, folder, seed):
    if not os.access(REFERENCE_MEMCACHED, os.X_OK):
        pytest.skip("no reference memcached")
    upstream = Server(REFERENCE_MEMCACHED, memory_mb=1024, threads=2, item_size=ITEM_MAX)
    upstream.start()
    try:
        # Seed 1: pure routing (nothing kept locally; pipelined gets are
        # fetched ahead). Seed 2: the restart is a kill -9.
        run_seed(strata_bin, folder, "io_uring", 1000 + seed, upstream=upstream,
                 near_cache_ttl="0s" if seed % 3 == 1 else "60s",
                 restart_sig=signal.SIGKILL if seed % 3 == 2 else signal.SIGTERM)
    finally:
        upstream.stop()
        upstream.close_log()


def run_seed(strata_bin, folder, io_mode, seed, upstream, near_cache_ttl="60s",
             restart_sig=signal.SIGTERM):
    if not os.access(REFERENCE_MEMCACHED, os.X_OK):
        pytest.skip("no reference memcached")
    mc_srv = Server(REFERENCE_MEMCACHED, memory_mb=1024, threads=2,
                    item_size=ITEM_MAX)
    mc_srv.start()
    st_srv = start_strata(strata_bin, folder, io_mode, upstream, near_cache_ttl)
    mc = Side("memcached", mc_srv)
    st = Side("strata", st_srv)
    gen = Generator(seed * 7919 + (1 if io_mode == "threadpool" else 0))
    split_rng = random.Random(seed)
    written = 0
    try:
        assert strata_stats(st)["ssd_io_mode"] == io_mode

        def run(b, cmds):
            nonlocal written
            mc_req = b"".join(c.render(mc) for c in cmds) + b"version\r\n"
            st_req = b"".join(c.render(st) for c in cmds) + b"version\r\n"
            written += len(st_req)
            mc.conn.send(mc_req)
            send_split(st.conn, st_req, split_rng)
            want = mc.canonical(read_batch(mc))
            got = st.canonical(read_batch(st))
            if TRACE is not None:
                TRACE.write(b"== batch %d\n%s-- reply\n%s\n" % (b, mc_req, want))
            if got != want:
                diff = "\n".join(difflib.unified_diff(
                    show(want), show(got), "memcached", "strata", lineterm=""))
                pytest.fail(f"seed {seed} batch {b} ({io_mode}): replies "
                            f"differ\nrequest:\n" +
                            "\n".join(show(mc_req)[:80]) + "\n" + diff[:6000])

        for cmds in gen.populate():
            run(-1, cmds)
        for b in range(BATCHES):
            if b == BATCHES // 2:
                # SIGTERM (or kill -9, right after a reply) and a restart on
                # the same file.
                if restart_sig == signal.SIGKILL:
                    rc = st_srv.stop(sig=signal.SIGKILL, timeout=START_TIMEOUT_S)
                    assert rc == -signal.SIGKILL, f"strata exited {rc} after kill -9"
                st.conn.close()
                rc = st_srv.stop(sig=signal.SIGTERM, timeout=START_TIMEOUT_S)
                st_srv.close_log()
                assert rc in (0, -signal.SIGKILL), f"strata exited {rc}"
                if restart_sig == signal.SIGTERM:
                    assert rc == 0, f"strata exited {rc} after SIGTERM"
                st_srv = start_strata(strata_bin, folder, io_mode, upstream, near_cache_ttl)
                st.reconnect(st_srv)
            if b % FILL_EVERY == 0 and written + FILL_BYTES < WRITE_CAP:
                data, n = gen.filler(FILL_BYTES)
                st.conn.send(data + b"version\r\n")
                read_batch(st)
                written += n
                if upstream is not None and near_cache_ttl != "0s":
                    # With a pool the sets went there: fetched back, they
                    # fill the local tiers and push the working keys'
                    # local copies to SSD.
                    st.conn.send(b"get " + b" ".join(gen.fill_keys) + b"\r\nversion\r\n")
                    read_batch(st)
            run(b, gen.batch())
        s = strata_stats(st)
        assert int(s["ssd_regions_reclaimed"]) == 0, "the log wrapped"
        assert int(s["ssd_dropped_backlog"]) == 0
        assert int(s["ssd_corrupt_records"]) == 0
        if upstream is None:
            # The batches did reach SSD-resident keys (counted since the
            # restart).
            assert int(s["ssd_hits"]) > 0 and int(s["ssd_promotions"]) > 0, s
        else:
            # Gets went to the pool, and what they fetched was kept (unless
            # near_cache_ttl is 0).
            assert int(s["upstream_fetches"]) > 0, s
            assert (int(s["upstream_fills"]) > 0) == (near_cache_ttl != "0s"), s
            if near_cache_ttl != "0s":
                # Local copies were read back from SSD (since the restart).
                assert int(s["ssd_hits"]) > 0, s
            assert int(s["upstream_failures"]) == 0, s
    finally:
        mc.conn.close()
        st.conn.close()
        st_srv.stop(sig=signal.SIGKILL)
        st_srv.close_log()
        mc_srv.stop()
        mc_srv.close_log()
